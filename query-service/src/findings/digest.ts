/**
 * One-off fill of the findings digest (migration 0020; its tables are
 * nhi_identity_hours and nhi_identity_days since 0030 renamed them) with
 * ledger rows that predate it. The materialized views fill the digest from
 * the moment it exists; a deployment upgraded with a ledger already full
 * needs its history added once. The digest's counts are upper bounds by
 * design, so a row counted both by a view and by this job (around the
 * switch) is harmless; storage/backfill.ts runs it once. It writes the
 * tables under their current names, so it runs after every migration has
 * been applied (service.ts), never between two.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { ROWS_TO_BACKFILL, runBackfillOnce } from '../storage/backfill.js'

/**
 * The hourly view's SELECT (nhi_identity_hours_mv as 0030_derived_table_names.sql
 * defines it, 0023_findings_five_minutes.sql's) over the older rows; without `counts`, zero counts and the
 * rows' own times, which change nothing but the five-minute slots.
 */
function hourlyDigestInsert(counts: boolean): string {
  return `INSERT INTO nhi_identity_hours (nhi_id, activity_type, hour, business_unit, delivered, failed, first_time, last_time, last_ok_time, five_minutes)
     SELECT nhi_id, activity_type, toStartOfHour(event_time, 'UTC') AS hour, business_unit, ${counts ? "count(), countIf(status = 'error')" : '0, 0'},
       min(toDateTime64(event_time, 3, 'UTC')), max(toDateTime64(event_time, 3, 'UTC')), maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok'),
       sumMap([toUInt8(intDiv(toMinute(event_time, 'UTC'), 5))], [toUInt64(1)])
     FROM nhi_activity WHERE ${ROWS_TO_BACKFILL}
     GROUP BY nhi_id, activity_type, hour, business_unit`
}

/** The daily view's SELECT (nhi_identity_days_mv in 0030_derived_table_names.sql, 0020_findings_digest.sql's) over the older rows. */
const DAILY_DIGEST_INSERT = `INSERT INTO nhi_identity_days (nhi_id, day, business_unit, owner, credentials)
     SELECT nhi_id, toDate(event_time, 'UTC') AS day, business_unit, max(owner), groupUniqArrayIf(credential_id, credential_id != '')
     FROM nhi_activity WHERE ${ROWS_TO_BACKFILL}
     GROUP BY nhi_id, day, business_unit`

/**
 * Adds the ledger's identified events ingested before migration 0020 (or
 * before `before`, for tests) to the findings digest, and their five-minute
 * slots for events ingested before migration 0023, unless done before;
 * returns the rows read, or null when both were already done.
 */
export async function backfillFindingsDigest(client: ClickHouseClient, options: { before?: Date } = {}): Promise<number | null> {
  const digest = await runBackfillOnce(client, { name: '0020_findings_digest', migration: 20, before: options.before, statements: [hourlyDigestInsert(true), DAILY_DIGEST_INSERT] })
  // Rows the 0020 view counted but 0023's did not slot.
  const slots = await runBackfillOnce(client, { name: '0023_findings_five_minutes', migration: 23, before: options.before, after: digest?.before, statements: [hourlyDigestInsert(false)] })
  if (digest === null && slots === null) return null
  return (digest?.rows ?? 0) + (slots?.rows ?? 0)
}
