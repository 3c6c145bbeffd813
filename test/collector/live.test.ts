/**
 * The Collector config proven on a real Collector: otelcol-nhi runs
 * otelcol.yaml as shipped, with the test overlay swapping the ClickHouse
 * exporter for a file exporter and an OTLP/HTTP exporter into nhi-meter's
 * built-in receiver. The real OTel SDK sends one corpus of spans, with
 * secrets in keys and values on the resource, the span and span events,
 * twice: through the Collector into service A, and straight into service B.
 * What the Collector emits must have every span, no secret and the identity
 * attributes untouched; the rows A stored must equal the rows B stored.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isSecretKey, REDACTED_VALUE } from '@nhi-meter/instrumentation/redaction'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { at, exported, makeSpans, sendSpans, SpanKind, SpanStatusCode } from '../helpers/otel.js'
import { freePort, REPO_ROOT, startService, waitForTraceResolution, type ServiceUnderTest } from '../helpers/service.js'
import { collectorBinary, collectorMetric, OTELCOL_CONFIG, startCollector, TEST_OVERLAY, type RunningCollector } from './collector.js'

const collector = collectorBinary()
if (collector.skipReason) console.warn(`test/collector/live.test.ts: skipped. ${collector.skipReason}`)

// Credentials that only the value patterns can catch (their keys are harmless).
const GITHUB_TOKEN = 'ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8'
const BEARER_JWT = 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC00MiJ9.c2lnbmF0dXJlLXZhbHVl'
const DATABASE_URL = 'postgres://billing:Tr0ub4dor-pw@db.internal:5432/ledger'
const QUERY_URL = 'https://api.example.com/v1/charges?limit=10&api_key=live5f2a9c77'
const BASIC_AUTH = 'Basic dXNlcjpwYXNzd29yZA=='
const OPENAI_KEY = 'sk-proj-abcdefghijklmnopqrstuvwx'
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZmxvdyJ9.bm90LWEtcmVhbC1zaWc'
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----'
// JavaScript's \s takes a no-break space, RE2's does not: the generated rule must still catch it.
const NBSP_BEARER = 'Bearer\u00a0Zm9vYmFyYmF6cXV4cXV1eA'
// Plain values under secret keys: only the key patterns can catch these.
const KEYED_SECRETS = {
  'deployment.api_key': 'resource-key-plaintext',
  'db.password': 'hunter2-plaintext',
  'oauth.client_secret': 'client-secret-plaintext',
  'session.token': 'session-token-plaintext',
  refresh_token: 'event-refresh-plaintext',
}
/** Fragments of every secret in the corpus; none may appear in anything the Collector emits or anything stored. */
const SECRET_FRAGMENTS = [
  'A1b2C3d4E5f6G7h8I9j0',
  'c2lnbmF0dXJlLXZhbHVl',
  'Tr0ub4dor-pw',
  'live5f2a9c77',
  'dXNlcjpwYXNzd29yZA',
  'abcdefghijklmnopqrstuvwx',
  'bm90LWEtcmVhbC1zaWc',
  'BEGIN RSA PRIVATE KEY',
  'Zm9vYmFyYmF6cXV4cXV1eA',
  ...Object.values(KEYED_SECRETS),
]

