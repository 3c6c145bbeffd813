/**
 * Real Python agent frameworks, run offline against the real service: the
 * OpenAI Agents SDK traced by the OpenTelemetry GenAI instrumentation and by
 * OpenInference's, and traceloop-sdk (OpenLLMetry) with its own exporter.
 * Each runs the same support desk (test/frameworks/python/): a triage agent
 * that looks customers up and hands off to a billing agent, which issues a
 * refund and calls two tools on an MCP server, all for one user. The model is
 * the loopback OpenAI stub; the MCP server is the fixture, with its own
 * identity and tracing. The bill must show each tool call once, on the agent
 * that made it, on behalf of the user: never on the MCP server, the OAuth
 * client it saw, or a placeholder agent id.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SpanKind } from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hardeningTools } from '../helpers/tools.js'
import { startMcpToolServer } from './mcp-fixture.js'
import { startRecordingRelay, type ExportedSpan, type RecordingRelay } from './otlp-relay.js'
import { answer, callTools, scriptFromPlan, startOpenAiStub, type AgentPlan, type StubToolCall } from './openai-stub.js'
import {
  ancestorsOf, billedToolCalls, expectedRows, outline, startMeteredService, waitForTraceResolution,
  type MeteredService, type SpanShape, type Window,
} from './scenario.js'

const tools = hardeningTools()
const SCRIPTS = fileURLToPath(new URL('./python/', import.meta.url))
const MCP_SERVER_ID = 'mcp-tools-server'
const TRIAGE = 'triage_agent'
const BILLING = 'billing_agent'

/** The tools the MCP fixture serves that the billing agent calls, one model turn each. */
const MCP_CALLS: StubToolCall[] = [
  { name: 'lookup_invoice', arguments: { invoice_id: 'INV-7' } },
  { name: 'convert_currency', arguments: { amount: 40, from: 'EUR', to: 'USD' } },
]

/** What the scripted model has each agent do: N = 5 tool calls (2 by triage, 3 by billing) and one handoff. */
function supportDeskPlan(): AgentPlan[] {
  return [
    {
      systemIncludes: `You are ${TRIAGE}`,
      turns: [
        callTools({ name: 'lookup_customer', arguments: { customer_id: 'c-1' } }, { name: 'lookup_customer', arguments: { customer_id: 'c-2' } }),
        callTools({ name: `transfer_to_${BILLING}`, arguments: {} }),
      ],
    },
    {
      systemIncludes: `You are ${BILLING}`,
      turns: [
        callTools({ name: 'issue_refund', arguments: { customer_id: 'c-1', amount: '10.00' } }, MCP_CALLS[0]!),
        callTools(MCP_CALLS[1]!),
        answer('Refunded 10.00 to c-1; invoice INV-7 is paid.'),
      ],
    },
  ]
}

/** Each agent's tool calls, as the plan makes them. */
const PLANNED_CALLS: Array<[agent: string, tool: string]> = [
  [TRIAGE, 'lookup_customer'],
  [TRIAGE, 'lookup_customer'],
  [BILLING, 'issue_refund'],
  [BILLING, MCP_CALLS[0]!.name],
  [BILLING, MCP_CALLS[1]!.name],
]

/** A span as a Python script recorded it (scenario_common.span_record). */
interface PythonSpan extends SpanShape {
  status: string
  scope: string | null
  resource: Record<string, unknown>
}

/** A tool call as the trace tells it: the tool span, its tool, and the agent the framework's markers put it under. */
interface TracedToolCall { span: PythonSpan; tool: string; agent: string | undefined }

/** One framework's way of marking agents, tools and the principal. */
interface Framework {
  title: string
  script: string
  service: string
  principal: string
  /** Tool spans and the agent each belongs to, read the way this framework marks them. */
  toolCalls(spans: PythonSpan[]): TracedToolCall[]
  /** The spans that carry the principal, and the attribute they carry it in. */
  principalAttribute: string
  principalSpans(spans: PythonSpan[]): PythonSpan[]
  /** The OpenAI Agents SDK's trace processors after set-up: the bridge alone, never the SDK's upload to the OpenAI platform. */
  agentsTraceProcessors?: string[]
}

