import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { fingerprintCredential } from '../src/fingerprint.js'
import { NhiIdentitySpanProcessor } from '../src/identity-span-processor.js'
import { instrumentMcpServer, type McpServerInstrumentationOptions } from '../src/mcp-server.js'
import { REDACTED_VALUE } from '../src/redaction.js'
import { captureDiag, exportedStrings } from './helpers.js'

// No redacting exporter here: what reaches the exporter is exactly what the instrumentation put on the span.
const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'mcp-tools', 'nhi.id': 'mcp-tools-server' }),
  spanProcessors: [new NhiIdentitySpanProcessor(), new SimpleSpanProcessor(exporter)],
})
const tracer = provider.getTracer('test-agent')
const w3c = new W3CTraceContextPropagator()

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
})
afterAll(async () => {
  await provider.shutdown()
  context.disable()
})
afterEach(() => exporter.reset())

/** An McpServer with a few tools; `lookup_order` starts a span of its own inside the call. */
function toolServer(): McpServer {
  const server = new McpServer({ name: 'test-tools', version: '1.0.0' })
  server.registerTool('get_weather', { inputSchema: { city: z.string() } }, ({ city }) => ({ content: [{ type: 'text', text: `sunny in ${city}` }] }))
  server.registerTool('lookup_order', { inputSchema: { order_id: z.string() } }, ({ order_id }) => {
    tracer.startSpan('orders.select').end()
    return { content: [{ type: 'text', text: `order ${order_id}: shipped` }] }
  })
  server.registerTool('refund_order', { inputSchema: { order_id: z.string() } }, () => {
    throw new Error('refunds are closed')
  })
  return server
}

interface Connected {
  client: Client
  /** JSON-RPC ids of the tools/call requests the client sent, in order. */
  toolCallIds: Array<string | number>
  close(): Promise<void>
}

/** Connects a client over the SDK's in-memory transport; every message it sends carries `authInfo` when given. */
async function connectInMemory(server: McpServer | Server, authInfo?: AuthInfo): Promise<Connected> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  const toolCallIds: Array<string | number> = []
  const send = clientSide.send.bind(clientSide)
  clientSide.send = (message, options) => {
    if ('method' in message && message.method === 'tools/call' && 'id' in message) toolCallIds.push(message.id)
    return send(message, { ...options, authInfo })
  }
  await server.connect(serverSide)
  const client = new Client({ name: 'test-agent', version: '1.0.0' })
  await client.connect(clientSide)
  return { client, toolCallIds, close: () => client.close() }
}

function spansNamed(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name)
}

function onlySpan(name: string): ReadableSpan {
  const found = spansNamed(name)
  expect(found, exporter.getFinishedSpans().map((s) => s.name).join(', ')).toHaveLength(1)
  return found[0]!
}

function traceparentOf(span: Span): { traceparent: string; tracestate?: string } {
  const carrier: Record<string, string> = {}
  w3c.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => (c[k] = v) })
  return carrier as { traceparent: string }
}

const options: McpServerInstrumentationOptions = { tracerProvider: provider }

