/**
 * A bill for a range: billable rows grouped as asked, priced exactly by the
 * card in force at each event, with totals and the completeness of the
 * evidence. GET /v1/billable and period statements both come from here.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { TimeRange } from '../http/params.js'
import { addMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import { priceOf } from '../money/pricing.js'
import { QUANTITY_UNIT, quantityFromCount, ZERO_QUANTITY, type Quantity } from '../money/quantity.js'
import { sumQuantity } from '../storage/row-binary.js'
import { activeCrossings, linear, pricedAlone, ratedByGroup, ratedPerIdentity, rateCells, type RatedCell } from './rating.js'
import { completenessStatus, identifiedRatio } from '../policy/index.js'
import { pendingSpans } from '../telemetry/queries.js'
import { ledgerPlan, loadPlanFacts, planUsage } from './plan.js'
import { policyKey } from './rollup.js'
import type { Pricing } from './pricing.js'
import type { BusinessUnitScope } from '../identities/effective.js'
import { type BillableAggregates, type Granularity, type GroupByKey } from './queries.js'
import type { Meter, RateCard } from '../policy/index.js'
import { BillRows } from './bill-rows.js'
import { usageAggregates } from './summary-part.js'

export type { BillRow } from './bill-rows.js'
export { BillRows } from './bill-rows.js'

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

/** One meter's part of a bill (meters of several cards with one name are one entry). */
export interface MeterTotal {
  meter: string
  aggregation: Meter['aggregation']
  /** The value a sum meter adds, else null. */
  value: string | null
  quantity: Quantity
  /** Matching events. */
  events: number
  /** Matching events of a sum meter that carried no value (they add 0). */
  eventsWithoutValue: number
  amount: Money
}

/** A computed bill. */
export interface Bill {
  rows: BillRows
  totalQuantity: Quantity
  totalAmount: Money
  /** Per meter, in name order: the figures beside the rows. */
  meters: MeterTotal[]
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
  const facts = groupBy.includes('on_behalf_of') || groupBy.includes('activity.name') ? undefined : await loadPlanFacts(client, range, policyKey(cards), request.rollupGraceSeconds)
  const plan = facts ? planUsage(range, facts, groupBy.includes('period') ? granularity : 'month') : ledgerPlan(range)
  // Meters rated per month and business unit (rating.ts) need those keys, and some need the identity, even when the
  // bill is not grouped by them; the rows are folded back to the requested keys afterwards.
  const internal = [...groupBy]
  const meters = cards.flatMap((card) => card.meters)
  if (meters.some(ratedByGroup)) {
    if (!internal.includes('business_unit')) internal.push('business_unit')
    if (!internal.includes('period')) internal.push('period')
  }
  if (meters.some(ratedPerIdentity) && !internal.includes('nhi.id')) internal.push('nhi.id')
  const aggregates = await usageAggregates(client, {
    groupBy: internal,
    granularity: groupBy.includes('period') ? granularity : 'month',
    cards,
    businessUnits,
    plan,
  })
  // The plan facts probed for waiting events already: counted only when there are some.
  const pending = [...(await pendingSpans(client, range, businessUnits, facts?.pendingInRange)).values()].reduce((a, b) => a + b, 0)

  const folded = foldAggregates(aggregates, groupBy, cards)
  const { rows: sorted, totalQuantity, totalAmount, rateCardVersions } = folded
  // Events waiting for their trace are in no row yet; they count as not identified until decided.
  const counts = { spans: folded.counts.spans + pending, identifiedSpans: folded.counts.identifiedSpans }
  return {
    rows: sorted,
    totalQuantity,
    totalAmount,
    meters: folded.meters,
    rateCardVersions,
    completeness: {
      spans: counts.spans,
      identified_spans: counts.identifiedSpans,
      identified_ratio: identifiedRatio(counts.spans, counts.identifiedSpans),
      status: completenessStatus(counts.spans, counts.identifiedSpans, completenessThreshold),
      threshold: completenessThreshold,
      pending_spans: pending,
    },
  }
}

/** What {@link foldAggregates} returns: the bill's rows, totals and evidence counts. */
export interface FoldedBill {
  rows: BillRows
  totalQuantity: Quantity
  totalAmount: Money
  meters: MeterTotal[]
  rateCardVersions: string[]
  counts: { spans: number; identifiedSpans: number }
}

/**
 * Folds aggregates (keys, card, usage per meter) into the requested rows,
 * pricing each part exactly with the card that matched it: row by row for
 * unit-priced counts, per rating group for the rest (rating.ts). Every
 * event, billed or not, counts towards completeness. `meter` and
 * `activity.type` come from the meter (each meter names one activity
 * type). The aggregates may carry more keys than `groupBy` (rating needs
 * them); rows are folded to `groupBy` and come out sorted by it.
 */
