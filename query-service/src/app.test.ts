import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from './app.js'
import { testKeys } from './test-support/keys.js'
import { TEST_POLICY } from './test-support/policy.js'
import { insertSpans, spanRow } from './test-support/spans.js'
import { freshStorage } from './test-support/storage.js'

let client: ClickHouseClient
let app: ReturnType<typeof createApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read'], business_units: ['finance'] },
  { name: 'ingest', scopes: ['ingest:write'] },
])

function get(path: string, keyName: string | null = 'admin', headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(app.request(path, { headers: { ...(keyName ? { Authorization: `Bearer ${key(keyName)}` } : {}), ...headers } }))
}

const tool = (id: string, bu: string, start: string, extra: Record<string, string> = {}) =>
  spanRow({ start, attributes: { 'nhi.id': id, 'nhi.business_unit': bu, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search', ...extra } })

beforeAll(async () => {
  client = await freshStorage()
  app = createApp({ client, keys: () => store, policy: () => TEST_POLICY })
  const duplicate = tool('agent-a', 'finance', '2026-11-02T10:00:00Z')
  await insertSpans(client, [
    duplicate,
    duplicate,
    tool('agent-a', 'finance', '2026-11-02T11:00:00Z'),
    tool('agent-a', 'finance', '2026-11-03T11:00:00Z'),
    tool('agent-b', 'sales', '2026-11-02T12:00:00Z'),
    spanRow({ start: '2026-11-02T12:30:00Z', attributes: { 'nhi.id': 'svc-etl', 'nhi.business_unit': 'finance', 'gen_ai.operation.name': 'invoke_workflow' } }),
    spanRow({ start: '2026-11-02T12:31:00Z', attributes: { 'nhi.id': 'svc-etl', 'nhi.business_unit': 'finance', 'gen_ai.operation.name': 'invoke_workflow' }, status: 'Error' }),
    spanRow({ start: '2026-11-02T13:00:00Z', kind: 'Server', service: 'legacy' }),
    tool('agent-a', 'finance', '2026-12-01T00:00:00Z'),
  ])
  await insertSpans(client, [duplicate])
})

afterAll(async () => {
  await client?.close()
})

const NOVEMBER = 'from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z'

describe('GET /v1/billable', () => {
  it('counts each billable span once, priced by its meter, with a total', async () => {
    const response = await get(`/v1/billable?${NOVEMBER}`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      from: '2026-11-01T00:00:00.000Z',
      to: '2026-12-01T00:00:00.000Z',
      currency: 'USD',
      rate_card_versions: ['2026-11'],
      completeness: { spans: 7, identified_spans: 6, identified_ratio: 0.857142, status: 'incomplete', threshold: 0.99, pending_spans: 0 },
      meters: [
        { meter: 'tool_calls', aggregation: 'count', quantity: 4, events: 4, amount: '0.008' },
        { meter: 'workflows', aggregation: 'count', quantity: 1, events: 1, amount: '0.05' },
      ],
      rows: [
        { 'nhi.id': 'agent-a', meter: 'tool_calls', quantity: 3, amount: '0.006' },
        { 'nhi.id': 'agent-b', meter: 'tool_calls', quantity: 1, amount: '0.002' },
        { 'nhi.id': 'svc-etl', meter: 'workflows', quantity: 1, amount: '0.05' },
      ],
      total: { quantity: 5, amount: '0.058' },
    })
  })

  it('groups by period, business unit and activity as asked', async () => {
    const response = await get(`/v1/billable?${NOVEMBER}&group_by=business_unit,period,activity.type&granularity=day`)
    const body = (await response.json()) as { rows: unknown[] }
    expect(body.rows).toEqual([
      { business_unit: 'finance', period: '2026-11-02T00:00:00Z', 'activity.type': 'tool_invocation', quantity: 2, amount: '0.004' },
      { business_unit: 'finance', period: '2026-11-02T00:00:00Z', 'activity.type': 'workflow_execution', quantity: 1, amount: '0.05' },
      { business_unit: 'finance', period: '2026-11-03T00:00:00Z', 'activity.type': 'tool_invocation', quantity: 1, amount: '0.002' },
      { business_unit: 'sales', period: '2026-11-02T00:00:00Z', 'activity.type': 'tool_invocation', quantity: 1, amount: '0.002' },
    ])
  })

  it('shows a business-unit key only its unit, totals included', async () => {
    const body = (await (await get(`/v1/billable?${NOVEMBER}`, 'finance')).json()) as { rows: Array<Record<string, unknown>>; total: unknown }
    expect(body.rows.map((r) => r['nhi.id'])).toEqual(['agent-a', 'svc-etl'])
    expect(body.total).toEqual({ quantity: 4, amount: '0.056' })
  })

  it('returns the same rows as CSV, stating completeness on every row', async () => {
    const response = await get(`/v1/billable?${NOVEMBER}&format=csv`)
    expect(response.headers.get('content-type')).toMatch(/text\/csv/)
    expect(response.headers.get('x-nhi-meter-completeness')).toBe('incomplete')
    expect(await response.text()).toBe(
      ['nhi.id,meter,quantity,amount,currency,completeness', 'agent-a,tool_calls,3,0.006,USD,incomplete', 'agent-b,tool_calls,1,0.002,USD,incomplete', 'svc-etl,workflows,1,0.05,USD,incomplete', ''].join('\n'),
    )
    const viaAccept = await get(`/v1/billable?${NOVEMBER}`, 'admin', { Accept: 'text/csv' })
    expect(viaAccept.headers.get('content-type')).toMatch(/text\/csv/)
  })

  it.each([
    ['from=yesterday', 'from'],
    ['from=2026-11-31T00:00:00Z', 'from'],
    ['from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z', 'from'],
    ['group_by=nhi.id,colour', 'group_by'],
    ['group_by=nhi.id,nhi.id', 'group_by'],
    ['granularity=week&group_by=period', 'granularity'],
    ['granularity=day', 'granularity'],
    ['format=xml', 'format'],
    ["grup_by=nhi.id", 'grup_by'],
    ["group_by=nhi.id'); DROP TABLE otel_traces; --", 'group_by'],
    ['from={from:String}', 'from'],
  ])('answers 400 naming the parameter for %s', async (query, parameter) => {
    const response = await get(`/v1/billable?${query}`)
    expect(response.status).toBe(400)
    const body = (await response.json()) as { error: { code: string; message: string; request_id: string } }
    expect(body.error.code).toBe('invalid_parameter')
    expect(body.error.message.startsWith(`${parameter}:`)).toBe(true)
    expect(body.error.request_id).toBe(response.headers.get('x-request-id'))
  })
})

describe('GET /v1/billable/evidence', () => {
  it('counts the spans behind a row, equal to its quantity, with their trace ids', async () => {
    const response = await get(`/v1/billable/evidence?${NOVEMBER}&nhi.id=agent-a&meter=tool_calls`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { count: number; sample_trace_ids: string[]; filters: Record<string, string> }
    expect(body.count).toBe(3)
    expect(body.sample_trace_ids).toHaveLength(3)
    expect(body.filters).toEqual({ 'nhi.id': 'agent-a', meter: 'tool_calls' })
    const traces = await (await client.query({ query: "SELECT DISTINCT TraceId FROM otel_traces WHERE SpanAttributes['nhi.id'] = 'agent-a'", format: 'JSONEachRow' })).json<{ TraceId: string }>()
    for (const id of body.sample_trace_ids) expect(traces.map((t) => t.TraceId)).toContain(id)
    const byDay = (await (await get(`/v1/billable/evidence?${NOVEMBER}&period=2026-11-03T00:00:00Z&granularity=day&business_unit=finance`)).json()) as { count: number }
    expect(byDay.count).toBe(1)
  })

  it('shows a business-unit key nothing of another unit, and refuses bad filters', async () => {
    const other = (await (await get(`/v1/billable/evidence?${NOVEMBER}&nhi.id=agent-b`, 'finance')).json()) as { count: number; sample_trace_ids: string[] }
    expect(other).toMatchObject({ count: 0, sample_trace_ids: [] })
    expect((await get(`/v1/billable/evidence?${NOVEMBER}&limit=0`)).status).toBe(400)
    expect((await get(`/v1/billable/evidence?${NOVEMBER}&colour=red`)).status).toBe(400)
  })
})

describe('declared identities', () => {
  it('bill and scope by the inventory business unit, not the span attribute', async () => {
    await insertSpans(client, [tool('agent-c', 'sales', '2026-11-20T10:00:00Z'), tool('agent-c', 'sales', '2026-11-20T11:00:00Z')])
    const range = 'from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z'
    expect(((await (await get(`/v1/billable?${range}`, 'finance')).json()) as { rows: unknown[] }).rows).toEqual([])
    await client.insert({
      table: 'nhi_inventory',
      values: [{ id: 'agent-c', type: 'ai_agent', owner: 'team-x', business_unit: 'finance', tier: 'standard', approved_activities: [], updated_at: '2026-11-19 00:00:00.000' }],
      format: 'JSONEachRow',
    })
    const scoped = (await (await get(`/v1/billable?${range}&group_by=business_unit,nhi.id`, 'finance')).json()) as { rows: unknown[] }
    expect(scoped.rows).toEqual([{ business_unit: 'finance', 'nhi.id': 'agent-c', quantity: 2, amount: '0.004' }])
  })
})

describe('access', () => {
  it.each([
    ['no key', null, {}, 401],
    ['a malformed header', null, { Authorization: 'Token abc' }, 401],
    ['an unknown key', null, { Authorization: 'Bearer nhim_not_a_key' }, 401],
    ['a key without billing:read', 'ingest', {}, 403],
  ] as const)('refuses %s with the error envelope', async (_name, keyName, headers, status) => {
    const response = await get(`/v1/billable?${NOVEMBER}`, keyName, headers)
    expect(response.status).toBe(status)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe(status === 401 ? 'unauthenticated' : 'forbidden')
  })

  it('serves health, readiness and the OpenAPI document without a key', async () => {
    expect((await get('/healthz', null)).status).toBe(200)
    expect(await (await get('/readyz', null)).json()).toEqual({ status: 'ready' })
    const doc = (await (await get('/openapi.json', null)).json()) as { openapi: string; paths: Record<string, unknown> }
    expect(doc.openapi).toBe('3.1.0')
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/v1/billable']))
  })

  it('answers unknown routes with the envelope and echoes a safe client request id', async () => {
    const response = await get('/v1/nothing-here', 'admin', { 'X-Request-Id': 'abc-123' })
    expect(response.status).toBe(404)
    expect(((await response.json()) as { error: { request_id: string } }).error.request_id).toBe('abc-123')
    const hostile = await get('/healthz', null, { 'X-Request-Id': '<script>alert(1)</script>' })
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('answers a method a route does not serve with 405 and the methods it does', async () => {
    const response = await app.request('/v1/billable', { method: 'DELETE', headers: { Authorization: `Bearer ${key('admin')}` } })
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET, HEAD')
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed')
    const withParam = await app.request('/v1/statements/2026-10', { method: 'PATCH', headers: { Authorization: `Bearer ${key('admin')}` } })
    expect(withParam.headers.get('allow')).toBe('GET, HEAD')
    expect((await app.request('/v1/identities/abc', { method: 'PUT', headers: { Authorization: `Bearer ${key('admin')}` } })).status).toBe(404)
  })
})
