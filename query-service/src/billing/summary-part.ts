/**
 * A bill that reads both the summary and the ledger (the month to date: the
 * prefixes of the month's closed days, today's closed hours and the open
 * hour, then the seconds since the summary job's last run) reads them as two
 * statements, and keeps the summary's part between writes of the summary
 * on the embedded engine: while spans arrive, bills asked again and again
 * read only the ledger's last seconds, and the summary's part is read once
 * per run of the job. The two parts come back in the same key order and are
 * merged here, adding up the rows they share; the answer is the one a single
 * statement gives.
 *
 * On a ClickHouse server (writes cannot all be seen) nothing is kept, and a
 * plan of one kind is read as one statement as before.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { tablesWriteKey } from '../storage/write-tracking.js'
import { toCount } from '../storage/read.js'
import { WriteKeyedCache } from './plan.js'
import { addCounts, addSums, billableAggregates, type BillableAggregates, type SqlGroupKey } from './queries.js'
import { policyKey } from './rollup.js'

type AggregateOptions = Parameters<typeof billableAggregates>[1]

/** The tables a summary-only read depends on: the summary's rows, and the inventory when it is joined. */
const SUMMARY_TABLES = ['nhi_usage_summary', 'nhi_inventory'] as const
/** Summary parts kept per write key: a few ranges, groupings and scopes (each can be tens of thousands of rows). */
const MAX_KEPT_PARTS = 8
const kept = new WriteKeyedCache<BillableAggregates>(MAX_KEPT_PARTS)

/**
 * Aggregates for a bill (see {@link billableAggregates}); a plan that reads
 * both summary and ledger reads the summary's part from what was kept when
 * nothing it depends on was written since.
 */
export async function usageAggregates(client: ClickHouseClient, options: AggregateOptions): Promise<BillableAggregates> {
  const { plan } = options
  const writes = tablesWriteKey(client, SUMMARY_TABLES)
  if (plan.rollup.length === 0 || plan.ledger.length === 0 || writes === undefined) return billableAggregates(client, options)
  const key = JSON.stringify([policyKey(options.cards), plan.policyKey, plan.rollup, options.groupBy, options.granularity, options.businessUnits])
  let summary = kept.get(client, writes, key)
  if (!summary) {
    summary = await billableAggregates(client, { ...options, plan: { ...plan, ledger: [] } })
    // Kept under the write key it was read under, unless a write started during the read; one under way throughout
    // moves the key when it ends, so the part is not served past it. Frozen: a caller that changed it would change
    // every later bill.
    if (writes === tablesWriteKey(client, SUMMARY_TABLES)) kept.set(client, writes, key, deepFreeze(summary))
  }
  const tail = await billableAggregates(client, { ...options, plan: { rollup: [], ledger: plan.ledger, policyKey: '' } })
  // Rows out of the order this merge expects (a string ClickHouse sorts differently): read as one statement.
  return mergeSorted(summary, tail) ?? billableAggregates(client, options)
}

/** The aggregates, their columns and each row's arrays made read-only. */
function deepFreeze(aggregates: BillableAggregates): BillableAggregates {
  for (const column of [aggregates.events, aggregates.sums, aggregates.missing]) {
    for (const row of column) Object.freeze(row)
    Object.freeze(column)
  }
  for (const column of Object.values(aggregates.keys)) Object.freeze(column)
  Object.freeze(aggregates.keys)
  for (const column of [aggregates.identified, aggregates.cardIndex, aggregates.spans, aggregates.sumFirst]) Object.freeze(column)
  return Object.freeze(aggregates)
}

/** A UTF-16 unit where code-unit and code-point order can differ (a surrogate, or U+E000 and above). */
const HIGH_UNIT = /[\ud800-\uffff]/

