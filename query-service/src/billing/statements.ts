/**
 * Period statements: closing a month writes an immutable statement with a
 * SHA-256 content hash. Spans that arrive for an already closed month are
 * never folded into it; the next statement lists them as adjustments
 * against the month they belong to (quantity and amount deltas, exact),
 * and each statement names its predecessor's hash, so the chain shows any
 * rewrite.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { ApiError, badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseJsonBody, readBodyText } from '../http/body.js'
import { rejectUnknown } from '../http/params.js'
import { formatMoney, parseMoney, type Money } from '../money/decimal.js'
import { computeBill, type Completeness } from './bill.js'
import { parseQuantity, type Quantity } from '../money/quantity.js'
import { meterJson, quantityJson } from './bill-json.js'
import type { Pricing } from './pricing.js'

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
const storedRow = z.object({ period: z.string(), content: z.string(), content_hash: z.string() })

/** A signed exact amount (adjustments may be negative when a rate card was changed after the fact). */
function signedMoney(text: string): bigint {
  return text.startsWith('-') ? -parseMoney(text.slice(1)) : parseMoney(text)
}

function formatSigned(amount: bigint): string {
  return amount < 0n ? `-${formatMoney(-amount as Money)}` : formatMoney(amount as Money)
}

/** A statement quantity (a number, or a decimal string, possibly signed in adjustments) as signed scaled units. */
function signedQuantity(value: number | string): bigint {
  const text = String(value)
  return text.startsWith('-') ? -parseQuantity(text.slice(1)) : parseQuantity(text)
}

/** Signed scaled units as a statement quantity: a number when whole and exact as a double, else a decimal string. */
function quantityValue(units: bigint): number | string {
  const magnitude = (units < 0n ? -units : units) as Quantity
  const json = quantityJson(magnitude)
  const value = JSON.parse(json) as number | string
  if (units >= 0n) return value
  return typeof value === 'number' ? -value : `-${value}`
}

/** SHA-256 hex of a statement's canonical JSON. */
export function hashContent(content: string): string {
  return createHash('sha256').update(content, 'utf8').digest('hex')
}

/** The month [from, to) of a period name such as 2026-10. */
export function periodRange(period: string): { from: Date; to: Date } {
  const m = PERIOD.exec(period)
  if (!m) throw badParameter('period', 'must be a month from 1970-01 to 2200-12, such as 2026-10')
  const [year, month] = [Number(m[1]), Number(m[2])]
  return { from: new Date(Date.UTC(year, month - 1, 1)), to: new Date(Date.UTC(year, month, 1)) }
}

/** Every stored statement, oldest first, each checked against its hash. */
export async function loadStatements(client: ClickHouseClient): Promise<Array<{ statement: Statement; contentHash: string }>> {
  const result = await client.query({ query: 'SELECT period, content, content_hash FROM nhi_statements ORDER BY period', format: 'JSONEachRow' })
  return (await result.json<Record<string, unknown>>()).map((raw) => {
    const row = storedRow.parse(raw)
    if (hashContent(row.content) !== row.content_hash) {
      throw new ApiError('statement_tampered', `statement ${row.period} does not match its content hash; it was changed after it was closed`)
    }
    return { statement: JSON.parse(row.content) as Statement, contentHash: row.content_hash }
  })
}

async function linesFor(client: ClickHouseClient, pricing: Pricing, range: { from: Date; to: Date }) {
  const bill = await computeBill(client, { range, groupBy: ['nhi.id', 'meter'], granularity: 'day', businessUnits: null, pricing })
  return { bill, lines: bill.rows.map((r) => ({ 'nhi.id': r.values[0]!, meter: r.values[1]!, quantity: quantityValue(r.quantity), amount: formatMoney(r.amount) })) }
}

