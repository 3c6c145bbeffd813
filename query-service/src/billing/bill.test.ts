import { describe, expect, it } from 'vitest'
import { formatMoney, type Money } from '../money/decimal.js'
import { validatePolicy } from '../policy/index.js'
import { BillRows, foldAggregates } from './bill.js'
import { billJson } from './bill-json.js'
import { formatQuantity, quantityFromCount, type Quantity } from '../money/quantity.js'
import { quantityJson } from './bill-json.js'
import { pricingOf } from './pricing.js'
import { mergeAdjacent, type BillableAggregates, type GroupByKey, type SqlGroupKey } from './queries.js'
import type { SumValue } from '../storage/row-binary.js'

// Two cards whose meters share a name: a row sums both, each part priced by its own card.
const { cards } = pricingOf(
  validatePolicy({
    rate_cards: [
      { version: 'v1', effective_from: '2026-10-01T00:00:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' }] },
      {
        version: 'v2',
        effective_from: '2026-10-15T00:00:00Z',
        currency: 'USD',
        meters: [
          { name: 'api_calls', activity_type: 'api_call', unit_price: '0.0001' },
          { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.003' },
        ],
      },
    ],
  }).policy,
)

interface Aggregate {
  keys: Partial<Record<GroupByKey, string>>
  identified: boolean
  cardIndex: number
  meterIndex: number
  quantity: number
}
const agg = (id: string, cardIndex: number, meterIndex: number, quantity: number, identified = true): Aggregate => ({
  keys: { 'nhi.id': id },
  identified,
  cardIndex,
  meterIndex,
  quantity,
})
/** Rows to the columns billableAggregates returns. */
function columns(rows: Aggregate[], keys: SqlGroupKey[] = ['nhi.id']): BillableAggregates {
  return {
    keys: Object.fromEntries(keys.map((k) => [k, rows.map((r) => r.keys[k] ?? '')])),
    identified: rows.map((r) => r.identified),
    cardIndex: rows.map((r) => r.cardIndex),
    // Element 0 for no meter, element m + 1 for meter m.
    events: rows.map((r) => Object.assign(new Array<number>(Math.max(0, r.meterIndex) + 2).fill(0), { [r.meterIndex + 1]: r.quantity })),
    sums: rows.map(() => []),
    missing: rows.map(() => []),
    spans: rows.map((r) => r.quantity),
    sumFirst: cards.map(() => 0),
  }
}

describe('foldAggregates', () => {
  it('merges parts of one row across cards, pricing each part with its own card, and sorts rows by key', () => {
    const bill = foldAggregates(columns([agg('b', 1, 0, 10), agg('a', 1, 1, 5), agg('a', 0, 0, 7)]), ['nhi.id', 'meter'], cards)
    expect(bill.rows.toArray().map((r) => [r.values[0], r.values[1], formatQuantity(r.quantity), formatMoney(r.amount)])).toEqual([
      ['a', 'tool_calls', '12', '0.029'], // 7 x 0.002 + 5 x 0.003
      ['b', 'api_calls', '10', '0.001'],
    ])
    expect(bill.totalQuantity).toBe(quantityFromCount(22))
    expect(formatMoney(bill.totalAmount)).toBe('0.03')
    expect(bill.rateCardVersions).toEqual(['v1', 'v2'])
  })

  it('counts unidentified and unmetered events towards completeness but bills neither', () => {
    const bill = foldAggregates(columns([agg('', -1, -1, 4, false), agg('a', 0, -1, 3), agg('a', 0, 0, 2)]), ['nhi.id', 'meter'], cards)
    expect(bill.counts).toEqual({ spans: 9, identifiedSpans: 5 })
    expect(bill.rows.toArray().map((r) => r.quantity)).toEqual([quantityFromCount(2)])
  })

  it('keeps key tuples apart whatever characters the keys hold', () => {
    // Joined naively with a separator, ("a:1", "x") and ("a", "1:x") could become one row.
    const rows = foldAggregates(
      columns([
        { keys: { 'nhi.id': 'a\u00001', service: 'x' }, identified: true, cardIndex: 0, meterIndex: 0, quantity: 1 },
        { keys: { 'nhi.id': 'a', service: '1\u0000x' }, identified: true, cardIndex: 0, meterIndex: 0, quantity: 1 },
        { keys: { 'nhi.id': '1:a', service: '' }, identified: true, cardIndex: 0, meterIndex: 0, quantity: 1 },
        { keys: { 'nhi.id': '', service: '1:a' }, identified: true, cardIndex: 0, meterIndex: 0, quantity: 1 },
      ], ['nhi.id', 'service']),
      ['nhi.id', 'service'],
      cards,
    ).rows
    expect(rows).toHaveLength(4)
  })
})

