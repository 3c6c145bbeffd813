import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testKeys } from '../test-support/keys.js'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { declaration, identitiesApp, useEvent, ENTITLEMENT_POLICY } from '../test-support/identities.js'
import { parseCsv } from '../http/csv.js'
import { tierFeatures } from './eligibility.js'

let client: ClickHouseClient
let app: ReturnType<typeof identitiesApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read'], business_units: ['finance'] },
  { name: 'security', scopes: ['findings:read'] },
])

interface Line {
  id: string
  business_unit: string
  tier: string
  status: string
  last_seen: string | null
  recent_activity: number
  recent_unapproved_activity: number
  features: Array<{ feature: string; granted: boolean; observed: number }>
  recommendation: string
  recommended_tier: string | null
  reason: string
}
interface Report {
  at: string
  business_unit: string | null
  dormant_after: string
  summary: Record<string, number>
  by_business_unit: Array<Record<string, string | number>>
  identities: Line[]
}

async function get(path: string, keyName = 'admin', headers: Record<string, string> = {}): Promise<Response> {
  return app.request(path, { headers: { Authorization: `Bearer ${key(keyName)}`, ...headers } })
}

const AT = '2026-11-30T00:00:00Z'
const flow = (id: string, day: number, name = 'etl') => useEvent(id, `2026-11-${String(day).padStart(2, '0')}T12:00:00Z`, { type: 'workflow_execution', name })

beforeAll(async () => {
  client = await freshStorage()
  app = identitiesApp(client, store)
  const response = await app.request('/v1/inventory', {
    method: 'POST',
    headers: { Authorization: `Bearer ${key('admin')}`, 'Content-Type': 'application/json' },
    body: JSON.stringify([
      declaration('keep-basic', 'finance', { tier: 'standard' }),
      declaration('keep-hc', 'finance', { tier: 'high_capacity_processing' }),
      declaration('down-hc', 'finance', { tier: 'gold+high_capacity_processing+premium_automation' }),
      declaration('revoke-dormant', 'finance', { tier: 'standard' }),
      declaration('revoke-never', 'finance', { tier: 'premium_automation' }),
      declaration('revoke-unapproved', 'finance', { tier: 'standard', approved_activities: ['api_call'] }),
      declaration('sales-hc', 'sales', { tier: 'high_capacity_processing' }),
    ]),
  })
  expect(response.status).toBe(200)
  await insertSpans(client, [
    useEvent('keep-basic', '2026-11-28T00:00:00Z', { type: 'api_call' }),
    flow('keep-hc', 25),
    flow('keep-hc', 26),
    flow('keep-hc', 27),
    flow('down-hc', 27),
    useEvent('down-hc', '2026-11-20T00:00:00Z', { type: 'secret_rotation' }),
    useEvent('revoke-dormant', '2026-11-15T00:00:00Z', { type: 'api_call' }),
    useEvent('revoke-unapproved', '2026-11-29T00:00:00Z', { type: 'tool_invocation' }),
    useEvent('revoke-unapproved', '2026-11-29T01:00:00Z', { type: 'tool_invocation' }),
    flow('sales-hc', 27),
    useEvent('undeclared', '2026-11-29T00:00:00Z', { type: 'api_call', businessUnit: 'finance' }),
  ])
})

afterAll(async () => {
  await client?.close()
})

