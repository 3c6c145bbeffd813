import { createHmac } from 'node:crypto'
import { warnOnce } from './report.js'

/** Prefix that makes a credential fingerprint recognisable in storage and logs. */
export const FINGERPRINT_PREFIX = 'fp_'

/** Hex characters kept from the HMAC: 16 hex = 64 bits, enough to tell credentials apart, too few to be useful to an attacker. */
export const FINGERPRINT_HEX_LENGTH = 16

/** Environment variable holding the fingerprint key shared by every service of a deployment. */
export const FINGERPRINT_KEY_ENV = 'NHI_CREDENTIAL_FINGERPRINT_KEY'

/**
 * Key used when none is configured. It is public, so fingerprints made with it
 * still correlate across services but are only as hard to reverse as the
 * credential is to guess; a warning says so once.
 */
const PUBLIC_DEFAULT_KEY = 'nhi-meter/public-default-fingerprint-key'

/**
 * Returns the fingerprint key: the explicit one, else `NHI_CREDENTIAL_FINGERPRINT_KEY`,
 * else the public default (with a one-time `diag` warning unless `warn` is false).
 */
export function resolveFingerprintKey(explicit?: string, env: NodeJS.ProcessEnv = process.env, warn = true): string {
  if (explicit) return explicit
  const fromEnv = env[FINGERPRINT_KEY_ENV]
  if (fromEnv) return fromEnv
  if (warn) warnDefaultFingerprintKey()
  return PUBLIC_DEFAULT_KEY
}

/** True when no fingerprint key is configured, so the public default is in use. */
export function usesDefaultFingerprintKey(explicit?: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return resolveFingerprintKey(explicit, env, false) === PUBLIC_DEFAULT_KEY
}

/** Warns once that fingerprints are made with the public default key. */
export function warnDefaultFingerprintKey(): void {
  warnOnce(
    'fingerprint-key',
    `${FINGERPRINT_KEY_ENV} is not set: credential fingerprints use the public default key. ` +
      'Set the same secret key on every service so fingerprints correlate and cannot be brute-forced.',
  )
}

/**
 * The non-secret fingerprint of a credential, for `nhi.credential.id`:
 * `fp_` followed by the first 16 hex characters of HMAC-SHA256(key, credential).
 * The same credential and key always give the same fingerprint, so every
 * service of a deployment must use the same key for fingerprints to correlate.
 */
export function fingerprintCredential(credential: string, key?: string): string {
  const hmac = createHmac('sha256', resolveFingerprintKey(key)).update(credential, 'utf8').digest('hex')
  return FINGERPRINT_PREFIX + hmac.slice(0, FINGERPRINT_HEX_LENGTH)
}

const FINGERPRINT_SHAPE = new RegExp(`^${FINGERPRINT_PREFIX}[0-9a-f]{${FINGERPRINT_HEX_LENGTH}}$`)

/** True when a value has the shape of a fingerprint made by {@link fingerprintCredential}. */
export function isFingerprint(value: string): boolean {
  return FINGERPRINT_SHAPE.test(value)
}
