/**
 * The Vercel AI SDK 6, as an application uses it, metered by nhi-meter: two
 * `ToolLoopAgent`s with telemetry on, a planner whose tool hands a question
 * to a researcher inside the same trace, and one tool served over MCP. The
 * spans go through a real NodeTracerProvider and OTLP/protobuf exporter to
 * the product's receiver; the model is a loopback stub, so nothing leaves
 * the machine.
 *
 * The SDK names no agent on its spans beyond `ai.telemetry.functionId`, so
 * each agent's function id is its name, and the bill shows it as
 * `agent:<service.name>/<function id>`.
 */
import { createMCPClient, type MCPClient } from '@ai-sdk/mcp'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { ToolLoopAgent, tool, type ToolSet } from 'ai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { startMcpToolServer } from './mcp-fixture.js'
import { answer, callTools, scriptFromPlan, startOpenAiStub, type OpenAiStub } from './openai-stub.js'
import {
  ancestorsOf, ancestry, billedToolCalls, expectedRows, guardNetwork, sampleArguments, shapes, startAppTracing, startMeteredService, traceContextFetch,
  waitForTraceResolution, windowSince, type AppTracing, type MeteredService, type NetworkGuard, type SpanShape, type Window,
} from './scenario.js'

const SERVICE = 'research-desk'
const PRINCIPAL = 'principal-bob'
const MCP_SERVER_ID = 'mcp-tool-server'
const MCP_CALLER_TOKEN = 'research-desk-mcp-token'
const PLANNER = `agent:${SERVICE}/planner`
const RESEARCHER = `agent:${SERVICE}/researcher`

let metered: MeteredService
let guard: NetworkGuard
let stub: OpenAiStub
let mcpServer: Awaited<ReturnType<typeof startMcpToolServer>>
let mcpClient: MCPClient
let tracing: AppTracing
let window: Window
let mcpTool: string
let finalText: string
let spans: SpanShape[]

/** The telemetry settings an application passes: on, named after the agent, with the user it serves. */
function telemetryFor(agentName: string) {
  return { isEnabled: true, functionId: agentName, metadata: { userId: PRINCIPAL } }
}

