/**
 * The receiver's durable log (README, "Built-in OTLP receiver"): an export is acknowledged once its
 * rows are on local disk, and a background writer inserts them into
 * ClickHouse in large batches.
 *
 * - **Records.** Each export's rows (already encoded as JSONCompactEachRow
 *   lines for `otel_traces`) are one record: a 12-byte header (payload
 *   length, row count, CRC-32 of the payload) and the payload. Records are
 *   appended to segment files `<dir>/<16-digit sequence>.log`; a segment is
 *   closed at `segmentBytes` and a new one started.
 * - **Group commit.** Appends that arrive while a write and fsync run wait
 *   and go together in the next one; none is acknowledged before the fsync
 *   that covers it returned.
 * - **Consumption.** The writer reads records in order from a cursor
 *   (segment, offset), inserts them, then commits: the cursor is written to
 *   `<dir>/checkpoint` (a temporary file, fsync, rename, fsync of the
 *   directory), and segments wholly behind it are deleted.
 * - **Replay.** On open, records after the checkpoint are read again; a
 *   record cut short or corrupted by a crash ends its segment (the tail is
 *   truncated, nothing after it was ever acknowledged). Records inserted but
 *   not yet committed when the process died are inserted a second time: raw
 *   `otel_traces` rows then appear twice, while the ledger and everything
 *   billed from it keep each span once (ReplacingMergeTree on the span's
 *   key, read with FINAL).
 * - **Bound.** At most `maxBytes` of records not yet committed; past it an
 *   append is refused at once ({@link LogFullError}: the receiver answers
 *   429 with Retry-After). An empty log takes any one record.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { crc32 } from 'node:zlib'

/** Bytes before each record's payload. */
export const RECORD_HEADER_BYTES = 12
const SEGMENT_NAME = /^(\d{16})\.log$/

/** The log holds `maxBytes` not yet inserted: retry later (429). */
export class LogFullError extends Error {
  override readonly name = 'LogFullError'
}

