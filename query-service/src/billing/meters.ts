/**
 * The billable match as SQL: which rate card is in force at an event and
 * which of its meters count it. Billing applies it to ledger rows when it
 * reads them, the summary job when it summarises them, so both decide alike.
 *
 * A card's meters fall into classes (policy `meterClasses`): meters of one
 * class measure the same thing (the same aggregation and value), and one
 * event counts for at most one meter of each class, the first that matches.
 * A token meter and a call-count meter therefore both see a model call.
 *
 * Usage is kept per meter in three arrays aligned by meter (migrations 0026
 * and 0029): `events` (element 1 counts events that matched no meter of
 * the card, element i + 2 those that matched meter i), `sums` (element
 * i + 2: the summed value of sum meter i, exact Decimal128(9)) and
 * `missing` (element i + 2: events of sum meter i that carried no value).
 * Trailing zeros are left out and the arrays are summed element-wise
 * (sumForEach), so a card with count meters only keeps `sums` and
 * `missing` empty.
 */
import { toClickHouseTime } from '../storage/time.js'
import { meterClasses, meterIndexSql, meterSqlParams, type Meter, type RateCard } from '../policy/index.js'

/** The span value a sum meter adds: a numeric span attribute kept in the ledger's `measures`, or `duration_ms`. */
export const DURATION_VALUE = 'duration_ms'

/** The distinct values the sum meters of the cards add, in first-appearance order: the ledger is summed once per value. */
export function valueColumns(cards: readonly RateCard[]): string[] {
  const values: string[] = []
  for (const card of cards) for (const meter of card.meters) if (meter.aggregation === 'sum' && meter.value && !values.includes(meter.value)) values.push(meter.value)
  return values
}

/**
 * SQL aggregates over ledger rows (columns `measures`, `duration_ns`)
 * summing each value column: `sums` (Array(Decimal128(9))) and `missing`
 * (Array(UInt64), rows without a value), aligned with {@link valueColumns};
 * constant empty arrays when no meter sums a value. A span's duration is
 * counted in whole milliseconds, rounded up per span.
 */
export function valueAggregatesSql(cards: readonly RateCard[]): { sums: string; missing: string; params: Record<string, string> } {
  const values = valueColumns(cards)
  if (values.length === 0) return { sums: "CAST([], 'Array(Decimal128(9))')", missing: "CAST([], 'Array(UInt64)')", params: {} }
  const params: Record<string, string> = {}
  const valueOf = values.map((value, j) => {
    if (value === DURATION_VALUE) return 'toDecimal128(intDiv(duration_ns + 999999, 1000000), 9)'
    params[`value_${j}`] = value
    return `toDecimal128OrNull(measures[{value_${j}:String}], 9)`
  })
  return {
    sums: `[${valueOf.map((v) => `sum(ifNull(${v}, toDecimal128(0, 9)))`).join(', ')}]`,
    missing: `[${valueOf.map((v) => `countIf(${v} IS NULL)`).join(', ')}]`,
    params,
  }
}

/**
 * SQL expressions for ledger rows with `event_time`, `activity_type`,
 * `activity_name` and `status`: `cardIndex`, the index of the rate card in
 * force at the row's start (cards sorted by effective_from; -1 before the
 * first), and, for rows that also have `card_idx`, `matched`: the 1-based
 * indexes of the card's meters that count the row, one per class at most
 * (empty when none). The meter match itself is the policy module's
 * `meterIndexSql`, the one definition of the billable match; every policy
 * value is a bound parameter.
 */
