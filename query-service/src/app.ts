/**
 * The query API as a Hono app. `createApp(deps)` wires routes, auth, request
 * ids and the error envelope; it does no I/O at import and opens nothing, so
 * tests call `app.request(...)` on a real app with real storage.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { KeyStore } from './auth/keys.js'
import { TokenBuckets } from './auth/rate-limit.js'
import { pricingOf, type Pricing } from './billing/pricing.js'
import { billingRoutes } from './billing/routes.js'
import { evidenceRoutes } from './billing/evidence.js'
import type { Statement } from './billing/statement.js'
import { statementRoutes } from './billing/statement-routes.js'
import type { Policy } from './policy/index.js'
import { ApiError, errorBody } from './http/errors.js'
import { statusOf } from './http/error-codes.js'
import { isDiskFull, storageRefusal } from './storage/disk-space.js'
import { duringRequest } from './storage/client.js'
import { authenticate, requestId, type AppEnv } from './http/middleware.js'
import { requestMetrics } from './http/request-metrics.js'
import { NOOP_METRICS, type ServiceMetrics } from './metrics/instruments.js'
import { openApiDocument } from './openapi.js'
import { overviewRoutes } from './overview/routes.js'
import { identitiesRoutes } from './identities/routes.js'
import { entitlementsRoutes } from './entitlements/routes.js'
import { findingsRoutes } from './findings/routes.js'
import { telemetryRoutes } from './telemetry/routes.js'
import { isStorageUnavailable } from './storage/availability.js'

/** Everything the app needs from the outside. */
export interface AppDeps {
  client: ClickHouseClient
  /** Current API keys (a function so a reload can swap them). */
  keys: () => KeyStore
  /** Current validated policy (a function so a reload can swap it). */
  policy: () => Policy
  /** Where unexpected errors are reported, with the request id. */
  logError?: (requestId: string, error: unknown) => void
  /** Largest request body the API accepts, in bytes. */
  maxBodyBytes?: number
  /** See BillingDeps.rollupGraceSeconds. */
  rollupGraceSeconds?: number
  /** Rate limits of /v1 (absent: none, as in tests and benchmarks that build the app themselves). */
  rateLimit?: ApiRateLimit
  /** Told of each month closed through this app (webhooks/job.ts queues statement.closed). */
  onStatementClosed?: (statement: Statement & { content_hash: string }) => Promise<void>
  /** Where requests, refused keys and storage failures are counted (default: nowhere). */
  metrics?: ServiceMetrics
}

/** The query API's rate limits; a rate of 0 turns that limit off. */
export interface ApiRateLimit {
  /** Requests per second each API key may make, sustained. */
  perSecond: number
  /** Requests each API key may make at once. */
  burst: number
  /** Refused keys per minute per client address before that address is refused outright. */
  authFailuresPerMinute: number
}

/** Domain routes mounted under /v1 besides billing (tests pass their own). */
export interface AppOptions {
  routes?: Array<Hono<AppEnv>>
}

