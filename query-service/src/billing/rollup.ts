/**
 * The usage rollup job. Each run finds the closed hours whose ledger rows
 * changed since the previous run (new, late or duplicate spans: anything
 * ingested after the previous watermark minus a grace period), rebuilds
 * those hours from `nhi_activity FINAL`, then the closed days and months
 * that contain them from the level below, and records the new watermark.
 * Rebuilding is idempotent, so overlapping or repeated runs are harmless;
 * the grace period covers inserts still in flight when a run read the ledger.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'

/** Ingest that was in flight during a run may carry an earlier ingested_at than the run's watermark. */
export const ROLLUP_GRACE_SECONDS = 120
/** Rollup levels, finest first. */
export const ROLLUP_LEVELS = ['hour', 'day', 'month'] as const
/** One level. */
export type RollupLevel = (typeof ROLLUP_LEVELS)[number]
/** Periods rebuilt per INSERT. */
const PERIODS_PER_INSERT = 168

const KEY_COLUMNS = 'nhi_id, business_unit, service, activity_type, activity_name, status'
const clockRow = z.object({ watermark: z.string(), closed_hour: z.string(), closed_day: z.string(), closed_month: z.string() })
const periodRow = z.object({ period_text: z.string() })

/** The latest watermark ('YYYY-MM-DD hh:mm:ss.mmm'), or null before the first run. */
export async function lastWatermark(client: ClickHouseClient): Promise<string | null> {
  const result = await client.query({ query: 'SELECT toString(max(watermark)) AS watermark, count() AS runs FROM nhi_usage_rollup_runs', format: 'JSONEachRow' })
  const [row] = await result.json<{ watermark: string; runs: string }>()
  return row && Number(row.runs) > 0 ? row.watermark : null
}

