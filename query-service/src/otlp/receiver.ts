/**
 * The built-in OTLP/HTTP trace receiver (README, "Built-in OTLP receiver"): `POST /v1/traces`
 * with protobuf or JSON bodies, optionally gzip-compressed. Answers follow
 * the OTLP/HTTP specification: 200 with partial success when some spans
 * were refused, 400 for a payload that cannot be decoded, 413 over the body
 * limit (also after decompression), 415 for an unsupported content type or
 * encoding, 429 when the write queue is full (in spans or bytes), too many
 * requests or body bytes are being decoded at once, and 503 when storage is
 * unavailable or out of disk space, both with Retry-After. A 200 is sent
 * only after the rows are stored.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createGunzip } from 'node:zlib'
import { checkBearer } from '../auth/bearer.js'
import { hasScope, type KeyStore } from '../auth/keys.js'
import type { TokenBuckets } from '../auth/rate-limit.js'
import { NOOP_METRICS, type ServiceMetrics, type SpanRefusal } from '../metrics/instruments.js'
import { DISK_FULL_MESSAGE, storageRefusal } from '../storage/disk-space.js'
import { decodeJson } from './decode-json.js'
import { decodeProtobuf, encodeProtobufResponse, encodeProtobufStatus } from './decode-protobuf.js'
import { MalformedPayloadError } from './model.js'
import { encodeExport, type EncodedExport } from './rows.js'
import { QueueFullError, StorageUnavailableError, WriterClosedError } from './span-writer.js'

/**
 * Where the receiver puts decoded exports: the durable log (durable-writer.ts)
 * in the service, or a SpanWriter straight into ClickHouse. `writeEncoded`
 * resolves once the export may be acknowledged.
 */
export interface ExportWriter {
  readonly saturated: boolean
  readonly pendingRows: number
  writeEncoded(body: Buffer, rows: number, bytes?: number): Promise<void>
  close(): Promise<void>
}

/** Receiver settings; all optional but the writer. */
export interface ReceiverOptions {
  writer: ExportWriter
  /** Keys allowed to ingest (scope `ingest:write`); undefined disables auth (loopback only, checked by the caller). */
  keys?: KeyStore
  /**
   * One bucket per client address: every refused key takes a token, and an
   * address whose bucket is empty is answered 429 before its key is looked
   * at (as on the query API), so keys cannot be guessed here either.
   */
  failedAuthPerClient?: TokenBuckets
  /** Largest body accepted, before and after decompression (bytes). */
  maxBodyBytes?: number
  /** Most requests decoded at once; more are answered 429. */
  maxConcurrentRequests?: number
  /**
   * Most body bytes (as received plus decompressed) being read and decoded
   * at once, over all requests; past it requests are answered 429. Bounds
   * memory when many large bodies arrive together. One request is always
   * admitted, so a single body up to `maxBodyBytes` is never refused by it.
   */
  maxBodyBytesInFlight?: number
  /** Seconds suggested in Retry-After. */
  retryAfterSeconds?: number
  /** Called for unexpected failures (never for client errors); storage failures at most once per `failureReportIntervalMs`. */
  onError?: (error: unknown) => void
  /** Storage failures repeat for every request while storage is down; they are reported at most this often, with a count. */
  failureReportIntervalMs?: number
  /** Where spans, answers and refused keys are counted (default: nowhere). */
  metrics?: ServiceMetrics
}

/** Default body limit: 20 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024

/** Default budget of body bytes being decoded at once: 48 MiB. */
export const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT = 48 * 1024 * 1024

type Encoding = 'protobuf' | 'json'

// google.rpc.Code values used in error bodies.
const RPC_INVALID_ARGUMENT = 3
const RPC_UNAUTHENTICATED = 16
const RPC_PERMISSION_DENIED = 7
const RPC_RESOURCE_EXHAUSTED = 8
const RPC_UNAVAILABLE = 14
const RPC_UNIMPLEMENTED = 12
const RPC_NOT_FOUND = 5

