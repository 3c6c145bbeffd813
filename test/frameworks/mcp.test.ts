/**
 * An agent calling tools on an MCP server over Streamable HTTP, both traced
 * and metered by nhi-meter, end to end: the agent's process makes an
 * `invoke_agent` span and an MCP client span per call and passes its trace
 * context to the server (in `params._meta` and in the HTTP headers); the
 * server, instrumented by `instrumentMcpServer`, makes a SERVER span per call
 * that names the OAuth client from the bearer token. Both export to the
 * product's receiver. The bill must show each call once, for the agent, on
 * behalf of the user the agent serves; never for the MCP server that served
 * it. A client without tracing is billed to its OAuth client id.
 *
 * The server's spans pass through a recording relay on their way to the
 * receiver, so the test can say what the server sent.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startMcpToolServer } from './mcp-fixture.js'
import { startRecordingRelay, type ExportedSpan, type RecordingRelay } from './otlp-relay.js'
import {
  billedToolCalls, expectedRows, shapes, startAppTracing, startMeteredService, traceContextFetch, traceContextMeta, waitForTraceResolution,
  type AppTracing, type MeteredService, type SpanShape, type Window,
} from './scenario.js'

const SERVICE = 'planner-desk'
const PRINCIPAL = 'principal-bob'
const PLANNER = `agent:${SERVICE}/planner`
const MCP_SERVER_ID = 'mcp-tools-server'
const AGENT_TOKEN = 'planner-desk-mcp-token'
const AGENT_CLIENT = 'planner-desk-client'
const SCRIPT_TOKEN = 'nightly-report-mcp-token'
const SCRIPT_CLIENT = 'nightly-report-script'
const CALLERS = { [AGENT_TOKEN]: AGENT_CLIENT, [SCRIPT_TOKEN]: SCRIPT_CLIENT }

/** The agent's tool calls: N = 3, two tools. */
const AGENT_CALLS = [
  { name: 'get_weather', arguments: { city: 'Lisbon' } },
  { name: 'convert_currency', arguments: { amount: 40, from: 'EUR', to: 'USD' } },
  { name: 'get_weather', arguments: { city: 'Porto' } },
]

/**
 * What an MCP client instrumentation does on the wire: each `tools/call`
 * carries the active trace context in `params._meta` (the MCP conventions'
 * propagation), and its JSON-RPC id goes on the active (client) span.
 */
function propagateThroughMeta(transport: Transport): void {
  const send = transport.send.bind(transport)
  transport.send = (message, options) => {
    const request = message as JSONRPCMessage & { method?: string; id?: string | number; params?: { _meta?: Record<string, unknown> } }
    if (request.method === 'tools/call' && request.id !== undefined) {
      trace.getActiveSpan()?.setAttribute('jsonrpc.request.id', String(request.id))
      message = { ...request, params: { ...request.params, _meta: { ...request.params?._meta, ...traceContextMeta() } } } as JSONRPCMessage
    }
    return send(message, options)
  }
}

