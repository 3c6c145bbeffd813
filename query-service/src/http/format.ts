/**
 * The representation of a route that answers JSON or CSV: `format=json|csv`
 * decides, else `Accept: text/csv`, else JSON; and the CSV download answer.
 */
import type { Context } from 'hono'
import { formatCsv } from './csv.js'
import { parseEnum } from './params.js'

/** What a route answers in, from its `format` parameter and the Accept header. */
export function responseFormat(c: Context, format: string | undefined): 'json' | 'csv' {
  const accept = c.req.header('accept') ?? ''
  return parseEnum('format', format, ['json', 'csv'] as const, /\btext\/csv\b/.test(accept) ? 'csv' : 'json')
}

/** A CSV answer offered as a download named `filename`, with a header line and its rows (formulas neutralised). */
export function csvResponse(c: Context, filename: string, header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null>>): Response {
  c.header('Content-Type', 'text/csv; charset=utf-8')
  c.header('Content-Disposition', `attachment; filename="${filename}"`)
  return c.body(formatCsv(header, rows))
}