describe('instrumentMcpServer', () => {
  it('makes each tool call a SERVER span named after the tool, with the GenAI and MCP attributes', async () => {
    const server = instrumentMcpServer(toolServer(), options)
    const { client, toolCallIds, close } = await connectInMemory(server)
    await client.listTools()
    const result = await client.callTool({ name: 'get_weather', arguments: { city: 'Lisbon' } })
    await close()

    expect(result.content).toEqual([{ type: 'text', text: 'sunny in Lisbon' }])
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['execute_tool get_weather'])
    const span = onlySpan('execute_tool get_weather')
    expect(span.kind).toBe(SpanKind.SERVER)
    expect(span.status.code).toBe(SpanStatusCode.UNSET)
    expect(span.attributes).toEqual({
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'get_weather',
      'mcp.method.name': 'tools/call',
      'jsonrpc.request.id': String(toolCallIds[0]),
      'nhi.activity.type': 'tool_invocation',
      'nhi.activity.name': 'get_weather',
    })
    expect(span.instrumentationScope.name).toBe('@nhi-meter/instrumentation')
  })

  it('joins the calling agent’s trace through params._meta traceparent and tracestate, and reads the tool call id there', async () => {
    const server = instrumentMcpServer(toolServer(), options)
    const { client, close } = await connectInMemory(server)
    // Not made active: the server can only learn its parent from _meta.
    const clientSpan = tracer.startSpan('execute_tool get_weather', { kind: SpanKind.CLIENT })
    const meta = { ...traceparentOf(clientSpan), tracestate: 'vendor=abc', 'gen_ai.tool.call.id': 'call_7' }
    await context.with(ROOT_CONTEXT, () => client.callTool({ name: 'get_weather', arguments: { city: 'Oslo' }, _meta: meta }))
    clientSpan.end()
    await close()

    const span = spansNamed('execute_tool get_weather').find((s) => s.kind === SpanKind.SERVER)!
    expect(span.spanContext().traceId).toBe(clientSpan.spanContext().traceId)
    expect(span.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId)
    expect(span.parentSpanContext?.isRemote).toBe(true)
    expect(span.spanContext().traceState?.get('vendor')).toBe('abc')
    expect(span.attributes['gen_ai.tool.call.id']).toBe('call_7')
    expect(span.links).toEqual([])
  })

  it('names the caller from the auth info: nhi.id and enduser.id are the OAuth client id, and the token appears only as its fingerprint', async () => {
    const token = 'opaque-token-of-agent-7-' + 'x'.repeat(20)
    const server = instrumentMcpServer(toolServer(), options)
    const { client, close } = await connectInMemory(server, { token, clientId: 'agent-7', scopes: ['orders:read'] })
    await client.callTool({ name: 'lookup_order', arguments: { order_id: 'A-1' } })
    await close()

    const span = onlySpan('execute_tool lookup_order')
    expect(span.attributes).toMatchObject({
      'nhi.id': 'agent-7',
      'nhi.type': 'ai_agent',
      'enduser.id': 'agent-7',
      'nhi.credential.id': fingerprintCredential(token),
    })
    // The tool's own span is a child of the call and acts for the same caller.
    const inner = onlySpan('orders.select')
    expect(inner.parentSpanContext?.spanId).toBe(span.spanContext().spanId)
    expect(inner.attributes['nhi.id']).toBe('agent-7')
    for (const s of exporter.getFinishedSpans()) expect(exportedStrings(s).join('\n')).not.toContain(token)
  })

  it('maps auth info through identityFromAuth, and falls back to the OAuth client id when the callback throws, reporting it through diag', async () => {
    const diag = captureDiag()
    try {
      const server = instrumentMcpServer(toolServer(), {
        ...options,
        nhiType: 'integration',
        identityFromAuth: (auth, call) => {
          if (call.toolName === 'lookup_order') throw new Error('directory unavailable')
          return { id: `partner:${auth.clientId}`, owner: 'team-partners', businessUnit: 'sales' }
        },
      })
      const { client, close } = await connectInMemory(server, { token: 't-123456789', clientId: 'acme-bot', scopes: [] })
      await client.callTool({ name: 'get_weather', arguments: { city: 'Rome' } })
      const answer = await client.callTool({ name: 'lookup_order', arguments: { order_id: 'B-2' } })
      await close()

      expect(answer.isError).toBeFalsy()
      expect(onlySpan('execute_tool get_weather').attributes).toMatchObject({
        'nhi.id': 'partner:acme-bot',
        'nhi.type': 'integration',
        'nhi.owner': 'team-partners',
        'nhi.business_unit': 'sales',
        'enduser.id': 'partner:acme-bot',
      })
      expect(onlySpan('execute_tool lookup_order').attributes).toMatchObject({ 'nhi.id': 'acme-bot', 'nhi.type': 'integration' })
      expect(diag.errors.join('\n')).toMatch(/identityFromAuth.*directory unavailable/s)
    } finally {
      diag.stop()
    }
  })

  it('never puts the bearer token or secret-looking arguments on a span, even when arguments are recorded', async () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJjbGllbnRfaWQiOiJhZ2VudC05In0.c2lnbmF0dXJl'
    const apiKey = 'sk_live_' + 'Z9y'.repeat(8)
    const server = new McpServer({ name: 'test-tools', version: '1.0.0' })
    server.registerTool('send_mail', { inputSchema: { to: z.string(), api_key: z.string(), note: z.string(), nested: z.object({ password: z.string() }) } }, ({ note }) => {
      throw new Error(`mail relay refused ${note}`)
    })
    instrumentMcpServer(server, { ...options, recordArguments: true })
    // A client id that is itself a credential (some servers use the token as the id) is redacted too.
    const { client, close } = await connectInMemory(server, { token: jwt, clientId: jwt, scopes: [] })
    await client.callTool({ name: 'send_mail', arguments: { to: 'ops@example.com', api_key: apiKey, note: `Bearer ${apiKey}`, nested: { password: 'hunter2hunter2' } } })
    await close()

    const span = onlySpan('execute_tool send_mail')
    expect(JSON.parse(span.attributes['gen_ai.tool.call.arguments'] as string)).toEqual({ to: 'ops@example.com', note: REDACTED_VALUE, nested: {} })
    expect(span.attributes['nhi.id']).toBe(REDACTED_VALUE)
    const everything = exportedStrings(span).join('\n')
    for (const secret of [jwt, apiKey, 'hunter2hunter2']) expect(everything).not.toContain(secret)
  })

  it('records no arguments by default', async () => {
    const server = instrumentMcpServer(toolServer(), options)
    const { client, close } = await connectInMemory(server)
    await client.callTool({ name: 'get_weather', arguments: { city: 'Private Street 1' } })
    await close()
    expect(exportedStrings(onlySpan('execute_tool get_weather')).join('\n')).not.toContain('Private Street 1')
  })

  it('marks a tool that fails as an error: tool_error for an isError result, the JSON-RPC code for a thrown error', async () => {
    const high = instrumentMcpServer(toolServer(), options)
    const highLevel = await connectInMemory(high)
    const refused = await highLevel.client.callTool({ name: 'refund_order', arguments: { order_id: 'C-3' } })
    await highLevel.close()
    expect(refused.isError).toBe(true)
    const toolError = onlySpan('execute_tool refund_order')
    expect(toolError.status.code).toBe(SpanStatusCode.ERROR)
    expect(toolError.attributes['error.type']).toBe('tool_error')

    // The low-level Server, with its handler registered after instrumentation.
    const low = instrumentMcpServer(new Server({ name: 'low', version: '1.0.0' }, { capabilities: { tools: {} } }), options)
    low.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [] }))
    low.setRequestHandler(CallToolRequestSchema, (request) => {
      if (request.params.name === 'bad_params') throw new McpError(ErrorCode.InvalidParams, 'order_id is required')
      throw new Error('database down')
    })
    const lowLevel = await connectInMemory(low)
    await expect(lowLevel.client.callTool({ name: 'bad_params', arguments: {} })).rejects.toThrow(/order_id is required/)
    await expect(lowLevel.client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/database down/)
    await lowLevel.close()

    expect(onlySpan('execute_tool bad_params')).toMatchObject({
      status: { code: SpanStatusCode.ERROR, message: 'MCP error -32602: order_id is required' },
      attributes: expect.objectContaining({ 'error.type': '-32602', 'rpc.response.status_code': '-32602' }),
    })
    const crash = onlySpan('execute_tool crash')
    expect(crash.attributes).toMatchObject({ 'error.type': '-32603', 'rpc.response.status_code': '-32603' })
    expect(crash.events.map((e) => e.attributes?.['exception.message'])).toEqual(['database down'])
  })

  it('traces tools registered after instrumentation, once per call even when instrumented twice', async () => {
    const server = new McpServer({ name: 'late', version: '1.0.0' })
    instrumentMcpServer(server, options)
    instrumentMcpServer(server, options)
    server.registerTool('ping_tool', {}, () => ({ content: [{ type: 'text', text: 'pong' }] }))
    const { client, close } = await connectInMemory(server)
    await client.callTool({ name: 'ping_tool', arguments: {} })
    await client.callTool({ name: 'ping_tool', arguments: {} })
    await close()
    expect(spansNamed('execute_tool ping_tool')).toHaveLength(2)
  })

  it('leaves something that is not an MCP server untouched and says so through diag', () => {
    const diag = captureDiag()
    try {
      const notAServer = { name: 'nope' }
      expect(instrumentMcpServer(notAServer, options)).toBe(notAServer)
      expect(instrumentMcpServer(undefined, options)).toBeUndefined()
      expect(diag.warnings.join('\n')).toMatch(/not an MCP McpServer or Server/)
    } finally {
      diag.stop()
    }
  })
})