/**
 * Compares strings by code point, as ClickHouse compares their UTF-8 bytes
 * (JavaScript's `<` compares UTF-16 units, which puts U+10000 and above
 * before U+E000–U+FFFF).
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    // A surrogate (U+D800–U+DFFF, half of a code point past U+FFFF) sorts after every other unit.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000
    }
    return x - y
  }
  return a.length - b.length
}

/**
 * Two aggregates, each in key order with every key tuple's (card, whether
 * identified) once, merged into one such: rows that share keys, card and
 * whether identified are added up (counts past 2^53 - 1 are refused, sums
 * stay exact). Neither input is changed. Undefined when an input is not in
 * the order compared here.
 */
export function mergeSorted(a: BillableAggregates, b: BillableAggregates): BillableAggregates | undefined {
  // Keys in the order they were asked for (and sorted by).
  const names = Object.keys(a.keys) as SqlGroupKey[]
  const columnsA = names.map((k) => a.keys[k]!)
  const columnsB = names.map((k) => b.keys[k]!)
  // Without a unit from U+D800 on in any key, JavaScript's own order is ClickHouse's (and cheaper to ask).
  const plain = [...columnsA, ...columnsB].every((column) => column.every((value) => !HIGH_UNIT.test(value)))
  const order = plain ? (x: string, y: string) => (x === y ? 0 : x < y ? -1 : 1) : compareCodePoints
  const compare = (ca: string[][], i: number, cb: string[][], j: number) => {
    for (let k = 0; k < ca.length; k++) {
      const sign = order(ca[k]![i]!, cb[k]![j]!)
      if (sign !== 0) return sign
    }
    return 0
  }
  const out: BillableAggregates = { keys: {}, identified: [], cardIndex: [], events: [], sums: [], missing: [], spans: [], sumFirst: a.sumFirst }
  const outColumns = names.map((k) => (out.keys[k] = [] as string[]))
  const copy = (from: BillableAggregates, columns: string[][], i: number) => {
    for (let k = 0; k < columns.length; k++) outColumns[k]!.push(columns[k]![i]!)
    out.identified.push(from.identified[i]!)
    out.cardIndex.push(from.cardIndex[i]!)
    out.events.push(from.events[i]!)
    out.sums.push(from.sums[i]!)
    out.missing.push(from.missing[i]!)
    out.spans.push(from.spans[i]!)
  }
  // The end of the run of rows from `i` on that share row i's keys, after checking the run follows the row before.
  const runEnd = (from: BillableAggregates, columns: string[][], i: number): number | undefined => {
    if (i > 0 && compare(columns, i - 1, columns, i) > 0) return undefined
    let end = i + 1
    while (end < from.cardIndex.length && compare(columns, i, columns, end) === 0) end++
    return end
  }
  let i = 0
  let j = 0
  const lengthA = a.cardIndex.length
  const lengthB = b.cardIndex.length
  while (i < lengthA || j < lengthB) {
    const first = i === lengthA ? 1 : j === lengthB ? -1 : compare(columnsA, i, columnsB, j)
    const endA = first <= 0 ? runEnd(a, columnsA, i) : i
    const endB = first >= 0 ? runEnd(b, columnsB, j) : j
    if (endA === undefined || endB === undefined) return undefined
    // The rows of one key tuple: each (card, identified) of b added to a's row of the same, or after a's.
    const start = out.cardIndex.length
    for (let r = i; r < endA; r++) copy(a, columnsA, r)
    for (let r = j; r < endB; r++) {
      let into = -1
      for (let o = start; o < start + (endA - i); o++) if (out.cardIndex[o] === b.cardIndex[r] && out.identified[o] === b.identified[r]) into = o
      if (into < 0) {
        copy(b, columnsB, r)
        continue
      }
      out.events[into] = addCounts(out.events[into]!, b.events[r]!)
      out.missing[into] = addCounts(out.missing[into]!, b.missing[r]!)
      out.sums[into] = addSums(out.sums[into]!, b.sums[r]!)
      out.spans[into] = toCount(out.spans[into]! + b.spans[r]!)
    }
    i = endA
    j = endB
  }
  return out
}
