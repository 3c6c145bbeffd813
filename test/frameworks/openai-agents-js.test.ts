/**
 * The OpenAI Agents SDK for JavaScript, traced by OpenInference's
 * instrumentation as an application sets it up, metered by nhi-meter: a
 * triage agent that calls a local tool and a tool on an MCP server, then
 * hands off to a refunds agent that calls its own tool twice, all in one
 * trace. The model is a loopback stub (Responses API), and the SDK's own
 * trace export to OpenAI is replaced, so nothing leaves the machine.
 *
 * OpenInference names an agent only by its span (`openinference.span.kind`
 * AGENT, span name and `graph.node.id`), so the bill shows agents as
 * `agent:<service.name>/<agent name>`.
 */
import { setUser } from '@arizeai/openinference-core'
import { OpenAIAgentsInstrumentation } from '@arizeai/openinference-instrumentation-openai-agents'
import * as agents from '@openai/agents'
import { Agent, MCPServerStreamableHttp, OpenAIProvider, Runner, setTracingDisabled, tool } from '@openai/agents'
import { context, trace } from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { startMcpToolServer } from './mcp-fixture.js'
import { answer, callTools, scriptFromPlan, startOpenAiStub, type OpenAiStub } from './openai-stub.js'
import {
  ancestorsOf, billedToolCalls, expectedRows, guardNetwork, sampleArguments, shapes, startAppTracing, startMeteredService, traceContextFetch,
  traceContextMeta, waitForTraceResolution, windowSince, type AppTracing, type MeteredService, type NetworkGuard, type SpanShape, type Window,
} from './scenario.js'

const SERVICE = 'support-desk'
const PRINCIPAL = 'principal-alice'
const MCP_SERVER_ID = 'mcp-tool-server'
const MCP_CALLER_TOKEN = 'support-desk-mcp-token'
const TRIAGE = `agent:${SERVICE}/triage_agent`
const REFUNDS = `agent:${SERVICE}/refunds_agent`

let metered: MeteredService
let guard: NetworkGuard
let stub: OpenAiStub
let mcpServer: Awaited<ReturnType<typeof startMcpToolServer>>
let tracing: AppTracing
let window: Window
let mcpTool: string
let finalOutput: unknown
let lastAgent: string | undefined
let spans: SpanShape[]

beforeAll(async () => {
  guard = guardNetwork()
  metered = await startMeteredService()
  mcpServer = await startMcpToolServer({
    otlpUrl: metered.service.otlpUrl,
    otlpKey: metered.key,
    serviceName: 'mcp-tools',
    nhiId: MCP_SERVER_ID,
    callers: { [MCP_CALLER_TOKEN]: 'support-desk-client' },
  })
  tracing = startAppTracing({ serviceName: SERVICE, otlpUrl: metered.service.otlpUrl, key: metered.key })
  // Exclusive mode replaces the SDK's default processor, the one that uploads traces to api.openai.com.
  new OpenAIAgentsInstrumentation({ tracerProvider: tracing.provider }).manuallyInstrument(agents)
  // The SDK turns its tracing off when NODE_ENV is "test" (as under vitest); an application in production has it on.
  setTracingDisabled(false)

  const tools = new MCPServerStreamableHttp({
    url: mcpServer.url,
    name: 'mcp-tools',
    requestInit: { headers: { Authorization: `Bearer ${MCP_CALLER_TOKEN}` } },
    fetch: traceContextFetch,
    toolMetaResolver: () => traceContextMeta(),
  })
  await tools.connect()
  mcpTool = mcpServer.tools[0]!
  const mcpArguments = sampleArguments((await tools.listTools()).find((t) => t.name === mcpTool)?.inputSchema)

  stub = await startOpenAiStub(scriptFromPlan([
    {
      systemIncludes: 'You are the triage agent',
      turns: [
        callTools({ name: 'lookup_order', arguments: { order_id: 'A-1001' } }, { name: mcpTool, arguments: mcpArguments }),
        callTools({ name: 'transfer_to_refunds_agent', arguments: {} }),
      ],
    },
    {
      systemIncludes: 'You are the refunds agent',
      turns: [callTools({ name: 'issue_refund', arguments: { order_id: 'A-1001' } }, { name: 'issue_refund', arguments: { order_id: 'A-1002' } }), answer('Both orders refunded.')],
    },
  ]))

  const refunds = new Agent({
    name: 'refunds_agent',
    instructions: 'You are the refunds agent. Refund what the customer asks for.',
    tools: [tool({ name: 'issue_refund', description: 'Refunds an order.', parameters: z.object({ order_id: z.string() }), execute: async ({ order_id }) => `refunded ${order_id}` })],
  })
  const triage = new Agent({
    name: 'triage_agent',
    instructions: 'You are the triage agent. Look the order up, then hand refunds over.',
    tools: [tool({ name: 'lookup_order', description: 'Looks an order up.', parameters: z.object({ order_id: z.string() }), execute: async ({ order_id }) => `order ${order_id}: paid` })],
    mcpServers: [tools],
    handoffs: [refunds],
  })
  const runner = new Runner({
    workflowName: 'support request',
    model: 'stub-model',
    modelProvider: new OpenAIProvider({ baseURL: stub.baseURL, apiKey: 'sk-dummy-not-a-key' }),
  })

  const startedAt = new Date()
  // The application's own span around the run (an HTTP handler, a job) is what the trace context sent to
  // the MCP server comes from: OpenInference records the SDK's spans but does not make them active.
  const requestSpan = trace.getTracer('support-desk').startSpan('handle support request')
  const runContext = setUser(trace.setSpan(context.active(), requestSpan), { userId: PRINCIPAL })
  const result = await context.with(runContext, () => runner.run(triage, 'Please refund orders A-1001 and A-1002.'))
  requestSpan.end()
  finalOutput = result.finalOutput
  lastAgent = result.lastAgent?.name
  await tools.close()
  await tracing.shutdown()
  await mcpServer.close()
  window = windowSince(startedAt)
  spans = shapes(tracing.finished())
})

