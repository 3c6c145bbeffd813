import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { declare } from '../test-support/findings.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { loadPlanFacts, planUsage, type UsagePlan } from './plan.js'
import { billableAggregates, type BillableAggregates, type GroupByKey } from './queries.js'
import { policyKey, runRollup } from './rollup.js'
import { compareCodePoints, mergeSorted, usageAggregates } from './summary-part.js'

const cards = TEST_POLICY.rate_cards

function aggregates(rows: Array<[id: string, card: number, identified: boolean, events: number[], spans: number]>): BillableAggregates {
  return {
    keys: { 'nhi.id': rows.map((r) => r[0]) },
    cardIndex: rows.map((r) => r[1]),
    identified: rows.map((r) => r[2]),
    events: rows.map((r) => r[3]),
    sums: rows.map(() => []),
    missing: rows.map(() => []),
    spans: rows.map((r) => r[4]),
    sumFirst: [0],
  }
}

describe('merging the summary’s part and the ledger’s', () => {
  it('compares strings as ClickHouse compares their UTF-8 bytes', () => {
    const strings = ['', 'a', 'ab', 'b', 'Z', 'é', '\u00ff', '\ud7ff', '\ue000', '\uffff', '😀', '😀a', '𐀀', 'a😀', 'a\uffff']
    for (const a of strings) {
      for (const b of strings) expect([a, b, Math.sign(compareCodePoints(a, b))]).toEqual([a, b, Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))])
    }
  })

  it('adds the rows both hold, keeps the rest in key order, and changes neither input', () => {
    const summary = aggregates([
      ['agent-a', 0, true, [0, 5], 5],
      ['agent-c', 0, true, [0, 2], 2],
      ['agent-c', 1, true, [0, 0, 1], 1],
      ['\ue000', 0, true, [0, 1], 1],
    ])
    const tail = aggregates([
      ['', 0, false, [3], 3],
      ['agent-b', 0, true, [0, 1], 1],
      ['agent-c', 1, true, [0, 0, 4], 4],
      ['agent-c', 0, false, [1], 1],
      ['😀', 0, true, [0, 7], 7],
    ])
    const before = structuredClone([summary, tail])
    const merged = mergeSorted(summary, tail)!
    expect(merged.keys['nhi.id']).toEqual(['', 'agent-a', 'agent-b', 'agent-c', 'agent-c', 'agent-c', '\ue000', '😀'])
    expect(merged.cardIndex).toEqual([0, 0, 0, 0, 1, 0, 0, 0])
    expect(merged.identified).toEqual([false, true, true, true, true, false, true, true])
    expect(merged.events).toEqual([[3], [0, 5], [0, 1], [0, 2], [0, 0, 5], [1], [0, 1], [0, 7]])
    expect(merged.spans).toEqual([3, 5, 1, 2, 5, 1, 1, 7])
    expect([summary, tail]).toEqual(before)
  })

  it('refuses inputs out of key order rather than count a row twice', () => {
    const sorted = aggregates([['agent-b', 0, true, [0, 1], 1]])
    expect(mergeSorted(aggregates([['agent-c', 0, true, [0, 1], 1], ['agent-a', 0, true, [0, 1], 1]]), sorted)).toBeUndefined()
    expect(mergeSorted(sorted, aggregates([['😀', 0, true, [0, 1], 1], ['\ue000', 0, true, [0, 1], 1]]))).toBeUndefined()
  })
})

// On the embedded engine: the month to date from the summary's prefixes and the ledger's last seconds.
let client: ClickHouseClient
const HOUR = 3_600_000
const tool = (id: string, at: number, service = 'svc') =>
  spanRow({ start: new Date(at).toISOString(), service, attributes: { 'nhi.id': id, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } })
const api = (id: string, at: number) => spanRow({ start: new Date(at).toISOString(), kind: 'Server', attributes: { 'nhi.id': id, 'http.route': '/v1/x' } })