/** Builds the query API. */
export function createApp(deps: AppDeps, options: AppOptions = {}): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  let pricingFor: { policy: Policy; pricing: Pricing } | undefined
  const pricing = (): Pricing => {
    const policy = deps.policy()
    if (pricingFor?.policy !== policy) pricingFor = { policy, pricing: pricingOf(policy) }
    return pricingFor.pricing
  }
  const maxBodyBytes = deps.maxBodyBytes ?? 10 * 1024 * 1024
  const metrics = deps.metrics ?? NOOP_METRICS
  // First, so it sees every answer, error envelopes and 404s included.
  app.use('*', requestMetrics(metrics))
  app.use('*', requestId())
  app.use('*', async (c, next) => {
    const declared = Number(c.req.header('content-length'))
    if (Number.isFinite(declared) && declared > maxBodyBytes) throw new ApiError('payload_too_large', `request body over ${maxBodyBytes} bytes`)
    await next()
  })

  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', async (c) => {
    const ping = await deps.client.ping()
    if (!ping.success) throw new ApiError('storage_unavailable', 'storage is not reachable', { 'Retry-After': '5' })
    return c.json({ status: 'ready' })
  })
  app.get('/openapi.json', (c) => c.json(openApiDocument()))
  // The overview page itself needs no key; it asks the user for one and calls /v1 with it.
  app.route('/', overviewRoutes())

  const limits = deps.rateLimit
  app.use(
    '/v1/*',
    authenticate(deps.keys, {
      perKey: limits && limits.perSecond > 0 ? new TokenBuckets({ perSecond: limits.perSecond, burst: limits.burst }) : undefined,
      failedAuthPerClient: limits ? failedAuthBuckets(limits.authFailuresPerMinute) : undefined,
    }, metrics),
  )
  // A request's statements go before the background jobs' on the embedded engine (storage/request-first.ts).
  app.use('/v1/*', (c, next) => duringRequest(deps.client, next))
  app.route('/v1', billingRoutes({ client: deps.client, pricing, rollupGraceSeconds: deps.rollupGraceSeconds }))
  app.route('/v1', evidenceRoutes({ client: deps.client, pricing }))
  app.route('/v1', statementRoutes({ client: deps.client, pricing, onClosed: deps.onStatementClosed }))
  app.route('/v1', identitiesRoutes({ client: deps.client, policy: deps.policy }))
  app.route('/v1', entitlementsRoutes({ client: deps.client, policy: deps.policy }))
  app.route('/v1', findingsRoutes({ client: deps.client, policy: deps.policy, rollupGraceSeconds: deps.rollupGraceSeconds }))
  app.route('/v1', telemetryRoutes({ client: deps.client, policy: deps.policy, rollupGraceSeconds: deps.rollupGraceSeconds }))
  for (const routes of options.routes ?? []) app.route('/v1', routes)

  const allowed = allowedMethods(app)
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname
    const methods = allowed(path)
    if (methods.length > 0) {
      c.header('Allow', methods.join(', '))
      return c.json(errorBody('method_not_allowed', `${c.req.method.slice(0, 20)} is not allowed on ${path.slice(0, 200)}; use ${methods.join(' or ')}`, c.get('requestId')), statusOf('method_not_allowed'))
    }
    return c.json(errorBody('not_found', `no route for ${c.req.method.slice(0, 20)} ${path.slice(0, 200)}`, c.get('requestId')), statusOf('not_found'))
  })
  app.onError((error, c) => {
    const id = c.get('requestId') ?? 'unknown'
    if (error instanceof ApiError) {
      for (const [name, value] of Object.entries(error.headers)) c.header(name, value)
      return c.json(errorBody(error.code, error.message, id), error.status)
    }
    if (error instanceof HTTPException) {
      return c.json(errorBody('http_error', error.message || 'request refused', id), error.status)
    }
    if (isDiskFull(error) || isStorageUnavailable(error)) {
      metrics.storage.failed('api', error)
      deps.logError?.(id, error)
      const refusal = storageRefusal(isDiskFull(error))
      c.header('Retry-After', String(refusal.retryAfterSeconds))
      return c.json(errorBody(refusal.code, refusal.message, id), refusal.status)
    }
    deps.logError?.(id, error)
    return c.json(errorBody('internal', 'internal error', id), statusOf('internal'))
  })
  return app
}

/**
 * The methods the app serves on a path (empty when no route has it), from
 * its registered routes, so a request with another method gets 405 and an
 * Allow header rather than 404. Call once all routes are registered.
 */
function allowedMethods(app: Hono<AppEnv>): (path: string) => string[] {
  const routes = app.routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(`^${r.path.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}/?$`),
    }))
  return (path) => {
    const methods = new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))
    if (methods.has('GET')) methods.add('HEAD')
    return [...methods].sort()
  }
}

/** Buckets for refused keys per client address, `perMinute` of them (0: no limit); the query API and the receiver each hold one. */
export function failedAuthBuckets(perMinute: number): TokenBuckets | undefined {
  return perMinute > 0 ? new TokenBuckets({ perSecond: perMinute / 60, burst: Math.max(1, Math.floor(perMinute)) }) : undefined
}
