import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fingerprintCredential } from '../src/fingerprint.js'
import {
  apiKeyResolver,
  decodeJwtClaims,
  defaultResolvers,
  headerValue,
  identityFromJwtClaims,
  oauthClientResolver,
  resolveRequestIdentity,
  withRequestIdentity,
  type NhiIdentityResolver,
} from '../src/resolvers.js'
import { captureDiag, exportedStrings, startTestTracing, testTracer, type CapturedDiag, type TestTracing } from './helpers.js'

/** An unsigned-looking JWT with these claims (resolvers read claims; they never verify). */
function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk`
}

const partnerKey = 'sk_live_' + 'Q7w'.repeat(8)
const keyMap = { [fingerprintCredential(partnerKey)]: { id: 'partner-acme', owner: 'partners', businessUnit: 'sales' } }

describe('API-key resolver', () => {
  it('resolves a known key by its fingerprint and records only the fingerprint', () => {
    const identity = apiKeyResolver({ identities: keyMap })({ headers: { 'x-api-key': partnerKey } })
    expect(identity).toEqual({ id: 'partner-acme', type: 'api_key', owner: 'partners', businessUnit: 'sales', credentialId: fingerprintCredential(partnerKey) })
  })

  it('gives nothing for an unknown or missing key', () => {
    const resolve = apiKeyResolver({ identities: keyMap })
    expect(resolve({ headers: { 'x-api-key': 'sk_live_unknownunknownunknown' } })).toBeUndefined()
    expect(resolve({ headers: {} })).toBeUndefined()
  })

  it('reads a key behind an Authorization scheme, from fetch Headers too', () => {
    const resolve = apiKeyResolver({ identities: new Map(Object.entries(keyMap)), scheme: 'Bearer' })
    expect(resolve({ headers: new Headers({ Authorization: `Bearer ${partnerKey}` }) })?.id).toBe('partner-acme')
    expect(resolve({ headers: { authorization: `Basic ${partnerKey}` } })).toBeUndefined()
  })

  it('accepts a look-up function', () => {
    const resolve = apiKeyResolver({ identities: (fp) => (fp === fingerprintCredential(partnerKey) ? { id: 'from-db', type: 'integration' } : undefined) })
    expect(resolve({ headers: { 'x-api-key': partnerKey } })).toMatchObject({ id: 'from-db', type: 'integration' })
  })
})

describe('OAuth client resolver (unverified claims)', () => {
  const resolve = oauthClientResolver()

  it('takes the client from client_id, then azp, then sub', () => {
    expect(resolve({ headers: { authorization: `Bearer ${jwt({ client_id: 'svc-a', azp: 'other', sub: 'svc-a' })}` } })?.id).toBe('svc-a')
    expect(resolve({ headers: { authorization: `Bearer ${jwt({ azp: 'svc-b', sub: 'svc-b' })}` } })?.id).toBe('svc-b')
    expect(resolve({ headers: { authorization: `Bearer ${jwt({ sub: 'svc-c' })}` } })?.id).toBe('svc-c')
  })

  it('records a delegating user in sub as on_behalf_of', () => {
    const token = jwt({ client_id: 'mail-agent', sub: 'user-42' })
    const identity = resolve({ headers: { authorization: `Bearer ${token}` } })
    expect(identity).toMatchObject({ id: 'mail-agent', type: 'service_account', onBehalfOf: 'user-42', credentialId: fingerprintCredential(token) })
  })

  it('resolves Basic client credentials by client id and never keeps the secret', () => {
    const basic = Buffer.from('reporting-client:s3cr3t-value').toString('base64')
    const identity = resolve({ headers: { authorization: `Basic ${basic}` } })
    expect(identity).toMatchObject({ id: 'reporting-client', type: 'service_account' })
    expect(JSON.stringify(identity)).not.toContain('s3cr3t')
  })

  it('adds owner and business unit from a map by client id', () => {
    const withMap = oauthClientResolver({ identities: { 'svc-a': { owner: 'platform', businessUnit: 'infra', type: 'workload' } } })
    expect(withMap({ headers: { authorization: `Bearer ${jwt({ client_id: 'svc-a' })}` } })).toMatchObject({ owner: 'platform', businessUnit: 'infra', type: 'workload' })
  })

  it('ignores opaque bearer tokens and malformed JWTs', () => {
    expect(resolve({ headers: { authorization: 'Bearer opaque-token-value' } })).toBeUndefined()
    expect(resolve({ headers: { authorization: 'Bearer aaa.bbb.ccc' } })).toBeUndefined()
    expect(decodeJwtClaims(`x.${Buffer.from('[1,2]').toString('base64url')}.y`)).toBeUndefined()
  })

  it('turns verified claims into an identity with identityFromJwtClaims', () => {
    expect(identityFromJwtClaims({ azp: 'svc-z', sub: 'svc-z' }, { type: 'integration' })).toEqual({ id: 'svc-z', type: 'integration' })
  })
})

describe('resolver failures', () => {
  let diag: CapturedDiag
  let tracing: TestTracing
  beforeEach(() => {
    diag = captureDiag()
    tracing = startTestTracing()
  })
  afterEach(async () => {
    diag.stop()
    await tracing.stop()
  })

  it('a resolver that throws is reported through diag, skipped, and the handler still runs', () => {
    const broken: NhiIdentityResolver = function brokenResolver() {
      throw new Error('lookup table missing')
    }
    const resolvers = [broken, apiKeyResolver({ identities: keyMap })]
    const result = withRequestIdentity(
      { headers: { 'x-api-key': partnerKey } },
      () => {
        testTracer().startSpan('handled').end()
        return 'ok'
      },
      { resolvers },
    )
    expect(result).toBe('ok')
    expect(tracing.span('handled').attributes['nhi.id']).toBe('partner-acme')
    expect(diag.errors.join('\n')).toMatch(/brokenResolver.*lookup table missing/s)
  })

  it('a resolver that returns a promise is reported and skipped', () => {
    const asyncResolver = (() => Promise.resolve({ id: 'late' })) as unknown as NhiIdentityResolver
    expect(resolveRequestIdentity({ headers: {} }, [asyncResolver])).toBeUndefined()
    expect(diag.errors.join('\n')).toContain('synchronously')
  })

  it('headers that throw on access do not break the request', () => {
    const hostile = { get headers(): never { throw new Error('boom') } }
    expect(withRequestIdentity(hostile, () => 'still served')).toBe('still served')
    expect(diag.errors.length).toBeGreaterThan(0)
  })

  it('the presented credentials never appear on an exported span', () => {
    const token = jwt({ client_id: 'svc-a', sub: 'user-1' })
    const resolvers = [apiKeyResolver({ identities: keyMap }), oauthClientResolver()]
    withRequestIdentity({ headers: { 'x-api-key': partnerKey } }, () => testTracer().startSpan('by-key').end(), { resolvers })
    withRequestIdentity({ headers: { authorization: `Bearer ${token}` } }, () => testTracer().startSpan('by-jwt').end(), { resolvers })
    const strings = tracing.spans().flatMap(exportedStrings).join('\n')
    expect(strings).toContain('partner-acme')
    expect(strings).toContain('svc-a')
    expect(strings).not.toContain(partnerKey)
    expect(strings).not.toContain(token)
  })
})

describe('default resolvers', () => {
  it('read an API-key identities file named by NHI_API_KEY_IDENTITIES_FILE, then OAuth claims', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nhi-keys-'))
    const file = join(dir, 'keys.json')
    writeFileSync(file, JSON.stringify({ [fingerprintCredential(partnerKey)]: { id: 'partner-acme', business_unit: 'sales' } }))
    const resolvers = defaultResolvers({ NHI_API_KEY_IDENTITIES_FILE: file, NHI_API_KEY_HEADER: 'x-partner-key' })
    expect(resolveRequestIdentity({ headers: { 'x-partner-key': partnerKey } }, resolvers)?.identity).toMatchObject({ id: 'partner-acme', businessUnit: 'sales' })
    expect(resolveRequestIdentity({ headers: { authorization: `Bearer ${jwt({ client_id: 'svc-q' })}` } }, resolvers)?.identity.id).toBe('svc-q')
  })

  it('report an unreadable identities file and keep the OAuth resolver', () => {
    const diag = captureDiag()
    const resolvers = defaultResolvers({ NHI_API_KEY_IDENTITIES_FILE: '/nonexistent/keys.json' })
    diag.stop()
    expect(resolvers).toHaveLength(1)
    expect(diag.errors.join('\n')).toContain('NHI_API_KEY_IDENTITIES_FILE')
  })
})

describe('headerValue', () => {
  it('reads Node, fetch and plain header shapes, taking the first of repeated values', () => {
    expect(headerValue({ headers: { 'x-a': ['1', '2'] } }, 'X-A')).toBe('1')
    expect(headerValue({ headers: new Headers({ 'X-A': '3' }) }, 'x-a')).toBe('3')
    expect(headerValue({ headers: {} }, 'x-a')).toBeUndefined()
  })
})
