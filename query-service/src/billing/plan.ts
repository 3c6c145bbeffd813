/**
 * Which parts of a billing range are read from which rollup level, and
 * which from the ledger. A period is read from the rollup only when it lies
 * wholly inside the range, the rollup holds it, no ledger row in it changed
 * since the last rollup run (minus the grace period), and no rate card
 * starts strictly inside it (events on either side of a price change must be
 * priced apart). Everything else comes from the ledger, so the answer is
 * exact either way; the rollup only makes it fast.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { toClickHouseTime, type TimeRange } from '../http/params.js'
import type { RateCard } from '../policy/index.js'
import { ROLLUP_GRACE_SECONDS, ROLLUP_LEVELS, type RollupLevel } from './rollup.js'

/** A half-open interval of epoch milliseconds. */
export type Interval = [number, number]

/** Where usage rows come from: per rollup level the intervals of period starts it covers, and ledger intervals. */
export interface UsagePlan {
  rollup: Array<{ level: RollupLevel; intervals: Interval[] }>
  ledger: Interval[]
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
  /** Period starts the rollup holds, per level. */
  rolled: Record<RollupLevel, Set<number>>
  /** Starts of hours with ledger rows ingested after the last run's watermark minus the grace period. */
  dirtyHours: Set<number>
}

const planRow = z.tuple([z.enum([...ROLLUP_LEVELS, 'dirty']), z.array(z.number().int())])

/** Reads what the planner needs for a range. */
export async function loadPlanFacts(client: ClickHouseClient, range: TimeRange, graceSeconds = ROLLUP_GRACE_SECONDS): Promise<PlanFacts> {
  const params = {
    from: toClickHouseTime(new Date(periodStart('month', range.from.getTime()))).slice(0, 19),
    to: toClickHouseTime(range.to).slice(0, 19),
    grace: graceSeconds,
  }
  // One round trip, one row per kind: the period starts the rollup holds per
  // level, and the hours changed since its last run, as epoch seconds.
  const result = await client.query({
    query: `SELECT level, groupArray(toUnixTimestamp(period)) FROM nhi_usage_rolled FINAL
            WHERE period >= {from:DateTime} AND period < {to:DateTime}
            GROUP BY level
            UNION ALL
            SELECT 'dirty', groupArray(toUnixTimestamp(hour_start)) FROM (
              WITH (SELECT max(watermark) FROM nhi_usage_rollup_runs) AS watermark
              SELECT DISTINCT toStartOfHour(event_time) AS hour_start FROM nhi_activity
              WHERE ingested_at > watermark - toIntervalSecond({grace:UInt32})
                AND event_time >= {from:DateTime} AND event_time < {to:DateTime})`,
    format: 'JSONCompactEachRow',
    query_params: params,
  })
  const facts: PlanFacts = { rolled: { hour: new Set(), day: new Set(), month: new Set() }, dirtyHours: new Set() }
  for (const raw of await result.json<unknown>()) {
    const [level, seconds] = planRow.parse(raw)
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
export function planUsage(range: TimeRange, facts: PlanFacts, cards: readonly RateCard[], coarsest: RollupLevel): UsagePlan {
  const boundaries = cards.map((c) => c.effective_from.ms)
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
        const usable =
          facts.rolled[level].has(start) &&
          !boundaries.some((b) => b > start && b < end) &&
          ![...facts.dirtyHours].some((h) => h >= start && h < end)
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
  return { rollup, ledger: uncovered }
}
