import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { IngestLog, LogFullError, RECORD_HEADER_BYTES } from './ingest-log.js'

const dirs: string[] = []
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-ingest-log-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const record = (n: number, size = 20) => Buffer.from(`${String(n).padStart(size, '0')}`)
const texts = (batch: { payloads: Buffer[] } | undefined) => (batch?.payloads ?? []).map((p) => p.toString())
const segments = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.log')).sort()

describe('the ingest log', () => {
  it('acknowledges appends once synced, in groups, and hands them back in order until committed', async () => {
    const log = IngestLog.open({ dir: freshDir(), maxBytes: 1 << 20 })
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(record(i), 2)))
    // 100 concurrent appends: the first is synced alone, the rest wait and go together.
    expect(log.syncs).toBeLessThan(10)
    const batch = log.read(1_000, 1 << 20)
    expect(texts(batch)).toEqual(Array.from({ length: 100 }, (_, i) => record(i).toString()))
    expect(batch!.rows).toBe(200)
    expect(log.pendingBytes).toBe(100 * (RECORD_HEADER_BYTES + 20))
    log.commit(batch!)
    expect(log.pendingBytes).toBe(0)
    expect(log.read(1_000, 1 << 20)).toBeUndefined()
    await log.close()
  })

  it('reads batches of at most the rows and bytes asked for, at least one record each', async () => {
    const log = IngestLog.open({ dir: freshDir(), maxBytes: 1 << 20 })
    for (let i = 0; i < 10; i++) await log.append(record(i), 3)
    expect(log.read(7, 1 << 20)!.payloads).toHaveLength(2)
    expect(log.read(1, 1 << 20)!.payloads).toHaveLength(1)
    const first = log.read(1_000, 50)!
    expect(first.payloads).toHaveLength(2)
    log.commit(first)
    expect(texts(log.read(1_000, 1 << 20))).toEqual(Array.from({ length: 8 }, (_, i) => record(i + 2).toString()))
    await log.close()
  })

  it('replays what was not committed after a restart, from the checkpoint on', async () => {
    const dir = freshDir()
    const log = IngestLog.open({ dir, maxBytes: 1 << 20 })
    for (let i = 0; i < 5; i++) await log.append(record(i), 1)
    log.commit(log.read(2, 1 << 20)!)
    // No close: as after SIGKILL.
    const reopened = IngestLog.open({ dir, maxBytes: 1 << 20 })
    expect(texts(reopened.read(1_000, 1 << 20))).toEqual([2, 3, 4].map((i) => record(i).toString()))
    expect(reopened.pendingBytes).toBe(3 * (RECORD_HEADER_BYTES + 20))
    await reopened.append(record(5), 1)
    expect(texts(reopened.read(1_000, 1 << 20))).toEqual([2, 3, 4, 5].map((i) => record(i).toString()))
    await reopened.close()
    await log.close()
  })

  it('cuts off a record torn by a crash, and a corrupted one with everything after it, then appends after the last whole record', async () => {
    const dir = freshDir()
    const log = IngestLog.open({ dir, maxBytes: 1 << 20 })
    for (let i = 0; i < 3; i++) await log.append(record(i), 1)
    await log.close()
    const [segment] = segments(dir)
    const path = join(dir, segment!)
    // Half a record's header and payload: a write the crash interrupted (never acknowledged).
    appendFileSync(path, Buffer.from([40, 0, 0, 0, 1, 0, 0, 0, 9, 9, 9, 9, 65, 65]))
    let reopened = IngestLog.open({ dir, maxBytes: 1 << 20 })
    expect(texts(reopened.read(1_000, 1 << 20))).toHaveLength(3)
    expect(statSync(path).size).toBe(3 * (RECORD_HEADER_BYTES + 20))
    await reopened.close()
    // A flipped byte in the second record's payload: its checksum fails, so it and the third are cut.
    const data = readFileSync(path)
    data[RECORD_HEADER_BYTES + 20 + RECORD_HEADER_BYTES + 3]! ^= 1
    writeFileSync(path, data)
    reopened = IngestLog.open({ dir, maxBytes: 1 << 20 })
    await reopened.append(record(9), 1)
    expect(texts(reopened.read(1_000, 1 << 20))).toEqual([record(0).toString(), record(9).toString()])
    await reopened.close()
  })

  it('refuses appends past its byte bound until records are committed, but an empty log takes any one record', async () => {
    const log = IngestLog.open({ dir: freshDir(), maxBytes: 100 })
    await log.append(record(0, 200), 1)
    await expect(log.append(record(1), 1)).rejects.toBeInstanceOf(LogFullError)
    expect(log.full).toBe(true)
    log.commit(log.read(10, 1 << 20)!)
    await log.append(record(2), 1)
    await log.append(record(3), 1)
    await expect(log.append(record(4, 60), 1)).rejects.toThrow(/holds 64 bytes \(2 spans\) not yet stored in ClickHouse \(at most 100 bytes\)/)
    await log.close()
  })

  it('bounds the spans it holds too, when asked, and counts them again after a restart', async () => {
    const dir = freshDir()
    const log = IngestLog.open({ dir, maxBytes: 1 << 20, maxRows: 10 })
    await log.append(record(0), 6)
    await log.append(record(1), 4)
    expect(log.full).toBe(true)
    await expect(log.append(record(2), 1)).rejects.toThrow(/10 spans\) not yet stored in ClickHouse \(at most 1048576 bytes, 10 spans\)/)
    const reopened = IngestLog.open({ dir, maxBytes: 1 << 20, maxRows: 10 })
    expect(reopened.pendingRows).toBe(10)
    reopened.commit(reopened.read(6, 1 << 20)!)
    expect(reopened.pendingRows).toBe(4)
    await reopened.close()
    await log.close()
  })

  it('rolls over to new segments and deletes those wholly committed', async () => {
    const dir = freshDir()
    const log = IngestLog.open({ dir, maxBytes: 1 << 20, segmentBytes: 64 })
    for (let i = 0; i < 8; i++) await log.append(record(i), 1)
    expect(segments(dir).length).toBeGreaterThan(2)
    const batch = log.read(6, 1 << 20)!
    log.commit(batch)
    expect(segments(dir)[0]).toBe(`${String(batch.end.segment).padStart(16, '0')}.log`)
    const reopened = IngestLog.open({ dir, maxBytes: 1 << 20, segmentBytes: 64 })
    expect(texts(reopened.read(1_000, 1 << 20))).toEqual([6, 7].map((i) => record(i).toString()))
    await reopened.close()
    await log.close()
  })
})
