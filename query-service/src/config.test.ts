import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, RATE_LIMIT_DEFAULTS } from './config.js'

describe('rate limit configuration', () => {
  it('defaults to the documented limits', () => {
    const config = parseConfig({})
    expect(config.NHI_METER_RATE_LIMIT_PER_SECOND).toBe(RATE_LIMIT_DEFAULTS.perSecond)
    expect(config.NHI_METER_RATE_LIMIT_BURST).toBe(RATE_LIMIT_DEFAULTS.burst)
    expect(config.NHI_METER_AUTH_FAILURES_PER_MINUTE).toBe(RATE_LIMIT_DEFAULTS.authFailuresPerMinute)
  })

  it('accepts decimals, 0 and off (off and 0 both disable)', () => {
    const config = parseConfig({ NHI_METER_RATE_LIMIT_PER_SECOND: '2.5', NHI_METER_RATE_LIMIT_BURST: '10', NHI_METER_AUTH_FAILURES_PER_MINUTE: 'off' })
    expect(config.NHI_METER_RATE_LIMIT_PER_SECOND).toBe(2.5)
    expect(config.NHI_METER_RATE_LIMIT_BURST).toBe(10)
    expect(config.NHI_METER_AUTH_FAILURES_PER_MINUTE).toBe(0)
    expect(parseConfig({ NHI_METER_RATE_LIMIT_PER_SECOND: '0' }).NHI_METER_RATE_LIMIT_PER_SECOND).toBe(0)
  })

  it.each([
    ['NHI_METER_RATE_LIMIT_PER_SECOND', '-1'],
    ['NHI_METER_RATE_LIMIT_PER_SECOND', 'fast'],
    ['NHI_METER_RATE_LIMIT_BURST', '0'],
    ['NHI_METER_RATE_LIMIT_BURST', '1.5'],
    ['NHI_METER_RATE_LIMIT_BURST', 'off'],
    ['NHI_METER_AUTH_FAILURES_PER_MINUTE', '1e3'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    expect(() => parseConfig({ [name]: value })).toThrow(ConfigError)
    expect(() => parseConfig({ [name]: value })).toThrow(name)
  })
})

describe('summary job configuration', () => {
  it('defaults the grace to 120 s and takes 0 to 3600', () => {
    expect(parseConfig({}).NHI_METER_ROLLUP_GRACE_SECONDS).toBe(120)
    expect(parseConfig({ NHI_METER_ROLLUP_GRACE_SECONDS: '0' }).NHI_METER_ROLLUP_GRACE_SECONDS).toBe(0)
    expect(parseConfig({ NHI_METER_ROLLUP_GRACE_SECONDS: '3600' }).NHI_METER_ROLLUP_GRACE_SECONDS).toBe(3600)
  })

  it.each(['-1', '3601', '2.5', 'two minutes', '1e2'])('refuses NHI_METER_ROLLUP_GRACE_SECONDS=%j with a message naming it', (value) => {
    expect(() => parseConfig({ NHI_METER_ROLLUP_GRACE_SECONDS: value })).toThrow(/NHI_METER_ROLLUP_GRACE_SECONDS must be a whole number of seconds from 0 to 3600/)
  })
})