export function foldAggregates(aggregates: BillableAggregates, groupBy: readonly GroupByKey[], cards: readonly RateCard[]): FoldedBill {
  const counts = { spans: 0, identifiedSpans: 0 }
  const usedCards = new Set<number>()
  const { identified, cardIndex, events, sums, missing, sumFirst } = aggregates
  const columns = groupBy.map((k) => (k === 'meter' || k === 'activity.type' ? null : (aggregates.keys[k] ?? [])))
  const fromMeter = groupBy.map((k) => (k === 'meter' ? (m: Meter) => m.name : (m: Meter) => m.activity_type))
  const rated = cards.map((card) => card.meters.map(ratedByGroup))
  // Meters priced per unit whatever the row (counts and sums; not active identities, counted once per group).
  const fast = cards.map((card) => card.meters.map((m) => m.aggregation !== 'active_identities' && linear(m)))
  const priceNumber = cards.map((card) => card.meters.map((m) => (m.unit_price !== null && m.unit_price <= MAX_SAFE ? Number(m.unit_price) : -1)))
  // Per card, its meters in name order: a group's rows are made in that order, so they come out in group-by order when
  // the meter is the last key (the common case) and need no sort.
  const byName = cards.map((card) => card.meters.map((_, m) => m).sort((a, b) => compareValues([card.meters[a]!.name], [card.meters[b]!.name]) || a - b))
  // About a row per aggregate row and meter used, within reason: the columns grow as needed.
  const ratingKeys = { period: aggregates.keys.period, businessUnit: aggregates.keys.business_unit, nhiId: aggregates.keys['nhi.id'] }
  const rows = new BillRows(groupBy.length, Math.min(cardIndex.length * (events[0]?.length ?? 1), 262_144))
  const cells: RatedCell[] = []
  // Per cell, the row its rated quantity and amount go to: made in its place among the others as the cell is met,
  // so the rows come out in key order with nothing to merge.
  const targets: number[] = []
  // Rows made only for active-identity cells: an identity that does not become active in one leaves nothing to show
  // there, so such a row goes unless a cell of it counts an identity, or other usage lands in it.
  const tentative = new Set<number>()
  const tallies = cards.map((card) => card.meters.map((meter) => new MeterTally(meter)))
  // The row that aggregate row i's usage of `meter` goes to: the last row when the keys are the same (rows arrive in
  // key order), else a new one. Usage that is not an active-identity count makes the row stay.
  const keyCount = columns.length
  // Whether every row made so far came after the one before it in key order.
  let inOrder = true
  const rowFor = (i: number, meter: Meter, mayGo = false): number => {
    const last = rows.length - 1
    let same = last >= 0
    for (let k = 0; k < keyCount && same; k++) same = rows.keys[k]![last] === (columns[k]?.[i] ?? fromMeter[k]!(meter))
    if (same) {
      if (!mayGo && tentative.size > 0) tentative.delete(last)
      return last
    }
    const r = rows.pushEmpty()
    for (let k = 0; k < keyCount; k++) rows.keys[k]![r] = columns[k]?.[i] ?? fromMeter[k]!(meter)
    if (inOrder && last >= 0 && rows.compare(last, rows, r) > 0) inOrder = false
    if (mayGo) tentative.add(r)
    return r
  }
  // Where identities become active, for active-identity meters priced per unit: only those rows get one.
  const crossings = activeCrossings(aggregates, cards, ratingKeys)
  for (let i = 0; i < cardIndex.length; i++) {
    // Element 0 counts events that matched no meter, element m + 1 those of meter m.
    const counted = events[i]!
    counts.spans += aggregates.spans[i]!
    if (!identified[i]) continue
    counts.identifiedSpans += aggregates.spans[i]!
    const c = cardIndex[i]!
    const card = cards[c]
    if (!card) continue
    let used = false
    for (const m of byName[c]!) {
      const n = counted[m + 1] ?? 0
      if (n === 0) continue
      used = true
      const meter = card.meters[m]!
      const entry = tallies[c]![m]!
      entry.events += n
      const unitPrice = meter.unit_price
      const crossing = crossings[c]![m]
      if (crossing) {
        // An identity counts once, where it became active, at the unit price.
        if (crossing[i] === 1) {
          entry.addUnits(1)
          addWhole(rows, rowFor(i, meter), 1, unitPrice!, priceNumber[c]![m]!)
        }
        continue
      }
      if (unitPrice !== null && fast[c]![m]) {
        // The common cases, kept free of rounding and of per-meter bigint sums: n events, or a whole sum of units, at
        // a unit price (a whole quantity times a price never rounds).
        if (meter.aggregation === 'count') {
          entry.addUnits(n)
          addWhole(rows, rowFor(i, meter), n, unitPrice, priceNumber[c]![m]!)
          continue
        }
        const units = sums[i]![m - sumFirst[c]!] ?? 0
        if (typeof units === 'number') {
          const without = missing[i]![m - sumFirst[c]!] ?? 0
          entry.addUnits(units)
          entry.without += without
          const r = rowFor(i, meter)
          addWhole(rows, r, units, unitPrice, priceNumber[c]![m]!)
          rows.without[r]! += without
          continue
        }
      }
      const valued = meter.aggregation === 'sum'
      const quantity = valued ? sumQuantity(sums[i]![m - sumFirst[c]!] ?? 0) : quantityFromCount(n)
      const without = valued ? (missing[i]![m - sumFirst[c]!] ?? 0) : 0
      if (rated[c]![m] && !pricedAlone(meter, quantity)) {
        cells.push({ row: i, card: c, meter: m, events: n, missing: without, quantity, amount: ZERO_MONEY })
        targets.push(rowFor(i, meter, meter.aggregation === 'active_identities'))
        continue
      }
      const amount = priceOf(meter.price.model, quantity)
      entry.add(quantity, amount, without)
      addExact(rows, rowFor(i, meter), quantity, amount, without)
    }
    if (used) usedCards.add(c)
  }
  if (cells.length > 0) {
    rateCells(cells, cards, ratingKeys)
    cells.forEach((cell, k) => {
      const meter = cards[cell.card]!.meters[cell.meter]!
      tallies[cell.card]![cell.meter]!.add(cell.quantity, cell.amount, cell.missing)
      if (cell.quantity === 0n && cell.amount === 0n && meter.aggregation === 'active_identities') return
      tentative.delete(targets[k]!)
      addExact(rows, targets[k]!, cell.quantity, cell.amount, cell.missing)
    })
  }
  if (tentative.size > 0) rows.drop(tentative)
  // Rows arrive mostly in order (ClickHouse orders bytes, TypeScript UTF-16 units, and a meter that is not the last
  // key interleaves groups): sorted only when needed, rows with equal keys added into one. Rows already in order
  // were merged as they were made.
  const merged = inOrder ? rows : rows.inOrder()
  // Every row's quantity and amount went to its meter's tally too, so the totals are the meters' (no sum per row).
  const meterList = meterTotals(tallies.flat())
  let totalQuantity = ZERO_QUANTITY
  let totalAmount = ZERO_MONEY
  for (const total of meterList) {
    totalQuantity = (totalQuantity + total.quantity) as Quantity
    totalAmount = addMoney(totalAmount, total.amount)
  }
  return {
    rows: merged,
    totalQuantity,
    totalAmount,
    meters: meterList,
    rateCardVersions: [...new Set([...usedCards].map((c) => cards[c]!.version))].sort(),
    counts,
  }
}

