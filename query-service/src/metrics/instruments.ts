/**
 * The service's own metrics as typed recording calls, so the code that
 * takes spans, inserts, authenticates or runs jobs says what happened in one
 * line and knows nothing of meters. `createServiceMetrics(meter)` builds them
 * on a real meter (endpoint.ts); `NOOP_METRICS` records nothing and is every
 * component's default, so tests and benchmarks that build parts themselves
 * need no metrics at all. Recording never throws into the caller.
 */
import { createNoopMeter, type Attributes, type Meter, type ObservableResult } from '@opentelemetry/api'
import { FINDING_KINDS, SEVERITIES } from '../findings/kinds.js'
import { isStorageUnavailable } from '../storage/availability.js'
import { isDiskFull } from '../storage/disk-space.js'
import { METRICS, type MetricDefinition } from './catalog.js'

/** Why a decoded span was not accepted. */
export type SpanRefusal = 'invalid' | 'queue_full' | 'storage_unavailable' | 'shutting_down' | 'internal'
/** Which listener a request came to. */
export type Listener = 'api' | 'otlp'
/** Which rate limit answered 429. */
export type RateLimit = 'per_key' | 'refused_keys'
/** What was being done when storage failed. */
export type StorageOperation = 'ingest_insert' | 'api' | 'job'
/** How storage failed. */
export type StorageErrorKind = 'disk_full' | 'unavailable' | 'other'
/** The background jobs (service.ts schedules them). */
export type JobName = 'usage_summary' | 'trace_resolution' | 'identity_backfill' | 'findings_digest_backfill' | 'findings_evaluation'

/** Wraps one run of a job: times it, counts its failure, and for a periodic job resets its lag on success. */
export type RunObserver = <T>(run: () => Promise<T>) => Promise<T>

/** Passes the run through untouched: the default of every scheduler. */
export const UNOBSERVED: RunObserver = (run) => run()

/** The recording calls, by the part of the service that makes them. */
export interface ServiceMetrics {
  otlp: {
    /** One export request answered with `status`. */
    exportAnswered(status: number): void
    /** Spans decoded from one export request. */
    spansReceived(count: number): void
    spansAccepted(count: number): void
    spansRefused(count: number, reason: SpanRefusal): void
  }
  storage: {
    /** One insert of the ingest log into `table`, `rows` rows, that took `seconds`. */
    inserted(table: string, rows: number, seconds: number): void
    /** One failed insert into `table` that took `seconds`. */
    insertFailed(table: string, seconds: number, error: unknown): void
    /** A storage failure met while doing `operation`. */
    failed(operation: StorageOperation, error: unknown): void
  }
  auth: {
    refusedKey(listener: Listener): void
    rateLimited(listener: Listener, limit: RateLimit): void
  }
  http: {
    /** One query API request; `route` is the matched route template, undefined when no route matched. */
    request(method: string, route: string | undefined, status: number, seconds: number): void
  }
  jobs: {
    /** Observer for the runs of a periodic job; its lag is exposed from now on. */
    periodic(job: JobName): RunObserver
    /** Runs a one-off job (a start-up backfill) and records its duration. */
    once<T>(job: JobName, run: () => Promise<T>): Promise<T>
  }
  findings: {
    /** The findings of one evaluation (as GET /v1/findings lists them): sets the open gauges and counts those not open at the previous one. */
    evaluated(findings: ReadonlyArray<{ kind: string; nhi_id: string | null; severity: string }>): void
  }
  /** Registers a callback that reports gauges at collection time (queue depth); errors in it are contained. */
  observe(callback: (report: GaugeReport) => void): void
}

/** What an observation callback may report. */
export interface GaugeReport {
  ingestLog(state: { spans: number; bytes: number; maxSpans: number; maxBytes: number }): void
}

/** Storage failure kind, as the metrics label it. */
export function storageErrorKind(error: unknown): StorageErrorKind {
  if (isDiskFull(error)) return 'disk_full'
  if (isStorageUnavailable(error)) return 'unavailable'
  return 'other'
}

/** Error label of a failed run or insert: the kind of storage failure when it is one, else the error's class. */
function errorType(error: unknown): string {
  const kind = storageErrorKind(error)
  if (kind !== 'other') return kind
  return error instanceof Error && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(error.name) ? error.name : 'other'
}

