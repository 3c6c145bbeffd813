/**
 * Inventory documents: the text formats an inventory arrives in (JSON, YAML,
 * CSV), and the inventory file imported at start for teams that keep their
 * declarations in git (`NHI_METER_INVENTORY_FILE`).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { readFile, stat } from 'node:fs/promises'
import { LineCounter, parseDocument } from 'yaml'
import { CsvError } from '../http/csv.js'
import { inventoryFromCsv } from './csv.js'
import { MAX_INVENTORY_BATCH, MAX_INVENTORY_FILE_ITEMS, upsertInventory, validateInventory, type DeclaredIdentity, type InventoryUpsertResult } from './inventory.js'

/** The environment variable naming the inventory file read at start. */
export const INVENTORY_FILE_ENV = 'NHI_METER_INVENTORY_FILE'
/** Largest inventory file read, in bytes. */
export const MAX_INVENTORY_FILE_BYTES = 64 * 1024 * 1024
/** YAML aliases may expand to at most this many nodes (an alias bomb is refused). */
const MAX_YAML_ALIAS_COUNT = 100

/** A text format an inventory can be written in. */
export type InventoryFormat = 'json' | 'yaml' | 'csv'

/** An inventory text that cannot be read as its format (before validation of its content). */
export class InventorySyntaxError extends Error {}

/** Reads inventory text as a plain value for {@link validateInventory}. */
export function parseInventoryText(text: string, format: InventoryFormat): unknown {
  try {
    if (format === 'csv') return inventoryFromCsv(text)
    if (format === 'json') return JSON.parse(text)
    return readYaml(text)
  } catch (error) {
    if (error instanceof InventorySyntaxError) throw error
    if (error instanceof CsvError) throw new InventorySyntaxError(`not valid CSV: ${error.message}`)
    throw new InventorySyntaxError(`not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`)
  }
}

// YAML 1.2 (so `no` stays a string), one document, no tags, no merge keys,
// unique keys, and aliases that expand to a bounded number of nodes.
function readYaml(text: string): unknown {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, strict: true, stringKeys: true, uniqueKeys: true, merge: false, version: '1.2' })
  const [problem] = [...doc.errors, ...doc.warnings]
  if (problem) {
    const what = problem.code === 'DUPLICATE_KEY' ? 'a key appears twice in one mapping' : problem.message.split('\n')[0]!
    throw new InventorySyntaxError(`not valid YAML: ${what} (line ${lineCounter.linePos(problem.pos[0]).line})`)
  }
  return doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT })
}

/** The format of an inventory file from its name: `.csv` is CSV, anything else YAML (which also reads JSON). */
export function inventoryFormatOfPath(path: string): InventoryFormat {
  return /\.csv$/i.test(path) ? 'csv' : 'yaml'
}

/** An inventory file that cannot be imported; the message names the variable, the file and every problem. */
export class InventoryFileError extends Error {}

/**
 * Reads, validates and upserts an inventory file (YAML list of identities,
 * JSON, or CSV with a header line). Everything is validated before anything
 * is stored; an invalid file stores nothing and throws
 * {@link InventoryFileError}. Identities declared exactly as before are not
 * rewritten, so importing the same file at every start is cheap. An
 * identity removed from the file stays declared (retire it with DELETE
 * /v1/inventory/{id}).
 */
export async function importInventoryFile(client: ClickHouseClient, path: string): Promise<InventoryUpsertResult> {
  const where = `${INVENTORY_FILE_ENV}: ${path}`
  let text: string
  try {
    const info = await stat(path)
    if (info.size > MAX_INVENTORY_FILE_BYTES) throw new Error(`larger than ${MAX_INVENTORY_FILE_BYTES} bytes`)
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new InventoryFileError(`${where}: cannot read: ${(error as Error).message}`)
  }
  let items: DeclaredIdentity[]
  try {
    const value = parseInventoryText(text, inventoryFormatOfPath(path))
    // An empty YAML file is an empty inventory.
    items = validateInventory(value ?? [], MAX_INVENTORY_FILE_ITEMS)
  } catch (error) {
    throw new InventoryFileError(`${where}: ${(error as Error).message}`)
  }
  const total: InventoryUpsertResult = { received: 0, created: 0, updated: 0, unchanged: 0 }
  for (let start = 0; start < items.length; start += MAX_INVENTORY_BATCH) {
    const part = await upsertInventory(client, items.slice(start, start + MAX_INVENTORY_BATCH))
    total.received += part.received
    total.created += part.created
    total.updated += part.updated
    total.unchanged += part.unchanged
  }
  return total
}
