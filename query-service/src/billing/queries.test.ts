/**
 * The ledger read as one flat grouping (the ledger's part of every bill
 * since the month-to-date split) against the summary's per-meter arrays,
 * and the month to date split in two against one statement, on shapes the
 * other billing tests leave out: two rate cards with a boundary inside the
 * range and their meters in different orders, sum meters that are not a
 * card's first, events before the first card, unidentified spans, a
 * declared business unit that overrides the span's, and every grouping.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { validatePolicy } from '../policy/index.js'
import { declare } from '../test-support/findings.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { foldAggregates } from './bill.js'
import { loadPlanFacts, planUsage, type Interval, type UsagePlan } from './plan.js'
import { billableAggregates, type BillableAggregates, type Granularity, type GroupByKey } from './queries.js'
import { policyKey, runRollup } from './rollup.js'
import { usageAggregates } from './summary-part.js'

const CARDS = validatePolicy({
  rate_cards: [
    {
      version: '2026-11',
      effective_from: '2026-11-01T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' },
        { name: 'api_errors', activity_type: 'api_call', status: 'error', unit_price: '0.001' },
        { name: 'tool_time', activity_type: 'tool_invocation', aggregation: 'sum', value: 'duration_ms', unit_price: '0.0001' },
        { name: 'model_calls', activity_type: 'model_call', unit_price: '0.01' },
        { name: 'gpt_input', activity_type: 'model_call', activity_name: 'gpt-4o*', aggregation: 'sum', value: 'gen_ai.usage.input_tokens', unit_price: '0.00001' },
      ],
    },
    {
      version: '2026-11b',
      effective_from: '2026-11-15T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'input_tokens', activity_type: 'model_call', aggregation: 'sum', value: 'gen_ai.usage.input_tokens', unit_price: '0.000002' },
        { name: 'searches', activity_type: 'tool_invocation', activity_name: 'search*', status: 'any', unit_price: '0.003' },
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' },
        { name: 'tool_time', activity_type: 'tool_invocation', aggregation: 'sum', value: 'duration_ms', unit_price: '0.0001' },
        { name: 'active_models', activity_type: 'model_call', aggregation: 'active_identities', min_events: 2, unit_price: '1' },
      ],
    },
  ],
}).policy.rate_cards

let client: ClickHouseClient
let spanNo = 0
const span = (id: string, start: string, kind: 'tool' | 'model' | 'api', extra: { name?: string; tokens?: number; bu?: string; error?: boolean; onBehalfOf?: string; service?: string } = {}) =>
  spanRow({
    start,
    spanId: (++spanNo).toString(16).padStart(16, '0'),
    service: extra.service ?? 'svc',
    kind: kind === 'api' ? 'Server' : 'Internal',
    status: extra.error ? 'Error' : 'Unset',
    durationNs: 1_000_000 + (spanNo % 7) * 700_001,
    attributes: {
      ...(id === '' ? {} : { 'nhi.id': id }),
      'nhi.business_unit': extra.bu ?? 'research',
      ...(extra.onBehalfOf ? { 'nhi.on_behalf_of': extra.onBehalfOf } : {}),
      ...(kind === 'tool' ? { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': extra.name ?? 'search_web' } : {}),
      ...(kind === 'model' ? { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': extra.name ?? 'gpt-4o' } : {}),
      ...(kind === 'model' && extra.tokens !== undefined ? { 'gen_ai.usage.input_tokens': String(extra.tokens) } : {}),
      ...(kind === 'api' ? { 'http.route': extra.name ?? '/v1/orders' } : {}),
    },
  })

beforeAll(async () => {
  client = await freshStorage()
  const rows = []
  // Before the first card: counted towards completeness, billed by none.
  rows.push(span('agent-a', '2026-10-30T10:00:00Z', 'tool'), span('agent-b', '2026-10-31T23:59:59Z', 'model', { tokens: 5 }))
  // Both cards, days apart, hours apart, several services, names, statuses and people acted for.
  for (const [d, day] of ['03', '09', '14', '15', '16', '27'].entries()) {
    rows.push(
      span('agent-a', `2026-11-${day}T09:00:00Z`, 'tool', { name: d % 2 ? 'search_web' : 'fetch', onBehalfOf: 'alice' }),
      span('agent-a', `2026-11-${day}T09:30:00Z`, 'tool', { name: 'search_docs', error: d === 2 }),
      span('agent-a', `2026-11-${day}T10:00:00Z`, 'model', { name: 'gpt-4o', tokens: 100 + d }),
      span('agent-a', `2026-11-${day}T10:05:00Z`, 'model', { name: 'gpt-4o-mini', tokens: 1_000_000 + d, service: 'svc-2' }),
      span('agent-b', `2026-11-${day}T11:00:00Z`, 'model', { name: 'claude', tokens: d === 1 ? undefined : 40 }),
      span('agent-b', `2026-11-${day}T11:00:01Z`, 'model', { name: 'claude' }),
      span('agent-c', `2026-11-${day}T12:00:00Z`, 'api', { error: d % 2 === 0, bu: 'ops', onBehalfOf: 'bob' }),
      span('agent-c', `2026-11-${day}T12:10:00Z`, 'tool', { name: 'fetch', bu: 'ops' }),
      span('', `2026-11-${day}T13:00:00Z`, 'tool'),
      span('', `2026-11-${day}T13:00:00Z`, 'api', { error: true }),
    )
  }
  await insertSpans(client, rows)
  // agent-b is declared in ops: its spans say research.
  await declare(client, [{ id: 'agent-b', business_unit: 'ops' }])
  await runRollup(client, CARDS, 0)
}, 60_000)

afterAll(async () => {
  await client.close()
})

const fold = (aggregates: BillableAggregates, groupBy: GroupByKey[]) => {
  const folded = foldAggregates(aggregates, groupBy, CARDS)
  return { ...folded, rows: folded.rows.toArray() }
}

const GROUPINGS: Array<{ groupBy: GroupByKey[]; granularity: Granularity }> = [
  { groupBy: ['nhi.id', 'meter'], granularity: 'month' },
  { groupBy: ['business_unit', 'period', 'meter'], granularity: 'hour' },
  { groupBy: ['period', 'nhi.id'], granularity: 'day' },
  { groupBy: ['activity.name', 'meter'], granularity: 'month' },
  { groupBy: ['on_behalf_of', 'nhi.id', 'activity.type'], granularity: 'month' },
  { groupBy: ['service', 'meter'], granularity: 'month' },
  { groupBy: [], granularity: 'month' },
]

describe('the ledger read as one flat grouping', () => {
  it('bills every grouping and scope exactly as the summary’s per-meter arrays do', async () => {
    const ledger: Interval[] = [[Date.parse('2026-10-25T00:00:00Z'), Date.parse('2026-12-01T00:00:00Z')]]
    for (const { groupBy, granularity } of GROUPINGS) {
      for (const businessUnits of [null, ['ops']]) {
        const options = { groupBy, granularity, cards: CARDS, businessUnits }
        const flat = await billableAggregates(client, { ...options, plan: { rollup: [], ledger, policyKey: '' } })
        // A summary level with nothing to read beside the ledger: the same events through the summary's arrays.
        const arrays = await billableAggregates(client, { ...options, plan: { rollup: [{ level: 'hour', intervals: [] }], ledger, policyKey: '' } })
        const context = JSON.stringify({ groupBy, businessUnits })
        expect(fold(flat, groupBy), context).toEqual(fold(arrays, groupBy))
        expect(fold(flat, groupBy).totalAmount, context).not.toBe(0n)
      }
    }
  })

  it('puts a declared identity in its declared business unit, and events before the first card in no meter', async () => {
    const ledger: Interval[] = [[Date.parse('2026-10-25T00:00:00Z'), Date.parse('2026-11-01T00:00:00Z')]]
    const before = await billableAggregates(client, { groupBy: ['nhi.id'], granularity: 'month', cards: CARDS, businessUnits: null, plan: { rollup: [], ledger, policyKey: '' } })
    expect(before.cardIndex).toEqual([-1, -1])
    expect(before.events).toEqual([[1], [1]])
    const scoped = await billableAggregates(client, {
      groupBy: ['nhi.id'],
      granularity: 'month',
      cards: CARDS,
      businessUnits: ['ops'],
      plan: { rollup: [], ledger: [[Date.parse('2026-11-01T00:00:00Z'), Date.parse('2026-12-01T00:00:00Z')]], policyKey: '' },
    })
    expect([...new Set(scoped.keys['nhi.id'])]).toEqual(['agent-b', 'agent-c'])
  })
})

describe('a plan of both kinds, split in two', () => {
  it('bills as the single statement does, with sums, two cards and a scope', async () => {
    // Whole days from the summary, the ragged ends from the ledger.
    const range = { from: new Date('2026-11-03T09:15:00Z'), to: new Date('2026-11-27T09:45:00Z') }
    const plan: UsagePlan = planUsage(range, await loadPlanFacts(client, range, policyKey(CARDS), 0), 'month')
    expect(plan.rollup.length).toBeGreaterThan(0)
    expect(plan.ledger.length).toBeGreaterThan(0)
    for (const { groupBy, granularity } of GROUPINGS.filter((g) => !g.groupBy.includes('activity.name') && !g.groupBy.includes('on_behalf_of'))) {
      const planned = groupBy.includes('period') ? planUsage(range, await loadPlanFacts(client, range, policyKey(CARDS), 0), granularity === 'month' ? 'month' : granularity) : plan
      for (const businessUnits of [null, ['ops']]) {
        const options = { groupBy, granularity, cards: CARDS, businessUnits, plan: planned }
        const context = JSON.stringify({ groupBy, businessUnits })
        const split = await usageAggregates(client, options)
        expect(fold(split, groupBy), context).toEqual(fold(await billableAggregates(client, options), groupBy))
        // Served again from the kept part: the same.
        expect(fold(await usageAggregates(client, options), groupBy), context).toEqual(fold(split, groupBy))
      }
    }
  })
})