/** HTTP methods the semantic conventions name; anything else is recorded as _OTHER, so a client cannot mint series. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'])

const instrumentOptions = (m: MetricDefinition) => ({
  description: m.description,
  unit: m.unit,
  ...(m.buckets ? { advice: { explicitBucketBoundaries: [...m.buckets] } } : {}),
})

/** Builds the recording calls on `meter`; series whose labels are known in advance start at zero. */
export function createServiceMetrics(meter: Meter, clock: () => number = () => performance.now()): ServiceMetrics {
  const received = meter.createCounter(METRICS.spansReceived.name, instrumentOptions(METRICS.spansReceived))
  const accepted = meter.createCounter(METRICS.spansAccepted.name, instrumentOptions(METRICS.spansAccepted))
  const refused = meter.createCounter(METRICS.spansRefused.name, instrumentOptions(METRICS.spansRefused))
  const exports = meter.createCounter(METRICS.exportRequests.name, instrumentOptions(METRICS.exportRequests))
  const insertDuration = meter.createHistogram(METRICS.insertDuration.name, instrumentOptions(METRICS.insertDuration))
  const rowsInserted = meter.createCounter(METRICS.rowsInserted.name, instrumentOptions(METRICS.rowsInserted))
  const storageErrors = meter.createCounter(METRICS.storageErrors.name, instrumentOptions(METRICS.storageErrors))
  const jobDuration = meter.createHistogram(METRICS.jobDuration.name, instrumentOptions(METRICS.jobDuration))
  const httpDuration = meter.createHistogram(METRICS.httpDuration.name, instrumentOptions(METRICS.httpDuration))
  const refusedKeys = meter.createCounter(METRICS.refusedKeys.name, instrumentOptions(METRICS.refusedKeys))
  const rateLimited = meter.createCounter(METRICS.rateLimited.name, instrumentOptions(METRICS.rateLimited))
  const findingsOpened = meter.createCounter(METRICS.findingsOpened.name, instrumentOptions(METRICS.findingsOpened))

  // Zero series, so rate() and increase() work from the first scrape and a dashboard shows 0, not "no data".
  received.add(0)
  accepted.add(0)
  for (const reason of ['invalid', 'queue_full', 'storage_unavailable', 'shutting_down', 'internal'] satisfies SpanRefusal[]) refused.add(0, { 'error.type': reason })
  for (const listener of ['api', 'otlp'] satisfies Listener[]) {
    refusedKeys.add(0, { 'nhi_meter.listener': listener })
    for (const limit of ['per_key', 'refused_keys'] satisfies RateLimit[]) rateLimited.add(0, { 'nhi_meter.listener': listener, 'nhi_meter.rate_limit': limit })
  }
  for (const kind of FINDING_KINDS) for (const severity of SEVERITIES) findingsOpened.add(0, findingLabels(kind, severity))
  for (const operation of ['ingest_insert', 'api', 'job'] satisfies StorageOperation[]) {
    for (const kind of ['disk_full', 'unavailable', 'other'] satisfies StorageErrorKind[]) storageErrors.add(0, { 'error.type': kind, 'nhi_meter.operation': operation })
  }

  const insertAttributes = (table: string): Attributes => ({ 'db.system.name': 'clickhouse', 'db.operation.name': 'INSERT', 'db.collection.name': table })
  const failed = (operation: StorageOperation, error: unknown) => storageErrors.add(1, { 'error.type': storageErrorKind(error), 'nhi_meter.operation': operation })

  // Periodic jobs: when each last succeeded (or was scheduled), for the lag gauge.
  const lastSuccess = new Map<JobName, number>()
  const timed = async <T>(job: JobName, run: () => Promise<T>, periodic: boolean): Promise<T> => {
    const started = clock()
    try {
      const result = await run()
      jobDuration.record((clock() - started) / 1000, { 'nhi_meter.job': job })
      if (periodic) lastSuccess.set(job, clock())
      return result
    } catch (error) {
      jobDuration.record((clock() - started) / 1000, { 'nhi_meter.job': job, 'error.type': errorType(error) })
      if (storageErrorKind(error) !== 'other') failed('job', error)
      throw error
    }
  }

  const lag = meter.createObservableGauge(METRICS.jobLag.name, instrumentOptions(METRICS.jobLag))
  lag.addCallback((result) => {
    const now = clock()
    for (const [job, at] of lastSuccess) result.observe((now - at) / 1000, { 'nhi_meter.job': job })
  })

  const ingestSpans = meter.createObservableGauge(METRICS.ingestLogSpans.name, instrumentOptions(METRICS.ingestLogSpans))
  const ingestSize = meter.createObservableGauge(METRICS.ingestLogSize.name, instrumentOptions(METRICS.ingestLogSize))
  const limitSpans = meter.createObservableGauge(METRICS.ingestLogLimitSpans.name, instrumentOptions(METRICS.ingestLogLimitSpans))
  const limitSize = meter.createObservableGauge(METRICS.ingestLogLimitSize.name, instrumentOptions(METRICS.ingestLogLimitSize))
  const findingsOpen = meter.createObservableGauge(METRICS.findingsOpen.name, instrumentOptions(METRICS.findingsOpen))
  const observers: Array<(report: GaugeReport) => void> = []
  // The last evaluation's findings: counts per kind and severity (every pair, zeros included) and the findings themselves.
  let openFindings: { counts: Map<string, number>; keys: Set<string> } | undefined
  meter.addBatchObservableCallback(
    (batch) => {
      const report: GaugeReport = {
        ingestLog: (state) => {
          batch.observe(ingestSpans, state.spans)
          batch.observe(ingestSize, state.bytes)
          batch.observe(limitSpans, state.maxSpans)
          batch.observe(limitSize, state.maxBytes)
        },
      }
      if (openFindings) for (const [key, count] of openFindings.counts) batch.observe(findingsOpen, count, findingLabels(...(key.split('\u0000') as [string, string])))
      for (const observer of observers) {
        try {
          observer(report)
        } catch {
          // A failing gauge callback leaves its gauges out of this scrape; the rest still report.
        }
      }
    },
    [ingestSpans, ingestSize, limitSpans, limitSize, findingsOpen],
  )
  observeProcess(meter)

  return {
    otlp: {
      exportAnswered: (status) => exports.add(1, { 'http.response.status_code': status }),
      spansReceived: (count) => received.add(count),
      spansAccepted: (count) => accepted.add(count),
      spansRefused: (count, reason) => refused.add(count, { 'error.type': reason }),
    },
    storage: {
      inserted: (table, rows, seconds) => {
        insertDuration.record(seconds, insertAttributes(table))
        rowsInserted.add(rows, { 'db.collection.name': table })
      },
      insertFailed: (table, seconds, error) => {
        insertDuration.record(seconds, { ...insertAttributes(table), 'error.type': errorType(error) })
        failed('ingest_insert', error)
      },
      failed,
    },
    auth: {
      refusedKey: (listener) => refusedKeys.add(1, { 'nhi_meter.listener': listener }),
      rateLimited: (listener, limit) => rateLimited.add(1, { 'nhi_meter.listener': listener, 'nhi_meter.rate_limit': limit }),
    },
    http: {
      request: (method, route, status, seconds) => {
        const attributes: Attributes = { 'http.request.method': KNOWN_METHODS.has(method) ? method : '_OTHER', 'http.response.status_code': status }
        if (route !== undefined) attributes['http.route'] = route
        httpDuration.record(seconds, attributes)
      },
    },
    jobs: {
      periodic: (job) => {
        if (!lastSuccess.has(job)) lastSuccess.set(job, clock())
        return (run) => timed(job, run, true)
      },
      once: (job, run) => timed(job, run, false),
    },
    findings: {
      evaluated: (findings) => {
        const counts = new Map<string, number>()
        for (const kind of FINDING_KINDS) for (const severity of SEVERITIES) counts.set(`${kind}\u0000${severity}`, 0)
        const keys = new Set<string>()
        for (const f of findings) {
          const pair = `${f.kind}\u0000${f.severity}`
          counts.set(pair, (counts.get(pair) ?? 0) + 1)
          const key = `${pair}\u0000${f.nhi_id ?? ''}`
          keys.add(key)
          // The first evaluation only learns what is open: a restart must not announce every open finding again.
          if (openFindings && !openFindings.keys.has(key)) findingsOpened.add(1, findingLabels(f.kind, f.severity))
        }
        openFindings = { counts, keys }
      },
    },
    observe: (callback) => {
      observers.push(callback)
    },
  }
}

