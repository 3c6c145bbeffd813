/**
 * The built-in overview page at `/`: a static HTML page, its script and
 * stylesheet (query-service/static/overview) and uPlot's prebuilt ES module
 * and stylesheet straight from node_modules, so `npm ci && npm start` serves
 * it with no build step. The page needs no key to load; it asks the user for
 * one and reads the JSON API with it. Content-Security-Policy allows only
 * this origin's scripts, styles and API (no inline script or style).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { Hono } from 'hono'

/** The page's Content-Security-Policy: this origin only, no inline code, no framing. */
export const OVERVIEW_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

interface Asset {
  body: Uint8Array<ArrayBuffer>
  type: string
  etag: string
}

const STATIC_DIR = new URL('../../static/overview/', import.meta.url)

function asset(path: string, type: string): Asset {
  const body = new Uint8Array(readFileSync(path))
  return { body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"` }
}

let loaded: Map<string, Asset> | undefined

/** Reads the page and its assets, once per process (the first time routes are built, never at import). */
function loadAssets(): Map<string, Asset> {
  if (loaded) return loaded
  const require = createRequire(import.meta.url)
  const local = (name: string) => fileURLToPath(new URL(name, STATIC_DIR))
  loaded = new Map([
    ['/', asset(local('index.html'), 'text/html; charset=utf-8')],
    ['/assets/overview.js', asset(local('overview.js'), 'text/javascript; charset=utf-8')],
    ['/assets/overview.css', asset(local('overview.css'), 'text/css; charset=utf-8')],
    ['/assets/uplot.js', asset(require.resolve('uplot/dist/uPlot.esm.js'), 'text/javascript; charset=utf-8')],
    ['/assets/uplot.css', asset(require.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8')],
  ])
  return loaded
}

/**
 * Routes for the overview page and its assets; mount at the root, outside
 * the authenticated /v1 routes. Responses carry the CSP and revalidate by
 * ETag, so a new release is picked up on the next load.
 */
export function overviewRoutes(): Hono {
  const assets = loadAssets()
  const app = new Hono()
  for (const [path, { body, type, etag }] of assets) {
    app.get(path, (c) => {
      c.header('Content-Security-Policy', OVERVIEW_CSP)
      c.header('X-Content-Type-Options', 'nosniff')
      c.header('Referrer-Policy', 'no-referrer')
      c.header('X-Frame-Options', 'DENY')
      c.header('Cache-Control', 'no-cache')
      c.header('ETag', etag)
      if (c.req.header('if-none-match') === etag) return c.body(null, 304)
      c.header('Content-Type', type)
      return c.body(body)
    })
  }
  return app
}
