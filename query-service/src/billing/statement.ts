/**
 * A period statement's content: what it holds (lines, adjustments to earlier
 * months, totals, the predecessor's hash), how a period name reads, and how
 * signed quantities and amounts are written in it. Closing a month is
 * statement-close.ts; storing, statement-store.ts; the hash,
 * statement-hash.ts; the routes, statement-routes.ts.
 */
import { badParameter } from '../http/errors.js'
import { formatMoney, parseMoney, type Money } from '../money/decimal.js'
import { parseQuantity, type Quantity } from '../money/quantity.js'
import type { Completeness } from './bill.js'
import { quantityJson } from './bill-json.js'

/** One line of a statement: an identity's use of one meter. */
export interface StatementLine {
  'nhi.id': string
  meter: string
  /** A whole quantity as a number, a fractional one as its exact decimal string (GET /v1/billable does the same). */
  quantity: number | string
  amount: string
}

/** A correction to an earlier closed month, found when this one was closed. */
export interface StatementAdjustment extends StatementLine {
  period: string
}

/** The content of a statement (hashed as canonical JSON). */
export interface Statement {
  period: string
  from: string
  to: string
  closed_at: string
  currency: string
  rate_card_versions: string[]
  completeness: Completeness
  lines: StatementLine[]
  total: { quantity: number | string; amount: string }
  /** Per meter: quantity, events, events without a value (sum meters) and amount, as GET /v1/billable's `meters`. */
  meters?: Array<Record<string, unknown>>
  adjustments: StatementAdjustment[]
  adjustments_total: { quantity: number | string; amount: string }
  previous: { period: string; content_hash: string } | null
}

/** A period name: a month from 1970 to 2200 (older or later months overflow ClickHouse's DateTime64(9)), as a JSON-Schema pattern too. */
export const PERIOD_PATTERN = '^(19[7-9][0-9]|20[0-9][0-9]|21[0-9][0-9]|2200)-(0[1-9]|1[0-2])$'
const PERIOD = new RegExp(PERIOD_PATTERN)

/** The month [from, to) of a period name such as 2026-10. */
export function periodRange(period: string): { from: Date; to: Date } {
  const m = PERIOD.exec(period)
  if (!m) throw badParameter('period', 'must be a month from 1970-01 to 2200-12, such as 2026-10')
  const [year, month] = [Number(m[1]), Number(m[2])]
  return { from: new Date(Date.UTC(year, month - 1, 1)), to: new Date(Date.UTC(year, month, 1)) }
}

/** A signed exact amount (adjustments may be negative when a rate card was changed after the fact). */
export function signedMoney(text: string): bigint {
  return text.startsWith('-') ? -parseMoney(text.slice(1)) : parseMoney(text)
}

/** A signed exact amount as a statement writes it. */
export function formatSigned(amount: bigint): string {
  return amount < 0n ? `-${formatMoney(-amount as Money)}` : formatMoney(amount as Money)
}

/** A statement quantity (a number, or a decimal string, possibly signed in adjustments) as signed scaled units. */
export function signedQuantity(value: number | string): bigint {
  const text = String(value)
  return text.startsWith('-') ? -parseQuantity(text.slice(1)) : parseQuantity(text)
}

/** Signed scaled units as a statement quantity: a number when whole and exact as a double, else a decimal string. */
export function quantityValue(units: bigint): number | string {
  const magnitude = (units < 0n ? -units : units) as Quantity
  const json = quantityJson(magnitude)
  const value = JSON.parse(json) as number | string
  if (units >= 0n) return value
  return typeof value === 'number' ? -value : `-${value}`
}
