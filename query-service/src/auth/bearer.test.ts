import { describe, expect, it } from 'vitest'
import { checkBearer } from './bearer.js'
import { KeyStore, sha256 } from './keys.js'
import { TokenBuckets } from './rate-limit.js'

const KEY = 'nhim_bearer_test_key_0123456789abcdef'
const keys = KeyStore.fromEntries([{ name: 'ingest', sha256: sha256(KEY).toString('hex'), scopes: ['ingest:write'] }])

describe('checkBearer (the one key check of the API and the receiver)', () => {
  it('takes a known key and names why it refuses the others', () => {
    expect(checkBearer(keys, `Bearer ${KEY}`, '10.0.0.1')).toMatchObject({ ok: true, principal: { name: 'ingest' } })
    expect(checkBearer(keys, undefined, '10.0.0.1')).toMatchObject({ ok: false, status: 401 })
    expect(checkBearer(keys, 'Basic abc', '10.0.0.1')).toMatchObject({ ok: false, status: 401 })
    expect(checkBearer(keys, 'Bearer nhim_unknown_key_0123456789abcdefgh', '10.0.0.1')).toEqual({ ok: false, status: 401, message: 'unknown API key' })
  })

  it('refuses an address that used up its refused-key allowance even with a right key, and leaves other addresses alone', () => {
    let now = 0
    const buckets = new TokenBuckets({ perSecond: 1 / 60, burst: 2, now: () => now })
    for (let i = 0; i < 2; i++) expect(checkBearer(keys, 'Bearer wrong', '10.0.0.9', buckets)).toMatchObject({ status: 401 })
    const blocked = checkBearer(keys, `Bearer ${KEY}`, '10.0.0.9', buckets)
    expect(blocked).toMatchObject({ ok: false, status: 429 })
    expect(blocked.ok === false && blocked.status === 429 && blocked.retryAfterSeconds).toBeGreaterThan(0)
    expect(checkBearer(keys, `Bearer ${KEY}`, '10.0.0.10', buckets)).toMatchObject({ ok: true })
    // A token back after a minute: the right key is taken again.
    now += 61_000
    expect(checkBearer(keys, `Bearer ${KEY}`, '10.0.0.9', buckets)).toMatchObject({ ok: true })
  })
})
