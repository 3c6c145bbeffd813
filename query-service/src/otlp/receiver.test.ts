import type { ClickHouseClient } from '@clickhouse/client'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { at, exported, makeSpans, sendSpans, SpanKind, SpanStatusCode } from '../../../test/helpers/otel.js'
import { tempDataDir } from '../../../test/helpers/service.js'
import { KeyStore, sha256 } from '../auth/keys.js'
import { TokenBuckets } from '../auth/rate-limit.js'
import { openStorage } from '../storage/client.js'
import { migrate } from '../storage/migrations.js'
import { createReceiver, type Receiver } from './receiver.js'
import { SpanWriter } from './span-writer.js'
import { placeholderRule, runTraceResolution } from '../traces/job.js'
import { IDENTITY_DEFAULTS } from '../policy/index.js'

let client: ClickHouseClient
let receiver: Receiver
let url: string
const INGEST_KEY = 'nhim_test_ingest_key_0123456789abcdef'
const READ_ONLY_KEY = 'nhim_test_read_only_key_0123456789abcd'

async function rows<T>(query: string): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' })
  return result.json<T>()
}

async function storedSpanCount(): Promise<number> {
  const [row] = await rows<{ n: string }>('SELECT count() AS n FROM otel_traces')
  return Number(row!.n)
}

function post(body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${INGEST_KEY}`, ...headers },
    body: typeof body === 'string' ? body : Buffer.from(body),
  })
}

beforeAll(async () => {
  client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
  await migrate(client)
  const keys = KeyStore.fromEntries([
    { name: 'ingest', sha256: sha256(INGEST_KEY).toString('hex'), scopes: ['ingest:write'] },
    { name: 'reader', sha256: sha256(READ_ONLY_KEY).toString('hex'), scopes: ['billing:read'] },
  ])
  receiver = createReceiver({ writer: new SpanWriter(client), keys, maxBodyBytes: 1024 * 1024 })
  const port = await receiver.listen(0, '127.0.0.1')
  url = `http://127.0.0.1:${port}/v1/traces`
})

afterAll(async () => {
  await receiver?.close()
  await client?.close()
})

const headers = { Authorization: `Bearer ${INGEST_KEY}` }

