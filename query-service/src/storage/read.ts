/**
 * Reading rows back from ClickHouse, one way: the format, each row checked
 * against the zod schema its caller defines beside the SQL, the codec of
 * 64-bit integers, and the settings of reads with FINAL.
 *
 * 64-bit integers: every connection sets
 * `output_format_json_quote_64bit_integers` (storage/client.ts), so they
 * arrive as strings, and {@link count64} / {@link toCount} turn them into
 * safe JS integers or fail, so no precision is ever lost silently.
 */
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client'
import { z } from 'zod'

/** Converts a ClickHouse 64-bit count (a string, by our settings) to a safe JS integer. */
export function toCount(value: string | number): number {
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`count out of range: ${value}`)
  return n
}

/** A 64-bit count as ClickHouse sends it (a string or a number), refused beyond 2^53 - 1 or below 0. */
export const count64 = z.union([z.string(), z.number()]).transform((v) => toCount(v))
/** A 64-bit integer that fits a double (epoch milliseconds, indexes). */
export const int64 = z.union([z.string(), z.number()]).transform((v) => Number(v))

/** How a read runs, beyond the connection's settings. */
export interface ReadSettings {
  /**
   * The query reads ReplacingMergeTree tables with FINAL. Their sorting
   * keys never span a partition, so FINAL merges within each partition.
   */
  final?: boolean
  /** Functions such as `notEmpty(s)` are read from the column's size subcolumn alone. */
  subcolumns?: boolean
}

// As object literals named *_SETTINGS, which the ClickHouse versions test finds in the source.
const FINAL_SETTINGS = { do_not_merge_across_partitions_select_final: 1 } as const
const SUBCOLUMN_SETTINGS = { optimize_functions_to_subcolumns: 1 } as const

/** The per-query settings a read with these options runs with; undefined when it needs none. */
export function readSettings(options: ReadSettings): ClickHouseSettings | undefined {
  const settings: ClickHouseSettings = { ...(options.final ? FINAL_SETTINGS : {}), ...(options.subcolumns ? SUBCOLUMN_SETTINGS : {}) }
  return Object.keys(settings).length > 0 ? settings : undefined
}

/** The two formats rows are read in, as `format` properties the ClickHouse versions test finds. */
const FORMATS = { named: { format: 'JSONEachRow' }, positional: { format: 'JSONCompactEachRow' } } as const

/** One read: the SQL, its bound parameters, and the schema every row must match. */
export interface ReadRequest<Row extends z.ZodType> extends ReadSettings {
  query: string
  params?: Record<string, unknown>
  /** The row's schema: an object of named columns, or a tuple with `positional`. */
  row: Row
  /** Rows come as arrays in column order (JSONCompactEachRow) instead of objects by column name (JSONEachRow). */
  positional?: boolean
}

/** Runs a read and returns its rows, each checked (and converted) by `request.row`; a row that does not match throws. */
export async function readRows<Row extends z.ZodType>(client: ClickHouseClient, request: ReadRequest<Row>): Promise<z.output<Row>[]> {
  const settings = readSettings(request)
  const result = await client.query({
    query: request.query,
    ...FORMATS[request.positional ? 'positional' : 'named'],
    ...(request.params ? { query_params: request.params } : {}),
    ...(settings ? { clickhouse_settings: settings } : {}),
  })
  return (await result.json<unknown>()).map((raw) => request.row.parse(raw))
}

/** The first row of a read, or undefined when it returned none. */
export async function readFirst<Row extends z.ZodType>(client: ClickHouseClient, request: ReadRequest<Row>): Promise<z.output<Row> | undefined> {
  return (await readRows(client, request))[0]
}

/** The one row of a read that always returns one (an aggregate without GROUP BY, constants); none throws. */
export async function readOne<Row extends z.ZodType>(client: ClickHouseClient, request: ReadRequest<Row>): Promise<z.output<Row>> {
  const [row] = await readRows(client, request)
  if (row === undefined) throw new Error(`expected one row, got none: ${request.query.trim().slice(0, 100)}`)
  return row
}
