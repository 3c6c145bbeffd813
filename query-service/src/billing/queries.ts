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
import { toClickHouseTime } from '../storage/time.js'
import { readSettings, toCount } from '../storage/read.js'
import type { Interval, UsagePlan } from './plan.js'
import { businessUnitCondition, EFFECTIVE_BUSINESS_UNIT, INVENTORY_JOIN, type BusinessUnitScope } from '../identities/effective.js'
import type { RateCard } from '../policy/index.js'
import { meterMatchSql, meterSlotsSql, meterValueColumns, valueAggregatesSql } from './meters.js'
import type { Quantity } from '../money/quantity.js'
import { queryRowBinary, sumQuantity, sumValue, type SumValue } from '../storage/row-binary.js'

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
  const condition = (intervals: Interval[], column: string, prefix: string) => intervalCondition(intervals, column, prefix, params)
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

/** SQL true for `column` in any of the intervals ('0' for none); their bounds go into `params` as `<prefix><i>_from` and `_to`. */
function intervalCondition(intervals: Interval[], column: string, prefix: string, params: Record<string, unknown>): string {
  if (intervals.length === 0) return '0'
  return intervals
    .map(([from, to], i) => {
      params[`${prefix}${i}_from`] = toClickHouseTime(new Date(from))
      params[`${prefix}${i}_to`] = toClickHouseTime(new Date(to))
      return `(${column} >= {${prefix}${i}_from:DateTime64(9)} AND ${column} < {${prefix}${i}_to:DateTime64(9)})`
    })
    .join(' OR ')
}

/** A group-by key ClickHouse groups by: `meter` and `activity.type` come from the meter, in TypeScript. */
export type SqlGroupKey = Exclude<GroupByKey, 'meter' | 'activity.type'>

/**
 * Aggregated usage as columns, one array per field, aligned by index: the
 * requested keys ClickHouse groups by, whether an identity was resolved, the
 * card in force, and per meter of that card the events, sums and events
 * without a value (element 0 for events that matched no meter, element
 * i + 1 for meter i; trailing zeros may be left out). Unidentified rows
 * come back too, with blank keys, so completeness comes from the same pass;
 * only identified counts with a meter are billed. Columns rather than row
 * objects: a month grouped by identity is thousands of groups, and an
 * object per row costs more than the query. Rows come in key order, each
 * key tuple (with its card and whether identified) once.
 */
export interface BillableAggregates {
  /** Values of each requested SQL key; a period is an ISO 8601 instant. */
  keys: Partial<Record<SqlGroupKey, string[]>>
  identified: boolean[]
  cardIndex: number[]
  events: number[][]
  /**
   * Per row, the exact summed values of its card's meters from the card's
   * first sum meter to its last (element j is meter `sumFirst[card] + j`; a
   * count meter's in between is 0; empty for a card without sum meters).
   */
  sums: SumValue[][]
  /** Per row, the events of each sum meter that carried no value (aligned like `sums`). */
  missing: number[][]
  /** Per card, the meter index of each row's `sums[0]` and `missing[0]`. */
  sumFirst: number[]
  /** Per row, the events it stands for (one event may count for several meters, one per meter class). */
  spans: number[]
}

/**
 * Counts use events in the range, grouped by the requested keys (but meter
 * and activity type), by whether an identity was resolved and by card, with
 * the events per meter of the card summed element-wise: a month grouped by
 * identity is about one group per identity, however many meters each used.
 *
 * When the plan reads one summary level at the bill's granularity and the
 * keys hold the identity (a closed month's bill by identity), its rows are
 * about one per group already: they are read in key order without a
 * GROUP BY, and the few groups split over several rows (an identity seen
 * under two services) are added up here (measured: the GROUP BY was about
 * half of ClickHouse's time for such a bill). Rows are read in binary
 * (storage/row-binary.ts): parsing them as JSON cost more than the query.
 */
