import { describe, expect, it } from 'vitest'
import { formatMoney } from '../money/decimal.js'
import { validatePolicy } from '../policy/index.js'
import { foldAggregates } from './bill.js'
import { billJson } from './bill-json.js'
import { formatQuantity, quantityFromCount } from '../money/quantity.js'
import { pricingOf } from './pricing.js'
import type { BillableAggregates, GroupByKey, SqlGroupKey } from './queries.js'

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
  }
}

describe('foldAggregates', () => {
  it('merges parts of one row across cards, pricing each part with its own card, and sorts rows by key', () => {
    const bill = foldAggregates(columns([agg('b', 1, 0, 10), agg('a', 1, 1, 5), agg('a', 0, 0, 7)]), ['nhi.id', 'meter'], cards)
    expect(bill.rows.map((r) => [r.values[0], r.values[1], formatQuantity(r.quantity), formatMoney(r.amount)])).toEqual([
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
    expect(bill.rows.map((r) => r.quantity)).toEqual([quantityFromCount(2)])
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
      rows: bill.rows.map((r) => ({ meter: r.values[0], 'nhi.id': r.values[1], quantity: Number(formatQuantity(r.quantity)), amount: formatMoney(r.amount) })),
      total: { quantity: Number(formatQuantity(bill.totalQuantity)), amount: formatMoney(bill.totalAmount) },
    })
    expect(text).toBe(expected)
    expect(JSON.parse(text).rows).toHaveLength(hostile.length)
    expect(billJson([], { ...bill, rows: [{ values: [], quantity: quantityFromCount(2), amount: bill.totalAmount, eventsWithoutValue: 0 }] }, {}).toString('utf8')).toBe(
      JSON.stringify({ rows: [{ quantity: 2, amount: formatMoney(bill.totalAmount) }], total: { quantity: Number(formatQuantity(bill.totalQuantity)), amount: formatMoney(bill.totalAmount) } }),
    )
  })
})
