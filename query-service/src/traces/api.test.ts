import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { IDENTITY_DEFAULTS, validatePolicy } from '../policy/index.js'
import { testKeys } from '../test-support/keys.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { placeholderRule, runTraceResolution } from './job.js'

let client: ClickHouseClient
let app: ReturnType<typeof createApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'support', scopes: ['billing:read', 'findings:read'], business_units: ['support'] },
])
const rule = placeholderRule({ ...IDENTITY_DEFAULTS, placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids] })
const RANGE = 'from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z'
/** Tool calls at 0.002 from the start of 2026, so October's statement can bill. */
const POLICY = validatePolicy({
  rate_cards: [{ version: '2026', effective_from: '2026-01-01T00:00:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' }] }],
}).policy

async function get<T>(path: string, keyName = 'admin'): Promise<T> {
  const response = await app.request(path, { headers: { Authorization: `Bearer ${key(keyName)}` } })
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as T
}

type Billable = { rows: Array<Record<string, string | number>>; completeness: { spans: number; identified_spans: number; pending_spans: number; status: string } }
type Completeness = { pending_spans: number; services: Array<{ service: string; pending_spans: number; unidentified_reasons: Record<string, number> }> }

const traceId = 'd'.repeat(32)
const span = (n: number) => n.toString(16).padStart(16, '0')
const agentRun = [
  spanRow({ start: '2026-11-05T09:00:00Z', traceId, spanId: span(1), service: 'support-bot', name: 'invoke_agent triage', resource: { 'nhi.business_unit': 'support' }, attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'triage', 'enduser.id': 'customer-42' } }),
  spanRow({ start: '2026-11-05T09:00:01Z', traceId, spanId: span(2), parentSpanId: span(1), service: 'support-bot', name: 'execute_tool search', resource: { 'nhi.business_unit': 'support' }, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } }),
  spanRow({ start: '2026-11-05T09:00:02Z', traceId, spanId: span(3), parentSpanId: span(1), service: 'support-bot', name: 'ai.toolCall', resource: { 'nhi.business_unit': 'support' }, attributes: { 'ai.toolCall.name': 'refund' } }),
]

beforeAll(async () => {
  client = await freshStorage()
  app = createApp({ client, keys: () => store, policy: () => POLICY })
  // The tools arrive first; their agent span is still on its way.
  await insertSpans(client, agentRun.slice(1))
})
afterAll(async () => {
  await client?.close()
})

