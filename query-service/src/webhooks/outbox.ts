/**
 * The durable outbox of webhook deliveries: one file of JSON lines,
 * `<dir>/outbox.log`, in the process's data directory (like the ingest
 * log). An event is appended, with fsync, before the evaluator records it as
 * sent, so an event is never lost to a crash; a delivery is settled
 * (delivered, or given up after the retry time) by appending a line, again
 * with fsync. On open the file is read back: entries not settled are pending
 * again, in their order, and the file is rewritten with only them. A line
 * cut short by a crash is dropped (it was never acknowledged to anyone).
 *
 * Why a file and not a ClickHouse table: deliveries keep their order and
 * survive a restart without ClickHouse being reachable, and each process
 * owns its queue, so no lock or lease across processes is needed
 * (ClickHouse has neither). The cost, with several processes evaluating, is
 * duplicate deliveries under the same event id (README, "Webhooks").
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { WebhookEventType } from './schema.js'

/** One delivery waiting in the outbox. */
export interface OutboxEntry {
  /** Position in the outbox: deliveries to one destination go in this order. */
  readonly seq: number
  /** The destination's name. */
  readonly destination: string
  /** The event's id (also in the body). */
  readonly id: string
  readonly type: WebhookEventType
  /** The JSON body, exactly as it is sent and signed. */
  readonly body: string
  /** When the first attempt was made (epoch ms), or null before it; the retry time counts from it. */
  readonly firstAttemptMs: number | null
}

/** What is queued: an entry before it has a place. */
export type NewDelivery = Pick<OutboxEntry, 'destination' | 'id' | 'type' | 'body'>

/** How a delivery left the outbox. */
export type Settlement = 'delivered' | 'expired' | 'dropped'

/** Outbox options. */
export interface OutboxOptions {
  /** The directory of `outbox.log` (created if missing). */
  dir: string
  /** Most deliveries pending per destination; more are refused (default 10,000). */
  maxPendingPerDestination?: number
}

/** Default of {@link OutboxOptions.maxPendingPerDestination}. */
export const DEFAULT_MAX_PENDING_PER_DESTINATION = 10_000
const FILE = 'outbox.log'
// Once the file has grown past this, and to more than twice what its pending deliveries take, it is rewritten with
// only them (pending deliveries included, so a destination that is down does not make it grow without end).
const COMPACT_AT_BYTES = 1024 * 1024

type Line =
  | { op: 'add'; seq: number; destination: string; id: string; type: WebhookEventType; body: string }
  | { op: 'tried'; seq: number; at: number }
  | { op: 'settled'; seq: number; as: Settlement }

/** A durable FIFO of deliveries per destination (see the file comment). */
export class Outbox {
  private readonly queues = new Map<string, OutboxEntry[]>()
  private readonly listeners = new Set<(destination: string) => void>()
  private nextSeq: number
  private bytes: number
  // Deliveries accepted by add() whose line is not yet on disk: they are pending too, for a compaction under way.
  private readonly reserved = new Map<number, OutboxEntry>()
  // Bytes the lines of every pending delivery take (the size of a compacted file).
  private liveBytes = 0
  // Appends go one after another, each synced before the next starts.
  private tail: Promise<void> = Promise.resolve()
  private closed = false

  private constructor(
    private file: FileHandle,
    private readonly path: string,
    private readonly maxPending: number,
    pending: OutboxEntry[],
    bytes: number,
  ) {
    for (const entry of pending) {
      this.queueOf(entry.destination).push(entry)
      this.liveBytes += entryBytes(entry)
    }
    this.nextSeq = pending.reduce((max, e) => Math.max(max, e.seq), 0) + 1
    this.bytes = bytes
  }

  /** Opens (or creates) the outbox in `options.dir`, keeping only deliveries still pending. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    mkdirSync(options.dir, { recursive: true })
    const path = join(options.dir, FILE)
    const pending = readPending(path)
    const text = pending.map(entryText).join('')
    writeAtomically(path, text)
    const file = await open(path, 'a')
    return new Outbox(file, path, options.maxPendingPerDestination ?? DEFAULT_MAX_PENDING_PER_DESTINATION, pending, Buffer.byteLength(text))
  }

  /**
   * Queues deliveries, in the given order, once they are on disk. Returns
   * those refused because their destination already has the most pending.
   */
  async add(deliveries: readonly NewDelivery[]): Promise<NewDelivery[]> {
    const refused: NewDelivery[] = []
    const accepted: OutboxEntry[] = []
    const counts = new Map<string, number>()
    for (const delivery of deliveries) {
      const count = counts.get(delivery.destination) ?? this.queueOf(delivery.destination).length
      if (count >= this.maxPending) {
        refused.push(delivery)
        continue
      }
      counts.set(delivery.destination, count + 1)
      accepted.push({ ...delivery, seq: this.nextSeq++, firstAttemptMs: null })
    }
    if (accepted.length === 0) return refused
    for (const entry of accepted) {
      this.reserved.set(entry.seq, entry)
      this.liveBytes += entryBytes(entry)
    }
    try {
      await this.append(accepted.map(lineOf))
    } catch (error) {
      for (const entry of accepted) {
        this.reserved.delete(entry.seq)
        this.liveBytes -= entryBytes(entry)
      }
      throw error
    }
    for (const entry of accepted) {
      this.reserved.delete(entry.seq)
      this.queueOf(entry.destination).push(entry)
    }
    for (const destination of new Set(accepted.map((e) => e.destination))) for (const listener of this.listeners) listener(destination)
    return refused
  }

