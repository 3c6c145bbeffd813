/**
 * One-off backfills. A migration's materialized views fill their tables
 * from the moment they exist; a deployment upgraded with a ledger already
 * full needs the older ledger rows added once. The views' SELECTs stay in
 * the shipped migrations (never edited), so each backfill states its own
 * INSERT … SELECT over those older rows; this runs it once per name,
 * recorded in `nhi_backfills` (migration 0010), so start-up does it only once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { count64, readFirst } from './read.js'

/**
 * The ledger rows a backfill covers, for its statements' WHERE: identified
 * events ingested in [after, before), the bounds bound by the runner.
 */
export const ROWS_TO_BACKFILL = "nhi_id != '' AND ingested_at >= {after:DateTime64(3)} AND ingested_at < {before:DateTime64(3)}"

/** One backfill: what it is called, which migration's views took over, and what it runs. */
export interface Backfill {
  /** Its name in nhi_backfills. */
  name: string
  /** The migration whose views fill the tables from the moment it was applied; older rows are backfilled. */
  migration: number
  /** INSERT … SELECT statements over nhi_activity WHERE {@link ROWS_TO_BACKFILL}. */
  statements: string[]
  /** Instead of the migration's time: rows ingested before this (tests). */
  before?: Date
  /** Rows ingested before this are skipped (another backfill covered them); as ClickHouse or ISO text. */
  after?: string
}

const countRow = z.object({ n: count64 })
const appliedRow = z.object({ n: count64, at: z.string() })

/** Runs a backfill unless done before: the ledger rows it covered and its upper bound, or null when done before. */
export async function runBackfillOnce(client: ClickHouseClient, backfill: Backfill): Promise<{ rows: number; before: string } | null> {
  const done = await readFirst(client, { query: 'SELECT count() AS n FROM nhi_backfills FINAL WHERE name = {name:String}', params: { name: backfill.name }, row: countRow })
  if ((done?.n ?? 0) > 0) return null
  // Rows ingested once the migration was recorded were added by its views;
  // only older ones need adding (a few around the switch may be added twice, which each backfill's tables allow).
  let until = backfill.before?.toISOString()
  if (!until) {
    const migration = await readFirst(client, {
      query: 'SELECT count() AS n, min(applied_at) AS at FROM nhi_schema_migrations WHERE version = {v:UInt32}',
      params: { v: backfill.migration },
      row: appliedRow,
    })
    if ((migration?.n ?? 0) === 0) throw new Error(`migration ${String(backfill.migration).padStart(4, '0')} is not applied; run the migrations first`)
    until = migration!.at
  }
  const params = { before: until.replace('T', ' ').replace('Z', ''), after: (backfill.after ?? '1970-01-01 00:00:00.000').replace('T', ' ').replace('Z', '') }
  const counted = await readFirst(client, { query: `SELECT count() AS n FROM nhi_activity WHERE ${ROWS_TO_BACKFILL}`, params, row: countRow })
  const rows = counted?.n ?? 0
  if (rows > 0) {
    for (const query of backfill.statements) await client.command({ query, query_params: params, clickhouse_settings: { wait_end_of_query: 1 } })
  }
  await client.insert({ table: 'nhi_backfills', values: [{ name: backfill.name, rows, done_at: new Date().toISOString().replace('T', ' ').replace('Z', '') }], format: 'JSONEachRow' })
  return { rows, before: params.before }
}