describe('events waiting for their trace, seen through the API', () => {
  it('are in no bill while they wait, and completeness says how many wait', async () => {
    await runTraceResolution(client, rule)
    const bill = await get<Billable>(`/v1/billable?${RANGE}&group_by=nhi.id,activity.name`)
    expect(bill.rows).toEqual([])
    expect(bill.completeness).toMatchObject({ spans: 2, identified_spans: 0, pending_spans: 2, status: 'incomplete' })
    const completeness = await get<Completeness>(`/v1/telemetry/completeness?${RANGE}`)
    expect(completeness.pending_spans).toBe(2)
    expect(completeness.services).toEqual([expect.objectContaining({ service: 'support-bot', pending_spans: 2 })])
  })

  it('are billed to the agent, on behalf of the principal on the agent span, once their ancestor arrives', async () => {
    await insertSpans(client, agentRun.slice(0, 1))
    await runTraceResolution(client, rule)
    const bill = await get<Billable>(`/v1/billable?${RANGE}&group_by=nhi.id,activity.type,activity.name,on_behalf_of`)
    expect(bill.rows).toEqual([
      { 'nhi.id': 'agent:support-bot/triage', 'activity.type': 'tool_invocation', 'activity.name': 'refund', on_behalf_of: 'customer-42', quantity: 1, amount: '0.002' },
      { 'nhi.id': 'agent:support-bot/triage', 'activity.type': 'tool_invocation', 'activity.name': 'search', on_behalf_of: 'customer-42', quantity: 1, amount: '0.002' },
    ])
    expect(bill.completeness).toMatchObject({ spans: 2, identified_spans: 2, pending_spans: 0, status: 'complete' })
  })

  it('show a business-unit key its own unit\'s agents, and nothing of another unit', async () => {
    const own = await get<Billable>(`/v1/billable?${RANGE}&group_by=nhi.id`, 'support')
    expect(own.rows.map((r) => r['nhi.id'])).toEqual(['agent:support-bot/triage'])
    await insertSpans(client, [
      spanRow({ start: '2026-11-06T09:00:00Z', traceId: 'e'.repeat(32), spanId: span(2), parentSpanId: span(1), service: 'sales-bot', resource: { 'nhi.business_unit': 'sales' }, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'quote' } }),
    ])
    const completeness = await get<Completeness>(`/v1/telemetry/completeness?${RANGE}`, 'support')
    expect(completeness.pending_spans).toBe(0)
    expect(completeness.services.map((s) => s.service)).toEqual(['support-bot'])
  })

  it('take the owner and business unit of an inventory entry that claims the agent by its derived id', async () => {
    const response = await app.request('/v1/inventory', {
      method: 'POST',
      headers: { Authorization: `Bearer ${key('admin')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify([{ id: 'agent:support-bot/triage', type: 'ai_agent', owner: 'cx-team', business_unit: 'customer-care' }]),
    })
    expect(response.status, await response.clone().text()).toBe(200)
    const bill = await get<Billable>(`/v1/billable?${RANGE}&group_by=nhi.id,business_unit`)
    expect(bill.rows).toEqual([expect.objectContaining({ 'nhi.id': 'agent:support-bot/triage', business_unit: 'customer-care', quantity: 2 })])
    const identities = await get<{ identities: Array<{ id: string; declared: boolean; owner: string }> }>('/v1/identities')
    // The identity ledger (entitlements, identities, findings read it) holds the resolved events too.
    expect(identities.identities.find((i) => i.id === 'agent:support-bot/triage')).toMatchObject({ declared: true, owner: 'cx-team', activity_count: 2 })
  })

  it('name the reason an event stays unidentified', async () => {
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    const completeness = await get<Completeness>(`/v1/telemetry/completeness?${RANGE}`)
    expect(completeness.services.find((s) => s.service === 'sales-bot')).toMatchObject({ pending_spans: 0, unidentified_reasons: { ancestor_missing: 1 } })
  })

  it('shows an event decided after its month was closed as an adjustment in the next statement, never by changing the closed one', async () => {
    const octoberTrace = 'a'.repeat(31) + 'b'
    await insertSpans(client, [
      spanRow({ start: '2026-10-20T09:00:01Z', traceId: octoberTrace, spanId: span(2), parentSpanId: span(1), service: 'support-bot', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } }),
    ])
    await runTraceResolution(client, rule)
    const post = (period: string) =>
      app.request('/v1/statements', { method: 'POST', headers: { Authorization: `Bearer ${key('admin')}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ period }) })
    const closed = await post('2026-10')
    expect(closed.status, await closed.clone().text()).toBe(201)
    const october = (await closed.json()) as { lines: unknown[]; completeness: { pending_spans: number; status: string } }
    expect(october.lines).toEqual([])
    expect(october.completeness).toMatchObject({ pending_spans: 1, status: 'incomplete' })
    await insertSpans(client, [
      spanRow({ start: '2026-10-20T09:00:00Z', traceId: octoberTrace, spanId: span(1), service: 'support-bot', attributes: { 'gen_ai.agent.name': 'triage' } }),
    ])
    await runTraceResolution(client, rule)
    expect(await get('/v1/statements/2026-10')).toEqual(october)
    const november = (await (await post('2026-11')).json()) as { adjustments: Array<Record<string, unknown>> }
    expect(november.adjustments).toEqual([expect.objectContaining({ period: '2026-10', 'nhi.id': 'agent:support-bot/triage', quantity: 1 })])
  })
})