class ReceiverError extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message)
  }
}

function requestEncoding(contentType: string | undefined): Encoding | undefined {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (mediaType === 'application/x-protobuf' || mediaType === 'application/protobuf') return 'protobuf'
  if (mediaType === 'application/json') return 'json'
  return undefined
}

/** Bytes a request holds of the shared body budget; `grow` fails when others hold too much. */
interface BodyLease {
  grow(total: number): boolean
  release(): void
}

/** Reads the body, refusing more than `limit` bytes, or more than the budget lets this request hold, without buffering them. */
function readBody(req: IncomingMessage, limit: number, lease: BodyLease, overBudget: () => ReceiverError): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      reject(new ReceiverError(413, RPC_INVALID_ARGUMENT, `body of ${declared} bytes exceeds the ${limit}-byte limit`))
      return
    }
    if (Number.isFinite(declared) && !lease.grow(declared)) {
      reject(overBudget())
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const refuse = (error: ReceiverError) => {
      req.removeAllListeners('data')
      req.resume()
      reject(error)
    }
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) return refuse(new ReceiverError(413, RPC_INVALID_ARGUMENT, `body exceeds the ${limit}-byte limit`))
      if (!lease.grow(size)) return refuse(overBudget())
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks, size)))
    // The client went away mid-body: its problem, not the receiver's, and nobody is left to answer.
    req.on('error', (error: NodeJS.ErrnoException) => reject(new ReceiverError(400, RPC_INVALID_ARGUMENT, `request body aborted by the client: ${error.message}`)))
  })
}

/** Gunzips in a stream, so a body over the limit or the budget is refused as soon as it is, not after it is all in memory. */
function decompress(body: Buffer, contentEncoding: string | undefined, limit: number, lease: BodyLease, overBudget: () => ReceiverError): Promise<Buffer> {
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase()
  if (encoding === 'identity' || encoding === '') return Promise.resolve(body)
  if (encoding !== 'gzip') return Promise.reject(new ReceiverError(415, RPC_INVALID_ARGUMENT, `unsupported Content-Encoding ${JSON.stringify(encoding)}; use gzip or none`))
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip()
    const chunks: Buffer[] = []
    let size = 0
    const stop = (error: ReceiverError) => {
      gunzip.destroy()
      reject(error)
    }
    gunzip.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) return stop(new ReceiverError(413, RPC_INVALID_ARGUMENT, `decompressed body exceeds the ${limit}-byte limit`))
      if (!lease.grow(body.length + size)) return stop(overBudget())
      chunks.push(chunk)
    })
    gunzip.on('end', () => resolve(Buffer.concat(chunks, size)))
    gunzip.on('error', (error) => reject(new ReceiverError(400, RPC_INVALID_ARGUMENT, `body is not valid gzip: ${error.message}`)))
    gunzip.end(body)
  })
}

function send(res: ServerResponse, status: number, encoding: Encoding, body: Uint8Array | string, retryAfter?: number): void {
  const headers: Record<string, string | number> = {
    'content-type': encoding === 'json' ? 'application/json' : 'application/x-protobuf',
    'content-length': Buffer.byteLength(body),
  }
  if (retryAfter !== undefined) headers['retry-after'] = retryAfter
  res.writeHead(status, headers)
  res.end(body)
}

function sendError(res: ServerResponse, encoding: Encoding, error: ReceiverError): void {
  const body = encoding === 'json' ? JSON.stringify({ code: error.rpcCode, message: error.message }) : encodeProtobufStatus(error.rpcCode, error.message)
  if (!res.headersSent) send(res, error.status, encoding, body, error.retryAfter)
}

/**
 * Reports storage failures at most once per interval, folding in how many
 * requests failed the same way meanwhile: while the disk is full every
 * request fails, and the log should say why once, not thousands of times.
 */
