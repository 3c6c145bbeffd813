/**
 * The billable match (POLICY.md), defined once: which rate card is in
 * force at an event's time, which meter of it prices a span, and the same
 * rule as ClickHouse SQL with every policy value bound as a parameter.
 */
import { formatMoney, multiplyMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import { priceOf } from '../money/pricing.js'
import { quantityFromCount } from '../money/quantity.js'
import { globMatches, globMatchesEverything, globToRe2 } from './glob.js'
import type { Entitlement, Meter, MeterStatus, RateCard } from './schema.js'

/**
 * The card in force at an instant: the one with the latest `effective_from`
 * at or before it; `undefined` before the first card (such events are not
 * billable). Cards may be in any order. Span times finer than a millisecond
 * may be truncated to milliseconds first: `effective_from` is whole
 * milliseconds, so truncation never moves an event across a boundary.
 */
export function cardInForce(cards: readonly RateCard[], eventTime: Date | number): RateCard | undefined {
  const at = typeof eventTime === 'number' ? eventTime : eventTime.getTime()
  let best: RateCard | undefined
  for (const card of cards) {
    if (card.effective_from.ms <= at && (best === undefined || card.effective_from.ms > best.effective_from.ms)) best = card
  }
  return best
}

/** What decides a span's meter. */
export interface BillableSpan {
  /** The derived activity type; a span without one matches no meter. */
  activityType: string | null | undefined
  /** The derived activity name; missing counts as the empty string (which `*` matches). */
  activityName: string | null | undefined
  /** The span status: the ledger's `ok`/`error`, or OTel's `Unset`/`Ok`/`Error` (`STATUS_CODE_*` too). */
  status: string | null | undefined
}

/**
 * The meter that prices a span under a card: the first, in the card's
 * order, whose activity type equals the span's, whose glob matches its
 * activity name, and whose status admits its status. `undefined` when none
 * does (the span is not billable under this card).
 */
export function matchMeter(card: RateCard, span: BillableSpan): Meter | undefined {
  return card.meters.find((meter) => activityRuleMatches(meter, span))
}

/**
 * The class of each of a card's meters, by index: meters that measure the
 * same thing (same aggregation and value) share a class, numbered in order
 * of first appearance. Within a class one span matches at most one meter
 * (first match wins); every class sees every span.
 */
export function meterClasses(card: RateCard): number[] {
  const ids = new Map<string, number>()
  return card.meters.map((meter) => {
    const key = `${meter.aggregation}\u0000${meter.value ?? ''}`
    let id = ids.get(key)
    if (id === undefined) ids.set(key, (id = ids.size))
    return id
  })
}

/** Every meter of a card that counts a span: the first match of each class, in the card's order. */
export function matchMeters(card: RateCard, span: BillableSpan): Meter[] {
  const classes = meterClasses(card)
  const taken = new Set<number>()
  const matched: Meter[] = []
  card.meters.forEach((meter, i) => {
    const klass = classes[i]!
    if (taken.has(klass) || !activityRuleMatches(meter, span)) return
    taken.add(klass)
    matched.push(meter)
  })
  return matched
}

/** The part of a meter or entitlement that selects spans. */
export type ActivityRule = Pick<Meter | Entitlement, 'activity_type' | 'activity_name' | 'status'>

/** Whether one meter's or entitlement's rule counts a span: same activity type, matching name glob, admitted status. */
export function activityRuleMatches(rule: ActivityRule, span: BillableSpan): boolean {
  if (!span.activityType || rule.activity_type !== span.activityType) return false
  return statusAdmits(rule.status, isErrorStatus(span.status)) && globMatches(rule.activity_name, span.activityName ?? '')
}

/** True for a status that means the span failed; Unset, Ok and a missing status all count as ok. */
export function isErrorStatus(status: string | null | undefined): boolean {
  return status === 'error' || status === 'Error' || status === 'STATUS_CODE_ERROR'
}

/** Whether a meter or entitlement `status` (ok | error | any) admits a span that did or did not fail. */
export function statusAdmits(wanted: MeterStatus, spanFailed: boolean): boolean {
  return wanted === 'any' || (wanted === 'error') === spanFailed
}

/**
 * What a quantity costs under a meter's price model alone (money/pricing.ts
 * `priceOf`): a count of events, or the digits ClickHouse sends. The
 * allowance and minimum are per rating group (a month's usage of a business
 * unit), so they are not applied here: use `rateGroup` for a bill.
 */
export function chargeFor(meter: Meter, quantity: bigint | number | string): Money {
  if (meter.unit_price !== null) return multiplyMoney(meter.unit_price, quantity)
  return priceOf(meter.price.model, quantityFromCount(typeof quantity === 'string' ? countFromDigits(quantity) : quantity))
}

function countFromDigits(text: string): bigint {
  if (!/^[0-9]{1,20}$/.test(text)) throw new RangeError(`quantity must be a string of digits (a count), got ${JSON.stringify(text.slice(0, 40))}`)
  return BigInt(text)
}

/** A stretch of time priced by one card: `[from, to)` in epoch milliseconds. */
export interface RateCardPeriod {
  readonly card: RateCard
  readonly from: number
  readonly to: number
}

/**
 * Splits `[from, to)` into the stretches each card prices, in time order,
 * so a query can price each stretch with its own card's meters. Time before
 * the first card is left out: nothing is billable then.
 */
export function cardPeriods(cards: readonly RateCard[], from: number, to: number): RateCardPeriod[] {
  const ordered = [...cards].sort((a, b) => a.effective_from.ms - b.effective_from.ms)
  const periods: RateCardPeriod[] = []
  ordered.forEach((card, i) => {
    const start = Math.max(from, card.effective_from.ms)
    const end = Math.min(to, ordered[i + 1]?.effective_from.ms ?? Infinity)
    if (start < end) periods.push({ card, from: start, to: end })
  })
  return periods
}

// ---- the same rule in ClickHouse SQL

/** Query parameters that carry one card's meters into {@link meterIndexSql}; bind them, never splice them. */
export interface MeterSqlParams {
  readonly [name: string]: readonly string[] | readonly number[] | string
}

const PARAM_PREFIX = /^[a-z][a-z0-9_]{0,30}$/

/**
 * A ClickHouse expression giving the 1-based index of the first meter of
 * `card` a row matches (0 for none), for rows with `activity_type`,
 * `activity_name` and the ledger's `status` (`ok` | `error`) columns. Every
 * policy value is a bound String parameter (`<prefix>_type_<i>`,
 * `<prefix>_status_<i>` and `<prefix>_name_re_<i>` for meter i, 1-based);
 * fill them with {@link meterSqlParams}. Only the card's shape (how many
 * meters, which match any status or any name, and with `meterClass`, which
 * belong to that class: see {@link meterClasses}) makes the SQL text. The prefix is SQL text, so it must be a constant of the
 * calling code (it is checked), never user input.
 *
 * One condition per meter, each on constants, rather than a lambda over the
 * parameter arrays: ClickHouse then compares whole columns at once and
 * compiles each pattern once (measured on the ledger's last 50,000 spans,
 * grouped by identity for a bill: the statement took 22 ms in place of
 * 30).
 */
export function meterIndexSql(card: RateCard, prefix = 'meter', meterClass?: number): string {
  if (!PARAM_PREFIX.test(prefix)) throw new RangeError(`parameter prefix must match ${String(PARAM_PREFIX)}, got ${JSON.stringify(prefix)}`)
  if (meterClass !== undefined && (!Number.isSafeInteger(meterClass) || meterClass < 0)) throw new RangeError(`meter class must be a whole number, got ${String(meterClass)}`)
  const classes = meterClasses(card)
  const cases: string[] = []
  card.meters.forEach((meter, i) => {
    if (meterClass !== undefined && classes[i] !== meterClass) return
    // One String parameter per meter and test (not an element of the card's array: SQL that inlines its parameters,
    // as the dashboards do, would repeat the whole array per meter). A meter of any status or any name leaves that
    // test out (the values stay bound all the same).
    const at = (name: string) => `{${prefix}_${name}_${i + 1}:String}`
    const tests = [`activity_type = ${at('type')}`]
    if (meter.status !== 'any') tests.push(`status = ${at('status')}`)
    if (!globMatchesEverything(meter.activity_name)) tests.push(`match(activity_name, ${at('name_re')})`)
    cases.push(`${tests.join(' AND ')}, ${i + 1}`)
  })
  return cases.length === 0 ? '0' : `multiIf(${cases.join(', ')}, 0)`
}

/**
 * The parameters for {@link meterIndexSql} from one card, plus
 * `<prefix>_names` (meter names in the same order, so `<prefix>_names[idx]`
 * names the matched meter in SQL) and `<prefix>_prices` (unit prices as
 * fixed 9-decimal strings, for `toDecimal128(price, 9)` if SQL should
 * price; "0.000000000" for a meter priced by tiers or packages, which has
 * no price per unit; pricing in TypeScript is exact, money/pricing.ts).
 */
export function meterSqlParams(card: RateCard, prefix = 'meter'): MeterSqlParams {
  meterIndexSql(card, prefix) // validates the prefix
  return {
    // Per meter (1-based), what meterIndexSql tests.
    ...Object.fromEntries(
      card.meters.flatMap((m, i) => [
        [`${prefix}_type_${i + 1}`, m.activity_type],
        [`${prefix}_status_${i + 1}`, m.status],
        [`${prefix}_name_re_${i + 1}`, globToRe2(m.activity_name)],
      ]),
    ),
    [`${prefix}_names`]: card.meters.map((m) => m.name),
    // TODO(pricing): tiered and package meters have no price per event; they read as 0 here, so SQL that prices
    // rows with `_prices` (dashboards/sql.ts meterPriceSql) shows them unpriced until it takes the rated amounts.
    [`${prefix}_prices`]: card.meters.map((m) => formatMoney(m.unit_price ?? ZERO_MONEY, { fixed: true })),
  }
}

/**
 * A ClickHouse condition true for rows one activity rule (an entitlement,
 * or a single meter) counts, with the rule bound as `<prefix>_type`,
 * `<prefix>_name_re` and `<prefix>_status` String parameters from
 * {@link activityRuleSqlParams}. Same columns and prefix rule as
 * {@link meterIndexSql}.
 */
export function activityRuleSql(prefix = 'rule'): string {
  if (!PARAM_PREFIX.test(prefix)) throw new RangeError(`parameter prefix must match ${String(PARAM_PREFIX)}, got ${JSON.stringify(prefix)}`)
  return (
    `(activity_type = {${prefix}_type:String} AND ({${prefix}_status:String} = 'any' OR {${prefix}_status:String} = status) ` +
    `AND match(activity_name, {${prefix}_name_re:String}))`
  )
}

/** The parameters for {@link activityRuleSql} from an entitlement or meter. */
export function activityRuleSqlParams(rule: ActivityRule, prefix = 'rule'): Readonly<Record<string, string>> {
  activityRuleSql(prefix) // validates the prefix
  return {
    [`${prefix}_type`]: rule.activity_type,
    [`${prefix}_name_re`]: globToRe2(rule.activity_name),
    [`${prefix}_status`]: rule.status,
  }
}

// ---- completeness (README, "Billing")

/** Whether a billing period's evidence is trustworthy: `complete` or `incomplete`. */
export type CompletenessStatus = 'complete' | 'incomplete'

/**
 * `complete` when identified spans / all spans ≥ the threshold
 * (`billing.completeness_threshold`), decided in integers so a ratio equal
 * to the threshold is never lost to rounding. A period with no spans is
 * `complete`: nothing went unidentified (silence is a telemetry_gap
 * finding, not a billing status).
 */
export function completenessStatus(spans: bigint | number, identifiedSpans: bigint | number, threshold: number): CompletenessStatus {
  const total = BigInt(spans)
  if (total === 0n) return 'complete'
  const [numerator, denominator] = ratioParts(threshold)
  return BigInt(identifiedSpans) * denominator >= total * numerator ? 'complete' : 'incomplete'
}

/**
 * The share of spans that were identified, as every answer states it:
 * rounded down to 6 decimals (so a ratio just under the threshold never
 * reads as equal to it), and 1 when there were no spans.
 */
export function identifiedRatio(spans: number, identifiedSpans: number): number {
  return spans === 0 ? 1 : Math.floor((identifiedSpans / spans) * 1e6) / 1e6
}

// The validated threshold is a decimal of at most 6 places; its shortest
// string is that decimal exactly, so it splits into integer parts.
function ratioParts(threshold: number): [bigint, bigint] {
  const text = String(threshold)
  const match = /^([0-9]+)(?:\.([0-9]+))?$/.exec(text)
  if (!match) throw new RangeError(`threshold must be a plain decimal from 0 to 1, got ${text}`)
  const fraction = match[2] ?? ''
  return [BigInt((match[1] ?? '0') + fraction), 10n ** BigInt(fraction.length)]
}
