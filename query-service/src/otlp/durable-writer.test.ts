import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spanRow } from '../test-support/spans.js'
import { encodeCompactRows } from '../test-support/otel-trace-rows.js'
import { freshStorage } from '../test-support/storage.js'
import { DurableWriter } from './durable-writer.js'
import { QueueFullError } from './span-writer.js'

let client: ClickHouseClient
const dirs: string[] = []
const logDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-durable-writer-'))
  dirs.push(dir)
  return dir
}

beforeAll(async () => {
  client = await freshStorage()
})
afterAll(async () => {
  await client?.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** `count` spans of one identity with span ids from `first` on, as one encoded export. */
function exportOf(first: number, count: number): Buffer {
  return encodeCompactRows(
    Array.from({ length: count }, (_, i) =>
      spanRow({ start: '2026-11-05T10:00:00Z', traceId: (first + i).toString(16).padStart(32, 'd'), spanId: (first + i).toString(16).padStart(16, '0'), attributes: { 'nhi.id': 'agent-log', 'gen_ai.operation.name': 'execute_tool' } }),
    ),
  )
}

const stored = async () =>
  Number((await (await client.query({ query: "SELECT count() AS n FROM nhi_activity FINAL WHERE nhi_id = 'agent-log'", format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n)

describe('the durable writer', () => {
  it('acknowledges exports once in the log and moves them into ClickHouse in the background', async () => {
    const writer = new DurableWriter(client, { dir: logDir() })
    await Promise.all(Array.from({ length: 20 }, (_, i) => writer.writeEncoded(exportOf(i * 10, 10), 10)))
    await writer.close()
    expect(writer.pendingRows).toBe(0)
    expect(writer.insertedRows).toBe(200)
    // Twenty exports, far fewer inserts: they were batched.
    expect(writer.inserts).toBeLessThan(20)
    expect(await stored()).toBe(200)
  })

  it('makes one insert of what arrives within its least interval, but none waits once a full batch is there or it closes', async () => {
    // An interval far longer than the test: the exports written one after another, while the first insert is under
    // way, go in one more insert only because enough spans wait (here a full batch, maxBatchRows) to cut the wait
    // short, and the rest on close.
    const writer = new DurableWriter(client, { dir: logDir(), minInsertIntervalMs: 600_000, maxBatchRows: 50 })
    await writer.writeEncoded(exportOf(5_000, 10), 10)
    for (let i = 1; i <= 5; i++) await writer.writeEncoded(exportOf(5_000 + i * 10, 10), 10)
    while (writer.insertedRows < 60) await new Promise((resolve) => setTimeout(resolve, 20))
    for (let i = 6; i < 8; i++) await writer.writeEncoded(exportOf(5_000 + i * 10, 10), 10)
    await writer.close()
    expect(writer.insertedRows).toBe(80)
    // The first export alone, then the full batch of five, then the last two on close.
    expect(writer.inserts).toBeLessThanOrEqual(3)
    expect(writer.pendingRows).toBe(0)
  })

  it('keeps taking exports while ClickHouse is away, up to its bound, and stores each once it is back', async () => {
    const dir = logDir()
    // A server that refuses every connection stands in for ClickHouse away.
    const away = createClient({ url: 'http://127.0.0.1:9', request_timeout: 1_000, log: { level: ClickHouseLogLevel.OFF } })
    const states: boolean[] = []
    const writer = new DurableWriter(away, { dir, maxRows: 50, onStorageState: (s) => states.push(s.ok) })
    for (let i = 0; i < 5; i++) await writer.writeEncoded(exportOf(1_000 + i * 10, 10), 10)
    expect(writer.saturated).toBe(true)
    await expect(writer.writeEncoded(exportOf(2_000, 10), 10)).rejects.toBeInstanceOf(QueueFullError)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(states).toEqual([false])
    await writer.close(0)
    // Bounded by bytes too: a log of 1 KiB takes the first export whole, then refuses.
    const small = new DurableWriter(away, { dir: logDir(), maxBytes: 1024 })
    await small.writeEncoded(exportOf(3_000, 10), 10)
    expect(small.pendingBytes).toBeGreaterThan(1024)
    await expect(small.writeEncoded(exportOf(3_100, 1), 1)).rejects.toThrow(/holds \d+ bytes \(10 spans\) not yet stored in ClickHouse \(at most 1024 bytes/)
    await small.close(0)
    await away.close()
    // The next start, with ClickHouse back: the log is read again and stored.
    const before = await stored()
    const back = new DurableWriter(client, { dir })
    expect(back.pendingRows).toBe(50)
    await back.close()
    expect(await stored()).toBe(before + 50)
  })
})