  /** The oldest pending delivery to a destination. */
  head(destination: string): OutboxEntry | undefined {
    return this.queues.get(destination)?.[0]
  }

  /** Every pending delivery, per destination in order. */
  pending(): OutboxEntry[] {
    return [...this.queues.values()].flat().sort((a, b) => a.seq - b.seq)
  }

  /** Destinations with deliveries pending. */
  destinations(): string[] {
    return [...this.queues].filter(([, q]) => q.length > 0).map(([d]) => d)
  }

  /** Records the first attempt of a delivery (the retry time counts from it, across restarts too). */
  async markTried(entry: OutboxEntry, atMs: number): Promise<OutboxEntry> {
    await this.append([{ op: 'tried', seq: entry.seq, at: atMs }])
    const queue = this.queueOf(entry.destination)
    const index = queue.findIndex((e) => e.seq === entry.seq)
    const tried = { ...entry, firstAttemptMs: atMs }
    if (index >= 0) queue[index] = tried
    return tried
  }

  /** Takes a delivery out of the outbox for good. */
  async settle(entry: OutboxEntry, as: Settlement): Promise<void> {
    await this.append([{ op: 'settled', seq: entry.seq, as }])
    const queue = this.queueOf(entry.destination)
    const index = queue.findIndex((e) => e.seq === entry.seq)
    if (index >= 0) {
      this.liveBytes -= entryBytes(queue[index]!)
      queue.splice(index, 1)
    }
    if (this.bytes > COMPACT_AT_BYTES && this.bytes > 2 * this.liveBytes) await this.compact()
  }

  /** Calls `listener` with the destination whenever deliveries are queued for it; returns the unsubscribe. */
  onAdded(listener: (destination: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Waits for writes under way and closes the file. Pending deliveries stay for the next open. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.tail.catch(() => undefined)
    await this.file.close()
  }

  private queueOf(destination: string): OutboxEntry[] {
    let queue = this.queues.get(destination)
    if (!queue) this.queues.set(destination, (queue = []))
    return queue
  }

  private append(lines: Line[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the webhook outbox is closed'))
    const text = lines.map((l) => JSON.stringify(l) + '\n').join('')
    const write = this.tail.then(async () => {
      try {
        await this.file.appendFile(text, 'utf8')
        await this.file.datasync()
      } catch (error) {
        // A write that failed part-way (a full disk) leaves a partial line: cut the file back to its last whole line,
        // so the next line is not glued onto it and lost on replay.
        await this.file.truncate(this.bytes).catch(() => undefined)
        throw error
      }
      this.bytes += Buffer.byteLength(text)
    })
    this.tail = write.catch(() => undefined)
    return write
  }

  // Rewrites the file with only the pending deliveries, in the write order, after the writes before it. What is
  // pending is decided when it runs: deliveries queued meanwhile, and those whose line is still being written, are
  // in it (a line written twice for one delivery is read back once).
  private compact(): Promise<void> {
    const run = this.tail.then(async () => {
      const live = [...[...this.queues.values()].flat(), ...this.reserved.values()].sort((a, b) => a.seq - b.seq)
      const text = live.map(entryText).join('')
      writeAtomically(this.path, text)
      await this.file.close()
      this.file = await open(this.path, 'a')
      this.bytes = Buffer.byteLength(text)
    })
    this.tail = run.catch(() => undefined)
    return run
  }
}

// A pending delivery as the file holds it: its add line, and its first attempt once made.
function entryText(entry: OutboxEntry): string {
  return JSON.stringify(lineOf(entry)) + '\n' + (entry.firstAttemptMs === null ? '' : JSON.stringify({ op: 'tried', seq: entry.seq, at: entry.firstAttemptMs }) + '\n')
}

// About what a delivery's lines take (its body dominates).
function entryBytes(entry: OutboxEntry): number {
  return Buffer.byteLength(entry.body) + 256
}

function lineOf(entry: OutboxEntry): Line {
  return { op: 'add', seq: entry.seq, destination: entry.destination, id: entry.id, type: entry.type, body: entry.body }
}

// Replays the file: adds in order, minus those settled. A torn or unreadable line is skipped.
function readPending(path: string): OutboxEntry[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return []
    throw error
  }
  const entries = new Map<number, OutboxEntry>()
  for (const raw of text.split('\n')) {
    if (raw === '') continue
    let line: Line
    try {
      line = JSON.parse(raw) as Line
    } catch {
      continue
    }
    if (line.op === 'add' && typeof line.body === 'string') entries.set(line.seq, { seq: line.seq, destination: line.destination, id: line.id, type: line.type, body: line.body, firstAttemptMs: null })
    else if (line.op === 'tried') {
      const entry = entries.get(line.seq)
      if (entry && entry.firstAttemptMs === null) entries.set(line.seq, { ...entry, firstAttemptMs: line.at })
    } else if (line.op === 'settled') entries.delete(line.seq)
  }
  return [...entries.values()].sort((a, b) => a.seq - b.seq)
}

/** Replaces a file's content all at once: a temporary file, fsync, rename, fsync of the directory. */
export function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.tmp`
  const fd = openSync(temporary, 'w')
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
  const dir = openSync(join(path, '..'), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}
