/**
 * Billable activity from the NHI activity ledger. Every value is a bound
 * parameter; the only SQL assembled here comes from fixed vocabularies
 * (group-by keys, granularities) and from the shape of the rate cards
 * (how many cards and meters), never from a user's string.
 *
 * A span is billable when an identity was resolved for it and it matches a
 * meter of the rate card in force at its start time (first match wins).
 * Deduplication: the ledger and the summaries are read with FINAL, so a span
 * delivered several times counts once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { toClickHouseTime } from '../http/params.js'
import { toCount } from '../storage/client.js'
import type { Interval, UsagePlan } from './plan.js'
import { businessUnitCondition, EFFECTIVE_BUSINESS_UNIT, INVENTORY_JOIN } from '../identities/effective.js'
import type { RateCard } from '../policy/index.js'
import { meterMatchSql, meterNameParams, meterNameSql } from './meters.js'

/** The group-by keys of GET /v1/billable, as the API names them. */
export const GROUP_BY_KEYS = ['nhi.id', 'meter', 'business_unit', 'activity.type', 'activity.name', 'service', 'period', 'on_behalf_of'] as const
/** One group-by key. */
export type GroupByKey = (typeof GROUP_BY_KEYS)[number]
/** Period sizes for `period`. */
export const GRANULARITIES = ['hour', 'day', 'month'] as const
/** One granularity. */
export type Granularity = (typeof GRANULARITIES)[number]

/** Which rows a caller may see: null for all business units. */
export type BusinessUnitScope = readonly string[] | null

/** SQL for each plain group-by key (given INVENTORY_JOIN). */
export const COLUMN_OF: Record<Exclude<GroupByKey, 'meter' | 'period'>, string> = {
  'nhi.id': 'nhi_id',
  business_unit: EFFECTIVE_BUSINESS_UNIT,
  'activity.type': 'activity_type',
  'activity.name': 'activity_name',
  service: 'service',
  on_behalf_of: 'on_behalf_of',
}
/** SQL for the period of an event at each granularity. */
export const PERIOD_OF: Record<Granularity, string> = {
  hour: 'toStartOfHour(event_time)',
  day: 'toStartOfDay(event_time)',
  month: 'toStartOfMonth(event_time)',
}

/**
 * The use events of a plan as one row source with the columns event_time,
 * nhi_id, business_unit, service, activity_type, activity_name and
 * on_behalf_of (empty in summary rows: a plan grouped by them reads only the
 * ledger), card_idx and meter_idx (the card in force and the meter matched,
 * -1 when none), and `n` (events the row stands for). Each summary level and
 * the ledger read only their own intervals, so the primary keys prune what
 * the others cover. A summary row's event_time is its period start; ledger
 * rows are summed per hour and activity before the meter match, so the match
 * runs on few rows.
 */
export function usageSource(plan: UsagePlan, cards: readonly RateCard[]): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {}
  const condition = (intervals: Interval[], column: string, prefix: string) =>
    intervals.length === 0
      ? '0'
      : intervals
          .map(([from, to], i) => {
            params[`${prefix}${i}_from`] = toClickHouseTime(new Date(from))
            params[`${prefix}${i}_to`] = toClickHouseTime(new Date(to))
            return `(${column} >= {${prefix}${i}_from:DateTime64(9)} AND ${column} < {${prefix}${i}_to:DateTime64(9)})`
          })
          .join(' OR ')
  const sides = plan.rollup.map(
    ({ level, intervals }) => `SELECT toDateTime64(period, 9) AS event_time, nhi_id, business_unit, service, activity_type, '' AS activity_name, '' AS on_behalf_of, card_idx, meter_idx, events AS n
      FROM nhi_usage_summary FINAL
      WHERE level = {${level}_level:String} AND policy_key = {policy_key:String} AND (${condition(intervals, 'period', level)})`,
  )
  for (const { level } of plan.rollup) params[`${level}_level`] = level
  params.policy_key = plan.policyKey
  if (plan.ledger.length > 0 || sides.length === 0) {
    const match = meterMatchSql(cards)
    Object.assign(params, match.params)
    sides.push(`SELECT toDateTime64(hour, 9) AS event_time, nhi_id, business_unit, service, activity_type, activity_name, on_behalf_of, card_idx, ${match.meterIndex} AS meter_idx, c AS n
      FROM (
        SELECT toStartOfHour(event_time) AS hour, nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, ${match.cardIndex} AS card_idx, count() AS c
        FROM nhi_activity FINAL
        WHERE ${condition(plan.ledger, 'event_time', 'ledger')}
        GROUP BY hour, nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, card_idx)`)
  }
  return { sql: `(${sides.join('\n      UNION ALL\n      ')})`, params }
}

