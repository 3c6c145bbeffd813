/**
 * One-off fill of the findings digest (migration 0020) with ledger rows
 * that predate it. The materialized views fill the digest from the moment
 * it exists; a deployment upgraded with a ledger already full needs its
 * history added once. The digest's counts are upper bounds by design, so a
 * row counted both by a view and by this job (around the switch) is
 * harmless; recorded in `nhi_backfills` so start-up does it only once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { toCount } from '../storage/client.js'

/** The name of this job in `nhi_backfills`. */
export const FINDINGS_DIGEST_BACKFILL = '0020_findings_digest'
const MIGRATION_VERSION = 20

/**
 * Adds the ledger's identified events ingested before migration 0020 (or
 * before `before`, for tests) to the findings digest unless done before;
 * returns the rows read, or null when already done.
 */
export async function backfillFindingsDigest(client: ClickHouseClient, options: { before?: Date } = {}): Promise<number | null> {
  const done = await client.query({ query: 'SELECT count() AS n FROM nhi_backfills FINAL WHERE name = {name:String}', format: 'JSONEachRow', query_params: { name: FINDINGS_DIGEST_BACKFILL } })
  if (toCount((await done.json<{ n: string }>())[0]?.n ?? 0) > 0) return null
  let before = options.before?.toISOString()
  if (!before) {
    const applied = await client.query({ query: 'SELECT count() AS n, min(applied_at) AS at FROM nhi_schema_migrations WHERE version = {v:UInt32}', format: 'JSONEachRow', query_params: { v: MIGRATION_VERSION } })
    const [migration] = await applied.json<{ n: string; at: string }>()
    if (toCount(migration?.n ?? 0) === 0) throw new Error('migration 0020 (findings digest) is not applied; run the migrations first')
    before = migration!.at
  }
  const params = { before: before.replace('T', ' ').replace('Z', '') }
  const counted = await client.query({ query: "SELECT count() AS n FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {before:DateTime64(3)}", format: 'JSONEachRow', query_params: params })
  const rows = toCount((await counted.json<{ n: string }>())[0]?.n ?? 0)
  if (rows > 0) {
    // The same SELECTs as the views (0020_findings_digest.sql), over the older rows.
    await client.command({
      query: `
        INSERT INTO nhi_findings_hourly (nhi_id, activity_type, hour, business_unit, delivered, failed, first_time, last_time, last_ok_time)
        SELECT nhi_id, activity_type, toStartOfHour(event_time, 'UTC') AS hour, business_unit, count(), countIf(status = 'error'),
          min(toDateTime64(event_time, 3, 'UTC')), max(toDateTime64(event_time, 3, 'UTC')), maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok')
        FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {before:DateTime64(3)}
        GROUP BY nhi_id, activity_type, hour, business_unit`,
      query_params: params,
      clickhouse_settings: { wait_end_of_query: 1 },
    })
    await client.command({
      query: `
        INSERT INTO nhi_findings_daily (nhi_id, day, business_unit, owner, credentials)
        SELECT nhi_id, toDate(event_time, 'UTC') AS day, business_unit, max(owner), groupUniqArrayIf(credential_id, credential_id != '')
        FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {before:DateTime64(3)}
        GROUP BY nhi_id, day, business_unit`,
      query_params: params,
      clickhouse_settings: { wait_end_of_query: 1 },
    })
  }
  await client.insert({ table: 'nhi_backfills', values: [{ name: FINDINGS_DIGEST_BACKFILL, rows, done_at: new Date().toISOString().replace('T', ' ').replace('Z', '') }], format: 'JSONEachRow' })
  return rows
}
