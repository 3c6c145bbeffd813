/**
 * Load generation for the hardening tests: OTLP batches with known span ids
 * (protobuf encoded here, independently of the receiver's decoder, or
 * OTLP/JSON), a sender that retries refused batches the way an OTLP exporter
 * does, and the figures the tests check: spans stored per service (through
 * the API, counted once each), raw rows in the data directory, and the
 * service's peak RSS.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { REPO_ROOT, type ServiceUnderTest } from '../helpers/service.js'

/** One span of a batch, with the attributes that make it a billable use event. */
export interface LoadSpan {
  traceId: string
  spanId: string
  startNs: bigint
}

/** One export request's worth of spans from one service. */
export interface LoadBatch {
  service: string
  nhiId: string
  spans: LoadSpan[]
  /** Characters of filler in one extra attribute per span (large, very compressible bodies). */
  padding?: number
}

/** 32 hex characters (trace id) or 16 (span id), unique per (tag, sequence). */
function hexId(chars: 16 | 32, tag: number, sequence: number): string {
  const tail = sequence.toString(16).padStart(12, '0')
  return `${tag.toString(16).padStart(4, '0')}${'a'.repeat(chars - 16)}${tail}`
}

/** Batch number `index` of a sender: `size` spans with ids no other (tag, index) shares, starting at `dayStartMs` + index seconds. */
export function makeBatch(options: { service: string; nhiId: string; tag: number; index: number; size: number; dayStartMs: number; padding?: number }): LoadBatch {
  const spans: LoadSpan[] = []
  for (let i = 0; i < options.size; i++) {
    const sequence = options.index * options.size + i
    spans.push({
      traceId: hexId(32, options.tag, Math.floor(sequence / 4)),
      spanId: hexId(16, options.tag, sequence),
      startNs: BigInt(options.dayStartMs + (sequence % 86_000) * 1000) * 1_000_000n,
    })
  }
  return { service: options.service, nhiId: options.nhiId, spans, padding: options.padding }
}

// --- protobuf, written from opentelemetry-proto (trace/v1, common/v1, resource/v1) ---

function varint(value: number | bigint): number[] {
  let v = BigInt(value)
  const out: number[] = []
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return out
}

function lengthDelimited(field: number, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(payload.length)]), payload])
}

function stringField(field: number, value: string): Buffer {
  return lengthDelimited(field, Buffer.from(value, 'utf8'))
}

function fixed64Field(field: number, value: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(value)
  return Buffer.concat([Buffer.from(varint((field << 3) | 1)), b])
}

function varintField(field: number, value: number): Buffer {
  return Buffer.from([...varint(field << 3), ...varint(value)])
}

/** KeyValue { key = 1; AnyValue value = 2 { string_value = 1 } } */
function keyValue(key: string, value: string): Buffer {
  return Buffer.concat([stringField(1, key), lengthDelimited(2, stringField(1, value))])
}

const SPAN_ATTRIBUTES: Array<[string, string]> = [
  ['nhi.activity.type', 'api_call'],
  ['nhi.activity.name', 'hardening.load'],
]

function spanAttributes(batch: LoadBatch): Array<[string, string]> {
  return batch.padding ? [...SPAN_ATTRIBUTES, ['hardening.padding', 'x'.repeat(batch.padding)]] : SPAN_ATTRIBUTES
}

/** Encodes an ExportTraceServiceRequest with one resource and one scope. */
export function encodeProtobuf(batch: LoadBatch): Buffer {
  const attributes = spanAttributes(batch).map(([k, v]) => lengthDelimited(9, keyValue(k, v)))
  const resource = Buffer.concat([keyValue('service.name', batch.service), keyValue('nhi.id', batch.nhiId), keyValue('nhi.type', 'workload')].map((kv) => lengthDelimited(1, kv)))
  const spans = batch.spans.map((s) =>
    lengthDelimited(
      2,
      Buffer.concat([
        lengthDelimited(1, Buffer.from(s.traceId, 'hex')),
        lengthDelimited(2, Buffer.from(s.spanId, 'hex')),
        stringField(5, 'hardening.load'),
        varintField(6, 2), // SPAN_KIND_SERVER
        fixed64Field(7, s.startNs),
        fixed64Field(8, s.startNs + 1_000_000n),
        ...attributes,
      ]),
    ),
  )
  const scopeSpans = Buffer.concat([lengthDelimited(1, stringField(1, 'nhi-meter-hardening')), ...spans])
  const resourceSpans = Buffer.concat([lengthDelimited(1, resource), lengthDelimited(2, scopeSpans)])
  return lengthDelimited(1, resourceSpans)
}

