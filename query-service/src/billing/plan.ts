/**
 * Which parts of a billing range are read from which summary level, and
 * which from the ledger. A period is read from the summary only when it
 * lies wholly inside the range, the summary holds it for the rate cards in
 * force (their policy key), and no ledger row in it changed since the last
 * summary run for those cards (minus the grace period). A rate card that
 * starts inside a period does not matter: the summary decided the card and
 * meter of every event. Everything else comes from the ledger, so the
 * answer is exact either way; the summary only makes it fast.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { type TimeRange } from '../http/params.js'
import { readRows } from '../storage/read.js'
import { toClickHouseTime } from '../storage/time.js'
import { HOUR_LEVEL_DAYS, ROLLUP_GRACE_SECONDS, ROLLUP_LEVELS, type RollupLevel } from './rollup.js'

/** A half-open interval of epoch milliseconds. */
export type Interval = [number, number]

/** Where usage rows come from: per rollup level the intervals of period starts it covers, and ledger intervals. */
export interface UsagePlan {
  rollup: Array<{ level: RollupLevel; intervals: Interval[] }>
  ledger: Interval[]
  /** The policy key of the summary rows the plan reads ('' when it reads none). */
  policyKey: string
}

/** A plan that reads the whole range from the ledger. */
export function ledgerPlan(range: TimeRange): UsagePlan {
  return { rollup: [], ledger: [[range.from.getTime(), range.to.getTime()]], policyKey: '' }
}

const HOUR_MS = 3_600_000

function periodStart(level: RollupLevel, ms: number): number {
  const d = new Date(ms)
  if (level === 'hour') return Math.floor(ms / HOUR_MS) * HOUR_MS
  if (level === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

function periodEnd(level: RollupLevel, start: number): number {
  const d = new Date(start)
  if (level === 'hour') return start + HOUR_MS
  if (level === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

/** Joins sorted period starts of one level into maximal runs. */
function runs(level: RollupLevel, starts: number[]): Interval[] {
  const out: Interval[] = []
  for (const start of starts) {
    const end = periodEnd(level, start)
    const last = out[out.length - 1]
    if (last && last[1] === start) last[1] = end
    else out.push([start, end])
  }
  return out
}

/** The facts a plan is made from (read from ClickHouse by `loadPlanFacts`). */
export interface PlanFacts {
  /** The policy key the facts are about. */
  policyKey: string
  /** Period starts the summary holds for that key, per level. */
  rolled: Record<RollupLevel, Set<number>>
  /** Starts of hours with ledger rows ingested after the last run's watermark minus the grace period. */
  dirtyHours: Set<number>
}

const planRow = z.tuple([z.enum([...ROLLUP_LEVELS, 'dirty']), z.string(), z.array(z.number().int())])

/**
 * Reads what the planner needs for a range: for the given policy key, or,
 * with null (callers that need no meters), the key of the latest summary
 * run. Hour markers older than HOUR_LEVEL_DAYS are ignored: their rows
 * expire (migration 0024's TTL) on a schedule of their own.
 */
export async function loadPlanFacts(client: ClickHouseClient, range: TimeRange, policyKey: string | null, graceSeconds = ROLLUP_GRACE_SECONDS): Promise<PlanFacts> {
  const params = {
    from: toClickHouseTime(new Date(periodStart('month', range.from.getTime()))).slice(0, 19),
    to: toClickHouseTime(range.to).slice(0, 19),
    grace: graceSeconds,
    key: policyKey ?? '',
    latest: policyKey === null ? 1 : 0,
    hour_days: HOUR_LEVEL_DAYS,
  }
  // One round trip, one row per kind: the period starts the summary holds per
  // level, and the hours changed since its last run, as epoch seconds.
  const rows = await readRows(client, {
    query: `WITH if({latest:UInt8}, (SELECT argMax(policy_key, run_at) FROM nhi_usage_summary_runs), {key:String}) AS chosen
            SELECT level, chosen, groupArray(toUnixTimestamp(period)) FROM nhi_usage_summary_periods FINAL
            WHERE policy_key = chosen AND period >= {from:DateTime} AND period < {to:DateTime}
              AND NOT (level = 'hour' AND period < toStartOfDay(now()) - toIntervalDay({hour_days:UInt32}))
            GROUP BY level
            UNION ALL
            SELECT 'dirty', chosen, groupArray(toUnixTimestamp(hour_start)) FROM (
              WITH (SELECT max(watermark) FROM nhi_usage_summary_runs WHERE policy_key = chosen) AS watermark
              SELECT DISTINCT toStartOfHour(event_time) AS hour_start FROM nhi_activity
              WHERE ingested_at > watermark - toIntervalSecond({grace:UInt32})
                AND event_time >= {from:DateTime} AND event_time < {to:DateTime})`,
    params,
    row: planRow,
    positional: true,
  })
  const facts: PlanFacts = { policyKey: policyKey ?? '', rolled: { hour: new Set(), day: new Set(), month: new Set() }, dirtyHours: new Set() }
  for (const [level, chosen, seconds] of rows) {
    facts.policyKey = chosen
    const target = level === 'dirty' ? facts.dirtyHours : facts.rolled[level]
    for (const s of seconds) target.add(s * 1000)
  }
  return facts
}

/**
 * Covers the range with the coarsest usable rollup periods up to `finest`
 * allowed level (`hour` when results are grouped per hour, `day` per day,
 * `month` otherwise), then finer ones, then the ledger.
 */
export function planUsage(range: TimeRange, facts: PlanFacts, coarsest: RollupLevel): UsagePlan {
  const levels = ROLLUP_LEVELS.slice(0, ROLLUP_LEVELS.indexOf(coarsest) + 1).reverse()
  let uncovered: Interval[] = [[range.from.getTime(), range.to.getTime()]]
  const rollup: UsagePlan['rollup'] = []
  for (const level of levels) {
    const taken: number[] = []
    const remaining: Interval[] = []
    for (const [from, to] of uncovered) {
      let cursor = from
      for (let start = periodStart(level, from); start < to; start = periodEnd(level, start)) {
        const end = periodEnd(level, start)
        if (start < from || end > to) continue
        const usable = facts.rolled[level].has(start) && ![...facts.dirtyHours].some((h) => h >= start && h < end)
        if (!usable) continue
        if (start > cursor) remaining.push([cursor, start])
        taken.push(start)
        cursor = end
      }
      if (cursor < to) remaining.push([cursor, to])
    }
    if (taken.length > 0) rollup.push({ level, intervals: runs(level, taken.sort((a, b) => a - b)) })
    uncovered = remaining
  }
  return { rollup, ledger: uncovered, policyKey: rollup.length > 0 ? facts.policyKey : '' }
}