/** Closes a month: computes its statement (and adjustments to earlier ones), stores it and returns it with its hash. */
export async function closePeriod(client: ClickHouseClient, pricing: Pricing, period: string, now: Date = new Date()): Promise<Statement & { content_hash: string }> {
  const range = periodRange(period)
  if (range.to.getTime() > now.getTime()) throw badParameter('period', `${period} is not over yet; a month can be closed from its last instant on`)
  const earlier = await loadStatements(client)
  const latest = earlier[earlier.length - 1]
  if (earlier.some((s) => s.statement.period === period)) throw new ApiError('already_closed', `${period} is already closed; statements are never rewritten`)
  if (latest && latest.statement.period > period) {
    throw new ApiError('out_of_order', `periods are closed in order; ${latest.statement.period} is already closed`)
  }

  const { bill, lines } = await linesFor(client, pricing, range)

  // What each earlier month says now, against what its statement and later adjustments recorded.
  const adjustments: StatementAdjustment[] = []
  for (const { statement } of earlier) {
    const recorded = new Map<string, { quantity: bigint; amount: bigint }>()
    const add = (line: StatementLine) => {
      const key = `${line['nhi.id']}\u0000${line.meter}`
      const entry = recorded.get(key) ?? { quantity: 0n, amount: 0n }
      entry.quantity += signedQuantity(line.quantity)
      entry.amount += signedMoney(line.amount)
      recorded.set(key, entry)
    }
    statement.lines.forEach(add)
    for (const later of earlier) for (const adj of later.statement.adjustments) if (adj.period === statement.period) add(adj)
    const now = (await linesFor(client, pricing, periodRange(statement.period))).lines
    const current = new Map(now.map((l) => [`${l['nhi.id']}\u0000${l.meter}`, { quantity: signedQuantity(l.quantity), amount: signedMoney(l.amount) }]))
    for (const key of [...new Set([...recorded.keys(), ...current.keys()])].sort()) {
      const before = recorded.get(key) ?? { quantity: 0n, amount: 0n }
      const after = current.get(key) ?? { quantity: 0n, amount: 0n }
      if (before.quantity === after.quantity && before.amount === after.amount) continue
      const [id, meter] = key.split('\u0000') as [string, string]
      adjustments.push({ period: statement.period, 'nhi.id': id, meter, quantity: quantityValue(after.quantity - before.quantity), amount: formatSigned(after.amount - before.amount) })
    }
  }

  const statement: Statement = {
    period,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    closed_at: now.toISOString(),
    currency: pricing.currency,
    rate_card_versions: bill.rateCardVersions,
    completeness: bill.completeness,
    lines,
    total: { quantity: quantityValue(bill.totalQuantity), amount: formatMoney(bill.totalAmount) },
    ...(bill.meters.some((m) => m.aggregation !== 'count') ? { meters: bill.meters.map(meterJson) } : {}),
    adjustments,
    adjustments_total: {
      quantity: quantityValue(adjustments.reduce((n, a) => n + signedQuantity(a.quantity), 0n)),
      amount: formatSigned(adjustments.reduce((n, a) => n + signedMoney(a.amount), 0n)),
    },
    previous: latest ? { period: latest.statement.period, content_hash: latest.contentHash } : null,
  }
  const content = JSON.stringify(statement)
  const contentHash = hashContent(content)
  // One statement per place in the chain (migration 0025): the token names the statement this one follows, so of two
  // services closing at the same moment ClickHouse keeps the first insert and drops the other.
  const place = `nhi-statement-after:${statement.previous?.content_hash ?? 'start'}`
  await client.insert({
    table: 'nhi_statements',
    values: [{ period, closed_at: statement.closed_at.replace('T', ' ').replace('Z', ''), content, content_hash: contentHash }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplicate: 1, insert_deduplication_token: place },
  })
  const stored = (await loadStatements(client)).find((s) => (s.statement.previous?.content_hash ?? null) === (statement.previous?.content_hash ?? null))
  if (stored?.contentHash !== contentHash) {
    throw stored?.statement.period === period
      ? new ApiError('already_closed', `${period} was closed at the same moment by another request (another query service); statements are never rewritten`)
      : new ApiError('conflict', `${stored?.statement.period ?? 'another period'} was closed at the same moment by another request; close ${period} again`)
  }
  return { ...statement, content_hash: contentHash }
}

/** Statements cover every business unit, so keys limited to units cannot read them. */
function requireAllUnits(businessUnits: readonly string[] | null): void {
  if (businessUnits) throw new ApiError('forbidden', 'statements cover every business unit; this key is limited to some')
}

const closeBody = z.object({ period: z.string().max(16) }).strict()
const MAX_CLOSE_BODY_BYTES = 1024 * 1024

/** Routes: POST /v1/statements (admin), GET /v1/statements, GET /v1/statements/{period}. */
export function statementRoutes(deps: {
  client: ClickHouseClient
  pricing: () => Pricing
  now?: () => Date
  /** Told of each month closed here, before the answer (webhooks queue statement.closed); must not throw. */
  onClosed?: (statement: Statement & { content_hash: string }) => Promise<void>
}): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.post('/statements', requireScope('admin'), async (c) => {
    rejectUnknown(c.req.query(), [])
    // Capped like every other body (a statement request is a few bytes; hostile ones are answered 400 naming the problem up to the cap).
    const parsed = closeBody.safeParse(parseJsonBody(await readBodyText(c.req.raw, MAX_CLOSE_BODY_BYTES)))
    if (!parsed.success) throw new ApiError('invalid_body', `body: ${parsed.error.issues[0]!.path.join('.') || '(root)'}: ${parsed.error.issues[0]!.message}; expected {"period": "YYYY-MM"}`)
    const statement = await closePeriod(deps.client, deps.pricing(), parsed.data.period, deps.now?.() ?? new Date())
    await deps.onClosed?.(statement)
    return c.json(statement, 201)
  })
  app.get('/statements', requireScope('billing:read'), async (c) => {
    rejectUnknown(c.req.query(), [])
    requireAllUnits(c.get('principal').businessUnits)
    const all = await loadStatements(deps.client)
    return c.json({
      statements: all.map(({ statement, contentHash }) => ({
        period: statement.period,
        closed_at: statement.closed_at,
        total: statement.total,
        adjustments_total: statement.adjustments_total,
        completeness_status: statement.completeness.status,
        content_hash: contentHash,
      })),
    })
  })
  app.get('/statements/:period', requireScope('billing:read'), async (c) => {
    rejectUnknown(c.req.query(), [])
    requireAllUnits(c.get('principal').businessUnits)
    const period = c.req.param('period')
    periodRange(period)
    const found = (await loadStatements(deps.client)).find((s) => s.statement.period === period)
    if (!found) throw new ApiError('not_found', `no statement for ${period}; close it with POST /v1/statements`)
    return c.json({ ...found.statement, content_hash: found.contentHash })
  })
  return app
}
