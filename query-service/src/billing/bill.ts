/**
 * A bill for a range: billable rows grouped as asked, priced exactly by the
 * card in force at each event, with totals and the completeness of the
 * evidence. GET /v1/billable and period statements both come from here.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { TimeRange } from '../http/params.js'
import { addMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
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
 * Folds priced aggregates into the bill's rows: billed aggregates with the
 * same keys are summed (they arrive ordered by their keys, so this is one
 * pass), every aggregate counts towards completeness, and rows come out
 * sorted by their keys in group-by order (by UTF-16 code units, as
 * TypeScript compares; ClickHouse orders bytes).
 */
export function foldAggregates(aggregates: readonly BillableAggregate[], groupBy: readonly GroupByKey[], cards: readonly RateCard[]): FoldedBill {
  interface Row {
    values: string[]
    keys: Record<string, string>
    quantity: number
    amount: Money
  }
  const counts = { spans: 0, identifiedSpans: 0 }
  const versions = new Set<string>()
  const same = (a: readonly string[], b: readonly string[]) => a.every((v, i) => v === b[i])
  const rows: Row[] = []
  for (const agg of aggregates) {
    counts.spans += agg.quantity
    if (!agg.identified) continue
    counts.identifiedSpans += agg.quantity
    if (!agg.billed) continue
    for (const c of agg.cardIndices) versions.add(cards[c]!.version)
    rows.push({ values: groupBy.map((k) => agg.keys[k] ?? ''), keys: agg.keys, quantity: agg.quantity, amount: agg.amount })
  }
  rows.sort((a, b) => {
    for (let i = 0; i < a.values.length; i++) {
      const x = a.values[i]!
      const y = b.values[i]!
      if (x !== y) return x < y ? -1 : 1
    }
    return 0
  })
  const merged: Row[] = []
  for (const row of rows) {
    const last = merged[merged.length - 1]
    if (last && same(last.values, row.values)) {
      last.quantity += row.quantity
      last.amount = addMoney(last.amount, row.amount)
    } else merged.push(row)
  }
  let totalQuantity = 0
  let totalAmount = ZERO_MONEY
  const priced = merged.map(({ keys, quantity, amount }) => {
    totalQuantity += quantity
    totalAmount = addMoney(totalAmount, amount)
    const out: Record<string, string> = {}
    for (const k of groupBy) out[k] = keys[k] ?? ''
    return { keys: out, quantity, amount }
  })
  return {
    rows: priced,
    totalQuantity,
    totalAmount,
    rateCardVersions: [...versions].sort(),
    counts,
  }
}
