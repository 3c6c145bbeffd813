/**
 * query-service on a ClickHouse server (`CLICKHOUSE_URL`) that goes away and
 * comes back, run as a user runs it (`npm start`'s command). The server is
 * the real ClickHouse engine behind its HTTP interface (test fixture, see
 * helpers/clickhouse-http-server.ts: no ClickHouse server is obtainable
 * here); a TCP proxy in front of it closes its port or swallows every byte.
 *
 * While it is away the receiver keeps acknowledging exports once they are in
 * its durable ingest log (README, "Built-in OTLP receiver"), within a few seconds (never 500, never
 * a hang an OTLP exporter would time out on); the API answers 503 with the
 * error envelope, and the process stays up. When it returns both recover
 * without a restart and the log is stored: every span exactly once. A
 * service stopped during the outage keeps its log and stores it at its next
 * start.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { readdirSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startClickHouseHttp, type ClickHouseHttp } from '../helpers/clickhouse-http.js'
import { at, exported, makeSpans, sendSpans } from '../helpers/otel.js'
import { REPO_ROOT, startService, type ServiceUnderTest } from '../helpers/service.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'

/** The longest the receiver may take to refuse a request while ClickHouse is away: under an OTLP exporter's default 10 s timeout. */
const REFUSAL_BOUND_MS = 8_000
const DAY = '2026-11-03'
const FROM_TO = `from=${DAY}T00:00:00Z&to=2026-11-04T00:00:00Z`

let clickhouse: ClickHouseHttp
let proxy: TcpProxy
let service: ServiceUnderTest
let direct: ClickHouseClient
let key: string

/** Every span sent, by span id, with whether ClickHouse was away when it was acknowledged. */
const sent = new Map<string, 'acknowledged' | 'acknowledged-while-away' | 'refused-then-acknowledged'>()
let away = false
let spanCounter = 0

/** An OTLP/JSON export of `count` billable tool calls with fresh ids. */
function batch(count: number): { body: string; spanIds: string[] } {
  const spanIds: string[] = []
  const spans = Array.from({ length: count }, () => {
    const n = ++spanCounter
    const spanId = n.toString(16).padStart(16, '0')
    spanIds.push(spanId)
    const start = BigInt(Date.parse(`${DAY}T10:00:00Z`)) * 1_000_000n + BigInt(n) * 1_000_000n
    return {
      traceId: n.toString(16).padStart(32, 'a'),
      spanId,
      name: 'execute_tool',
      kind: 1,
      startTimeUnixNano: String(start),
      endTimeUnixNano: String(start + 5_000_000n),
      attributes: [
        { key: 'gen_ai.operation.name', value: { stringValue: 'execute_tool' } },
        { key: 'gen_ai.tool.name', value: { stringValue: 'lookup' } },
      ],
    }
  })
  const resource = { attributes: [{ key: 'service.name', value: { stringValue: 'agent' } }, { key: 'nhi.id', value: { stringValue: 'agent-away' } }] }
  return { body: JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ spans }] }] }), spanIds }
}

interface Answer {
  status: number
  ms: number
  retryAfter: string | null
  body: string
}

async function exportOnce(body: string): Promise<Answer> {
  const started = Date.now()
  const response = await fetch(service.otlpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
    signal: AbortSignal.timeout(40_000),
  })
  return { status: response.status, ms: Date.now() - started, retryAfter: response.headers.get('retry-after'), body: await response.text() }
}

/**
 * Sends one batch the way an OTLP exporter does: on 503 it waits and sends
 * the same spans again until they are acknowledged. (An exporter would wait
 * Retry-After seconds; 300 ms keeps the test short.) Returns every answer.
 */
