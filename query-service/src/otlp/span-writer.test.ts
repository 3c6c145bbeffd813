import { request } from 'node:http'
import { describe, expect, it } from 'vitest'
import { tempDataDir } from '../../../test/helpers/service.js'
import { openStorage } from '../storage/client.js'
import { migrate } from '../storage/migrations.js'
import { encodeCompactRows } from '../test-support/otel-trace-rows.js'
import { spanRow } from '../test-support/spans.js'
import { createReceiver } from './receiver.js'
import { QueueFullError, SpanWriter, StorageUnavailableError, WriterClosedError } from './span-writer.js'

/** `n` spans of `day` encoded as the writer takes them: JSONCompactEachRow lines and their count. */
const rows = (n: number, day: string): [Buffer, number] => [encodeCompactRows(Array.from({ length: n }, (_, i) => spanRow({ start: `${day}T00:00:0${i % 10}Z` }))), n]

describe('the span writer', () => {
  it('stores concurrent writes, resolves each once stored, and refuses writes after close', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client)
    await Promise.all([writer.writeEncoded(...rows(3, '2026-11-01')), writer.writeEncoded(...rows(4, '2026-11-01')), writer.writeEncoded(...rows(5, '2026-11-01'))])
    const [count] = await (await client.query({ query: 'SELECT count() AS n FROM otel_traces', format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(count!.n)).toBe(12)
    await writer.close()
    await expect(writer.writeEncoded(...rows(1, '2026-11-01'))).rejects.toBeInstanceOf(WriterClosedError)
    await client.close()
  })

  it('refuses writes beyond its queue bound instead of growing', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client, { maxQueuedRows: 5 })
    const first = writer.writeEncoded(...rows(4, '2026-11-02'))
    await expect(writer.writeEncoded(...rows(4, '2026-11-02'))).rejects.toBeInstanceOf(QueueFullError)
    await first
    await writer.close()
    await client.close()
  })

  it('reports storage failures to every waiting request, and the receiver answers 503 with Retry-After', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client)
    await client.close()
    await expect(writer.writeEncoded(...rows(2, '2026-11-03'))).rejects.toBeInstanceOf(StorageUnavailableError)

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

  it('refuses writes beyond its byte bound too, so large spans cannot fill memory under the row bound', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const writer = new SpanWriter(client, { maxQueuedBytes: 1000 })
    const first = writer.writeEncoded(...rows(2, '2026-11-04'), 900)
    expect(writer.saturated).toBe(false)
    await expect(writer.writeEncoded(...rows(1, '2026-11-04'), 200)).rejects.toBeInstanceOf(QueueFullError)
    await first
    // Alone, a request larger than the bound is still taken.
    await writer.writeEncoded(...rows(1, '2026-11-04'), 5000)
    await writer.close()
    await client.close()
  })

  it('answers 429 while other requests hold the body-byte budget, and takes the request once they are done', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    const receiver = createReceiver({ writer: new SpanWriter(client), maxBodyBytesInFlight: 1000 })
    const port = await receiver.listen(0, '127.0.0.1')
    const body = Buffer.from(
      JSON.stringify({
        resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'x', startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000000000001' }] }] }],
      }),
    )
    // A slow upload that has declared 900 bytes holds them until it is done.
    const slow = request({ host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length + 700 } })
    const slowStatus = new Promise<number>((resolve, reject) => {
      slow.on('response', (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
      slow.on('error', reject)
    })
    slow.write(body.subarray(0, 10))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const refused = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(((await refused.json()) as { message: string }).message).toMatch(/request bytes being decoded/)
    // Trailing spaces are valid JSON: the slow request completes and is stored.
    slow.end(Buffer.concat([body.subarray(10), Buffer.alloc(700, ' ')]))
    expect(await slowStatus).toBe(200)
    const accepted = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(accepted.status).toBe(200)
    await receiver.close()
    await client.close()
  })
})