/** Settings for reading ReplacingMergeTree tables with FINAL: their keys never span partitions. */
const FINAL_SETTINGS = { do_not_merge_across_partitions_select_final: 1 } as const

/**
 * One aggregated usage row: the requested keys, whether an identity was
 * resolved, and the card and meter that price it (-1 when none). Rows that
 * are unidentified or match no meter are returned too, so completeness
 * comes from the same pass; only identified rows with a meter are billed.
 */
export interface BillableAggregate {
  keys: Record<string, string>
  identified: boolean
  cardIndex: number
  meterIndex: number
  quantity: number
}

/** A small integer (a flag or an index) from a result row; anything else is a bug worth stopping on. */
function smallInt(value: unknown, column: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new Error(`billing row: ${column} is not an integer: ${JSON.stringify(value)}`)
  return n
}

/**
 * Counts use events in the range, grouped by the requested keys, by whether
 * an identity was resolved, and by the meter that matched. Rows are first
 * summed per key, activity and card, then matched to meters, so the meter
 * match runs on few rows.
 */
export async function billableAggregates(
  client: ClickHouseClient,
  options: { groupBy: GroupByKey[]; granularity: Granularity; cards: readonly RateCard[]; businessUnits: BusinessUnitScope; plan: UsagePlan },
): Promise<BillableAggregate[]> {
  const source = usageSource(options.plan, options.cards)
  const keyColumns = options.groupBy
    .filter((k) => k !== 'meter')
    .map((k, i) => ({ key: k, alias: `k${i}`, expr: k === 'period' ? PERIOD_OF[options.granularity] : COLUMN_OF[k] }))
  const keys = keyColumns.map((c) => c.alias)
  // Ordered as the bill's rows are (group-by order, the meter by name), so
  // sorting them again in TypeScript, which decides the order, is one pass.
  const order = options.groupBy.map((k) => (k === 'meter' ? meterNameSql(options.cards, 'meter') : keyColumns.find((c) => c.key === k)!.alias))
  const names = meterNameParams(options.cards)
  // The inventory decides a declared identity's business unit: joined only when a key or the caller's scope needs it.
  const needsInventory = options.businessUnits !== null || options.groupBy.includes('business_unit')
  // Rows that bill nothing (no identity, or no meter) only count towards completeness: their keys are blanked, so
  // they fold into a few rows instead of one per identity.
  const billed = "nhi_id != '' AND meter_idx >= 0"
  const query = `
    SELECT ${[...keyColumns.map((c) => (c.key === 'period' ? `${c.expr} AS ${c.alias}` : `if(${billed}, ${c.expr}, '') AS ${c.alias}`)), "nhi_id != '' AS identified", 'card_idx', `if(${billed}, meter_idx, -1) AS meter`, 'sum(n) AS quantity'].join(', ')}
    FROM ${source.sql} AS usage
    ${needsInventory ? INVENTORY_JOIN : ''}
    WHERE 1 ${businessUnitCondition(options.businessUnits)}
    GROUP BY ${[...keys, 'identified', 'card_idx', 'meter'].join(', ')}
    ORDER BY ${order.join(', ')}`
  const result = await client.query({
    query,
    // One JSON document (not a line per row): parsed in one call.
    format: 'JSONCompact',
    query_params: { ...names, ...source.params, ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
    clickhouse_settings: FINAL_SETTINGS,
  })
  const rows = (await result.json<{ data: unknown[] }>()).data
  const n = keyColumns.length
  return rows.map((raw) => {
    if (!Array.isArray(raw) || raw.length !== n + 4) throw new Error(`unexpected billing row: ${JSON.stringify(raw).slice(0, 200)}`)
    const keys: Record<string, string> = {}
    keyColumns.forEach((c, i) => {
      const value = String(raw[i] ?? '')
      keys[c.key] = c.key === 'period' ? new Date(value).toISOString().replace('.000Z', 'Z') : value
    })
    return {
      keys,
      identified: smallInt(raw[n], 'identified') === 1,
      cardIndex: smallInt(raw[n + 1], 'card_idx'),
      meterIndex: smallInt(raw[n + 2], 'meter_idx'),
      quantity: toCount(raw[n + 3] as string | number),
    }
  })
}
