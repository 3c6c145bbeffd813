/**
 * The overview page in a real browser: headless Chromium (Debian's
 * `chromium`, driven by playwright-core) opens `/` of a query service on
 * the demo data (plus a few model calls with token counts, under a policy
 * that also bills tokens and active agents), enters a key, and the test
 * checks that the chart and the tables show the totals GET /v1/billable
 * gives. A screenshot is saved to
 * test-artifacts/overview.png.
 *
 * Without Chromium the test is skipped locally (apt-get install -y chromium)
 * and fails under CI=true.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { serve, type ServerType } from '@hono/node-server'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../query-service/src/app.js'
import { validatePolicy, type Policy } from '../query-service/src/policy/index.js'
import { testKeys } from '../query-service/src/test-support/keys.js'
import { insertSpans, spanRow } from '../query-service/src/test-support/spans.js'
import { freshStorage } from '../query-service/src/test-support/storage.js'
import { loadDemoData } from './dashboards-demo-data.js'
import { REPO_ROOT } from './helpers/service.js'

const CHROMIUM = '/usr/bin/chromium'
const ci = process.env.CI === 'true'
const hasChromium = existsSync(CHROMIUM)
if (!hasChromium && !ci) console.warn(`test/overview.test.ts: skipped, Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`)

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts')
const SCREENSHOT = join(ARTIFACTS, 'overview.png')
const { store, key } = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'billing-only', scopes: ['billing:read'] },
])

interface Billable {
  currency: string
  rows: Array<Record<string, string | number>>
  total: { quantity: number; amount: string }
  completeness: { identified_ratio: number; status: string }
  meters: Array<{ meter: string; aggregation: string; value?: string; quantity: number | string; events_without_value?: number; amount: string }>
}

/** The shipped default's meters, plus model calls, their input tokens and active agents. */
const POLICY_INPUT = {
  rate_cards: [
    {
      version: 'overview',
      effective_from: '2026-01-01T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' },
        { name: 'workflow_runs', activity_type: 'workflow_execution', unit_price: '0.01' },
        { name: 'api_calls', activity_type: 'api_call', status: 'any', unit_price: '0.0001' },
        { name: 'token_exchanges', activity_type: 'token_exchange', unit_price: '0.0005' },
        { name: 'model_calls', activity_type: 'model_call', unit_price: '0.001' },
        { name: 'input_tokens', activity_type: 'model_call', aggregation: 'sum', value: 'gen_ai.usage.input_tokens', tiers: [{ up_to: '1000', unit_price: '0.00001' }, { unit_price: '0.000005' }] },
        { name: 'active_agents', activity_type: 'model_call', aggregation: 'active_identities', min_events: 2, unit_price: '5.00' },
      ],
    },
  ],
}

let client: ClickHouseClient
let server: ServerType
let base: string
let policy: Policy

beforeAll(async () => {
  if (!hasChromium) return
  client = await freshStorage()
  policy = validatePolicy(POLICY_INPUT).policy
  await loadDemoData(client)
  // Model calls with token counts (one without), from two agents: the meters table shows sums and active agents.
  const now = Date.now()
  await insertSpans(
    client,
    [700, 900, undefined, 1200].map((tokens, i) =>
      spanRow({
        start: new Date(now - (i + 1) * 60_000).toISOString(),
        service: 'support-agents',
        attributes: {
          'nhi.id': i < 3 ? 'agent-research' : 'agent-support-triage',
          'nhi.business_unit': 'customer-support',
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': 'gpt-4o',
          ...(tokens === undefined ? {} : { 'gen_ai.usage.input_tokens': String(tokens) }),
        },
      }),
    ),
  )
  // As the service serves it: the app serves the page at the root and the API under /v1.
  const api = createApp({ client, keys: () => store, policy: () => policy })
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: api.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
  })
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  await client?.close()
})

