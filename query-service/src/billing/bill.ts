/**
 * A bill for a range: billable rows grouped as asked, priced exactly by the
 * card in force at each event, with totals and the completeness of the
 * evidence. GET /v1/billable and period statements both come from here.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { TimeRange } from '../http/params.js'
import { addMoney, multiplyMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import { completenessStatus } from '../policy/index.js'
import { pendingSpans } from '../telemetry/queries.js'
import { ledgerPlan, loadPlanFacts, planUsage } from './plan.js'
import { policyKey } from './rollup.js'
import type { Pricing } from './pricing.js'
import { billableAggregates, type BillableAggregate, type BusinessUnitScope, type Granularity, type GroupByKey } from './queries.js'
import type { RateCard } from '../policy/index.js'

/** The completeness block of a billing answer. */
export interface Completeness {
  spans: number
  identified_spans: number
  identified_ratio: number
  status: 'complete' | 'incomplete'
  threshold: number
  /** Use events still waiting for trace resolution: counted in `spans`, not (yet) identified or billed. */
  pending_spans: number
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
  // The summary keeps neither activity names nor on_behalf_of: grouping by them reads the ledger.
  const plan =
    groupBy.includes('on_behalf_of') || groupBy.includes('activity.name')
      ? ledgerPlan(range)
      : planUsage(range, await loadPlanFacts(client, range, policyKey(cards), request.rollupGraceSeconds), groupBy.includes('period') ? granularity : 'month')
  const aggregates = await billableAggregates(client, { groupBy, granularity, cards, businessUnits, plan })
  const pending = [...(await pendingSpans(client, range, businessUnits)).values()].reduce((a, b) => a + b, 0)

  const folded = foldAggregates(aggregates, groupBy, cards)
  const { rows: sorted, totalQuantity, totalAmount, rateCardVersions } = folded
  // Events waiting for their trace are in no row yet; they count as not identified until decided.
  const counts = { spans: folded.counts.spans + pending, identifiedSpans: folded.counts.identifiedSpans }
  const ratio = counts.spans === 0 ? 1 : counts.identifiedSpans / counts.spans
  return {
    rows: sorted,
    totalQuantity,
    totalAmount,
    rateCardVersions,
    completeness: {
      spans: counts.spans,
      identified_spans: counts.identifiedSpans,
      identified_ratio: Math.floor(ratio * 1e6) / 1e6,
      status: completenessStatus(counts.spans, counts.identifiedSpans, completenessThreshold),
      threshold: completenessThreshold,
      pending_spans: pending,
    },
  }
}

/** What {@link foldAggregates} returns: the bill's rows, totals and evidence counts. */
export interface FoldedBill {
  rows: BillRow[]
  totalQuantity: number
  totalAmount: Money
  rateCardVersions: string[]
  counts: { spans: number; identifiedSpans: number }
}

/**
 * Folds (keys, card, meter) aggregates into the requested rows, pricing each
 * part exactly with the card that matched it; every aggregate, billed or
 * not, counts towards completeness. Rows come out sorted by their keys in
 * group-by order.
 */
export function foldAggregates(aggregates: readonly BillableAggregate[], groupBy: readonly GroupByKey[], cards: readonly RateCard[]): FoldedBill {
  type Meter = RateCard['meters'][number]
  interface Row {
    values: string[]
    quantity: number
    /** Quantities per meter: amounts are priced once per row and meter at the end. */
    parts: Array<{ meter: Meter; quantity: number }>
  }
  const counts = { spans: 0, identifiedSpans: 0 }
  const versions = new Set<string>()
  const same = (a: readonly string[], b: readonly string[]) => a.every((v, i) => v === b[i])
  const addPart = (row: Row, meter: Meter, quantity: number) => {
    row.quantity += quantity
    const part = row.parts.find((p) => p.meter === meter)
    if (part) part.quantity += quantity
    else row.parts.push({ meter, quantity })
  }
  // Aggregates arrive ordered by the group-by keys, so equal keys are mostly adjacent: fold runs, sort, then merge
  // what is still adjacent and equal (whatever the input order). No per-aggregate key strings or maps: a bill of
  // tens of thousands of rows stays cheap.
  const runs: Row[] = []
  for (const agg of aggregates) {
    counts.spans += agg.quantity
    if (!agg.identified) continue
    counts.identifiedSpans += agg.quantity
    if (agg.cardIndex < 0 || agg.meterIndex < 0) continue
    const card = cards[agg.cardIndex]!
    const meter = card.meters[agg.meterIndex]!
    versions.add(card.version)
    const values = groupBy.map((k) => (k === 'meter' ? meter.name : (agg.keys[k] ?? '')))
    const last = runs[runs.length - 1]
    if (last && same(last.values, values)) addPart(last, meter, agg.quantity)
    else {
      const row: Row = { values, quantity: 0, parts: [] }
      addPart(row, meter, agg.quantity)
      runs.push(row)
    }
  }
  runs.sort((a, b) => {
    for (let i = 0; i < a.values.length; i++) {
      const x = a.values[i]!
      const y = b.values[i]!
      if (x !== y) return x < y ? -1 : 1
    }
    return 0
  })
  const merged: Row[] = []
  for (const row of runs) {
    const last = merged[merged.length - 1]
    if (last && same(last.values, row.values)) for (const p of row.parts) addPart(last, p.meter, p.quantity)
    else merged.push(row)
  }
  let totalQuantity = 0
  let totalAmount = ZERO_MONEY
  const priced = merged.map(({ values, quantity, parts }) => {
    let amount = ZERO_MONEY
    for (const p of parts) amount = addMoney(amount, multiplyMoney(p.meter.unit_price, p.quantity))
    totalQuantity += quantity
    totalAmount = addMoney(totalAmount, amount)
    const keys: Record<string, string> = {}
    groupBy.forEach((k, i) => (keys[k] = values[i]!))
    return { keys, quantity, amount }
  })
  return {
    rows: priced,
    totalQuantity,
    totalAmount,
    rateCardVersions: [...versions].sort(),
    counts,
  }
}
