/**
 * The usage summary job (migrations 0024, 0026, 0029, 0031). Each run finds
 * the periods whose ledger rows changed since the previous run of the same
 * rate cards (new, late or duplicate spans: anything ingested since what
 * that run had settled, a read of recent data only, through the minmax index
 * on `ingested_at`), and rebuilds them exactly:
 * - closed ten-second slices of the last two hours, and per hour a running
 *   prefix (`hour_to`) of its slices, so a bill of the open hour reads a few
 *   summary rows and only the last seconds from the ledger;
 * - closed hours of the last two days, and closed days, from
 *   `nhi_activity FINAL`, each event matched to its card and meter as
 *   billing matches it; a closed hour whose slices are all summarised is
 *   instead its prefix to its end (one row per identity, not a read of the
 *   hour's spans);
 * - closed months from their days.
 * Days and months that have closed since the previous run, or were never
 * summarised for these cards, are rebuilt too. Rebuilding is idempotent, so
 * overlapping runs (several query services on one ClickHouse) are harmless:
 * two runs that rebuild the same period write rows versioned by what each
 * had settled, and the one that saw more replaces the other.
 *
 * What a run has settled: every ledger row ingested before a time it
 * records (`settled_before`). On the embedded engine every write passes
 * through this process, which knows the writes under way
 * (storage/write-tracking.ts): that time is the start of the oldest one, or
 * now. A server can be written by anyone, so there it is the run's start
 * minus a grace period that covers inserts still in flight.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { RateCard } from '../policy/index.js'
import { count64, readFirst, readOne, readRows, readSettings } from '../storage/read.js'
import { toClickHouseTime } from '../storage/time.js'
import { settledBefore } from '../storage/write-tracking.js'
import { meterMatchSql, meterSlotsSql, valueAggregatesSql } from './meters.js'
import { UNOBSERVED, type RunObserver } from '../metrics/instruments.js'

/** On a server, ingest that was in flight during a run may carry an earlier ingested_at than the run's start. */
export const ROLLUP_GRACE_SECONDS = 120
/** Aligned summary levels, finest first. */
export const ROLLUP_LEVELS = ['slice', 'hour', 'day', 'month'] as const
/** One aligned level. */
export type RollupLevel = (typeof ROLLUP_LEVELS)[number]
/** Running prefixes: of an hour (its slices so far), a day (its hours) and a month (its days), each stored at its end. */
export const PREFIX_LEVELS = ['hour_to', 'day_to', 'month_to'] as const
/** One prefix level. */
export type PrefixLevel = (typeof PREFIX_LEVELS)[number]
/** Every level the summary holds: the aligned ones, and the prefixes, whose period is the end of what they add up. */
export type SummaryLevel = RollupLevel | PrefixLevel
/** Hours are summarised (and read by billing) only this far back; older periods come from days. */
export const HOUR_LEVEL_DAYS = 2
/** Length of a slice. */
export const SLICE_SECONDS = 10
/** Slices (and hour prefixes) are summarised for the open hour and the one before it. */
export const SLICE_LEVEL_HOURS = 2
/** Periods rebuilt per INSERT. */
const PERIODS_PER_INSERT = 48

const KEY_COLUMNS = 'nhi_id, business_unit, service, card_idx'
// Start times (DateTime64(9)) are compared with DateTime64 parameters only: on the embedded engine (26.7) the ledger's
// minmax index on ingested_at made a comparison of event_time with a DateTime parameter skip granules it must read
// (0 rows for 87, seen in the demo); a DateTime64(3) parameter reads them. rollup-live.test.ts keeps the SQL here and in plan.ts to that.

const clockRow = z.object({ watermark: z.string(), now_ms: z.number(), closed_slice: z.string(), closed_hour: z.string(), closed_day: z.string(), closed_month: z.string(), hours_from: z.string(), slices_from: z.string() })
const periodRow = z.object({ period_text: z.string() })
const runsRow = z.object({ watermark: z.string(), runs: count64 })
const flag = z.union([z.number(), z.boolean()]).transform((v) => v === true || v === 1)
const changedRow = z.object({ hour_text: z.string(), slice_text: z.string(), unsettled: flag })
const markRow = z.object({ level: z.string(), period_text: z.string() })

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