export async function billableAggregates(
  client: ClickHouseClient,
  options: { groupBy: GroupByKey[]; granularity: Granularity; cards: readonly RateCard[]; businessUnits: BusinessUnitScope; plan: UsagePlan },
): Promise<BillableAggregates> {
  const { plan } = options
  if (plan.rollup.length === 0) return ledgerAggregates(client, options)
  const source = usageSource(plan, options.cards, options.groupBy.includes('period') ? options.granularity : 'none')
  const { keyColumns, keys, select, outer, needsInventory, sumFirst, sumSlice } = aggregateShape(options)
  const presorted = plan.ledger.length === 0 && plan.rollup.length === 1 && plan.rollup[0]!.level === options.granularity && options.groupBy.includes('nhi.id')
  const inner = presorted
    ? `SELECT ${[...select, "nhi_id != '' AS identified", 'card_idx', 'events AS m', 'sums AS ms', 'missing AS mm', 'n AS spans'].join(', ')}`
    : `SELECT ${[...select, "nhi_id != '' AS identified", 'card_idx', 'sumForEach(events) AS m', 'sumForEach(sums) AS ms', 'sumForEach(missing) AS mm', 'sum(n) AS spans'].join(', ')}`
  const order = presorted ? [...keys, 'identified', 'card_idx'] : keys
  const slice = (column: string) => `arraySlice(${column}, {sum_from:Array(UInt16)}[card_idx + 1], {sum_length:Array(UInt16)}[card_idx + 1])`
  // Binary rows (storage/row-binary.ts): a month by identity is thousands of rows of a dozen numbers each.
  const reader = await queryRowBinary(client, {
    query: `
      SELECT ${[...outer, 'toUInt8(identified)', 'toInt16(card_idx)', "CAST(m, 'Array(UInt64)')", `CAST(${slice('ms')}, 'Array(Decimal(38, 9))')`, `CAST(${slice('mm')}, 'Array(UInt64)')`, 'toUInt64(spans)'].join(', ')}
      FROM (
        ${inner}
        FROM ${source.sql} AS usage
        ${needsInventory ? INVENTORY_JOIN : ''}
        WHERE 1 ${businessUnitCondition(options.businessUnits)}
        ${presorted ? '' : `GROUP BY ${[...keys, 'identified', 'card_idx'].join(', ')}`}
        ${order.length > 0 ? `ORDER BY ${order.join(', ')}` : ''})`,
    params: { ...source.params, ...sumSlice, ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
    settings: readSettings({ final: true }),
    types: [...keyColumns.map(() => 'String'), 'UInt8', 'Int16', 'Array(UInt64)', 'Array(Decimal(38, 9))', 'Array(UInt64)', 'UInt64'],
  })
  const keyValues = keyColumns.map((): string[] => [])
  const aggregates: BillableAggregates = { keys: {}, identified: [], cardIndex: [], events: [], sums: [], missing: [], spans: [], sumFirst }
  while (!reader.done) {
    for (const values of keyValues) values.push(reader.string())
    aggregates.identified.push(reader.uint8() === 1)
    aggregates.cardIndex.push(reader.int16())
    aggregates.events.push(reader.counts())
    aggregates.sums.push(reader.decimals9())
    aggregates.missing.push(reader.counts())
    aggregates.spans.push(reader.count())
  }
  keyColumns.forEach((c, i) => (aggregates.keys[c.key] = keyValues[i]))
  return presorted ? mergeAdjacent(aggregates) : aggregates
}

type AggregateOptions = Parameters<typeof billableAggregates>[1]

/** What both reads share: the key columns, their SQL, whether the inventory is joined, and the sum meters' stretch. */
function aggregateShape(options: AggregateOptions) {
  const keyColumns = options.groupBy
    .filter((k): k is SqlGroupKey => k !== 'meter' && k !== 'activity.type')
    .map((k, i) => ({ key: k, alias: `k${i}`, expr: k === 'period' ? PERIOD_OF[options.granularity] : COLUMN_OF[k] }))
  // The inventory decides a declared identity's business unit: joined only when a key or the caller's scope needs it.
  const needsInventory = options.businessUnits !== null || options.groupBy.includes('business_unit')
  // Only the stretch of the arrays from each card's first sum meter to its last leaves ClickHouse (element 1 of
  // `events`, `sums` and `missing` is for events of no meter, so meter m is element m + 2): the rest are zeros.
  const sumMeters = options.cards.map((card) => card.meters.flatMap((m, i) => (m.aggregation === 'sum' ? [i] : [])))
  return {
    keyColumns,
    keys: keyColumns.map((c) => c.alias),
    // Unidentified rows bill nothing and only count towards completeness: their keys are blanked, so they fold into a
    // few groups instead of one per service or hour. (A period stays: it is never blank.)
    select: keyColumns.map((c) => (c.key === 'period' ? `${c.expr} AS ${c.alias}` : `if(nhi_id != '', ${c.expr}, '') AS ${c.alias}`)),
    // Periods leave ClickHouse as ISO 8601 instants, so no row needs a Date.
    outer: keyColumns.map((c) => (c.key === 'period' ? `formatDateTime(${c.alias}, '%Y-%m-%dT%H:%i:%SZ', 'UTC')` : `toString(${c.alias})`)),
    needsInventory,
    sumFirst: sumMeters.map((indexes) => indexes[0] ?? 0),
    sumSlice: {
      sum_from: sumMeters.map((indexes) => (indexes.length > 0 ? indexes[0]! + 2 : 1)),
      sum_length: sumMeters.map((indexes) => (indexes.length > 0 ? indexes.at(-1)! - indexes[0]! + 1 : 0)),
    },
  }
}

/**
 * Aggregates of a plan that reads only the ledger (the seconds since the
 * summary job's last run, or a range the summary cannot serve), as one flat
 * GROUP BY: by the keys, the card and the meters an event matched, with
 * plain counts and value sums. The per-meter arrays the summary keeps
 * (meters.ts) are made here from those few numbers per row; building them
 * in ClickHouse for every group and summing them element by element cost
 * more than reading the ledger, and the nested statement took longer to
 * plan (measured on 50,000 spans in the last ten seconds of a 2M-span open
 * hour, the summary job's usual tail: the read took 31 ms in place of
 * 50–55; an empty one 11 ms in place of 14–16).
 */
async function ledgerAggregates(client: ClickHouseClient, options: AggregateOptions): Promise<BillableAggregates> {
  const { cards } = options
  const { keyColumns, keys, select, outer, needsInventory, sumFirst } = aggregateShape(options)
  const params: Record<string, unknown> = {}
  const ledger = intervalCondition(options.plan.ledger, 'event_time', 'ledger', params)
  const match = meterMatchSql(cards)
  const values = valueAggregatesSql(cards)
  Object.assign(params, match.params, values.params)
  const reader = await queryRowBinary(client, {
    query: `
      SELECT ${[...outer, 'toUInt8(identified)', 'toInt16(card_idx)', "CAST(matched, 'Array(UInt64)')", 'toUInt64(c)', "CAST(s, 'Array(Decimal(38, 9))')", "CAST(miss, 'Array(UInt64)')"].join(', ')}
      FROM (
        SELECT ${[...select, "nhi_id != '' AS identified", 'card_idx', `${match.matched} AS matched`, 'count() AS c', `${values.sums} AS s`, `${values.missing} AS miss`].join(', ')}
        FROM (
          SELECT event_time, nhi_id, business_unit, service, activity_type, activity_name, status, on_behalf_of, measures, duration_ns, toInt16(${match.cardIndex}) AS card_idx
          FROM nhi_activity FINAL
          -- Filtered before deduplication: copies of a span share its start time, so they pass or fail together, and
          -- a few seconds of the open hour are read without merging the whole hour.
          PREWHERE ${ledger}) AS usage
        ${needsInventory ? INVENTORY_JOIN : ''}
        WHERE 1 ${businessUnitCondition(options.businessUnits)}
        GROUP BY ${[...keys, 'identified', 'card_idx', 'matched'].join(', ')}
        ORDER BY ${[...keys, 'identified', 'card_idx'].join(', ')})`,
    params: { ...params, ...(options.businessUnits ? { business_units: options.businessUnits } : {}) },
    settings: readSettings({ final: true }),
    types: [...keyColumns.map(() => 'String'), 'UInt8', 'Int16', 'Array(UInt64)', 'UInt64', 'Array(Decimal(38, 9))', 'Array(UInt64)'],
  })
  const valueColumn = meterValueColumns(cards)
  const keyValues = keyColumns.map((): string[] => [])
  const aggregates: BillableAggregates = { keys: {}, identified: [], cardIndex: [], events: [], sums: [], missing: [], spans: [], sumFirst }
  const { identified: identifiedColumn, cardIndex, events, sums, missing, spans } = aggregates
  const rowKeys = keyColumns.map(() => '')
  while (!reader.done) {
    for (let k = 0; k < rowKeys.length; k++) rowKeys[k] = reader.string()
    const identified = reader.uint8() === 1
    const card = reader.int16()
    const matched = reader.counts()
    const c = reader.count()
    const s = reader.decimals9()
    const miss = reader.counts()
    // Rows of one key tuple, card and whether identified (that matched different meters) are adjacent: added into one.
    let r = cardIndex.length - 1
    let same = r >= 0 && cardIndex[r] === card && identifiedColumn[r] === identified
    for (let k = 0; k < rowKeys.length && same; k++) same = keyValues[k]![r] === rowKeys[k]
    if (!same) {
      r = cardIndex.length
      for (let k = 0; k < rowKeys.length; k++) keyValues[k]!.push(rowKeys[k]!)
      identifiedColumn.push(identified)
      cardIndex.push(card)
      events.push([0])
      sums.push([])
      missing.push([])
      spans.push(0)
    }
    spans[r] = toCount(spans[r]! + c)
    // As meters.ts lays them out: element 0 counts events of no meter, element j those of meter j - 1 (1-based j).
    const counted = events[r]!
    if (matched.length === 0) counted[0] = toCount(counted[0]! + c)
    for (const j of matched) {
      while (counted.length <= j) counted.push(0)
      counted[j] = toCount(counted[j]! + c)
    }
    // Sums and events without a value, from the card's first sum meter to its last, for the matched meters that sum.
    const first = sumFirst[card] ?? 0
    const columns = valueColumn[card] ?? []
    for (const j of matched) {
      const column = columns[j - 1] ?? 0
      const k = j - 1 - first
      if (column === 0 || k < 0) continue
      const rowSums = sums[r]!
      const rowMissing = missing[r]!
      while (rowSums.length <= k) rowSums.push(0)
      while (rowMissing.length <= k) rowMissing.push(0)
      rowSums[k] = sumValue((sumQuantity(rowSums[k]!) + sumQuantity(s[column - 1] ?? 0)) as Quantity)
      rowMissing[k] = toCount(rowMissing[k]! + (miss[column - 1] ?? 0))
    }
  }
  keyColumns.forEach((c, i) => (aggregates.keys[c.key] = keyValues[i]))
  return aggregates
}

/**
 * Aggregates with adjacent rows that share their keys, card and whether
 * identified added into one, element by element: counts as numbers (a total
 * past 2^53 - 1 is refused, as one from ClickHouse would be), sums exactly.
 */
export function mergeAdjacent(aggregates: BillableAggregates): BillableAggregates {
  const { identified, cardIndex, events, sums, missing, spans } = aggregates
  const keyColumns = Object.values(aggregates.keys)
  const same = (a: number, b: number) => identified[a] === identified[b] && cardIndex[a] === cardIndex[b] && keyColumns.every((column) => column[a] === column[b])
  let kept = 0
  for (let i = 0; i < cardIndex.length; i++) {
    if (kept > 0 && same(kept - 1, i)) {
      const into = kept - 1
      events[into] = addCounts(events[into]!, events[i]!)
      missing[into] = addCounts(missing[into]!, missing[i]!)
      sums[into] = addSums(sums[into]!, sums[i]!)
      spans[into] = toCount(spans[into]! + spans[i]!)
      continue
    }
    if (kept !== i) {
      identified[kept] = identified[i]!
      cardIndex[kept] = cardIndex[i]!
      events[kept] = events[i]!
      missing[kept] = missing[i]!
      sums[kept] = sums[i]!
      spans[kept] = spans[i]!
      for (const column of keyColumns) column[kept] = column[i]!
    }
    kept++
  }
  for (const column of [identified, cardIndex, events, sums, missing, spans, ...keyColumns]) column.length = kept
  return aggregates
}

/** Counts added element by element (a total past 2^53 - 1 is refused). */
export function addCounts(a: readonly number[], b: readonly number[]): number[] {
  const out = a.length >= b.length ? a.slice() : b.slice()
  const other = a.length >= b.length ? b : a
  for (let j = 0; j < other.length; j++) out[j] = toCount(out[j]! + other[j]!)
  return out
}

/** Sums added element by element, exactly. */
export function addSums(a: readonly SumValue[], b: readonly SumValue[]): SumValue[] {
  return Array.from({ length: Math.max(a.length, b.length) }, (_, j) => sumValue((sumQuantity(a[j] ?? 0) + sumQuantity(b[j] ?? 0)) as Quantity))
}
