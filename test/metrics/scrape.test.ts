/**
 * nhi-meter's own metrics, read the way an operator reads them: a real
 * Prometheus (built from the Go module proxy, scripts/prometheus.sh) runs
 * the scrape config that docker-compose ships (dashboards/prometheus/), with
 * the target pointed at a service under test, while the OpenTelemetry SDK's
 * batch processor and OTLP exporter send spans to the built-in receiver.
 * The counters Prometheus stores must move by exactly what was sent,
 * refused and asked. The service dashboard's and the alert rules' PromQL may
 * only name series that the service's scrape shows (and, for the Collector
 * panels, that the Collector built from collector-config/ shows).
 */
import { BatchSpanProcessor, BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { renderAlertRules } from '../../dashboards/alerts.js'
import { renderDashboards } from '../../dashboards/definitions.js'
import { promqlMetricNames } from '../../dashboards/promql.js'
import { loadDefaultPolicy } from '../../query-service/src/policy/index.js'
import { parseScrape, prometheusBinary, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js'
import { makeSpans, sendSpans } from '../helpers/otel.js'
import { freePort, REPO_ROOT, startService, type ServiceUnderTest } from '../helpers/service.js'
import { collectorBinary, OTELCOL_CONFIG, startCollector, TEST_OVERLAY } from '../collector/collector.js'

const prometheus = prometheusBinary()
if (prometheus.skipReason) console.warn(`test/metrics/scrape.test.ts: skipping the tests that need Prometheus. ${prometheus.skipReason}`)

const SPANS = 1_000
const BATCH = 100

let service: ServiceUnderTest
let scraper: RunningPrometheus | undefined

/** The compose scrape config with the nhi-meter job pointed at the service under test, scraped every second. */
function scrapeConfig(metricsUrl: string): Record<string, unknown> {
  const shipped = parse(readFileSync(join(REPO_ROOT, 'dashboards/prometheus/prometheus.yml'), 'utf8')) as {
    global: Record<string, unknown>
    scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>
  }
  const job = shipped.scrape_configs.find((c) => c.job_name === 'nhi-meter')!
  return {
    global: { ...shipped.global, scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ ...job, static_configs: [{ targets: [new URL(metricsUrl).host] }] }],
  }
}

/** Waits until Prometheus's latest sample of `promql` (one series, or their sum) reaches `expected`, then returns it. */
async function settled(promql: string, expected: number, deadlineMs = 30_000): Promise<number> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    const samples = await scraper!.query(promql)
    const value = samples.reduce((sum, s) => sum + s.value, 0)
    if ((samples.length > 0 && value >= expected) || Date.now() > deadline) return samples.length > 0 ? value : Number.NaN
    await new Promise((r) => setTimeout(r, 250))
  }
}

const scope = '{job="nhi-meter"}'
const withLabels = (labels: string) => `{job="nhi-meter",${labels}}`

/** Sends `count` spans through the SDK's batch processor and OTLP/protobuf exporter, as an application does. */
async function sendThroughSdk(count: number, key: string): Promise<void> {
  const exporter = new OTLPTraceExporter({ url: service.otlpUrl, headers: { Authorization: `Bearer ${key}` } })
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'metrics-test', 'nhi.id': 'svc-metrics', 'nhi.type': 'service_account' }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: BATCH, maxQueueSize: count, scheduledDelayMillis: 50 })],
  })
  const tracer = provider.getTracer('nhi-meter-metrics-test')
  for (let i = 0; i < count; i++) {
    tracer.startSpan(`GET /v1/orders/${i}`, { attributes: { 'nhi.activity.type': 'api_call', 'nhi.activity.name': '/v1/orders/:id' } }).end()
    // Let the processor export while spans are still being made, so scrapes land in the middle of ingest.
    if (i % BATCH === BATCH - 1) await new Promise((r) => setTimeout(r, 20))
  }
  await provider.forceFlush()
  await provider.shutdown()
}

beforeAll(async () => {
  service = await startService({ env: { NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS: '2' }, timeoutMs: 60_000 })
  if (prometheus.path) scraper = await startPrometheus(prometheus.path, scrapeConfig(service.metricsUrl!))
}, 120_000)

afterAll(async () => {
  await scraper?.stop()
  await service?.stop()
})

