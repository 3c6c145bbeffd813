/**
 * The usage summary job (migrations 0024, 0026, 0029). Each run finds the periods whose
 * ledger rows changed since the previous run of the same rate cards (new,
 * late or duplicate spans: anything ingested after that run's watermark
 * minus a grace period, a read of recent data only, through the minmax
 * index on `ingested_at`), and rebuilds them exactly:
 * - closed hours of the last two days, and closed days, from
 *   `nhi_activity FINAL`, each event matched to its card and meter as
 *   billing matches it;
 * - closed months from their days.
 * Days and months that have closed since the previous run, or were never
 * summarised for these cards, are rebuilt too. Rebuilding is idempotent, so
 * overlapping runs (several query services on one ClickHouse) are harmless:
 * two runs that rebuild the same period write the same rows, and the newer
 * replaces the older. The grace period covers inserts still in flight when
 * a run read the ledger.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { RateCard } from '../policy/index.js'
import { count64, readFirst, readOne, readRows, readSettings } from '../storage/read.js'
import { meterMatchSql, meterSlotsSql, valueAggregatesSql } from './meters.js'
import { UNOBSERVED, type RunObserver } from '../metrics/instruments.js'

/** Ingest that was in flight during a run may carry an earlier ingested_at than the run's watermark. */
export const ROLLUP_GRACE_SECONDS = 120
/** Summary levels, finest first. */
export const ROLLUP_LEVELS = ['hour', 'day', 'month'] as const
/** One level. */
export type RollupLevel = (typeof ROLLUP_LEVELS)[number]
/** Hours are summarised (and read by billing) only this far back; older periods come from days. */
export const HOUR_LEVEL_DAYS = 2
/** Periods rebuilt per INSERT. */
const PERIODS_PER_INSERT = 48

const KEY_COLUMNS = 'nhi_id, business_unit, service, card_idx'

const clockRow = z.object({ watermark: z.string(), closed_hour: z.string(), closed_day: z.string(), closed_month: z.string(), hours_from: z.string() })
const periodRow = z.object({ period_text: z.string() })
const runsRow = z.object({ watermark: z.string(), runs: count64 })
const changedRow = z.object({ period_text: z.string(), unsettled: z.union([z.number(), z.boolean()]).transform((v) => v === true || v === 1) })

/**
 * The key of a list of rate cards for the summary: what decides which card
 * and meter an event matches (versions, start times, meters' activity type,
 * name glob and status, in order), not prices or currency. Rows summarised
 * under one key are valid for any policy with the same key.
 */
export function policyKey(cards: readonly RateCard[]): string {
  // What a meter measures is in the key only when it is not a plain count, so count-only cards keep the key (and
  // the summary) they had before meters could sum values.
  const shape = cards.map((c) => [
    c.version,
    c.effective_from.ms,
    c.meters.map((m) => [m.name, m.activity_type, m.activity_name, m.status, ...(m.aggregation === 'count' ? [] : [m.aggregation, m.value ?? ''])]),
  ])
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16)
}

/** The latest watermark of a policy key ('YYYY-MM-DD hh:mm:ss.mmm'), or null before its first run. */
export async function lastWatermark(client: ClickHouseClient, key: string): Promise<string | null> {
  const row = await readFirst(client, {
    query: 'SELECT toString(max(watermark)) AS watermark, count() AS runs FROM nhi_usage_summary_runs WHERE policy_key = {key:String}',
    params: { key },
    row: runsRow,
  })
  return row && row.runs > 0 ? row.watermark : null
}