async function billable(group: string): Promise<Billable> {
  const to = new Date(Date.now() + 60_000).toISOString()
  const from = new Date(Date.now() - 7 * 86_400_000).toISOString()
  const response = await fetch(`${base}/v1/billable?from=${from}&to=${to}&group_by=${group}`, { headers: { Authorization: `Bearer ${key('admin')}` } })
  expect(response.status).toBe(200)
  return (await response.json()) as Billable
}

describe('overview page in headless Chromium (needs Chromium)', () => {
  it.skipIf(!ci && !hasChromium)('renders the chart and tables with the API totals from the key the user enters', async () => {
    expect(hasChromium, `Chromium is required for this test: apt-get install -y chromium (looked for ${CHROMIUM})`).toBe(true)
    const { chromium } = await import('playwright-core')
    const profile = mkdtempSync(join(tmpdir(), 'nhi-meter-chromium-'))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    const problems: string[] = []
    try {
      const page = context.pages()[0] ?? (await context.newPage())
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`)
      })
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
      const requested: string[] = []
      page.on('request', (request) => requested.push(request.url()))

      await page.goto(`${base}/`)
      await expect.poll(() => page.locator('#key-section').isVisible()).toBe(true)
      expect(await page.locator('#overview').isVisible()).toBe(false)

      // An unknown key is refused with a message, and the form stays.
      await page.fill('#api-key', key('billing-only').replace('billing-only', 'unknown'))
      await page.click('#key-form button[type=submit]')
      await expect.poll(() => page.locator('#key-problem').textContent()).toContain('did not accept')

      await page.fill('#api-key', key('admin'))
      await page.click('#key-form button[type=submit]')
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 })

      const [byIdentity, byUnit, byIdentityMeter] = await Promise.all([billable('nhi.id'), billable('business_unit,meter'), billable('nhi.id,meter')])
      expect(byIdentity.total.quantity).toBeGreaterThan(50)
      const text = (selector: string) => page.locator(selector).innerText()
      // Events are what the count meters count; tokens and active agents are other quantities.
      const counted = new Set(byIdentity.meters.filter((m) => m.aggregation === 'count').map((m) => m.meter))
      const eventsOf = (rows: Billable['rows']) => rows.reduce((n, r) => n + (counted.has(String(r.meter)) ? Number(r.quantity) : 0), 0)
      expect(byIdentity.meters.map((m) => m.meter)).toEqual(expect.arrayContaining(['input_tokens', 'active_agents']))

      // Totals cards.
      expect(await text('#total-events')).toBe(eventsOf(byIdentityMeter.rows).toLocaleString('en-US'))
      expect(await text('#total-amount')).toBe(`${byIdentity.total.amount} USD`)
      expect(await text('#completeness')).toContain(byIdentity.completeness.status)
      expect(await text('#identities-billed')).toBe(String(byIdentity.rows.length))

      // Activity over time: a uPlot canvas with one series per business unit, and the per-unit totals.
      const canvas = await page.locator('#activity-chart canvas').boundingBox()
      expect(canvas!.width).toBeGreaterThan(300)
      expect(canvas!.height).toBeGreaterThan(100)
      const units = [...new Set(byUnit.rows.map((r) => String(r.business_unit)))].sort()
      const legend = await page.locator('#activity-chart .u-legend .u-series th').allInnerTexts()
      for (const unit of units) expect(legend.join('|')).toContain(unit)
      const unitRows = await page.locator('#activity-table tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)))
      const amountOf = (rows: Billable['rows']) => rows.reduce((sum, r) => sum + BigInt(String(r.amount).replace('.', '').padEnd(0)) * 10n ** BigInt(9 - (String(r.amount).split('.')[1]?.length ?? 0)), 0n)
      const money = (nanos: bigint) => `${nanos / 1_000_000_000n}.${(nanos % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '').padEnd(2, '0')}`
      expect(unitRows).toEqual(
        units.map((u) => {
          const rows = byUnit.rows.filter((r) => r.business_unit === u)
          return [u, eventsOf(rows).toLocaleString('en-US'), `${money(amountOf(rows))} USD`]
        }),
      )
      expect(await text('#activity-table tfoot')).toContain(`${byIdentity.total.amount} USD`)

      // Top identities by cost, most expensive first, with the grand total.
      const identities = await page.locator('#identities-table tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 3).map((td) => td.textContent)))
      const perIdentity = byIdentity.rows.map((r) => {
        const rows = byIdentityMeter.rows.filter((x) => x['nhi.id'] === r['nhi.id'])
        return { id: String(r['nhi.id']), events: eventsOf(rows), amount: String(r.amount) }
      })
      const expensive = perIdentity.sort((a, b) => Number(b.amount) - Number(a.amount) || b.events - a.events || a.id.localeCompare(b.id))
      expect(identities).toEqual(expensive.slice(0, 10).map((r) => [r.id, r.events.toLocaleString('en-US'), `${r.amount} USD`]))
      expect(await text('#identities-table tfoot')).toContain(`${byIdentity.total.amount} USD`)

      // Every meter with its quantity, events without a value (sum meters) and amount.
      const meterRows = await page.locator('#meters-table tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)))
      expect(meterRows).toEqual(
        byIdentity.meters.map((m) => [
          m.meter,
          m.aggregation === 'sum' ? `sum of ${m.value}` : m.aggregation === 'active_identities' ? 'active identities' : 'events',
          Number(m.quantity).toLocaleString('en-US'),
          m.aggregation === 'sum' ? String(m.events_without_value) : '–',
          `${m.amount} USD`,
        ]),
      )
      expect(meterRows.find((r) => r[0] === 'input_tokens')).toEqual(['input_tokens', 'sum of gen_ai.usage.input_tokens', '2,800', '1', expect.stringMatching(/ USD$/)])
      expect(meterRows.find((r) => r[0] === 'active_agents')?.[2]).toBe('1')

      // Findings and per-service completeness from their routes.
      expect(await page.locator('#findings-table tbody tr').count()).toBeGreaterThan(0)
      expect(await text('#findings-note')).toMatch(/^\d+ findings?: /)
      expect(await text('#findings-table tbody')).toContain('credential_reuse')
      const services = await page.locator('#services-table tbody tr').allInnerTexts()
      expect(services.find((s) => s.startsWith('legacy-reports'))).toMatch(/incomplete/)

      mkdirSync(ARTIFACTS, { recursive: true })
      await page.screenshot({ path: SCREENSHOT, fullPage: true })
      expect(existsSync(SCREENSHOT)).toBe(true)

      // The key is in this tab's session storage, never in a URL; a reload keeps the page signed in.
      expect(await page.evaluate("sessionStorage.getItem('nhi-meter.api-key')")).toBe(key('admin'))
      expect(requested.filter((url) => url.includes(key('admin')))).toEqual([])
      await page.reload()
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 })
      await page.click('#forget-key')
      expect(await page.evaluate("sessionStorage.getItem('nhi-meter.api-key')")).toBeNull()
      expect(await page.locator('#key-section').isVisible()).toBe(true)

      // A key with billing:read only sees billing, and the findings sections say why they are empty.
      await page.fill('#api-key', key('billing-only'))
      await page.click('#key-form button[type=submit]')
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 })
      expect(await text('#total-amount')).toBe(`${byIdentity.total.amount} USD`)
      expect(await text('#findings-note')).toContain('may not read /v1/findings')
      expect(await text('#services-note')).toContain('may not read /v1/telemetry/completeness')

      // No CSP violation, script error or failed request on the way (the refused key's 401 and the billing-only key's 403s aside).
      expect(problems.filter((p) => !/status of (401 \(Unauthorized\)|403 \(Forbidden\))/.test(p))).toEqual([])
    } finally {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  })
})
