import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { testKeys } from '../test-support/keys.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { loadPlanFacts, planUsage, type UsagePlan } from './plan.js'
import { policyKey, runRollup } from './rollup.js'

// The month to date: a prefix of the month's closed days, one of today's closed hours, one of the open hour.

let client: ClickHouseClient
const { store, key } = testKeys([{ name: 'admin', scopes: ['admin'] }])
const cards = TEST_POLICY.rate_cards
/** Far more than any test's age: a planner given it reads everything from the ledger. */
const LEDGER_ONLY = 10 * 365 * 86_400
const DAY = 86_400_000
const HOUR = 3_600_000

const now = Date.now()
const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)
const today = Math.floor(now / DAY) * DAY
const openHour = Math.floor(now / HOUR) * HOUR
// What this day of the month allows: closed days before today, closed hours before the open one.
const closedDays = (today - monthStart) / DAY
const closedHoursToday = (openHour - today) / HOUR

const tool = (id: string, at: number) =>
  spanRow({ start: new Date(at).toISOString(), attributes: { 'nhi.id': id, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } })

async function bill(range: { from: Date; to: Date }, grace?: number): Promise<{ rows: unknown[]; total: { quantity: number } }> {
  const app = createApp({ client, keys: () => store, policy: () => TEST_POLICY, ...(grace === undefined ? {} : { rollupGraceSeconds: grace }) })
  const response = await app.request(`/v1/billable?from=${range.from.toISOString()}&to=${range.to.toISOString()}&group_by=nhi.id,meter`, {
    headers: { Authorization: `Bearer ${key('admin')}` },
  })
  expect(response.status).toBe(200)
  const body = (await response.json()) as { rows: unknown[]; total: { quantity: number } }
  return { rows: body.rows, total: body.total }
}

async function plan(range: { from: Date; to: Date }, coarsest: 'month' | 'day' = 'month'): Promise<UsagePlan> {
  return planUsage(range, await loadPlanFacts(client, range, policyKey(cards)), coarsest)
}

/** Spans of the month so far: on each closed day (the last two at several hours), today's closed hours and the open hour. */
const spans: ReturnType<typeof tool>[] = []

beforeAll(async () => {
  client = await freshStorage()
  for (let d = 0; d < closedDays; d++) spans.push(tool(`agent-${d % 3}`, monthStart + d * DAY + 7 * HOUR))
  for (let d = Math.max(0, closedDays - 2); d < closedDays; d++) spans.push(tool('agent-late-day', monthStart + d * DAY + 20 * HOUR + 60_000))
  for (let h = 0; h < closedHoursToday; h++) spans.push(tool(`agent-${h % 4}`, today + h * HOUR + 120_000))
  spans.push(tool('agent-open', Math.max(openHour, now - 30_000)))
  await insertSpans(client, spans)
})

afterAll(async () => {
  await client.close()
})

describe('the prefixes of the month and the day', () => {
  it('bill the month to date from a prefix of its days and one of today’s hours, exactly', async () => {
    const run = await runRollup(client, cards)
    // The closed days of the last two (whose hours are summarised) are copies of their day prefix.
    expect(run.daysFromPrefixes).toBe(Math.min(2, closedDays))
    const range = { from: new Date(monthStart), to: new Date(now) }
    const p = await plan(range)
    const levels = p.rollup.map((r) => r.level)
    if (closedDays > 0) expect(p.rollup.find((r) => r.level === 'month_to')?.intervals).toEqual([[monthStart, today]])
    if (closedHoursToday > 0) expect(p.rollup.find((r) => r.level === 'day_to')?.intervals).toEqual([[today, openHour]])
    expect(levels).not.toContain('day')
    expect(levels).not.toContain('hour')
    const fromSummary = await bill(range)
    expect(fromSummary.total.quantity).toBe(spans.length)
    expect(fromSummary).toEqual(await bill(range, LEDGER_ONLY))
    // A bill grouped by day cannot read the month's prefix: it reads days, and today's prefix.
    expect((await plan(range, 'day')).rollup.map((r) => r.level)).not.toContain('month_to')
  })

  it('rebuilds the month’s prefix when a closed day inside it changes, and bills the late span at once and after', async () => {
    if (closedDays === 0) return
    const late = tool('agent-late', monthStart + 3 * HOUR)
    await insertSpans(client, [late])
    const range = { from: new Date(monthStart), to: new Date(now) }
    // Before the next run the day is dirty: the prefix is not read, and the span counts from the ledger.
    expect((await plan(range)).rollup.map((r) => r.level)).not.toContain('month_to')
    expect((await bill(range)).total.quantity).toBe(spans.length + 1)
    await runRollup(client, cards)
    const p = await plan(range)
    expect(p.rollup.find((r) => r.level === 'month_to')?.intervals).toEqual([[monthStart, today]])
    const fromSummary = await bill(range)
    expect(fromSummary.total.quantity).toBe(spans.length + 1)
    expect(fromSummary).toEqual(await bill(range, LEDGER_ONLY))
  })
})
