/**
 * Access control of the query API, end to end on the real service: every
 * /v1 route listed in the service's own /openapi.json refuses requests
 * without a usable key (401) and keys without its scope (403), and a key
 * limited to business unit A cannot learn anything about unit B through
 * any route or parameter. A route added to openapi.json without a case in
 * AUTHORIZATION fails this file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startService, type ServiceUnderTest } from '../helpers/service.js'
import { A_IDS, B_IDS, B_STRINGS, GHOST, KEYS, seed, SPLIT_ID, writeKeysFile, writePolicyFile, type Seeded } from './access-fixture.js'

let service: ServiceUnderTest
let limited: ServiceUnderTest
let data: Seeded
/** `METHOD /path` of every /v1 operation openapi.json documents. */
let documented: string[]

type KeyName = keyof typeof KEYS

interface Call {
  method?: 'GET' | 'POST' | 'DELETE'
  path: string
  body?: string
  headers?: Record<string, string>
}

interface Answer {
  status: number
  text: string
  headers: Headers
}

async function call(baseUrl: string, request: Call, authorization: string | undefined): Promise<Answer> {
  const headers: Record<string, string> = { ...(request.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...request.headers }
  if (authorization !== undefined) headers.Authorization = authorization
  const response = await fetch(`${baseUrl}${request.path}`, { method: request.method ?? 'GET', headers, body: request.body })
  return { status: response.status, text: await response.text(), headers: response.headers }
}

const as = (key: KeyName, request: Call) => call(service.apiUrl, request, `Bearer ${KEYS[key]}`)

/** Placeholders a probe may use, filled with one of B's objects or with a ghost that exists nowhere. */
interface Subject {
  ID: string
  UNIT: string
  SERVICE: string
}
const GHOST_SUBJECT: Subject = { ID: GHOST.id, UNIT: GHOST.unit, SERVICE: GHOST.service }

function fill(request: Call, subject: Subject): Call {
  const put = (text: string) =>
    text
      .replaceAll('{ID}', encodeURIComponent(subject.ID))
      .replaceAll('{UNIT}', encodeURIComponent(subject.UNIT))
      .replaceAll('{SERVICE}', encodeURIComponent(subject.SERVICE))
      .replaceAll('{FROM}', data.from)
      .replaceAll('{TO}', data.to)
      .replaceAll('{AT}', data.at)
      .replaceAll('{MONTH}', data.lastMonth)
  const putBody = (text: string) => text.replaceAll('{ID}', subject.ID).replaceAll('{UNIT}', subject.UNIT).replaceAll('{AT}', data.at)
  return { ...request, path: put(request.path), body: request.body === undefined ? undefined : putBody(request.body) }
}

/** An answer with its request id and the filled-in subject blanked, for comparing a B answer with a ghost answer. */
function normalized(answer: Answer, subject: Subject): string {
  let text = answer.text.replace(/"request_id":"[^"]*"/g, '"request_id":"-"')
  for (const value of [subject.ID, subject.UNIT, subject.SERVICE]) text = text.split(value).join('<subject>')
  return `${answer.status} ${text}`
}

function markersIn(text: string, allowed: readonly string[] = []): string[] {
  return data.bMarkers.filter((m) => !allowed.includes(m) && text.includes(m))
}

/**
 * One authorization case of a route. `list`: a unit-A key's answer holds
 * no marker of B, while the admin's answer to the same request does (so the
 * probe can see B). `subject`: the request names one of B's objects; a
 * unit-A key's answer must equal its answer about a ghost, while the
 * admin's answers to the two differ. `refused`: a unit-A key gets the given
 * status with no marker of B.
 */
type Probe =
  | { kind: 'list'; name: string; request: Call }
  | { kind: 'subject'; name: string; request: Call; subjects: Subject[]; adminControl?: boolean }
  | { kind: 'refused'; name: string; request: Call; status: number }

const RANGE = 'from={FROM}&to={TO}'
const bId = (ID: string): Subject => ({ ID, UNIT: B_STRINGS.unit, SERVICE: B_STRINGS.service })
const EVERY_B_ID = Object.values(B_IDS).map(bId)
const B_UNIT: Subject = { ID: B_IDS.observed, UNIT: B_STRINGS.unit, SERVICE: B_STRINGS.service }

/** Authorization cases, keyed by the operation as openapi.json names it. */
const AUTHORIZATION: Record<string, Probe[]> = {
  'GET /v1/billable': [
    { kind: 'list', name: 'default grouping', request: { path: `/v1/billable?${RANGE}` } },
    { kind: 'list', name: 'grouped by business unit', request: { path: `/v1/billable?${RANGE}&group_by=business_unit` } },
    { kind: 'list', name: 'grouped by service, activity and period', request: { path: `/v1/billable?${RANGE}&group_by=service,activity.name,period&granularity=month` } },
    { kind: 'list', name: 'as CSV (format=csv)', request: { path: `/v1/billable?${RANGE}&group_by=nhi.id,business_unit&format=csv` } },
    { kind: 'list', name: 'as CSV (Accept)', request: { path: `/v1/billable?${RANGE}&group_by=nhi.id`, headers: { Accept: 'text/csv' } } },
  ],
  'GET /v1/billable/evidence': [
    { kind: 'list', name: 'unfiltered', request: { path: `/v1/billable/evidence?${RANGE}&limit=1000` } },
    { kind: 'subject', name: "B's identity by nhi.id", request: { path: `/v1/billable/evidence?${RANGE}&nhi.id={ID}` }, subjects: EVERY_B_ID.filter((s) => s.ID !== B_IDS.declaredOnly) },
    { kind: 'subject', name: "B's unit by business_unit", request: { path: `/v1/billable/evidence?${RANGE}&business_unit={UNIT}` }, subjects: [B_UNIT] },
    { kind: 'subject', name: "B's service by service", request: { path: `/v1/billable/evidence?${RANGE}&service={SERVICE}` }, subjects: [B_UNIT] },
  ],
  'GET /v1/statements': [{ kind: 'refused', name: 'statements cover every unit', request: { path: '/v1/statements' }, status: 403 }],
  'GET /v1/statements/{period}': [{ kind: 'refused', name: 'statements cover every unit', request: { path: '/v1/statements/{MONTH}' }, status: 403 }],
  'POST /v1/statements': [{ kind: 'refused', name: 'closing a month needs admin', request: { method: 'POST', path: '/v1/statements', body: '{"period":"2000-01"}' }, status: 403 }],
  'GET /v1/identities': [
    { kind: 'list', name: 'every status', request: { path: '/v1/identities?at={AT}' } },
    { kind: 'list', name: 'never seen only', request: { path: '/v1/identities?at={AT}&status=never_seen' } },
    { kind: 'subject', name: "B's unit by business_unit", request: { path: '/v1/identities?at={AT}&business_unit={UNIT}' }, subjects: [B_UNIT] },
    { kind: 'list', name: 'paging after an id', request: { path: '/v1/identities?at={AT}&after=agent-a1&limit=50' } },
  ],
  'GET /v1/identities/{id}/activity': [
    { kind: 'subject', name: "B's identities by path id", request: { path: `/v1/identities/{ID}/activity?${RANGE}&granularity=day` }, subjects: EVERY_B_ID },
  ],
  'POST /v1/inventory': [
    {
      kind: 'refused',
      name: "claiming B's declared identity for unit A",
      request: { method: 'POST', path: '/v1/inventory', body: JSON.stringify([{ id: B_IDS.moved, type: 'workload', owner: 'owner-a', business_unit: 'unit-a', tier: '', approved_activities: [] }]) },
      status: 403,
    },
    {
      kind: 'refused',
      name: "claiming B's observed (undeclared) identity for unit A",
      request: { method: 'POST', path: '/v1/inventory', body: JSON.stringify([{ id: B_IDS.observed, type: 'ai_agent', owner: 'owner-a', business_unit: 'unit-a', tier: '', approved_activities: [] }]) },
      status: 403,
    },
    {
      kind: 'refused',
      name: 'declaring an identity in unit B',
      request: { method: 'POST', path: '/v1/inventory', body: JSON.stringify([{ id: 'new-in-b', type: 'workload', owner: 'owner-a', business_unit: B_STRINGS.unit, tier: '', approved_activities: [] }]) },
      status: 403,
    },
  ],
  'DELETE /v1/inventory/{id}': [
    // No admin control: the admin's answer would retire B's declarations.
    { kind: 'subject', name: "retiring B's declarations by path id", request: { method: 'DELETE', path: '/v1/inventory/{ID}' }, subjects: [bId(B_IDS.declaredOnly), bId(B_IDS.moved)], adminControl: false },
  ],
  'GET /v1/entitlements/{id}': [{ kind: 'subject', name: "B's identities by path id", request: { path: '/v1/entitlements/{ID}?at={AT}' }, subjects: EVERY_B_ID }],
  'POST /v1/entitlements/decide': [
    {
      kind: 'subject',
      name: "a batch naming B's identities",
      request: { method: 'POST', path: '/v1/entitlements/decide', body: '{"at":"{AT}","requests":[{"nhi_id":"{ID}"},{"nhi_id":"{ID}","feature":"premium_automation"}]}' },
      subjects: EVERY_B_ID,
    },
  ],
  'GET /v1/eligibility': [
    { kind: 'list', name: 'every unit', request: { path: '/v1/eligibility?at={AT}' } },
    { kind: 'list', name: 'as CSV', request: { path: '/v1/eligibility?at={AT}&format=csv' } },
    { kind: 'subject', name: "B's unit by business_unit", request: { path: '/v1/eligibility?at={AT}&business_unit={UNIT}' }, subjects: [B_UNIT] },
  ],
  'GET /v1/findings': [
    { kind: 'list', name: 'every kind', request: { path: `/v1/findings?${RANGE}` } },
    { kind: 'subject', name: "B's unit by business_unit", request: { path: `/v1/findings?${RANGE}&business_unit={UNIT}` }, subjects: [B_UNIT] },
    { kind: 'subject', name: "A's and B's units together", request: { path: `/v1/findings?${RANGE}&business_unit=unit-a,{UNIT}` }, subjects: [B_UNIT] },
  ],
  'GET /v1/telemetry/completeness': [{ kind: 'list', name: 'every service', request: { path: `/v1/telemetry/completeness?${RANGE}` } }],
}

/** The scope each operation needs; a key holding none of them gets 403. */
const SCOPES_NEEDED: Record<string, string[]> = {
  'GET /v1/billable': ['billing:read'],
  'GET /v1/billable/evidence': ['billing:read'],
  'GET /v1/statements': ['billing:read'],
  'GET /v1/statements/{period}': ['billing:read'],
  'POST /v1/statements': ['admin'],
  'GET /v1/identities': ['billing:read', 'findings:read'],
  'GET /v1/identities/{id}/activity': ['billing:read', 'findings:read'],
  'POST /v1/inventory': ['inventory:write'],
  'DELETE /v1/inventory/{id}': ['inventory:write'],
  'GET /v1/entitlements/{id}': ['billing:read'],
  'POST /v1/entitlements/decide': ['billing:read'],
  'GET /v1/eligibility': ['billing:read'],
  'GET /v1/findings': ['findings:read'],
  'GET /v1/telemetry/completeness': ['findings:read'],
}
const SINGLE_SCOPE_KEYS: Array<[KeyName, string]> = [
  ['billingOnly', 'billing:read'],
  ['findingsOnly', 'findings:read'],
  ['inventoryOnly', 'inventory:write'],
  ['ingestOnly', 'ingest:write'],
]

/** A harmless, well-formed request for an operation, for the authentication and scope checks. */
function plainRequest(operation: string): Call {
  const [method, template] = operation.split(' ') as ['GET' | 'POST' | 'DELETE', string]
  const path = template.replace('{id}', 'no-such-identity').replace('{period}', '2000-01')
  const bodies: Record<string, string> = {
    'POST /v1/statements': '{"period":"2000-01"}',
    'POST /v1/inventory': '[]',
    'POST /v1/entitlements/decide': '{"requests":[]}',
  }
  return { method, path, body: bodies[operation] }
}

beforeAll(async () => {
  const env = { NHI_METER_API_KEYS_FILE: writeKeysFile(), NHI_METER_POLICY: writePolicyFile(), NHI_METER_ROLLUP_INTERVAL_SECONDS: '0' }
  ;[service, limited] = await Promise.all([
    startService({ env: { ...env, NHI_METER_RATE_LIMIT_PER_SECOND: 'off', NHI_METER_AUTH_FAILURES_PER_MINUTE: 'off' }, timeoutMs: 60_000 }),
    startService({ env: { ...env, NHI_METER_RATE_LIMIT_PER_SECOND: '0.2', NHI_METER_RATE_LIMIT_BURST: '3', NHI_METER_AUTH_FAILURES_PER_MINUTE: '3' }, timeoutMs: 60_000 }),
  ])
  data = await seed(service.apiUrl, service.otlpUrl)
  const document = (await (await fetch(`${service.apiUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> }
  documented = Object.entries(document.paths)
    .filter(([path]) => path.startsWith('/v1/'))
    .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
    .sort()
}, 180_000)

afterAll(async () => {
  await Promise.all([service?.stop(), limited?.stop()])
})

describe('the route table', () => {
  it('has an authorization case and a scope for every /v1 operation openapi.json documents, and none for routes it does not', () => {
    expect(documented.length).toBeGreaterThanOrEqual(14)
    expect(Object.keys(AUTHORIZATION).sort()).toEqual(documented)
    expect(Object.keys(SCOPES_NEEDED).sort()).toEqual(documented)
  })
})

describe('authentication on every /v1 route', () => {
  const wrongKeys: Array<[string, string | undefined]> = [
    ['no Authorization header', undefined],
    ['another scheme (Basic)', `Basic ${Buffer.from(`admin:${KEYS.admin}`).toString('base64')}`],
    ['a key without its scheme', KEYS.admin],
    ['Bearer with an empty key', 'Bearer '],
    ['a non-ASCII key', `Bearer ${KEYS.admin.slice(0, -1)}\u00e9`],
    ['an overlong key', `Bearer ${'k'.repeat(4096)}`],
    ['two keys separated by a space', `Bearer ${KEYS.admin} ${KEYS.admin}`],
    ['two keys separated by a comma', `Bearer ${KEYS.admin},${KEYS.admin}`],
    ['an unknown key', 'Bearer nhim_this-key-was-never-issued-0123456789abcd'],
    ['a known key with one character changed', `Bearer ${KEYS.admin.slice(0, -1)}X`],
    ['a known key in the wrong case', `Bearer ${KEYS.admin.toUpperCase()}`],
    ["the key's SHA-256 instead of the key", `Bearer ${'0'.repeat(64)}`],
  ]

  it('answers 401 with the error envelope and a Bearer challenge for a missing, malformed or wrong key', async () => {
    const failures: string[] = []
    for (const operation of documented) {
      for (const [what, authorization] of wrongKeys) {
        const answer = await call(service.apiUrl, plainRequest(operation), authorization)
        const body = JSON.parse(answer.text) as { error?: { code?: string; message?: string; request_id?: string } }
        const ok =
          answer.status === 401 &&
          body.error?.code === 'unauthenticated' &&
          typeof body.error.message === 'string' &&
          body.error.request_id === answer.headers.get('x-request-id') &&
          answer.headers.get('www-authenticate') === 'Bearer realm="nhi-meter"'
        if (!ok) failures.push(`${operation} with ${what}: ${answer.status} ${answer.text.slice(0, 200)}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('answers 403 to a key that lacks the route\'s scope, and lets a key that holds it through', async () => {
    const failures: string[] = []
    for (const operation of documented) {
      for (const [key, scope] of SINGLE_SCOPE_KEYS) {
        const answer = await as(key, plainRequest(operation))
        const allowed = SCOPES_NEEDED[operation]!.includes(scope)
        const body = JSON.parse(answer.text) as { error?: { code?: string } }
        if (allowed ? answer.status === 401 || answer.status === 403 : answer.status !== 403 || body.error?.code !== 'forbidden') {
          failures.push(`${operation} with the ${scope} key: ${answer.status} ${answer.text.slice(0, 200)}`)
        }
      }
    }
    expect(failures).toEqual([])
  })
})

describe("a key limited to unit A learns nothing about unit B's objects", () => {
  for (const operation of Object.keys(AUTHORIZATION)) {
    describe(operation, () => {
      for (const probe of AUTHORIZATION[operation]!) {
        if (probe.kind === 'list') {
          it(`${probe.name}: no trace of B in the answer, though the admin's answer has some`, async () => {
            const request = fill(probe.request, GHOST_SUBJECT)
            const answer = await as('unitA', request)
            expect(answer.status, answer.text).toBe(200)
            expect(markersIn(answer.text), answer.text).toEqual([])
            const control = await as('admin', request)
            expect(control.status, control.text).toBe(200)
            expect(markersIn(control.text).length, `the admin's answer should show B: ${control.text.slice(0, 300)}`).toBeGreaterThan(0)
          })
        } else if (probe.kind === 'refused') {
          it(`${probe.name}: ${probe.status}, nothing of B`, async () => {
            const request = fill(probe.request, GHOST_SUBJECT)
            const answer = await as('unitA', request)
            expect(answer.status, answer.text).toBe(probe.status)
            // Echoing what the caller sent is no leak.
            expect(markersIn(answer.text, markersIn(`${request.path} ${request.body ?? ''}`)), answer.text).toEqual([])
          })
        } else {
          it(`${probe.name}: the same answer as for an object that does not exist`, async () => {
            let adminSawB = probe.adminControl === false
            for (const subject of probe.subjects) {
              const aboutB = await as('unitA', fill(probe.request, subject))
              const aboutGhost = await as('unitA', fill(probe.request, GHOST_SUBJECT))
              expect(normalized(aboutB, subject), `${subject.ID}`).toEqual(normalized(aboutGhost, GHOST_SUBJECT))
              expect(markersIn(aboutB.text, [subject.ID, subject.UNIT, subject.SERVICE]), aboutB.text).toEqual([])
              if (probe.adminControl !== false) {
                const adminB = await as('admin', fill(probe.request, subject))
                const adminGhost = await as('admin', fill(probe.request, GHOST_SUBJECT))
                if (normalized(adminB, subject) !== normalized(adminGhost, GHOST_SUBJECT)) adminSawB = true
              }
            }
            expect(adminSawB, "the admin's answers about B and about the ghost should differ").toBe(true)
          })
        }
      }
    })
  }

  it("sees exactly unit A's totals and completeness in billing, evidence and telemetry", async () => {
    const bill = JSON.parse((await as('unitA', fill({ path: `/v1/billable?${RANGE}&group_by=business_unit` }, GHOST_SUBJECT))).text) as {
      rows: Array<{ business_unit: string; quantity: number }>
      total: { quantity: number }
      completeness: { spans: number; identified_spans: number }
    }
    expect(bill.rows).toEqual([expect.objectContaining({ business_unit: 'unit-a', quantity: data.aActivitySpans })])
    expect(bill.total.quantity).toBe(data.aActivitySpans)
    expect(bill.completeness).toMatchObject({ spans: data.aActivitySpans, identified_spans: data.aActivitySpans })

    const evidence = JSON.parse((await as('unitA', fill({ path: `/v1/billable/evidence?${RANGE}&limit=1000` }, GHOST_SUBJECT))).text) as { count: number }
    expect(evidence.count).toBe(data.aActivitySpans)

    const telemetry = JSON.parse((await as('unitA', fill({ path: `/v1/telemetry/completeness?${RANGE}` }, GHOST_SUBJECT))).text) as {
      services: Array<{ service: string }>
      total: { spans: number }
    }
    expect(telemetry.services.map((s) => s.service)).toEqual(['a-analytics'])
    expect(telemetry.total.spans).toBe(data.aActivitySpans)
  })

  it("still sees its own identities, so the probes above are not answered by a key that sees nothing", async () => {
    const identities = JSON.parse((await as('unitA', fill({ path: '/v1/identities?at={AT}' }, GHOST_SUBJECT))).text) as { identities: Array<{ id: string }> }
    expect(identities.identities.map((i) => i.id).sort()).toEqual([A_IDS.observed, A_IDS.declaredOnly, SPLIT_ID].sort())
    expect((await as('unitA', fill({ path: `/v1/entitlements/${A_IDS.observed}?at={AT}` }, GHOST_SUBJECT))).status).toBe(200)
  })

  it("sees only unit A's rows of an identity whose spans name both units", async () => {
    const activity = JSON.parse((await as('unitA', fill({ path: `/v1/identities/${SPLIT_ID}/activity?${RANGE}&granularity=month` }, GHOST_SUBJECT))).text) as {
      series: Array<{ activity_type: string; events: number }>
    }
    expect(activity.series.map((s) => [s.activity_type, s.events])).toEqual([['tool_invocation', 2]])
    const evidence = JSON.parse((await as('unitA', fill({ path: `/v1/billable/evidence?${RANGE}&nhi.id=${SPLIT_ID}` }, GHOST_SUBJECT))).text) as { count: number }
    expect(evidence.count).toBe(2)
    const entitlement = JSON.parse((await as('unitA', fill({ path: `/v1/entitlements/${SPLIT_ID}?at={AT}` }, GHOST_SUBJECT))).text) as {
      features: Array<{ feature: string; observed: number; unapproved?: number; evidence: { sample_trace_ids: string[] } }>
    }
    const rotations = entitlement.features.find((f) => f.feature === 'premium_automation')!
    expect(rotations).toMatchObject({ observed: 0 })
    expect(rotations.unapproved ?? 0).toBe(0)
    expect(markersIn(JSON.stringify(entitlement))).toEqual([])
    // The admin sees B's rotations of the same identity.
    const all = JSON.parse((await as('admin', fill({ path: `/v1/identities/${SPLIT_ID}/activity?${RANGE}&granularity=month` }, GHOST_SUBJECT))).text) as {
      series: Array<{ activity_type: string; events: number }>
    }
    expect(all.series.map((s) => [s.activity_type, s.events])).toEqual([['secret_rotation', 3], ['tool_invocation', 2]])
  })

  it("left B's declarations as they were after unit A's attempts to claim or retire them", async () => {
    const identities = JSON.parse((await as('unitB', fill({ path: '/v1/identities?at={AT}' }, GHOST_SUBJECT))).text) as {
      identities: Array<{ id: string; business_unit: string; declared: boolean; owner: string }>
    }
    const byId = new Map(identities.identities.map((i) => [i.id, i]))
    expect(byId.get(B_IDS.moved)).toMatchObject({ business_unit: B_STRINGS.unit, declared: true, owner: B_STRINGS.owner })
    expect(byId.get(B_IDS.declaredOnly)).toMatchObject({ business_unit: B_STRINGS.unit, declared: true })
    expect(byId.get(B_IDS.observed)).toMatchObject({ business_unit: B_STRINGS.unit, declared: false })
    expect(byId.has('new-in-b')).toBe(false)
  })
})

describe('rate limits', () => {
  it('answers 429 rate_limited with Retry-After once a key spends its burst, per key', async () => {
    const statuses: number[] = []
    let last: Answer | undefined
    for (let i = 0; i < 4; i++) {
      last = await call(limited.apiUrl, { path: '/v1/identities' }, `Bearer ${KEYS.billingOnly}`)
      statuses.push(last.status)
    }
    expect(statuses).toEqual([200, 200, 200, 429])
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    const body = JSON.parse(last!.text) as { error: { code: string; request_id: string } }
    expect(body.error.code).toBe('rate_limited')
    expect(body.error.request_id).toBe(last!.headers.get('x-request-id'))
    expect((await call(limited.apiUrl, { path: '/v1/identities' }, `Bearer ${KEYS.findingsOnly}`)).status).toBe(200)
  })

  it('refuses an address that keeps presenting wrong keys, even once it presents a right one', async () => {
    const statuses: number[] = []
    for (const authorization of ['Bearer guess-1', 'Bearer guess-2', undefined]) statuses.push((await call(limited.apiUrl, { path: '/v1/findings' }, authorization)).status)
    expect(statuses).toEqual([401, 401, 401])
    const blocked = await call(limited.apiUrl, { path: '/v1/findings' }, `Bearer ${KEYS.admin}`)
    expect(blocked.status).toBe(429)
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect((JSON.parse(blocked.text) as { error: { code: string } }).error.code).toBe('rate_limited')
  })
})
