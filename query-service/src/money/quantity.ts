/**
 * Exact quantities: how much of a meter was used (events, tokens, bytes,
 * milliseconds, active identities) and the quantities a rate card names
 * (tier bounds, allowances, package sizes). A quantity is a bigint scaled
 * by 10^9, like money, so a decimal such as "0.5" GiB is exact and a count
 * is simply `n × 10^9`. Quantities are never negative.
 */
import { MONEY_SCALE, MoneyError, tryParseScaledDecimal } from './decimal.js'

/** Digits kept after the decimal point of a quantity: the same nine as money, so products are exact before one rounding. */
export const QUANTITY_SCALE = MONEY_SCALE

/** Digits allowed before the decimal point of a parsed quantity (10^15 tokens in one tier bound is far beyond any card). */
export const MAX_QUANTITY_INTEGER_DIGITS = 15

/** 10^9: one whole unit of a quantity, scaled. */
export const QUANTITY_UNIT = 10n ** BigInt(QUANTITY_SCALE)

declare const quantityBrand: unique symbol
/** An exact, non-negative quantity: an integer count of 10^-9 units. Build it with the functions here. */
export type Quantity = bigint & { readonly [quantityBrand]: true }

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
// A whole number that a double holds exactly, as ClickHouse writes most sums.
const SMALL_WHOLE = /^[0-9]{1,15}$/

/** Nothing used. */
export const ZERO_QUANTITY = 0n as Quantity

/** The outcome of {@link tryParseQuantity}: the quantity, or the problem in words (no key path; the caller adds it). */
export type QuantityParseResult = { ok: true; value: Quantity } | { ok: false; problem: string }

/**
 * Parses a plain decimal string ("1000", "0.5", "2.25") into an exact
 * quantity, or says why not. Like prices, more than {@link QUANTITY_SCALE}
 * decimals are refused, never rounded: a rounded tier bound would move
 * usage between tiers.
 */
export function tryParseQuantity(text: string): QuantityParseResult {
  const result = tryParseScaledDecimal(text, { maxIntegerDigits: MAX_QUANTITY_INTEGER_DIGITS, example: '1000', noun: 'quantities' })
  return result.ok ? { ok: true, value: result.value as Quantity } : result
}

/** Parses a plain decimal string into an exact quantity; throws {@link MoneyError} naming the problem. */
export function parseQuantity(text: string): Quantity {
  if (SMALL_WHOLE.test(text)) return (BigInt(Number(text)) * QUANTITY_UNIT) as Quantity
  const result = tryParseQuantity(text)
  if (!result.ok) throw new MoneyError(`quantity ${result.problem}`)
  return result.value
}

/** A whole count (events, identities) as a quantity; throws {@link MoneyError} for a negative, fractional or unsafe number. */
export function quantityFromCount(count: bigint | number): Quantity {
  if (typeof count === 'number') {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new MoneyError(`quantity must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${String(count)}`)
    }
    return (BigInt(count) * QUANTITY_UNIT) as Quantity
  }
  if (count < 0n) throw new MoneyError(`quantity must not be negative, got ${count.toString()}`)
  return (count * QUANTITY_UNIT) as Quantity
}

/** True when the quantity has no fractional part (a count, or a decimal such as "3.000"). */
export function isWholeQuantity(quantity: Quantity): boolean {
  return quantity % QUANTITY_UNIT === 0n
}

/** The exact sum of any number of quantities; zero for none. */
export function sumQuantity(quantities: Iterable<Quantity>): Quantity {
  let total = 0n
  for (const quantity of quantities) total += quantity
  return total as Quantity
}

/** `a − b`, or zero when b is the larger: what is left of a usage after an allowance. */
export function subtractQuantityToZero(a: Quantity, b: Quantity): Quantity {
  return (a > b ? a - b : 0n) as Quantity
}

/**
 * Writes a quantity as a canonical decimal string: whole quantities
 * without a fraction ("1000"), others with trailing zeros cut ("0.5",
 * "2.125"); no exponent, no separators. Equal quantities always format
 * identically, and {@link parseQuantity} reads every string written here.
 */
export function formatQuantity(quantity: Quantity): string {
  // Most quantities fit a double exactly: written without bigint arithmetic (a bill formats tens of thousands).
  if (quantity >= 0n && quantity <= MAX_SAFE) {
    const n = Number(quantity)
    const whole = Math.floor(n / 1e9)
    const nanos = n - whole * 1e9
    return nanos === 0 ? String(whole) : `${whole}.${String(nanos).padStart(QUANTITY_SCALE, '0').replace(/0+$/, '')}`
  }
  const negative = quantity < 0n
  // Never negative by construction; a cast bigint could be, so render it faithfully.
  const magnitude = negative ? -quantity : quantity
  const whole = (magnitude / QUANTITY_UNIT).toString()
  const fraction = (magnitude % QUANTITY_UNIT).toString().padStart(QUANTITY_SCALE, '0').replace(/0+$/, '')
  return `${negative ? '-' : ''}${whole}${fraction === '' ? '' : `.${fraction}`}`
}
