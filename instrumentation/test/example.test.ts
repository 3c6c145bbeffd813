import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXAMPLE_INVENTORY, runExampleWorkload, type ExampleWorkloadResult } from '../examples/agent-gateway/workload.js'
import { startOtlpSink, type OtlpSink, type ReceivedSpan } from './otlp-sink.js'

let sink: OtlpSink
let result: ExampleWorkloadResult
let spans: ReceivedSpan[]
const serviceOutput: string[] = []

beforeAll(async () => {
  sink = await startOtlpSink()
  // JSON bodies, which the sink reads (the default is http/protobuf); the example's service inherits the environment.
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
  result = await runExampleWorkload({
    endpoint: sink.endpoint,
    headers: { authorization: 'Bearer example-ingest-key' },
    runsPerCaller: 5,
    onServiceOutput: (line) => serviceOutput.push(line),
  })
  spans = sink.spans()
}, 60_000)
afterAll(() => {
  delete process.env.OTEL_EXPORTER_OTLP_PROTOCOL
  return sink.close()
})

const byIdentity = (id: string | undefined) => spans.filter((s) => s.attributes['nhi.id'] === id)

describe('example agent gateway', () => {
  it('serves the whole workload, with the failing tool runs answered 502, and stops cleanly', () => {
    expect(result.requests).toEqual({ 'agent-support-triage': 5, 'partner-acme': 5, 'crm-sync': 7, anonymous: 5 })
    expect(result.failed).toBe(4)
    expect(result.succeeded).toBe(18)
    expect(result.serviceExitCode, serviceOutput.join('\n')).toBe(0)
  })

  it('exports every span to the endpoint with the ingest header, the service identity on the resource', () => {
    expect(sink.requests.every((r) => r.headers.authorization === 'Bearer example-ingest-key')).toBe(true)
    // 20 agent runs of 4 spans (workflow, two tools, one API call), one token exchange, one rotation.
    expect(spans).toHaveLength(20 * 4 + 2)
    for (const span of spans) expect(span.resource).toMatchObject({ 'service.name': 'agent-gateway', 'nhi.id': 'svc-agent-gateway', 'nhi.type': 'workload' })
  })

  it('attributes each caller’s spans to it: API keys by fingerprint, the OAuth client by its claims, acting for its user', () => {
    expect(byIdentity('agent-support-triage').length).toBe(5 * 4)
    expect(byIdentity('partner-acme')[0]?.attributes).toMatchObject({ 'nhi.type': 'api_key', 'nhi.business_unit': 'sales' })
    expect(String(byIdentity('partner-acme')[0]?.attributes['nhi.credential.id'])).toMatch(/^fp_[0-9a-f]{16}$/)
    const crm = byIdentity('crm-sync')
    expect(crm.map((s) => s.attributes['nhi.activity.type'])).toEqual(expect.arrayContaining(['token_exchange', 'secret_rotation', 'tool_invocation']))
    expect(crm.every((s) => s.attributes['nhi.on_behalf_of'] === 'user-1842')).toBe(true)
  })

  it('leaves the anonymous caller’s spans without a span identity, for completeness to count', () => {
    expect(byIdentity(undefined).length).toBe(5 * 4)
  })

  it('records tool calls in GenAI terms and failed runs with an error status', () => {
    const tools = spans.filter((s) => s.attributes['gen_ai.operation.name'] === 'execute_tool')
    expect(new Set(tools.map((s) => s.attributes['gen_ai.tool.name']))).toEqual(new Set(['search_tickets', 'summarise']))
    expect(spans.filter((s) => s.name === 'execute_tool summarise' && s.status.code === 2)).toHaveLength(4)
  })

  it('never exports a credential or a secret-named attribute', () => {
    const bodies = sink.requests.map((r) => r.body).join('\n')
    expect(bodies).not.toContain('sk_live_')
    expect(bodies).not.toContain('crm.api_key')
    expect(bodies).not.toContain('never-exported')
    expect(bodies).not.toContain('eyJ')
  })

  it('ships an inventory that names every identity the workload acts as', () => {
    const declared = new Set<string>(EXAMPLE_INVENTORY.map((i) => i.id))
    for (const id of new Set(spans.flatMap((s) => [s.attributes['nhi.id'], s.resource['nhi.id']]).filter(Boolean))) expect(declared.has(String(id)), String(id)).toBe(true)
  })
})
