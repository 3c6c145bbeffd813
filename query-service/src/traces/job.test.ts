import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IDENTITY_DEFAULTS } from '../policy/index.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { pendingSpans } from '../telemetry/queries.js'
import { placeholderRule, readTraceSpans, runTraceResolution } from './job.js'

const rule = placeholderRule({ placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids], uuid_agent_ids_are_placeholders: true })
let client: ClickHouseClient
let traceCounter = 0

beforeAll(async () => {
  client = await freshStorage()
}, 60_000)
afterAll(async () => {
  await client.close()
})

/** A fresh trace id and a span-id maker within it. */
function trace() {
  traceCounter++
  const traceId = `${traceCounter.toString(16).padStart(8, '0')}${'c'.repeat(24)}`
  return { traceId, id: (n: number) => `${traceCounter.toString(16).padStart(4, '0')}${n.toString(16).padStart(12, '0')}` }
}

interface LedgerRow {
  span_id: string
  nhi_id: string
  identity_source: string
  activity_type: string
  activity_name: string
  on_behalf_of: string
  nhi_type: string
}

async function ledger(traceId: string): Promise<LedgerRow[]> {
  const result = await client.query({
    query: `SELECT span_id, nhi_id, identity_source, activity_type, activity_name, on_behalf_of, nhi_type FROM nhi_activity FINAL
            WHERE trace_id = {t:String} ORDER BY span_id`,
    query_params: { t: traceId },
    format: 'JSONEachRow',
  })
  return result.json<LedgerRow>()
}

const at = '2026-11-10T10:00:00Z'
const november10 = { from: new Date('2026-11-10T00:00:00Z'), to: new Date('2026-11-11T00:00:00Z') }

