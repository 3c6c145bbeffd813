import type { ClickHouseClient } from '@clickhouse/client'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openApiDocument } from '../openapi.js'
import { identitiesOpenApi } from '../identities/openapi.js'
import { identitiesRoutes } from '../identities/routes.js'
import { declaration, ENTITLEMENT_POLICY, identitiesApp, useEvent } from '../test-support/identities.js'
import { testKeys } from '../test-support/keys.js'
import { insertSpans } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { entitlementsOpenApi } from './openapi.js'
import { entitlementsRoutes } from './routes.js'

let client: ClickHouseClient
let app: ReturnType<typeof identitiesApp>
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'finance', scopes: ['billing:read', 'inventory:write'], business_units: ['finance'] },
  { name: 'ingest', scopes: ['ingest:write'] },
])

// The fragments as they will sit in /openapi.json, next to the shared Error schema.
const fragments = [identitiesOpenApi, entitlementsOpenApi]
const document = {
  components: {
    schemas: {
      ...((openApiDocument() as { components: { schemas: Record<string, unknown> } }).components.schemas),
      ...Object.assign({}, ...fragments.map((f) => f.schemas)),
    },
  },
  paths: Object.assign({}, ...fragments.map((f) => f.paths)) as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>,
}
const ajv = new Ajv2020({ strict: false, allErrors: true })
ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/)
ajv.addSchema({ $id: 'openapi', ...document })

async function conforms(method: string, template: string, response: Response): Promise<void> {
  const operation = document.paths[template]?.[method]
  expect(operation, `${method} ${template} is documented`).toBeDefined()
  const documented = operation!.responses[String(response.status)]
  expect(documented, `${method} ${template} documents status ${response.status}`).toBeDefined()
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!
  const schema = documented!.content?.[type]?.schema
  expect(schema, `${method} ${template} ${response.status} documents ${type}`).toBeDefined()
  if (type !== 'application/json') return
  const validate = ajv.compile({ $ref: `openapi#/paths/${template.replace(/~/g, '~0').replace(/\//g, '~1')}/${method}/responses/${response.status}/content/application~1json/schema` })
  const body: unknown = await response.json()
  expect(validate(body), `${method} ${template} ${response.status}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`).toBe(true)
}

function call(path: string, keyName: string | null = 'admin', init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(keyName ? { Authorization: `Bearer ${key(keyName)}` } : {}), ...((init.headers as Record<string, string>) ?? {}) }
  return Promise.resolve(app.request(path, { ...init, headers }))
}

beforeAll(async () => {
  client = await freshStorage()
  app = identitiesApp(client, store)
  await call('/v1/inventory', 'admin', {
    method: 'POST',
    body: JSON.stringify([declaration('doc-a', 'finance', { tier: 'high_capacity_processing+gold' }), declaration('doc-never', 'finance', { tier: 'premium_automation' })]),
  })
  await insertSpans(client, [
    ...[1, 2, 3].map((d) => useEvent('doc-a', `2026-11-2${d}T00:00:00Z`, { type: 'workflow_execution', businessUnit: 'finance' })),
    useEvent('doc-rogue', '2026-11-22T00:00:00Z', { type: 'tool_invocation', businessUnit: 'finance' }),
  ])
})

afterAll(async () => {
  await client?.close()
})

describe('the OpenAPI fragments', () => {
  it('document every route the identities and entitlements apps serve', () => {
    const served = [identitiesRoutes({ client, policy: () => ENTITLEMENT_POLICY }), entitlementsRoutes({ client, policy: () => ENTITLEMENT_POLICY })]
      .flatMap((sub) => sub.routes)
      .filter((r) => r.method !== 'ALL')
      .map((r) => `${r.method.toLowerCase()} /v1${r.path.replace(/:([a-z_]+)/g, '{$1}')}`)
    const documented = Object.entries(document.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method} ${path}`))
    expect([...new Set(served)].sort()).toEqual(documented.sort())
  })

  it.each([
    ['get', '/v1/identities', '/v1/identities?at=2026-11-30T00:00:00Z', 'admin', {}],
    ['get', '/v1/identities', '/v1/identities?status=unregistered&limit=1', 'finance', {}],
    ['get', '/v1/identities', '/v1/identities?status=asleep', 'admin', {}],
    ['get', '/v1/identities', '/v1/identities', null, {}],
    ['get', '/v1/identities', '/v1/identities', 'ingest', {}],
    ['get', '/v1/identities/{id}/activity', '/v1/identities/doc-a/activity?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z', 'admin', {}],
    ['get', '/v1/identities/{id}/activity', '/v1/identities/nobody/activity', 'admin', {}],
    ['post', '/v1/inventory', '/v1/inventory', 'admin', { method: 'POST', body: JSON.stringify([declaration('doc-b', 'finance')]) }],
    ['post', '/v1/inventory', '/v1/inventory', 'admin', { method: 'POST', body: '[{"id": 1}]' }],
    ['post', '/v1/inventory', '/v1/inventory', 'finance', { method: 'POST', body: JSON.stringify([declaration('doc-c', 'sales')]) }],
    ['post', '/v1/inventory', '/v1/inventory', 'admin', { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } }],
    ['delete', '/v1/inventory/{id}', '/v1/inventory/doc-b', 'admin', { method: 'DELETE' }],
    ['delete', '/v1/inventory/{id}', '/v1/inventory/doc-b', 'admin', { method: 'DELETE' }],
    ['get', '/v1/entitlements/{id}', '/v1/entitlements/doc-a?at=2026-11-24T00:00:00Z', 'admin', {}],
    ['get', '/v1/entitlements/{id}', '/v1/entitlements/doc-rogue?at=2026-11-24T00:00:00Z', 'finance', {}],
    ['get', '/v1/entitlements/{id}', '/v1/entitlements/nobody', 'admin', {}],
    ['get', '/v1/entitlements/{id}', '/v1/entitlements/doc-a?at=soon', 'admin', {}],
    ['post', '/v1/entitlements/decide', '/v1/entitlements/decide', 'admin', { method: 'POST', body: JSON.stringify({ at: '2026-11-24T00:00:00Z', requests: [{ nhi_id: 'doc-a' }, { nhi_id: 'x', feature: 'premium_automation' }] }) }],
    ['post', '/v1/entitlements/decide', '/v1/entitlements/decide', 'admin', { method: 'POST', body: '{"requests": 5}' }],
    ['get', '/v1/eligibility', '/v1/eligibility?at=2026-11-24T00:00:00Z', 'admin', {}],
    ['get', '/v1/eligibility', '/v1/eligibility?at=2026-11-24T00:00:00Z&format=csv', 'finance', {}],
    ['get', '/v1/eligibility', '/v1/eligibility?format=pdf', 'admin', {}],
  ] as const)('%s %s answers as documented (%s, key %s)', async (method, template, path, keyName, init) => {
    await conforms(method, template, await call(path, keyName, init as RequestInit))
  })
})
