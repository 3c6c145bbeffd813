import { describe, expect, it } from 'vitest'
import { formatDuration, parseDuration, parseUtcTimestamp, tryParseDuration, tryParseUtcTimestamp } from './time.js'

function durationProblem(text: string): string {
  const result = tryParseDuration(text)
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`)
  return result.problem
}

function timestampProblem(text: string): string {
  const result = tryParseUtcTimestamp(text)
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`)
  return result.problem
}

describe('durations', () => {
  it('reads days, hours, minutes and seconds into milliseconds', () => {
    expect(parseDuration('30d')).toEqual({ text: '30d', ms: 30 * 86_400_000 })
    expect(parseDuration('24h').ms).toBe(86_400_000)
    expect(parseDuration('15m').ms).toBe(900_000)
    expect(parseDuration('90s').ms).toBe(90_000)
  })

  it.each([
    ['', /must be a duration like "30d", "24h", "15m" or "90s", got ""/],
    ['7', /add a unit/],
    ['7D', /units are lowercase/],
    ['2w', /units are s, m, h and d/],
    ['500ms', /units are s, m, h and d/],
    ['1h30m', /one number and one unit/],
    ['7 days', /got "7 days"/],
    ['-1d', /must be a duration/],
    ['1.5h', /must be a duration/],
    ['0d', /longer than zero/],
    ['3651d', /at most 3650d/],
    ['99999999999999999999d', /at most 3650d/],
  ])('explains why %j is not a duration', (text, problem) => {
    expect(durationProblem(text)).toMatch(problem)
  })

  it('writes milliseconds back in the largest whole unit', () => {
    expect(formatDuration(7 * 86_400_000)).toBe('7d')
    expect(formatDuration(90 * 60_000)).toBe('90m')
    expect(formatDuration(1_500)).toBe('1500ms')
  })
})

describe('UTC timestamps', () => {
  it('reads RFC 3339 UTC timestamps, with or without milliseconds', () => {
    expect(parseUtcTimestamp('2026-11-01T00:00:00Z')).toEqual({ text: '2026-11-01T00:00:00Z', ms: Date.UTC(2026, 10, 1) })
    expect(parseUtcTimestamp('2026-11-01T12:30:05.25Z').ms).toBe(Date.UTC(2026, 10, 1, 12, 30, 5, 250))
  })

  it.each([
    ['2026-11-01T00:00:00+02:00', /must be in UTC, written with "Z"/],
    ['2026-11-01T00:00:00+00:00', /must be in UTC, written with "Z"/],
    ['2026-11-01T00:00:00', /add "Z" for UTC/],
    ['2026-11-01', /add the time/],
    ['2026-11-01 00:00:00Z', /uppercase "T"/],
    ['2026-11-01t00:00:00z', /uppercase "T"/],
    ['2026-11-01T00:00:00.1234Z', /at most millisecond precision/],
    ['2026-02-30T00:00:00Z', /not a real date and time/],
    ['2026-11-01T24:00:00Z', /not a real date and time/],
    ['2026-11-01T23:59:60Z', /not a real date and time/],
    ['1969-12-31T23:59:59Z', /between 1970 and 2261/],
    ['9999-01-01T00:00:00Z', /between 1970 and 2261/],
    ['next tuesday', /must be an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z", got "next tuesday"/],
  ])('explains why %j is not a UTC timestamp', (text, problem) => {
    expect(timestampProblem(text)).toMatch(problem)
  })
})