async function periods(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<string[]> {
  const result = await client.query({ query, format: 'JSONEachRow', query_params: params })
  return (await result.json<Record<string, unknown>>()).map((r) => periodRow.parse(r).period_text)
}

/** Rebuilds the given periods of one level and marks them rolled at `watermark`. */
async function rebuild(client: ClickHouseClient, level: RollupLevel, list: string[], watermark: string): Promise<void> {
  for (let i = 0; i < list.length; i += PERIODS_PER_INSERT) {
    const chunk = list.slice(i, i + PERIODS_PER_INSERT)
    const source =
      level === 'hour'
        ? `SELECT toStartOfHour(event_time) AS p, ${KEY_COLUMNS}, count() AS n FROM nhi_activity FINAL
           WHERE toStartOfHour(event_time) IN {periods:Array(DateTime)} GROUP BY p, ${KEY_COLUMNS}`
        : `SELECT ${level === 'day' ? 'toStartOfDay(period)' : 'toStartOfMonth(period)'} AS p, ${KEY_COLUMNS}, sum(events) AS n
           FROM nhi_usage_rollup FINAL
           WHERE level = {below:String} AND ${level === 'day' ? 'toStartOfDay(period)' : 'toStartOfMonth(period)'} IN {periods:Array(DateTime)}
           GROUP BY p, ${KEY_COLUMNS}`
    await client.command({
      query: `INSERT INTO nhi_usage_rollup (level, period, ${KEY_COLUMNS}, events, computed_at)
              SELECT {level:String}, p, ${KEY_COLUMNS}, n, now64(3) FROM (${source})`,
      query_params: { level, periods: chunk, below: level === 'day' ? 'hour' : 'day' },
      clickhouse_settings: { do_not_merge_across_partitions_select_final: 1 },
    })
    await client.insert({ table: 'nhi_usage_rolled', values: chunk.map((period) => ({ level, period, rolled_at: watermark })), format: 'JSONEachRow' })
  }
}

/** Closed periods of `level` that contain changed periods below, or whose level below is rolled but they are not. */
async function periodsToRebuild(client: ClickHouseClient, level: 'day' | 'month', changed: string[], closedBefore: string): Promise<string[]> {
  const truncate = level === 'day' ? 'toStartOfDay(period)' : 'toDateTime(toStartOfMonth(period))'
  const pending = await periods(
    client,
    `SELECT DISTINCT toString(${truncate}) AS period_text FROM nhi_usage_rolled FINAL
     WHERE level = {below:String} AND ${truncate} < {closed:DateTime}
       AND ${truncate} NOT IN (SELECT period FROM nhi_usage_rolled FINAL WHERE level = {level:String})`,
    { below: level === 'day' ? 'hour' : 'day', level, closed: closedBefore },
  )
  return [...new Set([...changed, ...pending])].filter((p) => p < closedBefore).sort()
}

/** Runs the rollup once; returns how many hours were rebuilt and the new watermark. */
export async function runRollup(client: ClickHouseClient, graceSeconds = ROLLUP_GRACE_SECONDS): Promise<{ hoursRecomputed: number; watermark: string }> {
  const previous = await lastWatermark(client)
  // The server's clock decides the watermark and which periods are closed.
  const [clock] = await (
    await client.query({
      query: `SELECT toString(now64(3)) AS watermark, toString(toStartOfHour(now())) AS closed_hour,
                     toString(toDateTime(toStartOfDay(now()))) AS closed_day, toString(toDateTime(toStartOfMonth(now()))) AS closed_month`,
      format: 'JSONEachRow',
    })
  ).json<Record<string, unknown>>()
  const { watermark, closed_hour, closed_day, closed_month } = clockRow.parse(clock)
  const hours = await periods(
    client,
    `SELECT DISTINCT toString(toStartOfHour(event_time)) AS period_text FROM nhi_activity
     WHERE ingested_at > {since:DateTime64(3)} - toIntervalSecond({grace:UInt32}) AND event_time < {closed:DateTime}
     ORDER BY period_text`,
    { since: previous ?? '1970-01-01 00:00:00.000', grace: graceSeconds, closed: closed_hour },
  )
  await rebuild(client, 'hour', hours, watermark)
  // A day or month is rolled up only once it is over, so its row never
  // misses an hour still open: those containing rebuilt hours, and those that
  // have ended since their hours were rolled up.
  const days = await periodsToRebuild(client, 'day', hours.map((h) => `${h.slice(0, 10)} 00:00:00`), closed_day)
  await rebuild(client, 'day', days, watermark)
  const months = await periodsToRebuild(client, 'month', days.map((d) => `${d.slice(0, 7)}-01 00:00:00`), closed_month)
  await rebuild(client, 'month', months, watermark)
  await client.insert({ table: 'nhi_usage_rollup_runs', values: [{ run_at: watermark, watermark, hours_recomputed: hours.length }], format: 'JSONEachRow' })
  return { hoursRecomputed: hours.length, watermark }
}

/**
 * Runs the rollup every `intervalMs` until stopped; a failed run is reported
 * and retried at the next tick (billing stays exact meanwhile: it reads
 * periods the rollup does not hold from the ledger).
 */
export function scheduleRollup(
  client: ClickHouseClient,
  intervalMs: number,
  onError: (error: unknown, failedRuns: number) => void,
  options: { reportEveryMs?: number } = {},
): { stop(): Promise<void> } {
  // A failure that lasts (a full disk, storage away) is reported when it
  // starts and then at most once per reportEveryMs, with the count of runs
  // that failed, not once per run.
  const reportEvery = Math.max(1, Math.round((options.reportEveryMs ?? 600_000) / intervalMs))
  let failedRuns = 0
  let running: Promise<unknown> | undefined
  let stopped = false
  const tick = () => {
    if (running || stopped) return
    running = runRollup(client)
      .then(() => {
        failedRuns = 0
      })
      .catch((error: unknown) => {
        failedRuns++
        if (failedRuns % reportEvery === 1 || reportEvery === 1) onError(error, failedRuns)
      })
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
