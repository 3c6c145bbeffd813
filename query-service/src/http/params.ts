/**
 * Query-parameter parsing shared by the routes: every parameter is checked
 * against a fixed vocabulary and a bad one is answered 400 naming it.
 */
import { badParameter } from './errors.js'

/** A half-open time range [from, to) in epoch milliseconds. */
export interface TimeRange {
  from: Date
  to: Date
}

const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]00:00)$/
/** Longest value of any query parameter. */
export const MAX_PARAM_LENGTH = 1024
/** Years a time parameter may name; outside them ClickHouse's DateTime64(9) overflows or the answer is meaningless. */
export const TIME_YEARS = { min: 1970, max: 2200 } as const

/**
 * The times parseTime accepts, as a JSON-Schema pattern for /openapi.json
 * (ASCII digits spelled out: a pattern's \d may match any Unicode digit).
 * It cannot say that a day exists in its month (2026-02-30 is refused 400).
 */
export const UTC_TIME_PATTERN =
  '^(19[7-9][0-9]|20[0-9][0-9]|21[0-9][0-9]|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]00:00)$'

/** Rejects parameters the route does not know, so a typo never silently changes an answer. */
export function rejectUnknown(query: Record<string, string>, known: readonly string[]): void {
  for (const name of Object.keys(query)) {
    if (!known.includes(name)) throw badParameter(name.slice(0, 64), `unknown parameter; this route accepts ${known.join(', ')}`)
  }
  for (const [name, value] of Object.entries(query)) {
    if (value.length > MAX_PARAM_LENGTH) throw badParameter(name, `longer than ${MAX_PARAM_LENGTH} characters`)
  }
}

/** Parses an RFC 3339 UTC timestamp (Z or +00:00). */
export function parseTime(name: string, value: string): Date {
  const m = RFC3339_UTC.exec(value)
  if (!m) throw badParameter(name, 'must be an RFC 3339 UTC timestamp such as 2026-11-01T00:00:00Z')
  const date = new Date(value)
  const [, y, mo, d, h, mi, s] = m
  if (
    Number.isNaN(date.getTime()) ||
    date.getUTCFullYear() !== Number(y) ||
    date.getUTCMonth() + 1 !== Number(mo) ||
    date.getUTCDate() !== Number(d) ||
    date.getUTCHours() !== Number(h) ||
    date.getUTCMinutes() !== Number(mi) ||
    date.getUTCSeconds() !== Number(s)
  ) {
    throw badParameter(name, 'is not a valid date and time')
  }
  if (date.getUTCFullYear() < TIME_YEARS.min || date.getUTCFullYear() > TIME_YEARS.max) throw badParameter(name, `must be between ${TIME_YEARS.min} and ${TIME_YEARS.max}`)
  return date
}

/** Parses `from` and `to`; both default (to: now, from: start of the current UTC month). */
export function parseRange(query: Record<string, string>, now: Date = new Date(), maxDays = 400): TimeRange {
  const to = query.to !== undefined ? parseTime('to', query.to) : now
  const from = query.from !== undefined ? parseTime('from', query.from) : new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), 1))
  if (from.getTime() >= to.getTime()) throw badParameter('from', 'must be before to (ranges are [from, to))')
  if (to.getTime() - from.getTime() > maxDays * 86_400_000) throw badParameter('to', `range longer than ${maxDays} days`)
  return { from, to }
}

/** Parses a value from a fixed set. */
export function parseEnum<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!(allowed as readonly string[]).includes(value)) throw badParameter(name, `must be one of ${allowed.join(', ')}`)
  return value as T
}

/** Parses a comma list whose items come from a fixed set; duplicates are refused. */
export function parseList<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: readonly T[]): T[] {
  if (value === undefined) return [...fallback]
  const items = value.split(',').map((s) => s.trim())
  if (items.length === 0 || items.some((i) => i === '')) throw badParameter(name, 'must be a comma list without empty items')
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw badParameter(name, `unknown item ${JSON.stringify(item.slice(0, 64))}; allowed: ${allowed.join(', ')}`)
  }
  if (new Set(items).size !== items.length) throw badParameter(name, 'lists an item twice')
  return items as T[]
}