function storageFailureReporter(onError: ((error: unknown) => void) | undefined, intervalMs: number): (error: StorageUnavailableError | WriterClosedError) => void {
  let lastReport = Number.NEGATIVE_INFINITY
  let folded = 0
  return (error) => {
    if (!onError) return
    const now = Date.now()
    if (now - lastReport < intervalMs) {
      folded++
      return
    }
    const prefix = error instanceof StorageUnavailableError && error.diskFull ? `${DISK_FULL_MESSAGE}: ` : ''
    const since = folded > 0 ? ` (and ${folded} more requests failed since the last report)` : ''
    onError(new Error(`${prefix}${error.message}; answering 503 with Retry-After${since}`, { cause: error }))
    lastReport = now
    folded = 0
  }
}

/** The running receiver. */
export interface Receiver {
  server: Server
  /** Resolves to the bound port. */
  listen(port: number, host: string): Promise<number>
  /** Stops accepting requests, finishes those in progress and drains the writer. */
  close(): Promise<void>
}

/** Creates the receiver's HTTP server (not yet listening). */
export function createReceiver(options: ReceiverOptions): Receiver {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const maxConcurrent = options.maxConcurrentRequests ?? 64
  const retryAfter = options.retryAfterSeconds ?? 1
  const reportStorageFailure = storageFailureReporter(options.onError, options.failureReportIntervalMs ?? 10_000)
  const bodyBudget = options.maxBodyBytesInFlight ?? DEFAULT_MAX_BODY_BYTES_IN_FLIGHT
  const metrics = options.metrics ?? NOOP_METRICS
  let active = 0
  let bodyBytesInFlight = 0
  let closing = false
  const newLease = (): BodyLease => {
    let held = 0
    return {
      grow(total) {
        const extra = total - held
        if (extra <= 0) return true
        if (bodyBytesInFlight - held > 0 && bodyBytesInFlight + extra > bodyBudget) return false
        bodyBytesInFlight += extra
        held = total
        return true
      },
      release() {
        bodyBytesInFlight -= held
        held = 0
      },
    }
  }
  const overBudget = () => new ReceiverError(429, RPC_RESOURCE_EXHAUSTED, `too many request bytes being decoded (${bodyBytesInFlight} of ${bodyBudget}); retry later`, retryAfter)
  const queueFull = (detail: string) => new ReceiverError(429, RPC_RESOURCE_EXHAUSTED, `too many spans waiting to be stored (${detail}); retry later`, retryAfter)

  /** Body to rows; its own function so the body buffers are garbage once the rows exist. */
  async function readRows(req: IncomingMessage, encoding: Encoding, lease: BodyLease): Promise<{ converted: EncodedExport; bytes: number }> {
    const raw = await readBody(req, maxBodyBytes, lease, overBudget)
    const body = await decompress(raw, req.headers['content-encoding'], maxBodyBytes, lease, overBudget)
    if (body.length === 0) throw new ReceiverError(400, RPC_INVALID_ARGUMENT, 'request body is empty; send an ExportTraceServiceRequest')
    let request
    try {
      request = encoding === 'json' ? decodeJson(body) : decodeProtobuf(body)
    } catch (error) {
      if (error instanceof MalformedPayloadError) throw new ReceiverError(400, RPC_INVALID_ARGUMENT, error.message)
      throw error
    }
    return { converted: encodeExport(request), bytes: body.length }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const encoding = requestEncoding(req.headers['content-type'])
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/v1/traces') throw new ReceiverError(404, RPC_NOT_FOUND, 'not found; traces are accepted at POST /v1/traces')
    if (req.method !== 'POST') throw new ReceiverError(405, RPC_UNIMPLEMENTED, `method ${req.method} not allowed; use POST`)
    if (options.keys) {
      const check = checkBearer(options.keys, req.headers.authorization, req.socket.remoteAddress ?? 'unknown', options.failedAuthPerClient)
      if (!check.ok) {
        if (check.status === 429) {
          metrics.auth.rateLimited('otlp', 'refused_keys')
          throw new ReceiverError(429, RPC_RESOURCE_EXHAUSTED, check.message, check.retryAfterSeconds)
        }
        metrics.auth.refusedKey('otlp')
        throw new ReceiverError(401, RPC_UNAUTHENTICATED, check.message)
      }
      const principal = check.principal
      if (!hasScope(principal, 'ingest:write')) throw new ReceiverError(403, RPC_PERMISSION_DENIED, 'this key lacks the ingest:write scope')
    }
    if (!encoding) {
      throw new ReceiverError(415, RPC_INVALID_ARGUMENT, `unsupported Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')}; use application/x-protobuf or application/json`)
    }
    if (closing) throw new ReceiverError(503, RPC_UNAVAILABLE, 'the receiver is shutting down', retryAfter)
    // Refused before the body is read and decoded: under overload, that work would only be thrown away.
    if (options.writer.saturated) throw queueFull(`${options.writer.pendingRows} spans are waiting to be stored`)
    const lease = newLease()
    // Once decoded, the rows count against the writer's queue instead.
    const { converted, bytes } = await readRows(req, encoding, lease).finally(() => lease.release())
    // Every decoded span is counted once as received and once as accepted or refused.
    metrics.otlp.spansReceived(converted.rows + converted.rejectedSpans)
    if (converted.rejectedSpans > 0) metrics.otlp.spansRefused(converted.rejectedSpans, 'invalid')
    try {
      await options.writer.writeEncoded(converted.body, converted.rows, bytes)
    } catch (error) {
      const refusal: SpanRefusal =
        error instanceof QueueFullError ? 'queue_full' : error instanceof WriterClosedError ? 'shutting_down' : error instanceof StorageUnavailableError ? 'storage_unavailable' : 'internal'
      if (converted.rows > 0) metrics.otlp.spansRefused(converted.rows, refusal)
      if (error instanceof QueueFullError) throw queueFull(error.message)
      if (error instanceof StorageUnavailableError || error instanceof WriterClosedError) {
        reportStorageFailure(error)
        const refusal = storageRefusal(error instanceof StorageUnavailableError && error.diskFull)
        throw new ReceiverError(refusal.status, RPC_UNAVAILABLE, refusal.message, Math.max(retryAfter, refusal.retryAfterSeconds))
      }
      throw error
    }
    metrics.otlp.spansAccepted(converted.rows)
    const message = converted.rejectedSpans > 0 ? `rejected ${converted.rejectedSpans} span(s): ${converted.rejectionReasons.join('; ')}` : ''
    const responseBody =
      encoding === 'json'
        ? JSON.stringify(converted.rejectedSpans > 0 ? { partialSuccess: { rejectedSpans: String(converted.rejectedSpans), errorMessage: message } } : {})
        : encodeProtobufResponse(converted.rejectedSpans, message)
    send(res, 200, encoding, responseBody)
  }

  const server = createServer((req, res) => {
    res.once('finish', () => metrics.otlp.exportAnswered(res.statusCode))
    const encoding = requestEncoding(req.headers['content-type']) ?? 'json'
    if (active >= maxConcurrent) {
      req.resume()
      sendError(res, encoding, new ReceiverError(429, RPC_RESOURCE_EXHAUSTED, 'too many concurrent requests; retry later', retryAfter))
      return
    }
    active++
    handle(req, res)
      .catch((error: unknown) => {
        if (error instanceof ReceiverError) {
          // Drain what the client is still sending so the connection can be reused cleanly.
          if (!req.complete) req.resume()
          sendError(res, encoding, error)
          return
        }
        options.onError?.(error)
        sendError(res, encoding, new ReceiverError(500, RPC_UNAVAILABLE, 'internal error'))
      })
      .finally(() => {
        active--
      })
  })
  server.requestTimeout = 60_000
  server.headersTimeout = 30_000

  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve((server.address() as AddressInfo).port)
        })
      }),
    close: async () => {
      closing = true
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
      await options.writer.close()
    },
  }
}
