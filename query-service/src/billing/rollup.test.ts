import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { validatePolicy } from '../policy/index.js'
import { testKeys } from '../test-support/keys.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { loadPlanFacts, planUsage, type UsagePlan } from './plan.js'
import type { RateCard } from '../policy/index.js'
import { policyKey, runRollup, scheduleRollup } from './rollup.js'

let client: ClickHouseClient
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read'], business_units: ['finance'] },
])

/** A policy whose price for tool calls changes at 01:30 on 5 November, inside an hour. */
const REPRICED_INPUT = {
  rate_cards: [
    { version: 'v1', effective_from: '2026-11-01T00:00:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' }] },
    { version: 'v2', effective_from: '2026-11-05T01:30:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.003' }] },
  ],
}
const REPRICED = validatePolicy(REPRICED_INPUT).policy

const tool = (id: string, bu: string, start: string, spanId?: string) =>
  spanRow({ start, ...(spanId ? { traceId: spanId.padStart(32, 'c'), spanId } : {}), attributes: { 'nhi.id': id, 'nhi.business_unit': bu, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } })

interface Billable {
  rows: Array<Record<string, string | number>>
  total: { quantity: number; amount: string }
  completeness: { spans: number }
  rate_card_versions: string[]
}

async function bill(query: string, keyName = 'admin', policy = TEST_POLICY): Promise<Billable> {
  const app = createApp({ client, keys: () => store, policy: () => policy, rollupGraceSeconds: 0 })
  const response = await app.request(`/v1/billable?${query}`, { headers: { Authorization: `Bearer ${key(keyName)}` } })
  expect(response.status).toBe(200)
  return (await response.json()) as Billable
}

const DAY = 'from=2026-11-05T00:00:00Z&to=2026-11-06T00:00:00Z'
const NOV5 = { from: new Date('2026-11-05T00:00:00Z'), to: new Date('2026-11-06T00:00:00Z') }
const at = (iso: string) => Date.parse(iso)

/** The plan billing would use for 5 November, read per day unless `coarsest` says otherwise. */
async function plan(cards: readonly RateCard[] = TEST_POLICY.rate_cards, coarsest: 'hour' | 'day' | 'month' = 'month'): Promise<UsagePlan> {
  return planUsage(NOV5, await loadPlanFacts(client, NOV5, policyKey(cards), 0), coarsest)
}
const run = (cards: readonly RateCard[] = TEST_POLICY.rate_cards) => runRollup(client, cards, 0)
const summaryDay = (key: string) => ({ rollup: [{ level: 'day', intervals: [[at('2026-11-05T00:00:00Z'), at('2026-11-06T00:00:00Z')]] }], ledger: [], policyKey: key })

beforeAll(async () => {
  client = await freshStorage()
  await insertSpans(client, [
    tool('agent-a', 'finance', '2026-11-05T00:10:00Z', '00000000000000a1'),
    tool('agent-a', 'finance', '2026-11-05T01:10:00Z', '00000000000000a2'),
    tool('agent-a', 'finance', '2026-11-05T01:40:00Z', '00000000000000a3'),
    tool('agent-b', 'sales', '2026-11-05T02:10:00Z', '00000000000000b1'),
    tool('agent-b', 'sales', '2026-11-05T23:59:59Z', '00000000000000b2'),
    spanRow({ start: '2026-11-05T03:00:00Z', kind: 'Server', service: 'legacy' }),
  ])
})

afterAll(async () => {
  await client?.close()
})

