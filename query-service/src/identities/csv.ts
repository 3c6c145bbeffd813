/**
 * The inventory's CSV: its columns, and reading an inventory file or body
 * (the CSV itself is http/csv.ts).
 */
import { CsvError, parseCsv } from '../http/csv.js'

/** The inventory's CSV columns; `id` and `type` are required, the rest optional. */
export const INVENTORY_CSV_COLUMNS = ['id', 'type', 'owner', 'business_unit', 'tier', 'approved_activities'] as const

/**
 * Reads an inventory CSV (a header line naming the columns, in any order,
 * then one identity per line; `approved_activities` entries separated by
 * `;`) into plain objects for validation. Empty cells leave the field to
 * its default.
 */
export function inventoryFromCsv(text: string): Array<Record<string, unknown>> {
  const [header, ...rows] = parseCsv(text)
  if (!header) return []
  const columns = header.fields.map((name) => name.trim())
  for (const name of columns) {
    if (!(INVENTORY_CSV_COLUMNS as readonly string[]).includes(name)) {
      throw new CsvError(`line ${header.line}: unknown column ${JSON.stringify(name.slice(0, 64))}; columns are ${INVENTORY_CSV_COLUMNS.join(', ')}`)
    }
  }
  if (new Set(columns).size !== columns.length) throw new CsvError(`line ${header.line}: a column is named twice`)
  for (const required of ['id', 'type']) {
    if (!columns.includes(required)) throw new CsvError(`line ${header.line}: the header must name the ${required} column`)
  }
  return rows.map(({ line, fields }) => {
    if (fields.length !== columns.length) throw new CsvError(`line ${line}: ${fields.length} fields, but the header names ${columns.length} columns`)
    const item: Record<string, unknown> = {}
    columns.forEach((name, i) => {
      const cell = fields[i]!
      if (cell === '' && name !== 'id' && name !== 'type') return
      item[name] = name === 'approved_activities' ? cell.split(';').map((entry) => entry.trim()).filter((entry) => entry !== '') : cell
    })
    return item
  })
}