async function periods(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<string[]> {
  return (await readRows(client, { query, params, row: periodRow })).map((r) => r.period_text)
}

/** Rebuilds the given periods of one level for `cards` and marks them summarised at `watermark`. */
async function rebuild(client: ClickHouseClient, level: RollupLevel, list: string[], cards: readonly RateCard[], key: string, watermark: string): Promise<void> {
  const match = meterMatchSql(cards)
  const values = valueAggregatesSql(cards)
  const slots = meterSlotsSql(cards)
  for (let i = 0; i < list.length; i += PERIODS_PER_INSERT) {
    const chunk = list.slice(i, i + PERIODS_PER_INSERT)
    const truncate = level === 'hour' ? 'toStartOfHour(event_time)' : 'toStartOfDay(event_time)'
    // Events are summed per activity and card first, then matched to meters (the match runs on few rows), then
    // gathered into one set of per-meter arrays per identity, period and card.
    const source =
      level === 'month'
        ? `SELECT toStartOfMonth(period) AS p, ${KEY_COLUMNS}, sumForEach(events) AS m, sumForEach(sums) AS ms, sumForEach(missing) AS mm, sum(spans) AS n
           FROM nhi_usage_summary FINAL
           WHERE level = 'day' AND policy_key = {key:String} AND toDateTime(toStartOfMonth(period)) IN {periods:Array(DateTime)}
           GROUP BY p, ${KEY_COLUMNS}`
        : `SELECT p, ${KEY_COLUMNS}, sumForEach(${slots.events}) AS m, sumForEach(${slots.sums}) AS ms, sumForEach(${slots.missing}) AS mm, sum(c) AS n
           FROM (
             SELECT p, ${KEY_COLUMNS}, ${match.matched} AS matched, c, s, miss
             FROM (
               SELECT ${truncate} AS p, nhi_id, business_unit, service, activity_type, activity_name, status, ${match.cardIndex} AS card_idx,
                      count() AS c, ${values.sums} AS s, ${values.missing} AS miss
               FROM nhi_activity FINAL
               WHERE ${truncate} IN {periods:Array(DateTime)}
               GROUP BY p, nhi_id, business_unit, service, activity_type, activity_name, status, card_idx))
           GROUP BY p, ${KEY_COLUMNS}`
    await client.command({
      query: `INSERT INTO nhi_usage_summary (level, policy_key, period, ${KEY_COLUMNS}, events, sums, missing, spans, computed_at)
              SELECT {level:String}, {key:String}, p, ${KEY_COLUMNS}, m, ms, mm, n, now64(3) FROM (${source})`,
      query_params: { ...match.params, ...values.params, ...slots.params, level, key, periods: chunk },
      clickhouse_settings: readSettings({ final: true }),
    })
    await client.insert({ table: 'nhi_usage_summary_periods', values: chunk.map((period) => ({ level, policy_key: key, period, summarized_at: watermark })), format: 'JSONEachRow' })
  }
}

/**
 * Closed periods of `level` in [since, closedBefore) with ledger rows (days) or summarised days (months) that this
 * key has not summarised. For days after a first run, `since` is a day or two back: each candidate day is probed
 * with a LIMIT 1 read that the ledger's primary key (start hour first) confines to that day, so the check does not
 * grow with the traffic. A first run (since the epoch) lists the ledger's days once.
 */
async function unsummarised(client: ClickHouseClient, level: 'day' | 'month', key: string, since: string, closedBefore: string): Promise<string[]> {
  const candidates = level === 'day' && since > '1970-01-01 00:00:00' ? daysBetween(since, closedBefore) : null
  // A service that was off for more than 400 days lists the ledger's days instead of probing each.
  const source =
    level === 'month'
      ? `SELECT DISTINCT toDateTime(toStartOfMonth(period)) AS p FROM nhi_usage_summary_periods FINAL
         WHERE level = 'day' AND policy_key = {key:String} AND period >= {since:DateTime} AND toDateTime(toStartOfMonth(period)) < {closed:DateTime}`
      : candidates
        ? candidates
            .map((_, i) => `SELECT {d${i}:DateTime} AS p FROM (SELECT 1 FROM nhi_activity WHERE event_time >= {d${i}:DateTime} AND event_time < {d${i}:DateTime} + toIntervalDay(1) LIMIT 1)`)
            .join(' UNION ALL ') || `SELECT toDateTime(0) AS p WHERE 0`
        : `SELECT DISTINCT toStartOfDay(event_time) AS p FROM nhi_activity WHERE event_time >= {since:DateTime} AND event_time < {closed:DateTime}`
  const dayParams = Object.fromEntries((candidates ?? []).map((d, i) => [`d${i}`, d]))
  return periods(
    client,
    `SELECT toString(p) AS period_text FROM (${source})
     WHERE p NOT IN (SELECT period FROM nhi_usage_summary_periods FINAL WHERE level = {level:String} AND policy_key = {key:String})
     ORDER BY period_text`,
    { since, closed: closedBefore, key, level, ...dayParams },
  )
}

// The day starts ('YYYY-MM-DD 00:00:00') from `since` up to (not including) `before`, or null past 400 of them.
function daysBetween(since: string, before: string): string[] | null {
  const days: string[] = []
  const d = new Date(`${since.slice(0, 10)}T00:00:00Z`)
  for (;;) {
    const text = `${d.toISOString().slice(0, 10)} 00:00:00`
    if (text >= before) return days
    if (days.length >= 400) return null
    days.push(text)
    d.setUTCDate(d.getUTCDate() + 1)
  }
}

/** Runs the summary job once for `cards`; returns how many periods were rebuilt and the new watermark. */
export async function runRollup(client: ClickHouseClient, cards: readonly RateCard[], graceSeconds = ROLLUP_GRACE_SECONDS): Promise<{ hoursRecomputed: number; periodsRebuilt: number; watermark: string }> {
  const key = policyKey(cards)
  const previous = await lastWatermark(client, key)
  // The server's clock decides the watermark and which periods are closed.
  const { watermark, closed_hour, closed_day, closed_month, hours_from } = await readOne(client, {
    query: `SELECT toString(now64(3)) AS watermark, toString(toStartOfHour(now())) AS closed_hour,
                     toString(toDateTime(toStartOfDay(now()))) AS closed_day, toString(toDateTime(toStartOfMonth(now()))) AS closed_month,
                     toString(toDateTime(toStartOfDay(now())) - toIntervalDay({days:UInt32})) AS hours_from`,
    params: { days: HOUR_LEVEL_DAYS },
    row: clockRow,
  })
  // Hours whose ledger rows changed since the previous run (all hours, for a first run of these cards), and whether
  // any of those rows is still within the grace: such an hour is rebuilt by a later run, once they have settled.
  // Billing reads it from the ledger until then anyway, so rebuilding it at every run within the grace would only
  // triple the job's work on every hour that closes under steady ingest (measured: bench/summary-cost).
  const changedHours = await readRows(client, {
    query: `SELECT toString(toStartOfHour(event_time)) AS period_text, max(ingested_at) > {watermark:DateTime64(3)} - toIntervalSecond({grace:UInt32}) AS unsettled
              FROM nhi_activity
              WHERE ingested_at > {since:DateTime64(3)} - toIntervalSecond({grace:UInt32}) AND event_time < {closed:DateTime}
              GROUP BY period_text ORDER BY period_text`,
    params: { since: previous ?? '1970-01-01 00:00:00.000', grace: graceSeconds, closed: closed_hour, watermark },
    row: changedRow,
  })
  const dayStart = (h: string) => `${h.slice(0, 10)} 00:00:00`
  const monthStart = (d: string) => `${d.slice(0, 7)}-01 00:00:00`
  const unsettledDays = new Set(changedHours.filter((h) => h.unsettled).map((h) => dayStart(h.period_text)))
  const changed = changedHours.filter((h) => !h.unsettled).map((h) => h.period_text)
  const hours = changed.filter((h) => h >= hours_from)
  await rebuild(client, 'hour', hours, cards, key, watermark)
  // Days: those holding changed hours once closed, and those closed since the previous run (or never summarised);
  // not those still receiving rows within the grace.
  const since = previous ? `${previous.slice(0, 10)} 00:00:00` : '1970-01-01 00:00:00'
  const days = [...new Set([...changed.map(dayStart).filter((d) => d < closed_day), ...(await unsummarised(client, 'day', key, previous ? dayBefore(since) : since, closed_day))])]
    .filter((d) => !unsettledDays.has(d))
    .sort()
  await rebuild(client, 'day', days, cards, key, watermark)
  // Months: as days, and none built while one of its days waits to settle (it would be built from too few days).
  const unsettledMonths = new Set([...unsettledDays].map(monthStart))
  const months = [...new Set([...days.map(monthStart).filter((m) => m < closed_month), ...(await unsummarised(client, 'month', key, previous ? monthStart(dayBefore(since)) : since, closed_month))])]
    .filter((m) => !unsettledMonths.has(m))
    .sort()
  await rebuild(client, 'month', months, cards, key, watermark)
  const periodsRebuilt = hours.length + days.length + months.length
  await client.insert({ table: 'nhi_usage_summary_runs', values: [{ run_at: watermark, policy_key: key, watermark, periods_rebuilt: periodsRebuilt }], format: 'JSONEachRow' })
  return { hoursRecomputed: hours.length, periodsRebuilt, watermark }
}

// The day before a 'YYYY-MM-DD 00:00:00' day: a day that closed just before the previous run is looked at again.
function dayBefore(day: string): string {
  const d = new Date(`${day.slice(0, 10)}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() - 1)
  return `${d.toISOString().slice(0, 10)} 00:00:00`
}

/**
 * Runs the summary job every `intervalMs` for the rate cards in force until
 * stopped; a failed run is reported and retried at the next tick (billing
 * stays exact meanwhile: it reads periods the summary does not hold from the
 * ledger).
 */
export function scheduleRollup(
  client: ClickHouseClient,
  intervalMs: number,
  cards: () => readonly RateCard[],
  onError: (error: unknown, failedRuns: number) => void,
  options: { reportEveryMs?: number; graceSeconds?: number; observeRun?: RunObserver } = {},
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
    const observe = options.observeRun ?? UNOBSERVED
    running = observe(() => runRollup(client, cards(), options.graceSeconds))
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
