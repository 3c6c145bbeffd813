/**
 * Counts and times every query API request for the service's metrics
 * (`http.server.request.duration`), labelled with the route template that
 * matched (`/v1/identities/:id/activity`), never the raw path, so a client
 * cannot create series by varying a URL.
 */
import type { Context, MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import type { ServiceMetrics } from '../metrics/instruments.js'
import type { AppEnv } from './middleware.js'

/** The template of the route that answers the request; undefined when only middleware matched (a 404 or 405). */
export function routeTemplate(c: Context): string | undefined {
  // Middleware registered with app.use matches every method ('ALL'); the handlers are registered per method.
  const handlers = matchedRoutes(c).filter((route) => route.method !== 'ALL')
  return handlers.at(-1)?.path
}

/** Records each request once its response (an error envelope included) is decided. */
export function requestMetrics(metrics: ServiceMetrics): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now()
    try {
      await next()
    } finally {
      metrics.http.request(c.req.method, routeTemplate(c), c.res.status, (performance.now() - started) / 1000)
    }
  }
}
