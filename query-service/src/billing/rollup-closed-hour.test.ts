import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TEST_POLICY } from '../test-support/policy.js'
import { freshStorage } from '../test-support/storage.js'
import { policyKey, runRollup } from './rollup.js'

const cards = TEST_POLICY.rate_cards
let own: ClickHouseClient

beforeAll(async () => {
  own = await freshStorage()
})

afterAll(async () => {
  await own.close()
})

describe('the summary of an hour that has closed', () => {
  it('summarises a closed hour whose rows all arrived while it was open, though nothing changed since', async () => {
    // A ledger row of the hour before, ingested while that hour was open, and a run five seconds before the hour
    // closed that saw it (as the job's last run before the close would have): nothing has changed since.
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000
    const text = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 23)
    await own.insert({
      table: 'nhi_activity',
      values: [{ trace_id: 'f'.repeat(32), span_id: 'f'.repeat(16), event_time: text(hour + 1_200_000), service: 'svc', nhi_id: 'agent-quiet', activity_type: 'tool_invocation', activity_name: 'search', status: 'ok', ingested_at: text(hour + 1_201_000) }],
      format: 'JSONEachRow',
    })
    const before = text(hour + 3_595_000)
    await own.insert({ table: 'nhi_usage_summary_runs', values: [{ run_at: before, policy_key: policyKey(cards), watermark: before, settled_before: before, periods_rebuilt: 0 }], format: 'JSONEachRow' })
    const run = await runRollup(own, cards)
    expect(run.hoursRecomputed).toBe(1)
    const marked = await (await own.query({ query: "SELECT toString(period) AS p FROM nhi_usage_summary_periods FINAL WHERE level = 'hour'", format: 'JSONEachRow' })).json<{ p: string }>()
    expect(marked).toEqual([{ p: text(hour).slice(0, 19) }])
  })
})
