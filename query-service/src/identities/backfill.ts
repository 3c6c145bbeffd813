/**
 * One-off copy of ledger rows that predate `nhi_identity_activity`
 * (migration 0010) into it. The materialized view fills the table from the
 * moment it exists; a deployment upgraded with a ledger already full needs
 * its history copied once. Safe to run at any time and more than once (a
 * row copied twice, or copied and also written by the view, has the same
 * key and counts once under FINAL); recorded in `nhi_backfills` so start-up
 * does it only once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { toCount } from '../storage/client.js'

/** The name of this job in `nhi_backfills`. */
export const IDENTITY_ACTIVITY_BACKFILL = '0010_identity_activity'

const COLUMNS = 'nhi_id, activity_type, event_time, trace_id, span_id, activity_name, status, nhi_type, owner, business_unit'

/** Copies the ledger's identified events that predate migration 0010 into nhi_identity_activity unless done before; returns the rows copied, or null when already done. */
export async function backfillIdentityActivity(client: ClickHouseClient): Promise<number | null> {
  const done = await client.query({ query: 'SELECT count() AS n FROM nhi_backfills FINAL WHERE name = {name:String}', format: 'JSONEachRow', query_params: { name: IDENTITY_ACTIVITY_BACKFILL } })
  const [row] = await done.json<{ n: string }>()
  if (toCount(row?.n ?? 0) > 0) return null
  // Rows ingested once the migration was recorded were copied by the view;
  // only older ones need copying (a few around the switch may be copied twice, harmlessly).
  const applied = await client.query({ query: 'SELECT count() AS n, min(applied_at) AS at FROM nhi_schema_migrations WHERE version = 10', format: 'JSONEachRow' })
  const [migration] = await applied.json<{ n: string; at: string }>()
  if (toCount(migration?.n ?? 0) === 0) throw new Error('migration 0010 (nhi_identity_activity) is not applied; run the migrations first')
  const since = { applied_at: migration!.at.replace('T', ' ').replace('Z', '') }
  const counted = await client.query({
    query: "SELECT count() AS n FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {applied_at:DateTime64(3)}",
    format: 'JSONEachRow',
    query_params: since,
  })
  const rows = toCount((await counted.json<{ n: string }>())[0]?.n ?? 0)
  if (rows > 0) {
    await client.command({
      query: `INSERT INTO nhi_identity_activity (${COLUMNS}) SELECT ${COLUMNS} FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {applied_at:DateTime64(3)}`,
      query_params: since,
      clickhouse_settings: { wait_end_of_query: 1 },
    })
  }
  await client.insert({ table: 'nhi_backfills', values: [{ name: IDENTITY_ACTIVITY_BACKFILL, rows, done_at: new Date().toISOString().replace('T', ' ').replace('Z', '') }], format: 'JSONEachRow' })
  return rows
}
