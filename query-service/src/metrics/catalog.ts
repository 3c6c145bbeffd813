/**
 * Every metric the service exposes about itself, defined once: its
 * OpenTelemetry name, instrument kind, unit, description and attributes.
 * The Prometheus name is derived from these (prometheusName), the README's
 * metrics table is checked against this list (metrics/docs.test.ts), and the
 * service dashboard's queries are checked against a real scrape.
 */

/** How a metric is recorded, in OpenTelemetry terms. */
export type MetricKind = 'counter' | 'updowncounter' | 'gauge' | 'histogram'

/** One metric's definition. */
export interface MetricDefinition {
  /** OpenTelemetry instrument name (dots between namespaces). */
  name: string
  kind: MetricKind
  /** UCUM unit, or an annotation in braces (`{span}`) for a plain count. */
  unit: string
  description: string
  /** Attribute names (Prometheus labels after dots become underscores). */
  attributes: readonly string[]
  /** Histogram bucket boundaries, in the metric's unit. */
  buckets?: readonly number[]
}

/** Bucket boundaries for durations in seconds (the HTTP semantic conventions' advice). */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] as const
/** Background jobs run for seconds to minutes. */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600] as const

/** The service's metrics, keyed by how the code refers to them. */
export const METRICS = {
  spansReceived: {
    name: 'nhi_meter.otlp.spans.received',
    kind: 'counter',
    unit: '{span}',
    description: 'Spans decoded from OTLP export requests; every one is then either accepted or refused.',
    attributes: [],
  },
  spansAccepted: {
    name: 'nhi_meter.otlp.spans.accepted',
    kind: 'counter',
    unit: '{span}',
    description: 'Spans acknowledged to the client: in the durable ingest log.',
    attributes: [],
  },
  spansRefused: {
    name: 'nhi_meter.otlp.spans.refused',
    kind: 'counter',
    unit: '{span}',
    description: 'Spans decoded but not accepted, by reason: invalid (partial success), queue_full (429), storage_unavailable or shutting_down (503), internal (500).',
    attributes: ['error.type'],
  },
  exportRequests: {
    name: 'nhi_meter.otlp.export.requests',
    kind: 'counter',
    unit: '{request}',
    description: 'OTLP export requests answered by the built-in receiver, by HTTP status.',
    attributes: ['http.response.status_code'],
  },
  ingestLogSpans: {
    name: 'nhi_meter.ingest_log.spans',
    kind: 'gauge',
    unit: '{span}',
    description: 'Spans in the durable ingest log not yet in ClickHouse (the queue).',
    attributes: [],
  },
  ingestLogSize: {
    name: 'nhi_meter.ingest_log.size',
    kind: 'gauge',
    unit: 'By',
    description: 'Bytes of exports in the durable ingest log not yet in ClickHouse.',
    attributes: [],
  },
  ingestLogLimitSpans: {
    name: 'nhi_meter.ingest_log.limit.spans',
    kind: 'gauge',
    unit: '{span}',
    description: 'Spans the ingest log may hold before the receiver answers 429 (NHI_METER_OTLP_MAX_QUEUED_SPANS).',
    attributes: [],
  },
  ingestLogLimitSize: {
    name: 'nhi_meter.ingest_log.limit.size',
    kind: 'gauge',
    unit: 'By',
    description: 'Bytes the ingest log may hold before the receiver answers 429 (NHI_METER_INGEST_LOG_MAX_BYTES).',
    attributes: [],
  },
  insertDuration: {
    name: 'db.client.operation.duration',
    kind: 'histogram',
    unit: 's',
    description: 'Duration of the inserts that move the ingest log into ClickHouse; failed ones carry error.type.',
    attributes: ['db.system.name', 'db.operation.name', 'db.collection.name', 'error.type'],
    buckets: SECONDS_BUCKETS,
  },
  rowsInserted: {
    name: 'nhi_meter.clickhouse.rows.inserted',
    kind: 'counter',
    unit: '{row}',
    description: 'Rows ClickHouse has taken from the ingest log.',
    attributes: ['db.collection.name'],
  },
  storageErrors: {
    name: 'nhi_meter.storage.errors',
    kind: 'counter',
    unit: '{error}',
    description: 'Failed storage operations by kind (disk_full, unavailable, other) and by what failed (ingest_insert, api, job).',
    attributes: ['error.type', 'nhi_meter.operation'],
  },
  jobDuration: {
    name: 'nhi_meter.job.duration',
    kind: 'histogram',
    unit: 's',
    description: 'Duration of background job runs; failed runs carry error.type.',
    attributes: ['nhi_meter.job', 'error.type'],
    buckets: JOB_BUCKETS,
  },
  jobLag: {
    name: 'nhi_meter.job.lag',
    kind: 'gauge',
    unit: 's',
    description: 'Seconds since a periodic job last finished a run successfully (since it was scheduled, before its first success).',
    attributes: ['nhi_meter.job'],
  },
  findingsOpen: {
    name: 'nhi_meter.findings.open',
    kind: 'gauge',
    unit: '{finding}',
    description: 'Findings over the last 30 days at the last evaluation, as GET /v1/findings reports them, by kind and severity.',
    attributes: ['nhi_meter.finding.kind', 'nhi_meter.finding.severity'],
  },
  findingsOpened: {
    name: 'nhi_meter.findings.opened',
    kind: 'counter',
    unit: '{finding}',
    description: 'Findings (kind, identity, severity) present at an evaluation and absent from the one before; the first evaluation after start only records what is open.',
    attributes: ['nhi_meter.finding.kind', 'nhi_meter.finding.severity'],
  },
  httpDuration: {
    name: 'http.server.request.duration',
    kind: 'histogram',
    unit: 's',
    description: 'Query API requests by route template (never the raw path), method and status, and how long they took.',
    attributes: ['http.request.method', 'http.route', 'http.response.status_code'],
    buckets: SECONDS_BUCKETS,
  },
  refusedKeys: {
    name: 'nhi_meter.auth.refused_keys',
    kind: 'counter',
    unit: '{request}',
    description: 'Requests refused for a missing, malformed or unknown API key (401), on the query API or the receiver.',
    attributes: ['nhi_meter.listener'],
  },
  rateLimited: {
    name: 'nhi_meter.rate_limited_requests',
    kind: 'counter',
    unit: '{request}',
    description: 'Requests answered 429 by a rate limit: per_key (NHI_METER_RATE_LIMIT_PER_SECOND) or refused_keys (NHI_METER_AUTH_FAILURES_PER_MINUTE).',
    attributes: ['nhi_meter.listener', 'nhi_meter.rate_limit'],
  },
  processCpu: {
    name: 'process.cpu.time',
    kind: 'counter',
    unit: 's',
    description: 'CPU time of the process, by mode (user, system).',
    attributes: ['cpu.mode'],
  },
  processMemory: {
    name: 'process.memory.usage',
    kind: 'updowncounter',
    unit: 'By',
    description: 'Resident set size of the process (physical memory in use).',
    attributes: [],
  },
  heapUsed: {
    name: 'v8js.memory.heap.used',
    kind: 'updowncounter',
    unit: 'By',
    description: 'V8 heap in use, all heap spaces together.',
    attributes: [],
  },
  uptime: {
    name: 'process.uptime',
    kind: 'gauge',
    unit: 's',
    description: 'Seconds since the process started.',
    attributes: [],
  },
} as const satisfies Record<string, MetricDefinition>

