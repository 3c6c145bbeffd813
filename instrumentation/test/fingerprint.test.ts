import { afterEach, describe, expect, it, vi } from 'vitest'
import { fingerprintCredential, isFingerprint, resolveFingerprintKey } from '../src/fingerprint.js'
import { looksLikeSecret } from '../src/redaction.js'
import { captureDiag } from './helpers.js'

afterEach(() => {
  vi.unstubAllEnvs()
})

describe('credential fingerprint', () => {
  it('is fp_ and 16 hex characters, stable for one credential and key', () => {
    const fp = fingerprintCredential('sk_live_abcdefghijklmnopqrstuvwx', 'k1')
    expect(fp).toMatch(/^fp_[0-9a-f]{16}$/)
    expect(fingerprintCredential('sk_live_abcdefghijklmnopqrstuvwx', 'k1')).toBe(fp)
    expect(isFingerprint(fp)).toBe(true)
  })

  it('differs between credentials and between keys', () => {
    expect(fingerprintCredential('a', 'k1')).not.toBe(fingerprintCredential('b', 'k1'))
    expect(fingerprintCredential('a', 'k1')).not.toBe(fingerprintCredential('a', 'k2'))
  })

  it('uses NHI_CREDENTIAL_FINGERPRINT_KEY when no key is passed', () => {
    vi.stubEnv('NHI_CREDENTIAL_FINGERPRINT_KEY', 'shared-deployment-key')
    expect(fingerprintCredential('a')).toBe(fingerprintCredential('a', 'shared-deployment-key'))
  })

  it('warns once through diag when the public default key is in use', () => {
    vi.stubEnv('NHI_CREDENTIAL_FINGERPRINT_KEY', '')
    const diag = captureDiag()
    resolveFingerprintKey(undefined)
    resolveFingerprintKey(undefined)
    diag.stop()
    expect(diag.warnings.filter((w) => w.includes('NHI_CREDENTIAL_FINGERPRINT_KEY'))).toHaveLength(1)
  })

  it('never itself looks like a secret, so redaction leaves it alone', () => {
    for (let i = 0; i < 2000; i++) {
      expect(looksLikeSecret(fingerprintCredential(`credential-${i}`, `key-${i % 7}`))).toBe(false)
    }
  })

  it('does not contain the credential', () => {
    const credential = 'ghp_0123456789abcdefghijABCDEFGHIJ0123'
    expect(fingerprintCredential(credential)).not.toContain(credential.slice(4, 12))
  })
})