const str = (value: unknown) => (typeof value === 'string' ? value : undefined)

/** The nearest ancestor matching `test`, or undefined. */
function nearest(span: PythonSpan, spans: PythonSpan[], test: (s: PythonSpan) => boolean): PythonSpan | undefined {
  return (ancestorsOf(span, spans) as PythonSpan[]).find(test)
}

const FRAMEWORKS: Framework[] = [
  {
    title: 'the OpenAI Agents SDK with the OpenTelemetry GenAI instrumentation',
    script: 'openai_agents_genai.py',
    service: 'support-genai',
    principal: 'user-ada',
    toolCalls: (spans) =>
      spans
        .filter((s) => s.attributes['gen_ai.operation.name'] === 'execute_tool')
        .map((span) => ({
          span,
          tool: String(span.attributes['gen_ai.tool.name']),
          // The tool span itself says gen_ai.agent.name "OpenAI Agent" (the instrumentation's default); the agent is on invoke_agent.
          agent: str(nearest(span, spans, (s) => s.attributes['gen_ai.operation.name'] === 'invoke_agent' && s.name.startsWith('invoke_agent '))?.attributes['gen_ai.agent.name']),
        })),
    principalAttribute: 'user.id',
    principalSpans: (spans) => spans.filter((s) => s.name === 'support_request' && s.parentSpanId === undefined),
    agentsTraceProcessors: ['GenAISemanticProcessor'],
  },
  {
    title: "the OpenAI Agents SDK with OpenInference's instrumentation",
    script: 'openai_agents_openinference.py',
    service: 'support-openinference',
    principal: 'user-grace',
    toolCalls: (spans) =>
      spans
        .filter((s) => s.attributes['openinference.span.kind'] === 'TOOL' && s.attributes['tool.name'] !== undefined)
        .map((span) => ({
          span,
          tool: String(span.attributes['tool.name']),
          agent: str(nearest(span, spans, (s) => s.attributes['openinference.span.kind'] === 'AGENT' && s.attributes['agent.name'] !== undefined)?.attributes['agent.name']),
        })),
    principalAttribute: 'user.id',
    principalSpans: (spans) => spans.filter((s) => s.attributes['openinference.span.kind'] === 'TOOL'),
    agentsTraceProcessors: ['OpenInferenceTracingProcessor'],
  },
  {
    title: 'traceloop-sdk with agent and tool decorators',
    script: 'traceloop_agents.py',
    service: 'support-traceloop',
    principal: 'user-linus',
    toolCalls: (spans) =>
      spans
        .filter((s) => s.attributes['traceloop.span.kind'] === 'tool')
        .map((span) => ({
          span,
          tool: String(span.attributes['gen_ai.tool.name']),
          agent: str(nearest(span, spans, (s) => s.attributes['traceloop.span.kind'] === 'agent')?.attributes['traceloop.entity.name']),
        })),
    principalAttribute: 'traceloop.association.properties.user_id',
    principalSpans: (spans) => spans.filter((s) => s.attributes['traceloop.span.kind'] === 'tool' || s.attributes['traceloop.span.kind'] === 'workflow'),
  },
]

/** What a scenario script printed as its last line. */
interface Summary {
  scenario: string
  tool_calls?: Record<string, Array<{ tool: string; call_id: string }>>
  handoffs?: Array<{ from: string; to: string }>
  refused_connections: string[]
  spans_finished?: number
  spans_exported?: number
  spans_failed?: number
  trace_ids?: string[]
  agents_trace_processors?: string[]
  error?: string
}

