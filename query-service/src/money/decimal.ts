/**
 * Exact money. An amount is a bigint count of nano-units (10^-9 of the
 * currency unit), so per-event prices such as "0.000125" and bills of
 * billions of events add up without a single float. Amounts enter as
 * decimal strings and leave as decimal strings; nothing in between rounds.
 *
 * Money in nhi-meter is never negative: prices are at least zero,
 * quantities are counts, and amounts are their sums. Parsing refuses a
 * sign, so a "-0.5" in a rate card is an error rather than a credit.
 */

/** Digits kept after the decimal point (nano-units): finer than any per-event price we expect. */
export const MONEY_SCALE = 9

/** Digits allowed before the decimal point of a parsed amount; 10^15 per event is far beyond any real price. */
export const MAX_MONEY_INTEGER_DIGITS = 15

const SCALE_FACTOR = 10n ** BigInt(MONEY_SCALE)
// Plain decimal notation only: no sign, exponent, separators, or bare "." ends.
const DECIMAL_PATTERN = /^([0-9]+)(?:\.([0-9]+))?$/
// ClickHouse UInt64 counts arrive as strings of at most 20 digits.
const COUNT_PATTERN = /^[0-9]{1,20}$/

declare const moneyBrand: unique symbol
/** An exact, non-negative amount: an integer count of 10^-9 currency units. Build it with the functions here. */
export type Money = bigint & { readonly [moneyBrand]: true }

/** Zero of any currency. */
export const ZERO_MONEY = 0n as Money

/** Why a decimal string or a quantity was refused; the message says what was expected and what arrived. */
export class MoneyError extends Error {
  override readonly name = 'MoneyError'
}

/** The outcome of {@link tryParseMoney}: the amount, or the problem in words (no key path; the caller adds it). */
export type MoneyParseResult = { ok: true; value: Money } | { ok: false; problem: string }

/** Options for parsing an amount. */
export interface ParseMoneyOptions {
  /** Digits allowed before the decimal point; defaults to {@link MAX_MONEY_INTEGER_DIGITS}. */
  maxIntegerDigits?: number
}

/**
 * Parses a plain decimal string ("0.002", "12", "12.50") into exact money,
 * or says why not. Refuses rather than rounds: more than {@link MONEY_SCALE}
 * fractional digits is an error, because a silently rounded price would
 * misprice every event it applies to.
 */
export function tryParseMoney(text: string, options: ParseMoneyOptions = {}): MoneyParseResult {
  const result = tryParseScaledDecimal(text, { maxIntegerDigits: options.maxIntegerDigits ?? MAX_MONEY_INTEGER_DIGITS, example: '0.002', noun: 'prices' })
  return result.ok ? { ok: true, value: result.value as Money } : result
}

/** How {@link tryParseScaledDecimal} reads and explains a decimal string. */
export interface ScaledDecimalOptions {
  /** Digits allowed before the decimal point. */
  maxIntegerDigits: number
  /** A valid value for "must be a decimal string like ..." (e.g. "0.002"). */
  example: string
  /** What is not rounded, for the message about too many decimals (e.g. "prices"). */
  noun: string
}

/**
 * The one reading of a plain non-negative decimal string, shared by money
 * and quantities: the integer `text × 10^9`, or the problem in words.
 * Refuses more than {@link MONEY_SCALE} decimals rather than rounding.
 */
export function tryParseScaledDecimal(text: string, options: ScaledDecimalOptions): { ok: true; value: bigint } | { ok: false; problem: string } {
  const match = DECIMAL_PATTERN.exec(text)
  if (!match) return { ok: false, problem: explainBadDecimal(text, options.example) }
  const whole = match[1] ?? '0'
  const fraction = match[2] ?? ''
  if (fraction.length > MONEY_SCALE) {
    return {
      ok: false,
      problem: `has ${fraction.length} digits after the decimal point, more than the ${MONEY_SCALE} kept; nhi-meter does not round ${options.noun} (got ${show(text)})`,
    }
  }
  const significantWhole = whole.replace(/^0+(?=[0-9])/, '')
  if (significantWhole.length > options.maxIntegerDigits) {
    return {
      ok: false,
      problem: `is too large: at most ${options.maxIntegerDigits} digits before the decimal point, got ${significantWhole.length} (${show(text)})`,
    }
  }
  return { ok: true, value: BigInt(whole) * SCALE_FACTOR + BigInt(fraction.padEnd(MONEY_SCALE, '0')) }
}

/** Parses a plain decimal string into exact money; throws {@link MoneyError} naming the problem. */
export function parseMoney(text: string, options?: ParseMoneyOptions): Money {
  const result = tryParseMoney(text, options)
  if (!result.ok) throw new MoneyError(`amount ${result.problem}`)
  return result.value
}

