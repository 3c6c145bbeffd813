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

/** Per tracked connection: the tables someone asked about, and how many writes each has seen. */
export class WriteCounter {
  readonly counts = new Map<string, number>()

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
  const wrap = <P, R>(method: (params: P) => Promise<R>, note: (params: P) => void) => {
    const original = method.bind(connection)
    return async (params: P): Promise<R> => {
      note(params)
      try {
        return await original(params)
      } finally {
        note(params)
      }
    }
  }
  // @clickhouse/client hands every method its SQL (an insert's `INSERT INTO t ... FORMAT f`).
  connection.insert = wrap(connection.insert, (p) => counter.statementRan(p.query))
  connection.exec = wrap(connection.exec, (p) => counter.statementRan(p.query))
  connection.command = wrap(connection.command, (p) => counter.statementRan(p.query))
  connection.query = wrap(connection.query, (p) => counter.statementRan(p.query))
  return counter
}

/** Ties a client to the counter of its (embedded) connection. */
export function registerWriteCounter(client: ClickHouseClient, counter: WriteCounter): void {
  counters.set(client, counter)
}

/** Counts a write made around the client (the embedded bulk-insert path). */
export function noteTableWrite(client: ClickHouseClient, table: string): void {
  counters.get(client)?.tableWritten(table)
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
