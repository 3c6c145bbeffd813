import { describe, expect, it } from 'vitest'
import { tempDataDir } from '../../../test/helpers/service.js'
import { openStorage } from '../storage/client.js'
import { migrate } from '../storage/migrations.js'
import { spanRow } from '../test-support.js'
import { createReceiver } from './receiver.js'
import { QueueFullError, SpanWriter, StorageUnavailableError, WriterClosedError } from './span-writer.js'

const rows = (n: number, day: string) => Array.from({ length: n }, (_, i) => spanRow({ start: `${day}T00:00:0${i % 10}Z` }))

describe('the span writer', () => {
  it('stores concurrent writes, resolves each once stored, and refuses writes after close', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client)
    await Promise.all([writer.write(rows(3, '2026-11-01')), writer.write(rows(4, '2026-11-01')), writer.write(rows(5, '2026-11-01'))])
    const [count] = await (await client.query({ query: 'SELECT count() AS n FROM otel_traces', format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(count!.n)).toBe(12)
    await writer.close()
    await expect(writer.write(rows(1, '2026-11-01'))).rejects.toBeInstanceOf(WriterClosedError)
    await client.close()
  })

  it('refuses writes beyond its queue bound instead of growing', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client, { maxQueuedRows: 5 })
    const first = writer.write(rows(4, '2026-11-02'))
    await expect(writer.write(rows(4, '2026-11-02'))).rejects.toBeInstanceOf(QueueFullError)
    await first
    await writer.close()
    await client.close()
  })

  it('reports storage failures to every waiting request, and the receiver answers 503 with Retry-After', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client)
    await client.close()
    await expect(writer.write(rows(2, '2026-11-03'))).rejects.toBeInstanceOf(StorageUnavailableError)

    const receiver = createReceiver({ writer })
    const port = await receiver.listen(0, '127.0.0.1')
    const body = JSON.stringify({
      resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'x', startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' }] }] }],
    })
    const response = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(response.status).toBe(503)
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
    await receiver.close()
  })

  it('answers 429 with Retry-After when too many requests are in progress', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const receiver = createReceiver({ writer: new SpanWriter(client), maxConcurrentRequests: 0 })
    const port = await receiver.listen(0, '127.0.0.1')
    const response = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: new Uint8Array(0) })
    expect(response.status).toBe(429)
    expect(response.headers.get('retry-after')).toBe('1')
    await receiver.close()
    await client.close()
  })
})
