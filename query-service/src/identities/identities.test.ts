import type { ClickHouseClient } from '@clickhouse/client'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testKeys } from '../test-support/keys.js'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage, testTempDir } from '../test-support/storage.js'
import { backfillIdentityActivity } from './backfill.js'
import { importInventoryFile } from './inventory-file.js'
import { declaration, identitiesApp, useEvent } from '../test-support/identities.js'

let client: ClickHouseClient
let app: ReturnType<typeof identitiesApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read', 'inventory:write'], business_units: ['finance'] },
  { name: 'security', scopes: ['findings:read'] },
  { name: 'reader', scopes: ['billing:read'] },
])

interface Identity {
  id: string
  type: string
  owner: string
  business_unit: string
  declared: boolean
  tier: string | null
  first_seen: string | null
  last_seen: string | null
  activity_count: number
  status: string
}

async function request(path: string, keyName = 'admin', init: RequestInit = {}): Promise<Response> {
  return app.request(path, { ...init, headers: { Authorization: `Bearer ${key(keyName)}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) } })
}

async function post(items: unknown, keyName = 'admin', contentType = 'application/json'): Promise<Response> {
  return request('/v1/inventory', keyName, { method: 'POST', body: typeof items === 'string' ? items : JSON.stringify(items), headers: { 'Content-Type': contentType } })
}

async function identities(query = '', keyName = 'admin'): Promise<Identity[]> {
  const response = await request(`/v1/identities${query}`, keyName)
  expect(response.status).toBe(200)
  return ((await response.json()) as { identities: Identity[] }).identities
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error
}

const AT = '2026-11-30T00:00:00Z'

beforeAll(async () => {
  client = await freshStorage()
  app = identitiesApp(client, store)
})

afterAll(async () => {
  await client?.close()
})

describe('POST /v1/inventory', () => {
  it('creates, then leaves identical declarations alone, then updates changed ones', async () => {
    const batch = [declaration('inv-a', 'finance'), declaration('inv-b', 'finance', { tier: 'gold' })]
    expect(await (await post(batch)).json()).toEqual({ received: 2, created: 2, updated: 0, unchanged: 0 })
    expect(await (await post(batch)).json()).toEqual({ received: 2, created: 0, updated: 0, unchanged: 2 })
    const changed = [declaration('inv-a', 'finance'), declaration('inv-b', 'finance', { tier: 'silver' })]
    expect(await (await post(changed)).json()).toEqual({ received: 2, created: 0, updated: 1, unchanged: 1 })
    const listed = await identities(`?at=${AT}`)
    expect(listed.find((i) => i.id === 'inv-b')).toMatchObject({ tier: 'silver', declared: true, status: 'never_seen' })
  })

  it('takes the same list as YAML or as CSV', async () => {
    const yaml = '- id: inv-yaml\n  type: bot\n  business_unit: finance\n  approved_activities: [api_call]\n'
    expect((await post(yaml, 'admin', 'application/yaml')).status).toBe(200)
    const csv = 'id,type,business_unit,approved_activities\ninv-csv,ai_agent,finance,tool_invocation:search_*;api_call\n'
    expect((await post(csv, 'admin', 'text/csv')).status).toBe(200)
    const listed = await identities(`?at=${AT}`)
    expect(listed.filter((i) => i.id === 'inv-yaml' || i.id === 'inv-csv').map((i) => [i.id, i.type])).toEqual([
      ['inv-csv', 'ai_agent'],
      ['inv-yaml', 'bot'],
    ])
  })

  it('refuses a batch with one bad item with 400 naming the field, and stores none of it', async () => {
    const response = await post([declaration('inv-good', 'finance'), declaration('inv-bad', 'finance', { approved_activities: ['tool invocation'] })])
    expect(response.status).toBe(400)
    const error = await errorOf(response)
    expect(error.code).toBe('invalid_body')
    expect(error.message).toMatch(/^\[1\]\.approved_activities\[0\]: must be an activity type/)
    expect((await identities(`?at=${AT}`)).map((i) => i.id)).not.toContain('inv-good')
  })

  it.each([
    ['not JSON', '[{"id": "x",', 'application/json', 400, /^body: not valid JSON/],
    ['an empty body', '', 'application/json', 400, /^body: empty/],
    ['a mapping instead of a list', '{"id":"x","type":"bot"}', 'application/json', 400, /^\(top level\): must be a list/],
    ['too many identities', JSON.stringify(Array.from({ length: 10_001 }, (_, i) => ({ id: `x${i}`, type: 'bot' }))), 'application/json', 400, /at most 10000 identities/],
    ['an unknown media type', '<xml/>', 'application/xml', 415, /Content-Type must be one of/],
  ])('refuses %s', async (_name, body, contentType, status, message) => {
    const response = await post(body, 'admin', contentType)
    expect(response.status).toBe(status)
    expect((await errorOf(response)).message).toMatch(message)
  })

  it('refuses a body over 10 MiB with 413, even streamed without Content-Length', async () => {
    const chunk = new TextEncoder().encode(`${' '.repeat(1024 * 1024)}`)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 12) controller.enqueue(chunk)
        else controller.close()
      },
    })
    const response = await app.request('/v1/inventory', { method: 'POST', body, headers: { Authorization: `Bearer ${key('admin')}`, 'Content-Type': 'application/json' }, duplex: 'half' } as RequestInit)
    expect(response.status).toBe(413)
    expect(sent).toBeLessThan(13)
  })

  it('needs inventory:write', async () => {
    expect((await post([declaration('x', 'finance')], 'reader')).status).toBe(403)
  })
})

describe('business-unit keys writing the inventory', () => {
  beforeAll(async () => {
    await post([declaration('sales-declared', 'sales')])
    await insertSpans(client, [useEvent('sales-undeclared', '2026-11-20T00:00:00Z', { type: 'api_call', businessUnit: 'sales' })])
  })

  it('may declare identities in their own units', async () => {
    expect((await post([declaration('fin-new', 'finance')], 'finance')).status).toBe(200)
  })

  it.each([
    ['into another unit', [declaration('fin-x', 'finance'), declaration('fin-y', 'sales')], /^\[1\]\.business_unit: this key may declare identities only in "finance"/],
    ['without a unit', [{ id: 'fin-z', type: 'bot' }], /^\[0\]\.business_unit: this key may declare identities only in "finance", got an empty string/],
    ['taking over an identity another unit declared', [declaration('sales-declared', 'finance')], /^\[0\]\.id: "sales-declared" is managed by a business unit this key cannot write to/],
    ['claiming an undeclared identity whose spans belong to another unit', [declaration('sales-undeclared', 'finance')], /^\[0\]\.id: "sales-undeclared" is managed/],
  ])('are refused (403) declaring %s, and nothing is stored', async (_name, batch, message) => {
    const response = await post(batch, 'finance')
    expect(response.status).toBe(403)
    expect((await errorOf(response)).message).toMatch(message)
    const all = await identities(`?at=${AT}`)
    expect(all.find((i) => i.id === 'fin-x')).toBeUndefined()
    expect(all.find((i) => i.id === 'sales-declared')?.business_unit).toBe('sales')
    expect(all.find((i) => i.id === 'sales-undeclared')).toMatchObject({ declared: false, business_unit: 'sales' })
  })
})

describe('GET /v1/identities', () => {
  beforeAll(async () => {
    await post([
      declaration('st-active', 'ops', { owner: 'platform', type: 'workload' }),
      declaration('st-edge', 'ops'),
      declaration('st-dormant', 'ops'),
      declaration('st-never', 'ops', { tier: 'gold' }),
    ])
    const dup = useEvent('st-active', '2026-11-25T00:00:00Z', { type: 'api_call', businessUnit: 'spans-say-this', owner: 'spans-owner', nhiType: 'bot' })
    await insertSpans(client, [
      useEvent('st-active', '2026-11-01T00:00:00Z', { type: 'api_call' }),
      dup,
      dup,
      // dormant_after is 10d: last seen exactly 10 days before `at` is still active, a millisecond more is dormant.
      useEvent('st-edge', '2026-11-20T00:00:00Z', { type: 'api_call' }),
      useEvent('st-dormant', '2026-11-19T23:59:59.999Z', { type: 'api_call' }),
      useEvent('st-rogue', '2026-11-28T00:00:00Z', { type: 'tool_invocation', businessUnit: 'ops', owner: 'nobody', nhiType: 'ai_agent' }),
      // After `at`: ignored when asking at `at`.
      useEvent('st-never', '2026-12-01T00:00:00Z', { type: 'api_call' }),
    ])
  })

  it('lists declared and observed identities with status, first and last seen, and the inventory’s owner, unit and type', async () => {
    const ops = await identities(`?at=${AT}&business_unit=ops`)
    expect(ops.map((i) => [i.id, i.status, i.declared, i.activity_count])).toEqual([
      ['st-active', 'active', true, 2],
      ['st-dormant', 'dormant', true, 1],
      ['st-edge', 'active', true, 1],
      ['st-never', 'never_seen', true, 0],
      ['st-rogue', 'unregistered', false, 1],
    ])
    expect(ops[0]).toMatchObject({
      type: 'workload',
      owner: 'platform',
      business_unit: 'ops',
      tier: '',
      first_seen: '2026-11-01T00:00:00.000Z',
      last_seen: '2026-11-25T00:00:00.000Z',
    })
    expect(ops[3]).toMatchObject({ first_seen: null, last_seen: null, tier: 'gold' })
    expect(ops[4]).toMatchObject({ type: 'ai_agent', owner: 'nobody', tier: null })
  })

  it('filters by status, and answers as of another time', async () => {
    expect((await identities(`?at=${AT}&business_unit=ops&status=dormant,never_seen`)).map((i) => i.id)).toEqual(['st-dormant', 'st-never'])
    expect((await identities(`?at=2026-12-02T00:00:00Z&business_unit=ops&status=active`)).map((i) => i.id)).toEqual(['st-active', 'st-never'])
  })

  it('pages by id', async () => {
    const first = (await (await request(`/v1/identities?at=${AT}&business_unit=ops&limit=2`)).json()) as { identities: Identity[]; next_after: string | null }
    expect(first.identities.map((i) => i.id)).toEqual(['st-active', 'st-dormant'])
    expect(first.next_after).toBe('st-dormant')
    const rest = (await (await request(`/v1/identities?at=${AT}&business_unit=ops&after=st-dormant`)).json()) as { identities: Identity[]; next_after: string | null }
    expect(rest.identities.map((i) => i.id)).toEqual(['st-edge', 'st-never', 'st-rogue'])
    expect(rest.next_after).toBeNull()
  })

  it('shows a business-unit key only its units, and nothing for another unit asked by name', async () => {
    const seen = await identities(`?at=${AT}`, 'finance')
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.every((i) => i.business_unit === 'finance')).toBe(true)
    expect(await identities(`?at=${AT}&business_unit=ops`, 'finance')).toEqual([])
  })

  it('is open to billing and to security readers', async () => {
    expect((await request('/v1/identities', 'security')).status).toBe(200)
    expect((await request('/v1/identities', 'reader')).status).toBe(200)
  })

  it.each([
    ['status=sleeping', 'status'],
    ['at=now', 'at'],
    ['limit=0', 'limit'],
    ['business_unit=', 'business_unit'],
    ['colour=red', 'colour'],
  ])('answers 400 naming the parameter for %s', async (query, parameter) => {
    const response = await request(`/v1/identities?${query}`)
    expect(response.status).toBe(400)
    expect((await errorOf(response)).message.startsWith(`${parameter}:`)).toBe(true)
  })
})

describe('GET /v1/identities/{id}/activity', () => {
  beforeAll(async () => {
    await post([declaration('series', 'finance')])
    const dup = useEvent('series', '2026-11-02T10:00:00Z', { type: 'tool_invocation' })
    await insertSpans(client, [
      dup,
      dup,
      useEvent('series', '2026-11-02T11:00:00Z', { type: 'tool_invocation', status: 'Error' }),
      useEvent('series', '2026-11-03T11:00:00Z', { type: 'tool_invocation' }),
      useEvent('series', '2026-11-03T12:00:00Z', { type: 'api_call' }),
      useEvent('series', '2026-10-31T23:59:59.999Z', { type: 'api_call' }),
    ])
  })

  it('returns events and errors per activity type and period, each span once', async () => {
    const response = await request('/v1/identities/series/activity?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&granularity=day')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      nhi_id: 'series',
      from: '2026-11-01T00:00:00.000Z',
      to: '2026-12-01T00:00:00.000Z',
      granularity: 'day',
      series: [
        { activity_type: 'api_call', events: 1, points: [{ period: '2026-11-03T00:00:00.000Z', events: 1, errors: 0 }] },
        {
          activity_type: 'tool_invocation',
          events: 3,
          points: [
            { period: '2026-11-02T00:00:00.000Z', events: 2, errors: 1 },
            { period: '2026-11-03T00:00:00.000Z', events: 1, errors: 0 },
          ],
        },
      ],
    })
  })

  it('groups by month', async () => {
    const body = (await (await request('/v1/identities/series/activity?from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z&granularity=month')).json()) as {
      series: Array<{ activity_type: string; points: Array<{ period: string; events: number }> }>
    }
    expect(body.series[0]).toEqual({ activity_type: 'api_call', events: 2, points: [{ period: '2026-10-01T00:00:00.000Z', events: 1, errors: 0 }, { period: '2026-11-01T00:00:00.000Z', events: 1, errors: 0 }] })
  })

  it('answers 404 for an unknown identity and for another unit’s, alike', async () => {
    const range = 'from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z'
    expect((await request(`/v1/identities/series/activity?${range}`, 'finance')).status).toBe(200)
    const other = await request(`/v1/identities/st-active/activity?${range}`, 'finance')
    const missing = await request(`/v1/identities/nothing-here/activity?${range}`, 'finance')
    expect([other.status, missing.status]).toEqual([404, 404])
    expect((await errorOf(other)).message).toBe((await errorOf(missing)).message)
  })

  it('finds identities whose id has slashes and spaces when encoded', async () => {
    const id = 'spiffe://prod/ns/billing sa'
    await post([declaration(id, 'finance')])
    expect((await request(`/v1/identities/${encodeURIComponent(id)}/activity`)).status).toBe(200)
  })

  it('refuses an hourly series over more than 31 days', async () => {
    const response = await request('/v1/identities/series/activity?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z&granularity=hour')
    expect(response.status).toBe(400)
    expect((await errorOf(response)).message).toMatch(/^granularity:/)
  })
})

describe('DELETE /v1/inventory/{id}', () => {
  it('retires a declaration; an identity that keeps acting becomes unregistered', async () => {
    await post([declaration('retiree', 'finance')])
    await insertSpans(client, [useEvent('retiree', '2026-11-25T00:00:00Z', { type: 'api_call', businessUnit: 'finance' })])
    expect((await request('/v1/inventory/retiree', 'finance', { method: 'DELETE' })).status).toBe(200)
    expect((await identities(`?at=${AT}`)).find((i) => i.id === 'retiree')).toMatchObject({ declared: false, status: 'unregistered' })
    expect((await request('/v1/inventory/retiree', 'admin', { method: 'DELETE' })).status).toBe(404)
  })

  it('answers 404 to a business-unit key for another unit’s declaration, and leaves it', async () => {
    expect((await request('/v1/inventory/sales-declared', 'finance', { method: 'DELETE' })).status).toBe(404)
    expect((await identities(`?at=${AT}`)).find((i) => i.id === 'sales-declared')?.declared).toBe(true)
  })
})

describe('the inventory file', () => {
  const dir = testTempDir('nhi-meter-inventory-')

  it('is imported from YAML or CSV, and importing it again changes nothing', async () => {
    const yaml = join(dir, 'inventory.yaml')
    writeFileSync(yaml, '- id: file-a\n  type: integration\n  owner: crm-team\n  business_unit: sales\n  tier: gold\n')
    expect(await importInventoryFile(client, yaml)).toEqual({ received: 1, created: 1, updated: 0, unchanged: 0 })
    expect(await importInventoryFile(client, yaml)).toEqual({ received: 1, created: 0, updated: 0, unchanged: 1 })
    const csv = join(dir, 'inventory.csv')
    writeFileSync(csv, 'id,type,business_unit,approved_activities\nfile-b,workload,sales,api_call;token_exchange\n')
    expect(await importInventoryFile(client, csv)).toMatchObject({ created: 1 })
    const sales = await identities(`?at=${AT}&business_unit=sales`)
    expect(sales.filter((i) => i.id.startsWith('file-')).map((i) => [i.id, i.type, i.owner, i.tier])).toEqual([
      ['file-a', 'integration', 'crm-team', 'gold'],
      ['file-b', 'workload', '', ''],
    ])
  })

  it('stops with a message naming the variable, the file and the field when invalid, and stores nothing', async () => {
    const bad = join(dir, 'bad.yaml')
    writeFileSync(bad, '- id: file-c\n  type: service_account\n- id: file-d\n  type: robot\n')
    await expect(importInventoryFile(client, bad)).rejects.toThrow(`NHI_METER_INVENTORY_FILE: ${bad}: [1].type: must be one of`)
    expect((await identities(`?at=${AT}`)).map((i) => i.id)).not.toContain('file-c')
    await expect(importInventoryFile(client, join(dir, 'missing.yaml'))).rejects.toThrow(/NHI_METER_INVENTORY_FILE: .*missing\.yaml: cannot read/)
  })
})

describe('the identity-ordered copy of the ledger', () => {
  it('is backfilled once with the ledger rows written before it existed, and only those', async () => {
    // A ledger row ingested before migration 0010, which the view never saw.
    await client.insert({
      table: 'nhi_activity',
      values: [
        {
          trace_id: 'old-trace', span_id: 'old-span', event_time: '2026-11-05 00:00:00', service: 'legacy', span_name: 'op', span_kind: 'Server',
          nhi_id: 'old-timer', nhi_type: 'other', identity_source: 'span:nhi.id', owner: '', business_unit: 'finance', credential_id: '', on_behalf_of: '',
          activity_type: 'api_call', activity_name: 'op', status: 'ok', duration_ns: 1, ingested_at: '2020-01-01 00:00:00.000',
        },
      ],
      format: 'JSONEachRow',
    })
    await client.command({ query: "ALTER TABLE nhi_identity_activity DELETE WHERE nhi_id = 'old-timer' SETTINGS mutations_sync = 1" })
    const stored = async () => Number((await (await client.query({ query: 'SELECT count() AS n FROM nhi_identity_activity', format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n)
    const before = await stored()
    expect((await identities(`?at=${AT}`)).map((i) => i.id)).not.toContain('old-timer')
    expect(await backfillIdentityActivity(client)).toBe(1)
    expect(await stored()).toBe(before + 1)
    expect((await identities(`?at=${AT}`)).find((i) => i.id === 'old-timer')).toMatchObject({ activity_count: 1, status: 'unregistered' })
    expect(await backfillIdentityActivity(client)).toBeNull()
  })
})
