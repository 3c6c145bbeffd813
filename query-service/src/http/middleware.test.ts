import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { createApp, type ApiRateLimit } from '../app.js'
import { testKeys } from '../test-support/keys.js'
import { TEST_POLICY } from '../test-support/policy.js'
import type { AppEnv } from './middleware.js'

const { store, key } = testKeys([
  { name: 'alpha', scopes: ['billing:read'] },
  { name: 'beta', scopes: ['billing:read'] },
])

/** The app with one extra route that needs only a key; storage is never reached on these paths. */
function appWith(rateLimit?: ApiRateLimit) {
  const ping = new Hono<AppEnv>().get('/ping', (c) => c.json({ key: c.get('principal').name }))
  const unusedStorage = {} as ClickHouseClient
  return createApp({ client: unusedStorage, keys: () => store, policy: () => TEST_POLICY, rateLimit }, { routes: [ping] })
}

const as = (name: string | null): RequestInit => ({ headers: name ? { Authorization: name.startsWith('Bearer') ? name : `Bearer ${key(name)}` } : {} })

describe('per-key rate limits', () => {
  it('answers 429 rate_limited with Retry-After once a key has spent its burst, and leaves other keys alone', async () => {
    const app = appWith({ perSecond: 0.5, burst: 3, authFailuresPerMinute: 0 })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await app.request('/v1/ping', as('alpha'))).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    const limited = await app.request('/v1/ping', as('alpha'))
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    const body = (await limited.json()) as { error: { code: string; message: string; request_id: string } }
    expect(body.error.code).toBe('rate_limited')
    expect(body.error.message).toContain('alpha')
    expect(body.error.request_id).toBe(limited.headers.get('x-request-id'))
    expect((await app.request('/v1/ping', as('beta'))).status).toBe(200)
  })

  it('does not limit routes outside /v1', async () => {
    const app = appWith({ perSecond: 0.1, burst: 1, authFailuresPerMinute: 1 })
    for (let i = 0; i < 5; i++) expect((await app.request('/healthz')).status).toBe(200)
  })

  it('has no limit when the app is built without one (tests and benchmarks)', async () => {
    const app = appWith()
    for (let i = 0; i < 50; i++) expect((await app.request('/v1/ping', as('alpha'))).status).toBe(200)
  })
})

describe('failed authentication attempts per client', () => {
  it('refuses an address with 429 after too many refused keys, even when it then presents a valid key', async () => {
    const app = appWith({ perSecond: 0, burst: 1, authFailuresPerMinute: 3 })
    const statuses = []
    for (const header of ['Bearer wrong-1', 'Bearer wrong-2', null]) statuses.push((await app.request('/v1/ping', as(header))).status)
    expect(statuses).toEqual([401, 401, 401])
    const blocked = await app.request('/v1/ping', as('alpha'))
    expect(blocked.status).toBe(429)
    expect(blocked.headers.get('retry-after')).toBe('20')
    expect(((await blocked.json()) as { error: { code: string } }).error.code).toBe('rate_limited')
  })

  it('does not count successful requests as failures', async () => {
    const app = appWith({ perSecond: 0, burst: 1, authFailuresPerMinute: 1 })
    for (let i = 0; i < 10; i++) expect((await app.request('/v1/ping', as('alpha'))).status).toBe(200)
    expect((await app.request('/v1/ping', as('Bearer wrong'))).status).toBe(401)
    expect((await app.request('/v1/ping', as('alpha'))).status).toBe(429)
  })
})

describe('authentication refusals', () => {
  it('answers 401 with the envelope and a Bearer challenge, and 403 for a missing scope', async () => {
    const app = appWith()
    const refused = await app.request('/v1/ping', as('Bearer nope'))
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="nhi-meter"')
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('unauthenticated')
  })
})
