/**
 * The one place that opens ClickHouse: the embedded engine (chDB, in this
 * process, data in a directory) by default, or a ClickHouse server when a
 * URL is configured. Everything above this talks `@clickhouse/client`.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { Readable } from 'node:stream'
import { finished } from 'node:stream/promises'

/** Where the data lives. */
export type StorageConfig =
  | { kind: 'embedded'; dataDir: string }
  | { kind: 'server'; url: string; username?: string; password?: string; database?: string }

/**
 * Settings every connection gets. 64-bit integers come back as JSON numbers
 * only when they fit; we read counts as strings and convert explicitly
 * (see `toCount`), so no precision is ever lost silently.
 */
const CLICKHOUSE_SETTINGS = {
  date_time_output_format: 'iso',
  // DateTime64 literals we write and bind are UTC, whatever the host's time zone.
  session_timezone: 'UTC',
  output_format_json_quote_64bit_integers: 1,
} as const

/** Opens a client for the given storage. The embedded engine allows one data directory per process. */
export async function openStorage(config: StorageConfig): Promise<ClickHouseClient> {
  if (config.kind === 'server') {
    return createClient({
      url: config.url,
      username: config.username,
      password: config.password,
      database: config.database,
      clickhouse_settings: CLICKHOUSE_SETTINGS,
      request_timeout: 30_000,
    })
  }
  const path = resolve(config.dataDir)
  mkdirSync(path, { recursive: true })
  // Imported lazily so a server deployment never loads the native engine.
  const { createChdbConnection } = await import('chdb/connection')
  const connection = createChdbConnection({ path })
  const client = createClient({
    connection,
    clickhouse_settings: CLICKHOUSE_SETTINGS,
  } as Parameters<typeof createClient>[0])
  embeddedConnections.set(client, connection)
  return client
}

/** The chDB connection behind each embedded client, for its bulk-insert path. */
const embeddedConnections = new WeakMap<ClickHouseClient, import('chdb/connection').ChdbConnection>()

/** Line-delimited formats that `insertFormatted` passes through unparsed. */
export type BulkFormat = 'JSONCompactEachRow' | 'JSONEachRow'

/**
 * Inserts an already-formatted body. On the embedded engine the bytes go
 * to chDB's native parser directly (the generic path would splice megabytes
 * into the SQL text, several times slower); on a server they are streamed
 * as the HTTP body.
 */
export async function insertFormatted(client: ClickHouseClient, table: string, columns: readonly string[], format: BulkFormat, body: Buffer): Promise<void> {
  const embedded = embeddedConnections.get(client)
  if (embedded) {
    await embedded.chdb.rawInsert({ table, columns, values: body, format, settings: { session_timezone: 'UTC', max_insert_threads: 2, optimize_on_insert: 0 } })
    return
  }
  // table and columns are the caller's constants, never user input.
  const result = await client.exec({
    query: `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(', ')}) FORMAT ${format}`,
    values: Readable.from([body]),
  })
  result.stream.resume()
  await finished(result.stream)
}

/** Converts a ClickHouse 64-bit count (a string, by our settings) to a safe JS integer. */
export function toCount(value: string | number): number {
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`count out of range: ${value}`)
  return n
}
