import type { FeatureDecision } from './decide.js'
import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testKeys } from '../test-support/keys.js'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { declaration, ENTITLEMENT_POLICY, identitiesApp, useEvent } from '../test-support/identities.js'
import { entitlementFigures } from './queries.js'
import { singleIdentityFigures } from './single.js'
import { tableWriteVersion } from '../storage/write-tracking.js'

let client: ClickHouseClient
let app: ReturnType<typeof identitiesApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read', 'inventory:write'], business_units: ['finance'] },
  { name: 'findings', scopes: ['findings:read'] },
])

type Feature = FeatureDecision

async function request(path: string, keyName = 'admin', init: RequestInit = {}): Promise<Response> {
  return app.request(path, { ...init, headers: { Authorization: `Bearer ${key(keyName)}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) } })
}

async function entitlements(id: string, at: string, keyName = 'admin'): Promise<Record<string, Feature>> {
  const response = await request(`/v1/entitlements/${encodeURIComponent(id)}?at=${at}`, keyName)
  expect(response.status).toBe(200)
  const body = (await response.json()) as { nhi_id: string; at: string; features: Feature[] }
  expect(body.nhi_id).toBe(id)
  return Object.fromEntries(body.features.map((f) => [f.feature, f]))
}

async function declare(items: unknown[], keyName = 'admin'): Promise<void> {
  const response = await request('/v1/inventory', keyName, { method: 'POST', body: JSON.stringify(items) })
  expect(response.status).toBe(200)
}

const workflow = (id: string, start: string, extra: Parameters<typeof useEvent>[2] extends infer T ? Partial<T> : never = {}) =>
  useEvent(id, start, { type: 'workflow_execution', name: 'etl', businessUnit: 'finance', ...extra })

beforeAll(async () => {
  client = await freshStorage()
  app = identitiesApp(client, store)
  await declare([
    declaration('etl-1', 'finance'),
    declaration('etl-edge', 'finance'),
    declaration('etl-late', 'finance'),
    declaration('etl-dup', 'finance'),
    declaration('rotator', 'finance'),
    declaration('nightly', 'finance'),
    declaration('narrow', 'finance', { approved_activities: ['workflow_execution:nightly_*'] }),
    declaration('sales-bot', 'sales'),
    declaration('quiet', 'finance'),
    declaration('relabeled', 'finance'),
  ])
  // Declared in finance although its spans say sales; and an undeclared identity acting in two units.
  await insertSpans(client, [
    ...[1, 2, 3].map((d) => workflow('relabeled', `2026-11-2${d}T06:00:00Z`, { businessUnit: 'sales' })),
    workflow('mixed', '2026-11-21T06:00:00Z', { businessUnit: 'finance' }),
    workflow('mixed', '2026-11-22T06:00:00Z', { businessUnit: 'finance' }),
    workflow('mixed', '2026-11-23T06:00:00Z', { businessUnit: 'sales' }),
  ])
})

afterAll(async () => {
  await client?.close()
})

describe('rolling-window thresholds', () => {
  it('grants a feature at min_count approved events in the trailing window, not before', async () => {
    await insertSpans(client, [
      workflow('etl-1', '2026-11-10T10:00:00Z'),
      workflow('etl-1', '2026-11-11T10:00:00Z'),
      workflow('etl-1', '2026-11-12T10:00:00Z', { status: 'Error' }),
      workflow('etl-1', '2026-11-13T10:00:00Z'),
    ])
    const before = await entitlements('etl-1', '2026-11-13T10:00:00Z')
    expect(before.high_capacity_processing).toMatchObject({ granted: false, observed: 2, threshold: 3, changes_at: null })
    const after = await entitlements('etl-1', '2026-11-13T10:00:00.001Z')
    expect(after.high_capacity_processing).toMatchObject({
      granted: true,
      observed: 3,
      threshold: 3,
      window: { from: '2026-11-06T10:00:00.001Z', to: '2026-11-13T10:00:00.001Z', duration: '7d' },
    })
    expect(after.high_capacity_processing!.evidence!.sample_trace_ids).toHaveLength(3)
  })

  it('says when a granted feature lapses if no new activity arrives: when its min_count-th newest event leaves the window', async () => {
    const now = await entitlements('etl-1', '2026-11-14T00:00:00Z')
    // The 3rd newest ok run is 2026-11-10T10:00; it is in [at - 7d, at) up to at = 2026-11-17T10:00.
    expect(now.high_capacity_processing!.changes_at).toBe('2026-11-17T10:00:00.001Z')
    expect((await entitlements('etl-1', '2026-11-17T10:00:00.000Z')).high_capacity_processing!.granted).toBe(true)
    expect((await entitlements('etl-1', '2026-11-17T10:00:00.001Z')).high_capacity_processing).toMatchObject({ granted: false, observed: 2, changes_at: null })
  })

  it('counts an event exactly at the window start and not one exactly at the decision time', async () => {
    await insertSpans(client, [workflow('etl-edge', '2026-11-01T00:00:00Z')])
    const observedAt = async (at: string) => (await entitlements('etl-edge', at)).high_capacity_processing!.observed
    // Window [at - 7d, at): closed at the start, open at the end.
    expect(await observedAt('2026-11-01T00:00:00.000Z')).toBe(0)
    expect(await observedAt('2026-11-01T00:00:00.001Z')).toBe(1)
    expect(await observedAt('2026-11-08T00:00:00.000Z')).toBe(1)
    expect(await observedAt('2026-11-08T00:00:00.001Z')).toBe(0)
  })

  it('counts a span delivered twice once', async () => {
    const twice = workflow('etl-dup', '2026-11-20T01:00:00Z')
    const later = workflow('etl-dup', '2026-11-20T02:00:00Z')
    await insertSpans(client, [twice, later])
    await insertSpans(client, [twice])
    const answer = await entitlements('etl-dup', '2026-11-21T00:00:00Z')
    expect(answer.high_capacity_processing).toMatchObject({ granted: false, observed: 2 })
    expect(answer.high_capacity_processing!.evidence!.sample_trace_ids).toEqual([later.TraceId, twice.TraceId])
  })

  it('changes a past decision when late spans arrive for it', async () => {
    await insertSpans(client, [workflow('etl-late', '2026-11-15T00:00:00Z'), workflow('etl-late', '2026-11-16T00:00:00Z')])
    expect((await entitlements('etl-late', '2026-11-17T00:00:00Z')).high_capacity_processing!.granted).toBe(false)
    await insertSpans(client, [workflow('etl-late', '2026-11-12T00:00:00Z')])
    const revised = await entitlements('etl-late', '2026-11-17T00:00:00Z')
    expect(revised.high_capacity_processing).toMatchObject({ granted: true, observed: 3, changes_at: '2026-11-19T00:00:00.001Z' })
  })
})

describe('activity-conditioned features', () => {
  it('grants premium automation only after a verified (ok) secret rotation in the last 30 days', async () => {
    await insertSpans(client, [useEvent('rotator', '2026-11-02T00:00:00Z', { type: 'secret_rotation', name: 'db-password', businessUnit: 'finance', status: 'Error' })])
    expect((await entitlements('rotator', '2026-11-05T00:00:00Z')).premium_automation).toMatchObject({ granted: false, observed: 0 })
    await insertSpans(client, [useEvent('rotator', '2026-11-03T00:00:00Z', { type: 'secret_rotation', name: 'db-password', businessUnit: 'finance' })])
    expect((await entitlements('rotator', '2026-11-05T00:00:00Z')).premium_automation).toMatchObject({ granted: true, observed: 1, changes_at: '2026-12-03T00:00:00.001Z' })
    expect((await entitlements('rotator', '2026-12-03T00:00:00.001Z')).premium_automation!.granted).toBe(false)
  })

  it('counts only names matching the rule glob, with any status when the rule says so', async () => {
    await insertSpans(client, [
      useEvent('nightly', '2026-11-20T01:00:00Z', { type: 'workflow_execution', name: 'nightly_rollup', businessUnit: 'finance', status: 'Error' }),
      useEvent('nightly', '2026-11-20T02:00:00Z', { type: 'workflow_execution', name: 'daily_rollup', businessUnit: 'finance' }),
      useEvent('nightly', '2026-11-20T03:00:00Z', { type: 'workflow_execution', name: 'nightly_export', businessUnit: 'finance' }),
    ])
    const answer = await entitlements('nightly', '2026-11-20T12:00:00Z')
    expect(answer.nightly_batch).toMatchObject({ granted: true, observed: 2, changes_at: '2026-11-21T01:00:00.001Z' })
    expect(answer.high_capacity_processing).toMatchObject({ granted: false, observed: 2 })
  })

  it('does not count activity outside the identity’s approved activities, and says how much was left out', async () => {
    await insertSpans(client, [
      useEvent('narrow', '2026-11-20T01:00:00Z', { type: 'workflow_execution', name: 'nightly_a', businessUnit: 'finance' }),
      useEvent('narrow', '2026-11-20T02:00:00Z', { type: 'workflow_execution', name: 'adhoc', businessUnit: 'finance' }),
      useEvent('narrow', '2026-11-20T03:00:00Z', { type: 'workflow_execution', name: 'nightly_b', businessUnit: 'finance' }),
    ])
    const answer = await entitlements('narrow', '2026-11-20T12:00:00Z')
    expect(answer.high_capacity_processing).toMatchObject({ granted: false, observed: 2, unapproved: 1 })
    expect(answer.nightly_batch).toMatchObject({ granted: true, observed: 2, unapproved: 0 })
  })

  it('grants nothing to an identity that is not declared: none of its activity is approved', async () => {
    await insertSpans(client, [1, 2, 3].map((d) => workflow('stranger', `2026-11-2${d}T00:00:00Z`)))
    const answer = await entitlements('stranger', '2026-11-24T00:00:00Z')
    expect(answer.high_capacity_processing).toMatchObject({ granted: false, observed: 0, unapproved: 3, changes_at: null })
  })

  it('answers a declared identity with no activity with every feature not granted', async () => {
    const answer = await entitlements('quiet', '2026-11-24T00:00:00Z')
    expect(Object.values(answer).map((f) => [f.feature, f.granted, f.observed])).toEqual([
      ['high_capacity_processing', false, 0],
      ['premium_automation', false, 0],
      ['nightly_batch', false, 0],
    ])
  })

  it('finds the deciding event with a sorted read when min_count is beyond one aggregate', async () => {
    const rules = ENTITLEMENT_POLICY.entitlements
    const at = new Date('2026-11-14T00:00:00Z')
    const normal = await entitlementFigures(client, { ids: ['etl-1'], at, rules, businessUnits: null, evidence: false, history: null })
    const sorted = await entitlementFigures(client, { ids: ['etl-1'], at, rules, businessUnits: null, evidence: false, history: null, newestLimit: 1 })
    expect(normal.get('etl-1')!.features[0]!.decidingEventMs).toBe(Date.parse('2026-11-10T10:00:00Z'))
    expect(sorted.get('etl-1')!.features[0]!.decidingEventMs).toBe(Date.parse('2026-11-10T10:00:00Z'))
  })
})

describe('POST /v1/entitlements/decide', () => {
  it('answers a batch in request order, every feature when none is named', async () => {
    const response = await request('/v1/entitlements/decide', 'admin', {
      method: 'POST',
      body: JSON.stringify({ at: '2026-11-14T00:00:00Z', requests: [{ nhi_id: 'etl-1', feature: 'high_capacity_processing' }, { nhi_id: 'nobody' }, { nhi_id: 'rotator', feature: 'premium_automation' }] }),
    })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { at: string; decisions: Array<Feature & { nhi_id: string }> }
    expect(body.at).toBe('2026-11-14T00:00:00.000Z')
    expect(body.decisions.map((d) => [d.nhi_id, d.feature, d.granted, d.observed])).toEqual([
      ['etl-1', 'high_capacity_processing', true, 3],
      ['nobody', 'high_capacity_processing', false, 0],
      ['nobody', 'premium_automation', false, 0],
      ['nobody', 'nightly_batch', false, 0],
      ['rotator', 'premium_automation', true, 1],
    ])
    expect(body.decisions[0]!.changes_at).toBe('2026-11-17T10:00:00.001Z')
  })

  it.each([
    ['an unrestricted key', 'admin', '2026-11-20T12:00:00Z'],
    ['an unrestricted key, later', 'admin', '2026-11-24T00:00:00Z'],
    ['a business-unit key', 'finance', '2026-11-24T00:00:00Z'],
  ])('gives the same answers as the single-identity route, for %s', async (_name, keyName, at) => {
    // The batch is one grouped query; a single identity is counted from its events (single.ts): they must agree.
    const ids = ['etl-1', 'etl-edge', 'etl-late', 'etl-dup', 'rotator', 'nightly', 'narrow', 'stranger', 'quiet', 'relabeled', 'mixed']
    const response = await request('/v1/entitlements/decide', keyName, { method: 'POST', body: JSON.stringify({ at, requests: ids.map((nhi_id) => ({ nhi_id })) }) })
    const batch = ((await response.json()) as { decisions: Array<Feature & { nhi_id: string }> }).decisions
    expect(batch).toHaveLength(ids.length * 3)
    for (const id of ids) {
      const answer = await request(`/v1/entitlements/${id}?at=${at}`, keyName)
      if (answer.status === 404) {
        expect(batch.filter((x) => x.nhi_id === id).every((d) => !d.granted && d.observed === 0 && d.unapproved === 0)).toBe(true)
        continue
      }
      const single = Object.fromEntries(((await answer.json()) as { features: Feature[] }).features.map((f) => [f.feature, f]))
      for (const d of batch.filter((x) => x.nhi_id === id)) {
        const { evidence: _evidence, ...rest } = single[d.feature]!
        expect({ ...d, nhi_id: undefined }).toEqual({ ...rest, nhi_id: undefined })
      }
    }
  })

  it('answers an identity with more events than a single read may hold from the grouped query, identically', async () => {
    const options = { id: 'etl-1', at: new Date('2026-11-14T00:00:00Z'), rules: ENTITLEMENT_POLICY.entitlements, businessUnits: null }
    const counted = await singleIdentityFigures(client, options)
    const grouped = await singleIdentityFigures(client, { ...options, rowLimit: 1 })
    expect(counted!.features[0]!.observed).toBe(3)
    expect(grouped).toEqual(counted)
  })

  it('reads the declaration with the events where not every write is seen (a server), identically', async () => {
    // The same storage through a client this process did not open embedded: no write tracking, so no snapshot.
    const untracked = Object.create(client) as ClickHouseClient
    expect(tableWriteVersion(untracked, 'nhi_inventory')).toBeUndefined()
    const at = new Date('2026-11-24T00:00:00Z')
    const cases: Array<[string, string[] | null]> = [
      ['etl-1', null],
      ['narrow', null],
      ['relabeled', ['finance']],
      ['relabeled', ['sales']],
      ['mixed', ['finance']],
      ['mixed', null],
      ['sales-bot', ['finance']],
      ['stranger', null],
    ]
    for (const [id, businessUnits] of cases) {
      const options = { id, at, rules: ENTITLEMENT_POLICY.entitlements, businessUnits }
      expect(await singleIdentityFigures(untracked, options), `${id} seen by ${businessUnits?.join(',') ?? 'all'}`).toEqual(await singleIdentityFigures(client, options))
    }
  })

  it.each([
    [{ requests: [{ nhi_id: 'a', feature: 'teleport' }] }, /^requests\[0\]\.feature: unknown feature "teleport"/],
    [{ requests: [{ nhi_id: 'a' }, { nhi_id: 7 }] }, /^requests\[1\]\.nhi_id: must be an identity id/],
    [{ requests: [{ nhi_id: 'a', colour: 'red' }] }, /^requests\[0\]: unknown key "colour"/],
    [{ at: 'yesterday', requests: [] }, /^at: must be an RFC 3339/],
    [{ requests: Array.from({ length: 10_001 }, () => ({ nhi_id: 'a' })) }, /^requests: must list at most 10000/],
    [[1, 2], /^\(top level\)/],
  ])('refuses a bad batch with 400 naming the field (%#)', async (body, message) => {
    const response = await request('/v1/entitlements/decide', 'admin', { method: 'POST', body: JSON.stringify(body) })
    expect(response.status).toBe(400)
    const error = ((await response.json()) as { error: { code: string; message: string } }).error
    expect(error.code).toBe('invalid_body')
    expect(error.message).toMatch(message)
  })

  it('refuses a body that is not JSON, and one over the size limit', async () => {
    expect((await request('/v1/entitlements/decide', 'admin', { method: 'POST', body: '{"requests": [' })).status).toBe(400)
    const huge = JSON.stringify({ requests: [{ nhi_id: 'x'.repeat(256) }], pad: 'y'.repeat(3 * 1024 * 1024) })
    expect((await request('/v1/entitlements/decide', 'admin', { method: 'POST', body: huge })).status).toBe(413)
  })
})

describe('business-unit scoping', () => {
  beforeAll(async () => {
    await insertSpans(client, [1, 2, 3].map((d) => workflow('sales-bot', `2026-11-2${d}T00:00:00Z`, { businessUnit: 'sales' })))
  })

  it('answers 404 for another unit’s identity exactly as for one that does not exist', async () => {
    const other = await request('/v1/entitlements/sales-bot?at=2026-11-24T00:00:00Z', 'finance')
    const missing = await request('/v1/entitlements/no-such-identity?at=2026-11-24T00:00:00Z', 'finance')
    expect(other.status).toBe(404)
    expect(missing.status).toBe(404)
    const strip = async (r: Response) => ({ ...((await r.json()) as { error: { request_id: string } }).error, request_id: undefined })
    expect(await strip(other)).toEqual(await strip(missing))
    expect((await entitlements('sales-bot', '2026-11-24T00:00:00Z', 'admin')).high_capacity_processing!.granted).toBe(true)
  })

  it('scopes by the declared unit for a declared identity and by each span’s unit for an undeclared one', async () => {
    expect((await entitlements('relabeled', '2026-11-24T00:00:00Z', 'finance')).high_capacity_processing).toMatchObject({ granted: true, observed: 3 })
    expect((await entitlements('mixed', '2026-11-24T00:00:00Z', 'finance')).high_capacity_processing).toMatchObject({ granted: false, observed: 0, unapproved: 2 })
    expect((await entitlements('mixed', '2026-11-24T00:00:00Z', 'admin')).high_capacity_processing).toMatchObject({ unapproved: 3 })
  })

  it('decides another unit’s identity in a batch as if it had no activity', async () => {
    const response = await request('/v1/entitlements/decide', 'finance', {
      method: 'POST',
      body: JSON.stringify({ at: '2026-11-24T00:00:00Z', requests: [{ nhi_id: 'sales-bot', feature: 'high_capacity_processing' }, { nhi_id: 'no-such-identity', feature: 'high_capacity_processing' }] }),
    })
    const [other, missing] = ((await response.json()) as { decisions: Array<Record<string, unknown>> }).decisions
    expect({ ...other, nhi_id: undefined }).toEqual({ ...missing, nhi_id: undefined })
    expect(other).toMatchObject({ granted: false, observed: 0, unapproved: 0 })
  })

  it('needs billing:read', async () => {
    expect((await request('/v1/entitlements/etl-1', 'findings')).status).toBe(403)
    expect((await request('/v1/entitlements/decide', 'findings', { method: 'POST', body: '{"requests":[]}' })).status).toBe(403)
  })
})