/** Units as Prometheus names spell them (OpenTelemetry's Prometheus compatibility specification). */
const UNIT_WORDS: Record<string, string> = { s: 'seconds', ms: 'milliseconds', By: 'bytes', '1': 'ratio' }

/**
 * The name a Prometheus scrape shows (the series of a counter add `_total`,
 * those of a histogram `_bucket`, `_sum` and `_count`): dots become
 * underscores and the unit is appended in words; annotations in braces
 * (`{span}`) are dropped. The Prometheus exporter in use does not add units
 * itself, so the service renames each metric with a view (endpoint.ts).
 */
export function prometheusName(metric: MetricDefinition): string {
  const base = metric.name.replace(/[^A-Za-z0-9_:]/g, '_').replace(/_+/g, '_')
  const unit = metric.unit.startsWith('{') ? '' : (UNIT_WORDS[metric.unit] ?? metric.unit)
  // The ratio suffix is for gauges only, and a name that already ends in its unit keeps one.
  if (!unit || (unit === 'ratio' && metric.kind !== 'gauge') || base.endsWith(`_${unit}`)) return base
  return `${base}_${unit}`
}

/** The series names a scrape shows for a metric. */
export function prometheusSeriesNames(metric: MetricDefinition): string[] {
  const name = prometheusName(metric)
  if (metric.kind === 'counter') return [`${name}_total`]
  if (metric.kind === 'histogram') return [`${name}_bucket`, `${name}_sum`, `${name}_count`]
  return [name]
}