afterAll(async () => {
  guard?.restore()
  await stub?.close()
  await metered?.stop()
})

describe('the OpenAI Agents SDK (JS) metered by nhi-meter through OpenInference', () => {
  it('runs the triage agent and, after the handoff, the refunds agent against the loopback model, and nothing leaves the machine', () => {
    expect(finalOutput).toBe('Both orders refunded.')
    expect(lastAgent).toBe('refunds_agent')
    expect(stub.requests.map((r) => r.tools.slice().sort())).toEqual([
      ['lookup_order', ...mcpServer.tools, 'transfer_to_refunds_agent'].sort(),
      ['lookup_order', ...mcpServer.tools, 'transfer_to_refunds_agent'].sort(),
      ['issue_refund'],
      ['issue_refund'],
    ])
    expect(guard.refused).toEqual([])
  })

  it('sends every span the application made to the receiver, which accepts them all', () => {
    expect(tracing.exports.length).toBeGreaterThan(0)
    expect(tracing.exports.filter((e) => !e.ok)).toEqual([])
    expect(tracing.exports.reduce((sum, e) => sum + e.spans, 0)).toBe(spans.length)
  })

  it('emits one TOOL span per tool call under the AGENT span of the agent that called it, all in one trace with the user on every span', () => {
    const agentOf = (span: SpanShape) => ancestorsOf(span, spans).find((a) => a.attributes['openinference.span.kind'] === 'AGENT' && a.attributes['graph.node.id'] !== undefined)
    const toolCalls = spans
      .filter((s) => s.attributes['openinference.span.kind'] === 'TOOL' && s.name !== 'mcp_tools' && !s.name.startsWith('handoff to '))
      .map((s) => [s.attributes['tool.name'], agentOf(s)?.name, agentOf(s)?.attributes['graph.node.id']])
    expect(toolCalls.sort()).toEqual([
      ['issue_refund', 'refunds_agent', 'refunds_agent'],
      ['issue_refund', 'refunds_agent', 'refunds_agent'],
      ['lookup_order', 'triage_agent', 'triage_agent'],
      [mcpTool, 'triage_agent', 'triage_agent'],
    ].sort())
    const handoff = spans.find((s) => s.name === 'handoff to refunds_agent')
    expect(handoff?.attributes['tool.name']).toBe('handoff_to_refunds_agent')
    expect(spans.find((s) => s.name === 'refunds_agent')?.attributes['graph.node.parent_id']).toBe('triage_agent')
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1)
    for (const span of spans.filter((s) => s.name !== 'handle support request')) expect(span.attributes['user.id']).toBe(PRINCIPAL)
  })

  it('reports token usage on every model call', () => {
    const modelCalls = spans.filter((s) => s.attributes['openinference.span.kind'] === 'LLM')
    expect(modelCalls).toHaveLength(stub.requests.length)
    for (const call of modelCalls) {
      expect(call.attributes['llm.model_name']).toBe('stub-model')
      expect(call.attributes['llm.token_count.prompt']).toBeGreaterThan(0)
      expect(call.attributes['llm.token_count.completion']).toBeGreaterThan(0)
    }
  })

  it('bills each tool call once, to the agent that made it, on behalf of the user, including the call served over MCP', async () => {
    await waitForTraceResolution(metered, window)
    expect(await billedToolCalls(metered, window)).toEqual(expectedRows([
      { agent: TRIAGE, tool: 'lookup_order', principal: PRINCIPAL, calls: 1 },
      { agent: TRIAGE, tool: mcpTool, principal: PRINCIPAL, calls: 1 },
      { agent: REFUNDS, tool: 'issue_refund', principal: PRINCIPAL, calls: 2 },
    ]))
  })

  it('bills neither the handoff between the agents nor the listing of MCP tools as a tool call', async () => {
    await waitForTraceResolution(metered, window)
    const names = (await billedToolCalls(metered, window)).map((row) => row['activity.name'])
    expect(names).not.toContain('handoff_to_refunds_agent')
    expect(names).not.toContain('handoff to refunds_agent')
    expect(names).not.toContain('transfer_to_refunds_agent')
    expect(names).not.toContain('mcp_tools')
  })

  it('never bills the MCP server for the calls it served', async () => {
    await waitForTraceResolution(metered, window)
    const identities = (await billedToolCalls(metered, window)).map((row) => row['nhi.id'])
    expect(identities).not.toContain(MCP_SERVER_ID)
    expect(identities).not.toContain('support-desk-client')
  })
})
