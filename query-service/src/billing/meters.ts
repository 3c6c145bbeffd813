/**
 * The billable match as SQL: which rate card is in force at an event and
 * which of its meters the event matches. Billing applies it to ledger rows
 * when it reads them, the summary job when it summarises them, so both
 * decide alike.
 */
import { toClickHouseTime } from '../storage/time.js'
import { meterIndexSql, meterSqlParams, type RateCard } from '../policy/index.js'

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

/** SQL naming the meter of a row from its `card_idx` and its meter index column ('' when none), with meterNameParams. */
export function meterNameSql(cards: readonly RateCard[], meterColumn = 'meter_idx'): string {
  if (cards.length === 0) return "''"
  return `multiIf(${meterColumn} < 0, '', ${cards.map((_, i) => `card_idx = ${i}, arrayElement({card${i}_names:Array(String)}, ${meterColumn} + 1)`).join(', ')}, '')`
}

/** The parameters meterNameSql needs (each card's meter names), without the rest of the match. */
export function meterNameParams(cards: readonly RateCard[]): Record<string, string[]> {
  return Object.fromEntries(cards.map((card, i) => [`card${i}_names`, card.meters.map((m) => m.name)]))
}

/**
 * SQL turning a count `n` of events that matched meter `meter_idx` (-1 for
 * none) into a summary array (migration 0026): zeros, then `n` at element
 * meter_idx + 2. Summed element-wise with sumForEach.
 */
export const METER_SLOT_SQL = 'arrayPushBack(arrayWithConstant(toUInt32(meter_idx + 1), toUInt64(0)), toUInt64(n))'