async function exportUntilStored(count: number): Promise<Answer[]> {
  const { body, spanIds } = batch(count)
  const answers: Answer[] = []
  for (;;) {
    const answer = await exportOnce(body)
    answers.push(answer)
    if (answer.status === 200) break
    if (answer.status !== 503 || answers.length > 200) return answers
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
  for (const id of spanIds) sent.set(id, answers.length > 1 ? 'refused-then-acknowledged' : away ? 'acknowledged-while-away' : 'acknowledged')
  return answers
}

async function api(path: string): Promise<{ status: number; ms: number; body: unknown; requestId: string | null; retryAfter: string | null }> {
  const started = Date.now()
  const response = await fetch(`${service.apiUrl}${path}`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(40_000) })
  return { status: response.status, ms: Date.now() - started, body: await response.json(), requestId: response.headers.get('x-request-id'), retryAfter: response.headers.get('retry-after') }
}

/** Polls until `check` holds; resolves with the time it took. */
async function timeUntil(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < limitMs) {
    if (await check()) return Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`not within ${limitMs} ms`)
}

/** Runs several exporters at once for `ms`, each sending batches one after another until stored. */
async function exportersFor(ms: number, exporters = 4): Promise<Answer[]> {
  const until = Date.now() + ms
  const all = await Promise.all(
    Array.from({ length: exporters }, async () => {
      const answers: Answer[] = []
      while (Date.now() < until) answers.push(...(await exportUntilStored(25)))
      return answers
    }),
  )
  return all.flat()
}

/**
 * Exporters send for 4 s; 1.5 s in, the proxy forwards again. Resolves with
 * how long the API took to answer again and every exporter answer, all of
 * them already checked to be acknowledgements or refusals.
 */
async function exportThroughRecovery(): Promise<{ recoveredInMs: number; answers: Awaited<ReturnType<typeof exportersFor>> }> {
  const traffic = exportersFor(4_000)
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  await proxy.up()
  away = false
  const recoveredInMs = await timeUntil(async () => (await api(`/v1/billable?${FROM_TO}`)).status === 200, 10_000)
  const answers = await traffic
  expectOnlyAcknowledgedOrRefused(answers)
  return { recoveredInMs, answers }
}

function expectOnlyAcknowledgedOrRefused(answers: Answer[]): void {
  const unexpected = answers.filter((a) => a.status !== 200 && a.status !== 503)
  expect(unexpected, JSON.stringify(unexpected.slice(0, 3))).toEqual([])
  for (const refused of answers.filter((a) => a.status === 503)) {
    expect(Number(refused.retryAfter)).toBeGreaterThan(0)
    expect(refused.ms).toBeLessThan(REFUSAL_BOUND_MS)
  }
}

beforeAll(async () => {
  clickhouse = await startClickHouseHttp()
  proxy = await startTcpProxy({ port: clickhouse.port })
  service = await startService({ env: { CLICKHOUSE_URL: `http://127.0.0.1:${proxy.port}` } })
  key = service.adminKey!
  direct = createClient({ url: clickhouse.url, clickhouse_settings: { output_format_json_quote_64bit_integers: 0 } })
})

afterAll(async () => {
  await service?.stop()
  await direct?.close()
  await proxy?.close()
  await clickhouse?.stop()
})

