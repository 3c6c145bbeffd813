import { describe, expect, it } from 'vitest'
import { MoneyError } from './decimal.js'
import {
  formatQuantity,
  isWholeQuantity,
  parseQuantity,
  quantityFromCount,
  subtractQuantityToZero,
  sumQuantity,
  tryParseQuantity,
  ZERO_QUANTITY,
} from './quantity.js'

function problemOf(text: string): string {
  const result = tryParseQuantity(text)
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`)
  return result.problem
}

describe('parsing a quantity', () => {
  it('reads whole and decimal quantities exactly', () => {
    expect(parseQuantity('1000')).toBe(1_000_000_000_000n)
    expect(parseQuantity('0.5')).toBe(500_000_000n)
    expect(parseQuantity('0.000000001')).toBe(1n)
    expect(parseQuantity('007.50')).toBe(parseQuantity('7.5'))
  })

  it('refuses ten decimals instead of rounding them away', () => {
    expect(problemOf('1.0000000001')).toBe('has 10 digits after the decimal point, more than the 9 kept; nhi-meter does not round quantities (got "1.0000000001")')
  })

  it.each([
    ['-5', 'must not be negative, got "-5"'],
    ['', 'must be a decimal string like "1000", got an empty string'],
    ['1e6', 'must be a decimal string like "1000" in plain notation, not an exponent, got "1e6"'],
    ['1,000', 'must be a decimal string like "1000" without thousands separators, got "1,000"'],
    ['.5', 'must be a decimal string like "1000" with a digit before the point (e.g. "0.5"), got ".5"'],
    ['lots', 'must be a decimal string like "1000", got "lots"'],
    ['1' + '0'.repeat(15), 'is too large: at most 15 digits before the decimal point, got 16 ("1000000000000000")'],
  ])('explains why %j is not a quantity', (text, problem) => {
    expect(problemOf(text)).toBe(problem)
  })

  it('throws a MoneyError naming the quantity from the throwing form', () => {
    expect(() => parseQuantity('x')).toThrow(MoneyError)
    expect(() => parseQuantity('x')).toThrow('quantity must be a decimal string like "1000", got "x"')
  })
})

describe('quantities from counts', () => {
  it('turns a count of events or identities into a whole quantity', () => {
    expect(quantityFromCount(3)).toBe(parseQuantity('3'))
    expect(quantityFromCount(18_446_744_073_709_551_615n)).toBe(18_446_744_073_709_551_615n * 1_000_000_000n)
    expect(isWholeQuantity(quantityFromCount(7))).toBe(true)
  })

  it.each([[-1], [1.5], [Number.NaN], [Number.MAX_SAFE_INTEGER + 1], [-1n]])('refuses the count %s', (count) => {
    expect(() => quantityFromCount(count)).toThrow(MoneyError)
  })
})

describe('formatting and comparing quantities', () => {
  it('prints whole quantities without a fraction and decimals without trailing zeros', () => {
    expect(formatQuantity(parseQuantity('1000'))).toBe('1000')
    expect(formatQuantity(parseQuantity('2.500'))).toBe('2.5')
    expect(formatQuantity(parseQuantity('0.000000001'))).toBe('0.000000001')
    expect(formatQuantity(ZERO_QUANTITY)).toBe('0')
  })

  it('round-trips every canonical string it writes', () => {
    for (const text of ['0', '1', '0.5', '123456789012345.123456789', '10']) expect(formatQuantity(parseQuantity(text))).toBe(text)
  })

  it('tells whole quantities from fractional ones', () => {
    expect(isWholeQuantity(parseQuantity('3.000'))).toBe(true)
    expect(isWholeQuantity(parseQuantity('3.000000001'))).toBe(false)
    expect(isWholeQuantity(ZERO_QUANTITY)).toBe(true)
  })

  it('sums and subtracts down to zero exactly', () => {
    const a = parseQuantity('0.1')
    const b = parseQuantity('0.2')
    expect(sumQuantity([a, b, a])).toBe(parseQuantity('0.4'))
    expect(sumQuantity([])).toBe(ZERO_QUANTITY)
    expect(subtractQuantityToZero(b, a)).toBe(a)
    expect(subtractQuantityToZero(a, b)).toBe(ZERO_QUANTITY)
  })
})
