/**
 * Meters that sum values and count active identities, priced with tiers,
 * packages, allowances and minimums, end to end: spans into the embedded
 * ClickHouse, GET /v1/billable out, read from the ledger and again from the
 * summary (which must agree to the nano-unit), grouped several ways (whose
 * totals must agree), and for a key limited to one business unit.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { validatePolicy } from '../policy/index.js'
import { testKeys } from '../test-support/keys.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { runRollup } from './rollup.js'
import { foldAggregates } from './bill.js'
import type { Interval } from './plan.js'
import { billableAggregates, type BillableAggregates, type Granularity, type GroupByKey } from './queries.js'

let client: ClickHouseClient
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'ops', scopes: ['billing:read'], business_units: ['ops'] },
])

const POLICY = validatePolicy({
  rate_cards: [
    {
      version: '2026-11',
      effective_from: '2026-11-01T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002', minimum_charge: '1.00' },
        { name: 'model_calls', activity_type: 'model_call', unit_price: '0.01' },
        {
          name: 'gpt4o_input',
          activity_type: 'model_call',
          activity_name: 'gpt-4o*',
          aggregation: 'sum',
          value: 'gen_ai.usage.input_tokens',
          tiers: [
            { up_to: '500', unit_price: '0.00001' },
            { unit_price: '0.000005' },
          ],
        },
        { name: 'other_input', activity_type: 'model_call', aggregation: 'sum', value: 'gen_ai.usage.input_tokens', unit_price: '0.000001' },
        { name: 'active_agents', activity_type: 'model_call', aggregation: 'active_identities', min_events: 2, unit_price: '5.00' },
        { name: 'tool_time', activity_type: 'tool_invocation', aggregation: 'sum', value: 'duration_ms', unit_price: '0.0001' },
      ],
    },
  ],
}).policy

let spanNo = 0
const model = (id: string, bu: string, start: string, modelName: string, inputTokens?: number) =>
  spanRow({
    start,
    spanId: (++spanNo).toString(16).padStart(16, '0'),
    attributes: {
      'nhi.id': id,
      'nhi.business_unit': bu,
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': modelName,
      ...(inputTokens === undefined ? {} : { 'gen_ai.usage.input_tokens': String(inputTokens) }),
    },
  })
const tool = (id: string, bu: string, start: string) =>
  spanRow({
    start,
    spanId: (++spanNo).toString(16).padStart(16, '0'),
    durationNs: 1_500_000,
    attributes: { 'nhi.id': id, 'nhi.business_unit': bu, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' },
  })

interface Billable {
  rows: Array<Record<string, string | number>>
  total: { quantity: number | string; amount: string }
  meters: Array<Record<string, string | number>>
}

const MONTH = 'from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z'

async function bill(query: string, keyName = 'admin'): Promise<Billable> {
  const app = createApp({ client, keys: () => store, policy: () => POLICY, rollupGraceSeconds: 0 })
  const response = await app.request(`/v1/billable?${MONTH}&${query}`, { headers: { Authorization: `Bearer ${key(keyName)}` } })
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as Billable
}

const rowsOf = (b: Billable) => b.rows.map((r) => ({ ...r }))

beforeAll(async () => {
  client = await freshStorage()
  await insertSpans(client, [
    // research: agent-a, three gpt-4o calls on the 10th (one without a token count), then more on the 11th.
    model('agent-a', 'research', '2026-11-10T09:00:00Z', 'gpt-4o', 100),
    model('agent-a', 'research', '2026-11-10T09:05:00Z', 'gpt-4o', 200),
    model('agent-a', 'research', '2026-11-10T09:10:00Z', 'gpt-4o'),
    model('agent-a', 'research', '2026-11-11T09:00:00Z', 'gpt-4o', 300),
    model('agent-a', 'research', '2026-11-11T09:05:00Z', 'gpt-4o', 400),
    model('agent-a', 'research', '2026-11-11T09:10:00Z', 'gpt-3.5-turbo', 1000),
    // research: agent-b, two gpt-4o-mini calls on the 12th.
    model('agent-b', 'research', '2026-11-12T09:00:00Z', 'gpt-4o-mini', 50),
    model('agent-b', 'research', '2026-11-12T09:05:00Z', 'gpt-4o-mini', 50),
    // ops: agent-c, four tool calls of 1.5 ms each, and one model call (not enough to be active).
    tool('agent-c', 'ops', '2026-11-13T09:00:00Z'),
    tool('agent-c', 'ops', '2026-11-13T09:01:00Z'),
    tool('agent-c', 'ops', '2026-11-13T09:02:00Z'),
    tool('agent-c', 'ops', '2026-11-13T09:03:00Z'),
    model('agent-c', 'ops', '2026-11-13T09:04:00Z', 'gpt-4o', 10),
  ])
}, 60_000)
afterAll(async () => {
  await client.close()
})

// Worked out by hand:
// - gpt4o_input, research: 100 + 200 + 300 + 400 (agent-a) + 50 + 50 (agent-b) = 1,100 tokens; graduated:
//   500 × 0.00001 + 600 × 0.000005 = 0.008, split 1000 : 100 → 0.007272727 and 0.000727273 (the leftover
//   nano-unit goes to the larger remainder). ops: 10 tokens × 0.00001 = 0.0001.
// - other_input: the gpt-3.5 call's 1,000 tokens × 0.000001 = 0.001 (gpt-4o calls matched gpt4o_input first).
// - active_agents, min 2 model calls: research has agent-a (6) and agent-b (2) → 2 × 5.00; agent-c has 1 → none.
// - tool_calls, ops: 4 × 0.002 = 0.008, raised to the minimum charge of 1.00.
// - tool_time: 4 spans of 1.5 ms, each rounded up to 2 ms → 8 ms × 0.0001 = 0.0008.
const EXPECTED = [
  { 'nhi.id': 'agent-a', meter: 'active_agents', quantity: 1, amount: '5.00' },
  { 'nhi.id': 'agent-a', meter: 'gpt4o_input', quantity: 1000, amount: '0.007272727' },
  { 'nhi.id': 'agent-a', meter: 'model_calls', quantity: 6, amount: '0.06' },
  { 'nhi.id': 'agent-a', meter: 'other_input', quantity: 1000, amount: '0.001' },
  { 'nhi.id': 'agent-b', meter: 'active_agents', quantity: 1, amount: '5.00' },
  { 'nhi.id': 'agent-b', meter: 'gpt4o_input', quantity: 100, amount: '0.000727273' },
  { 'nhi.id': 'agent-b', meter: 'model_calls', quantity: 2, amount: '0.02' },
  { 'nhi.id': 'agent-c', meter: 'gpt4o_input', quantity: 10, amount: '0.0001' },
  { 'nhi.id': 'agent-c', meter: 'model_calls', quantity: 1, amount: '0.01' },
  { 'nhi.id': 'agent-c', meter: 'tool_calls', quantity: 4, amount: '1.00' },
  { 'nhi.id': 'agent-c', meter: 'tool_time', quantity: 8, amount: '0.0008' },
]

describe('meters that sum values and count active identities', () => {
  it('bills tokens per model glob, durations, active identities and a minimum charge exactly, from the ledger', async () => {
    const b = await bill('group_by=nhi.id,meter')
    expect(rowsOf(b)).toEqual(EXPECTED)
    expect(b.total.amount).toBe('11.0999')
    const input = b.meters.find((m) => m.meter === 'gpt4o_input')
    expect(input).toMatchObject({ aggregation: 'sum', value: 'gen_ai.usage.input_tokens', quantity: 1110, events: 8, events_without_value: 1, amount: '0.0081' })
    expect(b.meters.find((m) => m.meter === 'active_agents')).toMatchObject({ aggregation: 'active_identities', quantity: 2, amount: '10.00' })
  })

  it('gives the same rows and totals from the summary as from the ledger', async () => {
    const fromLedger = await bill('group_by=nhi.id,meter')
    const run = await runRollup(client, POLICY.rate_cards, 0)
    expect(run.periodsRebuilt).toBeGreaterThan(0)
    const fromSummary = await bill('group_by=nhi.id,meter')
    expect(fromSummary).toEqual(fromLedger)
  })

  it('keeps every total the same however the bill is grouped, and counts an active identity on the day it became active', async () => {
    const byIdentity = await bill('group_by=nhi.id,meter')
    for (const groupBy of ['meter', 'business_unit,meter', 'period,meter&granularity=day', 'service,nhi.id,meter', 'period,nhi.id,meter&granularity=hour']) {
      const b = await bill(`group_by=${groupBy}`)
      expect(b.total, groupBy).toEqual(byIdentity.total)
      expect(b.meters, groupBy).toEqual(byIdentity.meters)
    }
    const daily = await bill('group_by=period,nhi.id,meter&granularity=day')
    const active = daily.rows.filter((r) => r.meter === 'active_agents').map((r) => [r.period, r['nhi.id'], r.quantity, r.amount])
    expect(active).toEqual([
      ['2026-11-10T00:00:00Z', 'agent-a', 1, '5.00'],
      ['2026-11-12T00:00:00Z', 'agent-b', 1, '5.00'],
    ])
    // The month's tiers hold across days: agent-a's 1,000 tokens over two days share its 0.007272727.
    const tokens = daily.rows.filter((r) => r.meter === 'gpt4o_input' && r['nhi.id'] === 'agent-a')
    expect(tokens.map((r) => r.quantity)).toEqual([300, 700])
    const cents = tokens.map((r) => BigInt(String(r.amount).replace('.', '').padEnd(10, '0')))
    expect(cents[0]! + cents[1]!).toBe(BigInt('0007272727'))
  })

  it('rates each business unit on its own, so a key limited to one sees the same amounts as an administrator', async () => {
    const all = await bill('group_by=business_unit,meter')
    const ops = await bill('group_by=business_unit,meter', 'ops')
    expect(ops.rows).toEqual(all.rows.filter((r) => r.business_unit === 'ops'))
    expect(ops.rows.find((r) => r.meter === 'tool_calls')).toMatchObject({ quantity: 4, amount: '1.00' })
  })

  it('spreads an active-identity meter’s minimum charge over the active, or over the events when none is active', async () => {
    // Not priced per unit alone, so rated per business unit and month (rating.ts): research has two active agents,
    // 2 × 5.00 raised to 20.00, 10.00 each; ops has none (agent-c made one model call), so its 20.00 goes by events.
    const minimum = validatePolicy({
      rate_cards: [
        {
          version: 'minimum',
          effective_from: '2026-11-01T00:00:00Z',
          currency: 'USD',
          meters: [{ name: 'active_agents', activity_type: 'model_call', aggregation: 'active_identities', min_events: 2, unit_price: '5.00', minimum_charge: '20.00' }],
        },
      ],
    }).policy
    const app = createApp({ client, keys: () => store, policy: () => minimum, rollupGraceSeconds: 0 })
    const response = await app.request(`/v1/billable?${MONTH}&group_by=business_unit,nhi.id,meter`, { headers: { Authorization: `Bearer ${key('admin')}` } })
    const body = (await response.json()) as Billable
    expect(rowsOf(body)).toEqual([
      { business_unit: 'ops', 'nhi.id': 'agent-c', meter: 'active_agents', quantity: 0, amount: '20.00' },
      { business_unit: 'research', 'nhi.id': 'agent-a', meter: 'active_agents', quantity: 1, amount: '10.00' },
      { business_unit: 'research', 'nhi.id': 'agent-b', meter: 'active_agents', quantity: 1, amount: '10.00' },
    ])
    expect(body.total).toEqual({ quantity: 2, amount: '40.00' })
  })

  it('reads the ledger alone as one flat grouping that bills exactly as the summary’s per-meter arrays', async () => {
    const range = { from: new Date('2026-11-01T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z') }
    const ledger: Interval[] = [[range.from.getTime(), range.to.getTime()]]
    const groupings: Array<{ groupBy: GroupByKey[]; granularity: Granularity }> = [
      { groupBy: ['nhi.id', 'meter'], granularity: 'month' },
      { groupBy: ['business_unit', 'period', 'meter'], granularity: 'day' },
      { groupBy: ['service', 'nhi.id'], granularity: 'month' },
      { groupBy: [], granularity: 'month' },
    ]
    for (const { groupBy, granularity } of groupings) {
      for (const businessUnits of [null, ['ops']]) {
        const options = { groupBy, granularity, cards: POLICY.rate_cards, businessUnits }
        const flat = await billableAggregates(client, { ...options, plan: { rollup: [], ledger, policyKey: '' } })
        // A summary level with nothing to read beside the ledger: the same events through the summary's arrays.
        const arrays = await billableAggregates(client, { ...options, plan: { rollup: [{ level: 'hour', intervals: [] }], ledger, policyKey: '' } })
        const fold = (a: BillableAggregates) => {
          const folded = foldAggregates(a, groupBy, POLICY.rate_cards)
          return { ...folded, rows: folded.rows.toArray() }
        }
        expect(fold(flat), JSON.stringify({ groupBy, businessUnits })).toEqual(fold(arrays))
        expect(flat.cardIndex.length).toBeGreaterThan(0)
      }
    }
  })

  it('states in CSV how many events of each row carried no value', async () => {
    const app = createApp({ client, keys: () => store, policy: () => POLICY, rollupGraceSeconds: 0 })
    const response = await app.request(`/v1/billable?${MONTH}&group_by=nhi.id,meter&format=csv`, { headers: { Authorization: `Bearer ${key('admin')}` } })
    const lines = (await response.text()).trim().split(/\r?\n/)
    expect(lines[0]).toBe('nhi.id,meter,quantity,amount,currency,completeness,events_without_value')
    expect(lines).toContain('agent-a,gpt4o_input,1000,0.007272727,USD,complete,1')
  })
})

describe('evidence and statements for meters that sum values', () => {
  it('counts the events behind a row of each meter that sees the same spans', async () => {
    const app = createApp({ client, keys: () => store, policy: () => POLICY, rollupGraceSeconds: 0 })
    const count = async (meter: string) => {
      const response = await app.request(`/v1/billable/evidence?${MONTH}&nhi.id=agent-a&meter=${meter}`, { headers: { Authorization: `Bearer ${key('admin')}` } })
      expect(response.status).toBe(200)
      return ((await response.json()) as { count: number }).count
    }
    // agent-a's six model calls: all count as calls and towards being active; five are gpt-4o (one without tokens).
    expect(await count('model_calls')).toBe(6)
    expect(await count('active_agents')).toBe(6)
    expect(await count('gpt4o_input')).toBe(5)
    expect(await count('other_input')).toBe(1)
    // Without a meter, each span once, however many meters count it.
    const response = await app.request(`/v1/billable/evidence?${MONTH}&nhi.id=agent-a`, { headers: { Authorization: `Bearer ${key('admin')}` } })
    expect(((await response.json()) as { count: number }).count).toBe(6)
  })

  it('bills a closed month from the summary as from the ledger when an identity used several services', async () => {
    // The month's summary holds a row per identity and service; the bill reads them in key order, unsummed, and adds
    // an identity's rows up itself (queries.ts, mergeAdjacent). Unadded, train's two rows would each take a share of
    // the month's 2 nano-units (2/3 each, both rounded up: train 2, tune 0) where train's whole takes 4/3 (train 1,
    // tune 1), and the summary would no longer bill as the ledger does.
    const tiered = validatePolicy({
      rate_cards: [
        {
          version: 'tiered',
          effective_from: '2026-01-01T00:00:00Z',
          currency: 'USD',
          meters: [
            { name: 'runs', activity_type: 'workflow_execution', unit_price: '0.01' },
            { name: 'gpu', activity_type: 'workflow_execution', aggregation: 'sum', value: 'gpu.seconds', tiers: [{ up_to: '1', unit_price: '0.000000002' }, { unit_price: '0' }] },
          ],
        },
      ],
    }).policy
    const run = (id: string, service: string, seconds: string, start: string) =>
      spanRow({ start, service, spanId: (++spanNo).toString(16).padStart(16, '0'), attributes: { 'nhi.id': id, 'nhi.activity.type': 'workflow_execution', 'gpu.seconds': seconds } })
    await insertSpans(client, [run('train', 'svc-a', '1', '2026-08-03T00:00:00Z'), run('train', 'svc-b', '1', '2026-08-04T00:00:00Z'), run('tune', 'svc-a', '1', '2026-08-06T00:00:00Z')])
    const august = async () => {
      const app = createApp({ client, keys: () => store, policy: () => tiered, rollupGraceSeconds: 0 })
      const response = await app.request('/v1/billable?from=2026-08-01T00:00:00Z&to=2026-09-01T00:00:00Z&group_by=nhi.id,meter', { headers: { Authorization: `Bearer ${key('admin')}` } })
      expect(response.status, await response.clone().text()).toBe(200)
      return (await response.json()) as Billable
    }
    const fromLedger = await august()
    await runRollup(client, tiered.rate_cards, 0)
    const fromSummary = await august()
    expect(fromSummary).toEqual(fromLedger)
    expect(rowsOf(fromSummary)).toEqual([
      { 'nhi.id': 'train', meter: 'gpu', quantity: 2, amount: '0.000000001' },
      { 'nhi.id': 'train', meter: 'runs', quantity: 2, amount: '0.02' },
      { 'nhi.id': 'tune', meter: 'gpu', quantity: 1, amount: '0.000000001' },
      { 'nhi.id': 'tune', meter: 'runs', quantity: 1, amount: '0.01' },
    ])
  })

  it('closes months with fractional sums exactly and lists a late span as an adjustment', async () => {
    const gpu = validatePolicy({
      rate_cards: [
        {
          version: 'gpu',
          effective_from: '2026-01-01T00:00:00Z',
          currency: 'USD',
          meters: [{ name: 'gpu_seconds', activity_type: 'workflow_execution', aggregation: 'sum', value: 'gpu.seconds', unit_price: '0.0005' }],
        },
      ],
    }).policy
    const app = createApp({ client, keys: () => store, policy: () => gpu, rollupGraceSeconds: 0 })
    const run = (seconds: string, start: string) =>
      spanRow({ start, spanId: (++spanNo).toString(16).padStart(16, '0'), attributes: { 'nhi.id': 'etl', 'nhi.activity.type': 'workflow_execution', 'nhi.activity.name': 'train', 'gpu.seconds': seconds } })
    await insertSpans(client, [run('1.25', '2026-09-03T00:00:00Z'), run('2.5', '2026-09-04T00:00:00Z')])
    const close = async (period: string) => {
      const response = await app.request('/v1/statements', {
        method: 'POST',
        headers: { Authorization: `Bearer ${key('admin')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ period }),
      })
      expect(response.status, await response.clone().text()).toBe(201)
      return (await response.json()) as { lines: unknown[]; total: unknown; adjustments: unknown[]; meters: unknown[] }
    }
    const september = await close('2026-09')
    // 3.75 s at 0.0005 = 0.001875; a fractional quantity is its exact decimal string.
    expect(september.lines).toEqual([{ 'nhi.id': 'etl', meter: 'gpu_seconds', quantity: '3.75', amount: '0.001875' }])
    expect(september.meters).toEqual([
      { meter: 'gpu_seconds', aggregation: 'sum', value: 'gpu.seconds', quantity: '3.75', events: 2, events_without_value: 0, amount: '0.001875' },
    ])
    await insertSpans(client, [run('0.5', '2026-09-20T00:00:00Z')])
    const october = await close('2026-10')
    expect(october.adjustments).toEqual([{ period: '2026-09', 'nhi.id': 'etl', meter: 'gpu_seconds', quantity: '0.5', amount: '0.00025' }])
  })
})