describe('query-service on a ClickHouse server that goes away', () => {
  it('runs on the server for real: migrations applied there, spans ingested, billed through the API', async () => {
    const shipped = readdirSync(`${REPO_ROOT}query-service/src/storage/migrations`).filter((f) => f.endsWith('.sql')).length
    const migrations = await (await direct.query({ query: 'SELECT count() AS n FROM nhi_schema_migrations', format: 'JSONEachRow' })).json<{ n: number }>()
    expect(migrations).toEqual([{ n: shipped }])

    const answers = await exportUntilStored(30)
    expect(answers.map((a) => a.status)).toEqual([200])
    const ready = await api('/readyz')
    expect(ready.status).toBe(200)
    const bill = await api(`/v1/billable?${FROM_TO}`)
    expect(bill.status).toBe(200)
    expect(bill.body).toMatchObject({ rows: [{ 'nhi.id': 'agent-away', meter: 'tool_calls', quantity: 30, amount: '0.06' }], completeness: { status: 'complete' } })
  })

  it('takes exports into its log at once while the port is closed, answers the API with the envelope, stays up, and recovers by itself', async () => {
    await proxy.down()
    away = true
    const first = await exportUntilStored(5)
    expect(first.map((a) => a.status)).toEqual([200])
    expect(first[0]!.ms).toBeLessThan(2_000)

    const bill = await api(`/v1/billable?${FROM_TO}`)
    expect(bill.status).toBe(503)
    expect(bill.retryAfter).not.toBeNull()
    expect(bill.body).toEqual({ error: { code: 'storage_unavailable', message: expect.any(String), request_id: bill.requestId } })
    expect((await api('/readyz')).status).toBe(503)
    expect((await api('/healthz')).status).toBe(200)

    // Exporters keep sending through the outage and past its end: every export acknowledged, none refused.
    const { recoveredInMs, answers } = await exportThroughRecovery()
    expect(answers.every((a) => a.status === 200)).toBe(true)
    expect((await api('/readyz')).status).toBe(200)
    // The operator is told once when it went and once when it came back.
    expect(service.output()).toMatch(/ClickHouse at http:\/\/127\.0\.0\.1:\d+ is unavailable \(.*ECONNREFUSED.*\); the API answers 503 until it returns, and the receiver keeps taking exports into its ingest log/)
    expect(service.output()).toMatch(/ClickHouse at http:\/\/127\.0\.0\.1:\d+ is reachable again \(after \d+\.\d s\)/)
    console.log(`port closed: first export acknowledged in ${first[0]!.ms} ms; API back ${recoveredInMs} ms after the port reopened; ${answers.length} exports acknowledged during and after it`)
  })

  it('answers within seconds, not the 30 s socket timeout, while the server swallows every byte, and recovers by itself', async () => {
    await proxy.blackhole()
    away = true
    // Several exporters and API readers caught in flight at once.
    const [exports, reads] = await Promise.all([Promise.all(Array.from({ length: 4 }, () => exportUntilStored(10))), Promise.all([api(`/v1/billable?${FROM_TO}`), api('/v1/identities')])])
    for (const answers of exports) {
      expect(answers.map((a) => a.status)).toEqual([200])
      expect(answers[0]!.ms).toBeLessThan(REFUSAL_BOUND_MS)
    }
    for (const read of reads) {
      expect(read.status).toBe(503)
      expect(read.body).toMatchObject({ error: { code: 'storage_unavailable', request_id: read.requestId } })
      expect(read.ms).toBeLessThan(REFUSAL_BOUND_MS)
    }
    // Once the outage is known, later reads are refused without waiting.
    const later = await api(`/v1/billable?${FROM_TO}`)
    expect(later.status).toBe(503)
    expect(later.ms).toBeLessThan(500)
    expect((await api('/healthz')).status).toBe(200)

    const { recoveredInMs, answers } = await exportThroughRecovery()
    expect(answers.every((a) => a.status === 200)).toBe(true)
    expect(service.output()).toMatch(/is unavailable \(no answer to \/ping within \d+ ms\)/)
    const slowest = Math.max(...exports.map((a) => a[0]!.ms), ...reads.map((r) => r.ms))
    console.log(`blackhole: requests in flight answered after at most ${slowest} ms, later reads refused in ${later.ms} ms; API back ${recoveredInMs} ms after forwarding resumed`)
  })

  it('lets a real OTLP exporter export through a short outage without retrying: its spans wait in the log', async () => {
    const spans = await makeSpans({ 'service.name': 'agent', 'nhi.id': 'agent-away' }, (tracer) => {
      for (let i = 0; i < 20; i++) {
        tracer
          .startSpan('execute_tool', { startTime: at(`${DAY}T11:00:00Z`, i * 1000), attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup' } })
          .end(at(`${DAY}T11:00:00Z`, i * 1000 + 50))
      }
    })
    await proxy.down()
    const started = Date.now()
    const result = await sendSpans(spans, { url: service.otlpUrl, protocol: 'protobuf', headers: { Authorization: `Bearer ${key}` } })
    const took = Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    await proxy.up()
    expect(exported(result)).toBe(true)
    // No Retry-After (5 s) was waited out: the first attempt was acknowledged.
    expect(took).toBeLessThan(2_000)
    for (const span of spans) sent.set(span.spanContext().spanId, 'acknowledged-while-away')
    console.log(`OTLP exporter during a 2 s outage: exported after ${took} ms`)
  })

  it('stores every span exactly once, those acknowledged while it was away included', async () => {
    expect(service.process.exitCode).toBeNull()
    const whileAway = [...sent.values()].filter((v) => v === 'acknowledged-while-away').length
    expect(whileAway).toBeGreaterThan(0)
    expect([...sent.values()].filter((v) => v === 'refused-then-acknowledged')).toEqual([])
    // The log reaches ClickHouse moments after it returned.
    await timeUntil(async () => ((await api(`/v1/billable?${FROM_TO}`)).body as { total?: { quantity: number } }).total?.quantity === sent.size, 20_000)
    const bill = await api(`/v1/billable?${FROM_TO}`)
    expect(bill.body).toMatchObject({ total: { quantity: sent.size }, completeness: { spans: sent.size } })
    const [stored] = await (
      await direct.query({ query: 'SELECT count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM otel_traces', format: 'JSONEachRow' })
    ).json<{ rows: number; spans: number }>()
    expect(stored).toEqual({ rows: sent.size, spans: sent.size })
    const [ledger] = await (await direct.query({ query: 'SELECT count() AS n FROM nhi_activity FINAL', format: 'JSONEachRow' })).json<{ n: number }>()
    expect(ledger!.n).toBe(sent.size)
    console.log(`${sent.size} spans sent, ${whileAway} of them acknowledged while ClickHouse was away; stored rows ${stored!.rows}, lost 0`)
  })

  it('waits for ClickHouse at start-up, saying so, and becomes ready once it answers', async () => {
    // A proxy of its own, held silent until the starting service has knocked, then closed: its start-up meets a server that is gone.
    const gate = await startTcpProxy({ port: clickhouse.port })
    await gate.blackhole()
    const starting = startService({ env: { CLICKHOUSE_URL: `http://127.0.0.1:${gate.port}` }, timeoutMs: 40_000 })
    try {
      await timeUntil(async () => gate.accepted > 0, 30_000)
      await gate.down()
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      await gate.up()
      const second = await starting
      try {
        expect(second.output()).toMatch(/ClickHouse at http:\/\/127\.0\.0\.1:\d+ is not reachable \(.*(ECONNREFUSED|ECONNRESET).*\); waiting for it, next attempt in/)
        expect(second.output()).toMatch(/ClickHouse at http:\/\/127\.0\.0\.1:\d+ is reachable \(attempt \d+\)/)
        console.log(second.output().split('\n').filter((line) => line.includes('ClickHouse at')).join('\n'))
        const response = await fetch(`${second.apiUrl}/readyz`)
        expect(response.status).toBe(200)
      } finally {
        expect(await second.stop()).toBe(0)
      }
    } finally {
      await gate.close()
    }
  })

  it('shuts down cleanly on SIGTERM while ClickHouse is away, and stores what its log holds at the next start', async () => {
    await proxy.blackhole()
    const before = ((await (await direct.query({ query: 'SELECT count() AS n FROM nhi_activity FINAL', format: 'JSONEachRow' })).json<{ n: number }>())[0]!).n
    const accepted = await exportOnce(batch(2).body)
    expect(accepted.status).toBe(200)
    const started = Date.now()
    expect(await service.stop()).toBe(0)
    expect(Date.now() - started).toBeLessThan(REFUSAL_BOUND_MS)
    await proxy.up()
    service = await startService({ dataDir: service.dataDir, env: { CLICKHOUSE_URL: `http://127.0.0.1:${proxy.port}` } })
    const stored = async () => ((await (await direct.query({ query: 'SELECT count() AS n FROM nhi_activity FINAL', format: 'JSONEachRow' })).json<{ n: number }>())[0]!).n
    await timeUntil(async () => (await stored()) === before + 2, 20_000)
    expect(await stored()).toBe(before + 2)
  })
})