describe('trace resolution', () => {
  it('bills a tool call exported before its agent span to the agent named on the ancestor, once the ancestor arrives', async () => {
    const { traceId, id } = trace()
    // Children are exported first: the tool span alone waits.
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', name: 'execute_tool lookup', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup' } }),
    ])
    const first = await runTraceResolution(client, rule)
    expect(first.waiting).toBeGreaterThanOrEqual(1)
    expect(await ledger(traceId)).toEqual([])
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', name: 'invoke_agent planner', attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'user.id': 'alice' } }),
    ])
    await runTraceResolution(client, rule)
    expect(await ledger(traceId)).toEqual([
      { span_id: id(2), nhi_id: 'agent:agents/planner', identity_source: 'ancestor:span:gen_ai.agent.name', activity_type: 'tool_invocation', activity_name: 'lookup', on_behalf_of: 'alice', nhi_type: 'ai_agent' },
    ])
  })

  it('walks several hops and keeps two agents of one trace apart (a handoff)', async () => {
    const { traceId, id } = trace()
    const tool = (n: number, parent: number, name: string) =>
      spanRow({ start: at, traceId, spanId: id(n), parentSpanId: id(parent), service: 'agents', name: `execute_tool ${name}`, attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': name } })
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', name: 'workflow' }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.id': 'triage-7' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'agents', name: 'step' }),
      tool(4, 3, 'classify'),
      spanRow({ start: at, traceId, spanId: id(5), parentSpanId: id(2), service: 'agents', attributes: { 'gen_ai.agent.name': 'billing' } }),
      tool(6, 5, 'refund'),
      tool(7, 5, 'refund'),
    ])
    await runTraceResolution(client, rule)
    const rows = await ledger(traceId)
    expect(rows.map((r) => [r.span_id, r.nhi_id, r.activity_name])).toEqual([
      [id(4), 'triage-7', 'classify'],
      [id(6), 'agent:agents/billing', 'refund'],
      [id(7), 'agent:agents/billing', 'refund'],
    ])
  })

  it('bills one MCP tool call seen as a framework span, an MCP client span and an MCP server span once, to the calling agent', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'get_weather', 'gen_ai.tool.call.id': 'call_1' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'agents', kind: 'Client', attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'get_weather', 'jsonrpc.request.id': '4' } }),
      spanRow({
        start: at, traceId, spanId: id(4), parentSpanId: id(3), service: 'mcp-tools', kind: 'Server',
        resource: { 'nhi.id': 'mcp-tools-server' },
        attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'get_weather', 'jsonrpc.request.id': '4', 'nhi.id': 'oauth-client-1' },
      }),
    ])
    const run = await runTraceResolution(client, rule)
    expect(run.sameToolCall).toBeGreaterThanOrEqual(2)
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id, r.activity_type])).toEqual([[id(2), 'agent:agents/planner', 'tool_invocation']])
  })

  it('makes an MCP server span wait for its client span, so the call is not billed to the server span first', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(4), parentSpanId: id(3), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'x', 'nhi.id': 'oauth-client-1' } }),
    ])
    await runTraceResolution(client, rule)
    expect(await ledger(traceId)).toEqual([])
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'planner' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(1), service: 'agents', kind: 'Client', attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'x' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id])).toEqual([[id(3), 'agent:agents/planner']])
  })

  it('bills an MCP server span that has no client span in its trace to the caller it names, never to the server', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'x', 'nhi.id': 'oauth-client-9' } }),
      spanRow({ start: at, traceId: `${traceId.slice(0, 31)}f`, spanId: id(2), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'x' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['oauth-client-9', 'span:nhi.id']])
    expect((await ledger(`${traceId.slice(0, 31)}f`)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['', 'unresolved:mcp_caller_unknown']])
  })

  it('does not take framework placeholders or per-run UUIDs for identities, and says so', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.id': 'agent' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't', 'gen_ai.agent.id': '3f2b1c9e-8a7d-4e6f-9b0a-1c2d3e4f5a6b' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['', 'unresolved:placeholder_identity']])
  })

  it('settles a use event whose parent never comes after the wait: on its own resource identity if it has one, else unidentified with the reason', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(1), service: 'agents', resource: { 'nhi.id': 'svc-account' }, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    await runTraceResolution(client, rule)
    expect(await ledger(traceId)).toEqual([])
    expect((await pendingSpans(client, november10, null)).get('agents')).toBeGreaterThanOrEqual(2)
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id, r.identity_source])).toEqual([
      [id(2), '', 'unresolved:ancestor_missing'],
      [id(3), 'svc-account', 'resource:nhi.id'],
    ])
    expect((await pendingSpans(client, november10, null)).get('agents') ?? 0).toBe(0)
  })

  it('counts a parent cycle once, without looping', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), parentSpanId: id(2), service: 'agents' }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => r.identity_source)).toEqual(['unresolved:parent_cycle'])
  })

  it('resolves a tool call at the bottom of a 10,000-deep chain of spans', async () => {
    const { traceId, id } = trace()
    const depth = 10_000
    const rows = [spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'deep' } })]
    for (let n = 2; n < depth; n++) rows.push(spanRow({ start: at, traceId, spanId: id(n), parentSpanId: id(n - 1), service: 'agents' }))
    rows.push(spanRow({ start: at, traceId, spanId: id(depth), parentSpanId: id(depth - 1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'bottom' } }))
    await insertSpans(client, rows)
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.activity_name])).toEqual([['agent:agents/deep', 'bottom']])
  }, 60_000)

  it('cuts off a trace larger than the per-trace limit and counts its unreachable events as trace_too_large', async () => {
    const { traceId, id } = trace()
    const rows = [spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'big' } })]
    for (let n = 2; n <= 50; n++) rows.push(spanRow({ start: at, traceId, spanId: id(n), parentSpanId: id(n - 1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }))
    await insertSpans(client, rows)
    const run = await runTraceResolution(client, rule, { maxTraceSpans: 10 })
    expect(run.spansRead).toBeLessThanOrEqual(11 + 100)
    const result = await ledger(traceId)
    expect(result).toHaveLength(49)
    const reasons = new Set(result.map((r) => (r.nhi_id === '' ? r.identity_source : 'resolved')))
    expect(reasons).toContain('unresolved:trace_too_large')
  })

  it('leaves spans that name their own identity to the ledger view, without waiting for the job', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'gw', kind: 'Server', attributes: { 'nhi.id': 'key-1', 'http.route': '/orders' } }),
    ])
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.activity_type, r.activity_name])).toEqual([['key-1', 'api_call', '/orders']])
  })

  it('decides each pending event once, however often the job runs and the span is delivered', async () => {
    const { traceId, id } = trace()
    const rows = [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'a' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ]
    await insertSpans(client, rows)
    await insertSpans(client, rows)
    await Promise.all([runTraceResolution(client, rule), runTraceResolution(client, rule)])
    await runTraceResolution(client, rule)
    const result = await client.query({
      query: `SELECT count() AS n, uniqExact(span_id) AS spans FROM nhi_activity WHERE trace_id = {t:String}`,
      query_params: { t: traceId },
      format: 'JSONEachRow',
    })
    const [row] = await result.json<{ n: string; spans: string }>()
    expect(Number(row!.spans)).toBe(1)
    expect((await ledger(traceId)).map((r) => r.nhi_id)).toEqual(['agent:agents/a'])
  })
})

