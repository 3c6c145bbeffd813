/**
 * The service dashboard: nhi-meter watched as a service, from its own
 * metrics (query-service/src/metrics/catalog.ts) and, when the Collector is
 * in the stack, the Collector's internal telemetry, both through the
 * provisioned Prometheus. test/metrics/scrape.test.ts checks every series
 * named here against a real scrape of the service and runs every query on
 * a real Prometheus.
 */
import type { DashboardSpec, PanelSpec } from './model.js'

/** Series selector of the service's scrape job (dashboards/prometheus/prometheus.yml). */
export const SERVICE_JOB = 'job="nhi-meter"'
/** Series selector of the Collector's scrape job. */
export const COLLECTOR_JOB = 'job="otel-collector"'

const ingest: PanelSpec[] = [
  {
    kind: 'timeseries',
    title: 'Spans received, accepted and refused (per second)',
    description: 'Spans decoded from OTLP exports at the built-in receiver; every received span is accepted (in the durable ingest log) or refused, by reason.',
    w: 12,
    h: 8,
    unit: 'short',
    promql: [
      { expr: `sum(rate(nhi_meter_otlp_spans_received_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: 'received' },
      { expr: `sum(rate(nhi_meter_otlp_spans_accepted_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: 'accepted' },
      { expr: `sum by (error_type) (rate(nhi_meter_otlp_spans_refused_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: 'refused: {{error_type}}' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Export requests by status (per second)',
    description: 'OTLP export requests answered by the receiver: 200, 400 undecodable, 401/403 keys, 413 too large, 415 media type, 429 queue full or too busy, 503 storage.',
    w: 12,
    h: 8,
    unit: 'reqps',
    promql: [{ expr: `sum by (http_response_status_code) (rate(nhi_meter_otlp_export_requests_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: '{{http_response_status_code}}' }],
  },
  {
    kind: 'timeseries',
    title: 'Ingest log: spans waiting for ClickHouse',
    description: 'Spans acknowledged but not yet inserted, against NHI_METER_OTLP_MAX_QUEUED_SPANS: at the limit the receiver answers 429.',
    w: 12,
    h: 8,
    unit: 'short',
    promql: [
      { expr: `sum(nhi_meter_ingest_log_spans{${SERVICE_JOB}})`, legend: 'queued spans' },
      { expr: `sum(nhi_meter_ingest_log_limit_spans{${SERVICE_JOB}})`, legend: 'limit' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Ingest log: bytes waiting for ClickHouse',
    description: 'Bytes of acknowledged exports not yet inserted, against NHI_METER_INGEST_LOG_MAX_BYTES.',
    w: 12,
    h: 8,
    unit: 'bytes',
    promql: [
      { expr: `sum(nhi_meter_ingest_log_size_bytes{${SERVICE_JOB}})`, legend: 'queued bytes' },
      { expr: `sum(nhi_meter_ingest_log_limit_size_bytes{${SERVICE_JOB}})`, legend: 'limit' },
    ],
  },
]

const storage: PanelSpec[] = [
  {
    kind: 'timeseries',
    title: 'ClickHouse insert latency',
    description: 'Inserts that move the ingest log into otel_traces: median and 99th percentile.',
    w: 8,
    h: 8,
    unit: 's',
    promql: [
      { expr: `histogram_quantile(0.5, sum by (le) (rate(db_client_operation_duration_seconds_bucket{${SERVICE_JOB},db_operation_name="INSERT"}[$__rate_interval])))`, legend: 'p50' },
      { expr: `histogram_quantile(0.99, sum by (le) (rate(db_client_operation_duration_seconds_bucket{${SERVICE_JOB},db_operation_name="INSERT"}[$__rate_interval])))`, legend: 'p99' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Rows inserted into ClickHouse (per second)',
    description: 'Spans ClickHouse has taken from the ingest log.',
    w: 8,
    h: 8,
    unit: 'short',
    promql: [{ expr: `sum by (db_collection_name) (rate(nhi_meter_clickhouse_rows_inserted_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: '{{db_collection_name}}' }],
  },
  {
    kind: 'timeseries',
    title: 'Storage errors (per second)',
    description: 'Failed storage operations by kind (disk_full, unavailable, other) and by what failed (ingest_insert, api, job).',
    w: 8,
    h: 8,
    unit: 'short',
    promql: [{ expr: `sum by (error_type, nhi_meter_operation) (rate(nhi_meter_storage_errors_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: '{{nhi_meter_operation}}: {{error_type}}' }],
  },
]

const api: PanelSpec[] = [
  {
    kind: 'timeseries',
    title: 'API latency by route (p99)',
    description: 'Query API requests by route template (never the raw path).',
    w: 12,
    h: 8,
    unit: 's',
    promql: [{ expr: `histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{${SERVICE_JOB}}[$__rate_interval])))`, legend: '{{http_route}}' }],
  },
  {
    kind: 'timeseries',
    title: 'API requests by route and status (per second)',
    description: 'Query API requests; 4xx and 5xx included. Requests no route matched have no route.',
    w: 12,
    h: 8,
    unit: 'reqps',
    promql: [{ expr: `sum by (http_route, http_response_status_code) (rate(http_server_request_duration_seconds_count{${SERVICE_JOB}}[$__rate_interval]))`, legend: '{{http_route}} {{http_response_status_code}}' }],
  },
  {
    kind: 'timeseries',
    title: 'Refused keys and rate-limited requests (per second)',
    description: 'Requests refused for a missing, malformed or unknown key (401), and requests answered 429 by a rate limit, on the API and the receiver.',
    w: 12,
    h: 8,
    unit: 'reqps',
    promql: [
      { expr: `sum by (nhi_meter_listener) (rate(nhi_meter_auth_refused_keys_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: 'refused key: {{nhi_meter_listener}}' },
      { expr: `sum by (nhi_meter_listener, nhi_meter_rate_limit) (rate(nhi_meter_rate_limited_requests_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: 'rate limited: {{nhi_meter_listener}} {{nhi_meter_rate_limit}}' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Open findings by severity',
    description: 'Findings of the last 30 days at the last evaluation (NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS), as GET /v1/findings reports them.',
    w: 12,
    h: 8,
    unit: 'short',
    promql: [{ expr: `sum by (nhi_meter_finding_severity) (nhi_meter_findings_open{${SERVICE_JOB}})`, legend: '{{nhi_meter_finding_severity}}' }],
  },
]

const jobs: PanelSpec[] = [
  {
    kind: 'timeseries',
    title: 'Background job lag',
    description: 'Seconds since each periodic job last finished a run successfully: the usage summary (NHI_METER_ROLLUP_INTERVAL_SECONDS), trace resolution, the findings evaluation. A lag far above the interval means runs fail or take too long.',
    w: 12,
    h: 8,
    unit: 's',
    promql: [{ expr: `max by (nhi_meter_job) (nhi_meter_job_lag_seconds{${SERVICE_JOB}})`, legend: '{{nhi_meter_job}}' }],
  },
  {
    kind: 'timeseries',
    title: 'Background job run duration (mean)',
    description: 'Mean duration of job runs over the interval, failed runs included.',
    w: 12,
    h: 8,
    unit: 's',
    promql: [
      {
        expr: `sum by (nhi_meter_job) (rate(nhi_meter_job_duration_seconds_sum{${SERVICE_JOB}}[$__rate_interval])) / sum by (nhi_meter_job) (rate(nhi_meter_job_duration_seconds_count{${SERVICE_JOB}}[$__rate_interval]))`,
        legend: '{{nhi_meter_job}}',
      },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Process CPU (cores)',
    description: 'CPU time used per second by the service process, user and system.',
    w: 12,
    h: 8,
    unit: 'short',
    promql: [{ expr: `sum by (cpu_mode) (rate(process_cpu_time_seconds_total{${SERVICE_JOB}}[$__rate_interval]))`, legend: '{{cpu_mode}}' }],
  },
  {
    kind: 'timeseries',
    title: 'Process memory',
    description: 'Resident set size of the service process and the V8 heap in use.',
    w: 12,
    h: 8,
    unit: 'bytes',
    promql: [
      { expr: `sum(process_memory_usage_bytes{${SERVICE_JOB}})`, legend: 'resident' },
      { expr: `sum(v8js_memory_heap_used_bytes{${SERVICE_JOB}})`, legend: 'V8 heap used' },
    ],
  },
]

/**
 * The Collector's own metrics (service::telemetry in collector-config/otelcol.yaml); empty when no Collector is
 * scraped. Its Prometheus endpoint (v0.161.0) names counters without `_total`.
 */
const collector: PanelSpec[] = [
  {
    kind: 'timeseries',
    title: 'Collector: spans accepted and refused by its receivers (per second)',
    description: 'otelcol_receiver_* of the Collector in front of ClickHouse (Compose, or your own). No data when no Collector is scraped.',
    w: 8,
    h: 8,
    unit: 'short',
    promql: [
      { expr: `sum by (receiver) (rate(otelcol_receiver_accepted_spans{${COLLECTOR_JOB}}[$__rate_interval]))`, legend: 'accepted: {{receiver}}' },
      { expr: `sum by (receiver) (rate(otelcol_receiver_refused_spans{${COLLECTOR_JOB}}[$__rate_interval]))`, legend: 'refused: {{receiver}}' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Collector: spans sent and failed by its exporters (per second)',
    description: 'otelcol_exporter_sent_spans and otelcol_exporter_send_failed_spans: failures into ClickHouse are retried from the persistent queue.',
    w: 8,
    h: 8,
    unit: 'short',
    promql: [
      { expr: `sum by (exporter) (rate(otelcol_exporter_sent_spans{${COLLECTOR_JOB}}[$__rate_interval]))`, legend: 'sent: {{exporter}}' },
      { expr: `sum by (exporter) (rate(otelcol_exporter_send_failed_spans{${COLLECTOR_JOB}}[$__rate_interval]))`, legend: 'failed: {{exporter}}' },
    ],
  },
  {
    kind: 'timeseries',
    title: 'Collector: sending queue',
    description: 'Batches in the exporter sending queue against its capacity (README "Scaling out" sizes by these).',
    w: 8,
    h: 8,
    unit: 'short',
    promql: [
      { expr: `sum by (exporter) (otelcol_exporter_queue_size{${COLLECTOR_JOB}})`, legend: 'queued: {{exporter}}' },
      { expr: `sum by (exporter) (otelcol_exporter_queue_capacity{${COLLECTOR_JOB}})`, legend: 'capacity: {{exporter}}' },
    ],
  },
]

/** The service dashboard. */
export function serviceDashboard(): DashboardSpec {
  return {
    uid: 'nhi-meter-service',
    title: 'nhi-meter / Service health',
    description: 'nhi-meter itself: ingest, the ingest log, ClickHouse inserts, the API, background jobs and the process, from its Prometheus metrics (NHI_METER_METRICS_PORT); and the Collector in front of it when there is one.',
    file: 'service.json',
    from: 'now-6h',
    variables: [],
    panels: [...ingest, ...storage, ...api, ...jobs, ...collector],
  }
}
