/**
 * Overload: far more concurrent exporters than the receiver takes at once,
 * with a small write queue (NHI_METER_OTLP_MAX_QUEUED_SPANS). The receiver
 * must refuse what it cannot take with 429/503 and Retry-After, never with a
 * 500 or a dropped connection, keep its memory bounded, and once every
 * sender has retried its refused batches, hold every span exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startService, type ServiceUnderTest } from '../helpers/service.js'
import { deliver, makeBatch, peakRssMiB, rawCounts, SendLog, storedSpansOnce, wireRequest, type WireEncoding } from './load-otlp.js'

const SENDERS = 160
const BATCHES_PER_SENDER = 2
const SPANS_PER_BATCH = 400
const MAX_QUEUED_SPANS = 20_000
/** Peak RSS the service may reach under this flood (measured: see the test's output). */
const RSS_BOUND_MIB = 1024
/** Large bodies: senders at once, spans per body, filler characters per span (4 MB a body decompressed, 30 KB gzipped). */
const LARGE = { senders: 64, spans: 500, padding: 8000 }
/** Peak RSS under the large bodies: the receiver's byte budgets (48 MiB being decoded, 64 MiB queued) keep it here. */
const LARGE_RSS_BOUND_MIB = 1536
const ENCODINGS: WireEncoding[] = ['protobuf', 'json', 'protobuf+gzip', 'json+gzip']
const DAY = Date.parse('2026-10-05T00:00:00Z')

let service: ServiceUnderTest
let key: string
let largeService: ServiceUnderTest | undefined

beforeAll(async () => {
  service = await startService({ env: { NHI_METER_OTLP_MAX_QUEUED_SPANS: String(MAX_QUEUED_SPANS), NHI_METER_ROLLUP_INTERVAL_SECONDS: '0' } })
  key = service.adminKey!
})

afterAll(async () => {
  await service?.stop()
  await largeService?.stop()
})

describe('receiver under overload', () => {
  it('refuses only with 429/503 and Retry-After, stays under its memory bound, and stores every retried span exactly once', { timeout: 180_000 }, async () => {
    const log = new SendLog()
    const sentByService = new Map<string, number>()
    const baselineRss = peakRssMiB(service.process.pid!)
    // Every batch is encoded up front so all senders start at once.
    const work = Array.from({ length: SENDERS }, (_, sender) => {
      const encoding = ENCODINGS[sender % ENCODINGS.length]!
      const name = `flood-${encoding.replace('+', '-')}`
      return Array.from({ length: BATCHES_PER_SENDER }, (_, index) => {
        const batch = makeBatch({ service: name, nhiId: `${name}-id`, tag: sender + 1, index, size: SPANS_PER_BATCH, dayStartMs: DAY })
        sentByService.set(name, (sentByService.get(name) ?? 0) + SPANS_PER_BATCH)
        return wireRequest(batch, encoding)
      })
    })
    const started = Date.now()
    await Promise.all(
      work.map(async (requests) => {
        for (const request of requests) {
          await deliver(request, SPANS_PER_BATCH, { url: () => service.otlpUrl, headers: { Authorization: `Bearer ${key}` }, log, maxBackoffMs: 400, deadlineMs: 150_000 })
        }
      }),
    )
    const seconds = (Date.now() - started) / 1000
    const peakRss = peakRssMiB(service.process.pid!)
    const sent = SENDERS * BATCHES_PER_SENDER * SPANS_PER_BATCH
    console.log(
      `overload: ${SENDERS} senders × ${BATCHES_PER_SENDER} batches × ${SPANS_PER_BATCH} spans = ${sent} spans in ${seconds.toFixed(1)} s; ` +
        `${log.summary()}; peak RSS ${peakRss?.toFixed(0)} MiB (before the flood ${baselineRss?.toFixed(0)} MiB)`,
    )

    expect(log.unexpected).toEqual([])
    expect(log.transport(), log.summary()).toBe(0)
    expect(log.missingRetryAfter).toBe(0)
    expect([...log.statuses.keys()].every((s) => s === 200 || s === 429 || s === 503), log.summary()).toBe(true)
    // The flood did exceed what the receiver takes at once.
    expect(log.count(429)).toBeGreaterThan(0)
    expect(log.count(200)).toBe(SENDERS * BATCHES_PER_SENDER)
    expect(log.spansAcknowledged).toBe(sent)
    if (peakRss !== undefined) expect(peakRss).toBeLessThan(RSS_BOUND_MIB)

    const stored = await storedSpansOnce(service, key, new Date(DAY), new Date(DAY + 86_400_000), (m) => [...sentByService].every(([name, n]) => m.get(name) === n))
    expect(Object.fromEntries(stored)).toEqual(Object.fromEntries(sentByService))

    expect(await service.stop()).toBe(0)
    const raw = rawCounts(service.dataDir)
    for (const [name, spans] of sentByService) {
      // A refused batch stored nothing, so not even the raw table holds a span twice.
      expect(raw.get(name), name).toMatchObject({ rows: spans, spans, ledger: spans, duplicated: [] })
    }
  })

  it('keeps memory bounded when many large, highly compressed bodies arrive at once, and stores them all once', { timeout: 180_000 }, async () => {
    largeService = await startService({ env: { NHI_METER_ROLLUP_INTERVAL_SECONDS: '0' } })
    const largeKey = largeService.adminKey!
    const log = new SendLog()
    const baselineRss = peakRssMiB(largeService.process.pid!)
    const requests = Array.from({ length: LARGE.senders }, (_, sender) =>
      wireRequest(makeBatch({ service: 'flood-large', nhiId: 'flood-large-id', tag: 1000 + sender, index: 0, size: LARGE.spans, dayStartMs: DAY, padding: LARGE.padding }), 'protobuf+gzip'),
    )
    const started = Date.now()
    await Promise.all(requests.map((request) => deliver(request, LARGE.spans, { url: () => largeService!.otlpUrl, headers: { Authorization: `Bearer ${largeKey}` }, log, maxBackoffMs: 400, deadlineMs: 150_000 })))
    const peakRss = peakRssMiB(largeService.process.pid!)
    const sent = LARGE.senders * LARGE.spans
    console.log(
      `overload, large bodies: ${LARGE.senders} senders × ${LARGE.spans} spans × ${LARGE.padding} filler characters (${(requests[0]!.body.length / 1024).toFixed(0)} KiB gzipped each) ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s; ${log.summary()}; peak RSS ${peakRss?.toFixed(0)} MiB (before ${baselineRss?.toFixed(0)} MiB)`,
    )
    expect(log.unexpected).toEqual([])
    expect(log.transport(), log.summary()).toBe(0)
    expect(log.missingRetryAfter).toBe(0)
    expect(log.count(200)).toBe(LARGE.senders)
    if (peakRss !== undefined) expect(peakRss).toBeLessThan(LARGE_RSS_BOUND_MIB)
    const stored = await storedSpansOnce(largeService, largeKey, new Date(DAY), new Date(DAY + 86_400_000), (m) => m.get('flood-large') === sent)
    expect(Object.fromEntries(stored)).toEqual({ 'flood-large': sent })
  })
})