/**
 * What the latest run of a policy key had settled ('YYYY-MM-DD hh:mm:ss.mmm':
 * every ledger row ingested before it), or null before its first run.
 */
export async function lastSettled(client: ClickHouseClient, key: string): Promise<string | null> {
  const row = await readFirst(client, {
    query: 'SELECT toString(max(settled_before)) AS watermark, count() AS runs FROM nhi_usage_summary_runs WHERE policy_key = {key:String}',
    params: { key },
    row: runsRow,
  })
  return row && row.runs > 0 ? row.watermark : null
}

async function periods(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<string[]> {
  return (await readRows(client, { query, params, row: periodRow })).map((r) => r.period_text)
}

const TRUNCATE: Record<'slice' | 'hour' | 'day', string> = {
  slice: `toStartOfInterval(event_time, INTERVAL ${SLICE_SECONDS} SECOND)`,
  hour: 'toStartOfHour(event_time)',
  day: 'toStartOfDay(event_time)',
}

/**
 * Rebuilds the given periods of one level for `cards` and marks them
 * summarised. Rows and marks carry `settled` as their version: of two runs
 * that rebuild a period, the one that had settled more wins.
 */
async function rebuild(client: ClickHouseClient, level: RollupLevel, list: string[], cards: readonly RateCard[], key: string, settled: string): Promise<void> {
  const match = meterMatchSql(cards)
  const values = valueAggregatesSql(cards)
  const slots = meterSlotsSql(cards)
  // Slices of an hour go in one INSERT: each INSERT filters the open hour by start time.
  const perInsert = level === 'slice' ? 3600 / SLICE_SECONDS : PERIODS_PER_INSERT
  for (let i = 0; i < list.length; i += perInsert) {
    const chunk = list.slice(i, i + perInsert)
    // Slices are read by a range of start times too: the ledger's key holds the start hour, not the second. Rows are
    // filtered before deduplication (PREWHERE): copies of a span share its start time, so they pass or fail together.
    const range =
      level === 'slice'
        ? `event_time >= {first:DateTime64(3)} AND event_time < {first:DateTime64(3)} + toIntervalSecond({span:UInt32}) AND toDateTime(${TRUNCATE.slice}) IN {periods:Array(DateTime)}`
        : level === 'month'
          ? ''
          : `${TRUNCATE[level]} IN {periods:Array(DateTime)}`
    const truncate = level === 'month' ? '' : `toDateTime(${TRUNCATE[level]})`
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
               PREWHERE ${range}
               GROUP BY p, nhi_id, business_unit, service, activity_type, activity_name, status, card_idx))
           GROUP BY p, ${KEY_COLUMNS}`
    const first = chunk.reduce((a, b) => (a < b ? a : b))
    const last = chunk.reduce((a, b) => (a > b ? a : b))
    const span = (Date.parse(`${last.replace(' ', 'T')}Z`) - Date.parse(`${first.replace(' ', 'T')}Z`)) / 1000 + SLICE_SECONDS
    await client.command({
      query: `INSERT INTO nhi_usage_summary (level, policy_key, period, ${KEY_COLUMNS}, events, sums, missing, spans, computed_at)
              SELECT {level:String}, {key:String}, p, ${KEY_COLUMNS}, m, ms, mm, n, {settled:DateTime64(3)} FROM (${source})`,
      query_params: { ...match.params, ...values.params, ...slots.params, level, key, periods: chunk, settled, first, span },
      clickhouse_settings: readSettings({ final: true }),
    })
    await client.insert({ table: 'nhi_usage_summary_periods', values: chunk.map((period) => ({ level, policy_key: key, period, summarized_at: settled })), format: 'JSONEachRow' })
  }
}

/** What each prefix adds up, and how long its parent period is. */
const PREFIX_PARTS: Record<PrefixLevel, 'slice' | 'hour' | 'day'> = { hour_to: 'slice', day_to: 'hour', month_to: 'day' }

/**
 * Builds a running prefix: the sum of the `level`'s parts (an hour's
 * slices, a day's hours, a month's days) from `start` up to `end`
 * (exclusive), stored with `end` as its period, so one row per identity
 * stands for the period so far. Given the end of a prefix still valid (no
 * part before it rebuilt since), it adds only the parts after that prefix
 * to it.
 */
async function buildPrefix(client: ClickHouseClient, level: PrefixLevel, start: string, end: string, key: string, settled: string, valid: string | null): Promise<void> {
  const part = PREFIX_PARTS[level]
  const source = valid
    ? `SELECT ${KEY_COLUMNS}, events, sums, missing, spans FROM nhi_usage_summary FINAL
       WHERE level = {level:String} AND policy_key = {key:String} AND period = {valid:DateTime}
       UNION ALL
       SELECT ${KEY_COLUMNS}, events, sums, missing, spans FROM nhi_usage_summary FINAL
       WHERE level = {part:String} AND policy_key = {key:String} AND period >= {valid:DateTime} AND period < {end:DateTime}`
    : `SELECT ${KEY_COLUMNS}, events, sums, missing, spans FROM nhi_usage_summary FINAL
       WHERE level = {part:String} AND policy_key = {key:String} AND period >= {start:DateTime} AND period < {end:DateTime}`
  await client.command({
    query: `INSERT INTO nhi_usage_summary (level, policy_key, period, ${KEY_COLUMNS}, events, sums, missing, spans, computed_at)
            SELECT {level:String}, {key:String}, {end:DateTime}, ${KEY_COLUMNS}, sumForEach(events), sumForEach(sums), sumForEach(missing), sum(spans), {settled:DateTime64(3)}
            FROM (${source})
            GROUP BY ${KEY_COLUMNS}`,
    query_params: { level, part, key, start, end, settled, valid: valid ?? start },
    clickhouse_settings: readSettings({ final: true }),
  })
  await client.insert({ table: 'nhi_usage_summary_periods', values: [{ level, policy_key: key, period: end, summarized_at: settled }], format: 'JSONEachRow' })
}

/**
 * Summarises a closed hour or day as its prefix to its end (the sum of all
 * its slices or hours, each deduplicated on its own, since copies of a span
 * share its start time), dated at its start like one read from the ledger.
 */
async function copyPrefix(client: ClickHouseClient, level: 'hour' | 'day', start: string, end: string, key: string, settled: string): Promise<void> {
  await client.command({
    query: `INSERT INTO nhi_usage_summary (level, policy_key, period, ${KEY_COLUMNS}, events, sums, missing, spans, computed_at)
            SELECT {level:String}, {key:String}, {start:DateTime}, ${KEY_COLUMNS}, events, sums, missing, spans, {settled:DateTime64(3)}
            FROM nhi_usage_summary FINAL
            WHERE level = {prefix:String} AND policy_key = {key:String} AND period = {end:DateTime}`,
    query_params: { level, prefix: `${level}_to`, key, start, end, settled },
    clickhouse_settings: readSettings({ final: true }),
  })
  await client.insert({ table: 'nhi_usage_summary_periods', values: [{ level, policy_key: key, period: start, summarized_at: settled }], format: 'JSONEachRow' })
}

/**
 * Extends the running prefix of the period [start, periodEnd) over its
 * parts summarised without a break from its start (`held`; none of
 * `waiting`, whose rows have not settled), up to `closed`: built when it
 * grows, or again when a part inside it was rebuilt in this run (`rebuilt`).
 * Returns whether it now reaches the period's end, and whether it built.
 */
async function extendPrefix(
  client: ClickHouseClient,
  level: PrefixLevel,
  period: { start: string; end: string },
  closed: string,
  parts: { held: ReadonlySet<string>; waiting: ReadonlySet<string>; rebuilt: readonly string[] },
  longest: ReadonlyMap<string, string>,
  key: string,
  settled: string,
): Promise<{ whole: boolean; built: boolean }> {
  const step = (t: string) => (level === 'hour_to' ? addSeconds(t, SLICE_SECONDS) : level === 'day_to' ? addSeconds(t, 3600) : dayAfter(t))
  let end = period.start
  while (end < period.end && end < closed && parts.held.has(end) && !parts.waiting.has(end)) end = step(end)
  const whole = end === period.end
  if (end === period.start) return { whole, built: false }
  const built = longest.get(period.start) ?? ''
  // A part rebuilt inside the longest prefix makes it stale: rebuilt whole. Else it only grows.
  const stale = built !== '' && parts.rebuilt.some((t) => t >= period.start && t < built)
  if (end > built || (end === built && stale)) {
    await buildPrefix(client, level, period.start, end, key, settled, built !== '' && !stale ? built : null)
    return { whole, built: true }
  }
  return { whole, built: false }
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
            .map((_, i) => `SELECT {d${i}:DateTime} AS p FROM (SELECT 1 FROM nhi_activity WHERE event_time >= {d${i}:DateTime64(3)} AND event_time < {d${i}:DateTime64(3)} + toIntervalDay(1) LIMIT 1)`)
            .join(' UNION ALL ') || `SELECT toDateTime(0) AS p WHERE 0`
        : `SELECT DISTINCT toStartOfDay(event_time) AS p FROM nhi_activity WHERE event_time >= {since:DateTime64(3)} AND event_time < {closed:DateTime64(3)}`
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

/** What one run did. */
export interface RollupRun {
  /** Hours rebuilt. */
  hoursRecomputed: number
  /** Of those, hours copied from their whole prefix rather than read from the ledger. */
  hoursFromPrefixes: number
  /** Days rebuilt, and of those, days copied from their whole prefix (their hours) rather than read from the ledger. */
  daysRecomputed: number
  daysFromPrefixes: number
  /** Slices rebuilt and prefixes (of hours, days and the month) built. */
  slicesRebuilt: number
  /** Hours, days and months rebuilt. */
  periodsRebuilt: number
  /** When the run started (the server's clock). */
  watermark: string
  /** Every ledger row ingested before this was in what the run read. */
  settled: string
}

/**
 * Runs the summary job once for `cards`. `graceSeconds`: how long an insert
 * may be in flight unseen; by default none on the embedded engine (it knows
 * its writes under way) and ROLLUP_GRACE_SECONDS on a server.
 */
export async function runRollup(client: ClickHouseClient, cards: readonly RateCard[], graceSeconds?: number): Promise<RollupRun> {
  const key = policyKey(cards)
  const previous = await lastSettled(client, key)
  // Taken before the clock is read and before any ledger read: rows of writes that start later are later still.
  const inFlightBound = settledBefore(client)
  // The server's clock decides the watermark and which periods are closed.
  const clock = await readOne(client, {
    query: `SELECT toString(now64(3)) AS watermark, toFloat64(toUnixTimestamp64Milli(now64(3))) AS now_ms,
                     toString(toDateTime(toStartOfInterval(now(), INTERVAL ${SLICE_SECONDS} SECOND))) AS closed_slice, toString(toStartOfHour(now())) AS closed_hour,
                     toString(toDateTime(toStartOfDay(now()))) AS closed_day, toString(toDateTime(toStartOfMonth(now()))) AS closed_month,
                     toString(toDateTime(toStartOfDay(now())) - toIntervalDay({days:UInt32})) AS hours_from,
                     toString(toStartOfHour(now()) - toIntervalHour({slice_hours:UInt32} - 1)) AS slices_from`,
    params: { days: HOUR_LEVEL_DAYS, slice_hours: SLICE_LEVEL_HOURS },
    row: clockRow,
  })
  const { watermark, closed_slice, closed_hour, closed_day, closed_month, hours_from, slices_from } = clock
  const grace = graceSeconds ?? (inFlightBound === undefined ? ROLLUP_GRACE_SECONDS : 0)
  const settled = toClickHouseTime(new Date(Math.min(inFlightBound ?? Infinity, clock.now_ms - grace * 1000))).slice(0, 23)
  // Periods whose ledger rows changed since the previous run (all, for a first run of these cards): hours, and
  // slices of the last two hours; and whether any of those rows is not yet settled: such a period is rebuilt by a
  // later run, once it has. Billing reads it from the ledger until then anyway, so rebuilding it at every run within
  // a grace would only triple the job's work on every hour that closes under steady ingest (bench/summary-cost).
  const changedRows = await readRows(client, {
    query: `SELECT toString(toStartOfHour(event_time)) AS hour_text,
                   toString(if(event_time >= {slices_from:DateTime64(3)}, toDateTime(${TRUNCATE.slice}), toDateTime(0))) AS slice_text,
                   max(ingested_at) >= {settled:DateTime64(3)} AS unsettled
              FROM nhi_activity
              WHERE ingested_at >= {since:DateTime64(3)} AND event_time < {closed:DateTime64(3)}
              GROUP BY hour_text, slice_text ORDER BY hour_text, slice_text`,
    params: { since: previous ?? '1970-01-01 00:00:00.000', settled, closed: closed_slice, slices_from },
    row: changedRow,
  })
  const dayStart = (h: string) => `${h.slice(0, 10)} 00:00:00`
  const monthStart = (d: string) => `${d.slice(0, 7)}-01 00:00:00`

  // Slices: every closed one of the window that changed and settled, or was never summarised (an empty slice is
  // summarised as such, so billing need not read the ledger for it).
  const sliceRows = changedRows.filter((r) => r.slice_text >= slices_from)
  const unsettledSlices = new Set(sliceRows.filter((r) => r.unsettled).map((r) => r.slice_text))
  const marks = await readRows(client, {
    query: `SELECT level, toString(period) AS period_text FROM nhi_usage_summary_periods FINAL
            WHERE policy_key = {key:String}
              AND ((level IN ('slice', 'hour_to') AND period >= {slices_from:DateTime})
                OR (level IN ('hour', 'day_to') AND period >= {hours_from:DateTime})
                OR (level IN ('day', 'month_to') AND period >= {month:DateTime}))`,
    params: { key, slices_from, hours_from, month: closed_month },
    row: markRow,
  })
  const marked = new Set(marks.filter((m) => m.level === 'slice').map((m) => m.period_text))
  const slices = [...new Set([...sliceRows.filter((r) => !r.unsettled).map((r) => r.slice_text), ...sliceStarts(slices_from, closed_slice).filter((t) => !marked.has(t))])]
    .filter((t) => !unsettledSlices.has(t))
    .sort()
  await rebuild(client, 'slice', slices, cards, key, settled)
  for (const t of slices) marked.add(t)
  // Prefixes: per period, its parts summarised without a break from its start (an hour's slices, a day's hours, a
  // month's days). A prefix is built when it grows or when a part inside it was rebuilt; billing uses only each
  // period's longest (a part that waits to settle inside it makes billing read that part elsewhere until it is
  // rebuilt).
  const longest: Record<PrefixLevel, Map<string, string>> = { hour_to: new Map(), day_to: new Map(), month_to: new Map() }
  for (const m of marks) {
    if (m.level !== 'hour_to' && m.level !== 'day_to' && m.level !== 'month_to') continue
    const start = prefixStart(m.level, m.period_text)
    if ((longest[m.level].get(start) ?? '') < m.period_text) longest[m.level].set(start, m.period_text)
  }
  let prefixes = 0
  // Closed hours whose prefix now reaches their end: every slice summarised, settled and added in.
  const whole = new Set<string>()
  for (let hour = slices_from; hour < closed_slice; hour = addSeconds(hour, 3600)) {
    const extended = await extendPrefix(client, 'hour_to', { start: hour, end: addSeconds(hour, 3600) }, closed_slice, { held: marked, waiting: unsettledSlices, rebuilt: slices }, longest.hour_to, key, settled)
    if (extended.whole) whole.add(hour)
    if (extended.built) prefixes++
  }

  const hourRows = changedRows.filter((r) => r.hour_text < closed_hour)
  const unsettledHours = new Set(hourRows.filter((r) => r.unsettled).map((r) => r.hour_text))
  const unsettledDays = new Set([...unsettledHours].map(dayStart))
  const changed = [...new Set(hourRows.map((r) => r.hour_text))].filter((h) => !unsettledHours.has(h))
  // Hours: those that changed, and those of the last two days closed and not yet summarised (an hour whose rows all
  // arrived while it was open changed before it closed).
  const markedHours = new Set(marks.filter((m) => m.level === 'hour').map((m) => m.period_text))
  const candidates: string[] = []
  for (let h = previous && `${previous.slice(0, 13)}:00:00` > hours_from ? `${previous.slice(0, 13)}:00:00` : hours_from; h < closed_hour; h = addSeconds(h, 3600)) {
    if (!markedHours.has(h) && !unsettledHours.has(h)) candidates.push(h)
  }
  const withLedgerRows = await withRows(client, candidates, 3600)
  const hours = [...new Set([...changed.filter((h) => h >= hours_from), ...withLedgerRows])].sort()
  // An hour of the slice window is its whole prefix: a copy of one row per identity instead of a read of its ledger
  // rows (18M of them at 5,000 spans/s, one statement that would hold every request on the embedded engine).
  const fromPrefix = hours.filter((h) => whole.has(h))
  for (const hour of fromPrefix) await copyPrefix(client, 'hour', hour, addSeconds(hour, 3600), key, settled)
  await rebuild(client, 'hour', hours.filter((h) => !whole.has(h)), cards, key, settled)
  // A closed hour without ledger rows is summarised as empty (a mark and no rows), so a day's prefix runs past it. A
  // span that arrives for it later is ingested after this run settled: the next run rebuilds the hour.
  const emptyHours = candidates.filter((h) => !withLedgerRows.includes(h))
  if (emptyHours.length > 0) {
    await client.insert({ table: 'nhi_usage_summary_periods', values: emptyHours.map((period) => ({ level: 'hour', policy_key: key, period, summarized_at: settled })), format: 'JSONEachRow' })
  }
  // Day prefixes, of the days hours are summarised for: today's so far, for bills of the day and month to date; a
  // closed day's whole, to summarise that day from one row per identity.
  for (const h of [...hours, ...emptyHours]) markedHours.add(h)
  const wholeDays = new Set<string>()
  for (let day = hours_from; day <= closed_day; day = dayAfter(day)) {
    const extended = await extendPrefix(client, 'day_to', { start: day, end: dayAfter(day) }, closed_hour, { held: markedHours, waiting: unsettledHours, rebuilt: hours }, longest.day_to, key, settled)
    if (extended.whole) wholeDays.add(day)
    if (extended.built) prefixes++
  }
  // Days: those holding changed hours once closed, and those closed since the previous run (or never summarised);
  // not those still receiving rows that have not settled.
  const since = previous ? `${previous.slice(0, 10)} 00:00:00` : '1970-01-01 00:00:00'
  const days = [...new Set([...changed.map(dayStart).filter((d) => d < closed_day), ...(await unsummarised(client, 'day', key, previous ? dayBefore(since) : since, closed_day))])]
    .filter((d) => !unsettledDays.has(d))
    .sort()
  // A closed day whose prefix reaches its end is a copy of it; the rest (older days, days whose hours are not all
  // summarised) are read from the ledger.
  const daysFromPrefix = days.filter((d) => wholeDays.has(d))
  for (const day of daysFromPrefix) await copyPrefix(client, 'day', day, dayAfter(day), key, settled)
  await rebuild(client, 'day', days.filter((d) => !wholeDays.has(d)), cards, key, settled)
  // The month's prefix: its days summarised so far, for bills of the month to date.
  const markedDays = new Set([...marks.filter((m) => m.level === 'day').map((m) => m.period_text), ...days])
  const monthPrefix = await extendPrefix(client, 'month_to', { start: closed_month, end: monthAfter(closed_month) }, closed_day, { held: markedDays, waiting: unsettledDays, rebuilt: days }, longest.month_to, key, settled)
  if (monthPrefix.built) prefixes++
  // Months: as days, and none built while one of its days waits to settle (it would be built from too few days).
  const unsettledMonths = new Set([...unsettledDays].map(monthStart))
  const months = [...new Set([...days.map(monthStart).filter((m) => m < closed_month), ...(await unsummarised(client, 'month', key, previous ? monthStart(dayBefore(since)) : since, closed_month))])]
    .filter((m) => !unsettledMonths.has(m))
    .sort()
  await rebuild(client, 'month', months, cards, key, settled)
  const periodsRebuilt = hours.length + days.length + months.length
  await client.insert({
    table: 'nhi_usage_summary_runs',
    values: [{ run_at: watermark, policy_key: key, watermark, settled_before: settled, periods_rebuilt: periodsRebuilt }],
    format: 'JSONEachRow',
  })
  return { hoursRecomputed: hours.length, hoursFromPrefixes: fromPrefix.length, daysRecomputed: days.length, daysFromPrefixes: daysFromPrefix.length, slicesRebuilt: slices.length + prefixes, periodsRebuilt, watermark, settled }
}

/**
 * The periods among `starts` (each `seconds` long) that hold ledger rows:
 * one LIMIT 1 read per period, which the ledger's primary key (start hour
 * first) confines to it.
 */
async function withRows(client: ClickHouseClient, starts: string[], seconds: number): Promise<string[]> {
  if (starts.length === 0) return []
  const params = Object.fromEntries(starts.map((p, i) => [`p${i}`, p]))
  return periods(
    client,
    starts
      .map((_, i) => `SELECT toString({p${i}:DateTime}) AS period_text FROM (SELECT 1 FROM nhi_activity WHERE event_time >= {p${i}:DateTime64(3)} AND event_time < {p${i}:DateTime64(3)} + toIntervalSecond({seconds:UInt32}) LIMIT 1)`)
      .join(' UNION ALL '),
    { ...params, seconds },
  )
}

// 'YYYY-MM-DD hh:mm:ss' plus whole seconds.
function addSeconds(text: string, seconds: number): string {
  return new Date(Date.parse(`${text.replace(' ', 'T')}Z`) + seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')
}

// The start of the hour, day or month a prefix belongs to, from its end (exclusive): that of the second before it.
function prefixStart(level: PrefixLevel, end: string): string {
  const before = addSeconds(end, -1)
  return level === 'hour_to' ? `${before.slice(0, 13)}:00:00` : level === 'day_to' ? `${before.slice(0, 10)} 00:00:00` : `${before.slice(0, 7)}-01 00:00:00`
}

// The day after a 'YYYY-MM-DD 00:00:00' day.
function dayAfter(day: string): string {
  const d = new Date(`${day.slice(0, 10)}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + 1)
  return `${d.toISOString().slice(0, 10)} 00:00:00`
}

// The month after a 'YYYY-MM-01 00:00:00' month.
function monthAfter(month: string): string {
  const d = new Date(`${month.slice(0, 10)}T00:00:00Z`)
  d.setUTCMonth(d.getUTCMonth() + 1)
  return `${d.toISOString().slice(0, 10)} 00:00:00`
}

// Slice starts from `from` up to (not including) `to`.
function sliceStarts(from: string, to: string): string[] {
  const out: string[] = []
  for (let t = from; t < to; t = addSeconds(t, SLICE_SECONDS)) out.push(t)
  return out
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