describe.skipIf(!prometheus.path)('a real Prometheus scraping the service during ingest', () => {
  it('sees the received and accepted span counters move by exactly the spans the SDK exporter sent, and none refused', async () => {
    // The counters start at zero, so Prometheus has a sample before the first span.
    expect(await settled(`nhi_meter_otlp_spans_received_total${scope}`, 0)).toBe(0)
    await sendThroughSdk(SPANS, service.adminKey!)
    expect(await settled(`nhi_meter_otlp_spans_received_total${scope}`, SPANS)).toBe(SPANS)
    expect(await settled(`nhi_meter_otlp_spans_accepted_total${scope}`, SPANS)).toBe(SPANS)
    expect(await settled(`sum(nhi_meter_otlp_spans_refused_total${scope})`, 0)).toBe(0)
    // Every export was answered 200: SPANS / BATCH requests at least (the processor may send smaller batches).
    expect(await settled(`nhi_meter_otlp_export_requests_total${withLabels('http_response_status_code="200"')}`, SPANS / BATCH)).toBeGreaterThanOrEqual(SPANS / BATCH)
  })

  it('sees every accepted span inserted into ClickHouse, the insert latency histogram filled, and the queue drained', async () => {
    expect(await settled(`nhi_meter_clickhouse_rows_inserted_total${withLabels('db_collection_name="otel_traces"')}`, SPANS)).toBe(SPANS)
    expect(await settled(`db_client_operation_duration_seconds_count${withLabels('db_system_name="clickhouse",db_operation_name="INSERT"')}`, 1)).toBeGreaterThanOrEqual(1)
    // Once stored, nothing waits in the ingest log.
    expect(await settled(`nhi_meter_ingest_log_spans${scope} == 0`, 0)).toBe(0)
    expect(await settled(`nhi_meter_ingest_log_size_bytes${scope} == 0`, 0)).toBe(0)
    expect(await settled(`nhi_meter_ingest_log_limit_spans${scope}`, 1)).toBe(5_000_000)
  })

  it('counts an invalid span as received and refused, and a refused key on the receiver as a 401 export', async () => {
    const [received, refused, refusedKeys, unauthorised] = await Promise.all([
      settled(`nhi_meter_otlp_spans_received_total${scope}`, 0),
      settled(`nhi_meter_otlp_spans_refused_total${withLabels('error_type="invalid"')}`, 0),
      settled(`nhi_meter_auth_refused_keys_total${withLabels('nhi_meter_listener="otlp"')}`, 0),
      settled(`sum(nhi_meter_otlp_export_requests_total${withLabels('http_response_status_code="401"')}) or vector(0)`, 0),
    ])
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'metrics-test' } }] },
          scopeSpans: [
            {
              spans: [
                { traceId: '00000000000000000000000000000000', spanId: '0102030405060708', name: 'zero trace id', startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' },
                { traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'good', startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' },
              ],
            },
          ],
        },
      ],
    })
    const partial = await fetch(service.otlpUrl, { method: 'POST', headers: { 'content-type': 'application/json', Authorization: `Bearer ${service.adminKey}` }, body })
    expect(partial.status).toBe(200)
    const wrongKey = await fetch(service.otlpUrl, { method: 'POST', headers: { 'content-type': 'application/json', Authorization: 'Bearer nhim_not-a-key' }, body })
    expect(wrongKey.status).toBe(401)
    expect(await settled(`nhi_meter_otlp_spans_received_total${scope}`, received + 2)).toBe(received + 2)
    expect(await settled(`nhi_meter_otlp_spans_refused_total${withLabels('error_type="invalid"')}`, refused + 1)).toBe(refused + 1)
    expect(await settled(`nhi_meter_auth_refused_keys_total${withLabels('nhi_meter_listener="otlp"')}`, refusedKeys + 1)).toBe(refusedKeys + 1)
    expect(await settled(`sum(nhi_meter_otlp_export_requests_total${withLabels('http_response_status_code="401"')})`, unauthorised + 1)).toBe(unauthorised + 1)
  })

  it('counts API requests by route template, never by raw path, with their status', async () => {
    const headers = { Authorization: `Bearer ${service.adminKey}` }
    // Three raw paths of one route: an identity the spans named (200) and two nobody knows (404).
    const statuses = []
    for (const id of ['svc-metrics', 'svc-metrics-unknown-1', 'svc-metrics-unknown-2']) statuses.push((await fetch(`${service.apiUrl}/v1/identities/${id}/activity`, { headers })).status)
    expect(statuses).toEqual([200, 404, 404])
    expect((await fetch(`${service.apiUrl}/v1/billable`, { headers: { Authorization: 'Bearer nhim_wrong' } })).status).toBe(401)
    const route = (template: string, status: number) => `http_server_request_duration_seconds_count${withLabels(`http_route="${template}",http_response_status_code="${status}"`)}`
    expect(await settled(route('/v1/identities/:id/activity', 200), 1)).toBe(1)
    expect(await settled(route('/v1/identities/:id/activity', 404), 2)).toBe(2)
    expect(await settled(route('/v1/billable', 401), 1)).toBe(1)
    expect(await settled(`nhi_meter_auth_refused_keys_total${withLabels('nhi_meter_listener="api"')}`, 1)).toBe(1)
    const routes = await scraper!.query(`count by (http_route) (http_server_request_duration_seconds_count${scope})`)
    for (const r of routes) expect(r.labels.http_route ?? '', 'a raw path became a label').not.toMatch(/svc-metrics-/)
  })

  it('shows background jobs with their durations and lag, and the process CPU and memory', async () => {
    expect(await settled(`nhi_meter_job_duration_seconds_count${withLabels('nhi_meter_job="identity_backfill"')}`, 1)).toBe(1)
    expect(await settled(`sum(nhi_meter_job_duration_seconds_count${withLabels('nhi_meter_job="usage_summary"')})`, 1)).toBeGreaterThanOrEqual(1)
    expect(await settled(`sum(nhi_meter_job_duration_seconds_count${withLabels('nhi_meter_job="findings_evaluation"')})`, 1)).toBeGreaterThanOrEqual(1)
    const lags = await scraper!.query(`nhi_meter_job_lag_seconds${scope}`)
    expect(new Set(lags.map((l) => l.labels.nhi_meter_job))).toEqual(new Set(['usage_summary', 'trace_resolution', 'findings_evaluation']))
    expect(await settled(`sum(process_cpu_time_seconds_total${scope})`, Number.MIN_VALUE)).toBeGreaterThan(0)
    expect(await settled(`process_memory_usage_bytes${scope}`, 1)).toBeGreaterThan(1024 * 1024)
  })
})