async function corpus(): Promise<ReadableSpan[]> {
  const billing = await makeSpans(
    {
      'service.name': 'billing-api',
      'nhi.id': 'svc-billing',
      'nhi.type': 'service_account',
      'nhi.owner': 'team-payments',
      'nhi.business_unit': 'finance',
      'deployment.api_key': KEYED_SECRETS['deployment.api_key'],
      'process.command_args': ['node', 'server.js', '--token', GITHUB_TOKEN],
      'service.db.url': DATABASE_URL,
    },
    (tracer) => {
      const invoices = tracer.startSpan('GET /v1/invoices', {
        kind: SpanKind.SERVER,
        startTime: at('2026-11-02T10:00:00Z'),
        attributes: {
          'http.route': '/v1/invoices',
          'http.request.header.authorization': [BEARER_JWT],
          'url.full': QUERY_URL,
          'nhi.credential.id': 'cred-7f3a',
          // Non-secret values whose stored string form both paths must agree on.
          'app.tags': ['a&b', '<prod>'],
          'app.retry_count': 3,
          'app.ratio': 0.25,
          'app.big': 1e21,
          'app.cached': true,
          'app.shards': [1, 2, 3],
        },
      })
      invoices.addEvent('auth.checked', { refresh_token: KEYED_SECRETS.refresh_token, 'auth.header': BASIC_AUTH, outcome: 'ok' }, at('2026-11-02T10:00:00.010Z'))
      invoices.end(at('2026-11-02T10:00:00.120Z'))

      const refunds = tracer.startSpan('POST /v1/refunds', {
        kind: SpanKind.SERVER,
        startTime: at('2026-11-02T10:01:00Z'),
        attributes: { 'http.route': '/v1/refunds', 'db.password': KEYED_SECRETS['db.password'] },
      })
      refunds.addEvent('exception', { 'exception.message': `upstream refused key ${OPENAI_KEY}` }, at('2026-11-02T10:01:00.050Z'))
      refunds.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' })
      refunds.end(at('2026-11-02T10:01:00.200Z'))

      tracer
        .startSpan('render pdf', {
          kind: SpanKind.INTERNAL,
          startTime: at('2026-11-02T10:00:00.130Z'),
          links: [{ context: invoices.spanContext(), attributes: { 'link.reason': 'follows invoice' } }],
        })
        .end(at('2026-11-02T10:00:00.400Z'))
    },
  )
  const agent = await makeSpans(
    { 'service.name': 'support-agent', 'gen_ai.agent.id': 'agent-resource-7', 'oauth.client_secret': KEYED_SECRETS['oauth.client_secret'] },
    (tracer) => {
      const tool = tracer.startSpan('execute_tool search_docs', {
        kind: SpanKind.INTERNAL,
        startTime: at('2026-11-02T11:00:00Z'),
        attributes: {
          'gen_ai.operation.name': 'execute_tool',
          'gen_ai.tool.name': 'search_docs',
          'gen_ai.agent.id': 'agent-42',
          'gen_ai.prompt': `summarise the ticket; auth ${JWT}`,
          'session.token': KEYED_SECRETS['session.token'],
        },
      })
      tool.addEvent('tool.result', { 'tool.output': `found a key:\n${PEM}` }, at('2026-11-02T11:00:00.300Z'))
      tool.end(at('2026-11-02T11:00:00.500Z'))

      tracer
        .startSpan('invoke_workflow nightly-reconcile', {
          kind: SpanKind.INTERNAL,
          startTime: at('2026-11-02T11:05:00Z'),
          attributes: {
            'gen_ai.operation.name': 'invoke_workflow',
            'nhi.id': 'wf-runner',
            'nhi.type': 'workload',
            'nhi.on_behalf_of': 'alice@example.com',
            'app.note': NBSP_BEARER,
          },
        })
        .end(at('2026-11-02T11:05:02Z'))

      tracer
        .startSpan('sts exchange', {
          kind: SpanKind.CLIENT,
          startTime: at('2026-11-02T11:06:00Z'),
          attributes: { 'nhi.activity.type': 'token_exchange', 'nhi.activity.name': 'sts:AssumeRole' },
        })
        .end(at('2026-11-02T11:06:00.080Z'))

      tracer.startSpan('heartbeat', { kind: SpanKind.INTERNAL, startTime: at('2026-11-02T11:07:00Z') }).end(at('2026-11-02T11:07:00.001Z'))
    },
  )
  return [...billing, ...agent]
}

/** OTLP JSON as the file exporter writes it, reduced to what the assertions need. */
interface OtlpAttribute {
  key: string
  value: Record<string, unknown>
}
interface EmittedSpan {
  spanId: string
  name: string
  resource: Record<string, unknown>
  attributes: Record<string, unknown>
  events: { name: string; attributes: Record<string, unknown> }[]
}

function attributeMap(attributes: OtlpAttribute[] | undefined): Record<string, unknown> {
  return Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, Object.values(value)[0]]))
}

function readEmitted(text: string): EmittedSpan[] {
  const spans: EmittedSpan[] = []
  for (const line of text.split('\n').filter((l) => l.trim() !== '')) {
    const request = JSON.parse(line) as {
      resourceSpans: {
        resource?: { attributes?: OtlpAttribute[] }
        scopeSpans: { spans: { spanId: string; name: string; attributes?: OtlpAttribute[]; events?: { name: string; attributes?: OtlpAttribute[] }[] }[] }[]
      }[]
    }
    for (const rs of request.resourceSpans) {
      const resource = attributeMap(rs.resource?.attributes)
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          spans.push({
            spanId: s.spanId,
            name: s.name,
            resource,
            attributes: attributeMap(s.attributes),
            events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributeMap(e.attributes) })),
          })
        }
      }
    }
  }
  return spans
}

interface StoredRows {
  traces: Record<string, unknown>[]
  activity: Record<string, unknown>[]
}

