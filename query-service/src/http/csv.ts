/**
 * CSV as every endpoint reads and writes it (RFC 4180: comma separated,
 * double quotes around fields with separators, `""` for a quote inside,
 * CRLF or LF line ends). Written fields that start like a spreadsheet
 * formula are neutralised.
 */

/** A CSV text that cannot be read; the message names the line. */
export class CsvError extends Error {}

/** Splits CSV text into rows of fields. Blank lines are skipped. */
export function parseCsv(text: string): Array<{ line: number; fields: string[] }> {
  const rows: Array<{ line: number; fields: string[] }> = []
  let fields: string[] = []
  let field = ''
  let quoted = false
  let line = 1
  let rowLine = 1
  let atFieldStart = true
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  const endRow = () => {
    fields.push(field)
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ line: rowLine, fields })
    fields = []
    field = ''
    atFieldStart = true
  }
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!
    if (quoted) {
      if (ch === '"') {
        if (body[i + 1] === '"') {
          field += '"'
          i++
        } else {
          quoted = false
          const next = body[i + 1]
          if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') throw new CsvError(`line ${line}: unexpected ${JSON.stringify(next)} after a closing quote`)
        }
      } else {
        if (ch === '\n') line++
        field += ch
      }
      continue
    }
    if (ch === '"' && atFieldStart) {
      quoted = true
      atFieldStart = false
    } else if (ch === ',') {
      fields.push(field)
      field = ''
      atFieldStart = true
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && body[i + 1] === '\n') i++
      endRow()
      line++
      rowLine = line
    } else {
      if (ch === '"') throw new CsvError(`line ${line}: a quote inside an unquoted field; quote the whole field and double the quote`)
      field += ch
      atFieldStart = false
    }
  }
  if (quoted) throw new CsvError(`line ${rowLine}: a quoted field is not closed`)
  if (field !== '' || fields.length > 0) endRow()
  return rows
}

/** One CSV field: quoted when needed, and a leading formula character neutralised for spreadsheet users. */
export function csvField(value: string | number | boolean | null): string {
  const s = value === null ? '' : String(value)
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d/.test(s) ? `'${s}` : s
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}

/** Lines of CSV from a header and rows, each line ending in a newline. */
export function formatCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null>>): string {
  return [header, ...rows].map((row) => `${row.map(csvField).join(',')}\n`).join('')
}