describe('the tool markers', () => {
  it('are read the same by the ledger view and by the resolution job', async () => {
    const { traceId, id } = trace()
    const markers: Array<{ name?: string; kind?: string; attributes: Record<string, string> }> = [
      { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'a' } },
      { attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': 'b' } },
      { attributes: { 'traceloop.span.kind': 'tool', 'traceloop.entity.name': 'c' } },
      { name: 'ai.toolCall', attributes: { 'ai.toolCall.name': 'd' } },
      { kind: 'Client', attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'e' } },
      { attributes: { 'gen_ai.operation.name': 'execute_tool', 'nhi.activity.type': 'api_call' } },
      { attributes: { 'openinference.span.kind': 'LLM' } },
      { attributes: { 'traceloop.span.kind': 'workflow' } },
      { attributes: { 'mcp.method.name': 'tools/list' } },
      { name: 'ai.generateText', attributes: {} },
    ]
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'marker-agent' } }),
      ...markers.map((m, i) => spanRow({ start: at, traceId, spanId: id(i + 2), parentSpanId: id(1), service: 'agents', name: m.name, kind: m.kind, attributes: m.attributes })),
    ])
    await runTraceResolution(client, rule)
    const spans = await readTraceSpans(client, [traceId], 100)
    const jobSaysTool = new Set(spans.filter((s) => s[7].split('\x1f')[15] === '1').map((s) => s[1]))
    const viewSaysTool = new Set((await ledger(traceId)).filter((r) => r.activity_type === 'tool_invocation').map((r) => r.span_id))
    expect(viewSaysTool).toEqual(new Set([2, 3, 4, 5, 6].map(id)))
    expect(jobSaysTool).toEqual(viewSaysTool)
  })
})

