/**
 * The one place that opens ClickHouse: the embedded engine (chDB, in this
 * process, data in a directory) by default, or a ClickHouse server when a
 * URL is configured. Everything above this talks `@clickhouse/client`.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { Readable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { guardServerClient, waitUntilReachable } from './availability.js'
import { RequestFirst, splitForJobs } from './request-first.js'
import { registerWriteCounter, trackWrites, writeAround } from './write-tracking.js'

/** Where the data lives. */
export type StorageConfig =
  | { kind: 'embedded'; dataDir: string }
  | { kind: 'server'; url: string; username?: string; password?: string; database?: string }

/**
 * Settings every connection gets. 64-bit integers come back as JSON numbers
 * only when they fit; we read counts as strings and convert explicitly
 * (`toCount` and `count64` in read.ts), so no precision is ever lost silently.
 */
const CLICKHOUSE_SETTINGS = {
  date_time_output_format: 'iso',
  // DateTime64 literals we write and bind are UTC, whatever the host's time zone.
  session_timezone: 'UTC',
  output_format_json_quote_64bit_integers: 1,
} as const

/** Where storage reports its state: a server that is waited for, lost or back. */
export interface StorageLog {
  info(message: string): void
  error(message: string, error?: unknown): void
}

/**
 * Longest a server insert may take before the receiver gives up and answers
 * 503: below the 10 s an OTLP exporter waits by default, so the exporter
 * backs off and retries instead of timing out. A retried batch whose first
 * insert did land counts once (the ledger deduplicates by span).
 */
const SERVER_INSERT_DEADLINE_MS = 8_000

/**
 * Opens a client for the given storage. The embedded engine allows one data
 * directory per process. A server is waited for until it answers (retrying
 * with backoff, logged), and its client is guarded so that a server that
 * goes away later fails requests within seconds and is picked up again
 * when it returns (see availability.ts).
 */
export async function openStorage(config: StorageConfig, log?: StorageLog): Promise<ClickHouseClient> {
  if (config.kind === 'server') {
    // The origin only: a URL may carry credentials, which never reach a log.
    const where = new URL(config.url).origin
    // Until start-up has reached the server once, the wait below does the talking.
    let started = false
    const connection = {
      url: config.url,
      username: config.username,
      password: config.password,
      database: config.database,
      // Failures are reported by the service itself, once per request (with its id) and once per outage.
      log: { level: ClickHouseLogLevel.OFF },
    }
    const client = guardServerClient(
      createClient({
        ...connection,
        clickhouse_settings: CLICKHOUSE_SETTINGS,
        // Socket idle limit of one request: long enough for a month of billing on a loaded server.
        request_timeout: 30_000,
      }),
      {
        // /ping on a connection of its own, never queued behind slow queries.
        prober: createClient({ ...connection, max_open_connections: 1 }),
        onChange: (available, detail) => {
          if (!started) return
          if (available) log?.info(`ClickHouse at ${where} is reachable again (${detail})`)
          else log?.error(`ClickHouse at ${where} is unavailable (${detail}); the API answers 503 until it returns, and the receiver keeps taking exports into its ingest log until that is full`)
        },
      },
    )
    await waitUntilReachable(client, where, { info: (message) => log?.info(message) })
    started = true
    return client
  }
  const path = resolve(config.dataDir)
  mkdirSync(path, { recursive: true })
  // Imported lazily so a server deployment never loads the native engine.
  const { createChdbConnection } = await import('chdb/connection')
  const connection = createChdbConnection({ path })
  // The embedded engine is one session: settings SET once hold for every
  // later query, while settings given to the client would be SET again
  // before each query (chDB's connection prefixes them as statements).
  await connection.chdb.queryAsync(
    Object.entries(CLICKHOUSE_SETTINGS)
      .map(([name, value]) => `SET ${name} = ${typeof value === 'number' ? value : `'${value}'`}`)
      .join('; '),
  )
  // Bulk inserts get a connection of their own to the same directory. The engine runs one statement at a time
  // per connection, so on the first a read would wait behind every ingest batch; on two it runs beside them.
  const inserts = createChdbConnection({ path })
  const closeQueries = connection.close.bind(connection)
  connection.close = async () => {
    await inserts.close()
    await closeQueries()
  }
  // Every write to this directory passes through here: counted, so caches know when to read again.
  const writes = trackWrites(connection as unknown as Parameters<typeof trackWrites>[0])
  // Background jobs take their turn after requests (request-first.ts).
  const order = new RequestFirst()
  const jobs = splitForJobs(connection as unknown as Parameters<typeof splitForJobs>[0], order)
  const client = createClient({ connection } as Parameters<typeof createClient>[0])
  const jobsClient = createClient({ connection: jobs } as Parameters<typeof createClient>[0])
  for (const each of [client, jobsClient]) {
    embeddedConnections.set(each, inserts)
    registerWriteCounter(each, writes)
  }
  forJobs.set(client, { client: jobsClient, order })
  return client
}

