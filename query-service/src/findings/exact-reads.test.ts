import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OtelTraceRow } from '../otlp/rows.js'
import { use } from '../test-support/findings.js'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { distinctFirst } from '../telemetry/queries.js'
import { latestTraces, SAMPLE_TRACES, sampleTraces, type SampleRequest } from './exact-reads.js'

const HOUR = Date.parse('2026-10-20T10:00:00Z')
const MINUTE = 60_000

let client: ClickHouseClient
let serial = 0
const rows: OtelTraceRow[] = []

/** A use by `id` at `ms`, in a trace of its own. */
function at(id: string, ms: number): void {
  serial++
  rows.push({ ...use(id, new Date(ms).toISOString()), TraceId: serial.toString(16).padStart(32, '0'), SpanId: serial.toString(16).padStart(16, '0') })
}

/** What the reader promises, computed from the rows: the latest uses of the identity's last hour, by time then trace id, distinct. */
function expected(id: string): string[] {
  const own = rows.filter((r) => r.SpanAttributes['nhi.id'] === id).map((r) => ({ ms: Date.parse(r.Timestamp.replace(' ', 'T') + 'Z'), trace: r.TraceId }))
  const last = Math.max(...own.map((r) => r.ms))
  const hour = Math.floor(last / 3_600_000) * 3_600_000
  const latest = own
    .filter((r) => r.ms >= hour)
    .sort((a, b) => b.ms - a.ms || (a.trace < b.trace ? 1 : -1))
    .slice(0, SAMPLE_TRACES * 3)
  return distinctFirst(
    latest.map((r) => r.trace),
    SAMPLE_TRACES,
  )
}

beforeAll(async () => {
  client = await freshStorage()
  // Busy: twenty uses in its last minute, more earlier in the hour.
  for (let i = 0; i < 30; i++) at('busy', HOUR + 20 * MINUTE + i * 3_000)
  for (let i = 0; i < 20; i++) at('busy', HOUR + 50 * MINUTE + i * 2_000)
  // Two uses in its last minute, ten more in its last ten minutes.
  for (let i = 0; i < 10; i++) at('tens', HOUR + 41 * MINUTE + i * 20_000)
  for (let i = 0; i < 2; i++) at('tens', HOUR + 48 * MINUTE + i * 1_000)
  // Four uses a quarter of an hour apart: only the hour holds enough.
  for (let i = 0; i < 4; i++) at('quarterly', HOUR + i * 15 * MINUTE + 7_000)
  // One use in its last hour, many in the hour before: the hour before is not its last activity.
  for (let i = 0; i < 12; i++) at('fading', HOUR - 30 * MINUTE + i * MINUTE)
  at('fading', HOUR + 5 * MINUTE)
  await insertSpans(client, rows)
})

afterAll(async () => {
  await client?.close()
})

describe('latestTraces', () => {
  it('answers for every identity what reading its whole last hour answers, from the narrowest window that holds enough', async () => {
    const ids = ['busy', 'tens', 'quarterly', 'fading']
    const lastSeen = new Map(ids.map((id) => [id, Math.max(...rows.filter((r) => r.SpanAttributes['nhi.id'] === id).map((r) => Date.parse(r.Timestamp.replace(' ', 'T') + 'Z')))]))
    const samples = await latestTraces(client, lastSeen, null)
    for (const id of ids) expect(samples.get(id), id).toEqual(expected(id))
    expect(samples.get('fading')).toHaveLength(1)
    expect(samples.get('quarterly')).toHaveLength(3)
  })

  it('leaves out an identity with no use in the hour it was said to be last seen, and asks nothing for none', async () => {
    expect(await latestTraces(client, new Map([['nobody', HOUR]]), null)).toEqual(new Map())
    expect(await latestTraces(client, new Map(), null)).toEqual(new Map())
  })
})

describe('sampleTraces', () => {
  it('answers each of hundreds of slices, over several statements, as it answers that slice alone', async () => {
    const ids = ['busy', 'tens', 'quarterly', 'fading']
    const requests: SampleRequest[] = Array.from({ length: 450 }, (_, i) => ({ nhiId: ids[i % 4]!, from: HOUR - 3_600_000 + (i % 7) * 10 * MINUTE, to: HOUR + 3_600_000 - (i % 5) * 10 * MINUTE }))
    const together = await sampleTraces(client, requests, null)
    expect(together).toHaveLength(450)
    for (const i of [0, 1, 2, 3, 199, 200, 201, 399, 400, 449]) expect(together[i], `slice ${i}`).toEqual((await sampleTraces(client, [requests[i]!], null))[0])
    expect(together.filter((s) => s.length > 0).length).toBeGreaterThan(300)
  })
})
