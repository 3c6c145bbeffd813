/**
 * What the receiver writes exports to (README, "Built-in OTLP receiver"): an export is taken once it
 * is in the durable ingest log (ingest-log.ts), and a background loop moves
 * the log into ClickHouse in large inserts, one batch at a time, committing
 * each once ClickHouse has it. While ClickHouse is away or refuses inserts
 * (a full disk), the loop retries with backoff and the log keeps taking
 * exports until it is full; then the receiver answers 429 with Retry-After.
 * After a crash the log is read again from its checkpoint (see ingest-log.ts
 * for what that means for raw `otel_traces` rows).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { NOOP_METRICS, type ServiceMetrics } from '../metrics/instruments.js'
import { insertFormatted } from '../storage/client.js'
import { isDiskFull } from '../storage/disk-space.js'
import { IngestLog, LogFullError, LogWriteError, type LogBatch } from './ingest-log.js'
import { OTEL_TRACE_COLUMNS } from './rows.js'
import { QueueFullError, StorageUnavailableError, WriterClosedError } from './span-writer.js'

/** Settings of the writer; all optional but where the log lives. */
export interface DurableWriterOptions {
  /** The log's directory. */
  dir: string
  /** Most bytes of exports in the log and not yet in ClickHouse (default 1 GiB). */
  maxBytes?: number
  /** Most spans in the log and not yet in ClickHouse (default 5,000,000). */
  maxRows?: number
  /** Most spans per insert (default 100,000). */
  maxBatchRows?: number
  /** Most payload bytes per insert (default 8 MiB; the insert body is built in memory). */
  maxBatchBytes?: number
  /**
   * Least time from the start of one insert to the start of the next while
   * fewer than 10,000 spans (or a full batch, if smaller) wait (default
   * 1,000 ms). Each insert is a part for ClickHouse to merge and for reads
   * with FINAL to open: at 5,000 spans/s, inserting as soon as the last one
   * ended made five to ten small parts a second. Busier, the log fills past
   * that within the interval and inserts follow each other as before (a
   * wait while more waited left ClickHouse idle: stored throughput halved).
   * Exports are acknowledged once in the log, so this delays only when
   * spans can be queried.
   */
  minInsertIntervalMs?: number
  /** Table the rows go to. */
  table?: string
  /** Told when inserts start failing (once per outage) and when they succeed again. */
  onStorageState?: (state: { ok: true } | { ok: false; error: Error; diskFull: boolean }) => void
  /** Where inserts (latency, rows) and their failures are counted (default: nowhere). */
  metrics?: ServiceMetrics
}

const DEFAULTS = { maxBytes: 1024 * 1024 * 1024, maxRows: 5_000_000, maxBatchRows: 100_000, maxBatchBytes: 8 * 1024 * 1024, minInsertIntervalMs: 1000, table: 'otel_traces' }
/** Spans waiting that end the wait between inserts (see minInsertIntervalMs). */
const LINGER_ROWS = 10_000
/** Waits between failed inserts: doubling from the first to the last. */
const BACKOFF_MS = [250, 500, 1000, 2000, 5000]

/** Takes exports into the durable log and moves them into ClickHouse in the background. */
export class DurableWriter {
  private readonly log: IngestLog
  private readonly settings: typeof DEFAULTS
  private closed = false
  private closing: Promise<void> | undefined
  /** Ends the loop's idle wait (new rows, or closing). */
  private wake: (() => void) | undefined
  /** Ends the loop's wait after a failed insert (closing only: new rows must not hurry retries). */
  private stopBackoff: (() => void) | undefined
  /** Ends the loop's wait between two inserts (enough spans in the log, or closing). */
  private stopLinger: (() => void) | undefined
  /** Spans waiting that make the next insert start without waiting out the least interval. */
  private readonly lingerRows: number
  private readonly loop: Promise<void>
  private failing = false
  /** Spans inserted into ClickHouse since start. */
  insertedRows = 0
  /** Inserts made since start. */
  inserts = 0

  constructor(
    private readonly client: ClickHouseClient,
    private readonly options: DurableWriterOptions,
  ) {
    this.settings = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS
    this.log = IngestLog.open({ dir: options.dir, maxBytes: this.settings.maxBytes, maxRows: this.settings.maxRows })
    this.lingerRows = Math.min(LINGER_ROWS, this.settings.maxBatchRows)
    this.loop = this.run()
  }

