import type { ClickHouseClient } from '@clickhouse/client'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { writeAround } from '../storage/write-tracking.js'
import { testKeys } from '../test-support/keys.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { loadPlanFacts, planUsage, type PlanFacts, type UsagePlan } from './plan.js'
import { policyKey, runRollup, SLICE_SECONDS } from './rollup.js'

// The open hour: slices, hour prefixes and the in-flight bound, on spans stamped around now.

let client: ClickHouseClient
/** The spans of the first 50 minutes. */
const spans: ReturnType<typeof spanRow>[] = []
const { store, key } = testKeys([{ name: 'admin', scopes: ['admin'] }])
const cards = TEST_POLICY.rate_cards
/** Far more than any test's age: a planner given it reads everything from the ledger. */
const LEDGER_ONLY = 10 * 365 * 86_400

const tool = (id: string, msAgo: number, spanId?: string) =>
  spanRow({
    start: new Date(Date.now() - msAgo).toISOString(),
    ...(spanId ? { traceId: spanId.padStart(32, 'e'), spanId } : {}),
    attributes: { 'nhi.id': id, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' },
  })

/** From an hour before the open hour's start to now: what the slices cover. */
function window(): { from: Date; to: Date } {
  const now = Date.now()
  return { from: new Date(Math.floor(now / 3_600_000) * 3_600_000 - 3_600_000), to: new Date(now) }
}

async function bill(range: { from: Date; to: Date }, grace?: number): Promise<{ rows: unknown[]; total: { quantity: number; amount: string } }> {
  const app = createApp({ client, keys: () => store, policy: () => TEST_POLICY, ...(grace === undefined ? {} : { rollupGraceSeconds: grace }) })
  const response = await app.request(`/v1/billable?from=${range.from.toISOString()}&to=${range.to.toISOString()}&group_by=nhi.id,meter`, {
    headers: { Authorization: `Bearer ${key('admin')}` },
  })
  expect(response.status).toBe(200)
  const body = (await response.json()) as { rows: unknown[]; total: { quantity: number; amount: string } }
  return { rows: body.rows, total: body.total }
}

async function plan(range: { from: Date; to: Date }): Promise<UsagePlan> {
  return planUsage(range, await loadPlanFacts(client, range, policyKey(cards)), 'month')
}

const levels = (p: UsagePlan) => p.rollup.map((r) => r.level)
const ledgerMs = (p: UsagePlan) => p.ledger.reduce((sum, [from, to]) => sum + (to - from), 0)

beforeAll(async () => {
  client = await freshStorage()
  // Spans over the last 50 minutes (some in the hour before, whichever minute this runs at), one delivered twice.
  for (let i = 0; i < 200; i++) spans.push(tool(`agent-${i % 7}`, 20_000 + i * 15_000, `${(i + 1).toString(16).padStart(16, '0')}`))
  await insertSpans(client, spans)
  await insertSpans(client, [spans[3]!])
})

afterAll(async () => {
  await client.close()
})

describe('the summary of the open hour', () => {
  it('summarises closed slices and a prefix per hour, so a bill to now reads only the last seconds from the ledger, exactly', async () => {
    const run = await runRollup(client, cards)
    expect(run.slicesRebuilt).toBeGreaterThan(0)
    // Nothing was being written: the run settled everything ingested before it started.
    expect(Date.parse(`${run.settled.replace(' ', 'T')}Z`)).toBeGreaterThan(Date.now() - 10_000)
    const range = window()
    const p = await plan(range)
    expect(levels(p)).toContain('hour_to')
    // The open slice, and the one that closed after the run at most, come from the ledger.
    expect(ledgerMs(p)).toBeLessThanOrEqual(3 * SLICE_SECONDS * 1000)
    const fromSummary = await bill(range)
    expect(fromSummary.total.quantity).toBe(200)
    expect(fromSummary).toEqual(await bill(range, LEDGER_ONLY))
  })

  it('reads a slice that received late or repeated spans from the ledger until the next run rebuilds it', async () => {
    await runRollup(client, cards)
    // A late span 30 minutes back, and another copy of an early one (the same row): both land in slices already summarised.
    const dirtyAt = Date.now() - 30 * 60_000
    const late = spanRow({ start: new Date(dirtyAt).toISOString(), traceId: 'ffffffffffff0001'.padStart(32, 'e'), spanId: 'ffffffffffff0001', attributes: { 'nhi.id': 'agent-late', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } })
    await insertSpans(client, [late, spans[5]!])
    const range = window()
    const before = await plan(range)
    // The hour prefix holding those slices is not used while they are dirty.
    for (const { level, intervals } of before.rollup) {
      if (level === 'slice' || level === 'hour_to') for (const [from, to] of intervals) expect(dirtyAt >= from && dirtyAt < to).toBe(false)
    }
    const live = await bill(range)
    expect(live.total.quantity).toBe(201)
    expect(live).toEqual(await bill(range, LEDGER_ONLY))
    await runRollup(client, cards)
    const after = await plan(range)
    expect(levels(after)).toContain('hour_to')
    expect(ledgerMs(after)).toBeLessThanOrEqual(3 * SLICE_SECONDS * 1000)
    expect(await bill(range)).toEqual(await bill(range, LEDGER_ONLY))
  })

  it('settles nothing ingested after the start of a write still under way', async () => {
    let release = () => {}
    const write = writeAround(client, 'otel_traces', () => new Promise<void>((resolve) => (release = resolve)))
    // The write noted its start when called: no later than this.
    const started = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const run = await runRollup(client, cards)
    expect(Date.parse(`${run.settled.replace(' ', 'T')}Z`)).toBeLessThanOrEqual(started)
    release()
    await write
    // A row ingested after that bound makes its slice dirty for billing, though the run has ended.
    await insertSpans(client, [tool('agent-after', 5 * 60_000)])
    const range = window()
    expect(await bill(range)).toEqual(await bill(range, LEDGER_ONLY))
    expect((await bill(range)).total.quantity).toBe(202)
  })

  it('is used by an hourly bill, dated at the hour, as the ledger dates it', async () => {
    await runRollup(client, cards)
    const range = window()
    const app = createApp({ client, keys: () => store, policy: () => TEST_POLICY })
    const ledger = createApp({ client, keys: () => store, policy: () => TEST_POLICY, rollupGraceSeconds: LEDGER_ONLY })
    const url = `/v1/billable?from=${range.from.toISOString()}&to=${range.to.toISOString()}&group_by=period,nhi.id&granularity=hour`
    const headers = { Authorization: `Bearer ${key('admin')}` }
    const [a, b] = await Promise.all([app.request(url, { headers }), ledger.request(url, { headers })])
    const summary = (await a.json()) as { rows: Array<{ period: string }> }
    expect(summary).toEqual(await b.json())
    for (const row of summary.rows) expect(row.period.endsWith(':00:00Z')).toBe(true)
  })
})

describe('a closed hour of the slice window', () => {
  it('is summarised from its whole prefix, not from the ledger, and bills as the ledger does', async () => {
    const openHour = Math.floor(Date.now() / 3_600_000) * 3_600_000
    // Uses in the hour before the open one, a late one among them, and one delivered twice.
    const before = Array.from({ length: 30 }, (_, i) => spanRow({ start: new Date(openHour - 3_500_000 + i * 100_000).toISOString(), attributes: { 'nhi.id': `closed-${i % 4}`, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } }))
    await insertSpans(client, before)
    await insertSpans(client, [before[5]!])
    const run = await runRollup(client, cards)
    expect(run.hoursFromPrefixes).toBe(1)
    const hour = { from: new Date(openHour - 3_600_000), to: new Date(openHour) }
    expect(levels(await plan(hour))).toEqual(['hour'])
    const summarised = await bill(hour)
    expect(summarised).toEqual(await bill(hour, LEDGER_ONLY))
    expect(summarised.rows).toEqual(expect.arrayContaining([expect.objectContaining({ 'nhi.id': 'closed-1', quantity: 8 })]))
  })
})

describe('the plan of the open hour', () => {
  const hour = Date.parse('2026-12-07T12:00:00Z')
  const facts = (prefixes: Array<[number, number]>, dirty: number[] = []): PlanFacts => ({
    policyKey: 'k',
    rolled: { slice: new Set(), hour: new Set(), day: new Set(), month: new Set() },
    prefixes: { hour_to: new Map(prefixes), day_to: new Map(), month_to: new Map() },
    dirtySlices: new Set(dirty),
    pendingInRange: false,
  })
  const range = { from: new Date(hour), to: new Date(hour + 5_400_000) }

  it('takes an hour’s prefix that reaches its end, then the next hour’s, then the ledger', () => {
    const p = planUsage(range, facts([[hour, hour + 3_600_000], [hour + 3_600_000, hour + 4_000_000]]), 'month')
    expect(p.rollup).toEqual([{ level: 'hour_to', intervals: [[hour, hour + 3_600_000], [hour + 3_600_000, hour + 4_000_000]] }])
    expect(p.ledger).toEqual([[hour + 4_000_000, hour + 5_400_000]])
  })

  it('leaves a prefix with a dirty slice inside it to finer periods, and one that ends past the range unused', () => {
    expect(planUsage(range, facts([[hour, hour + 3_600_000]], [hour + 600_000]), 'month').ledger).toEqual([[hour, hour + 5_400_000]])
    expect(planUsage({ from: range.from, to: new Date(hour + 1_800_000) }, facts([[hour, hour + 3_600_000]]), 'month').rollup).toEqual([])
  })
})

describe('the plan of the month to date', () => {
  const month = Date.parse('2026-12-01T00:00:00Z')
  const today = Date.parse('2026-12-07T00:00:00Z')
  const hour = Date.parse('2026-12-07T18:00:00Z')
  const now = hour + 1_234_567
  const facts = (dirty: number[] = []): PlanFacts => ({
    policyKey: 'k',
    rolled: { slice: new Set(), hour: new Set([today, today + 3_600_000]), day: new Set(Array.from({ length: 6 }, (_, d) => month + d * 86_400_000)), month: new Set() },
    prefixes: { hour_to: new Map([[hour, hour + 1_200_000]]), day_to: new Map([[today, hour]]), month_to: new Map([[month, today]]) },
    dirtySlices: new Set(dirty),
    pendingInRange: false,
  })
  const range = { from: new Date(month), to: new Date(now) }

  it('reads one prefix of the month, one of the day and one of the hour, and the ledger after them', () => {
    const p = planUsage(range, facts(), 'month')
    expect(p.rollup).toEqual([
      { level: 'month_to', intervals: [[month, today]] },
      { level: 'day_to', intervals: [[today, hour]] },
      { level: 'hour_to', intervals: [[hour, hour + 1_200_000]] },
    ])
    expect(p.ledger).toEqual([[hour + 1_200_000, now]])
  })

  it('leaves a prefix with a dirty hour inside to days and hours, and a bill grouped by day to days and the day prefix', () => {
    const dirty = planUsage(range, facts([month + 86_400_000 + 3_600_000]), 'month')
    expect(dirty.rollup.map((r) => r.level)).toEqual(['day', 'day_to', 'hour_to'])
    expect(dirty.rollup[0]!.intervals).toEqual([[month, month + 86_400_000], [month + 2 * 86_400_000, today]])
    expect(dirty.ledger).toEqual([[month + 86_400_000, month + 2 * 86_400_000], [hour + 1_200_000, now]])
    const byDay = planUsage(range, facts(), 'day')
    expect(byDay.rollup.map((r) => r.level)).toEqual(['day', 'day_to', 'hour_to'])
  })
})

describe('the SQL of the summary and the planner', () => {
  it('compares start times with DateTime64 parameters only (a DateTime one made the embedded engine skip rows)', () => {
    for (const file of ['rollup.ts', 'plan.ts', 'queries.ts']) {
      const text = readFileSync(new URL(`./${file}`, import.meta.url), 'utf8')
      expect(text, file).not.toMatch(/event_time\s*(<|>|<=|>=)\s*\{[^}:]+:DateTime\}/)
    }
  })
})
