/**
 * Which tables this process has written, for caches that must never serve
 * stale rows. The embedded engine holds its data directory exclusively, so
 * every write to it passes through this process; counting those writes per
 * table tells a cache exactly when what it read may have changed, without
 * asking ClickHouse (any read costs milliseconds, even of system tables).
 *
 * A ClickHouse server can be written by anyone (other replicas, a
 * Collector, an operator), so nothing is tracked there and
 * {@link tableWriteVersion} answers undefined: callers read from storage.
 */
import type { ClickHouseClient } from '@clickhouse/client'

/** The connection methods that write, as @clickhouse/client calls them. */
interface WritableConnection {
  insert(params: { query: string }): Promise<unknown>
  exec(params: { query: string }): Promise<unknown>
  command(params: { query: string }): Promise<unknown>
  query(params: { query: string }): Promise<unknown>
}

/** Statements that can change a table's rows; SELECTs that merely mention it cannot. */
const WRITING_STATEMENT = /^\s*(?:INSERT|ALTER|DELETE|UPDATE|TRUNCATE|DROP|UNDROP|OPTIMIZE|RENAME|EXCHANGE|CREATE|ATTACH|DETACH|REPLACE)\b/i
/** SQL comments, which may precede a statement. */
const COMMENTS = /--[^\n]*|\/\*[\s\S]*?\*\//g

/**
 * Whether any statement of `sql` can write: chDB runs `;`-separated
 * statements, so each is tested (a `;` inside a string literal only splits
 * more finely, which can make a read look like a write, never the reverse).
 */
function writes(sql: string): boolean {
  return sql
    .replace(COMMENTS, ' ')
    .split(';')
    .some((statement) => WRITING_STATEMENT.test(statement))
}

/** Per tracked connection: the tables someone asked about, how many writes each has seen, and the writes under way. */
export class WriteCounter {
  readonly counts = new Map<string, number>()
  /** Start times (epoch ms) of the writes under way, by a number of their own; a Map keeps them oldest first. */
  private readonly inFlight = new Map<number, number>()
  private nextWrite = 0

  /** Notes a write starting now; returns its number for {@link WriteCounter.ended}. */
  started(): number {
    const id = this.nextWrite++
    this.inFlight.set(id, Date.now())
    return id
  }

  ended(id: number): void {
    this.inFlight.delete(id)
  }

  /** When the oldest write still under way started (epoch ms), or null when none is. */
  oldestInFlight(): number | null {
    for (const started of this.inFlight.values()) return started
    return null
  }

  version(table: string): number {
    let count = this.counts.get(table)
    if (count === undefined) {
      count = 0
      this.counts.set(table, count)
    }
    return count
  }

  /** Counts a write to `table` (only tables someone asked about are counted). */
  tableWritten(table: string): void {
    const name = table.replace(/[`"]/g, '').split('.').pop()!
    const count = this.counts.get(name)
    if (count !== undefined) this.counts.set(name, count + 1)
  }

  /** Counts a statement as a write to every tracked table it names, if it can write at all. */
  statementRan(sql: unknown): void {
    if (typeof sql !== 'string' || !writes(sql)) return
    for (const table of this.counts.keys()) {
      if (new RegExp(`\\b${table}\\b`).test(sql)) this.counts.set(table, this.counts.get(table)! + 1)
    }
  }
}

const counters = new WeakMap<object, WriteCounter>()

/**
 * Wraps a connection's writing methods so every write is counted, before it
 * starts and again when it ends: a read that overlapped a write sees the
 * version move and is not kept. Call before the client is created.
 */
export function trackWrites(connection: WritableConnection): WriteCounter {
  const counter = new WriteCounter()
  const wrap = <P extends { query: string }, R>(method: (params: P) => Promise<R>) => {
    const original = method.bind(connection)
    return async (params: P): Promise<R> => {
      if (typeof params.query !== 'string' || !writes(params.query)) return original(params)
      counter.statementRan(params.query)
      const id = counter.started()
      try {
        return await original(params)
      } finally {
        counter.ended(id)
        counter.statementRan(params.query)
      }
    }
  }
  // @clickhouse/client hands every method its SQL (an insert's `INSERT INTO t ... FORMAT f`).
  connection.insert = wrap(connection.insert)
  connection.exec = wrap(connection.exec)
  connection.command = wrap(connection.command)
  connection.query = wrap(connection.query)
  return counter
}

/** Ties a client to the counter of its (embedded) connection. */
export function registerWriteCounter(client: ClickHouseClient, counter: WriteCounter): void {
  counters.set(client, counter)
}

/** Runs a write made around the client (the embedded bulk-insert path), counted and noted as under way like the rest. */
export async function writeAround<T>(client: ClickHouseClient, table: string, write: () => Promise<T>): Promise<T> {
  const counter = counters.get(client)
  counter?.tableWritten(table)
  const id = counter?.started()
  try {
    return await write()
  } finally {
    if (id !== undefined) counter!.ended(id)
    counter?.tableWritten(table)
  }
}

/**
 * A time (epoch ms) before which every row this process writes through
 * `client` is already visible to a read that starts now: now, or the start
 * of the oldest write still under way. A row's `ingested_at` (`now64()`,
 * the same clock in this process) is never earlier than its write's start,
 * so a summary built from reads that begin after this call holds every row
 * ingested before it. Undefined on a server, whose writers cannot all be
 * seen: callers allow a grace period instead.
 */
export function settledBefore(client: ClickHouseClient): number | undefined {
  const counter = counters.get(client)
  if (!counter) return undefined
  const now = Date.now()
  const oldest = counter.oldestInFlight()
  return oldest === null ? now : Math.min(now, oldest)
}

/**
 * A number that changes whenever this process writes `table` through
 * `client`, or undefined when writes cannot all be seen (a server). Rows a
 * materialized view adds to its target are not seen, nor rows an
 * asynchronous mutation (`ALTER TABLE … UPDATE/DELETE` without
 * `mutations_sync`) changes after its statement returns: ask only about
 * tables that no view writes and nothing mutates (nhi_inventory, for one:
 * it is only ever inserted into).
 */
export function tableWriteVersion(client: ClickHouseClient, table: string): number | undefined {
  return counters.get(client)?.version(table)
}

/**
 * A key for what this process has written to `tables` through `client`
 * (it moves when any of them is written), or undefined on a server.
 */
export function tablesWriteKey(client: ClickHouseClient, tables: readonly string[]): string | undefined {
  const versions = tables.map((table) => tableWriteVersion(client, table))
  return versions.includes(undefined) ? undefined : versions.join(',')
}

/**
 * A key for what this process has written to `tables` through `client`,
 * given only while no write of any table is under way: a read that starts
 * and ends under the same key saw every row those tables will hold until
 * the key changes. Undefined while a write is under way, and on a server
 * (whose writers cannot all be seen): callers read from storage.
 */
export function quietWriteKey(client: ClickHouseClient, tables: readonly string[]): string | undefined {
  const counter = counters.get(client)
  if (!counter || counter.oldestInFlight() !== null) return undefined
  return tables.map((table) => counter.version(table)).join(',')
}