  /** Spans in the log and not yet in ClickHouse. */
  get pendingRows(): number {
    return this.log.pendingRows
  }

  /** Bytes in the log and not yet in ClickHouse. */
  get pendingBytes(): number {
    return this.log.pendingBytes
  }

  /** True while the log takes no more: the receiver refuses at once instead of reading and decoding a body. */
  get saturated(): boolean {
    return this.log.full
  }

  /**
   * Resolves once the rows (JSONCompactEachRow lines in OTEL_TRACE_COLUMNS
   * order) are durable in the log. Rejects with QueueFullError (the log is
   * full: 429), StorageUnavailableError (the log's disk failed or is full:
   * 503) or WriterClosedError (shutting down: 503).
   */
  async writeEncoded(body: Buffer, rows: number): Promise<void> {
    if (this.closed) throw new WriterClosedError('the receiver is shutting down')
    if (rows === 0) return
    try {
      await this.log.append(body, rows)
    } catch (error) {
      if (error instanceof LogFullError) throw new QueueFullError(error.message)
      if (error instanceof LogWriteError) throw new StorageUnavailableError(error.message, error.diskFull)
      throw error
    }
    this.wake?.()
    if (this.log.pendingRows >= this.lingerRows) this.stopLinger?.()
  }

  /**
   * Stops taking exports and waits until the log is in ClickHouse, for at
   * most `drainMs`; what is left stays in the log for the next start.
   */
  close(drainMs = 10_000): Promise<void> {
    // The receiver and the service both close it: the second call waits for the first.
    this.closing ??= this.shutDown(drainMs)
    return this.closing
  }

  private async shutDown(drainMs: number): Promise<void> {
    this.stopLinger?.()
    const deadline = Date.now() + drainMs
    while (this.log.pendingRows > 0 && !this.failing && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    this.closed = true
    this.wake?.()
    this.stopBackoff?.()
    this.stopLinger?.()
    await this.loop
    await this.log.close()
  }

  private async run(): Promise<void> {
    let failures = 0
    // A batch that failed is retried as it was (same records, same token), never re-read with more appended: on a
    // server, an insert whose answer was lost is then dropped by ClickHouse as a duplicate of itself.
    let retry: LogBatch | undefined
    let lastStarted = -Infinity
    while (!this.closed) {
      // Few spans waiting: the next insert waits out the least interval since the last one began.
      const early = lastStarted + this.settings.minInsertIntervalMs - performance.now()
      if (!retry && early > 0 && this.closing === undefined && this.log.pendingRows < this.lingerRows) {
        await new Promise<void>((resolve) => {
          this.stopLinger = resolve
          setTimeout(resolve, early).unref()
        })
        this.stopLinger = undefined
        continue
      }
      const batch = retry ?? this.log.read(this.settings.maxBatchRows, this.settings.maxBatchBytes)
      retry = undefined
      if (!batch) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
          // A timer too, so nothing waits on a missed wake-up.
          setTimeout(resolve, 1000).unref()
        })
        this.wake = undefined
        continue
      }
      const metrics = this.options.metrics ?? NOOP_METRICS
      const started = performance.now()
      lastStarted = started
      try {
        await this.insert(batch)
        metrics.storage.inserted(this.settings.table, batch.rows, (performance.now() - started) / 1000)
        this.log.commit(batch)
        this.insertedRows += batch.rows
        this.inserts++
        failures = 0
        if (this.failing) {
          this.failing = false
          this.options.onStorageState?.({ ok: true })
        }
      } catch (error) {
        metrics.storage.insertFailed(this.settings.table, (performance.now() - started) / 1000, error)
        retry = batch
        if (!this.failing) {
          this.failing = true
          this.options.onStorageState?.({ ok: false, error: error as Error, diskFull: isDiskFull(error) })
        }
        const wait = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)]!
        failures++
        await new Promise<void>((resolve) => {
          this.stopBackoff = resolve
          setTimeout(resolve, wait).unref()
        })
        this.stopBackoff = undefined
      }
    }
  }

  private async insert(batch: LogBatch): Promise<void> {
    const parts: Buffer[] = []
    batch.payloads.forEach((payload, i) => {
      if (i > 0) parts.push(NEWLINE)
      parts.push(payload)
    })
    await insertFormatted(this.client, this.settings.table, OTEL_TRACE_COLUMNS, 'JSONCompactEachRow', Buffer.concat(parts), { deduplicationToken: batch.token })
  }
}

const NEWLINE = Buffer.from('\n')