export function meterMatchSql(cards: readonly RateCard[]): { cardIndex: string; matched: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {}
  if (cards.length === 0) return { cardIndex: '-1', matched: "CAST([], 'Array(UInt16)')", params }
  const cardBranches: string[] = []
  const matchBranches: string[] = []
  // Latest card first: the card in force is the latest one that started at or before the event.
  for (let i = cards.length - 1; i >= 0; i--) {
    params[`card_from_${i}`] = toClickHouseTime(new Date(cards[i]!.effective_from.ms))
    cardBranches.push(`event_time >= {card_from_${i}:DateTime64(9)}, ${i}`)
  }
  cards.forEach((card, i) => {
    Object.assign(params, meterSqlParams(card, `card${i}`))
    const classCount = new Set(meterClasses(card)).size
    const firsts =
      classCount === 1
        ? [meterIndexSql(card, `card${i}`)]
        : Array.from({ length: classCount }, (_, k) => meterIndexSql(card, `card${i}`, k))
    matchBranches.push(`card_idx = ${i}, arrayFilter(x -> x > 0, [${firsts.map((f) => `toUInt16(${f})`).join(', ')}])`)
  })
  return {
    cardIndex: `multiIf(${cardBranches.join(', ')}, -1)`,
    matched: `multiIf(${matchBranches.join(', ')}, CAST([], 'Array(UInt16)'))`,
    params,
  }
}

/**
 * The per-meter arrays of migrations 0026 and 0029 from rows with
 * `matched` (see {@link meterMatchSql}), `card_idx`, a count `c`, and the
 * value aggregates `s` and `miss` of {@link valueAggregatesSql}: SQL for
 * `events`, `sums` and `missing`, with their parameters (which value column
 * each meter of each card adds).
 */
export function meterSlotsSql(cards: readonly RateCard[]): { events: string; sums: string; missing: string; params: Record<string, number[]> } {
  const events =
    'if(empty(matched), [toUInt64(c)], arrayPushFront(arrayMap(j -> if(has(matched, j), toUInt64(c), toUInt64(0)), range(1, toUInt32(arrayMax(matched)) + 1)), toUInt64(0)))'
  const values = valueColumns(cards)
  if (values.length === 0) return { events, sums: "CAST([], 'Array(Decimal128(9))')", missing: "CAST([], 'Array(UInt64)')", params: {} }
  const params: Record<string, number[]> = {}
  meterValueColumns(cards).forEach((columns, i) => (params[`card${i}_value_col`] = columns))
  const column = `multiIf(${cards.map((_, i) => `card_idx = ${i}, {card${i}_value_col:Array(UInt8)}`).join(', ')}, CAST([], 'Array(UInt8)'))`
  const slots = (zero: string, pick: string) =>
    `if(arrayExists(j -> vc[j] > 0, matched), arrayPushFront(arrayMap(j -> if(has(matched, j) AND vc[j] > 0, ${pick}, ${zero}), range(1, toUInt32(arrayMax(matched)) + 1)), ${zero}), [])`
  return {
    events,
    sums: `(arrayMap(vc -> ${slots('toDecimal128(0, 9)', 's[vc[j]]')}, [${column}])[1])`,
    missing: `(arrayMap(vc -> ${slots('toUInt64(0)', 'toUInt64(miss[vc[j]])')}, [${column}])[1])`,
    params,
  }
}

/** Per card, for each meter, the 1-based index in {@link valueColumns} of the value it sums (0: not a sum meter). */
export function meterValueColumns(cards: readonly RateCard[]): number[][] {
  const values = valueColumns(cards)
  return cards.map((card) => card.meters.map((m: Meter) => (m.aggregation === 'sum' && m.value ? values.indexOf(m.value) + 1 : 0)))
}

/** SQL naming the meter of a row from its `card_idx` and a 0-based meter index column ('' when none), with meterNameParams. */
export function meterNameSql(cards: readonly RateCard[], meterColumn = 'meter_idx'): string {
  if (cards.length === 0) return "''"
  return `multiIf(${meterColumn} < 0, '', ${cards.map((_, i) => `card_idx = ${i}, arrayElement({card${i}_names:Array(String)}, ${meterColumn} + 1)`).join(', ')}, '')`
}

/** The parameters meterNameSql needs (each card's meter names), without the rest of the match. */
export function meterNameParams(cards: readonly RateCard[]): Record<string, string[]> {
  return Object.fromEntries(cards.map((card, i) => [`card${i}_names`, card.meters.map((m) => m.name)]))
}
