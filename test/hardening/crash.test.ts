/**
 * SIGKILL during sustained ingest: several exporters send continuously, the
 * service is killed without warning mid-stream and restarted on the same
 * data directory. Every span whose batch got a 200 before the kill is there
 * after the restart; the batches in flight at the kill are retried by their
 * senders, as an OTLP exporter retries, and every span is then billed
 * exactly once. Spans may sit twice in the raw table only if their batch
 * was in flight at the kill (stored, but the 200 never arrived) or was
 * acknowledged before it (in the ingest log, inserted into ClickHouse, but
 * not yet marked so when the process died: the log replays it); never a
 * span acknowledged after the restart. The ledger counts every span once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startService, type ServiceUnderTest } from '../helpers/service.js'
import { deliver, makeBatch, rawCounts, SendLog, storedSpansOnce, wireRequest, type LoadBatch, type WireEncoding } from './load-otlp.js'

const SENDERS = 8
const SPANS_PER_BATCH = 300
const ENCODINGS: WireEncoding[] = ['protobuf', 'json', 'protobuf+gzip', 'json+gzip']
const DAY = Date.parse('2026-10-07T00:00:00Z')
const RANGE = [new Date(DAY), new Date(DAY + 86_400_000)] as const

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let service: ServiceUnderTest
let key: string
// The rollup runs every second so a kill can land in the middle of one too.
const env = { NHI_METER_ROLLUP_INTERVAL_SECONDS: '1' }

beforeAll(async () => {
  service = await startService({ env })
  key = service.adminKey!
})

afterAll(async () => {
  await service?.stop()
})

interface SenderState {
  name: string
  batches: LoadBatch[]
  /** Batch being delivered, and whether an attempt of it is on the wire now. */
  current: number
  attempting: boolean
  /** Batches acknowledged so far (they are acknowledged in order). */
  acknowledged: number
}

describe('SIGKILL during sustained ingest', () => {
  it('keeps every acknowledged span, and bills retried in-flight batches exactly once after a restart', { timeout: 180_000 }, async () => {
    const log = new SendLog()
    let url = service.otlpUrl
    let stopSending = false
    /** Batches ("sender/index") with an attempt on the wire while the kill happened. */
    const inFlightAtKill = new Set<string>()
    let killing = false
    let ackedBeforeKill = new Map<string, number>()
    const acked = new Map<string, number>()

    const senders: SenderState[] = Array.from({ length: SENDERS }, (_, s) => ({ name: `crash-${ENCODINGS[s % ENCODINGS.length]!.replace('+', '-')}`, batches: [], current: -1, attempting: false, acknowledged: 0 }))
    const running = senders.map(async (sender, s) => {
      const encoding = ENCODINGS[s % ENCODINGS.length]!
      for (let index = 0; !stopSending; index++) {
        const batch = makeBatch({ service: sender.name, nhiId: `${sender.name}-id`, tag: 100 + s, index, size: SPANS_PER_BATCH, dayStartMs: DAY })
        sender.batches.push(batch)
        sender.current = index
        const accepted = await deliver(wireRequest(batch, encoding), SPANS_PER_BATCH, {
          url: () => url,
          headers: { Authorization: `Bearer ${key}` },
          log,
          maxBackoffMs: 300,
          deadlineMs: 150_000,
          onAttempt: (phase) => {
            sender.attempting = phase === 'start'
            if (phase === 'start' && killing) inFlightAtKill.add(`${s}/${index}`)
          },
        })
        expect(accepted).toBe(true)
        sender.acknowledged++
        acked.set(sender.name, (acked.get(sender.name) ?? 0) + SPANS_PER_BATCH)
      }
    })

    await sleep(5000)
    killing = true
    senders.forEach((sender, s) => sender.attempting && inFlightAtKill.add(`${s}/${sender.current}`))
    ackedBeforeKill = new Map(acked)
    const acknowledgedAtKill = senders.map((sender) => sender.acknowledged)
    await service.kill()
    killing = false
    const killedAt = Date.now()

    // Restarted on the same data directory; the senders still knock at the old port until the check below is done.
    service = await startService({ dataDir: service.dataDir, env })
    const restartSeconds = (Date.now() - killedAt) / 1000
    // Acknowledged spans the kill left in the ingest log reach ClickHouse as the restarted service replays it.
    const afterRestart = await storedSpansOnce(service, key, ...RANGE, (m) => [...ackedBeforeKill].every(([name, n]) => (m.get(name) ?? 0) >= n), 30_000)
    const inFlightSpans = new Map<string, number>()
    for (const id of inFlightAtKill) {
      const name = senders[Number(id.split('/')[0])]!.name
      inFlightSpans.set(name, (inFlightSpans.get(name) ?? 0) + SPANS_PER_BATCH)
    }
    for (const [name, spans] of ackedBeforeKill) {
      // Every acknowledged span is there; at most the in-flight ones besides.
      expect(afterRestart.get(name), name).toBeGreaterThanOrEqual(spans)
      expect(afterRestart.get(name), name).toBeLessThanOrEqual(spans + (inFlightSpans.get(name) ?? 0))
    }

    url = service.otlpUrl
    await sleep(3000)
    stopSending = true
    await Promise.all(running)

    const sent = new Map<string, number>()
    for (const sender of senders) sent.set(sender.name, (sent.get(sender.name) ?? 0) + sender.batches.length * SPANS_PER_BATCH)
    expect(acked).toEqual(sent)
    const stored = await storedSpansOnce(service, key, ...RANGE, (m) => [...sent].every(([name, n]) => m.get(name) === n))
    expect(Object.fromEntries(stored)).toEqual(Object.fromEntries(sent))

    const total = [...sent.values()].reduce((a, b) => a + b, 0)
    const beforeKill = [...ackedBeforeKill.values()].reduce((a, b) => a + b, 0)
    expect(await service.stop()).toBe(0)
    const raw = rawCounts(service.dataDir)
    const allowedTwice = new Set<string>()
    for (const id of inFlightAtKill) {
      const [s, index] = id.split('/').map(Number) as [number, number]
      for (const span of senders[s]!.batches[index]!.spans) allowedTwice.add(span.spanId)
    }
    // Replayed from the ingest log: only batches acknowledged before the kill.
    senders.forEach((sender, s) => {
      for (const batch of sender.batches.slice(0, acknowledgedAtKill[s])) for (const span of batch.spans) allowedTwice.add(span.spanId)
    })
    let duplicates = 0
    for (const [name, spans] of sent) {
      const counts = raw.get(name)!
      expect(counts, name).toMatchObject({ spans, ledger: spans })
      expect(counts.duplicated.filter((id) => !allowedTwice.has(id)), `${name}: spans stored twice that were neither in flight at the kill nor acknowledged before it`).toEqual([])
      duplicates += counts.rows - counts.spans
    }
    console.log(
      `crash: ${SENDERS} senders, ${total} spans sent (${beforeKill} acknowledged before the kill, ${inFlightAtKill.size} batches in flight at it); ` +
        `restart took ${restartSeconds.toFixed(1)} s; ${log.summary()}; raw duplicate rows ${duplicates} (billed once); lost 0`,
    )
    expect([...log.statuses.keys()].every((s) => s === 200 || s === 429 || s === 503), log.summary()).toBe(true)
    expect(log.unexpected).toEqual([])
  })
})