/** One tool call as an instrumented MCP client records it: a CLIENT span named by the MCP conventions. */
function tracedCallTool(tracer: Tracer, client: Client, call: { name: string; arguments: Record<string, unknown> }) {
  return tracer.startActiveSpan(
    `tools/call ${call.name}`,
    { kind: SpanKind.CLIENT, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': call.name } },
    async (span) => {
      try {
        const result = await client.callTool(call)
        if (result.isError) {
          span.setAttribute('error.type', 'tool_error')
          span.setStatus({ code: SpanStatusCode.ERROR })
        }
        return result
      } catch (error) {
        span.recordException(error as Error)
        span.setStatus({ code: SpanStatusCode.ERROR })
        throw error
      } finally {
        span.end()
      }
    },
  )
}

/** A window from `startedAt` to now, exact to the millisecond, so the two scenarios' bills do not overlap. */
function exactWindow(startedAt: Date): Window {
  return { from: startedAt.toISOString(), to: new Date(Date.now() + 1).toISOString() }
}

let metered: MeteredService
let relay: RecordingRelay

beforeAll(async () => {
  metered = await startMeteredService()
  relay = await startRecordingRelay(metered.service.otlpUrl)
})

afterAll(async () => {
  await relay?.close()
  await metered?.stop()
})

describe('an agent calling MCP tools, traced on both sides', () => {
  let tracing: AppTracing
  let agentSpans: SpanShape[]
  let serverSpans: ExportedSpan[]
  let window: Window

  beforeAll(async () => {
    const mcp = await startMcpToolServer({ otlpUrl: relay.url, otlpKey: metered.key, serviceName: 'mcp-tools', nhiId: MCP_SERVER_ID, callers: CALLERS })
    tracing = startAppTracing({ serviceName: SERVICE, otlpUrl: metered.service.otlpUrl, key: metered.key })
    const transport = new StreamableHTTPClientTransport(new URL(mcp.url), {
      requestInit: { headers: { Authorization: `Bearer ${AGENT_TOKEN}` } },
      fetch: traceContextFetch,
    })
    propagateThroughMeta(transport)
    const client = new Client({ name: 'planner', version: '1.0.0' })
    await client.connect(transport)
    const tracer = tracing.provider.getTracer(SERVICE)

    const startedAt = new Date()
    await tracer.startActiveSpan(
      'invoke_agent planner',
      { kind: SpanKind.INTERNAL, attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', 'user.id': PRINCIPAL } },
      async (span) => {
        for (const call of AGENT_CALLS) await tracedCallTool(tracer, client, call)
        span.end()
      },
    )
    await client.close()
    // Read before shutting down: shutting an InMemorySpanExporter down empties it.
    await tracing.provider.forceFlush()
    agentSpans = shapes(tracing.finished())
    await tracing.shutdown()
    await mcp.close()
    window = exactWindow(startedAt)
    serverSpans = relay.spans.filter((s) => s.resource['service.name'] === 'mcp-tools')
    relay.spans.length = 0
  })

  it('records the agent run and, under it, one MCP client span per tool call with its JSON-RPC id', () => {
    const root = agentSpans.find((s) => s.name === 'invoke_agent planner')!
    expect(root).toMatchObject({ kind: SpanKind.INTERNAL, parentSpanId: undefined, attributes: { 'gen_ai.agent.name': 'planner', 'user.id': PRINCIPAL } })
    const calls = agentSpans.filter((s) => s.kind === SpanKind.CLIENT)
    expect(calls.map((s) => [s.name, s.parentSpanId, s.traceId])).toEqual(AGENT_CALLS.map((c) => [`tools/call ${c.name}`, root.spanId, root.traceId]))
    for (const call of calls) {
      expect(call.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.operation.name': 'execute_tool', 'jsonrpc.request.id': expect.stringMatching(/^\d+$/) })
    }
    expect(agentSpans).toHaveLength(1 + AGENT_CALLS.length)
  })

  it('makes each call a SERVER span of the MCP server, a child of the client span that made it, naming the OAuth client and never the token', () => {
    const clientSpans = new Map(agentSpans.filter((s) => s.kind === SpanKind.CLIENT).map((s) => [s.spanId, s]))
    expect(serverSpans).toHaveLength(AGENT_CALLS.length)
    for (const span of serverSpans) {
      const parent = clientSpans.get(span.parentSpanId!)
      expect(parent, `parent of ${span.name}`).toBeDefined()
      expect(span).toMatchObject({ name: `execute_tool ${parent!.attributes['gen_ai.tool.name']}`, kind: SpanKind.SERVER, traceId: parent!.traceId })
      expect(span.attributes).toMatchObject({
        'gen_ai.operation.name': 'execute_tool',
        'gen_ai.tool.name': parent!.attributes['gen_ai.tool.name'],
        'mcp.method.name': 'tools/call',
        'jsonrpc.request.id': parent!.attributes['jsonrpc.request.id'],
        'nhi.id': AGENT_CLIENT,
        'nhi.type': 'ai_agent',
        'enduser.id': AGENT_CLIENT,
        'network.transport': 'tcp',
      })
      expect(span.resource).toMatchObject({ 'service.name': 'mcp-tools', 'nhi.id': MCP_SERVER_ID })
      expect(JSON.stringify(span)).not.toContain(AGENT_TOKEN)
    }
  })

  it('delivers every span of both processes to the receiver', () => {
    expect(tracing.exports.length).toBeGreaterThan(0)
    expect(tracing.exports.filter((e) => !e.ok)).toEqual([])
    expect(relay.answers.length).toBeGreaterThan(0)
    expect(relay.answers.filter((status) => status !== 200)).toEqual([])
  })

  it('bills each call once, to the planner agent on behalf of its user, and never to the MCP server or the OAuth client', async () => {
    await waitForTraceResolution(metered, window)
    const rows = await billedToolCalls(metered, window)
    expect(rows).toEqual(expectedRows([
      { agent: PLANNER, tool: 'get_weather', principal: PRINCIPAL, calls: 2 },
      { agent: PLANNER, tool: 'convert_currency', principal: PRINCIPAL, calls: 1 },
    ]))
    expect(rows.map((r) => r['nhi.id'])).not.toContain(MCP_SERVER_ID)
  })
})

describe('a client without tracing calling an MCP tool', () => {
  let serverSpans: ExportedSpan[]
  let window: Window

  beforeAll(async () => {
    await new Promise((resolve) => setTimeout(resolve, 5)) // a window of its own, after the agent's
    const startedAt = new Date()
    const mcp = await startMcpToolServer({ otlpUrl: relay.url, otlpKey: metered.key, nhiId: MCP_SERVER_ID, callers: CALLERS })
    const client = new Client({ name: 'nightly-report', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { requestInit: { headers: { Authorization: `Bearer ${SCRIPT_TOKEN}` } } }))
    await client.callTool({ name: 'lookup_invoice', arguments: { invoice_id: 'INV-7' } })
    await client.close()
    await mcp.close()
    window = exactWindow(startedAt)
    serverSpans = relay.spans.filter((s) => s.resource['service.name'] === 'mcp-tools')
  })

  it('refuses a token it does not know', async () => {
    const mcp = await startMcpToolServer({ otlpUrl: relay.url, otlpKey: metered.key, callers: CALLERS })
    try {
      const answer = await fetch(mcp.url, { method: 'POST', headers: { Authorization: 'Bearer not-a-known-token', 'content-type': 'application/json' }, body: '{}' })
      expect(answer.status).toBe(401)
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/)
    } finally {
      await mcp.close()
    }
  })

  it('makes the call a root SERVER span naming the OAuth client', () => {
    expect(serverSpans).toHaveLength(1)
    expect(serverSpans[0]).toMatchObject({
      name: 'execute_tool lookup_invoice',
      kind: SpanKind.SERVER,
      parentSpanId: undefined,
      attributes: { 'nhi.id': SCRIPT_CLIENT, 'enduser.id': SCRIPT_CLIENT, 'gen_ai.tool.name': 'lookup_invoice' },
    })
  })

  it('bills the call once, to the OAuth client id', async () => {
    await waitForTraceResolution(metered, window)
    const rows = await billedToolCalls(metered, window)
    expect(rows.map(({ on_behalf_of: _principal, ...row }) => row)).toEqual([{ 'nhi.id': SCRIPT_CLIENT, 'activity.type': 'tool_invocation', 'activity.name': 'lookup_invoice', quantity: 1 }])
  })

  it('bills the call on behalf of nobody: the client acted for itself, and enduser.id naming it is not a principal', async () => {
    await waitForTraceResolution(metered, window)
    const rows = await billedToolCalls(metered, window)
    expect(rows.map((row) => row.on_behalf_of || null)).toEqual([null])
  })
})
