/**
 * The single-node product end to end, run as a user runs it (`npm start`'s
 * command in its own process): the real OpenTelemetry exporters send spans
 * to the built-in receiver, the embedded ClickHouse stores them, and
 * /v1/billable reports exactly what was sent, once per span, even after the
 * process is killed without warning.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { at, exported, makeSpans, sendSpans, SpanKind, SpanStatusCode } from './helpers/otel.js'
import { startService, type ServiceUnderTest } from './helpers/service.js'

interface Billable {
  rows: Array<Record<string, string | number>>
  total: { quantity: number; amount: string }
  completeness: { spans: number; identified_spans: number; status: string }
}

async function billable(service: ServiceUnderTest, key: string, query: string): Promise<Billable> {
  const response = await fetch(`${service.apiUrl}/v1/billable?${query}`, { headers: { Authorization: `Bearer ${key}` } })
  expect(response.status).toBe(200)
  return (await response.json()) as Billable
}

/**
 * The bill once every acknowledged span is stored: an export is acknowledged
 * when it is in the ingest log, and shows in bills once ClickHouse has it
 * (README, "The ingest log"), so the report is read again until it counts
 * `spans` spans (or 15 s pass; the assertions after it then fail).
 */
async function storedBillable(service: ServiceUnderTest, key: string, query: string, spans: number): Promise<Billable> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const report = await billable(service, key, query)
    if (report.completeness.spans >= spans || Date.now() > deadline) return report
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A workload with a known answer: per identity, how many tool calls and workflow runs. */
async function workload(day: string) {
  const agentSpans = await makeSpans({ 'service.name': 'support-agent', 'nhi.id': 'agent-support', 'nhi.type': 'ai_agent', 'nhi.business_unit': 'support' }, (tracer) => {
    for (let i = 0; i < 25; i++) {
      const span = tracer.startSpan('execute_tool', {
        startTime: at(`${day}T09:00:00Z`, i * 1000),
        attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': i % 2 ? 'search_kb' : 'create_ticket' },
      })
      if (i === 24) span.setStatus({ code: SpanStatusCode.ERROR, message: 'tool failed' })
      span.end(at(`${day}T09:00:00Z`, i * 1000 + 200))
    }
  })
  const etlSpans = await makeSpans({ 'service.name': 'nightly-etl', 'nhi.id': 'sa-etl', 'nhi.type': 'service_account', 'nhi.business_unit': 'data' }, (tracer) => {
    for (let i = 0; i < 10; i++) {
      tracer.startSpan('etl.run', { startTime: at(`${day}T02:00:00Z`, i * 60_000), attributes: { 'nhi.activity.type': 'workflow_execution', 'nhi.activity.name': 'nightly-load' } }).end(at(`${day}T02:00:30Z`, i * 60_000))
    }
  })
  const legacySpans = await makeSpans({ 'service.name': 'legacy-billing' }, (tracer) => {
    for (let i = 0; i < 2; i++) tracer.startSpan('GET /invoices', { kind: SpanKind.SERVER, startTime: at(`${day}T12:00:00Z`, i) }).end(at(`${day}T12:00:01Z`, i))
  })
  return { agentSpans, etlSpans, legacySpans }
}

let service: ServiceUnderTest
let key: string

beforeAll(async () => {
  service = await startService()
  key = service.adminKey!
})

afterAll(async () => {
  await service?.stop()
})