/** Encodes the same request as OTLP/JSON. */
export function encodeJson(batch: LoadBatch): Buffer {
  const kv = (key: string, value: string) => ({ key, value: { stringValue: value } })
  return Buffer.from(
    JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [kv('service.name', batch.service), kv('nhi.id', batch.nhiId), kv('nhi.type', 'workload')] },
          scopeSpans: [
            {
              scope: { name: 'nhi-meter-hardening' },
              spans: batch.spans.map((s) => ({
                traceId: s.traceId,
                spanId: s.spanId,
                name: 'hardening.load',
                kind: 2,
                startTimeUnixNano: String(s.startNs),
                endTimeUnixNano: String(s.startNs + 1_000_000n),
                attributes: spanAttributes(batch).map(([k, v]) => kv(k, v)),
              })),
            },
          ],
        },
      ],
    }),
  )
}

/** Wire form of a batch. */
export type WireEncoding = 'protobuf' | 'json' | 'json+gzip' | 'protobuf+gzip'

/** The request body and headers of a batch in the given encoding. */
export function wireRequest(batch: LoadBatch, encoding: WireEncoding): { body: Buffer; headers: Record<string, string> } {
  const json = encoding.startsWith('json')
  const raw = json ? encodeJson(batch) : encodeProtobuf(batch)
  const gzip = encoding.endsWith('+gzip')
  return {
    body: gzip ? gzipSync(raw) : raw,
    headers: { 'content-type': json ? 'application/json' : 'application/x-protobuf', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
  }
}

/** What happened to the attempts of one or more batches. */
export class SendLog {
  /** Answers by HTTP status. */
  readonly statuses = new Map<number, number>()
  /** 429/503 answers without a Retry-After header. */
  missingRetryAfter = 0
  /** Attempts that ended without an HTTP answer, by error code (reset, refused, ...). */
  readonly transportErrors = new Map<string, number>()
  /** Answers outside 200/429/503, with a sample body each. */
  readonly unexpected: string[] = []
  /** Spans acknowledged with a 200. */
  spansAcknowledged = 0

  count(status: number): number {
    return this.statuses.get(status) ?? 0
  }

  transport(): number {
    let n = 0
    for (const v of this.transportErrors.values()) n += v
    return n
  }

  summary(): string {
    const statuses = [...this.statuses].map(([s, n]) => `${s}×${n}`).join(' ')
    const transport = [...this.transportErrors].map(([c, n]) => `${c}×${n}`).join(' ')
    return `statuses ${statuses || 'none'}; transport errors ${transport || 'none'}; missing Retry-After ${this.missingRetryAfter}`
  }
}

function transportCode(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (error as Error).message
}

/** Options of `deliver`. */
export interface DeliverOptions {
  /** The receiver URL now (it changes when the service is restarted on new ports). */
  url: () => string
  headers?: Record<string, string>
  log: SendLog
  /** Longest wait between attempts, whatever Retry-After says (keeps tests short). */
  maxBackoffMs?: number
  /** Give up (throw) after this long. */
  deadlineMs?: number
  /** Called when an attempt starts and when it ends (with the status, or undefined without an answer). */
  onAttempt?: (phase: 'start' | 'end', status?: number) => void
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Sends a batch until it is acknowledged, as an OTLP exporter does:
 * 429/503 are retried after Retry-After (capped), an attempt without an
 * answer (connection reset or refused, e.g. while the service restarts) is
 * retried with backoff. Any other status is recorded as unexpected and
 * ends the delivery (it would be dropped by an exporter too).
 */
export async function deliver(request: { body: Buffer; headers: Record<string, string> }, spans: number, options: DeliverOptions): Promise<boolean> {
  const deadline = Date.now() + (options.deadlineMs ?? 120_000)
  const maxBackoff = options.maxBackoffMs ?? 1000
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > deadline) throw new Error(`batch not accepted before the deadline: ${options.log.summary()}`)
    options.onAttempt?.('start')
    let status: number | undefined
    let retryAfter: string | null = null
    let text = ''
    try {
      const response = await fetch(options.url(), { method: 'POST', headers: { ...request.headers, ...options.headers }, body: request.body })
      status = response.status
      retryAfter = response.headers.get('retry-after')
      text = status === 200 ? '' : await response.text()
      if (status === 200) await response.arrayBuffer().catch(() => undefined)
    } catch (error) {
      const code = transportCode(error)
      options.log.transportErrors.set(code, (options.log.transportErrors.get(code) ?? 0) + 1)
    }
    options.onAttempt?.('end', status)
    if (status !== undefined) options.log.statuses.set(status, options.log.count(status) + 1)
    if (status === 200) {
      options.log.spansAcknowledged += spans
      return true
    }
    if (status === 429 || status === 503) {
      if (retryAfter === null || !/^\d+$/.test(retryAfter)) options.log.missingRetryAfter++
      const seconds = Number(retryAfter ?? '1')
      await sleep(Math.min(seconds * 1000, maxBackoff) * (0.5 + Math.random() / 2))
      continue
    }
    if (status !== undefined) {
      if (options.log.unexpected.length < 20) options.log.unexpected.push(`${status}: ${text.slice(0, 300)}`)
      return false
    }
    await sleep(Math.min(50 * 2 ** Math.min(attempt, 5), maxBackoff))
  }
}