describe('the metrics endpoint', () => {
  it('is not served on the API port', async () => {
    const response = await fetch(`${service.apiUrl}/metrics`)
    expect(response.status).toBe(404)
    expect(await response.text()).not.toContain('nhi_meter_otlp')
  })

  it('answers only GET /metrics, in the Prometheus text format', async () => {
    const scrape = await fetch(service.metricsUrl!)
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(parseScrape(await scrape.text()).has('nhi_meter_otlp_spans_received_total')).toBe(true)
    expect((await fetch(service.metricsUrl!.replace('/metrics', '/v1/billable'))).status).toBe(404)
    expect((await fetch(service.metricsUrl!, { method: 'POST' })).status).toBe(405)
  })

  it('names only series the service exposes, in every query of the service dashboard and of the alert rules', async () => {
    const policy = (await loadDefaultPolicy()).policy
    const dashboard = renderDashboards(policy).find((d) => d.file === 'service.json')!.json as { panels: Array<{ title: string; targets?: Array<{ expr?: string; datasource: { uid: string } }> }> }
    const queries = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).filter((t) => t.expr !== undefined).map((t) => ({ where: `dashboard panel ${p.title}`, expr: t.expr! }))),
      ...renderAlertRules(policy).groups.flatMap((g) =>
        g.rules.flatMap((r) => r.data.filter((d) => d.datasourceUid === 'nhi-prometheus').map((d) => ({ where: `alert rule ${r.title}`, expr: String((d.model as { expr: string }).expr) }))),
      ),
    ]
    expect(queries.length).toBeGreaterThan(5)
    // Series that appear once something has happened (a finding, a job run) get a while to show.
    const deadline = Date.now() + 30_000
    let missing: string[] = []
    do {
      const exposed = parseScrape(await (await fetch(service.metricsUrl!)).text())
      missing = queries.flatMap(({ where, expr }) =>
        promqlMetricNames(expr)
          .filter((name) => !name.startsWith('otelcol_') && !exposed.has(name))
          .map((name) => `${where}: ${name}`),
      )
      if (missing.length === 0) break
      await new Promise((r) => setTimeout(r, 500))
    } while (Date.now() < deadline)
    expect(missing).toEqual([])
    // Each query is valid PromQL to a real Prometheus (Grafana's $__rate_interval stands in as 1m).
    if (scraper) for (const { where, expr } of queries) await expect(scraper.query(expr.replaceAll('$__rate_interval', '1m')), where).resolves.toBeInstanceOf(Array)
  })
})

