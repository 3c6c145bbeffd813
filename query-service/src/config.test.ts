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

describe('metrics configuration', () => {
  it('serves metrics on 9464 by default, takes another port or off, and evaluates findings every 300 s', () => {
    expect(parseConfig({}).NHI_METER_METRICS_PORT).toBe(9464)
    expect(parseConfig({ NHI_METER_METRICS_PORT: '9100' }).NHI_METER_METRICS_PORT).toBe(9100)
    expect(parseConfig({ NHI_METER_METRICS_PORT: 'off' }).NHI_METER_METRICS_PORT).toBe('off')
    expect(parseConfig({}).NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS).toBe(300)
    expect(parseConfig({ NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS: '0' }).NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS).toBe(0)
  })

  it.each(['nine', '65536', '-1', 'OFF', '9464.5'])('refuses NHI_METER_METRICS_PORT=%j with a message naming it', (value) => {
    expect(() => parseConfig({ NHI_METER_METRICS_PORT: value })).toThrow(/NHI_METER_METRICS_PORT must be a port number/)
  })

  it('refuses a metrics port that is also the API or receiver port, naming both', () => {
    expect(() => parseConfig({ NHI_METER_METRICS_PORT: '8080' })).toThrow(/NHI_METER_METRICS_PORT must differ from NHI_METER_PORT/)
    expect(() => parseConfig({ NHI_METER_METRICS_PORT: '4318' })).toThrow(/NHI_METER_METRICS_PORT must differ from NHI_METER_OTLP_PORT/)
    expect(parseConfig({ NHI_METER_METRICS_PORT: '0', NHI_METER_PORT: '0' }).NHI_METER_METRICS_PORT).toBe(0)
  })

  it('refuses a findings evaluation interval that is not whole seconds, naming it', () => {
    expect(() => parseConfig({ NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS: '5m' })).toThrow(/NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS must be a whole number/)
  })
})
