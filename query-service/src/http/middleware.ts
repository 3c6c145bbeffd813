/**
 * Request ids, API-key authentication and per-key rate limits for the query API.
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { IncomingMessage } from 'node:http'
import { randomUUID } from 'node:crypto'
import { checkBearer } from '../auth/bearer.js'
import { hasScope, type KeyStore, type Principal, type Scope } from '../auth/keys.js'
import type { TokenBuckets } from '../auth/rate-limit.js'
import { NOOP_METRICS, type ServiceMetrics } from '../metrics/instruments.js'
import { ApiError } from './errors.js'

/** Variables the middleware puts on the context. */
export interface AppVariables {
  requestId: string
  principal: Principal
}

/** Hono environment of the app. */
export interface AppEnv {
  Variables: AppVariables
}

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

/** Takes a well-formed X-Request-Id from the client or makes one, and echoes it on the response. */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const given = c.req.header('x-request-id')
    const id = given && CLIENT_REQUEST_ID.test(given) ? given : randomUUID()
    c.set('requestId', id)
    c.header('X-Request-Id', id)
    await next()
  }
}

/** Rate limits applied while authenticating; either may be absent (no limit). */
export interface AuthLimits {
  /** One bucket per key name: every authenticated request takes a token. */
  perKey?: TokenBuckets
  /**
   * One bucket per client address: every refused key (missing, malformed,
   * unknown) takes a token, and an address whose bucket is empty is refused
   * before its key is even looked at, so guessing keys gets slow.
   */
  failedAuthPerClient?: TokenBuckets
}

/** 429 with Retry-After and the envelope's `rate_limited` code. */
function rateLimited(retryAfterSeconds: number, message: string): ApiError {
  return new ApiError('rate_limited', `${message}; retry in ${retryAfterSeconds} s`, { 'Retry-After': String(retryAfterSeconds) })
}

/**
 * The TCP peer's address (never a forwarded-for header, which the client
 * writes itself); requests that come in without a socket (app.request in
 * tests) share one bucket.
 */
export function clientAddress(c: Context): string {
  const env = c.env as { incoming?: IncomingMessage; server?: { incoming?: IncomingMessage } } | undefined
  return (env?.server?.incoming ?? env?.incoming)?.socket?.remoteAddress ?? 'unknown'
}

/** Requires a valid API key, within its rate limits; the route's scope is checked by `requireScope`. Refusals are counted in `metrics`. */
export function authenticate(keys: () => KeyStore, limits: AuthLimits = {}, metrics: ServiceMetrics = NOOP_METRICS): MiddlewareHandler<AppEnv> {
  const challenge = { 'WWW-Authenticate': 'Bearer realm="nhi-meter"' }
  return async (c, next) => {
    const client = limits.failedAuthPerClient ? clientAddress(c) : ''
    const check = checkBearer(keys(), c.req.header('authorization'), client, limits.failedAuthPerClient)
    if (!check.ok) {
      if (check.status === 429) {
        metrics.auth.rateLimited('api', 'refused_keys')
        throw rateLimited(check.retryAfterSeconds, check.message)
      }
      metrics.auth.refusedKey('api')
      throw new ApiError('unauthenticated', check.message, challenge)
    }
    const principal = check.principal
    if (limits.perKey) {
      const decision = limits.perKey.take(principal.name)
      if (!decision.allowed) {
        metrics.auth.rateLimited('api', 'per_key')
        throw rateLimited(decision.retryAfterSeconds, `rate limit of key ${JSON.stringify(principal.name)} exceeded`)
      }
    }
    c.set('principal', principal)
    await next()
  }
}

/** Refuses the request unless the caller's key holds the scope. */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return requireAnyScope(scope)
}

/** Refuses the request unless the caller's key holds at least one of the scopes. */
export function requireAnyScope(...scopes: Scope[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get('principal')
    if (!scopes.some((scope) => hasScope(principal, scope))) throw new ApiError('forbidden', `this key lacks the ${scopes.join(' or ')} scope`)
    await next()
  }
}