/** Writing or syncing the log failed (the disk is full, or failing): retry later (503). */
export class LogWriteError extends Error {
  override readonly name = 'LogWriteError'
  constructor(
    message: string,
    /** The log's disk is out of space. */
    readonly diskFull: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Tuning of the log. */
export interface IngestLogOptions {
  /** The log's directory (created if missing). */
  dir: string
  /** Most bytes of records (headers included) not yet committed. */
  maxBytes: number
  /** Most rows not yet committed (default: no bound but the bytes). */
  maxRows?: number
  /** A segment file is closed once it holds this many bytes. */
  segmentBytes?: number
}

/** Records read for insertion, and where the cursor stands after them. */
export interface LogBatch {
  /** Names the batch: the log's id and the batch's first and last positions (a retry of it carries the same). */
  readonly token: string
  /** The payloads, in order. */
  payloads: Buffer[]
  rows: number
  bytes: number
  /** The cursor after the batch: pass the batch to {@link IngestLog.commit} once it is stored. */
  readonly end: { segment: number; offset: number }
}

interface Waiter {
  header: Buffer
  payload: Buffer
  resolve: () => void
  reject: (error: Error) => void
}

const segmentName = (n: number) => `${String(n).padStart(16, '0')}.log`

/** The durable log; open it with {@link IngestLog.open}. */
export class IngestLog {
  private readonly segmentBytes: number
  private file: FileHandle | undefined
  /** The segment being appended to, and its size. */
  private head: { segment: number; size: number }
  /** Where the next record to insert starts. */
  private cursor: { segment: number; offset: number }
  /** Bytes appended and not yet committed. */
  private uncommitted = 0
  /** Rows appended and not yet committed. */
  private uncommittedRows = 0
  private waiting: Waiter[] = []
  private syncing = false
  private closed = false
  /** This log's id (random, kept in `<dir>/id`): batch tokens of two logs never collide. */
  readonly id: string

  private constructor(
    private readonly options: IngestLogOptions,
    head: { segment: number; size: number },
    cursor: { segment: number; offset: number },
    uncommitted: { bytes: number; rows: number },
  ) {
    this.segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024
    this.head = head
    this.cursor = cursor
    this.uncommitted = uncommitted.bytes
    this.uncommittedRows = uncommitted.rows
    this.id = logId(options.dir)
  }

  /**
   * Opens the log in `dir`: finds the checkpoint, drops segments behind it,
   * and truncates a record torn by a crash (and anything after it) so new
   * records follow the last whole one.
   */
  static open(options: IngestLogOptions): IngestLog {
    mkdirSync(options.dir, { recursive: true })
    const segments = listSegments(options.dir)
    let cursor = readCheckpoint(options.dir) ?? { segment: segments[0] ?? 1, offset: 0 }
    for (const s of segments) if (s < cursor.segment) unlinkSync(join(options.dir, segmentName(s)))
    const kept = segments.filter((s) => s >= cursor.segment)
    // Each kept segment is scanned once: its whole records count, a torn tail is cut off.
    const uncommitted = { bytes: 0, rows: 0 }
    for (const s of kept) {
      const path = join(options.dir, segmentName(s))
      const valid = scan(path, s === cursor.segment ? cursor.offset : 0)
      if (valid.length < statSync(path).size) truncateSync(path, valid.length)
      uncommitted.bytes += valid.bytes
      uncommitted.rows += valid.rows
    }
    // No segment at or after the checkpoint (removed by hand): start afresh there.
    if (kept.length === 0) cursor = { segment: cursor.segment, offset: 0 }
    const last = kept[kept.length - 1]
    const head = last !== undefined ? { segment: last, size: statSync(join(options.dir, segmentName(last))).size } : { segment: cursor.segment, size: cursor.offset }
    return new IngestLog(options, head, cursor, uncommitted)
  }

  /** Groups written and synced so far (each one fsync), for group-commit figures. */
  syncs = 0

  /** Bytes of records not yet committed (what counts against `maxBytes`). */
  get pendingBytes(): number {
    return this.uncommitted
  }

  /** Rows of records not yet committed. */
  get pendingRows(): number {
    return this.uncommittedRows
  }

  /** True when an append of any size would be refused. */
  get full(): boolean {
    return this.uncommitted >= this.options.maxBytes || this.uncommittedRows >= (this.options.maxRows ?? Infinity)
  }

  /**
   * Appends one record of `rows` rows and resolves once it is on disk
   * (fsync). Rejects with LogFullError at once when the log holds
   * `maxBytes` (unless it is empty), or LogWriteError when the write or the
   * sync failed (then nothing of that group is acknowledged, and what was
   * written of it is cut off again).
   */
  append(payload: Buffer, rows: number): Promise<void> {
    if (this.closed) return Promise.reject(new LogWriteError('the log is closed', false))
    const size = RECORD_HEADER_BYTES + payload.length
    if (this.uncommitted > 0 && (this.uncommitted + size > this.options.maxBytes || this.uncommittedRows + rows > (this.options.maxRows ?? Infinity))) {
      return Promise.reject(
        new LogFullError(`the ingest log holds ${this.uncommitted} bytes (${this.uncommittedRows} spans) not yet stored in ClickHouse (at most ${this.options.maxBytes} bytes${this.options.maxRows ? `, ${this.options.maxRows} spans` : ''})`),
      )
    }
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
    header.writeUInt32LE(payload.length, 0)
    header.writeUInt32LE(rows, 4)
    header.writeUInt32LE(crc32(payload), 8)
    this.uncommitted += size
    this.uncommittedRows += rows
    return new Promise((resolve, reject) => {
      this.waiting.push({ header, payload, resolve, reject })
      this.flush()
    })
  }

  /** Writes and syncs everything waiting, as one group; then the next group. */
  private flush(): void {
    if (this.syncing || this.waiting.length === 0) return
    this.syncing = true
    const group = this.waiting
    this.waiting = []
    void this.writeGroup(group).finally(() => {
      this.syncing = false
      this.flush()
    })
  }

  // The write and fsync run on libuv's threads: while they do, the event loop keeps taking appends, which form the
  // next group.
  private async writeGroup(group: Waiter[]): Promise<void> {
    const before = { ...this.head }
    try {
      if (this.head.size >= this.segmentBytes) await this.startSegment(this.head.segment + 1)
      if (!this.file) {
        this.file = await open(join(this.options.dir, segmentName(this.head.segment)), 'a')
        // A segment file made here (the log's first) must have its name on disk before a record in it is acknowledged.
        if (this.head.size === 0) syncDirectory(this.options.dir)
      }
      const file = this.file
      const body = Buffer.concat(group.flatMap((w) => [w.header, w.payload]))
      let written = 0
      while (written < body.length) written += (await file.write(body, written, body.length - written)).bytesWritten
      await file.datasync()
      this.syncs++
      this.head.size += body.length
      for (const w of group) w.resolve()
    } catch (error) {
      // Nothing of this group is acknowledged: cut off whatever part of it reached the file.
      try {
        if (this.head.segment === before.segment) truncateSync(join(this.options.dir, segmentName(before.segment)), before.size)
      } catch {
        // The next open truncates a torn tail anyway.
      }
      this.head = before
      for (const w of group) {
        this.uncommitted -= RECORD_HEADER_BYTES + w.payload.length
        this.uncommittedRows -= w.header.readUInt32LE(4)
      }
      const code = (error as NodeJS.ErrnoException).code
      const failure = new LogWriteError(`writing the ingest log failed: ${(error as Error).message}`, code === 'ENOSPC' || code === 'EDQUOT', { cause: error })
      for (const w of group) w.reject(failure)
    }
  }

  private async startSegment(segment: number): Promise<void> {
    await this.file?.close()
    this.file = undefined
    this.head = { segment, size: 0 }
    // The new file's name must survive a crash before any record in it is acknowledged.
    await (await open(join(this.options.dir, segmentName(segment)), 'a')).close()
    syncDirectory(this.options.dir)
  }

  /**
   * Reads records from the cursor on, up to `maxRows` rows and `maxBytes`
   * payload bytes (at least one record), or undefined when none is waiting.
   * Only records whose append was acknowledged or is being synced are read;
   * reading does not move the cursor ({@link commit} does).
   */
  read(maxRows: number, maxBytes: number): LogBatch | undefined {
    const payloads: Buffer[] = []
    let rows = 0
    let bytes = 0
    const start = this.cursor
    let { segment, offset } = this.cursor
    const batch = (end: { segment: number; offset: number }): LogBatch => ({ payloads, rows, bytes, end, token: `nhi-meter-log:${this.id}:${start.segment}.${start.offset}-${end.segment}.${end.offset}` })
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
    while (segment <= this.head.segment) {
      const size = segment === this.head.segment ? this.head.size : sizeOrZero(join(this.options.dir, segmentName(segment)))
      if (offset >= size) {
        if (segment === this.head.segment) break
        segment++
        offset = 0
        continue
      }
      const fd = openSync(join(this.options.dir, segmentName(segment)), 'r')
      try {
        while (offset + RECORD_HEADER_BYTES <= size) {
          readSync(fd, header, 0, RECORD_HEADER_BYTES, offset)
          const length = header.readUInt32LE(0)
          const recordRows = header.readUInt32LE(4)
          if (payloads.length > 0 && (rows + recordRows > maxRows || bytes + length > maxBytes)) return batch({ segment, offset })
          const payload = Buffer.allocUnsafe(length)
          readSync(fd, payload, 0, length, offset + RECORD_HEADER_BYTES)
          payloads.push(payload)
          rows += recordRows
          bytes += length
          offset += RECORD_HEADER_BYTES + length
        }
      } finally {
        closeSync(fd)
      }
      if (segment === this.head.segment) break
      segment++
      offset = 0
    }
    return payloads.length === 0 ? undefined : batch({ segment, offset })
  }

  /** Marks a batch as stored: the checkpoint moves past it, and segments wholly behind it are deleted. */
  commit(batch: LogBatch): void {
    const { segment, offset } = batch.end
    writeCheckpoint(this.options.dir, segment, offset)
    for (let s = this.cursor.segment; s < segment; s++) {
      try {
        unlinkSync(join(this.options.dir, segmentName(s)))
      } catch {
        // Already gone.
      }
    }
    this.cursor = { segment, offset }
    this.uncommitted -= batch.bytes + batch.payloads.length * RECORD_HEADER_BYTES
    this.uncommittedRows -= batch.rows
  }

  /** Stops taking appends once those waiting are synced; records not yet inserted stay for the next open. */
  async close(): Promise<void> {
    this.closed = true
    while (this.syncing || this.waiting.length > 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await this.file?.close()
    this.file = undefined
  }
}

function listSegments(dir: string): number[] {
  return readdirSync(dir)
    .map((name) => SEGMENT_NAME.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b)
}

function sizeOrZero(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

/**
 * The segment's prefix made of whole records whose checksums match (its
 * length), and the bytes and rows of those from `from` on.
 */
function scan(path: string, from: number): { length: number; bytes: number; rows: number } {
  const data = readFileSync(path)
  let offset = 0
  let bytes = 0
  let rows = 0
  while (offset + RECORD_HEADER_BYTES <= data.length) {
    const length = data.readUInt32LE(offset)
    const end = offset + RECORD_HEADER_BYTES + length
    if (end > data.length) break
    if (crc32(data.subarray(offset + RECORD_HEADER_BYTES, end)) !== data.readUInt32LE(offset + 8)) break
    if (offset >= from) {
      bytes += end - offset
      rows += data.readUInt32LE(offset + 4)
    }
    offset = end
  }
  return { length: offset, bytes, rows }
}

/** The log's id, made on first use. */
function logId(dir: string): string {
  const path = join(dir, 'id')
  try {
    const id = readFileSync(path, 'utf8').trim()
    if (/^[0-9a-f-]{36}$/.test(id)) return id
  } catch {
    // Made below.
  }
  const id = randomUUID()
  writeFileSync(path, `${id}\n`)
  return id
}

const CHECKPOINT = /^(\d+) (\d+)\n$/

function readCheckpoint(dir: string): { segment: number; offset: number } | undefined {
  let text: string
  try {
    text = readFileSync(join(dir, 'checkpoint'), 'utf8')
  } catch {
    return undefined
  }
  const m = CHECKPOINT.exec(text)
  if (!m) throw new Error(`the ingest log's checkpoint in ${dir} is unreadable (${JSON.stringify(text.slice(0, 40))}); it is written atomically, so this is not a crash: look at the directory before removing it`)
  return { segment: Number(m[1]), offset: Number(m[2]) }
}

function writeCheckpoint(dir: string, segment: number, offset: number): void {
  const temporary = join(dir, 'checkpoint.tmp')
  writeFileSync(temporary, `${segment} ${offset}\n`)
  const fd = openSync(temporary, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, join(dir, 'checkpoint'))
  syncDirectory(dir)
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
