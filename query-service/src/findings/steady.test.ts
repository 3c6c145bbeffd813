import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { findingsApp, SENSITIVE_POLICY, use } from '../test-support/findings.js'

// The thresholds of the injected-case tests: sensitive enough that the
// population below would trip them if its normal noise looked anomalous.
const POLICY = SENSITIVE_POLICY
const RANGE = 'from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z'
const IDENTITIES = 400
const DAYS = 42
const SLOTS_PER_DAY = 32

let client: ClickHouseClient
let api: ReturnType<typeof findingsApp>

/**
 * 400 declared identities, 42 days (from 20 September) of steady use: each
 * identity keeps a quarter to all of 32 slots a day (by identity), one slot
 * in ten dropped at random, a random time within each 45-minute slot; ten
 * activities (four tools, an API route, a workflow, a token exchange) in a
 * cycle that repeats every 40 slots; 2 % of spans failed; one secret
 * rotation a day; ten services; five business units; half of the
 * identities with declared approved_activities that cover what they do.
 */
async function loadPopulation(): Promise<void> {
  await client.command({
    query: `
      INSERT INTO nhi_inventory (id, type, owner, business_unit, tier, approved_activities, updated_at)
      SELECT concat('steady-', leftPad(toString(number), 3, '0')), 'service_account', concat('team-', toString(number % 7)),
        concat('bu-', toString(number % 5)), 'standard',
        if(number % 2 = 0, ['api_call', 'tool_invocation:tool-*', 'workflow_execution:nightly', 'token_exchange', 'secret_rotation'], []),
        toDateTime64('2026-09-01 00:00:00', 3)
      FROM numbers(${IDENTITIES})`,
  })
  const columns = `Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage`
  const row = (time: string, activity: string, name: string, status: string) => `
      ${time} AS Timestamp,
      lower(hex(cityHash64(n, 'trace', kind))) || lower(hex(cityHash64(n, 'trace2', kind))) AS TraceId,
      lower(hex(cityHash64(n, 'span', kind))) AS SpanId,
      '' AS ParentSpanId, '' AS TraceState, 'op' AS SpanName, 'Internal' AS SpanKind,
      concat('svc-', toString(identity % 10)) AS ServiceName,
      map('service.name', concat('svc-', toString(identity % 10)), 'nhi.owner', concat('team-', toString(identity % 7))) AS ResourceAttributes,
      'steady' AS ScopeName, '' AS ScopeVersion,
      map('nhi.id', id, 'nhi.type', 'service_account', 'nhi.business_unit', concat('bu-', toString(identity % 5)),
          'nhi.credential.id', concat('fp-', id), 'nhi.activity.type', ${activity}, 'nhi.activity.name', ${name}) AS SpanAttributes,
      1000 AS Duration, ${status} AS StatusCode, '' AS StatusMessage`
  await client.command({
    query: `
      INSERT INTO otel_traces (${columns})
      SELECT ${row(
        `toDateTime64('2026-09-20 00:00:00', 9) + toIntervalMillisecond(slot * 2700000 + cityHash64(n, 1) % 2700000)`,
        `['tool_invocation', 'tool_invocation', 'tool_invocation', 'tool_invocation', 'api_call', 'api_call', 'api_call', 'workflow_execution', 'token_exchange', 'tool_invocation'][pick + 1]`,
        `multiIf(pick < 4, concat('tool-', toString(pick)), pick < 7, 'GET /items', pick = 7, 'nightly', pick = 8, 'oauth', 'tool-0')`,
        `if(cityHash64(n, 2) % 50 = 0, 'Error', 'Unset')`,
      )}
      FROM (
        SELECT number AS n, 'use' AS kind, number % ${IDENTITIES} AS identity, intDiv(number, ${IDENTITIES}) AS slot,
          intDiv(slot, 4) % 10 AS pick, concat('steady-', leftPad(toString(identity), 3, '0')) AS id
        FROM numbers(${IDENTITIES * DAYS * SLOTS_PER_DAY})
      )
      WHERE slot % 4 = 0 OR (slot % 4 <= identity % 4 AND cityHash64(n, 3) % 10 != 0)`,
  })
  await client.command({
    query: `
      INSERT INTO otel_traces (${columns})
      SELECT ${row(`toDateTime64('2026-09-20 00:00:00', 9) + toIntervalMillisecond(day * 86400000 + cityHash64(n, 4) % 3600000)`, `'secret_rotation'`, `'rotate'`, `'Unset'`)}
      FROM (
        SELECT number AS n, 'rotation' AS kind, number % ${IDENTITIES} AS identity, intDiv(number, ${IDENTITIES}) AS day,
          concat('steady-', leftPad(toString(identity), 3, '0')) AS id
        FROM numbers(${IDENTITIES * DAYS})
      )`,
  })
}

beforeAll(async () => {
  client = await freshStorage()
  api = findingsApp(client, () => POLICY)
  await loadPopulation()
})

afterAll(async () => {
  await client?.close()
})

describe('a population with steady normal activity', () => {
  it('is several hundred identities with a month of activity and daily noise', async () => {
    const result = await client.query({
      query: `SELECT uniqExact(nhi_id) AS identities, count() AS events, min(c) AS quietest_day, max(c) AS busiest_day FROM (
        SELECT nhi_id, toDate(event_time) AS day, count() AS c FROM nhi_activity FINAL WHERE event_time >= '2026-10-01' GROUP BY nhi_id, day)`,
      format: 'JSONEachRow',
    })
    const [stats] = await result.json<{ identities: string; quietest_day: string; busiest_day: string }>()
    expect(Number(stats?.identities)).toBe(IDENTITIES)
    expect(Number(stats?.quietest_day)).toBeLessThan(12)
    expect(Number(stats?.busiest_day)).toBeGreaterThan(30)
  })

  it('yields no findings at all: no burst, growth, drift, dormancy or anything else', async () => {
    expect(await api.findings(RANGE)).toEqual([])
  })

  it('still yields the findings injected into it, so the silence above is not a blind detector', async () => {
    await insertSpans(client, [
      ...Array.from({ length: 40 }, (_, i) => use('steady-007', `2026-10-20T10:${String(i).padStart(2, '0')}:00Z`, { type: 'api_call', name: 'GET /items', credential: 'fp-steady-007', service: 'svc-7', bu: 'bu-2', owner: '' })),
      use('steady-008', '2026-10-21T10:00:00Z', { type: 'workflow_execution', name: 'purge-all', credential: 'fp-steady-008', service: 'svc-8', bu: 'bu-3' }),
    ])
    expect((await api.findings(RANGE)).map((f) => `${f.kind} ${f.nhi_id}`)).toEqual(['privilege_drift steady-008', 'burst steady-007'])
  })
})