const collector = collectorBinary()
if (collector.skipReason) console.warn(`test/metrics/scrape.test.ts: skipping the check of the Collector's metric names. ${collector.skipReason}`)

describe.skipIf(!collector.path)("the service dashboard's Collector panels", () => {
  it('name only series the Collector of collector-config exposes (the shipped config with ClickHouse away, and the test overlay exporting)', async () => {
    const policy = (await loadDefaultPolicy()).policy
    const dashboard = renderDashboards(policy).find((d) => d.file === 'service.json')!.json as { panels: Array<{ title: string; targets?: Array<{ expr?: string }> }> }
    const wanted = new Set(dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => promqlMetricNames(t.expr ?? ''))).filter((n) => n.startsWith('otelcol_')))
    expect(wanted.size).toBeGreaterThan(4)
    // The shipped config queues for ClickHouse (queue gauges); the overlay exports to a file and, refused for want of a key, to the service.
    const shipped = await startCollector(collector.path!, [OTELCOL_CONFIG], { CLICKHOUSE_ENDPOINT: `tcp://127.0.0.1:${await freePort()}`, OTELCOL_QUEUE_DIR: mkdtempSync(join(tmpdir(), 'nhi-otelcol-queue-')) })
    const overlaid = await startCollector(collector.path!, [OTELCOL_CONFIG, TEST_OVERLAY], { NHI_TEST_EMITTED_FILE: join(mkdtempSync(join(tmpdir(), 'nhi-otelcol-out-')), 'emitted.json'), NHI_TEST_RECEIVER_TRACES_URL: service.otlpUrl })
    try {
      const spans = await makeSpans({ 'service.name': 'metrics-test' }, (tracer) => tracer.startSpan('one').end())
      for (const c of [shipped, overlaid]) await sendSpans(spans, { url: c.otlpHttpUrl, protocol: 'protobuf' })
      const deadline = Date.now() + 30_000
      let missing: string[] = []
      do {
        const exposed = new Set<string>()
        for (const c of [shipped, overlaid]) for (const name of parseScrape(await (await fetch(c.metricsUrl)).text()).keys()) exposed.add(name)
        missing = [...wanted].filter((name) => !exposed.has(name))
        if (missing.length === 0) break
        await new Promise((r) => setTimeout(r, 500))
      } while (Date.now() < deadline)
      expect(missing).toEqual([])
    } finally {
      await shipped.stop()
      await overlaid.stop()
    }
  }, 90_000)
})

describe('a metrics port that is taken', () => {
  it('stops start-up with a message naming NHI_METER_METRICS_PORT', async () => {
    const taken = createServer().listen(0, '127.0.0.1')
    await once(taken, 'listening')
    try {
      const port = (taken.address() as AddressInfo).port
      await expect(startService({ env: { NHI_METER_METRICS_PORT: String(port) }, timeoutMs: 60_000 })).rejects.toThrow(/NHI_METER_METRICS_PORT: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/)
    } finally {
      taken.close()
    }
  })
})

describe('a service with NHI_METER_METRICS_PORT=off', () => {
  it('starts, serves its API and receiver, and listens on no metrics port', async () => {
    const quiet = await startService({ env: { NHI_METER_METRICS_PORT: 'off' }, timeoutMs: 60_000 })
    try {
      expect(quiet.metricsUrl).toBeUndefined()
      expect(quiet.output()).not.toContain('metrics (Prometheus) on')
      expect((await fetch(`${quiet.apiUrl}/healthz`)).status).toBe(200)
    } finally {
      await quiet.stop()
    }
  })
})