/** Spans stored per service in [from, to), each counted once (the API's telemetry completeness). */
export async function storedSpansByService(service: ServiceUnderTest, key: string, from: Date, to: Date): Promise<Map<string, number>> {
  const response = await fetch(`${service.apiUrl}/v1/telemetry/completeness?from=${from.toISOString()}&to=${to.toISOString()}`, { headers: { Authorization: `Bearer ${key}` } })
  if (response.status !== 200) throw new Error(`completeness answered ${response.status}: ${await response.text()}`)
  const body = (await response.json()) as { services: Array<{ service: string; spans: number }> }
  return new Map(body.services.map((s) => [s.service, s.spans]))
}

/**
 * Stored spans per service once `done` holds for them, polling: an export
 * is acknowledged once it is in the ingest log, and reaches ClickHouse a
 * moment later. Returns the last counts after `timeoutMs` either way (the
 * caller's assertion then says what is missing).
 */
export async function storedSpansOnce(service: ServiceUnderTest, key: string, from: Date, to: Date, done: (stored: Map<string, number>) => boolean, timeoutMs = 60_000): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const stored = await storedSpansByService(service, key, from, to)
    if (done(stored) || Date.now() > deadline) return stored
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** Billable quantity per nhi.id in [from, to) (each span once). */
export async function billableByIdentity(service: ServiceUnderTest, key: string, from: Date, to: Date): Promise<Map<string, number>> {
  const response = await fetch(`${service.apiUrl}/v1/billable?from=${from.toISOString()}&to=${to.toISOString()}&group_by=nhi.id`, { headers: { Authorization: `Bearer ${key}` } })
  if (response.status !== 200) throw new Error(`billable answered ${response.status}: ${await response.text()}`)
  const body = (await response.json()) as { rows: Array<{ 'nhi.id': string; quantity: number }> }
  return new Map(body.rows.map((r) => [r['nhi.id'], r.quantity]))
}

/** Raw rows of one service in a stopped service's data directory. */
export interface RawCounts {
  /** Rows in otel_traces. */
  rows: number
  /** Distinct (TraceId, SpanId) in otel_traces. */
  spans: number
  /** Rows of the ledger read with FINAL (each span once). */
  ledger: number
  /** Span ids stored more than once in otel_traces (at most 1000). */
  duplicated: string[]
}

/**
 * Counts raw rows per service in the data directory of a stopped service,
 * in a child process (the embedded engine opens one data directory per
 * process, and the test process may need another).
 */
export function rawCounts(dataDir: string): Map<string, RawCounts> {
  const script = fileURLToPath(new URL('./load-raw-counts.ts', import.meta.url))
  const run = spawnSync(process.execPath, ['--conditions=nhi-meter-source', '--import', 'tsx', script, dataDir], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 })
  if (run.status !== 0) throw new Error(`counting raw rows failed (exit ${run.status}):\n${run.stderr}`)
  return new Map(Object.entries(JSON.parse(run.stdout) as Record<string, RawCounts>))
}

/** Peak resident set size (VmHWM) of a live process, in MiB; undefined where /proc is missing. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` at once. */
export async function pool(count: number, concurrency: number, worker: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await worker(next++)
    }),
  )
}
