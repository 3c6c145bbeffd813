/**
 * Durations and instants as a policy file writes them: `30d`, `24h`, `15m`,
 * `90s`, and RFC 3339 UTC timestamps such as `2026-11-01T00:00:00Z`.
 */
import { quote } from './issues.js'

/** A length of time from the policy: the text as written and its length in milliseconds. */
export interface Duration {
  /** As written in the policy, e.g. `7d`. */
  readonly text: string
  /** Length in milliseconds (always a positive safe integer). */
  readonly ms: number
}

/** An instant from the policy: the text as written and milliseconds since the Unix epoch. */
export interface UtcTimestamp {
  /** As written in the policy, e.g. `2026-11-01T00:00:00Z`. */
  readonly text: string
  /** Milliseconds since 1970-01-01T00:00:00Z. */
  readonly ms: number
}

/** The outcome of parsing a policy value: the value, or the problem in words (the caller adds the key path). */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; problem: string }

/** Milliseconds per duration unit; one number and one unit, lowercase, as in `30d`. */
export const DURATION_UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** The longest duration accepted: ten years, beyond any retention or window that makes sense. */
export const MAX_DURATION_MS = 3650 * DURATION_UNITS.d

const DURATION_PATTERN = /^([0-9]{1,10})([smhd])$/
const EXPECTED_DURATION = 'must be a duration like "30d", "24h", "15m" or "90s"'

/** Parses `30d`, `24h`, `15m` or `90s` into milliseconds, or says why not. */
export function tryParseDuration(text: string): ParseResult<Duration> {
  const match = DURATION_PATTERN.exec(text)
  if (!match) return { ok: false, problem: explainBadDuration(text) }
  const amount = Number(match[1])
  const unit = match[2] as keyof typeof DURATION_UNITS
  if (amount === 0) return { ok: false, problem: `must be longer than zero, got ${quote(text)}` }
  const ms = amount * DURATION_UNITS[unit]
  if (ms > MAX_DURATION_MS) return { ok: false, problem: `must be at most 3650d (ten years), got ${quote(text)}` }
  return { ok: true, value: { text, ms } }
}

/** Parses a duration; throws a RangeError naming the problem. */
export function parseDuration(text: string): Duration {
  const result = tryParseDuration(text)
  if (!result.ok) throw new RangeError(`duration ${result.problem}`)
  return result.value
}

/** Writes milliseconds in the largest whole unit that fits: 604800000 → `7d`, 5400000 → `90m`. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % DURATION_UNITS[unit] === 0) return `${ms / DURATION_UNITS[unit]}${unit}`
  }
  return `${ms}ms`
}

const TIMESTAMP_PATTERN = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,3}))?Z$/
// Span times are stored as DateTime64(9), which ends in April 2262.
const LATEST_YEAR = 2261
const EXAMPLE_TIMESTAMP = '"2026-11-01T00:00:00Z"'

/**
 * Parses an RFC 3339 timestamp in UTC (`Z`, up to millisecond precision)
 * into epoch milliseconds, or says why not. Offsets other than `Z` are
 * refused, even `+00:00`, so every effective date in a policy reads the
 * same way and none depends on a reader converting zones.
 */
export function tryParseUtcTimestamp(text: string): ParseResult<UtcTimestamp> {
  const match = TIMESTAMP_PATTERN.exec(text)
  if (!match) return { ok: false, problem: explainBadTimestamp(text) }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const millis = Number((match[7] ?? '').padEnd(3, '0'))
  if (year < 1970 || year > LATEST_YEAR) {
    return { ok: false, problem: `must be between 1970 and ${LATEST_YEAR}, got ${quote(text)}` }
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis)
  const back = new Date(ms)
  // Date.UTC rolls 2026-02-30 over to March; a calendar date that does not exist is a typo.
  if (
    back.getUTCFullYear() !== year ||
    back.getUTCMonth() !== month - 1 ||
    back.getUTCDate() !== day ||
    back.getUTCHours() !== hour ||
    back.getUTCMinutes() !== minute ||
    back.getUTCSeconds() !== second
  ) {
    return { ok: false, problem: `is not a real date and time, got ${quote(text)}` }
  }
  return { ok: true, value: { text, ms } }
}

/** Parses an RFC 3339 UTC timestamp; throws a RangeError naming the problem. */
export function parseUtcTimestamp(text: string): UtcTimestamp {
  const result = tryParseUtcTimestamp(text)
  if (!result.ok) throw new RangeError(`timestamp ${result.problem}`)
  return result.value
}

function explainBadDuration(text: string): string {
  const shown = quote(text, 40)
  if (/^[0-9]+$/.test(text)) return `${EXPECTED_DURATION}: add a unit, got ${shown}`
  if (/^[0-9]+[SMHD]$/.test(text)) return `${EXPECTED_DURATION}: units are lowercase, got ${shown}`
  if (/^[0-9]+(ms|w|y|mo)$/.test(text)) return `${EXPECTED_DURATION}: units are s, m, h and d, got ${shown}`
  if (/^[0-9]+[smhd][0-9]/.test(text)) return `${EXPECTED_DURATION}: one number and one unit (write 90m, not 1h30m), got ${shown}`
  if (/^[0-9]{11,}[smhd]$/.test(text)) return `must be at most 3650d (ten years), got ${shown}`
  return `${EXPECTED_DURATION}, got ${shown}`
}

function explainBadTimestamp(text: string): string {
  const shown = quote(text)
  const expected = `must be an RFC 3339 UTC timestamp like ${EXAMPLE_TIMESTAMP}`
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+([+-][0-9]{2}:?[0-9]{2})$/.test(text)) {
    return `must be in UTC, written with "Z" (e.g. ${EXAMPLE_TIMESTAMP}), got ${shown}`
  }
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+$/.test(text)) return `${expected}: add "Z" for UTC, got ${shown}`
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text)) return `${expected}: add the time, got ${shown}`
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}[ t][0-9:.]+[zZ]?$/.test(text) || /z$/.test(text)) {
    return `${expected} (uppercase "T" between date and time, uppercase "Z"), got ${shown}`
  }
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{4,}Z$/.test(text)) {
    return `${expected}: at most millisecond precision (3 fractional digits), got ${shown}`
  }
  return `${expected}, got ${shown}`
}
