import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.js'
import { validatePolicy } from '../policy/index.js'
import { testKeys } from '../test-support/keys.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { hashContent } from './statement-hash.js'

let client: ClickHouseClient
let app: ReturnType<typeof createApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'reader', scopes: ['billing:read'] },
  { name: 'finance', scopes: ['billing:read'], business_units: ['finance'] },
])
const POLICY = validatePolicy({
  rate_cards: [{ version: '2026', effective_from: '2026-01-01T00:00:00Z', currency: 'EUR', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.25' }] }],
}).policy

const tool = (id: string, start: string) => spanRow({ start, attributes: { 'nhi.id': id, 'nhi.business_unit': 'finance', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 't' } })

function call(method: 'GET' | 'POST', path: string, keyName = 'admin', body?: unknown): Promise<Response> {
  return Promise.resolve(
    app.request(path, {
      method,
      headers: { Authorization: `Bearer ${key(keyName)}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    }),
  )
}

interface StatementBody {
  period: string
  lines: Array<Record<string, unknown>>
  total: { quantity: number; amount: string }
  adjustments: Array<Record<string, unknown>>
  adjustments_total: { quantity: number; amount: string }
  previous: { period: string; content_hash: string } | null
  content_hash: string
}

beforeAll(async () => {
  client = await freshStorage()
  app = createApp({ client, keys: () => store, policy: () => POLICY })
  await insertSpans(client, [tool('agent-a', '2026-09-10T10:00:00Z'), tool('agent-a', '2026-09-11T10:00:00Z'), tool('agent-b', '2026-09-12T10:00:00Z'), tool('agent-a', '2026-10-02T10:00:00Z')])
})

afterAll(async () => {
  await client?.close()
})

describe('period statements', () => {
  it('close a month into an immutable statement with a verifiable content hash', async () => {
    const response = await call('POST', '/v1/statements', 'admin', { period: '2026-09' })
    expect(response.status).toBe(201)
    const september = (await response.json()) as StatementBody
    expect(september.lines).toEqual([
      { 'nhi.id': 'agent-a', meter: 'tool_calls', quantity: 2, amount: '0.50' },
      { 'nhi.id': 'agent-b', meter: 'tool_calls', quantity: 1, amount: '0.25' },
    ])
    expect(september.total).toEqual({ quantity: 3, amount: '0.75' })
    expect(september.previous).toBeNull()
    const { content_hash, ...content } = september
    expect(hashContent(JSON.stringify(content))).toBe(content_hash)
    expect(await (await call('GET', '/v1/statements/2026-09', 'reader')).json()).toEqual(september)
    expect((await call('POST', '/v1/statements', 'admin', { period: '2026-09' })).status).toBe(409)
  })

  it('report spans that arrive after the close as adjustments in the next statement, never as rewrites', async () => {
    const before = (await (await call('GET', '/v1/statements/2026-09')).json()) as StatementBody
    const duplicate = tool('agent-b', '2026-09-12T10:00:00Z')
    await insertSpans(client, [tool('agent-a', '2026-09-30T23:59:59Z'), duplicate, duplicate])
    expect(await (await call('GET', '/v1/statements/2026-09')).json()).toEqual(before)

    const october = (await (await call('POST', '/v1/statements', 'admin', { period: '2026-10' })).json()) as StatementBody
    expect(october.lines).toEqual([{ 'nhi.id': 'agent-a', meter: 'tool_calls', quantity: 1, amount: '0.25' }])
    // The duplicate's first copy is one new span for agent-b; its second copy counts nothing.
    expect(october.adjustments).toEqual([
      { period: '2026-09', 'nhi.id': 'agent-a', meter: 'tool_calls', quantity: 1, amount: '0.25' },
      { period: '2026-09', 'nhi.id': 'agent-b', meter: 'tool_calls', quantity: 1, amount: '0.25' },
    ])
    expect(october.adjustments_total).toEqual({ quantity: 2, amount: '0.50' })
    expect(october.previous).toEqual({ period: '2026-09', content_hash: before.content_hash })
  })

  it('refuse months that are not over, out of order, malformed, or asked for by a business-unit key', async () => {
    expect((await call('POST', '/v1/statements', 'admin', { period: '2099-01' })).status).toBe(400)
    expect((await call('POST', '/v1/statements', 'admin', { period: '2026-08' })).status).toBe(409)
    expect((await call('POST', '/v1/statements', 'admin', { period: '2026-13' })).status).toBe(400)
    expect((await call('POST', '/v1/statements', 'admin', 'not json')).status).toBe(400)
    expect((await call('POST', '/v1/statements', 'admin', { period: '2026-11', extra: 1 })).status).toBe(400)
    // The body is read with a cap, as on every route: a huge one is refused before it is buffered.
    const huge = await call('POST', '/v1/statements', 'admin', { period: '2026-11', padding: 'x'.repeat(2 * 1024 * 1024) })
    expect(huge.status).toBe(413)
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe('payload_too_large')
    expect((await call('POST', '/v1/statements', 'reader', { period: '2026-11' })).status).toBe(403)
    expect((await call('GET', '/v1/statements', 'finance')).status).toBe(403)
    expect((await call('GET', '/v1/statements/2026-07')).status).toBe(404)
    const list = (await (await call('GET', '/v1/statements', 'reader')).json()) as { statements: Array<{ period: string }> }
    expect(list.statements.map((s) => s.period)).toEqual(['2026-09', '2026-10'])
  })

  it('are closed once, and the chain never forks, when several requests close at the same moment', async () => {
    // Same month twice, and the next month, all at once: one statement follows 2026-10; the others are refused.
    const answers = await Promise.all([
      call('POST', '/v1/statements', 'admin', { period: '2026-11' }),
      call('POST', '/v1/statements', 'admin', { period: '2026-11' }),
      call('POST', '/v1/statements', 'admin', { period: '2026-11' }),
    ])
    // A request that computed a byte-identical statement (same millisecond) is told 201 with the one stored; any other is refused.
    const bodies = await Promise.all(answers.map(async (a) => ({ status: a.status, body: (await a.json()) as StatementBody & { error?: { code: string } } })))
    expect(bodies.every((b) => b.status === 201 || (b.status === 409 && b.body.error?.code === 'already_closed'))).toBe(true)
    const created = bodies.filter((b) => b.status === 201)
    expect(created.length).toBeGreaterThanOrEqual(1)
    expect(new Set(created.map((b) => b.body.content_hash)).size).toBe(1)
    const list = (await (await call('GET', '/v1/statements', 'reader')).json()) as { statements: StatementBody[] }
    expect(list.statements.map((s) => s.period)).toEqual(['2026-09', '2026-10', '2026-11'])
    const [october, november] = await Promise.all(['2026-10', '2026-11'].map(async (p) => (await (await call('GET', `/v1/statements/${p}`)).json()) as StatementBody))
    expect(november!.previous).toEqual({ period: '2026-10', content_hash: october!.content_hash })
    expect(november!.content_hash).toBe(created[0]!.body.content_hash)
  })

  it('refuse to serve a statement whose stored content was changed', async () => {
    await client.command({ query: "ALTER TABLE nhi_statements UPDATE content = replaceOne(content, '0.75', '7.50') WHERE period = '2026-09' SETTINGS mutations_sync = 1" })
    const response = await call('GET', '/v1/statements/2026-09')
    expect(response.status).toBe(500)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('statement_tampered')
  })
})
