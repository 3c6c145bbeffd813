/**
 * A bill for a range: billable rows grouped as asked, priced exactly by the
 * card in force at each event, with totals and the completeness of the
 * evidence. GET /v1/billable and period statements both come from here.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { TimeRange } from '../http/params.js'
import { addMoney, multiplyMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import { completenessStatus } from '../policy/index.js'
import { loadPlanFacts, planUsage } from './plan.js'
import type { Pricing } from './pricing.js'
import { billableAggregates, type BusinessUnitScope, type Granularity, type GroupByKey } from './queries.js'

/** The completeness block of a billing answer. */
export interface Completeness {
  spans: number
  identified_spans: number
  identified_ratio: number
  status: 'complete' | 'incomplete'
  threshold: number
}

/** One row of a bill: the group keys, the count and the exact amount. */
export interface BillRow {
  keys: Record<string, string>
  quantity: number
  amount: Money
}

/** A computed bill. */
export interface Bill {
  rows: BillRow[]
  totalQuantity: number
  totalAmount: Money
  rateCardVersions: string[]
  completeness: Completeness
}

/** What to bill. */
export interface BillRequest {
  range: TimeRange
  groupBy: GroupByKey[]
  granularity: Granularity
  businessUnits: BusinessUnitScope
  pricing: Pricing
  rollupGraceSeconds?: number
}

/** Computes a bill; rows are sorted by their keys in group-by order. */
export async function computeBill(client: ClickHouseClient, request: BillRequest): Promise<Bill> {
  const { range, groupBy, granularity, businessUnits } = request
  const { cards, completenessThreshold } = request.pricing
  const facts = await loadPlanFacts(client, range, request.rollupGraceSeconds)
  const plan = planUsage(range, facts, cards, groupBy.includes('period') ? granularity : 'month')
  const aggregates = await billableAggregates(client, { groupBy, granularity, cards, businessUnits, plan })

  // Fold (keys, card, meter) aggregates into the requested rows, pricing each part exactly;
  // every aggregate, billed or not, counts towards completeness.
  const counts = { spans: 0, identifiedSpans: 0 }
  const rows = new Map<string, BillRow>()
  const versions = new Set<string>()
  for (const agg of aggregates) {
    counts.spans += agg.quantity
    if (!agg.identified) continue
    counts.identifiedSpans += agg.quantity
    if (agg.cardIndex < 0 || agg.meterIndex < 0) continue
    const card = cards[agg.cardIndex]!
    const meter = card.meters[agg.meterIndex]!
    versions.add(card.version)
    const keys = Object.fromEntries(groupBy.map((k) => [k, k === 'meter' ? meter.name : (agg.keys[k] ?? '')]))
    const id = JSON.stringify(groupBy.map((k) => keys[k]))
    const row = rows.get(id) ?? { keys, quantity: 0, amount: ZERO_MONEY }
    row.quantity += agg.quantity
    row.amount = addMoney(row.amount, multiplyMoney(meter.unit_price, agg.quantity))
    rows.set(id, row)
  }
  const sorted = [...rows.values()].sort((a, b) => {
    for (const k of groupBy) {
      const cmp = (a.keys[k] ?? '') < (b.keys[k] ?? '') ? -1 : (a.keys[k] ?? '') > (b.keys[k] ?? '') ? 1 : 0
      if (cmp !== 0) return cmp
    }
    return 0
  })
  let totalQuantity = 0
  let totalAmount = ZERO_MONEY
  for (const row of sorted) {
    totalQuantity += row.quantity
    totalAmount = addMoney(totalAmount, row.amount)
  }
  const ratio = counts.spans === 0 ? 1 : counts.identifiedSpans / counts.spans
  return {
    rows: sorted,
    totalQuantity,
    totalAmount,
    rateCardVersions: [...versions].sort(),
    completeness: {
      spans: counts.spans,
      identified_spans: counts.identifiedSpans,
      identified_ratio: Math.floor(ratio * 1e6) / 1e6,
      status: completenessStatus(counts.spans, counts.identifiedSpans, completenessThreshold),
      threshold: completenessThreshold,
    },
  }
}