function dumpRows(dataDir: string): StoredRows {
  const json = execFileSync(process.execPath, ['--conditions=nhi-meter-source', '--import', 'tsx', 'test/collector/dump-rows.ts', dataDir], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  return JSON.parse(json) as StoredRows
}

describe.skipIf(!collector.path)('the shipped Collector config on a real Collector', () => {
  let sent: ReadableSpan[]
  let emittedText: string
  let emitted: EmittedSpan[]
  let viaCollector: StoredRows
  let direct: StoredRows
  const running: { stop(): Promise<unknown> }[] = []

  beforeAll(async () => {
    sent = await corpus()
    // Trace resolution runs every second and settles a span whose parent never comes after 2 s.
    const resolution = { NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS: '1', NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS: '2' }
    const fedByCollector: ServiceUnderTest = await startService({ env: { NHI_METER_OTLP_AUTH: 'none', ...resolution } })
    running.push(fedByCollector)
    const fedDirectly: ServiceUnderTest = await startService({ env: { NHI_METER_OTLP_AUTH: 'none', ...resolution } })
    running.push(fedDirectly)
    const emittedFile = join(mkdtempSync(join(tmpdir(), 'nhi-otelcol-out-')), 'emitted.json')
    const otelcol: RunningCollector = await startCollector(collector.path!, [OTELCOL_CONFIG, TEST_OVERLAY], {
      NHI_TEST_EMITTED_FILE: emittedFile,
      NHI_TEST_RECEIVER_TRACES_URL: fedByCollector.otlpUrl,
    })
    running.push(otelcol)

    // Both OTLP/HTTP encodings into the Collector; protobuf straight into the receiver.
    const billingSpans = sent.filter((s) => s.resource.attributes['service.name'] === 'billing-api')
    const agentSpans = sent.filter((s) => s.resource.attributes['service.name'] === 'support-agent')
    const results = [
      await sendSpans(billingSpans, { url: otelcol.otlpHttpUrl, protocol: 'protobuf' }),
      await sendSpans(agentSpans, { url: otelcol.otlpHttpUrl, protocol: 'json' }),
      await sendSpans(sent, { url: fedDirectly.otlpUrl, protocol: 'protobuf' }),
    ]
    expect(results.map(exported), `exports failed; Collector output:\n${otelcol.output()}`).toEqual([true, true, true])

    // Stopping drains the Collector's pipeline and flushes the file exporter;
    // stopping the services releases their data directories.
    expect(await otelcol.stop(), otelcol.output()).toBe(0)
    // Both services decide the use events whose identity is on an ancestor before their rows are compared.
    const starts = sent.map((s) => s.startTime[0] * 1000)
    const window = { from: new Date(Math.min(...starts) - 3_600_000).toISOString(), to: new Date(Math.max(...starts) + 3_600_000).toISOString() }
    for (const service of [fedByCollector, fedDirectly]) await waitForTraceResolution(service, service.adminKey!, window)
    expect(await fedByCollector.stop(), fedByCollector.output()).toBe(0)
    expect(await fedDirectly.stop(), fedDirectly.output()).toBe(0)
    emittedText = readFileSync(emittedFile, 'utf8')
    emitted = readEmitted(emittedText)
    viaCollector = dumpRows(fedByCollector.dataDir)
    direct = dumpRows(fedDirectly.dataDir)
  }, 300_000)

  afterAll(async () => {
    for (const r of running.reverse()) await r.stop()
  })

  it('emits every span it received, once', () => {
    expect(emitted.map((s) => s.spanId).sort()).toEqual(sent.map((s) => s.spanContext().spanId).sort())
  })

  it('emits no secret: no secret key on resources, spans or events, and no secret text anywhere', () => {
    for (const fragment of SECRET_FRAGMENTS) expect(emittedText, fragment).not.toContain(fragment)
    for (const span of emitted) {
      const keys = [...Object.keys(span.resource), ...Object.keys(span.attributes), ...span.events.flatMap((e) => Object.keys(e.attributes))]
      for (const key of keys) expect(isSecretKey(key), `${span.name}: ${key}`).toBe(false)
    }
  })

  it('replaces a secret-looking value whole, at every level, and leaves other values alone', () => {
    const byName = new Map(emitted.map((s) => [s.name, s]))
    const invoices = byName.get('GET /v1/invoices')!
    expect(invoices.resource['process.command_args']).toBe(REDACTED_VALUE)
    expect(invoices.resource['service.db.url']).toBe(REDACTED_VALUE)
    expect(invoices.attributes['url.full']).toBe(REDACTED_VALUE)
    expect(invoices.events[0]!.attributes).toEqual({ 'auth.header': REDACTED_VALUE, outcome: 'ok' })
    expect(byName.get('POST /v1/refunds')!.events[0]!.attributes['exception.message']).toBe(REDACTED_VALUE)
    expect(byName.get('execute_tool search_docs')!.attributes['gen_ai.prompt']).toBe(REDACTED_VALUE)
    expect(byName.get('execute_tool search_docs')!.events[0]!.attributes['tool.output']).toBe(REDACTED_VALUE)
    expect(byName.get('invoke_workflow nightly-reconcile')!.attributes['app.note']).toBe(REDACTED_VALUE)
    // Values are emitted as the strings ClickHouse stores.
    expect(invoices.attributes).toMatchObject({
      'http.route': '/v1/invoices',
      'app.tags': '["a&b","<prod>"]',
      'app.retry_count': '3',
      'app.ratio': '0.25',
      'app.big': '1e+21',
      'app.cached': 'true',
      'app.shards': '[1,2,3]',
    })
  })

  it('passes the identity attributes through untouched (derivation happens once, in ClickHouse)', () => {
    const identity = (attributes: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(attributes).filter(([k]) => k.startsWith('nhi.') || k.startsWith('gen_ai.') || k === 'service.name'))
    for (const span of sent) {
      const out = emitted.find((e) => e.spanId === span.spanContext().spanId)!
      const expectedSpan = identity(span.attributes as Record<string, unknown>)
      delete expectedSpan['gen_ai.prompt']
      expect(identity(out.attributes), span.name).toMatchObject(expectedSpan)
      expect(identity(out.resource), span.name).toEqual(identity(span.resource.attributes as Record<string, unknown>))
    }
  })

  it('leads to the same otel_traces rows, every column, as sending the spans straight to the built-in receiver', () => {
    expect(viaCollector.traces).toHaveLength(sent.length)
    expect(viaCollector.traces).toEqual(direct.traces)
  })

  it('leads to the same nhi_activity rows, with identities resolved, as the built-in receiver', () => {
    expect(viaCollector.activity).toEqual(direct.activity)
    const bySpan = Object.fromEntries(sent.map((s) => [s.spanContext().spanId, s.name]))
    const ledger = viaCollector.activity.map((r) => ({
      span: bySpan[r.span_id as string],
      nhi_id: r.nhi_id,
      nhi_type: r.nhi_type,
      activity_type: r.activity_type,
      activity_name: r.activity_name,
      status: r.status,
    }))
    expect(ledger).toEqual(
      expect.arrayContaining([
        { span: 'GET /v1/invoices', nhi_id: 'svc-billing', nhi_type: 'service_account', activity_type: 'api_call', activity_name: '/v1/invoices', status: 'ok' },
        { span: 'POST /v1/refunds', nhi_id: 'svc-billing', nhi_type: 'service_account', activity_type: 'api_call', activity_name: '/v1/refunds', status: 'error' },
        { span: 'execute_tool search_docs', nhi_id: 'agent-42', nhi_type: 'ai_agent', activity_type: 'tool_invocation', activity_name: 'search_docs', status: 'ok' },
        { span: 'sts exchange', nhi_id: 'agent-resource-7', nhi_type: 'ai_agent', activity_type: 'token_exchange', activity_name: 'sts:AssumeRole', status: 'ok' },
      ]),
    )
    expect(ledger.find((r) => r.span === 'invoke_workflow nightly-reconcile')).toMatchObject({ nhi_id: 'wf-runner', nhi_type: 'workload', activity_type: 'workflow_execution' })
    // Spans that are not use events are kept in otel_traces but are not in the ledger.
    expect(ledger.map((r) => r.span)).not.toContain('heartbeat')
  })

  it('stores no secret on either path', () => {
    const stored = JSON.stringify([viaCollector, direct])
    for (const fragment of SECRET_FRAGMENTS) expect(stored, fragment).not.toContain(fragment)
  })
})

describe.skipIf(!collector.path)('the shipped Collector config while ClickHouse is unreachable', () => {
  it('keeps accepted spans in its on-disk queue across a restart instead of dropping them', async () => {
    const env = {
      // Nothing listens there: every INSERT fails and is retried.
      CLICKHOUSE_ENDPOINT: `tcp://127.0.0.1:${await freePort()}`,
      OTELCOL_QUEUE_DIR: mkdtempSync(join(tmpdir(), 'nhi-otelcol-queue-')),
    }
    const queued = async (c: RunningCollector) => collectorMetric(c, 'otelcol_exporter_queue_size')
    const first = await startCollector(collector.path!, [OTELCOL_CONFIG], env)
    try {
      const spans = await corpus()
      expect(exported(await sendSpans(spans, { url: first.otlpHttpUrl, protocol: 'protobuf' }))).toBe(true)
      expect(await queued(first)).toBe(1)
    } finally {
      expect(await first.stop(), first.output()).toBe(0)
    }
    const second = await startCollector(collector.path!, [OTELCOL_CONFIG], env)
    try {
      expect(await queued(second), second.output()).toBe(1)
    } finally {
      await second.stop()
    }
  }, 60_000)
})
