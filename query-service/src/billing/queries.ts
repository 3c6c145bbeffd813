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
import type { ClickHouseClient, DataFormat } from '@clickhouse/client'
import { toClickHouseTime } from '../storage/time.js'
import { readSettings, toCount } from '../storage/read.js'
import type { Interval, UsagePlan } from './plan.js'
import { businessUnitCondition, EFFECTIVE_BUSINESS_UNIT, INVENTORY_JOIN, type BusinessUnitScope } from '../identities/effective.js'
import type { RateCard } from '../policy/index.js'
import { meterMatchSql, meterSlotsSql, valueAggregatesSql, valueColumns } from './meters.js'

/** The group-by keys of GET /v1/billable, as the API names them. */
export const GROUP_BY_KEYS = ['nhi.id', 'meter', 'business_unit', 'activity.type', 'activity.name', 'service', 'period', 'on_behalf_of'] as const
/** One group-by key. */
export type GroupByKey = (typeof GROUP_BY_KEYS)[number]
/** Period sizes for `period`. */
export const GRANULARITIES = ['hour', 'day', 'month'] as const
/** One granularity. */
export type Granularity = (typeof GRANULARITIES)[number]


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
 * nhi_id, business_unit, service, activity_name and on_behalf_of (empty in
 * summary rows: a plan grouped by them reads only the ledger), card_idx
 * (the card in force), `events`, `sums` and `missing` (per meter of that
 * card, as the summary keeps them: see billing/meters.ts) and `n` (all
 * events the row stands for). Each summary
 * level and the ledger read only their own intervals, so the primary keys
 * prune what the others cover. A summary row's event_time is its period
 * start. Ledger rows are summed per activity (and per `resolution`: hour,
 * day or month; with 'none' their event_time is the earliest event's)
 * before the meter match, so the match runs on few rows: callers that do
 * not group by period pass 'none' and read far fewer.
 */
export function usageSource(plan: UsagePlan, cards: readonly RateCard[], resolution: Granularity | 'none' = 'hour'): { sql: string; params: Record<string, unknown> } {
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
  // A prefix is stored at its end: read by that end, and dated at the start of its hour, day or month, like one.
  const prefixCondition = (level: string, intervals: Interval[]) =>
    intervals
      .map(([, to], i) => {
        params[`${level}${i}`] = toClickHouseTime(new Date(to)).slice(0, 19)
        return `period = {${level}${i}:DateTime}`
      })
      .join(' OR ')
  const dated: Record<string, string> = {
    hour_to: 'toStartOfHour(period - toIntervalSecond(1))',
    day_to: 'toStartOfDay(period - toIntervalSecond(1))',
    month_to: 'toStartOfMonth(period - toIntervalSecond(1))',
  }
  const sides = plan.rollup.map(
    ({ level, intervals }) => `SELECT toDateTime64(${dated[level] ?? 'period'}, 9) AS event_time, nhi_id, business_unit, service, '' AS activity_name, '' AS on_behalf_of, card_idx, events, sums, missing, spans AS n
      FROM nhi_usage_summary FINAL
      WHERE level = {${level}_level:String} AND policy_key = {policy_key:String} AND (${level in dated ? prefixCondition(level, intervals) : condition(intervals, 'period', level)})`,
  )
  for (const { level } of plan.rollup) params[`${level}_level`] = level
  params.policy_key = plan.policyKey
  if (plan.ledger.length > 0 || sides.length === 0) {
    const match = meterMatchSql(cards)
    const values = valueAggregatesSql(cards)
    const slots = meterSlotsSql(cards)
    Object.assign(params, match.params, values.params, slots.params)
    const time = resolution === 'none' ? 'min(event_time)' : PERIOD_OF[resolution]
    sides.push(`SELECT toDateTime64(at, 9) AS event_time, nhi_id, business_unit, service, activity_name, on_behalf_of, card_idx,
             ${slots.events} AS events, ${slots.sums} AS sums, ${slots.missing} AS missing, c AS n
      FROM (
        SELECT at, nhi_id, business_unit, service, activity_name, on_behalf_of, card_idx, ${match.matched} AS matched, c, s, miss
        FROM (
          SELECT ${time} AS at, nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, toInt16(${match.cardIndex}) AS card_idx,
                 count() AS c, ${values.sums} AS s, ${values.missing} AS miss
          FROM nhi_activity FINAL
          -- Filtered before deduplication: copies of a span share its start time, so they pass or fail together, and
          -- a few seconds of the open hour are read without merging the whole hour.
          PREWHERE ${condition(plan.ledger, 'event_time', 'ledger')}
          GROUP BY ${resolution === 'none' ? '' : 'at, '}nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, card_idx))`)
  }
  return { sql: `(${sides.join('\n      UNION ALL\n      ')})`, params }
}

/** A group-by key ClickHouse groups by: `meter` and `activity.type` come from the meter, in TypeScript. */
export type SqlGroupKey = Exclude<GroupByKey, 'meter' | 'activity.type'>

/**
 * Aggregated usage as columns, one array per field, aligned by index: the
 * requested keys ClickHouse groups by, whether an identity was resolved, the
 * card in force, and the events per meter of that card (element 0 for
 * events that matched no meter, element i + 1 for meter i). Unidentified
 * rows come back too, with blank keys, so completeness comes from the same
 * pass; only identified counts with a meter are billed. Columns rather than
 * row objects: a month grouped by identity is thousands of groups, and an
 * object per row costs more than the query.
 */
export interface BillableAggregates {
  /** Values of each requested SQL key; a period is an ISO 8601 instant. */
  keys: Partial<Record<SqlGroupKey, string[]>>
  identified: boolean[]
  cardIndex: number[]
  events: number[][]
  /**
   * Per row, the exact summed values of its card's sum meters as decimal
   * strings, in the order of `sumSlots` for that card (empty without sum
   * meters): the other meters' elements are always zero and are not sent.
   */
  sums: string[][]
  /** Per row, events per sum meter that carried no value (aligned like `sums`). */
  missing: number[][]
  /** Per card, per meter, the meter's position in a row's `sums` and `missing`, or -1 for a meter that sums nothing. */
  sumSlots: number[][]
  /** Per row, the events it stands for (one event may count for several meters, one per meter class). */
  spans: number[]
}

/** A column of arrays from a result, each element checked (and converted) by `check`. */
function arraysColumn<T>(values: unknown, column: string, check: (value: unknown) => T): T[][] {
  if (!Array.isArray(values)) throw new Error(`billing result: ${column} is not a column`)
  // Checked in place (check returns what it was given, or throws): no second copy of a column of arrays.
  for (const row of values as unknown[]) {
    if (!Array.isArray(row)) throw new Error(`billing result: ${column} holds a non-array: ${JSON.stringify(row).slice(0, 100)}`)
    for (const value of row) check(value)
  }
  return values as T[][]
}

/** A column of counts from a result. */
function countsColumn(values: unknown, column: string): number[] {
  if (!Array.isArray(values)) throw new Error(`billing result: ${column} is not a column`)
  return values.map((v) => toCount(v as number))
}

/** A column of small integers (flags, indexes) from a result; anything else is a bug worth stopping on. */
function smallInts(values: unknown, column: string): number[] {
  if (!Array.isArray(values)) throw new Error(`billing result: ${column} is not a column`)
  for (const value of values) {
    if (!Number.isSafeInteger(value)) throw new Error(`billing result: ${column} holds a non-integer: ${JSON.stringify(value)}`)
  }
  return values as number[]
}

/**
 * Counts use events in the range, grouped by the requested keys (but meter
 * and activity type), by whether an identity was resolved and by card, with
 * the events per meter of the card summed element-wise: a month grouped by
 * identity is about one group per identity, however many meters each used.
 */
export async function billableAggregates(
  client: ClickHouseClient,
  options: { groupBy: GroupByKey[]; granularity: Granularity; cards: readonly RateCard[]; businessUnits: BusinessUnitScope; plan: UsagePlan },
): Promise<BillableAggregates> {
  const source = usageSource(options.plan, options.cards, options.groupBy.includes('period') ? options.granularity : 'none')
  const keyColumns = options.groupBy
    .filter((k): k is SqlGroupKey => k !== 'meter' && k !== 'activity.type')
    .map((k, i) => ({ key: k, alias: `k${i}`, expr: k === 'period' ? PERIOD_OF[options.granularity] : COLUMN_OF[k] }))
  const keys = keyColumns.map((c) => c.alias)
  // The inventory decides a declared identity's business unit: joined only when a key or the caller's scope needs it.
  const needsInventory = options.businessUnits !== null || options.groupBy.includes('business_unit')
  // Unidentified rows bill nothing and only count towards completeness: their keys are blanked, so they fold into a
  // few groups instead of one per service or hour. (A period stays: it is never blank.)
  const select = keyColumns.map((c) => (c.key === 'period' ? `${c.expr} AS ${c.alias}` : `if(nhi_id != '', ${c.expr}, '') AS ${c.alias}`))
  // Ordered by the keys as the bill's rows are, so that sorting again in TypeScript, which decides the order, is
  // one pass. Periods leave ClickHouse as ISO 8601 instants, so no row needs a Date. Counts leave as doubles (JSON
  // numbers, not quoted 64-bit integers): toCount refuses any beyond 2^53 - 1, so none is rounded unnoticed.
  const outer = keyColumns.map((c) => (c.key === 'period' ? `formatDateTime(${c.alias}, '%Y-%m-%dT%H:%i:%SZ', 'UTC')` : c.alias))
  // Sums and events without a value only when a meter sums a value (count-only cards read neither), and only the
  // elements of the meters that sum one: per card, their indexes (1-based, after element 1 for no meter).
  const valued = valueColumns(options.cards).length > 0
  const sumSlots = options.cards.map((card) => {
    let next = 0
    return card.meters.map((m) => (m.aggregation === 'sum' && m.value ? next++ : -1))
  })
  const slotIndexes = options.cards.map((card) => card.meters.flatMap((m, i) => (m.aggregation === 'sum' && m.value ? [i + 2] : [])))
  const result = await client.query({
    query: `
      SELECT ${[...outer, 'toUInt8(identified)', 'toInt32(card_idx)', 'arrayMap(x -> toFloat64(x), m)', valued ? 'arrayMap(i -> toString(ms[i]), {sum_slots:Array(Array(UInt16))}[card_idx + 1])' : '[]', valued ? 'arrayMap(i -> toFloat64(mm[i]), {sum_slots:Array(Array(UInt16))}[card_idx + 1])' : '[]', 'toFloat64(spans)'].join(', ')}
      FROM (
        SELECT ${[...select, "nhi_id != '' AS identified", 'card_idx', 'sumForEach(events) AS m', ...(valued ? ['sumForEach(sums) AS ms', 'sumForEach(missing) AS mm'] : []), 'sum(n) AS spans'].join(', ')}
        FROM ${source.sql} AS usage
        ${needsInventory ? INVENTORY_JOIN : ''}
        WHERE 1 ${businessUnitCondition(options.businessUnits)}
        GROUP BY ${[...keys, 'identified', 'card_idx'].join(', ')}
        ${keys.length > 0 ? `ORDER BY ${keys.join(', ')}` : ''})`,
    // One array per column, parsed in one call into a handful of arrays. The client's format list lacks this
    // format; the client only names it in the query and hands back the text.
    format: 'JSONCompactColumns' as DataFormat,
    query_params: { ...source.params, ...(valued ? { sum_slots: slotIndexes } : {}), ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
    clickhouse_settings: readSettings({ final: true }),
  })
  // Decoded by position here, not through readRows: see BillableAggregates (an object per row costs more than the query).
  const parsed: unknown = JSON.parse(await result.text())
  const n = keyColumns.length
  // No rows come back as [] rather than as empty columns.
  const columns = Array.isArray(parsed) && parsed.length === 0 ? Array.from({ length: n + 6 }, () => []) : parsed
  if (!Array.isArray(columns) || columns.length !== n + 6) throw new Error(`unexpected billing result: ${JSON.stringify(columns).slice(0, 200)}`)
  const aggregates: BillableAggregates = {
    keys: {},
    identified: smallInts(columns[n], 'identified').map((v) => v === 1),
    cardIndex: smallInts(columns[n + 1], 'card_idx'),
    events: arraysColumn(columns[n + 2], 'events', (v) => toCount(v as number)),
    sums: arraysColumn(columns[n + 3], 'sums', (v) => {
      if (typeof v !== 'string' || !/^[0-9]+(\.[0-9]+)?$/.test(v)) throw new Error(`billing result: sums holds ${JSON.stringify(v)}`)
      return v
    }),
    missing: arraysColumn(columns[n + 4], 'missing', (v) => toCount(v as number)),
    spans: countsColumn(columns[n + 5], 'spans'),
    sumSlots,
  }
  keyColumns.forEach((c, i) => {
    const values = columns[i] as unknown[]
    if (!values.every((v) => typeof v === 'string')) throw new Error(`billing result: ${c.key} holds a non-string`)
    aggregates.keys[c.key] = values as string[]
  })
  return aggregates
}
