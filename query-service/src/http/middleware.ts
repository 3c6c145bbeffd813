/**
 * Request ids and API-key authentication for the query API.
 */
import type { MiddlewareHandler } from 'hono'
import { randomUUID } from 'node:crypto'
import { bearerKey, hasScope, type KeyStore, type Principal, type Scope } from '../auth/keys.js'
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

/** Requires a valid API key; the route's scope is checked by `requireScope`. */
export function authenticate(keys: () => KeyStore): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const bearer = bearerKey(c.req.header('authorization'))
    const challenge = { 'WWW-Authenticate': 'Bearer realm="nhi-meter"' }
    if ('problem' in bearer) throw new ApiError(401, 'unauthenticated', bearer.problem, challenge)
    const principal = keys().authenticate(bearer.key)
    if (!principal) throw new ApiError(401, 'unauthenticated', 'unknown API key', challenge)
    c.set('principal', principal)
    await next()
  }
}

/** Refuses the request unless the caller's key holds the scope. */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!hasScope(c.get('principal'), scope)) throw new ApiError(403, 'forbidden', `this key lacks the ${scope} scope`)
    await next()
  }
}
