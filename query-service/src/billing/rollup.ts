/**
 * The hourly usage rollup job. Each run finds the hours whose ledger rows
 * changed since the previous run (new, late or duplicate spans: anything
 * ingested after the previous watermark minus a grace period) among closed
 * hours, recomputes those hours from `nhi_activity FINAL` and records the
 * new watermark. Recomputing is idempotent, so overlapping or repeated runs
 * are harmless; the grace period covers inserts that were still in flight
 * when the previous run read the ledger.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'

/** Ingest that was in flight during a run may carry an earlier ingested_at than the run's watermark. */
export const ROLLUP_GRACE_SECONDS = 120
/** Hours recomputed per INSERT. */
const HOURS_PER_INSERT = 168

const watermarkRow = z.object({ watermark: z.string(), now: z.string() })
const hourRow = z.object({ hour: z.string() })

/** The latest watermark, or null before the first run. */
export async function lastWatermark(client: ClickHouseClient): Promise<string | null> {
  const result = await client.query({ query: 'SELECT toString(max(watermark)) AS watermark, count() AS runs FROM nhi_usage_rollup_runs', format: 'JSONEachRow' })
  const [row] = await result.json<{ watermark: string; runs: string }>()
  return row && Number(row.runs) > 0 ? row.watermark : null
}

/** Runs the rollup once; returns how many hours were recomputed. */
export async function runRollup(client: ClickHouseClient, graceSeconds = ROLLUP_GRACE_SECONDS): Promise<{ hoursRecomputed: number; watermark: string }> {
  const previous = await lastWatermark(client)
  // The server's clock decides both the watermark and which hours are closed.
  const [clock] = await (
    await client.query({ query: 'SELECT toString(now64(3)) AS watermark, toString(toStartOfHour(now())) AS now', format: 'JSONEachRow' })
  ).json<Record<string, unknown>>()
  const { watermark, now } = watermarkRow.parse(clock)
  const dirty = await client.query({
    query: `
      SELECT DISTINCT toString(toStartOfHour(event_time)) AS hour
      FROM nhi_activity
      WHERE ingested_at > {since:DateTime64(3)} - toIntervalSecond({grace:UInt32})
        AND event_time < {closed_before:DateTime}
      ORDER BY 1`,
    format: 'JSONEachRow',
    query_params: { since: previous ?? '1970-01-01 00:00:00.000', closed_before: now, grace: graceSeconds },
  })
  const hours = (await dirty.json<Record<string, unknown>>()).map((r) => hourRow.parse(r).hour)
  for (let i = 0; i < hours.length; i += HOURS_PER_INSERT) {
    const chunk = hours.slice(i, i + HOURS_PER_INSERT)
    await client.command({
      query: `
        INSERT INTO nhi_usage_hourly (hour, nhi_id, business_unit, service, activity_type, activity_name, status, events, computed_at)
        SELECT toStartOfHour(event_time) AS hour, nhi_id, business_unit, service, activity_type, activity_name, status, count(), now64(3)
        FROM nhi_activity FINAL
        WHERE toStartOfHour(event_time) IN {hours:Array(DateTime)}
        GROUP BY hour, nhi_id, business_unit, service, activity_type, activity_name, status`,
      query_params: { hours: chunk },
    })
    await client.insert({ table: 'nhi_usage_rolled_hours', values: chunk.map((hour) => ({ hour, rolled_at: watermark })), format: 'JSONEachRow' })
  }
  await client.insert({ table: 'nhi_usage_rollup_runs', values: [{ run_at: watermark, watermark, hours_recomputed: hours.length }], format: 'JSONEachRow' })
  return { hoursRecomputed: hours.length, watermark }
}

/**
 * Runs the rollup every `intervalMs` until stopped; a failed run is reported
 * and retried at the next tick (billing stays exact meanwhile: it reads
 * un-rolled hours from the ledger).
 */
export function scheduleRollup(client: ClickHouseClient, intervalMs: number, onError: (error: unknown) => void): { stop(): Promise<void> } {
  let running: Promise<unknown> | undefined
  let stopped = false
  const tick = () => {
    if (running || stopped) return
    running = runRollup(client)
      .catch(onError)
      .finally(() => {
        running = undefined
      })
  }
  const timer = setInterval(tick, intervalMs)
  timer.unref()
  setTimeout(tick, 1_000).unref()
  return {
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
