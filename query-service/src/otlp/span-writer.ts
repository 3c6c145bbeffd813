/**
 * Batches rows from concurrent export requests into few large inserts
 * (ClickHouse prefers thousands of rows per insert to many small ones) and
 * tells each request when its own rows are stored. Group commit: while one
 * insert runs, arriving rows wait and go together in the next, so latency
 * stays one insert long under light load and batches grow under heavy load.
 * The queue is bounded; past the bound, callers are refused at once so the
 * receiver can answer 429 instead of growing without limit.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { insertFormatted } from '../storage/client.js'
import { isDiskFull } from '../storage/disk-space.js'
import { OTEL_TRACE_COLUMNS } from './rows.js'

/** Tuning of the writer; all fields optional. */
export interface SpanWriterOptions {
  /** Most rows in one insert. */
  maxBatchRows?: number
  /** Most rows waiting (queued plus in flight) before writes are refused. */
  maxQueuedRows?: number
  /**
   * Most request bytes (the decoded bodies the rows came from) waiting before
   * writes are refused: rows bound the count, this bounds the memory when
   * spans are large.
   */
  maxQueuedBytes?: number
  /** Most request bytes in one insert (the insert body is built in memory). */
  maxBatchBytes?: number
  /** Table the rows go to. */
  table?: string
}

/** The queue is full: retry later (429). */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError'
}

/** The storage refused or failed the insert: retry later (503). */
export class StorageUnavailableError extends Error {
  override readonly name = 'StorageUnavailableError'
  constructor(
    message: string,
    /** The data directory (or server disk) is out of space. */
    readonly diskFull = false,
  ) {
    super(message)
  }
}

/** The writer is shutting down and takes no new rows (503). */
export class WriterClosedError extends Error {
  override readonly name = 'WriterClosedError'
}

interface Pending {
  /** How many rows `body` holds. */
  rows: number
  /** The rows, already encoded: row objects die young instead of waiting in the queue for the garbage collector to copy. */
  body: Buffer
  bytes: number
  resolve: () => void
  reject: (error: Error) => void
}

const NEWLINE = Buffer.from('\n')

const DEFAULTS: Required<SpanWriterOptions> = { maxBatchRows: 20_000, maxQueuedRows: 200_000, maxQueuedBytes: 64 * 1024 * 1024, maxBatchBytes: 8 * 1024 * 1024, table: 'otel_traces' }

/** Writes otel_traces rows in batches; `writeEncoded` resolves once the rows are stored. */
export class SpanWriter {
  private readonly options: Required<SpanWriterOptions>
  private queue: Pending[] = []
  private queuedRows = 0
  private queuedBytes = 0
  private inFlight: Promise<void> | undefined
  private closed = false

  constructor(
    private readonly client: ClickHouseClient,
    options: SpanWriterOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options }
  }

  /** Rows waiting or being inserted now. */
  get pendingRows(): number {
    return this.queuedRows
  }

  /** True while no more rows are taken: the receiver refuses at once instead of reading and decoding a body only to refuse it. */
  get saturated(): boolean {
    return this.queuedRows >= this.options.maxQueuedRows || this.queuedBytes >= this.options.maxQueuedBytes
  }

  /**
   * Queues rows encoded as JSONCompactEachRow lines in
   * {@link OTEL_TRACE_COLUMNS} order (rows.ts's `encodeExport`) and resolves
   * once they are stored; `rows` is how many lines `body` holds, `bytes` the
   * size of the request they came from. Rejects with QueueFullError,
   * StorageUnavailableError or WriterClosedError. An empty queue takes any
   * one request, so no request is too large to ever be taken.
   */
  writeEncoded(body: Buffer, rows: number, bytes = 0): Promise<void> {
    if (this.closed) return Promise.reject(new WriterClosedError('the receiver is shutting down'))
    if (rows === 0) return Promise.resolve()
    if (this.queuedRows > 0 && (this.queuedRows + rows > this.options.maxQueuedRows || this.queuedBytes + bytes > this.options.maxQueuedBytes)) {
      return Promise.reject(new QueueFullError(`${this.queuedRows} spans (${this.queuedBytes} request bytes) are waiting to be stored`))
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, body, bytes, resolve, reject })
      this.queuedRows += rows
      this.queuedBytes += bytes
      this.pump()
    })
  }

  /** Stops taking rows and waits until everything queued is stored (or has failed). */
  async close(): Promise<void> {
    this.closed = true
    while (this.inFlight || this.queue.length > 0) {
      this.pump()
      await this.inFlight
    }
  }

  private pump(): void {
    if (this.inFlight || this.queue.length === 0) return
    const batch: Pending[] = []
    let batchRows = 0
    let batchBytes = 0
    const fits = (next: Pending) => batchRows + next.rows <= this.options.maxBatchRows && batchBytes + next.bytes <= this.options.maxBatchBytes
    while (this.queue.length > 0 && (batch.length === 0 || fits(this.queue[0]!))) {
      const next = this.queue.shift()!
      batch.push(next)
      batchRows += next.rows
      batchBytes += next.bytes
    }
    this.inFlight = this.insert(batch, batchRows, batchBytes).finally(() => {
      this.inFlight = undefined
      this.pump()
    })
  }

  private async insert(batch: Pending[], batchRows: number, batchBytes: number): Promise<void> {
    const body = batch.length === 1 ? batch[0]!.body : Buffer.concat(batch.flatMap((p, i) => (i === 0 ? [p.body] : [NEWLINE, p.body])))
    let failure: StorageUnavailableError | undefined
    try {
      await insertFormatted(this.client, this.options.table, OTEL_TRACE_COLUMNS, 'JSONCompactEachRow', body)
    } catch (error) {
      failure = new StorageUnavailableError(`storing ${batchRows} spans failed: ${(error as Error).message}`, isDiskFull(error))
    }
    // Released before anyone is told, so a sender that writes again at once finds the room it left.
    this.queuedRows -= batchRows
    this.queuedBytes -= batchBytes
    for (const p of batch) {
      if (failure) p.reject(failure)
      else p.resolve()
    }
  }
}