describe('billJson', () => {
  it('writes what JSON.stringify writes for the same bill, whatever the keys hold', () => {
    const hostile = ['a"b', 'back\\slash', 'line\nbreak', '\u0000nul', '😀 \u2028', '</script>']
    const bill = foldAggregates(
      columns(
        hostile.map((id, i) => agg(id, 1, i % 2, i + 1)),
        ['nhi.id'],
      ),
      ['meter', 'nhi.id'],
      cards,
    )
    const head = { from: '2026-10-01T00:00:00.000Z', currency: 'USD', completeness: { status: 'complete', spans: 3 } }
    const text = billJson(['meter', 'nhi.id'], bill, head).toString('utf8')
    const expected = JSON.stringify({
      ...head,
      rows: bill.rows.toArray().map((r) => ({ meter: r.values[0], 'nhi.id': r.values[1], quantity: Number(formatQuantity(r.quantity)), amount: formatMoney(r.amount) })),
      total: { quantity: Number(formatQuantity(bill.totalQuantity)), amount: formatMoney(bill.totalAmount) },
    })
    expect(text).toBe(expected)
    expect(JSON.parse(text).rows).toHaveLength(hostile.length)
    const one = new BillRows(0)
    one.addQuantity(one.append([]), quantityFromCount(2))
    one.addAmount(0, bill.totalAmount)
    expect(billJson([], { ...bill, rows: one }, {}).toString('utf8')).toBe(
      JSON.stringify({ rows: [{ quantity: 2, amount: formatMoney(bill.totalAmount) }], total: { quantity: Number(formatQuantity(bill.totalQuantity)), amount: formatMoney(bill.totalAmount) } }),
    )
  })
})

describe('BillRows', () => {
  // Quantities and amounts around every edge of the number form: zero, fractions, the largest safe integers of units
  // and nano-units, and far beyond.
  const quantities = [0n, 1n, 999_999_999n, 10n ** 9n, 123n * 10n ** 9n + 5n, BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER) * 10n ** 9n, (BigInt(Number.MAX_SAFE_INTEGER) + 1n) * 10n ** 9n, 10n ** 30n + 7n]
  const amounts = [0n, 1n, 10n, 100_000_000n, 120_000_000n, 123_456_789n, 10n ** 9n, BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER) + 1n, 10n ** 25n + 3n]

  it('holds any quantity and amount exactly, and writes them as formatQuantity and formatMoney do', () => {
    const rows = new BillRows(1)
    const expected: Array<{ 'nhi.id': string; quantity: unknown; amount: string }> = []
    for (const [i, q] of quantities.entries()) {
      for (const [j, a] of amounts.entries()) {
        const r = rows.append([`id-${i}-${j}`])
        // In two parts, through both forms: whole units and nano-units where they fit, bigints elsewhere.
        rows.addQuantity(r, (q / 2n) as Quantity)
        rows.addQuantity(r, (q - q / 2n) as Quantity)
        rows.addAmount(r, (a / 3n) as Money)
        rows.addAmount(r, (a - a / 3n) as Money)
        expect([rows.quantity(r), rows.amount(r)]).toEqual([q, a])
        expected.push({ 'nhi.id': `id-${i}-${j}`, quantity: JSON.parse(quantityJson(q as Quantity)), amount: formatMoney(a as Money) })
      }
    }
    const total = { totalQuantity: 0n as Quantity, totalAmount: 0n as Money }
    const text = billJson(['nhi.id'], { rows, ...total }, {}).toString('utf8')
    // A whole quantity beyond 2^53 - 1 units is sent as a string, never as a number a parser would round.
    expect(text).toBe(JSON.stringify({ rows: expected, total: { quantity: 0, amount: '0.00' } }))
  })

  it('writes whole units and nano-units of every length as JSON.stringify does', () => {
    const rows = new BillRows(1)
    const expected: Array<{ 'nhi.id': string; quantity: number; amount: string }> = []
    const numbers = [...Array.from({ length: 16 }, (_, k) => [10 ** k - 1, 10 ** k, 10 ** k + 7]).flat(), 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER].filter((n) => n >= 0 && n <= Number.MAX_SAFE_INTEGER)
    for (const n of numbers) {
      const r = rows.append([`n${n}`])
      rows.addUnits(r, n)
      rows.addNanos(r, n)
      expected.push({ 'nhi.id': `n${n}`, quantity: n, amount: formatMoney(BigInt(n) as Money) })
    }
    const text = billJson(['nhi.id'], { rows, totalQuantity: 0n as Quantity, totalAmount: 0n as Money }, {}).toString('utf8')
    expect(text).toBe(JSON.stringify({ rows: expected, total: { quantity: 0, amount: '0.00' } }))
  })

  it('adds units and nano-units past the largest safe integer into exact sums', () => {
    const rows = new BillRows(1)
    const r = rows.append(['a'])
    rows.addUnits(r, Number.MAX_SAFE_INTEGER)
    rows.addUnits(r, 2)
    rows.addNanos(r, Number.MAX_SAFE_INTEGER)
    rows.addNanos(r, 2)
    expect(rows.quantity(r)).toBe((BigInt(Number.MAX_SAFE_INTEGER) + 2n) * 10n ** 9n)
    expect(rows.amount(r)).toBe(BigInt(Number.MAX_SAFE_INTEGER) + 2n)
  })

  it('sorts rows, adding those with equal keys into one, and drops rows', () => {
    const a = new BillRows(2)
    for (const [id, meter, units] of [['b', 'x', 1], ['a', 'y', 2], ['a', 'x', 3], ['b', 'x', 4]] as const) a.addUnits(a.append([id, meter]), units)
    const ordered = a.inOrder()
    expect(ordered.toArray().map((r) => [...r.values, Number(r.quantity / 10n ** 9n)])).toEqual([['a', 'x', 3], ['a', 'y', 2], ['b', 'x', 5]])
    // Dropping rows keeps the others, exact values included, in their order.
    const big = (BigInt(Number.MAX_SAFE_INTEGER) + 5n) as Money
    ordered.addAmount(2, big)
    ordered.drop(new Set([0]))
    expect(ordered.toArray().map((r) => [...r.values, Number(r.quantity / 10n ** 9n), r.amount])).toEqual([
      ['a', 'y', 2, 0n],
      ['b', 'x', 5, big],
    ])
    ordered.addUnits(ordered.append(['c', 'z']), 1)
    expect(ordered.toArray().map((r) => [...r.values, Number(r.quantity / 10n ** 9n), r.amount])).toContainEqual(['c', 'z', 1, 0n])
  })
})