describe('single-node nhi-meter', () => {
  it('prints a generated admin key once and keeps only its hash', async () => {
    expect(key).toMatch(/^nhim_[A-Za-z0-9_-]{43}$/)
    expect(service.output()).toContain('shown this once')
  })

  it('bills exactly what the real protobuf and JSON exporters sent, counting duplicates once', async () => {
    const { agentSpans, etlSpans, legacySpans } = await workload('2026-11-10')
    const headers = { Authorization: `Bearer ${key}` }
    expect(exported(await sendSpans(agentSpans, { url: service.otlpUrl, protocol: 'protobuf', headers }))).toBe(true)
    expect(exported(await sendSpans(etlSpans, { url: service.otlpUrl, protocol: 'json', headers, compression: 'gzip' }))).toBe(true)
    expect(exported(await sendSpans(legacySpans, { url: service.otlpUrl, protocol: 'protobuf', headers }))).toBe(true)
    // The same spans again, through the other encoding: a retrying exporter or a second path.
    expect(exported(await sendSpans(agentSpans, { url: service.otlpUrl, protocol: 'json', headers }))).toBe(true)
    expect(exported(await sendSpans(etlSpans, { url: service.otlpUrl, protocol: 'protobuf', headers }))).toBe(true)

    const report = await storedBillable(service, key, 'from=2026-11-10T00:00:00Z&to=2026-11-11T00:00:00Z', 37)
    expect(report.rows).toEqual([
      { 'nhi.id': 'agent-support', meter: 'tool_calls', quantity: 24, amount: '0.048' },
      { 'nhi.id': 'sa-etl', meter: 'workflow_runs', quantity: 10, amount: '0.10' },
    ])
    expect(report.total).toEqual({ quantity: 34, amount: '0.148' })
    // 25 tool spans + 10 workflows + 2 unidentified legacy API calls.
    expect(report.completeness).toMatchObject({ spans: 37, identified_spans: 35, status: 'incomplete' })

    const byActivity = await billable(service, key, 'from=2026-11-10T00:00:00Z&to=2026-11-11T00:00:00Z&group_by=activity.name')
    expect(byActivity.rows).toEqual([
      { 'activity.name': 'create_ticket', quantity: 12, amount: '0.024' },
      { 'activity.name': 'nightly-load', quantity: 10, amount: '0.10' },
      { 'activity.name': 'search_kb', quantity: 12, amount: '0.024' },
    ])
  })

  it('loses no acknowledged span when killed with SIGKILL right after its 200s', async () => {
    const { agentSpans, etlSpans } = await workload('2026-11-12')
    const headers = { Authorization: `Bearer ${key}` }
    const results = await Promise.all([
      sendSpans(agentSpans, { url: service.otlpUrl, protocol: 'protobuf', headers }),
      sendSpans(etlSpans, { url: service.otlpUrl, protocol: 'json', headers }),
    ])
    expect(results.every(exported)).toBe(true)
    await service.kill()

    service = await startService({ dataDir: service.dataDir })
    expect(service.adminKey).toBeUndefined()
    const report = await storedBillable(service, key, 'from=2026-11-12T00:00:00Z&to=2026-11-13T00:00:00Z', 35)
    expect(report.total.quantity).toBe(34)
    expect(report.completeness.spans).toBe(35)
  })

  it('stops cleanly on SIGTERM, and refuses to start on invalid configuration naming the key', async () => {
    const bad = startService({ env: { NHI_METER_PORT: 'eighty' } })
    await expect(bad).rejects.toThrow(/NHI_METER_PORT must be a port number/)
    const badAuth = startService({ env: { NHI_METER_OTLP_AUTH: 'none', NHI_METER_HOST: '0.0.0.0' } })
    await expect(badAuth).rejects.toThrow(/NHI_METER_OTLP_AUTH=none is accepted only while the receiver listens on loopback/)
    const badPolicy = startService({ env: { NHI_METER_POLICY: '/nonexistent/policy.yaml' } })
    await expect(badPolicy).rejects.toThrow(/policy/i)
    const badInventory = startService({ env: { NHI_METER_INVENTORY_FILE: '/nonexistent/inventory.yaml' } })
    await expect(badInventory).rejects.toThrow(/NHI_METER_INVENTORY_FILE/)
    const other = await startService()
    expect(await other.stop()).toBe(0)
    expect(other.output()).toContain('SIGTERM: draining and shutting down')
  })
})
