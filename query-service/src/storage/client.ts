/**
 * The one place that opens ClickHouse: the embedded engine (chDB, in this
 * process, data in a directory) by default, or a ClickHouse server when a
 * URL is configured. Everything above this talks `@clickhouse/client`.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'

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
  return createClient({
    connection: createChdbConnection({ path }),
    clickhouse_settings: CLICKHOUSE_SETTINGS,
  } as Parameters<typeof createClient>[0])
}

/** Converts a ClickHouse 64-bit count (a string, by our settings) to a safe JS integer. */
export function toCount(value: string | number): number {
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`count out of range: ${value}`)
  return n
}
