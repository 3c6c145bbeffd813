/**
 * Which parts of a billing range are read from which summary level, and
 * which from the ledger. A period is read from the summary only when it
 * lies wholly inside the range, the summary holds it for the rate cards in
 * force (their policy key), and no ledger row in it was ingested after what
 * the last summary run for those cards had settled. A running prefix
 * (`month_to`: a month's days from its start; `day_to`: a day's hours;
 * `hour_to`: an hour's slices) counts as a period from the start of its
 * month, day or hour to the prefix's end; only the longest of each is used.
 * A rate card that
 * starts inside a period does not matter: the summary decided the card and
 * meter of every event. Everything else comes from the ledger, so the
 * answer is exact either way; the summary only makes it fast.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { type TimeRange } from '../http/params.js'
import { readRows } from '../storage/read.js'
import { toClickHouseTime } from '../storage/time.js'
import { quietWriteKey, tablesWriteKey } from '../storage/write-tracking.js'
import { HOUR_LEVEL_DAYS, PREFIX_LEVELS, ROLLUP_LEVELS, SLICE_LEVEL_HOURS, SLICE_SECONDS, type PrefixLevel, type RollupLevel, type SummaryLevel } from './rollup.js'

/** A half-open interval of epoch milliseconds. */
export type Interval = [number, number]

/**
 * Where usage rows come from: per summary level the intervals it covers
 * (for a prefix level, each from its month's, day's or hour's start to the
 * end of the prefix read), and ledger intervals.
 */
export interface UsagePlan {
  rollup: Array<{ level: SummaryLevel; intervals: Interval[] }>
  ledger: Interval[]
  /** The policy key of the summary rows the plan reads ('' when it reads none). */
  policyKey: string
}

/** A plan that reads the whole range from the ledger. */
export function ledgerPlan(range: TimeRange): UsagePlan {
  return { rollup: [], ledger: [[range.from.getTime(), range.to.getTime()]], policyKey: '' }
}

const HOUR_MS = 3_600_000
const SLICE_MS = SLICE_SECONDS * 1000

