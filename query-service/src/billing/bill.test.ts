import { describe, expect, it } from 'vitest'
import { formatMoney, parseMoney } from '../money/decimal.js'
import { validatePolicy } from '../policy/index.js'
import { foldAggregates } from './bill.js'
import { pricingOf } from './pricing.js'
import type { BillableAggregate } from './queries.js'

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

const agg = (id: string, meter: string, cardIndices: number[], quantity: number, amount: string, billed = true, identified = true): BillableAggregate => ({
  keys: { 'nhi.id': id, meter },
  identified,
  billed,
  cardIndices,
  quantity,
  amount: parseMoney(amount),
})

describe('foldAggregates', () => {
  it('sums rows with the same keys, names every card that priced them, and sorts rows by key', () => {
    // ClickHouse prices each event by its own card (7 x 0.002 + 5 x 0.003 = 0.029); equal keys may come in several parts.
    const bill = foldAggregates([agg('b', 'api_calls', [1], 10, '0.001'), agg('a', 'tool_calls', [0, 1], 8, '0.019'), agg('a', 'tool_calls', [1], 4, '0.01')], ['nhi.id', 'meter'], cards)
    expect(bill.rows.map((r) => [r.keys['nhi.id'], r.keys.meter, r.quantity, formatMoney(r.amount)])).toEqual([
      ['a', 'tool_calls', 12, '0.029'],
      ['b', 'api_calls', 10, '0.001'],
    ])
    expect(bill.totalQuantity).toBe(22)
    expect(formatMoney(bill.totalAmount)).toBe('0.03')
    expect(bill.rateCardVersions).toEqual(['v1', 'v2'])
  })

  it('counts unidentified and unmetered events towards completeness but bills neither', () => {
    const bill = foldAggregates([agg('', '', [-1], 4, '0', false, false), agg('', '', [0], 3, '0', false), agg('a', 'tool_calls', [0], 2, '0.004')], ['nhi.id', 'meter'], cards)
    expect(bill.counts).toEqual({ spans: 9, identifiedSpans: 5 })
    expect(bill.rows.map((r) => r.quantity)).toEqual([2])
  })

  it('keeps key tuples apart whatever characters the keys hold', () => {
    // Joined naively with a separator, ("a:1", "x") and ("a", "1:x") could become one row.
    const row = (id: string, service: string): BillableAggregate => ({ keys: { 'nhi.id': id, service }, identified: true, billed: true, cardIndices: [0], quantity: 1, amount: parseMoney('0.002') })
    const rows = foldAggregates([row('a\u00001', 'x'), row('a', '1\u0000x'), row('1:a', ''), row('', '1:a')], ['nhi.id', 'service'], cards).rows
    expect(rows).toHaveLength(4)
  })
})
