import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IDENTITY_DEFAULTS } from '../policy/index.js'
import { freshStorage } from '../test-support/storage.js'
import { placeholderRule, runTraceResolution } from './job.js'

// A file of its own (and so a storage of its own): a million decided events
// are no backdrop for the other tests of the job.
const rule = placeholderRule({ placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids], uuid_agent_ids_are_placeholders: true })
let client: ClickHouseClient

beforeAll(async () => {
  client = await freshStorage()
}, 60_000)
afterAll(async () => {
  await client.close()
})

describe('a hostile trace', () => {
  it('decides a trace of 1,000,000 spans in bounded pages: the spans it reads resolve, the rest are counted as trace_too_large', async () => {
    const traceId = 'f'.repeat(32)
    // One agent span and 999,999 tool calls under it, inserted by ClickHouse itself.
    await client.command({
      query: `
        INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
          ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage)
        SELECT toDateTime64('2026-11-12 10:00:00', 9, 'UTC') + toIntervalMicrosecond(number), {trace:String},
          leftPad(lower(hex(number + 1)), 16, '0'), if(number = 0, '', leftPad('1', 16, '0')), '',
          if(number = 0, 'invoke_agent huge', 'execute_tool t'), 'Internal', 'huge-agents', map('service.name', 'huge-agents'), 'test', '',
          if(number = 0, map('gen_ai.agent.name', 'huge'), map('gen_ai.operation.name', 'execute_tool', 'gen_ai.tool.name', 't')),
          1000, 'Unset', ''
        FROM numbers(1000000)`,
      query_params: { trace: traceId },
      clickhouse_settings: { wait_end_of_query: 1 },
    })
    const run = await runTraceResolution(client, rule, { waitSeconds: 0 })
    // Pages of about 20,000 events; each reads at most 100,001 of the trace's spans.
    expect(run.spansRead).toBeLessThanOrEqual(Math.ceil(999_999 / 20_000) * 100_001)
    const result = await client.query({
      query: `SELECT identity_source, count() AS n FROM nhi_activity FINAL WHERE trace_id = {t:String} GROUP BY identity_source ORDER BY identity_source`,
      query_params: { t: traceId },
      format: 'JSONEachRow',
    })
    const counts = Object.fromEntries((await result.json<{ identity_source: string; n: string }>()).map((r) => [r.identity_source, Number(r.n)]))
    expect(counts['ancestor:span:gen_ai.agent.name']! + counts['unresolved:trace_too_large']!).toBe(999_999)
    expect(counts['ancestor:span:gen_ai.agent.name']).toBeGreaterThan(0)
    expect(counts['unresolved:trace_too_large']).toBeGreaterThan(0)
    // The next run reads again what arrived within the grace period, here all of it, and decides nothing twice.
    const again = await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect(again.resolved + again.unresolved + again.sameToolCall + again.waiting).toBe(0)
  }, 240_000)
})