describe('the built-in OTLP/HTTP receiver', () => {
  it('stores spans from the real protobuf and JSON exporters with the clickhouseexporter row layout', async () => {
    const spans = await makeSpans({ 'service.name': 'billing-agent', 'nhi.id': 'agent-7', 'nhi.type': 'ai_agent', 'nhi.business_unit': 'finance' }, (tracer) => {
      const s = tracer.startSpan('execute_tool lookup', {
        kind: SpanKind.INTERNAL,
        startTime: at('2026-11-02T10:00:00Z'),
        attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup', count: 3, ratio: 0.5, ok: true, tags: ['a', 'b'] },
      })
      s.addEvent('retry', { attempt: 1 }, at('2026-11-02T10:00:00.5Z'))
      s.setStatus({ code: SpanStatusCode.ERROR, message: 'tool failed' })
      s.end(at('2026-11-02T10:00:01Z'))
    })
    const span = spans[0]!
    expect(exported(await sendSpans(spans, { url, protocol: 'protobuf', headers }))).toBe(true)
    const [row] = await rows<Record<string, unknown>>(`SELECT * FROM otel_traces WHERE SpanId = '${span.spanContext().spanId}'`)
    expect(row).toMatchObject({
      Timestamp: '2026-11-02T10:00:00.000000000Z',
      TraceId: span.spanContext().traceId,
      SpanName: 'execute_tool lookup',
      SpanKind: 'Internal',
      ServiceName: 'billing-agent',
      ScopeName: 'nhi-meter-test',
      ScopeVersion: '1.0.0',
      Duration: '1000000000',
      StatusCode: 'Error',
      StatusMessage: 'tool failed',
      'Events.Name': ['retry'],
      'Events.Attributes': [{ attempt: '1' }],
    })
    expect(row!.SpanAttributes).toEqual({ 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup', count: '3', ratio: '0.5', ok: 'true', tags: '["a","b"]' })

    const jsonSpans = await makeSpans({ 'service.name': 'gateway' }, (tracer) => {
      tracer.startSpan('GET /orders', { kind: SpanKind.SERVER, startTime: at('2026-11-02T11:00:00Z'), attributes: { 'nhi.id': 'key-1' } }).end(at('2026-11-02T11:00:00.010Z'))
    })
    expect(exported(await sendSpans(jsonSpans, { url, protocol: 'json', headers }))).toBe(true)
    const [jsonRow] = await rows<Record<string, unknown>>(`SELECT SpanKind, ServiceName, SpanAttributes FROM otel_traces WHERE SpanId = '${jsonSpans[0]!.spanContext().spanId}'`)
    expect(jsonRow).toEqual({ SpanKind: 'Server', ServiceName: 'gateway', SpanAttributes: { 'nhi.id': 'key-1' } })
  })

  it('derives identity and activity in the ledger, and counts a span sent twice once', async () => {
    const spans = await makeSpans({ 'service.name': 'etl', 'nhi.id': 'svc-etl', 'nhi.type': 'service_account', 'nhi.owner': 'data-team' }, (tracer) => {
      tracer.startSpan('nightly', { startTime: at('2026-11-03T01:00:00Z'), attributes: { 'gen_ai.operation.name': 'invoke_workflow' } }).end(at('2026-11-03T01:05:00Z'))
      tracer
        .startSpan('tool', { startTime: at('2026-11-03T01:01:00Z'), attributes: { 'gen_ai.agent.id': 'agent-x', 'nhi.activity.type': 'tool_invocation', 'nhi.activity.name': 'search' } })
        .end(at('2026-11-03T01:01:01Z'))
      tracer.startSpan('internal step', { startTime: at('2026-11-03T01:02:00Z') }).end(at('2026-11-03T01:02:01Z'))
    })
    for (let i = 0; i < 2; i++) expect(exported(await sendSpans(spans, { url, protocol: i === 0 ? 'protobuf' : 'json', headers }))).toBe(true)
    // gen_ai.agent.id may be a framework's placeholder: the trace resolution job decides.
    await runTraceResolution(client, placeholderRule({ ...IDENTITY_DEFAULTS, placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids] }))
    const ledger = await rows<Record<string, string>>(
      `SELECT nhi_id, nhi_type, identity_source, owner, activity_type, activity_name FROM nhi_activity FINAL WHERE service = 'etl' ORDER BY activity_type`,
    )
    expect(ledger).toEqual([
      { nhi_id: 'agent-x', nhi_type: 'ai_agent', identity_source: 'span:gen_ai.agent.id', owner: 'data-team', activity_type: 'tool_invocation', activity_name: 'search' },
      { nhi_id: 'svc-etl', nhi_type: 'service_account', identity_source: 'resource:nhi.id', owner: 'data-team', activity_type: 'workflow_execution', activity_name: 'nightly' },
    ])
    // The second export's rows make the same insert block as the first's: otel_traces drops it (migration 0027).
    const [raw] = await rows<{ n: string }>(`SELECT count() AS n FROM otel_traces WHERE ServiceName = 'etl'`)
    expect(Number(raw!.n)).toBe(3)
  })

  it('never stores a secret from span, resource or event attributes', async () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIiwibmFtZSI6IngifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ'
    const spans = await makeSpans({ 'service.name': 'leaky', 'db.password': 'hunter2-resource' }, (tracer) => {
      const s = tracer.startSpan('call', {
        startTime: at('2026-11-04T00:00:00Z'),
        attributes: {
          'http.request.header.authorization': 'Bearer abcdefghijklmnop',
          'session.token': 'plain-token-value',
          'note': `forwarding ${jwt}`,
          'url.full': 'https://api.example.test/v1?api_key=sk_live_0123456789abcdefghij&x=1',
          'tags': ['ok', 'ghp_0123456789abcdefghijklmnopqrstuvwxyzAB'],
        },
      })
      s.addEvent('auth', { 'client.secret': 'shh-event-secret', detail: 'AKIAABCDEFGHIJKLMNOP' })
      s.end(at('2026-11-04T00:00:01Z'))
    })
    expect(exported(await sendSpans(spans, { url, protocol: 'protobuf', headers }))).toBe(true)
    const stored = JSON.stringify(await rows(`SELECT * FROM otel_traces WHERE ServiceName = 'leaky'`))
    for (const secret of ['hunter2-resource', 'abcdefghijklmnop', 'plain-token-value', jwt, 'sk_live_0123456789abcdefghij', 'ghp_0123456789', 'shh-event-secret', 'AKIAABCDEFGHIJKLMNOP']) {
      expect(stored).not.toContain(secret)
    }
    expect(stored).toContain('[REDACTED]')
  })

  it('answers partial success for spans it cannot store and keeps the rest', async () => {
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'partial' } }] },
          scopeSpans: [
            {
              spans: [
                { traceId: '00000000000000000000000000000000', spanId: '0102030405060708', name: 'zero trace', startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' },
                { traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'good', kind: 2, startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' },
              ],
            },
          ],
        },
      ],
    })
    const response = await post(body, { 'content-type': 'application/json' })
    expect(response.status).toBe(200)
    const answer = (await response.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } }
    expect(answer.partialSuccess.rejectedSpans).toBe('1')
    expect(answer.partialSuccess.errorMessage).toMatch(/trace_id/)
    const stored = await rows<{ SpanName: string }>(`SELECT SpanName FROM otel_traces WHERE ServiceName = 'partial'`)
    expect(stored).toEqual([{ SpanName: 'good' }])
  })

  describe('refuses bad input with a clear error and stores nothing', () => {
    const cases: Array<[string, () => Promise<Response>, number, RegExp]> = [
      ['malformed protobuf', () => post(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])), 400, /protobuf/],
      ['malformed JSON', () => post('{"resourceSpans": [', { 'content-type': 'application/json' }), 400, /JSON/],
      ['JSON of the wrong shape', () => post('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 42}]}]}]}', { 'content-type': 'application/json' }), 400, /traceId: must be a string/],
      ['a wrong content type', () => post('hello', { 'content-type': 'text/plain' }), 415, /Content-Type/],
      ['an empty body', () => post(new Uint8Array(0)), 400, /empty/],
      ['an unsupported encoding', () => post('x', { 'content-encoding': 'br' }), 415, /Content-Encoding/],
      ['corrupt gzip', () => post(Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' }), 400, /gzip/],
      ['a body over the limit', () => post(Buffer.alloc(2 * 1024 * 1024, 1)), 413, /limit/],
      ['a gzip bomb', () => post(gzipSync(Buffer.alloc(64 * 1024 * 1024, 0)), { 'content-encoding': 'gzip' }), 413, /decompressed/],
      ['no key', () => post(new Uint8Array([0]), { authorization: '' }), 401, /Authorization/],
      ['a wrong key', () => post(new Uint8Array([0]), { authorization: 'Bearer nhim_wrong' }), 401, /unknown API key/],
      ['a key without ingest:write', () => post(new Uint8Array([0]), { authorization: `Bearer ${READ_ONLY_KEY}` }), 403, /ingest:write/],
    ]
    it.each(cases)('%s', async (_name, send, status, message) => {
      const before = await storedSpanCount()
      const response = await send()
      expect(response.status).toBe(status)
      const body = response.headers.get('content-type')?.includes('json') ? ((await response.json()) as { message: string }).message : Buffer.from(await response.arrayBuffer()).toString('utf8')
      expect(body).toMatch(message)
      expect(await storedSpanCount()).toBe(before)
      // Still up: a good export goes through afterwards.
      const ok = await makeSpans({ 'service.name': 'after-bad-input' }, (t) => t.startSpan('ping', { startTime: at('2026-11-05T00:00:00Z') }).end(at('2026-11-05T00:00:01Z')))
      expect(exported(await sendSpans(ok, { url, protocol: 'protobuf', headers }))).toBe(true)
    })
  })
})

describe('the receiver under key guessing', () => {
  it('answers 429 with Retry-After to an address after its refused keys use up its allowance, even for a correct key', async () => {
    const keys = KeyStore.fromEntries([{ name: 'ingest', sha256: sha256(INGEST_KEY).toString('hex'), scopes: ['ingest:write'] }])
    const guarded = createReceiver({ writer: new SpanWriter(client), keys, failedAuthPerClient: new TokenBuckets({ perSecond: 1 / 60, burst: 3 }) })
    const target = `http://127.0.0.1:${await guarded.listen(0, '127.0.0.1')}/v1/traces`
    try {
      const send = (key: string) => fetch(target, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: '{}' })
      expect((await send(INGEST_KEY)).status).toBe(200)
      for (let i = 0; i < 3; i++) expect((await send(`nhim_guess_${i}`)).status).toBe(401)
      const blocked = await send(INGEST_KEY)
      expect(blocked.status).toBe(429)
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(await blocked.text()).toMatch(/failed authentication attempts/)
    } finally {
      await guarded.close()
    }
  })
})