describe('the agent frameworks as they emit', () => {
  const toolAt = (ms: number) => new Date(Date.parse(at) + ms).toISOString()

  it('reads the Vercel AI SDK: the functionId names the agent, ai.toolCall is the tool, metadata userId the principal', async () => {
    const { traceId, id } = trace()
    const ai = (extra: Record<string, string>) => ({ 'ai.telemetry.functionId': 'planner', 'ai.telemetry.metadata.userId': 'u-7', ...extra })
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'vercel-app', name: 'ai.streamText', attributes: ai({}) }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'vercel-app', name: 'ai.toolCall', attributes: ai({ 'ai.toolCall.name': 'get_weather', 'ai.toolCall.id': 'call_1' }) }),
      // The MCP server's span sits directly under the tool call: the same call.
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'get_weather', 'nhi.id': 'client-1' } }),
    ])
    await runTraceResolution(client, rule)
    expect(await ledger(traceId)).toEqual([
      { span_id: id(2), nhi_id: 'agent:vercel-app/planner', identity_source: 'span:ai.telemetry.functionId', activity_type: 'tool_invocation', activity_name: 'get_weather', on_behalf_of: 'u-7', nhi_type: 'ai_agent' },
    ])
  })

  it('reads OpenInference: AGENT spans name the agent, TOOL spans with a tool.name are tools, handoffs and tool listings are not', async () => {
    const { traceId, id } = trace()
    const oi = (kind: string, extra: Record<string, string> = {}) => ({ 'openinference.span.kind': kind, 'user.id': 'u-8', ...extra })
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'oi-app', name: 'Agent workflow', attributes: oi('AGENT') }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'oi-app', name: 'triage_agent', attributes: oi('AGENT', { 'graph.node.id': 'triage_agent' }) }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'oi-app', name: 'turn', attributes: oi('CHAIN') }),
      spanRow({ start: at, traceId, spanId: id(4), parentSpanId: id(3), service: 'oi-app', name: 'lookup_order', attributes: oi('TOOL', { 'tool.name': 'lookup_order' }) }),
      spanRow({ start: at, traceId, spanId: id(5), parentSpanId: id(3), service: 'oi-app', name: 'handoff to refunds_agent', attributes: oi('TOOL', { 'tool.name': 'handoff_to_refunds_agent' }) }),
      spanRow({ start: at, traceId, spanId: id(6), parentSpanId: id(2), service: 'oi-app', name: 'mcp_tools', attributes: oi('TOOL') }),
      spanRow({ start: at, traceId, spanId: id(7), parentSpanId: id(1), service: 'oi-app', name: 'refunds_agent', attributes: oi('AGENT', { 'agent.name': 'refunds_agent', 'graph.node.id': 'refunds_agent' }) }),
      spanRow({ start: at, traceId, spanId: id(8), parentSpanId: id(7), service: 'oi-app', name: 'issue_refund', attributes: oi('TOOL', { 'tool.name': 'issue_refund' }) }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id, r.identity_source, r.activity_name, r.on_behalf_of])).toEqual([
      [id(4), 'agent:oi-app/triage_agent', 'ancestor:span:graph.node.id', 'lookup_order', 'u-8'],
      [id(8), 'agent:oi-app/refunds_agent', 'ancestor:span:agent.name', 'issue_refund', 'u-8'],
    ])
  })

  it('reads the OpenTelemetry instrumentation of the OpenAI Agents SDK: its default agent name and id on every span are placeholders, the invoke_agent span names the agent', async () => {
    const { traceId, id } = trace()
    const defaults = { 'gen_ai.agent.name': 'OpenAI Agent', 'gen_ai.agent.id': 'agent' }
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'py-agents', kind: 'Server', name: 'Agent workflow', attributes: { 'gen_ai.operation.name': 'invoke_agent' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'py-agents', kind: 'Client', name: 'invoke_agent triage_agent', attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'triage_agent', 'gen_ai.agent.id': 'agent' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'py-agents', name: 'unknown', attributes: { 'gen_ai.operation.name': 'unknown', ...defaults } }),
      spanRow({ start: at, traceId, spanId: id(4), parentSpanId: id(3), service: 'py-agents', name: 'execute_tool lookup_customer', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup_customer', ...defaults } }),
      spanRow({ start: at, traceId, spanId: id(5), parentSpanId: id(3), service: 'py-agents', kind: 'Client', name: 'chat stub-model', attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'stub-model', ...defaults } }),
      // The Python MCP client's span has no gen_ai.tool.name; the tool is in its name.
      spanRow({ start: at, traceId, spanId: id(6), parentSpanId: id(3), service: 'py-agents', name: 'execute_tool get_weather', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'get_weather', ...defaults } }),
      spanRow({ start: at, traceId, spanId: id(7), parentSpanId: id(6), service: 'py-agents', kind: 'Client', name: 'MCP send tools/call get_weather', attributes: { 'mcp.method.name': 'tools/call', 'jsonrpc.request.id': '3' } }),
      spanRow({ start: at, traceId, spanId: id(8), parentSpanId: id(7), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'get_weather', 'jsonrpc.request.id': '3', 'nhi.id': 'client-1' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id, r.activity_type, r.activity_name])).toEqual([
      [id(4), 'agent:py-agents/triage_agent', 'tool_invocation', 'lookup_customer'],
      [id(5), 'agent:py-agents/triage_agent', 'model_call', 'stub-model'],
      [id(6), 'agent:py-agents/triage_agent', 'tool_invocation', 'get_weather'],
    ])
  })

  it('pairs an MCP server span with the framework tool span that was running when it started, when nothing else links them', async () => {
    const { traceId, id } = trace()
    const rows = [
      spanRow({ start: at, traceId, spanId: id(1), service: 'oi-js', name: 'handle request', attributes: { 'user.id': 'u-9' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'oi-js', name: 'triage_agent', attributes: { 'openinference.span.kind': 'AGENT', 'graph.node.id': 'triage_agent' } }),
      spanRow({ start: toolAt(100), traceId, spanId: id(3), parentSpanId: id(2), service: 'oi-js', name: 'get_weather', attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': 'get_weather' } }),
      spanRow({ start: toolAt(5_000), traceId, spanId: id(4), parentSpanId: id(2), service: 'oi-js', name: 'get_weather', attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': 'get_weather' } }),
      // OpenInference never makes its span current: the server's parent is the app span.
      spanRow({ start: toolAt(100.5), traceId, spanId: id(5), parentSpanId: id(1), service: 'mcp-tools', kind: 'Server', resource: { 'nhi.id': 'mcp-tools-server' }, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'get_weather', 'nhi.id': 'client-1' } }),
    ]
    // spanRow's spans last 1 µs; the tool calls last a second here.
    rows[2]!.Duration = '1000000000'
    rows[3]!.Duration = '1000000000'
    await insertSpans(client, rows)
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.span_id, r.nhi_id])).toEqual([
      [id(3), 'agent:oi-js/triage_agent'],
      [id(4), 'agent:oi-js/triage_agent'],
    ])
  })
})

