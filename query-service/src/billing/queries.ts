/**
 * Billable activity from the NHI activity ledger. Every value is a bound
 * parameter; the only SQL assembled here comes from fixed vocabularies
 * (group-by keys, granularities) and from the shape of the rate cards
 * (how many cards and meters), never from a user's string.
 *
 * A span is billable when an identity was resolved for it and it matches a
 * meter of the rate card in force at its start time (first match wins).
 * Deduplication: the ledger is read with FINAL, so a span delivered several
 * times counts once.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { toClickHouseTime } from '../http/params.js'
import { toCount } from '../storage/client.js'
import type { Interval, UsagePlan } from './plan.js'
import { businessUnitCondition, EFFECTIVE_BUSINESS_UNIT, INVENTORY_JOIN } from '../identities/effective.js'
import { meterIndexSql, meterSqlParams, type RateCard } from '../policy/index.js'

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
 * SQL expressions that pick, for each ledger row, the index of the rate card
 * in force at its start (cards sorted by effective_from) and the 0-based
 * index of the first meter of that card it matches (-1 when none). The meter
 * match itself is the policy module's `meterIndexSql`, the one definition
 * of the billable match; every policy value is a bound parameter.
 */
export function meterMatchSql(cards: readonly RateCard[]): { cardIndex: string; meterIndex: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {}
  if (cards.length === 0) return { cardIndex: '-1', meterIndex: '-1', params }
  const cardBranches: string[] = []
  const meterBranches: string[] = []
  // Latest card first: the card in force is the latest one that started at or before the event.
  for (let i = cards.length - 1; i >= 0; i--) {
    params[`card_from_${i}`] = toClickHouseTime(new Date(cards[i]!.effective_from.ms))
    cardBranches.push(`event_time >= {card_from_${i}:DateTime64(9)}, ${i}`)
  }
  cards.forEach((card, i) => {
    Object.assign(params, meterSqlParams(card, `card${i}`))
    meterBranches.push(`card_idx = ${i}, ${meterIndexSql(`card${i}`)}`)
  })
  return {
    cardIndex: `multiIf(${cardBranches.join(', ')}, -1)`,
    meterIndex: `multiIf(${meterBranches.join(', ')}, 0) - 1`,
    params,
  }
}

/** SQL naming the meter of a row from its `card_idx` and `meter_idx` ('' when none), with meterMatchSql's params. */
export function meterNameSql(cards: readonly RateCard[]): string {
  if (cards.length === 0) return "''"
  return `multiIf(meter_idx < 0, '', ${cards.map((_, i) => `card_idx = ${i}, arrayElement({card${i}_names:Array(String)}, meter_idx + 1)`).join(', ')}, '')`
}

/**
 * The use events of a plan as one row source with the columns event_time,
 * nhi_id, business_unit, service, activity_type, activity_name, status,
 * on_behalf_of (empty in rollup rows: a plan grouped by it reads only the
 * ledger) and `n` (events the row stands for): each rollup level and the ledger read
 * only their own intervals, so the primary keys prune what the others cover.
 * A rollup row's event_time is its period start (no rate card starts inside
 * a period the plan reads from the rollup).
 */
export function usageSource(plan: UsagePlan): { sql: string; params: Record<string, string> } {
  const params: Record<string, string> = {}
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
    ({ level, intervals }) => `SELECT toDateTime64(period, 9) AS event_time, nhi_id, business_unit, service, activity_type, activity_name, status, '' AS on_behalf_of, events AS n
      FROM nhi_usage_rollup FINAL
      WHERE level = {${level}_level:String} AND (${condition(intervals, 'period', level)})`,
  )
  for (const { level } of plan.rollup) params[`${level}_level`] = level
  if (plan.ledger.length > 0 || sides.length === 0) {
    sides.push(`SELECT event_time, nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, toUInt64(1) AS n
      FROM nhi_activity FINAL
      WHERE ${condition(plan.ledger, 'event_time', 'ledger')}`)
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
  const match = meterMatchSql(options.cards)
  const source = usageSource(options.plan)
  const keyColumns = options.groupBy
    .filter((k) => k !== 'meter')
    .map((k, i) => ({ key: k, alias: `k${i}`, expr: k === 'period' ? PERIOD_OF[options.granularity] : COLUMN_OF[k] }))
  const keys = keyColumns.map((c) => c.alias)
  // Ordered as the bill's rows are (group-by order, the meter by name), so
  // sorting them again in TypeScript, which decides the order, is one pass.
  const order = options.groupBy.map((k) => (k === 'meter' ? meterNameSql(options.cards) : keyColumns.find((c) => c.key === k)!.alias))
  const query = `
    SELECT ${[...keys, 'identified', 'card_idx', 'meter_idx', 'quantity'].join(', ')}
    FROM (
      SELECT ${[...keys, 'identified', 'card_idx', `${match.meterIndex} AS meter_idx`, 'sum(events) AS quantity'].join(', ')}
      FROM (
        SELECT ${[...keyColumns.map((c) => `${c.expr} AS ${c.alias}`), "nhi_id != '' AS identified", 'activity_type', 'activity_name', 'status', `${match.cardIndex} AS card_idx`, 'sum(n) AS events'].join(',\n          ')}
        FROM ${source.sql} AS usage
        ${INVENTORY_JOIN}
        WHERE 1 ${businessUnitCondition(options.businessUnits)}
        GROUP BY ${[...keys, 'identified', 'activity_type', 'activity_name', 'status', 'card_idx'].join(', ')}
      )
      GROUP BY ${[...keys, 'identified', 'card_idx', 'meter_idx'].join(', ')}
    )
    ORDER BY ${order.join(', ')}`
  const result = await client.query({
    query,
    // One JSON document (not a line per row): parsed in one call.
    format: 'JSONCompact',
    query_params: { ...match.params, ...source.params, ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
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
