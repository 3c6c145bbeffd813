/**
 * What the findings reads share (digest-reads.ts, exact-reads.ts): the
 * caller's business units as SQL, epoch-millisecond times as ClickHouse
 * parameters, and the key of one series.
 */
import { businessUnitCondition, INVENTORY_JOIN, type BusinessUnitScope } from '../identities/effective.js'
import { toClickHouseTime } from '../storage/time.js'
import { afterRequests } from '../storage/request-first.js'

/** One hour in milliseconds. */
export const HOUR_MS = 3_600_000
/** One day in milliseconds. */
export const DAY_MS = 86_400_000

/** Joins the inventory and keeps the caller's business units, when the caller is limited. */
export function scoped(scope: BusinessUnitScope): { join: string; where: string; params: Record<string, unknown> } {
  return scope ? { join: INVENTORY_JOIN, where: businessUnitCondition(scope), params: { business_units: scope } } : { join: '', where: '', params: {} }
}

/** An epoch-millisecond time as a DateTime64(3) parameter. */
export const ms = (value: number) => toClickHouseTime(new Date(value))
/** An epoch-millisecond time as a DateTime parameter (whole seconds). */
export const seconds = (value: number) => toClickHouseTime(new Date(value)).slice(0, 19)
/** `value` rounded down to a multiple of `unit`. */
export const floorTo = (value: number, unit: number) => Math.floor(value / unit) * unit

/** The key of one (identity, activity type) series. */
export function seriesKey(nhiId: string, activityType: string): string {
  return `${nhiId}\u0000${activityType}`
}

/** Longest stretch of findings work between two turns of the event loop. */
const TURN_MS = 20

/**
 * Hands the event loop back (the receiver and the API share the process)
 * when more than 20 ms have passed since `since` (a performance.now()
 * reading); returns the reading to measure the next stretch from. Loops over
 * thousands of series or millions of rows call it as they go.
 */
export async function takeTurns(since: number): Promise<number> {
  if (performance.now() - since < TURN_MS) return since
  await new Promise((resolve) => setImmediate(resolve))
  // An API request under way goes first: its steps would otherwise each wait for the next stretch to end.
  await afterRequests()
  return performance.now()
}
