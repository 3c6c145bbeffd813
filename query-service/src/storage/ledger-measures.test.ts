/**
 * The ledger keeps each use event's numeric span attributes (migration
 * 0028), so meters can sum model tokens, bytes or durations; both the
 * settled path and the trace-resolution path carry them.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IDENTITY_DEFAULTS } from '../policy/index.js'
import { placeholderRule, runTraceResolution } from '../traces/job.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'

let client: ClickHouseClient
beforeAll(async () => {
  client = await freshStorage()
}, 60_000)
afterAll(async () => {
  await client.close()
})

const at = '2026-11-10T10:00:00Z'

async function measuresOf(spanId: string): Promise<Record<string, string>> {
  const result = await client.query({
    query: 'SELECT measures FROM nhi_activity FINAL WHERE span_id = {s:String}',
    query_params: { s: spanId },
    format: 'JSONEachRow',
  })
  const rows = await result.json<{ measures: Record<string, string> }>()
  expect(rows).toHaveLength(1)
  return rows[0]!.measures
}

describe('meter values in the ledger', () => {
  it('keeps the token counts and other numeric attributes of a model call, and nothing that is not a quantity', async () => {
    await insertSpans(client, [
      spanRow({
        start: at,
        spanId: '0000000000000a01',
        attributes: {
          'nhi.id': 'agent-a',
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': 'gpt-4o',
          'gen_ai.usage.input_tokens': '120',
          'gen_ai.usage.output_tokens': '45',
          'gen_ai.request.temperature': '0.7',
          'server.port': '443',
          'http.response.status_code': '200',
          'x.api_key': '123456789',
          'vendor.token': '987654321',
          'weird.negative': '-3',
          'weird.exponent': '1e5',
          'weird.text': 'twelve',
          'user.id': '4711',
          'jsonrpc.request.id': '7',
        },
      }),
    ])
    expect(await measuresOf('0000000000000a01')).toEqual({
      'gen_ai.usage.input_tokens': '120',
      'gen_ai.usage.output_tokens': '45',
      'gen_ai.request.temperature': '0.7',
    })
  })

  it('reads the token counts of older and foreign conventions under the current names, the current name winning', async () => {
    await insertSpans(client, [
      spanRow({
        start: at,
        spanId: '0000000000000a02',
        attributes: { 'nhi.id': 'agent-a', 'gen_ai.operation.name': 'chat', 'gen_ai.usage.prompt_tokens': '7', 'gen_ai.usage.completion_tokens': '8' },
      }),
      spanRow({
        start: at,
        spanId: '0000000000000a03',
        attributes: { 'nhi.id': 'agent-a', 'gen_ai.operation.name': 'chat', 'llm.token_count.prompt': '9', 'ai.usage.outputTokens': '10' },
      }),
      spanRow({
        start: at,
        spanId: '0000000000000a04',
        attributes: { 'nhi.id': 'agent-a', 'gen_ai.operation.name': 'chat', 'gen_ai.usage.input_tokens': '11', 'gen_ai.usage.prompt_tokens': '99' },
      }),
    ])
    expect(await measuresOf('0000000000000a02')).toMatchObject({ 'gen_ai.usage.input_tokens': '7', 'gen_ai.usage.output_tokens': '8' })
    expect(await measuresOf('0000000000000a03')).toMatchObject({ 'gen_ai.usage.input_tokens': '9', 'gen_ai.usage.output_tokens': '10' })
    expect(await measuresOf('0000000000000a04')).toMatchObject({ 'gen_ai.usage.input_tokens': '11' })
  })

  it('carries the values of a model call whose agent is on an ancestor span through trace resolution', async () => {
    const traceId = 'dddddddddddddddddddddddddddd0001'
    await insertSpans(client, [
      spanRow({ start: at, traceId, spanId: '0000000000000b01', name: 'invoke_agent planner', attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner' } }),
      spanRow({
        start: at,
        traceId,
        spanId: '0000000000000b02',
        parentSpanId: '0000000000000b01',
        name: 'chat gpt-4o',
        attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': '300', 'gen_ai.usage.output_tokens': '20' },
      }),
    ])
    const rule = placeholderRule({ placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids], uuid_agent_ids_are_placeholders: true })
    await runTraceResolution(client, rule, { waitSeconds: 0 })
    expect(await measuresOf('0000000000000b02')).toEqual({ 'gen_ai.usage.input_tokens': '300', 'gen_ai.usage.output_tokens': '20' })
  })
})