describe('GET /v1/eligibility', () => {
  it('recommends keep, downgrade or revoke for every declared identity, with its reason', async () => {
    const response = await get(`/v1/eligibility?at=${AT}`)
    expect(response.status).toBe(200)
    const report = (await response.json()) as Report
    expect(report).toMatchObject({ at: '2026-11-30T00:00:00.000Z', business_unit: null, dormant_after: '10d', summary: { keep: 2, downgrade: 2, revoke: 3 } })
    const byId = Object.fromEntries(report.identities.map((l) => [l.id, l]))
    expect(Object.keys(byId).sort()).toEqual(['down-hc', 'keep-basic', 'keep-hc', 'revoke-dormant', 'revoke-never', 'revoke-unapproved', 'sales-hc'])
    expect(byId['keep-basic']).toMatchObject({ recommendation: 'keep', recommended_tier: 'standard', status: 'active', recent_activity: 1, features: [] })
    expect(byId['keep-basic']!.reason).toBe('active: 1 approved event in the last 10d; the tier has no usage-conditioned features')
    expect(byId['keep-hc']).toMatchObject({ recommendation: 'keep', features: [{ feature: 'high_capacity_processing', granted: true, observed: 3 }] })
    expect(byId['down-hc']).toMatchObject({
      recommendation: 'downgrade',
      recommended_tier: 'gold+premium_automation',
      reason: 'not earned: high_capacity_processing (1 of 3 approved events in 7d)',
    })
    expect(byId['sales-hc']).toMatchObject({ recommendation: 'downgrade', recommended_tier: '' })
    expect(byId['revoke-dormant']).toMatchObject({
      recommendation: 'revoke',
      recommended_tier: null,
      status: 'dormant',
      last_seen: '2026-11-15T00:00:00.000Z',
      reason: 'dormant: no activity since 2026-11-15T00:00:00.000Z (longer than dormant_after 10d)',
    })
    expect(byId['revoke-never']).toMatchObject({ recommendation: 'revoke', status: 'never_seen', reason: 'never seen: no activity recorded for this identity' })
    expect(byId['revoke-unapproved']).toMatchObject({
      recommendation: 'revoke',
      status: 'active',
      recent_activity: 0,
      recent_unapproved_activity: 2,
      reason: 'no approved activity in the last 10d; 2 events outside approved_activities',
    })
  })

  it('follows the decision time: earlier, the dormant identity was still eligible', async () => {
    const report = (await (await get('/v1/eligibility?at=2026-11-16T00:00:00Z&business_unit=finance')).json()) as Report
    expect(report.identities.find((l) => l.id === 'revoke-dormant')).toMatchObject({ recommendation: 'keep', status: 'active' })
  })

  it('reports per business unit, and shows a business-unit key only its own', async () => {
    const all = (await (await get(`/v1/eligibility?at=${AT}`)).json()) as Report
    expect(all.by_business_unit).toEqual([
      { business_unit: 'finance', keep: 2, downgrade: 1, revoke: 3 },
      { business_unit: 'sales', keep: 0, downgrade: 1, revoke: 0 },
    ])
    const sales = (await (await get(`/v1/eligibility?at=${AT}&business_unit=sales`)).json()) as Report
    expect(sales.identities.map((l) => l.id)).toEqual(['sales-hc'])
    const scoped = (await (await get(`/v1/eligibility?at=${AT}`, 'finance')).json()) as Report
    expect(scoped.identities.every((l) => l.business_unit === 'finance')).toBe(true)
    expect(scoped.summary).toEqual({ keep: 2, downgrade: 1, revoke: 3 })
    const asked = (await (await get(`/v1/eligibility?at=${AT}&business_unit=sales`, 'finance')).json()) as Report
    expect(asked.identities).toEqual([])
  })

  it('returns the same lines as CSV, by format or Accept header', async () => {
    const response = await get(`/v1/eligibility?at=${AT}&business_unit=finance&format=csv`)
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/)
    const rows = parseCsv(await response.text()).map((r) => r.fields)
    expect(rows[0]).toEqual([
      'id',
      'type',
      'owner',
      'business_unit',
      'tier',
      'status',
      'last_seen',
      'recent_activity',
      'recent_unapproved_activity',
      'features_earned',
      'features_not_earned',
      'recommendation',
      'recommended_tier',
      'reason',
    ])
    expect(rows.find((r) => r[0] === 'down-hc')).toEqual([
      'down-hc',
      'service_account',
      'team-a',
      'finance',
      'gold+high_capacity_processing+premium_automation',
      'active',
      '2026-11-27T12:00:00.000Z',
      '2',
      '0',
      'premium_automation',
      'high_capacity_processing',
      'downgrade',
      'gold+premium_automation',
      'not earned: high_capacity_processing (1 of 3 approved events in 7d)',
    ])
    expect(rows).toHaveLength(7)
    const viaAccept = await get(`/v1/eligibility?at=${AT}`, 'admin', { Accept: 'text/csv' })
    expect(viaAccept.headers.get('content-type')).toMatch(/^text\/csv/)
  })

  it('needs billing:read and refuses unknown parameters', async () => {
    expect((await get('/v1/eligibility', 'security')).status).toBe(403)
    expect((await get('/v1/eligibility?format=xml')).status).toBe(400)
    expect((await get('/v1/eligibility?unit=finance')).status).toBe(400)
  })
})

describe('tiers', () => {
  it('name the policy features they grant; other parts are plain labels', () => {
    const rules = ENTITLEMENT_POLICY.entitlements
    expect(tierFeatures('gold+premium_automation+high_capacity_processing+premium_automation', rules).map((r) => r.feature)).toEqual(['premium_automation', 'high_capacity_processing'])
    expect(tierFeatures('standard', rules)).toEqual([])
    expect(tierFeatures('', rules)).toEqual([])
  })
})