function findingLabels(kind: string, severity: string): Attributes {
  return { 'nhi_meter.finding.kind': kind, 'nhi_meter.finding.severity': severity }
}

/** Process CPU time, resident memory, V8 heap and uptime (the process and V8 semantic conventions). */
function observeProcess(meter: Meter): void {
  const cpu = meter.createObservableCounter(METRICS.processCpu.name, instrumentOptions(METRICS.processCpu))
  cpu.addCallback((result: ObservableResult) => {
    const usage = process.cpuUsage()
    result.observe(usage.user / 1e6, { 'cpu.mode': 'user' })
    result.observe(usage.system / 1e6, { 'cpu.mode': 'system' })
  })
  const memory = meter.createObservableUpDownCounter(METRICS.processMemory.name, instrumentOptions(METRICS.processMemory))
  memory.addCallback((result) => result.observe(process.memoryUsage.rss()))
  const heap = meter.createObservableUpDownCounter(METRICS.heapUsed.name, instrumentOptions(METRICS.heapUsed))
  heap.addCallback((result) => result.observe(process.memoryUsage().heapUsed))
  const uptime = meter.createObservableGauge(METRICS.uptime.name, instrumentOptions(METRICS.uptime))
  uptime.addCallback((result) => result.observe(process.uptime()))
}

/** Records nothing: the default wherever metrics are optional. */
export const NOOP_METRICS: ServiceMetrics = createServiceMetrics(createNoopMeter())