beforeAll(async () => {
  guard = guardNetwork()
  metered = await startMeteredService()
  mcpServer = await startMcpToolServer({
    otlpUrl: metered.service.otlpUrl,
    otlpKey: metered.key,
    serviceName: 'mcp-tools',
    nhiId: MCP_SERVER_ID,
    callers: { [MCP_CALLER_TOKEN]: 'research-desk-client' },
  })
  tracing = startAppTracing({ serviceName: SERVICE, otlpUrl: metered.service.otlpUrl, key: metered.key })
  mcpClient = await createMCPClient({
    transport: { type: 'http', url: mcpServer.url, headers: { Authorization: `Bearer ${MCP_CALLER_TOKEN}` }, fetch: traceContextFetch },
  })
  mcpTool = mcpServer.tools[0]!
  const listed = await mcpClient.listTools()
  const mcpArguments = sampleArguments(listed.tools.find((t) => t.name === mcpTool)?.inputSchema)
  const mcpTools = (await mcpClient.tools()) as ToolSet

  stub = await startOpenAiStub(scriptFromPlan([
    {
      systemIncludes: 'You are the planner',
      turns: [
        callTools({ name: 'search_docs', arguments: { query: 'licence terms' } }, { name: mcpTool, arguments: mcpArguments }, { name: 'ask_researcher', arguments: { question: 'Which papers cover metering?' } }),
        answer('Plan: cite the two papers.'),
      ],
    },
    {
      systemIncludes: 'You are the researcher',
      turns: [callTools({ name: 'fetch_paper', arguments: { id: 'p-1' } }, { name: 'fetch_paper', arguments: { id: 'p-2' } }), answer('Two papers found.')],
    },
  ]))
  const model = createOpenAICompatible({ name: 'stub', baseURL: stub.baseURL, apiKey: 'sk-dummy-not-a-key', includeUsage: true }).chatModel('stub-model')

  const researcher = new ToolLoopAgent({
    id: 'researcher',
    model,
    instructions: 'You are the researcher. Fetch the papers you need.',
    tools: { fetch_paper: tool({ description: 'Fetches a paper by id.', inputSchema: z.object({ id: z.string() }), execute: async ({ id }) => `text of ${id}` }) },
    experimental_telemetry: telemetryFor('researcher'),
  })
  const planner = new ToolLoopAgent({
    id: 'planner',
    model,
    instructions: 'You are the planner. Search, ask the researcher, then plan.',
    tools: {
      search_docs: tool({ description: 'Searches the docs.', inputSchema: z.object({ query: z.string() }), execute: async ({ query }) => `results for ${query}` }),
      // The researcher runs inside this tool call, so its spans are in the planner's trace: an in-process handoff.
      ask_researcher: tool({
        description: 'Asks the researcher agent.',
        inputSchema: z.object({ question: z.string() }),
        execute: async ({ question }) => (await researcher.generate({ prompt: question })).text,
      }),
      [mcpTool]: mcpTools[mcpTool]!,
    },
    experimental_telemetry: telemetryFor('planner'),
  })

  const startedAt = new Date()
  // Streamed, while the researcher answers in one piece: both transports of the SDK are covered.
  const result = await planner.stream({ prompt: 'Plan a licence review.' })
  finalText = await result.text
  await mcpClient.close()
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

describe('the Vercel AI SDK metered by nhi-meter', () => {
  it('runs both agents to their answer against the loopback model, and nothing leaves the machine', () => {
    expect(finalText).toBe('Plan: cite the two papers.')
    expect(stub.requests.map((r) => r.tools.slice().sort())).toEqual([
      ['ask_researcher', mcpTool, 'search_docs'].sort(),
      ['fetch_paper'],
      ['fetch_paper'],
      ['ask_researcher', mcpTool, 'search_docs'].sort(),
    ])
    expect(guard.refused).toEqual([])
  })

  it('sends every span the application made to the receiver, which accepts them all', () => {
    expect(tracing.exports.length).toBeGreaterThan(0)
    expect(tracing.exports.filter((e) => !e.ok)).toEqual([])
    expect(tracing.exports.reduce((sum, e) => sum + e.spans, 0)).toBe(spans.length)
  })

  it('emits one ai.toolCall span per tool call, named by ai.toolCall.name and carrying the calling agent and the user', () => {
    const toolSpans = spans.filter((s) => s.name === 'ai.toolCall')
    const calls = toolSpans.map((s) => [s.attributes['ai.toolCall.name'], s.attributes['ai.telemetry.functionId'], s.attributes['ai.telemetry.metadata.userId']])
    expect(calls.sort()).toEqual([
      ['ask_researcher', 'planner', PRINCIPAL],
      ['fetch_paper', 'researcher', PRINCIPAL],
      ['fetch_paper', 'researcher', PRINCIPAL],
      [mcpTool, 'planner', PRINCIPAL],
      ['search_docs', 'planner', PRINCIPAL],
    ].sort())
    expect(new Set(toolSpans.map((s) => s.attributes['ai.toolCall.id'])).size).toBe(5)
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1)
    // The handoff: the researcher's calls sit under the planner's ask_researcher call.
    const askResearcher = toolSpans.find((s) => s.attributes['ai.toolCall.name'] === 'ask_researcher')!
    for (const fetchPaper of toolSpans.filter((s) => s.attributes['ai.toolCall.name'] === 'fetch_paper')) {
      const [run, caller] = ancestorsOf(fetchPaper, spans)
      expect([run?.name, run?.attributes['ai.telemetry.functionId']]).toEqual(['ai.generateText', 'researcher'])
      expect(caller?.spanId).toBe(askResearcher.spanId)
      expect(ancestry(fetchPaper, spans).at(-1)).toBe('ai.streamText')
    }
  })

  it('reports token usage on every model call', () => {
    const modelCalls = spans.filter((s) => s.name === 'ai.streamText.doStream' || s.name === 'ai.generateText.doGenerate')
    expect(modelCalls).toHaveLength(stub.requests.length)
    for (const call of modelCalls) {
      expect(call.attributes['gen_ai.request.model']).toBe('stub-model')
      expect(call.attributes['gen_ai.usage.input_tokens']).toBeGreaterThan(0)
      expect(call.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0)
    }
  })

  it('bills each tool call once, to the agent that made it, on behalf of the user, including the call served over MCP', async () => {
    await waitForTraceResolution(metered, window)
    expect(await billedToolCalls(metered, window)).toEqual(expectedRows([
      { agent: PLANNER, tool: 'search_docs', principal: PRINCIPAL, calls: 1 },
      { agent: PLANNER, tool: 'ask_researcher', principal: PRINCIPAL, calls: 1 },
      { agent: PLANNER, tool: mcpTool, principal: PRINCIPAL, calls: 1 },
      { agent: RESEARCHER, tool: 'fetch_paper', principal: PRINCIPAL, calls: 2 },
    ]))
  })

  it('never bills the MCP server for the calls it served', async () => {
    await waitForTraceResolution(metered, window)
    const identities = (await billedToolCalls(metered, window)).map((row) => row['nhi.id'])
    expect(identities).not.toContain(MCP_SERVER_ID)
    expect(identities).not.toContain('research-desk-client')
  })
})