/** Per embedded client, the client its background jobs use and the order of its requests' and jobs' statements. */
const forJobs = new WeakMap<ClickHouseClient, { client: ClickHouseClient; order: RequestFirst }>()

/**
 * Runs `handle` (one API request) as a request: on the embedded engine no
 * job statement starts while it runs (each waits at most 2 s), so the
 * request's statements do not queue behind jobs' statements that started
 * between two of them. On a server it just runs `handle`.
 */
export function duringRequest<T>(client: ClickHouseClient, handle: () => Promise<T>): Promise<T> {
  const order = forJobs.get(client)?.order
  return order ? order.request(handle) : handle()
}

/**
 * The client background jobs (summaries, trace resolution, findings
 * evaluation, webhooks) use: on the embedded engine one whose statements
 * wait while a request is answered (request-first.ts); on a server the
 * client itself. Closing `client` closes both.
 */
export function clientForJobs(client: ClickHouseClient): ClickHouseClient {
  return forJobs.get(client)?.client ?? client
}

/** The chDB connection each embedded client's bulk inserts take. */
const embeddedConnections = new WeakMap<ClickHouseClient, import('chdb/connection').ChdbConnection>()

/** Line-delimited formats that `insertFormatted` passes through unparsed. */
export type BulkFormat = 'JSONCompactEachRow' | 'JSONEachRow'

/**
 * Inserts an already-formatted body. On the embedded engine the bytes go
 * to chDB's native parser directly (the generic path would splice megabytes
 * into the SQL text, several times slower); on a server they are streamed
 * as the HTTP body.
 */
export async function insertFormatted(
  client: ClickHouseClient,
  table: string,
  columns: readonly string[],
  format: BulkFormat,
  body: Buffer,
  options: { deduplicationToken?: string } = {},
): Promise<void> {
  const embedded = embeddedConnections.get(client)
  if (embedded) {
    await writeAround(client, table, () =>
      embedded.chdb.rawInsert({ table, columns, values: body, format, settings: { session_timezone: 'UTC', max_insert_threads: 2, optimize_on_insert: 0 } }),
    )
    return
  }
  // table and columns are the caller's constants, never user input. On a server an insert can succeed while its
  // answer is lost (a cut connection): a retry with the same token is then dropped by ClickHouse instead of stored
  // twice (tables with a deduplication window). The embedded engine has no such gap, and a setting given to one of
  // its inserts would stay set on the session for later ones, so it gets none.
  const result = await client.exec({
    query: `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(', ')}) FORMAT ${format}`,
    values: Readable.from([body]),
    abort_signal: AbortSignal.timeout(SERVER_INSERT_DEADLINE_MS),
    ...(options.deduplicationToken ? { clickhouse_settings: { insert_deduplication_token: options.deduplicationToken } } : {}),
  })
  result.stream.resume()
  await finished(result.stream)
}