function periodStart(level: RollupLevel, ms: number): number {
  const d = new Date(ms)
  if (level === 'slice') return Math.floor(ms / SLICE_MS) * SLICE_MS
  if (level === 'hour') return Math.floor(ms / HOUR_MS) * HOUR_MS
  if (level === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

function periodEnd(level: RollupLevel, start: number): number {
  const d = new Date(start)
  if (level === 'slice') return start + SLICE_MS
  if (level === 'hour') return start + HOUR_MS
  if (level === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

/** The facts a plan is made from (read from ClickHouse by `loadPlanFacts`). */
export interface PlanFacts {
  /** The policy key the facts are about. */
  policyKey: string
  /** Period starts the summary holds for that key, per aligned level. */
  rolled: Record<RollupLevel, Set<number>>
  /** Per prefix level, per start of its month, day or hour, the end of the longest running prefix the summary holds. */
  prefixes: Record<PrefixLevel, Map<number, number>>
  /**
   * Starts of slices (within the last SLICE_LEVEL_HOURS; of hours before
   * that) with ledger rows ingested after what the last run had settled.
   */
  dirtySlices: Set<number>
  /** Whether any row of the trace-resolution job's pending table (decided or not) started in the range. */
  pendingInRange: boolean
}


/** The aligned level whose periods a prefix level adds up to, from their start. */
export const PREFIX_OF: Record<PrefixLevel, Exclude<RollupLevel, 'slice'>> = { hour_to: 'hour', day_to: 'day', month_to: 'month' }

/**
 * Reads what the planner needs for a range: for the given policy key, or,
 * with null (callers that need no meters), the key of the latest summary
 * run. Hour and day-prefix markers older than HOUR_LEVEL_DAYS, slice and
 * hour-prefix markers older than SLICE_LEVEL_HOURS, and month-prefix markers
 * before the previous month are ignored: their rows expire (migrations 0024,
 * 0031, 0032) on a schedule of their own. `graceSeconds`, when given, treats
 * rows ingested that long before the last run as unsettled too (tests and
 * benchmarks use it to force reads from the ledger).
 */
export async function loadPlanFacts(client: ClickHouseClient, range: TimeRange, policyKey: string | null, graceSeconds?: number): Promise<PlanFacts> {
  // On the embedded engine every write passes through this process: facts read while nothing was written hold until
  // the ledger or the summary's bookkeeping is written again, or the hour turns (the markers' windows move with it).
  const cacheKey = `${policyKey ?? '\u0000latest'}|${graceSeconds ?? 0}|${range.from.getTime()}|${range.to.getTime()}|${Math.floor(Date.now() / HOUR_MS)}`
  const before = quietWriteKey(client, FACT_TABLES)
  const known = factsCache.get(client, before, cacheKey)
  if (known) return known
  const facts = await readPlanFacts(client, range, policyKey, graceSeconds)
  if (quietWriteKey(client, FACT_TABLES) === before) factsCache.set(client, before, cacheKey, facts)
  return facts
}

/**
 * Answers kept per client under a key of its writes (see write-tracking.ts):
 * served while that key stays the same, dropped when it moves. At most
 * `limit` per key (a few ranges and policies are asked for again and again:
 * dashboards, pollers).
 */
export class WriteKeyedCache<T> {
  private readonly byClient = new WeakMap<ClickHouseClient, { writes: string; entries: Map<string, T> }>()

  constructor(private readonly limit: number) {}

  /** The answer kept for `key`, if `writes` (undefined: writes not seen) is the key it was kept under. */
  get(client: ClickHouseClient, writes: string | undefined, key: string): T | undefined {
    const held = this.byClient.get(client)
    return writes !== undefined && held?.writes === writes ? held.entries.get(key) : undefined
  }

  /** Keeps an answer read under `writes` (nothing when undefined); past `limit`, the one kept longest goes. */
  set(client: ClickHouseClient, writes: string | undefined, key: string, value: T): void {
    if (writes === undefined) return
    const known = this.byClient.get(client)
    const held = known?.writes === writes ? known : { writes, entries: new Map<string, T>() }
    held.entries.delete(key)
    if (held.entries.size >= this.limit) held.entries.delete(held.entries.keys().next().value!)
    held.entries.set(key, value)
    this.byClient.set(client, held)
  }
}

/** The tables whose writes can change plan facts: the ledger, the spans its views derive it from, the summary's runs and periods. */
const FACT_TABLES = ['otel_traces', 'nhi_activity', 'nhi_usage_summary_periods', 'nhi_usage_summary_runs'] as const
const MAX_CACHED_FACTS = 64
const factsCache = new WriteKeyedCache<PlanFacts>(MAX_CACHED_FACTS)

/** What the summary holds for a policy key from a month on: its periods per level, and what its last run settled. */
interface SummaryFacts {
  policyKey: string
  periods: Array<[level: RollupLevel | PrefixLevel, seconds: number[]]>
  /** Every ledger row ingested before this ('YYYY-MM-DD hh:mm:ss.fff', the epoch before any run) is summarised. */
  settled: string
}

const summaryRow = z.tuple([z.enum([...ROLLUP_LEVELS, ...PREFIX_LEVELS, 'settled']), z.string(), z.array(z.number().int()), z.string()])
const dirtyRow = z.tuple([z.array(z.number().int()), z.number().int()])

/**
 * The summary's side of the facts: read once per hour and per write of its
 * bookkeeping tables on the embedded engine, where this process makes every
 * such write (the summary job runs once a minute; bills under steady ingest
 * ask far more often). A read that a write overlapped is not kept.
 */
async function summaryFacts(client: ClickHouseClient, monthFrom: string, policyKey: string | null, graceSeconds: number | undefined): Promise<SummaryFacts> {
  const writes = tablesWriteKey(client, SUMMARY_TABLES)
  const cacheKey = `${policyKey ?? '\u0000latest'}|${graceSeconds ?? 0}|${monthFrom}|${Math.floor(Date.now() / HOUR_MS)}`
  const known = summaryCache.get(client, writes, cacheKey)
  if (known) return known
  const rows = await readRows(client, {
    query: `WITH if({latest:UInt8}, (SELECT argMax(policy_key, run_at) FROM nhi_usage_summary_runs), {key:String}) AS chosen
            SELECT level, chosen, groupArray(toUnixTimestamp(period)), '' FROM nhi_usage_summary_periods FINAL
            WHERE policy_key = chosen AND period >= {from:DateTime}
              AND NOT (level IN ('hour', 'day_to') AND period < toStartOfDay(now()) - toIntervalDay({hour_days:UInt32}))
              AND NOT (level = 'month_to' AND period < toStartOfMonth(now()) - toIntervalMonth(1))
              AND NOT (level IN ('slice', 'hour_to') AND period < toStartOfHour(now()) - toIntervalHour({slice_hours:UInt32}))
            GROUP BY level
            UNION ALL
            SELECT 'settled', chosen, [], toString(max(if({grace:UInt32} > 0, least(settled_before, watermark - toIntervalSecond({grace:UInt32})), settled_before)))
            FROM nhi_usage_summary_runs WHERE policy_key = chosen`,
    params: { from: monthFrom, grace: graceSeconds ?? 0, key: policyKey ?? '', latest: policyKey === null ? 1 : 0, hour_days: HOUR_LEVEL_DAYS, slice_hours: SLICE_LEVEL_HOURS },
    row: summaryRow,
    positional: true,
  })
  const facts: SummaryFacts = { policyKey: policyKey ?? '', periods: [], settled: '1970-01-01 00:00:00.000' }
  for (const [level, chosen, seconds, settled] of rows) {
    facts.policyKey = chosen
    if (level === 'settled') facts.settled = settled
    else facts.periods.push([level, seconds])
  }
  if (tablesWriteKey(client, SUMMARY_TABLES) === writes) summaryCache.set(client, writes, cacheKey, facts)
  return facts
}

/** The summary's bookkeeping: which periods it holds, and what its runs settled. */
const SUMMARY_TABLES = ['nhi_usage_summary_periods', 'nhi_usage_summary_runs'] as const
const summaryCache = new WriteKeyedCache<SummaryFacts>(MAX_CACHED_FACTS)

async function readPlanFacts(client: ClickHouseClient, range: TimeRange, policyKey: string | null, graceSeconds?: number): Promise<PlanFacts> {
  const from = toClickHouseTime(new Date(periodStart('month', range.from.getTime())))
  const summary = await summaryFacts(client, from.slice(0, 19), policyKey, graceSeconds)
  // The slices changed since the last run, as epoch seconds: slices where the summary has slices; elsewhere hours,
  // the finest period it holds there. A read of recent rows only, through the minmax index on ingested_at. In the
  // same round trip, whether any event of the range waits for its trace (a bill counts those as pending).
  const [dirty] = await readRows(client, {
    query: `SELECT groupArray(toUnixTimestamp(slice)),
                   toUInt8((SELECT count() FROM (SELECT 1 FROM nhi_trace_pending WHERE event_time >= {range_from:DateTime64(3)} AND event_time < {to:DateTime64(3)} LIMIT 1)))
            FROM (
              SELECT DISTINCT toDateTime(if(event_time >= toStartOfHour(now()) - toIntervalHour({slice_hours:UInt32}),
                                            toStartOfInterval(event_time, INTERVAL ${SLICE_SECONDS} SECOND), toStartOfHour(event_time))) AS slice
              FROM nhi_activity
              WHERE ingested_at >= {settled:DateTime64(3)}
                AND event_time >= {from:DateTime64(3)} AND event_time < {to:DateTime64(3)})`,
    params: { settled: summary.settled, from, range_from: toClickHouseTime(range.from), to: toClickHouseTime(range.to), slice_hours: SLICE_LEVEL_HOURS },
    row: dirtyRow,
    positional: true,
  })
  const facts: PlanFacts = {
    policyKey: summary.policyKey,
    rolled: { slice: new Set(), hour: new Set(), day: new Set(), month: new Set() },
    prefixes: { hour_to: new Map(), day_to: new Map(), month_to: new Map() },
    dirtySlices: new Set((dirty?.[0] ?? []).map((s) => s * 1000)),
    pendingInRange: (dirty?.[1] ?? 1) > 0,
  }
  // Periods up to the range's end (in whole seconds, as a prefix's end is stored).
  const last = Math.floor(range.to.getTime() / 1000)
  for (const [level, seconds] of summary.periods) {
    if (level === 'hour_to' || level === 'day_to' || level === 'month_to') {
      const longest = facts.prefixes[level]
      for (const s of seconds) {
        if (s > last) continue
        const end = s * 1000
        const start = periodStart(PREFIX_OF[level], end - 1)
        if ((longest.get(start) ?? 0) < end) longest.set(start, end)
      }
      continue
    }
    for (const s of seconds) if (s <= last) facts.rolled[level].add(s * 1000)
  }
  return facts
}

/** The levels a plan may read, coarsest first, given the coarsest that the bill's grouping allows. */
function levelsUpTo(coarsest: Exclude<RollupLevel, 'slice'>): SummaryLevel[] {
  const all: SummaryLevel[] = ['month', 'month_to', 'day', 'day_to', 'hour', 'hour_to', 'slice']
  return all.slice(all.indexOf(coarsest))
}

/**
 * Covers the range with the coarsest usable summary periods up to
 * `coarsest` (`hour` when results are grouped per hour, `day` per day,
 * `month` otherwise), each level followed by its running prefix (a month's
 * days so far, a day's hours, an hour's slices), then slices, then the
 * ledger.
 */
export function planUsage(range: TimeRange, facts: PlanFacts, coarsest: Exclude<RollupLevel, 'slice'>): UsagePlan {
  let uncovered: Interval[] = [[range.from.getTime(), range.to.getTime()]]
  const rollup: UsagePlan['rollup'] = []
  const dirty = [...facts.dirtySlices].sort((a, b) => a - b)
  // No dirty slice in [start, end): the first at or after start (binary search) is not before end.
  const clean = (start: number, end: number) => {
    let lo = 0
    let hi = dirty.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (dirty[mid]! < start) lo = mid + 1
      else hi = mid
    }
    return lo === dirty.length || dirty[lo]! >= end
  }
  for (const level of levelsUpTo(coarsest)) {
    const taken: Interval[] = []
    const remaining: Interval[] = []
    for (const [from, to] of uncovered) {
      if (level === 'hour_to' || level === 'day_to' || level === 'month_to') {
        // A prefix covers [its month's, day's or hour's start, its end): usable where the interval starts there; a
        // prefix that reaches the period's end may be followed by the next period's.
        const parent = PREFIX_OF[level]
        const longest = facts.prefixes[level]
        let cursor = from
        for (;;) {
          const end = cursor === periodStart(parent, cursor) ? longest.get(cursor) : undefined
          if (end === undefined || end > to || !clean(cursor, end)) break
          taken.push([cursor, end])
          cursor = end
        }
        if (cursor < to) remaining.push([cursor, to])
        continue
      }
      // Only where the summary holds periods of this level (slices cover two hours of a range that may span years).
      const held = facts.rolled[level]
      if (held.size === 0) {
        remaining.push([from, to])
        continue
      }
      let first = Infinity
      let last = -Infinity
      for (const start of held) {
        if (start < first) first = start
        if (start > last) last = start
      }
      let cursor = from
      for (let start = periodStart(level, Math.max(from, first)); start < to && start <= last; start = periodEnd(level, start)) {
        const end = periodEnd(level, start)
        if (start < from || end > to) continue
        if (!facts.rolled[level].has(start) || !clean(start, end)) continue
        if (start > cursor) remaining.push([cursor, start])
        taken.push([start, end])
        cursor = end
      }
      if (cursor < to) remaining.push([cursor, to])
    }
    if (taken.length > 0) {
      taken.sort((a, b) => a[0] - b[0])
      rollup.push({ level, intervals: PREFIX_LEVELS.includes(level as PrefixLevel) ? taken : joinRuns(taken) })
    }
    uncovered = remaining
  }
  return { rollup, ledger: uncovered, policyKey: rollup.length > 0 ? facts.policyKey : '' }
}

/** Joins adjacent intervals (sorted) into maximal runs. */
function joinRuns(intervals: Interval[]): Interval[] {
  const out: Interval[] = []
  for (const [start, end] of intervals) {
    const last = out[out.length - 1]
    if (last && last[1] === start) last[1] = end
    else out.push([start, end])
  }
  return out
}