/** Runs a scenario script with the venv's Python; kills it after `timeoutMs` (the script's own watchdog fires first). */
function runPython(script: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', TRACELOOP_TELEMETRY: 'false' }
  for (const name of ['OPENAI_AGENTS_DISABLE_TRACING', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS', 'TRACELOOP_BASE_URL', 'TRACELOOP_API_KEY']) delete env[name]
  return new Promise((resolve, reject) => {
    const child = spawn(tools.python!, [join(SCRIPTS, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** The (agent, tool) pairs, sorted, so two accounts of the same calls compare equal. */
const sortedPairs = (pairs: Array<[string | undefined, string]>) => pairs.map(([agent, tool]) => `${agent} → ${tool}`).sort()

let metered: MeteredService
let relay: RecordingRelay

beforeAll(async () => {
  if (tools.skipReason) return
  metered = await startMeteredService()
  relay = await startRecordingRelay(metered.service.otlpUrl)
}, 60_000)

afterAll(async () => {
  await relay?.close()
  await metered?.stop()
})

// Without Python (never under CI=true, where hardeningTools() throws) the suites below skip; say why once.
if (tools.skipReason) console.warn(`test/frameworks/python-frameworks.test.ts: skipped, ${tools.skipReason}`)

for (const framework of FRAMEWORKS) {
  describe.skipIf(tools.skipReason !== undefined)(`${framework.title}, run offline`, () => {
    const oauthClient = `${framework.service}-client`
    const mcpToken = `${framework.service}-mcp-token`
    const agentId = (agent: string) => `agent:${framework.service}/${agent}`
    let run: { code: number | null; stdout: string; stderr: string }
    let summary: Summary
    let spans: PythonSpan[]
    let serverSpans: ExportedSpan[]
    let stubRequests: number
    let window: Window

    /** Everything a failed assertion needs to be understood. */
    const context = () => `${framework.script} exited ${run.code}\n--- stderr ---\n${run.stderr.slice(-6000)}\n--- spans ---\n${outline(spans ?? [], (key) => /^(gen_ai\.(agent|tool|operation)|openinference\.span\.kind|agent\.name|tool\.name|traceloop\.(span\.kind|entity\.name)|mcp\.method\.name|user\.id)/.test(key))}`

    beforeAll(async () => {
      const stub = await startOpenAiStub(scriptFromPlan(supportDeskPlan()))
      const mcp = await startMcpToolServer({ otlpUrl: relay.url, otlpKey: metered.key, serviceName: 'mcp-tools', nhiId: MCP_SERVER_ID, callers: { [mcpToken]: oauthClient } })
      const spansDir = mkdtempSync(join(tmpdir(), 'nhi-meter-python-spans-'))
      const spansOut = join(spansDir, 'spans.json')
      const startedAt = new Date()
      relay.spans.length = 0
      try {
        run = await runPython(framework.script, [
          '--openai-base-url', stub.baseURL,
          '--otlp-url', metered.service.otlpUrl,
          '--key', metered.key,
          '--mcp-url', mcp.url,
          '--mcp-token', mcpToken,
          '--user', framework.principal,
          '--service', framework.service,
          '--spans-out', spansOut,
        ])
      } finally {
        stubRequests = stub.requests.length
        await mcp.close()
        await stub.close()
      }
      window = { from: startedAt.toISOString(), to: new Date(Date.now() + 1).toISOString() }
      const lastLine = run.stdout.trim().split('\n').at(-1) ?? ''
      try {
        summary = JSON.parse(lastLine) as Summary
      } catch {
        throw new Error(`${framework.script} printed no JSON summary (exit ${run.code}):\n${run.stdout}\n${run.stderr}`)
      }
      // Python writes a root's parent as null; SpanShape says undefined.
      spans = run.code === 0 ? (JSON.parse(readFileSync(spansOut, 'utf8')) as PythonSpan[]).map((s) => ({ ...s, parentSpanId: s.parentSpanId ?? undefined })) : []
      rmSync(spansDir, { recursive: true, force: true })
      serverSpans = relay.spans.filter((s) => s.resource['service.name'] === 'mcp-tools')
    }, 150_000)

    it('runs the support desk to the end, offline: five tool calls by two agents, one handoff, nothing sent off loopback', () => {
      expect(run.code, context()).toBe(0)
      expect(summary.error).toBeUndefined()
      expect(summary.refused_connections).toEqual([])
      expect(summary.agents_trace_processors).toEqual(framework.agentsTraceProcessors)
      const reported = Object.entries(summary.tool_calls ?? {}).flatMap(([agent, calls]) => calls.map((c) => [agent, c.tool] as [string, string]))
      expect(sortedPairs(reported)).toEqual(sortedPairs(PLANNED_CALLS))
      expect(summary.handoffs).toEqual([{ from: TRIAGE, to: BILLING }])
      // Two model turns for triage, three for billing: every one answered by the stub.
      expect(stubRequests).toBe(5)
    })

    it('puts every tool call in one trace, under the span of the agent that made it', () => {
      const traced = framework.toolCalls(spans)
      expect(sortedPairs(traced.map((c) => [c.agent, c.tool])), context()).toEqual(sortedPairs(PLANNED_CALLS))
      expect(new Set(traced.map((c) => c.span.traceId)).size, context()).toBe(1)
    })

    it(`carries the principal on the run as ${framework.principalAttribute}`, () => {
      const carriers = framework.principalSpans(spans)
      expect(carriers.length, context()).toBeGreaterThan(0)
      for (const span of carriers) expect(span.attributes[framework.principalAttribute], `${span.name}\n${context()}`).toBe(framework.principal)
    })

    it("sends each MCP tool call's trace context to the MCP server, whose span joins the agent's trace under the MCP client span", () => {
      const traced = framework.toolCalls(spans)
      for (const call of MCP_CALLS) {
        const toolSpan = traced.find((c) => c.tool === call.name)?.span
        expect(toolSpan, `tool span of ${call.name}\n${context()}`).toBeDefined()
        const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT && s.name === `MCP send tools/call ${call.name}` && ancestorsOf(s, spans).some((a) => a.spanId === toolSpan!.spanId))
        expect(clientSpan, `MCP client span of ${call.name}\n${context()}`).toBeDefined()
        expect(clientSpan!.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'jsonrpc.request.id': expect.any(String) })
        const serverSpan = serverSpans.find((s) => s.attributes['gen_ai.tool.name'] === call.name)
        expect(serverSpan, `MCP server span of ${call.name}; server spans: ${JSON.stringify(serverSpans.map((s) => s.name))}`).toBeDefined()
        expect(serverSpan).toMatchObject({ name: `execute_tool ${call.name}`, kind: SpanKind.SERVER, traceId: clientSpan!.traceId, parentSpanId: clientSpan!.spanId })
        expect(serverSpan!.attributes).toMatchObject({ 'gen_ai.operation.name': 'execute_tool', 'jsonrpc.request.id': clientSpan!.attributes['jsonrpc.request.id'], 'nhi.id': oauthClient })
        expect(serverSpan!.resource).toMatchObject({ 'nhi.id': MCP_SERVER_ID })
      }
      expect(serverSpans.filter((s) => s.attributes['mcp.method.name'] === 'tools/call')).toHaveLength(MCP_CALLS.length)
    })

    // The receiver answers 200 only once the spans are stored (README, "Built-in OTLP receiver").
    it('delivers every span of the run and of the MCP server to the receiver', () => {
      expect(run.code, context()).toBe(0)
      expect(summary.spans_exported, 'spans the receiver accepted').toBe(summary.spans_finished)
      expect(summary.spans_failed).toBe(0)
      expect(relay.answers.length).toBeGreaterThan(0)
      expect(relay.answers.filter((status) => status !== 200)).toEqual([])
    })

    it('bills each tool call once, to the agent that made it, on behalf of the user, never to the MCP server, its OAuth client or a placeholder id', async () => {
      await waitForTraceResolution(metered, window)
      const rows = await billedToolCalls(metered, window)
      expect(rows).toEqual(expectedRows([
        { agent: agentId(TRIAGE), tool: 'lookup_customer', principal: framework.principal, calls: 2 },
        { agent: agentId(BILLING), tool: 'issue_refund', principal: framework.principal, calls: 1 },
        ...MCP_CALLS.map((call) => ({ agent: agentId(BILLING), tool: call.name, principal: framework.principal, calls: 1 })),
      ]))
      const identities = rows.map((r) => r['nhi.id'])
      for (const never of [MCP_SERVER_ID, oauthClient, 'agent', agentId('OpenAI Agent')]) expect(identities).not.toContain(never)
    })
  })
}
