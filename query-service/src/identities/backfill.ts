/**
 * One-off copy of ledger rows that predate `nhi_identity_activity`
 * (migration 0010) into it. Safe to run at any time and more than once (a
 * row copied twice, or copied and also written by the view, has the same
 * key and counts once under FINAL); storage/backfill.ts runs it once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { ROWS_TO_BACKFILL, runBackfillOnce } from '../storage/backfill.js'

const COLUMNS = 'nhi_id, activity_type, event_time, trace_id, span_id, activity_name, status, nhi_type, owner, business_unit'

/** Copies the ledger's identified events that predate migration 0010 into nhi_identity_activity unless done before; returns the rows copied, or null when already done. */
export async function backfillIdentityActivity(client: ClickHouseClient): Promise<number | null> {
  const done = await runBackfillOnce(client, {
    name: '0010_identity_activity',
    migration: 10,
    // The view's SELECT (nhi_identity_activity_mv in 0010_identity_activity.sql) over the older rows.
    statements: [`INSERT INTO nhi_identity_activity (${COLUMNS}) SELECT ${COLUMNS} FROM nhi_activity WHERE ${ROWS_TO_BACKFILL}`],
  })
  return done?.rows ?? null
}