beforeAll(async () => {
  client = await freshStorage()
  const now = Date.now()
  // Today's earlier hours (or yesterday's, just after midnight) and the open hour, summarised.
  await insertSpans(client, [
    tool('agent-a', now - 3 * HOUR),
    tool('agent-b', now - 2 * HOUR, 'svc-2'),
    api('agent-b', now - 2 * HOUR),
    tool('agent-c', now - 60_000),
    spanRow({ start: new Date(now - 90_000).toISOString(), kind: 'Server' }),
  ])
  await runRollup(client, cards, 0)
})

afterAll(async () => {
  await client.close()
})

/** The plan of the month to date now, and the aggregates read as one statement. */
async function monthToDate(groupBy: GroupByKey[]): Promise<{ plan: UsagePlan; options: Parameters<typeof billableAggregates>[1] }> {
  const now = new Date()
  const range = { from: new Date(Math.min(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1), now.getTime() - 4 * HOUR)), to: now }
  const plan = planUsage(range, await loadPlanFacts(client, range, policyKey(cards), 0), 'month')
  return { plan, options: { groupBy, granularity: 'month', cards, businessUnits: null, plan } }
}

describe('the summary’s part of a month to date', () => {
  it('is read once between the summary’s writes, and the bill is the one a single statement gives', async () => {
    // Spans after the run: the ledger's part.
    const later = Date.now()
    await insertSpans(client, [tool('agent-a', later), tool('agent-d', later), api('agent-b', later)])
    const { plan, options } = await monthToDate(['nhi.id'])
    expect(plan.rollup.length).toBeGreaterThan(0)
    expect(plan.ledger.length).toBeGreaterThan(0)
    const reads = vi.spyOn(client, 'exec')
    try {
      const first = await usageAggregates(client, options)
      expect(reads).toHaveBeenCalledTimes(2)
      expect(first).toEqual(await billableAggregates(client, options))
      expect(first.keys['nhi.id']).toEqual(['', 'agent-a', 'agent-b', 'agent-c', 'agent-d'])
      expect(first.spans).toEqual([1, 2, 3, 1, 1])
      reads.mockClear()

      // Another span in the ledger's part: the summary's part is not read again.
      await insertSpans(client, [tool('agent-0', Date.now())])
      const again = await monthToDate(['nhi.id'])
      const second = await usageAggregates(client, again.options)
      expect(reads).toHaveBeenCalledTimes(1)
      expect(second).toEqual(await billableAggregates(client, again.options))
      expect(second.keys['nhi.id']).toEqual(['', 'agent-0', 'agent-a', 'agent-b', 'agent-c', 'agent-d'])
      reads.mockClear()

      // A late span in a summarised hour, summarised again: the summary's part is read again, with it.
      await insertSpans(client, [tool('agent-b', Date.now() - 2 * HOUR + 1000)])
      await runRollup(client, cards, 0)
      await insertSpans(client, [tool('agent-e', Date.now())])
      const after = await monthToDate(['nhi.id'])
      expect(after.plan.rollup.length).toBeGreaterThan(0)
      expect(after.plan.ledger.length).toBeGreaterThan(0)
      const third = await usageAggregates(client, after.options)
      expect(reads).toHaveBeenCalledTimes(2)
      expect(third).toEqual(await billableAggregates(client, after.options))
      expect(third.spans[third.keys['nhi.id']!.indexOf('agent-b')]).toBe(4)
    } finally {
      reads.mockRestore()
    }
  })

  it('follows the inventory when grouped by business unit', async () => {
    await insertSpans(client, [tool('agent-f', Date.now())])
    const { options } = await monthToDate(['business_unit', 'nhi.id'])
    const before = await usageAggregates(client, options)
    expect(before).toEqual(await billableAggregates(client, options))
    await declare(client, [{ id: 'agent-a', business_unit: 'payments' }, { id: 'agent-f', business_unit: 'payments' }])
    const after = await usageAggregates(client, options)
    expect(after).toEqual(await billableAggregates(client, options))
    expect(after.keys.business_unit!.filter((unit) => unit === 'payments')).toHaveLength(2)
  })
})