describe('hostile traces', () => {
  it('never takes an identity from a span of another trace that has the parent id', async () => {
    const a = trace()
    const b = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId: b.traceId, spanId: a.id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'other-trace' } }),
      spanRow({ start: at, traceId: a.traceId, spanId: a.id(2), parentSpanId: a.id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect((await ledger(a.traceId)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['', 'unresolved:ancestor_missing']])
  })

})

describe('decisions that hold', () => {
  it('keeps the job running when an attribute value holds the separator the trace graph packs facts with', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'sep\u001fagent', 'user.id': 'u\u001f1' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't', 'jsonrpc.request.id': '1\u001f2' } }),
    ])
    const other = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId: other.traceId, spanId: other.id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'fine' } }),
      spanRow({ start: at, traceId: other.traceId, spanId: other.id(2), parentSpanId: other.id(1), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['', 'unresolved:no_identity']])
    expect((await ledger(other.traceId)).map((r) => r.nhi_id)).toEqual(['agent:agents/fine'])
  })

  it('never decides again a late copy of a span already settled, even when its ancestor has arrived since', async () => {
    const { traceId, id } = trace()
    const tool = spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', resource: { 'nhi.id': 'svc-account' }, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } })
    await insertSpans(client, [tool])
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect((await ledger(traceId)).map((r) => r.nhi_id)).toEqual(['svc-account'])
    await insertSpans(client, [spanRow({ start: at, traceId, spanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'late' } })])
    await insertSpans(client, [tool])
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    const result = await client.query({ query: 'SELECT DISTINCT nhi_id FROM nhi_identity_activity WHERE trace_id = {t:String}', query_params: { t: traceId }, format: 'JSONEachRow' })
    expect((await result.json<{ nhi_id: string }>()).map((r) => r.nhi_id)).toEqual(['svc-account'])
    expect((await ledger(traceId)).map((r) => r.nhi_id)).toEqual(['svc-account'])
    expect((await pendingSpans(client, november10, null)).get('agents') ?? 0).toBe(0)
  })

  it('waits for the root span that names the principal, exported after the agent span', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', attributes: { 'gen_ai.agent.name': 'a' } }),
      spanRow({ start: at, traceId, spanId: id(3), parentSpanId: id(2), service: 'agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    const first = await runTraceResolution(client, rule)
    expect(first.waiting).toBeGreaterThanOrEqual(1)
    await insertSpans(client, [spanRow({ start: at, traceId, spanId: id(1), service: 'app', attributes: { 'user.id': 'alice' } })])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.on_behalf_of])).toEqual([['agent:agents/a', 'alice']])
  })

  it('still takes the resource identity of a tool call whose parents loop', async () => {
    const { traceId, id } = trace()
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: id(1), parentSpanId: id(2), service: 'agents', resource: { 'gen_ai.agent.id': 'agent-r' } }),
      spanRow({ start: at, traceId, spanId: id(2), parentSpanId: id(1), service: 'agents', resource: { 'gen_ai.agent.id': 'agent-r' }, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } }),
    ])
    await runTraceResolution(client, rule)
    expect((await ledger(traceId)).map((r) => [r.nhi_id, r.identity_source])).toEqual([['agent-r', 'resource:gen_ai.agent.id']])
  })
})

describe('the pending count', () => {
  it('sees an event that arrives after a count that found none in the same range', async () => {
    const range = { from: new Date('2026-11-20T00:00:00Z'), to: new Date('2026-11-21T00:00:00Z') }
    expect((await pendingSpans(client, range, null)).size).toBe(0)
    expect((await pendingSpans(client, range, null)).size).toBe(0)
    const { traceId, id } = trace()
    await insertSpans(client, [spanRow({ start: '2026-11-20T10:00:00Z', traceId, spanId: id(2), parentSpanId: id(1), service: 'late-agents', attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } })])
    expect((await pendingSpans(client, range, null)).get('late-agents')).toBe(1)
  })
})
