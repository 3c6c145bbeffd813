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
import { formatMoney, MONEY_SCALE, parseMoney, type Money } from '../money/decimal.js'
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
 * One aggregated usage row: the requested keys (the meter's name among
 * them), whether an identity was resolved, whether it bills (identified and
 * matching a meter), the cards that priced it, the count and its exact
 * amount. Rows that bill nothing have blank keys, so they fold into a few
 * rows that only count towards completeness.
 */
export interface BillableAggregate {
  keys: Record<string, string>
  identified: boolean
  billed: boolean
  /** Indexes (into the sorted cards) of the cards whose meters priced the row. */
  cardIndices: number[]
  quantity: number
  amount: Money
}

/** A small integer (a flag or an index) from a result row; anything else is a bug worth stopping on. */
function smallInt(value: unknown, column: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new Error(`billing row: ${column} is not an integer: ${JSON.stringify(value)}`)
  return n
}

/**
 * SQL for the unit price of a row's meter from `card_idx` and `meter_idx`
 * (Decimal128 with money's scale, exact), and its parameters: each card's
 * prices as decimal strings, converted by ClickHouse.
 */
function priceSql(cards: readonly RateCard[]): { sql: string; params: Record<string, string[]> } {
  const zero = `toDecimal128(0, ${MONEY_SCALE})`
  if (cards.length === 0) return { sql: zero, params: {} }
  const params = Object.fromEntries(cards.map((card, i) => [`card${i}_prices`, card.meters.map((m) => formatMoney(m.unit_price))]))
  const branches = cards.map((_, i) => `card_idx = ${i}, arrayElement(arrayMap(p -> toDecimal128(p, ${MONEY_SCALE}), {card${i}_prices:Array(String)}), meter_idx + 1)`)
  return { sql: `multiIf(meter_idx < 0, ${zero}, ${branches.join(', ')}, ${zero})`, params }
}

/**
 * Counts and prices use events in the range, grouped by the requested keys
 * and the meter's name, with every event priced exactly by the card in
 * force at its start (Decimal arithmetic in ClickHouse, at money's scale,
 * overflow checked): parts of one row matched by meters of the same name on
 * different cards are summed, each at its own price. Rows come ordered by
 * the keys in group-by order; every row, billed or not, counts towards
 * completeness.
 */
export async function billableAggregates(
  client: ClickHouseClient,
  options: { groupBy: GroupByKey[]; granularity: Granularity; cards: readonly RateCard[]; businessUnits: BusinessUnitScope; plan: UsagePlan },
): Promise<BillableAggregate[]> {
  const source = usageSource(options.plan, options.cards)
  const price = priceSql(options.cards)
  const keyColumns = options.groupBy.map((k, i) => ({ key: k, alias: `k${i}`, expr: k === 'meter' ? meterNameSql(options.cards) : k === 'period' ? PERIOD_OF[options.granularity] : COLUMN_OF[k] }))
  const keys = keyColumns.map((c) => c.alias)
  // The inventory decides a declared identity's business unit: joined only when a key or the caller's scope needs it.
  const needsInventory = options.businessUnits !== null || options.groupBy.includes('business_unit')
  // Rows that bill nothing (no identity, or no meter) only count towards completeness: their keys are blanked, so
  // they fold into a few rows instead of one per identity.
  const billed = "nhi_id != '' AND meter_idx >= 0"
  const query = `
    SELECT ${[...keys, 'identified', 'billed', 'arraySort(groupUniqArray(card_idx)) AS cards', 'sum(n) AS quantity', 'toString(sum(price * n)) AS amount'].join(', ')}
    FROM (
      SELECT ${[...keyColumns.map((c) => (c.key === 'period' ? `${c.expr} AS ${c.alias}` : `if(${billed}, ${c.expr}, '') AS ${c.alias}`)), "nhi_id != '' AS identified", `${billed} AS billed`, 'card_idx', `if(${billed}, ${price.sql}, toDecimal128(0, ${MONEY_SCALE})) AS price`, 'n'].join(', ')}
      FROM ${source.sql} AS usage
      ${needsInventory ? INVENTORY_JOIN : ''}
      WHERE 1 ${businessUnitCondition(options.businessUnits)}
    )
    GROUP BY ${[...keys, 'identified', 'billed'].join(', ')}
    ORDER BY ${keys.join(', ')}`
  const result = await client.query({
    query,
    // One JSON document (not a line per row): parsed in one call.
    format: 'JSONCompact',
    query_params: { ...meterNameParams(options.cards), ...price.params, ...source.params, ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
    clickhouse_settings: FINAL_SETTINGS,
  })
  const rows = (await result.json<{ data: unknown[] }>()).data
  const n = keyColumns.length
  return rows.map((raw) => {
    if (!Array.isArray(raw) || raw.length !== n + 5) throw new Error(`unexpected billing row: ${JSON.stringify(raw).slice(0, 200)}`)
    const keys: Record<string, string> = {}
    for (let i = 0; i < n; i++) {
      const c = keyColumns[i]!
      const value = String(raw[i] ?? '')
      keys[c.key] = c.key === 'period' ? new Date(value).toISOString().replace('.000Z', 'Z') : value
    }
    const cards = raw[n + 2]
    if (!Array.isArray(cards)) throw new Error(`billing row: cards is not a list: ${JSON.stringify(cards)}`)
    return {
      keys,
      identified: smallInt(raw[n], 'identified') === 1,
      billed: smallInt(raw[n + 1], 'billed') === 1,
      cardIndices: cards.map((c) => smallInt(c, 'card_idx')),
      quantity: toCount(raw[n + 3] as string | number),
      amount: parseMoney(String(raw[n + 4]), { maxIntegerDigits: 38 - MONEY_SCALE }),
    }
  })
}
