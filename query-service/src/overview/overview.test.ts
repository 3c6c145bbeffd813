import { describe, expect, it } from 'vitest'
import { OVERVIEW_CSP, overviewRoutes } from './routes.js'

const app = overviewRoutes()

describe('overview routes', () => {
  it('serve the page without a key, under a Content-Security-Policy that allows no inline code', async () => {
    const response = await app.request('/')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    const csp = response.headers.get('content-security-policy')!
    expect(csp).toBe(OVERVIEW_CSP)
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/)
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    expect(response.headers.get('referrer-policy')).toBe('no-referrer')

    const html = await response.text()
    // Every script is an external file of this origin; no inline script, handler or style attribute.
    expect([...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1])).toEqual([' type="module" src="/assets/overview.js"'])
    expect(html).not.toMatch(/\son[a-z]+=|\sstyle=|javascript:|<style/i)
  })

  it('serve the script, the stylesheet and uPlot from node_modules with their types', async () => {
    for (const [path, type] of [
      ['/assets/overview.js', /^text\/javascript/],
      ['/assets/overview.css', /^text\/css/],
      ['/assets/uplot.js', /^text\/javascript/],
      ['/assets/uplot.css', /^text\/css/],
    ] as const) {
      const response = await app.request(path)
      expect(response.status, path).toBe(200)
      expect(response.headers.get('content-type'), path).toMatch(type)
      expect((await response.text()).length, path).toBeGreaterThan(100)
    }
    expect(await (await app.request('/assets/uplot.js')).text()).toContain('export { uPlot as default }')
  })

  it('keep the key out of URLs: the script sends it only as a bearer header from sessionStorage', async () => {
    const script = await (await app.request('/assets/overview.js')).text()
    expect(script).toContain('sessionStorage')
    expect(script).toContain('Authorization: `Bearer ${key}`')
    expect(script).not.toMatch(/localStorage|document\.cookie|innerHTML|eval\(/)
    expect(script).toMatch(/import uPlot from '\/assets\/uplot\.js'/)
  })

  it('answer a revalidation with 304 and nothing else', async () => {
    const first = await app.request('/assets/overview.css')
    const etag = first.headers.get('etag')!
    const again = await app.request('/assets/overview.css', { headers: { 'If-None-Match': etag } })
    expect(again.status).toBe(304)
    expect(await again.text()).toBe('')
    expect((await app.request('/assets/nothing.js')).status).toBe(404)
  })
})