describe('mergeAdjacent', () => {
  const aggregates = (rows: Array<{ id: string; card: number; identified?: boolean; events: number[]; sums: SumValue[]; missing: number[] }>): BillableAggregates => ({
    keys: { 'nhi.id': rows.map((r) => r.id) },
    identified: rows.map((r) => r.identified ?? true),
    cardIndex: rows.map((r) => r.card),
    events: rows.map((r) => r.events),
    sums: rows.map((r) => r.sums),
    missing: rows.map((r) => r.missing),
    spans: rows.map((r) => r.events.reduce((a, b) => a + b, 0)),
    sumFirst: [0, 0],
  })

  it('adds adjacent rows with the same keys, card and identification, sums exactly, and keeps the rest as they were', () => {
    const merged = mergeAdjacent(
      aggregates([
        { id: 'a', card: 0, events: [1, 2], sums: [250_000_000n as Quantity], missing: [1] },
        { id: 'a', card: 0, events: [0, 3, 4], sums: [750_000_000n as Quantity, 9], missing: [0, 2] },
        { id: 'a', card: 1, events: [5], sums: [], missing: [] },
        { id: 'b', card: 1, events: [6], sums: [Number.MAX_SAFE_INTEGER], missing: [] },
        { id: 'b', card: 1, events: [7], sums: [1], missing: [] },
        { id: 'b', card: 1, identified: false, events: [8], sums: [], missing: [] },
      ]),
    )
    expect(merged.keys['nhi.id']).toEqual(['a', 'a', 'b', 'b'])
    expect(merged.cardIndex).toEqual([0, 1, 1, 1])
    expect(merged.events).toEqual([[1, 5, 4], [5], [13], [8]])
    // 0.25 + 0.75 is one whole unit again; past 2^53 - 1 units a sum stays an exact quantity.
    expect(merged.sums).toEqual([[1, 9], [], [(BigInt(Number.MAX_SAFE_INTEGER) + 1n) * 10n ** 9n], []])
    expect(merged.missing).toEqual([[1, 2], [], [], []])
    expect(merged.spans).toEqual([10, 5, 13, 8])
    expect(merged.identified).toEqual([true, true, true, false])
  })

  it('refuses counts that add up past 2^53 - 1', () => {
    const rows = aggregates([
      { id: 'a', card: 0, events: [Number.MAX_SAFE_INTEGER], sums: [], missing: [] },
      { id: 'a', card: 0, events: [1], sums: [], missing: [] },
    ])
    expect(() => mergeAdjacent(rows)).toThrow(/count out of range/)
  })
})