describe('instrumentMcpServer over Streamable HTTP', () => {
  let http: HttpServer
  let url: URL
  const transports = new Map<string, StreamableHTTPServerTransport>()

  beforeAll(async () => {
    // A stateful server, one McpServer per session; the bearer token names the caller as requireBearerAuth would.
    http = createServer(async (req: IncomingMessage & { auth?: AuthInfo }, res) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      if (token) req.auth = { token, clientId: `client-of-${token.slice(0, 6)}`, scopes: [] }
      const sessionId = req.headers['mcp-session-id'] as string | undefined
      let transport = sessionId ? transports.get(sessionId) : undefined
      if (!transport) {
        const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (id) => void transports.set(id, created) })
        transport = created
        await instrumentMcpServer(toolServer(), options).connect(transport)
      }
      await transport.handleRequest(req, res)
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`)
  })

  afterAll(async () => {
    for (const transport of transports.values()) await transport.close()
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  })

  async function connectHttp(headers: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } })
    const client = new Client({ name: 'http-agent', version: '1.0.0' })
    await client.connect(transport)
    return { client, transport }
  }

  it('takes the parent from the HTTP traceparent header when _meta carries none, with the session id and the caller', async () => {
    const agentSpan = tracer.startSpan('invoke_agent planner')
    const token = 'tok-abc-0123456789abcdef'
    const { client, transport } = await connectHttp({ ...traceparentOf(agentSpan), authorization: `Bearer ${token}` })
    await context.with(ROOT_CONTEXT, () => client.callTool({ name: 'get_weather', arguments: { city: 'Porto' } }))
    const sessionId = transport.sessionId
    await client.close()
    agentSpan.end()

    const span = onlySpan('execute_tool get_weather')
    expect(span.spanContext().traceId).toBe(agentSpan.spanContext().traceId)
    expect(span.parentSpanContext?.spanId).toBe(agentSpan.spanContext().spanId)
    expect(span.attributes).toMatchObject({
      'mcp.session.id': sessionId,
      'mcp.protocol.version': expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/),
      'network.transport': 'tcp',
      'network.protocol.name': 'http',
      'nhi.id': 'client-of-tok-ab',
      'enduser.id': 'client-of-tok-ab',
    })
    expect(exportedStrings(span).join('\n')).not.toContain(token)
  })

  it('prefers params._meta over the HTTP header when both carry a trace context', async () => {
    const httpSpan = tracer.startSpan('POST /mcp')
    const toolSpan = tracer.startSpan('execute_tool get_weather', { kind: SpanKind.CLIENT })
    const { client } = await connectHttp(traceparentOf(httpSpan))
    await context.with(ROOT_CONTEXT, () => client.callTool({ name: 'get_weather', arguments: { city: 'Faro' }, _meta: traceparentOf(toolSpan) }))
    await client.close()
    httpSpan.end()
    toolSpan.end()

    const span = spansNamed('execute_tool get_weather').find((s) => s.kind === SpanKind.SERVER)!
    expect(span.parentSpanContext?.spanId).toBe(toolSpan.spanContext().spanId)
    expect(span.spanContext().traceId).toBe(toolSpan.spanContext().traceId)
  })
})
