import { describe, expect, it } from 'vitest'
import {
  addMoney,
  formatMoney,
  MAX_MONEY_INTEGER_DIGITS,
  MoneyError,
  multiplyMoney,
  parseMoney,
  tryParseMoney,
  ZERO_MONEY,
  type Money,
} from './decimal.js'

function problemOf(text: string): string {
  const result = tryParseMoney(text)
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`)
  return result.problem
}

describe('parsing a decimal price', () => {
  it('keeps every digit of a per-event price up to nine decimals', () => {
    expect(formatMoney(parseMoney('0.002'))).toBe('0.002')
    expect(formatMoney(parseMoney('0.000000125'))).toBe('0.000000125')
    expect(formatMoney(parseMoney('12'))).toBe('12.00')
    expect(formatMoney(parseMoney('0'))).toBe('0.00')
  })

  it('treats leading and trailing zeros as the same amount', () => {
    expect(parseMoney('007.50')).toBe(parseMoney('7.5'))
    expect(formatMoney(parseMoney('0.100000000'))).toBe('0.10')
  })

  it('refuses ten decimals instead of rounding them away', () => {
    expect(problemOf('0.0000000001')).toMatch(/10 digits after the decimal point.*does not round/)
  })

  it('refuses negative prices', () => {
    expect(problemOf('-0.5')).toBe('must not be negative, got "-0.5"')
    expect(problemOf('-0')).toMatch(/must not be negative/)
  })

  it.each([
    ['', /got an empty string/],
    ['1e-3', /plain notation, not an exponent/],
    ['.5', /digit before the point \(e.g. "0.5"\)/],
    ['5.', /digits after the point/],
    [' 1', /without surrounding spaces/],
    ['+1', /without a "\+" sign/],
    ['1,000.00', /without thousands separators/],
    ['NaN', /must be a decimal string like "0.002", got "NaN"/],
    ['Infinity', /must be a decimal string/],
    ['0x10', /must be a decimal string/],
    ['1_000', /must be a decimal string/],
    ['١٢', /must be a decimal string/],
  ])('explains why %j is not a price', (text, problem) => {
    expect(problemOf(text)).toMatch(problem)
  })

  it('refuses an amount too large to be a per-event price', () => {
    expect(problemOf('1' + '0'.repeat(MAX_MONEY_INTEGER_DIGITS))).toMatch(/too large: at most 15 digits/)
    expect(tryParseMoney('9'.repeat(MAX_MONEY_INTEGER_DIGITS)).ok).toBe(true)
  })

  it('cuts a huge hostile input short in the error message', () => {
    const problem = problemOf('9'.repeat(100_000) + 'x')
    expect(problem.length).toBeLessThan(200)
  })

  it('throws a MoneyError from the throwing form', () => {
    expect(() => parseMoney('abc')).toThrow(MoneyError)
    expect(() => parseMoney('abc')).toThrow('amount must be a decimal string like "0.002", got "abc"')
  })
})

describe('arithmetic on money', () => {
  it('multiplies a price by a count exactly, where floats would drift', () => {
    const price = parseMoney('0.1')
    expect(formatMoney(multiplyMoney(price, 3))).toBe('0.30')
    expect(0.1 * 3).not.toBe(0.3) // the float answer this module exists to avoid
  })

  it('bills a billion events at a sub-cent price to the nano-unit', () => {
    expect(formatMoney(multiplyMoney(parseMoney('0.000000125'), 1_000_000_000))).toBe('125.00')
    expect(formatMoney(multiplyMoney(parseMoney('0.002'), '18446744073709551615'))).toBe('36893488147419103.23')
  })

  it('accepts counts as bigint, safe integers, or digit strings', () => {
    const price = parseMoney('2.5')
    expect(multiplyMoney(price, 4n)).toBe(multiplyMoney(price, 4))
    expect(multiplyMoney(price, '4')).toBe(multiplyMoney(price, 4))
    expect(multiplyMoney(price, 0)).toBe(ZERO_MONEY)
  })

  it.each([
    [-1, /whole number of events/],
    [1.5, /whole number of events/],
    [Number.MAX_SAFE_INTEGER + 1, /whole number of events/],
    [Number.NaN, /whole number of events/],
    [-1n, /must not be negative/],
    ['1.0', /string of digits/],
    ['-3', /string of digits/],
    ['', /string of digits/],
    ['1'.repeat(21), /string of digits/],
  ])('refuses the quantity %s', (quantity, problem) => {
    expect(() => multiplyMoney(parseMoney('1'), quantity)).toThrow(problem)
  })

  it('adds without losing a nano-unit', () => {
    const a = parseMoney('0.000000001')
    const b = parseMoney('999999999999999.999999999')
    expect(formatMoney(addMoney(a, b))).toBe('1000000000000000.00')
  })

  it('gives the same exact product on both sides of the largest amount a double holds', () => {
    // 2^53 - 1 nano-units is the last amount multiplied as a double; one more and the bigint path takes over.
    const nano = parseMoney('0.000000001')
    for (const quantity of [Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]) {
      expect(multiplyMoney(nano, quantity)).toBe(BigInt(quantity))
      expect(multiplyMoney(parseMoney('0.000000002'), quantity)).toBe(2n * BigInt(quantity))
    }
    // Products just past 2^53 nano-units: exact, as bigint arithmetic says.
    expect(multiplyMoney(parseMoney('3.000000007'), 3_002_399_751_580_331)).toBe(3_000_000_007n * 3_002_399_751_580_331n)
    expect(formatMoney(multiplyMoney(parseMoney('0.000000003'), 3_002_399_751_580_331))).toBe('9007199.254740993')
    expect(formatMoney(BigInt(Number.MAX_SAFE_INTEGER) as Money)).toBe('9007199.254740991')
    expect(formatMoney((BigInt(Number.MAX_SAFE_INTEGER) + 1n) as Money)).toBe('9007199.254740992')
  })
})

describe('formatting money', () => {
  it('writes at least two decimals and trims zeros beyond them', () => {
    expect(formatMoney(parseMoney('1.5'))).toBe('1.50')
    expect(formatMoney(parseMoney('1.230'))).toBe('1.23')
    expect(formatMoney(parseMoney('1.2345'))).toBe('1.2345')
  })

  it('writes all nine decimals when asked for a fixed-scale value', () => {
    expect(formatMoney(parseMoney('0.002'), { fixed: true })).toBe('0.002000000')
    expect(formatMoney(ZERO_MONEY, { fixed: true })).toBe('0.000000000')
  })

  it('round-trips every canonical string it writes', () => {
    for (const text of ['0.00', '0.10', '0.002', '123456789012345.123456789', '1.00']) {
      expect(formatMoney(parseMoney(text))).toBe(text)
    }
  })

  it('never uses exponent notation, however large the amount', () => {
    const huge = multiplyMoney(parseMoney('999999999999999'), '99999999999999999999')
    expect(formatMoney(huge)).toMatch(/^[0-9]+\.00$/)
  })
})