/**
 * Price times a count of events. The quantity may be a bigint, a safe
 * integer number, or a string of digits (how ClickHouse sends UInt64 counts);
 * anything else (negative, fractional, unsafe) throws, because guessing
 * would put a wrong number on a bill.
 */
export function multiplyMoney(price: Money, quantity: bigint | number | string): Money {
  // Most products fit a double exactly: computed as one, with a single bigint made (a bill prices tens of thousands).
  if (typeof quantity === 'number' && Number.isSafeInteger(quantity) && quantity >= 0 && price >= 0n && price <= MAX_SAFE) {
    const product = Number(price) * quantity
    // A true product beyond 2^53 rounds to at least 2^53, so a result within the safe range is exact.
    if (product <= Number.MAX_SAFE_INTEGER) return BigInt(product) as Money
  }
  return (price * toQuantity(quantity)) as Money
}

/** The exact sum of two amounts. */
export function addMoney(a: Money, b: Money): Money {
  return (a + b) as Money
}

/** How {@link formatMoney} writes an amount. */
export interface FormatMoneyOptions {
  /** Write all {@link MONEY_SCALE} fractional digits ("0.002000000"), e.g. for a `Decimal(38, 9)` query parameter. */
  fixed?: boolean
}

/**
 * Writes an amount as a canonical decimal string: at least two fractional
 * digits, trailing zeros beyond those trimmed, no exponent, no separators.
 * "12" → "12.00", "0.1" → "0.10", "0.002" → "0.002", "0.000000125" stays.
 * Two decimals is how people read money; more appear only when they carry
 * value, so sub-cent prices are never hidden. Equal amounts always format
 * identically, so the strings can be compared and used as keys.
 */
export function formatMoney(amount: Money, options: FormatMoneyOptions = {}): string {
  // Most amounts fit a double exactly: written without bigint arithmetic (a bill formats tens of thousands).
  if (amount >= 0n && amount <= MAX_SAFE) {
    const n = Number(amount)
    const whole = Math.floor(n / 1e9)
    return `${whole}.${trimFraction(String(n - whole * 1e9).padStart(MONEY_SCALE, '0'), options)}`
  }
  // Money is never negative by construction, but a cast bigint could be;
  // render it faithfully rather than produce a wrong positive figure.
  const negative = amount < 0n
  const magnitude = negative ? -amount : amount
  const whole = magnitude / SCALE_FACTOR
  const fraction = (magnitude % SCALE_FACTOR).toString().padStart(MONEY_SCALE, '0')
  return `${negative ? '-' : ''}${whole.toString()}.${trimFraction(fraction, options)}`
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

// All nine fractional digits with `fixed`; else trailing zeros cut, keeping at least two.
function trimFraction(fraction: string, options: FormatMoneyOptions): string {
  if (options.fixed) return fraction
  let end = fraction.length
  while (end > 2 && fraction.charCodeAt(end - 1) === 48) end--
  return fraction.slice(0, end)
}

function toQuantity(quantity: bigint | number | string): bigint {
  if (typeof quantity === 'bigint') {
    if (quantity < 0n) throw new MoneyError(`quantity must not be negative, got ${quantity.toString()}`)
    return quantity
  }
  if (typeof quantity === 'number') {
    if (!Number.isSafeInteger(quantity) || quantity < 0) {
      throw new MoneyError(`quantity must be a whole number of events from 0 to ${Number.MAX_SAFE_INTEGER}, got ${String(quantity)}`)
    }
    return BigInt(quantity)
  }
  if (!COUNT_PATTERN.test(quantity)) {
    throw new MoneyError(`quantity must be a string of digits (a count), got ${show(quantity)}`)
  }
  return BigInt(quantity)
}

function explainBadDecimal(text: string, example: string): string {
  const expected = `must be a decimal string like "${example}"`
  if (text === '') return `${expected}, got an empty string`
  if (/^\s|\s$/.test(text)) return `${expected} without surrounding spaces, got ${show(text)}`
  if (/^-/.test(text)) return `must not be negative, got ${show(text)}`
  if (/^\+/.test(text)) return `${expected} without a "+" sign, got ${show(text)}`
  if (/^[0-9.]+[eE][-+]?[0-9]+$/.test(text)) return `${expected} in plain notation, not an exponent, got ${show(text)}`
  if (/^\.[0-9]+$/.test(text)) return `${expected} with a digit before the point (e.g. "0${text}"), got ${show(text)}`
  if (/^[0-9]+\.$/.test(text)) return `${expected} with digits after the point (or no point), got ${show(text)}`
  if (/^[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$/.test(text)) return `${expected} without thousands separators, got ${show(text)}`
  return `${expected}, got ${show(text)}`
}

// Quotes a value for an error message; long values are cut so a hostile
// input cannot flood a log line.
function show(text: string): string {
  const cut = text.length > 40 ? `${text.slice(0, 40)}…` : text
  return JSON.stringify(cut)
}
