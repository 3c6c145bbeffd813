/**
 * The one signature every finding rule has (rules/<kind>.ts), what a rule
 * is given (RuleContext: the request, the profiles, the times evaluate.ts
 * works out once, and reads two rules share), and the wording helpers
 * their summaries share.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { FindingsRequest, RangeTimes } from './evaluate.js'
import type { CredentialUse, SampleRequest } from './exact-reads.js'
import type { Finding } from './kinds.js'
import type { Profile } from './profile.js'
import { HOUR_MS, DAY_MS } from './reads.js'
import type { Dormancy } from './rules/dormant.js'

/** Everything a rule may use; reads that two rules need are made once, on first use. */
export interface RuleContext extends RangeTimes {
  client: ClickHouseClient
  request: FindingsRequest
  /** Every identity the caller may see, by id. */
  profiles: Map<string, Profile>
  /** Who used which credential in the credential window. */
  credentials: CredentialUse[]
  /** Latest trace ids of each identity active in the range that is undeclared or declared without an owner (unregistered, orphaned). */
  activeSamples(): Promise<Map<string, string[]>>
  /** The latest trace ids of each slice (exact-reads.ts, sampleTraces), in the caller's scope; none when the request wants no samples. */
  sampleTraces(requests: readonly SampleRequest[]): Promise<string[][]>
  /** Which silent identities are dormant, and which silences a quiet service explains instead (dormant, telemetry_gap). */
  dormancy(): Promise<Dormancy>
}

/** A finding rule: the findings of its kind in the context's range. */
export type Rule = (ctx: RuleContext) => Promise<Finding[]>

/** Days, to one decimal, rounded down. */
export const days = (msValue: number) => Math.floor((msValue / DAY_MS) * 10) / 10
/** "1 day", "3 days". */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
/** A number rounded to `places` decimals for a summary or evidence. */
export const round = (value: number, places = 3) => Math.round(value * 10 ** places) / 10 ** places

/** Code-unit order of two strings (never the host's locale). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * An upper bound of the events any window of `windowMs` can hold, from the
 * busiest hour: a window overlaps at most ceil(windowMs / 1 h) + 1 hours.
 */
export function windowBound(maxPerHour: number, windowMs: number): number {
  return maxPerHour * (Math.ceil(windowMs / HOUR_MS) + 1)
}
