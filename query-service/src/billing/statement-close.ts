/**
 * Period statements: closing a month writes an immutable statement with a
 * SHA-256 content hash. Spans that arrive for an already closed month are
 * never folded into it; the next statement lists them as adjustments
 * against the month they belong to (quantity and amount deltas, exact),
 * and each statement names its predecessor's hash, so the chain shows any
 * rewrite.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { ApiError, badParameter } from '../http/errors.js'
import { formatMoney } from '../money/decimal.js'
import { computeBill } from './bill.js'
import { meterJson } from './bill-json.js'
import type { Pricing } from './pricing.js'
import { formatSigned, periodRange, quantityValue, signedMoney, signedQuantity, type Statement, type StatementAdjustment, type StatementLine } from './statement.js'
import { hashContent } from './statement-hash.js'
import { insertStatement, loadStatements } from './statement-store.js'

async function linesFor(client: ClickHouseClient, pricing: Pricing, range: { from: Date; to: Date }) {
  const bill = await computeBill(client, { range, groupBy: ['nhi.id', 'meter'], granularity: 'day', businessUnits: null, pricing })
  return { bill, lines: bill.rows.toArray().map((r) => ({ 'nhi.id': r.values[0]!, meter: r.values[1]!, quantity: quantityValue(r.quantity), amount: formatMoney(r.amount) })) }
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
  await insertStatement(client, statement, content, contentHash)
  const stored = (await loadStatements(client)).find((s) => (s.statement.previous?.content_hash ?? null) === (statement.previous?.content_hash ?? null))
  if (stored?.contentHash !== contentHash) {
    throw stored?.statement.period === period
      ? new ApiError('already_closed', `${period} was closed at the same moment by another request (another query service); statements are never rewritten`)
      : new ApiError('conflict', `${stored?.statement.period ?? 'another period'} was closed at the same moment by another request; close ${period} again`)
  }
  return { ...statement, content_hash: contentHash }
}
