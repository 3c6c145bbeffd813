import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { writeAround } from '../storage/write-tracking.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { loadPlanFacts, planUsage } from './plan.js'
import { policyKey, runRollup } from './rollup.js'

// Plan facts on the embedded engine: kept between writes, never past one.

let client: ClickHouseClient
const cards = TEST_POLICY.rate_cards
const key = policyKey(cards)
// A closed day three days ago: summarised by day, nothing of it in the open hour's slices.
const dayStart = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 3 * 86_400_000
const range = { from: new Date(dayStart), to: new Date(dayStart + 86_400_000) }
const tool = (id: string, at: number) =>
  spanRow({ start: new Date(at).toISOString(), attributes: { 'nhi.id': id, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'search' } })

beforeAll(async () => {
  client = await freshStorage()
  await insertSpans(client, [tool('agent-1', dayStart + 3_600_000), tool('agent-2', dayStart + 7_200_000)])
  await runRollup(client, cards, 0)
})

afterAll(async () => {
  await client.close()
})

describe('plan facts', () => {
  it('are read once while nothing is written, and again after a late span and after the next summary run', async () => {
    const first = await loadPlanFacts(client, range, key)
    expect(planUsage(range, first, 'month').ledger).toEqual([])
    const reads = vi.spyOn(client, 'query')
    try {
      expect(await loadPlanFacts(client, range, key)).toBe(first)
      expect(reads).not.toHaveBeenCalled()
      // Another range or policy is a fact of its own.
      await loadPlanFacts(client, { from: range.from, to: new Date(dayStart + 43_200_000) }, key)
      expect(reads).toHaveBeenCalledTimes(1)

      // A late span in the day: its hour is dirty, so the plan reads (at least) that hour from the ledger.
      await insertSpans(client, [tool('agent-3', dayStart + 3_600_000 + 60_000)])
      const late = await loadPlanFacts(client, range, key)
      expect(reads).toHaveBeenCalledTimes(2)
      expect([...late.dirtySlices]).toEqual([dayStart + 3_600_000])
      const ledger = planUsage(range, late, 'month').ledger
      expect(ledger.some(([from, to]) => from <= dayStart + 3_600_000 && to >= dayStart + 7_200_000)).toBe(true)
      expect(await loadPlanFacts(client, range, key)).toBe(late)

      await runRollup(client, cards, 0)
      const settled = await loadPlanFacts(client, range, key)
      expect(settled.dirtySlices.size).toBe(0)
      expect(planUsage(range, settled, 'month').ledger).toEqual([])
    } finally {
      reads.mockRestore()
    }
  })

  it('are not kept when read while a write is under way', async () => {
    let finish!: () => void
    const writing = writeAround(client, 'nhi_inventory', () => new Promise<void>((resolve) => (finish = resolve)))
    const reads = vi.spyOn(client, 'query')
    try {
      const during = { from: range.from, to: new Date(dayStart + 60_000) }
      await loadPlanFacts(client, during, key)
      await loadPlanFacts(client, during, key)
      expect(reads).toHaveBeenCalledTimes(2)
      finish()
      await writing
      await loadPlanFacts(client, during, key)
      await loadPlanFacts(client, during, key)
      expect(reads).toHaveBeenCalledTimes(3)
    } finally {
      finish()
      reads.mockRestore()
    }
  })
})