describe('the usage summary', () => {
  it('gives the same bill as the ledger, and billing then reads the summarised day', async () => {
    const before = await bill(`${DAY}&group_by=nhi.id,meter,period&granularity=hour`)
    expect(await plan()).toEqual({ rollup: [], ledger: [[at('2026-11-05T00:00:00Z'), at('2026-11-06T00:00:00Z')]], policyKey: '' })
    const first = await run()
    // 5 November is more than two days old: no hour is summarised, its day and month are.
    expect(first).toMatchObject({ hoursRecomputed: 0, periodsRebuilt: 2 })
    expect(await plan()).toEqual(summaryDay(policyKey(TEST_POLICY.rate_cards)))
    // Hourly figures for a day this old come from the ledger.
    expect((await plan(TEST_POLICY.rate_cards, 'hour')).rollup).toEqual([])
    expect(await bill(`${DAY}&group_by=nhi.id,meter,period&granularity=hour`)).toEqual(before)
    expect((await bill(DAY)).total).toEqual({ quantity: 5, amount: '0.01' })
    expect((await run()).periodsRebuilt).toBe(0)
  })

  it('keeps one summary row per identity, unit and card for the day, its events counted per meter, not per activity name', async () => {
    const rows = await (
      await client.query({ query: "SELECT nhi_id, card_idx, events FROM nhi_usage_summary FINAL WHERE level = 'day' ORDER BY nhi_id", format: 'JSONEachRow' })
    ).json<{ nhi_id: string; card_idx: number; events: string[] }>()
    // events: element 1 counts events that matched no meter, element i + 2 those of the card's meter i.
    expect(rows).toEqual([
      // The unidentified API call matches the card's third meter (api_calls) but bills nothing: it has no identity.
      { nhi_id: '', card_idx: 0, events: ['0', '0', '0', '1'] },
      { nhi_id: 'agent-a', card_idx: 0, events: ['0', '3'] },
      { nhi_id: 'agent-b', card_idx: 0, events: ['0', '2'] },
    ])
  })

  it('counts a span delivered again after its day was summarised once, before and after the next run', async () => {
    await insertSpans(client, [tool('agent-a', 'finance', '2026-11-05T00:10:00Z', '00000000000000a1')])
    expect((await bill(DAY)).total.quantity).toBe(5)
    const dirty = await plan()
    expect(dirty.rollup).toEqual([])
    expect(dirty.ledger).toEqual([[at('2026-11-05T00:00:00Z'), at('2026-11-06T00:00:00Z')]])
    await run()
    expect(await plan()).toEqual(summaryDay(policyKey(TEST_POLICY.rate_cards)))
    expect((await bill(DAY)).total.quantity).toBe(5)
  })

  it('counts a late span in a day already summarised at once, and exactly once after the next run', async () => {
    await insertSpans(client, [tool('agent-b', 'sales', '2026-11-05T02:20:00Z', '00000000000000b3')])
    expect((await bill(DAY)).total).toEqual({ quantity: 6, amount: '0.012' })
    await run()
    expect((await bill(DAY)).total).toEqual({ quantity: 6, amount: '0.012' })
    expect((await bill(`${DAY}&group_by=nhi.id`)).rows).toEqual([
      { 'nhi.id': 'agent-a', quantity: 3, amount: '0.006' },
      { 'nhi.id': 'agent-b', quantity: 3, amount: '0.006' },
    ])
  })

  it('prices each event by the card in force at its start, even when the price changes mid-hour, and summarises that day too', async () => {
    // Other rate cards: the summary of the old ones is not used, the ledger is read until the job has run for these.
    expect(await plan(REPRICED.rate_cards)).toMatchObject({ rollup: [], policyKey: '' })
    const fromLedger = await bill(`${DAY}&group_by=nhi.id`, 'admin', REPRICED)
    // agent-a: 00:10 and 01:10 at 0.002, 01:40 at 0.003; agent-b: all after 01:30 at 0.003.
    expect(fromLedger.rows).toEqual([
      { 'nhi.id': 'agent-a', quantity: 3, amount: '0.007' },
      { 'nhi.id': 'agent-b', quantity: 3, amount: '0.009' },
    ])
    expect(fromLedger.rate_card_versions).toEqual(['v1', 'v2'])
    await run(REPRICED.rate_cards)
    // The card of each event is part of its summary row, so the day with the price change is read from the summary.
    expect(await plan(REPRICED.rate_cards)).toEqual(summaryDay(policyKey(REPRICED.rate_cards)))
    expect(await bill(`${DAY}&group_by=nhi.id`, 'admin', REPRICED)).toEqual(fromLedger)
    // A price alone does not change the key: the same summary serves it.
    const pricier = validatePolicy({ ...REPRICED_INPUT, rate_cards: REPRICED_INPUT.rate_cards.map((c) => ({ ...c, meters: c.meters.map((m) => ({ ...m, unit_price: '1' })) })) }).policy
    expect(policyKey(pricier.rate_cards)).toBe(policyKey(REPRICED.rate_cards))
  })

  it('finds a closed day this key has not summarised by probing the days since its last run, not by reading the ledger', async () => {
    // Yesterday's spans, summarised; then its day marker goes (as if the day had closed after the last run).
    const yesterday = new Date(Date.now() - 86_400_000)
    const day = yesterday.toISOString().slice(0, 10)
    await insertSpans(client, [tool('agent-c', 'finance', `${day}T00:30:00Z`, '00000000000000c1')])
    await run()
    const marker = async () => (await (await client.query({ query: `SELECT count() AS n FROM nhi_usage_summary_periods FINAL WHERE level = 'day' AND period = toDateTime({d:String})`, format: 'JSONEachRow', query_params: { d: `${day} 00:00:00` } })).json<{ n: string }>())[0]!.n
    expect(await marker()).toBe('1')
    await client.command({ query: `ALTER TABLE nhi_usage_summary_periods DELETE WHERE level = 'day' AND period = toDateTime({d:String}) SETTINGS mutations_sync = 1`, query_params: { d: `${day} 00:00:00` } })
    expect(await marker()).toBe('0')
    // Nothing new was ingested: only the probe of the days since the previous run can find it.
    expect((await run()).periodsRebuilt).toBeGreaterThanOrEqual(1)
    expect(await marker()).toBe('1')
  })

  it('rebuilds a closed hour once its rows have settled past the grace, not at every run within it', async () => {
    // An hour of yesterday (closed, inside the two days the hour level keeps) receives a span now.
    const yesterday = new Date(Date.now() - 86_400_000)
    const hour = `${yesterday.toISOString().slice(0, 10)}T05:00:00Z`
    // The hour's summary rows (an hour with no spans is summarised as empty: a mark and no rows).
    const marker = async () =>
      (
        await (
          await client.query({
            query: `SELECT count() AS n FROM nhi_usage_summary FINAL WHERE level = 'hour' AND policy_key = {key:String} AND period = parseDateTimeBestEffort({h:String})`,
            format: 'JSONEachRow',
            query_params: { h: hour, key: policyKey(TEST_POLICY.rate_cards) },
          })
        ).json<{ n: string }>()
      )[0]!.n
    await run()
    expect(await marker()).toBe('0')
    await insertSpans(client, [tool('agent-d', 'finance', hour.replace('05:00:00', '05:20:00'), '00000000000000d1')])
    // Within a 3 s grace the span has not settled: neither its hour nor its day is rebuilt yet.
    await runRollup(client, TEST_POLICY.rate_cards, 3)
    expect(await marker()).toBe('0')
    // Billing reads that hour from the ledger meanwhile: the span counts at once.
    const app = createApp({ client, keys: () => store, policy: () => TEST_POLICY, rollupGraceSeconds: 3 })
    const range = `from=${hour}&to=${hour.replace('05:00:00', '06:00:00')}`
    const response = await app.request(`/v1/billable?${range}`, { headers: { Authorization: `Bearer ${key('admin')}` } })
    expect(((await response.json()) as Billable).total.quantity).toBe(1)
    // Once settled, the next run (with the same grace, as every run has) rebuilds it.
    await new Promise((resolve) => setTimeout(resolve, 3_500))
    await runRollup(client, TEST_POLICY.rate_cards, 3)
    expect(await marker()).toBe('1')
  })

  it('answers group_by=activity.name from the ledger, which keeps names', async () => {
    expect((await bill(`${DAY}&group_by=activity.name`)).rows).toEqual([{ 'activity.name': 'search', quantity: 6, amount: '0.012' }])
  })

  it('reads partial hours at the edges of a range from the ledger', async () => {
    expect((await bill('from=2026-11-05T01:30:00Z&to=2026-11-05T02:15:00Z')).total.quantity).toBe(2)
  })

  it('keeps a business-unit total equal to the sum of that unit’s rows', async () => {
    const finance = await bill(`${DAY}&group_by=business_unit,nhi.id,period&granularity=hour`, 'finance')
    const sum = finance.rows.reduce((n, r) => n + Number(r.quantity), 0)
    expect(finance.total.quantity).toBe(sum)
    expect(finance.rows.every((r) => r.business_unit === 'finance')).toBe(true)
    expect(sum).toBe(3)
  })

  it('returns the same rows as CSV and JSON', async () => {
    const json = await bill(`${DAY}&group_by=nhi.id,meter`)
    const app = createApp({ client, keys: () => store, policy: () => TEST_POLICY })
    const csv = await (await app.request(`/v1/billable?${DAY}&group_by=nhi.id,meter&format=csv`, { headers: { Authorization: `Bearer ${key('admin')}` } })).text()
    const [header, ...lines] = csv.trim().split('\n')
    expect(header).toBe('nhi.id,meter,quantity,amount,currency,completeness')
    expect(lines.map((l) => l.split(',').slice(0, 4))).toEqual(json.rows.map((r) => [r['nhi.id'], r.meter, String(r.quantity), r.amount]))
  })
})

describe('scheduleRollup (the summary job on a timer)', () => {
  it('reports a lasting failure when it starts and then once per reporting period, with the count of failed runs', async () => {
    // A real client whose server refuses every connection: each run fails.
    const unreachable = createClient({ url: 'http://127.0.0.1:9', request_timeout: 1_000, log: { level: ClickHouseLogLevel.OFF } })
    const reported: number[] = []
    const job = scheduleRollup(unreachable, 20, () => TEST_POLICY.rate_cards, (_error, failedRuns) => reported.push(failedRuns), { reportEveryMs: 100 })
    try {
      const deadline = Date.now() + 20_000
      while (reported.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    } finally {
      await job.stop()
      await unreachable.close()
    }
    expect(reported.slice(0, 3)).toEqual([1, 6, 11])
  })
})
