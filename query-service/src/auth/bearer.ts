/**
 * Taking or refusing a bearer key, as the query API and the OTLP receiver
 * both do: one path, so the refused-key throttle holds for both.
 *
 * An address whose refused-key bucket is empty is refused before its key is
 * even looked at (429), so guessing keys gets slow; every refused key
 * (missing, malformed, unknown) takes a token from its address's bucket.
 */
import { bearerKey, type KeyStore, type Principal } from './keys.js'
import type { TokenBuckets } from './rate-limit.js'

/** The outcome: the key's principal, or why not (each caller words its own error envelope). */
export type BearerCheck =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401; message: string }
  | { ok: false; status: 429; message: string; retryAfterSeconds: number }

/**
 * Checks the Authorization header of a request from `client` (the TCP
 * peer's address) against `keys`, counting refusals in
 * `failedAuthPerClient` when given.
 */
export function checkBearer(keys: KeyStore, authorization: string | undefined, client: string, failedAuthPerClient?: TokenBuckets): BearerCheck {
  const blocked = failedAuthPerClient?.peek(client)
  if (blocked && !blocked.allowed) return { ok: false, status: 429, message: 'too many failed authentication attempts from this address', retryAfterSeconds: blocked.retryAfterSeconds }
  const refuse = (message: string): BearerCheck => {
    failedAuthPerClient?.take(client)
    return { ok: false, status: 401, message }
  }
  const bearer = bearerKey(authorization)
  if ('problem' in bearer) return refuse(bearer.problem)
  const principal = keys.authenticate(bearer.key)
  if (!principal) return refuse('unknown API key')
  return { ok: true, principal }
}