// One meter's usage and amount in a bill, summed as rows are made. Meters priced per unit leave the quantity and
// amount of their whole units to be derived at the end (exact: units × price adds up), the rest add them part by part.
class MeterTally {
  events = 0
  /** Whole units (events, or a sum's units) of a unit-priced meter whose quantity and amount are derived at the end. */
  private fastUnits = 0
  without = 0
  quantity = ZERO_QUANTITY
  amount = ZERO_MONEY

  constructor(readonly meter: Meter) {}

  add(quantity: Quantity, amount: Money, without: number): void {
    this.quantity = (this.quantity + quantity) as Quantity
    this.amount = addMoney(this.amount, amount)
    this.without += without
  }

  addUnits(units: number): void {
    this.fastUnits += units
    // Kept a safe integer: far beyond any bill's usage, but moved into the exact sums when reached.
    if (this.fastUnits > FAST_UNITS_LIMIT) this.settle()
  }

  /** Moves the whole units into the exact quantity and amount. */
  settle(): void {
    const units = BigInt(this.fastUnits)
    this.fastUnits = 0
    this.quantity = (this.quantity + units * QUANTITY_UNIT) as Quantity
    this.amount = addMoney(this.amount, ((this.meter.unit_price ?? ZERO_MONEY) * units) as Money)
  }
}

const FAST_UNITS_LIMIT = 2 ** 52
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

// Adds `units` whole units at a unit price (given as a bigint and, when it is a safe integer, as a number: else -1)
// to row r, exactly: as numbers while the product is a safe integer.
function addWhole(rows: BillRows, r: number, units: number, price: Money, priceNumber: number): void {
  rows.addUnits(r, units)
  if (priceNumber >= 0) {
    const product = units * priceNumber
    // Both factors are safe integers; a product that is one too is exact.
    if (product <= Number.MAX_SAFE_INTEGER) return rows.addNanos(r, product)
  }
  rows.addAmount(r, (price * BigInt(units)) as Money)
}

function addExact(rows: BillRows, r: number, quantity: Quantity, amount: Money, without: number): void {
  rows.addQuantity(r, quantity)
  rows.addAmount(r, amount)
  rows.without[r]! += without
}

// The per-meter figures: tallies of meters that share a name (on several cards) added, in name order.
function meterTotals(tallies: MeterTally[]): MeterTotal[] {
  const totals = new Map<string, MeterTotal>()
  for (const tally of tallies) {
    if (tally.events === 0) continue
    const { meter } = tally
    tally.settle()
    const { quantity, amount } = tally
    const total = totals.get(meter.name)
    if (total) {
      total.events += tally.events
      total.eventsWithoutValue += tally.without
      total.quantity = (total.quantity + quantity) as Quantity
      total.amount = addMoney(total.amount, amount)
    } else {
      totals.set(meter.name, { meter: meter.name, aggregation: meter.aggregation, value: meter.value, quantity, events: tally.events, eventsWithoutValue: tally.without, amount })
    }
  }
  return [...totals.values()].sort((a, b) => compareValues([a.meter], [b.meter]))
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}
