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

/** The names of the jobs in `nhi_backfills`. */
export const FINDINGS_DIGEST_BACKFILL = '0020_findings_digest'
export const FIVE_MINUTE_BACKFILL = '0023_findings_five_minutes'

/**
 * Adds the ledger's identified events ingested before migration 0020 (or
 * before `before`, for tests) to the findings digest, and their five-minute
 * slots for events ingested before migration 0023, unless done before;
 * returns the rows read, or null when both were already done.
 */
export async function backfillFindingsDigest(client: ClickHouseClient, options: { before?: Date } = {}): Promise<number | null> {
  const digest = await backfillOnce(client, FINDINGS_DIGEST_BACKFILL, 20, options.before, [
    // The same SELECTs as the views (0020_findings_digest.sql, 0023_findings_five_minutes.sql), over the older rows.
    `INSERT INTO nhi_findings_hourly (nhi_id, activity_type, hour, business_unit, delivered, failed, first_time, last_time, last_ok_time, five_minutes)
     SELECT nhi_id, activity_type, toStartOfHour(event_time, 'UTC') AS hour, business_unit, count(), countIf(status = 'error'),
       min(toDateTime64(event_time, 3, 'UTC')), max(toDateTime64(event_time, 3, 'UTC')), maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok'),
       sumMap([toUInt8(intDiv(toMinute(event_time, 'UTC'), 5))], [toUInt64(1)])
     FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {before:DateTime64(3)}
     GROUP BY nhi_id, activity_type, hour, business_unit`,
    `INSERT INTO nhi_findings_daily (nhi_id, day, business_unit, owner, credentials)
     SELECT nhi_id, toDate(event_time, 'UTC') AS day, business_unit, max(owner), groupUniqArrayIf(credential_id, credential_id != '')
     FROM nhi_activity WHERE nhi_id != '' AND ingested_at < {before:DateTime64(3)}
     GROUP BY nhi_id, day, business_unit`,
  ])
  // Rows the 0020 view counted but 0023's did not slot: zero counts and their own times, which change nothing but the slots.
  const slots = await backfillOnce(client, FIVE_MINUTE_BACKFILL, 23, options.before, [
    `INSERT INTO nhi_findings_hourly (nhi_id, activity_type, hour, business_unit, delivered, failed, first_time, last_time, last_ok_time, five_minutes)
     SELECT nhi_id, activity_type, toStartOfHour(event_time, 'UTC') AS hour, business_unit, 0, 0,
       min(toDateTime64(event_time, 3, 'UTC')), max(toDateTime64(event_time, 3, 'UTC')), maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok'),
       sumMap([toUInt8(intDiv(toMinute(event_time, 'UTC'), 5))], [toUInt64(1)])
     FROM nhi_activity WHERE nhi_id != '' AND ingested_at >= {after:DateTime64(3)} AND ingested_at < {before:DateTime64(3)}
     GROUP BY nhi_id, activity_type, hour, business_unit`,
  ], digest?.before)
  if (digest === null && slots === null) return null
  return (digest?.rows ?? 0) + (slots?.rows ?? 0)
}

/**
 * Runs `statements` over the ledger rows ingested before migration
 * `version` was applied (or `before`), once, recorded in nhi_backfills as
 * `name`. `after`: rows ingested before it are skipped (another job
 * covered them). Null when done before.
 */
async function backfillOnce(client: ClickHouseClient, name: string, version: number, before: Date | undefined, statements: string[], after?: string): Promise<{ rows: number; before: string } | null> {
  const done = await client.query({ query: 'SELECT count() AS n FROM nhi_backfills FINAL WHERE name = {name:String}', format: 'JSONEachRow', query_params: { name } })
  if (toCount((await done.json<{ n: string }>())[0]?.n ?? 0) > 0) return null
  let until = before?.toISOString()
  if (!until) {
    const applied = await client.query({ query: 'SELECT count() AS n, min(applied_at) AS at FROM nhi_schema_migrations WHERE version = {v:UInt32}', format: 'JSONEachRow', query_params: { v: version } })
    const [migration] = await applied.json<{ n: string; at: string }>()
    if (toCount(migration?.n ?? 0) === 0) throw new Error(`migration ${String(version).padStart(4, '0')} is not applied; run the migrations first`)
    until = migration!.at
  }
  const params = { before: until.replace('T', ' ').replace('Z', ''), after: (after ?? '1970-01-01 00:00:00.000').replace('T', ' ').replace('Z', '') }
  const counted = await client.query({
    query: "SELECT count() AS n FROM nhi_activity WHERE nhi_id != '' AND ingested_at >= {after:DateTime64(3)} AND ingested_at < {before:DateTime64(3)}",
    format: 'JSONEachRow',
    query_params: params,
  })
  const rows = toCount((await counted.json<{ n: string }>())[0]?.n ?? 0)
  if (rows > 0) {
    for (const query of statements) await client.command({ query, query_params: params, clickhouse_settings: { wait_end_of_query: 1 } })
  }
  await client.insert({ table: 'nhi_backfills', values: [{ name, rows, done_at: new Date().toISOString().replace('T', ' ').replace('Z', '') }], format: 'JSONEachRow' })
  return { rows, before: params.before }
}
