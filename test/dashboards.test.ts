/**
 * The Grafana dashboards, checked without Grafana: every committed JSON
 * file is parsed, every panel's and variable's SQL is expanded the way the
 * ClickHouse plugin and Grafana expand it (dashboards/expand.ts) and run on
 * the embedded engine loaded with the demo workload. The billing panels
 * must total exactly what GET /v1/billable answers for the same range, and
 * the inventory what GET /v1/identities answers at the end of it.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { z } from 'zod'
import { ALERT_RULES_FILE, alertRulesFileText, provisionedString, renderAlertRules } from '../dashboards/alerts.js'
import { dashboardFileText, renderDashboards } from '../dashboards/definitions.js'
import { expandPanelSql, type PanelContext, type VariableSelection } from '../dashboards/expand.js'
import { inlineQueryParams, stringLiteral } from '../dashboards/sql.js'
import { createApp } from '../query-service/src/app.js'
import { runRollup } from '../query-service/src/billing/rollup.js'
import { formatMoney, parseMoney } from '../query-service/src/money/decimal.js'
import { loadDefaultPolicy, validatePolicy, type Policy } from '../query-service/src/policy/index.js'
import { testKeys } from '../query-service/src/test-support/keys.js'
import { insertSpans, spanRow } from '../query-service/src/test-support/spans.js'
import { freshStorage } from '../query-service/src/test-support/storage.js'
import { AWKWARD_TOOL, loadDemoData } from './dashboards-demo-data.js'
import { REPO_ROOT } from './helpers/service.js'

interface Target {
  rawSql?: string
  expr?: string
  format: number
  datasource: { uid: string; type: string }
}
interface Panel {
  id: number
  type: string
  title: string
  datasource?: { uid: string; type: string }
  targets?: Target[]
  gridPos: { x: number; y: number; w: number; h: number }
}
interface Variable {
  name: string
  query: string
  datasource: { uid: string }
  multi: boolean
  includeAll: boolean
}
interface Dashboard {
  uid: string
  title: string
  panels: Panel[]
  templating: { list: Variable[] }
  [key: string]: unknown
}
type Row = Record<string, unknown>

const JSON_DIR = join(REPO_ROOT, 'dashboards/json')
const files = readdirSync(JSON_DIR).filter((f) => f.endsWith('.json'))
const dashboards = new Map(files.map((f) => [f, JSON.parse(readFileSync(join(JSON_DIR, f), 'utf8')) as Dashboard]))
const { store, key } = testKeys([{ name: 'admin', scopes: ['admin'] }])

let client: ClickHouseClient
let policy: Policy
let from: Date
let to: Date

function appFor(p: Policy) {
  return createApp({ client, keys: () => store, policy: () => p })
}

async function api<T>(p: Policy, path: string): Promise<T> {
  const response = await appFor(p).request(path, { headers: { Authorization: `Bearer ${key('admin')}` } })
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as T
}

const RANGE = () => `from=${from.toISOString()}&to=${to.toISOString()}`

function context(variables: Record<string, VariableSelection> = {}): PanelContext {
  return { from, to, intervalMs: 3_600_000, variables: { business_unit: 'All', identity: 'All', service: 'All', ...variables } }
}

async function run(sql: string, ctx: PanelContext = context()): Promise<Row[]> {
  const expanded = expandPanelSql(sql, ctx)
  // Nothing Grafana or the plugin would still have to expand may be left.
  expect(expanded, expanded).not.toMatch(/\$(\w|\{)|\[\[/)
  const result = await client.query({ query: expanded, format: 'JSONEachRow', clickhouse_settings: { output_format_json_quote_decimals: 1 } })
  return result.json<Row>()
}

function panel(file: string, title: string): Panel {
  const found = dashboards.get(file)?.panels.find((p) => p.title === title)
  if (!found) throw new Error(`${file} has no panel ${title}`)
  return found
}

const sqlOf = (p: Panel) => p.targets![0]!.rawSql!
/** Panels that query ClickHouse (the service dashboard's query Prometheus: test/metrics/scrape.test.ts runs those). */
const clickHousePanels = (d: Dashboard) => d.panels.filter((p) => p.targets && p.datasource?.uid === 'nhi-clickhouse')
/** The provisioned datasources, by uid. */
const provisionedDatasources = new Map(
  ['clickhouse.yaml', 'prometheus.yaml'].map((file) => {
    const parsed = parse(readFileSync(join(REPO_ROOT, 'dashboards/provisioning/datasources', file), 'utf8')) as { datasources: Array<{ uid: string; type: string }> }
    return [parsed.datasources[0]!.uid, parsed.datasources[0]!] as const
  }),
)
const money = (value: unknown) => formatMoney(parseMoney(String(value)))
const count = (value: unknown) => Number(value)

interface Billable {
  rows: Array<Record<string, string | number>>
  total: { quantity: number; amount: string }
  completeness: { spans: number; identified_spans: number }
}

beforeAll(async () => {
  client = await freshStorage()
  policy = (await loadDefaultPolicy()).policy
  const { loadedAt } = await loadDemoData(client)
  // Model calls with token counts (one without) from an agent of its own, for the panels of meters that sum
  // values and count active identities (the shipped default policy does not bill model calls).
  await insertSpans(
    client,
    [700, 900, undefined, 1200, 30].map((tokens, i) =>
      spanRow({
        start: new Date(loadedAt.getTime() - (i + 1) * 60_000).toISOString(),
        service: 'model-gateway',
        attributes: {
          'nhi.id': i < 4 ? 'agent-models' : 'agent-models-2',
          'nhi.business_unit': i < 2 ? 'research' : 'data-platform',
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': i === 3 ? 'gpt-4o-mini' : 'gpt-4o',
          ...(tokens === undefined ? {} : { 'gen_ai.usage.input_tokens': String(tokens) }),
        },
      }),
    ),
  )
  // Whole seconds: Grafana's $__fromTime/$__toTime are seconds, the API's range is exact.
  const second = Math.floor(loadedAt.getTime() / 1000) * 1000
  from = new Date(second - 2 * 86_400_000)
  to = new Date(second + 3_600_000)
  // Roll up what can be rolled up, so the API reads its rollup and ledger mix while the dashboards read the ledger.
  await runRollup(client, policy.rate_cards, 0)
})

afterAll(async () => {
  await client?.close()
})

describe('committed dashboard files', () => {
  it('are exactly what the generator writes for the shipped default policy', async () => {
    const rendered = renderDashboards((await loadDefaultPolicy()).policy)
    expect(files.sort()).toEqual(rendered.map((d) => d.file).sort())
    for (const { file, json } of rendered) {
      expect(readFileSync(join(JSON_DIR, file), 'utf8'), `${file} is out of date: run npm run dashboards`).toBe(dashboardFileText(json))
    }
  })

  it('keep every panel query within ClickHouse’s default max_query_size for a policy of many meters', () => {
    // Three card versions of 40 meters, each with a name pattern and a status: the billable match inlines its values
    // once per meter (not the card's whole arrays per meter), so the text grows with the meters, not their square.
    const meters = Array.from({ length: 40 }, (_, i) => ({ name: `meter_${i}`, activity_type: 'tool_invocation', activity_name: `tool-${i}-*`, status: 'error', unit_price: '0.001' }))
    const { policy } = validatePolicy({
      rate_cards: ['2026-09', '2026-10', '2026-11'].map((version) => ({ version, effective_from: `${version}-01T00:00:00Z`, currency: 'USD', meters })),
    })
    const texts = renderDashboards(policy).flatMap(({ json }) => JSON.stringify(json).match(/"rawSql":"(?:[^"\\]|\\.)*"/g) ?? [])
    expect(texts.length).toBeGreaterThan(5)
    const longest = Math.max(...texts.map((text) => (JSON.parse(`{${text}}`) as { rawSql: string }).rawSql.length))
    expect(longest).toBeLessThan(262_144 / 2)
  })

  it('are clean provisioning files: stable unique uids, the provisioned datasource, no export leftovers', () => {
    const uids = [...dashboards.values()].map((d) => d.uid)
    expect(new Set(uids).size).toBe(uids.length)
    const datasource = parse(readFileSync(join(REPO_ROOT, 'dashboards/provisioning/datasources/clickhouse.yaml'), 'utf8')) as { datasources: Array<{ uid: string; type: string }> }
    const provisioned = datasource.datasources[0]!
    for (const [file, d] of dashboards) {
      expect(d.uid, file).toMatch(/^nhi-meter-[a-z-]+$/)
      for (const leftover of ['__inputs', '__requires', '__elements', 'id', 'iteration', 'gnetId']) expect(d, `${file} carries ${leftover}`).not.toHaveProperty(leftover)
      expect(JSON.stringify(d), file).not.toMatch(/\$\{DS_|"uid":\s*"\$/)
      for (const p of d.panels) {
        if (p.type === 'text') continue
        const source = provisionedDatasources.get(p.datasource?.uid ?? '')
        expect(source, `${file}: ${p.title} uses a datasource that is not provisioned`).toBeDefined()
        expect(p.datasource, `${file}: ${p.title}`).toEqual({ type: source!.type, uid: source!.uid })
        if (source!.uid === provisioned.uid) expect(p.targets, `${file}: ${p.title}`).toHaveLength(1)
        else expect(p.targets!.length, `${file}: ${p.title}`).toBeGreaterThan(0)
        for (const t of p.targets ?? []) expect(t.datasource, `${file}: ${p.title}`).toEqual(p.datasource)
        expect(p.gridPos.x + p.gridPos.w, `${file}: ${p.title}`).toBeLessThanOrEqual(24)
      }
      const titles = d.panels.map((p) => p.title)
      expect(new Set(titles).size, `${file} repeats a panel title`).toBe(titles.length)
      const names = d.templating.list.map((v) => v.name)
      const used = new Set([...JSON.stringify(d.panels).matchAll(/\$\{(\w+):sqlstring\}/g)].map((m) => m[1]!))
      for (const name of used) expect(names, `${file} uses $${name} without defining it`).toContain(name)
      for (const v of d.templating.list) expect(v).toMatchObject({ datasource: { uid: provisioned.uid }, multi: true, includeAll: true })
    }
  })

  it('are provisioned from the folder docker-compose mounts into Grafana', () => {
    const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: { grafana: { volumes: string[] } } }
    const provider = parse(readFileSync(join(REPO_ROOT, 'dashboards/provisioning/dashboards/nhi-meter.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> }
    const mount = compose.services.grafana.volumes.find((v) => v.startsWith('./dashboards/json:'))
    expect(mount?.split(':')[1]).toBe(provider.providers[0]!.options.path)
  })
})

describe('every panel on the demo data', () => {
  it('runs every variable query and every panel without errors, and every panel has rows', async () => {
    let panels = 0
    for (const [file, d] of dashboards) {
      for (const v of d.templating.list) expect((await run(v.query)).length, `${file}: variable ${v.name}`).toBeGreaterThan(0)
      for (const p of clickHousePanels(d)) {
        const rows = await run(sqlOf(p))
        expect(rows.length, `${file}: ${p.title} returned no rows`).toBeGreaterThan(0)
        panels++
      }
    }
    expect(panels).toBeGreaterThanOrEqual(25)
  })

  it('runs every panel with one value chosen for each variable', async () => {
    const chosen = context({ business_unit: ['customer-support'], identity: ['agent-research'], service: ['support-agents'] })
    for (const [file, d] of dashboards) {
      for (const p of clickHousePanels(d)) await expect(run(sqlOf(p), chosen), `${file}: ${p.title}`).resolves.toBeInstanceOf(Array)
    }
  })
})

describe('billing panels', () => {
  it('total what GET /v1/billable totals for the same range', async () => {
    const bill = await api<Billable>(policy, `/v1/billable?${RANGE()}&group_by=nhi.id`)
    expect(bill.total.quantity).toBeGreaterThan(50)
    const [events] = await run(sqlOf(panel('billing.json', 'Billable events')))
    const [amount] = await run(sqlOf(panel('billing.json', 'Billable amount (USD)')))
    expect(count(events!.billable_events)).toBe(bill.total.quantity)
    expect(money(amount!.billable_amount)).toBe(bill.total.amount)
    const [identities] = await run(sqlOf(panel('billing.json', 'Identities billed')))
    expect(count(identities!.identities)).toBe(bill.rows.length)

    // Every time series adds up to the same total.
    const byUnit = await run(sqlOf(panel('billing.json', 'Billable amount by business unit (USD)')))
    expect(formatMoney(byUnit.reduce((sum, r) => sum + parseMoney(String(r.amount)), 0n) as ReturnType<typeof parseMoney>)).toBe(bill.total.amount)
    const byMeter = await run(sqlOf(panel('billing.json', 'Billable events by meter')))
    expect(byMeter.reduce((sum, r) => sum + count(r.events), 0)).toBe(bill.total.quantity)
  })

  it('show the rows of GET /v1/billable grouped by business unit and meter, and by identity', async () => {
    const byUnitMeter = await api<Billable>(policy, `/v1/billable?${RANGE()}&group_by=business_unit,meter`)
    const table = await run(sqlOf(panel('billing.json', 'Cost by business unit and meter')))
    expect(table.map((r) => ({ business_unit: r.business_unit, meter: r.meter, quantity: count(r.quantity), amount: money(r.amount) }))).toEqual(byUnitMeter.rows)
    expect(table.every((r) => count(r.events) === count(r.quantity))).toBe(true)
    // The declaration moved int-crm-sync from its spans' unit to sales, in both.
    expect(byUnitMeter.rows.some((r) => r.business_unit === 'sales')).toBe(true)

    const byIdentity = await api<Billable>(policy, `/v1/billable?${RANGE()}&group_by=nhi.id,business_unit`)
    const identities = await run(sqlOf(panel('billing.json', 'Cost by identity')))
    const sorted = identities.map((r) => ({ 'nhi.id': r.nhi_id, business_unit: r.business_unit, quantity: count(r.events), amount: money(r.amount) })).sort((a, b) => String(a['nhi.id']).localeCompare(String(b['nhi.id'])))
    expect(sorted).toEqual(byIdentity.rows)

    const byService = await api<Billable>(policy, `/v1/billable?${RANGE()}&group_by=service`)
    const services = await run(sqlOf(panel('billing.json', 'Cost by service')))
    expect(services.map((r) => ({ service: r.service, quantity: count(r.events), amount: money(r.amount) })).sort((a, b) => String(a.service).localeCompare(String(b.service)))).toEqual(byService.rows)
  })

  it('filter by business unit, identity and service as the API groups them', async () => {
    const rows = (await api<Billable>(policy, `/v1/billable?${RANGE()}&group_by=business_unit,nhi.id,service`)).rows
    const sum = (keep: (r: Record<string, string | number>) => boolean) => rows.filter(keep).reduce((s, r) => s + Number(r.quantity), 0)
    const events = async (variables: Record<string, VariableSelection>) => count((await run(sqlOf(panel('billing.json', 'Billable events')), context(variables)))[0]!.billable_events)
    expect(await events({ business_unit: ['sales'] })).toBe(sum((r) => r.business_unit === 'sales'))
    expect(await events({ business_unit: ['customer-support', 'data-platform'] })).toBe(sum((r) => r.business_unit === 'customer-support' || r.business_unit === 'data-platform'))
    expect(await events({ identity: ['agent-research'] })).toBe(sum((r) => r['nhi.id'] === 'agent-research'))
    expect(await events({ service: ['partner-gateway'] })).toBe(sum((r) => r.service === 'partner-gateway'))
    expect(await events({ business_unit: ['no such unit'] })).toBe(0)
  })

  it('state the completeness that GET /v1/billable states', async () => {
    const bill = await api<Billable>(policy, `/v1/billable?${RANGE()}`)
    const [share] = await run(sqlOf(panel('billing.json', 'Identified share of activity')))
    expect(Number(share!.identified_share)).toBeCloseTo(bill.completeness.identified_spans / bill.completeness.spans, 12)
    expect(bill.completeness.spans).toBeGreaterThan(bill.completeness.identified_spans)
  })
})

describe('billing panels for meters that sum values and are priced per business unit', () => {
  // Every price model, allowances, a minimum and active identities, next to the default's count meters.
  const rated = validatePolicy({
    rate_cards: [
      {
        version: 'rated',
        effective_from: '2026-01-01T00:00:00Z',
        currency: 'USD',
        meters: [
          { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002', minimum_charge: '0.05' },
          { name: 'api_calls', activity_type: 'api_call', status: 'any', package: { size: '3', price: '0.01' } },
          { name: 'workflow_runs', activity_type: 'workflow_execution', tiers: [{ up_to: '2', unit_price: '0.01' }, { unit_price: '0.001', flat_price: '0.5' }], tier_mode: 'volume' },
          { name: 'model_calls', activity_type: 'model_call', unit_price: '0.001' },
          {
            name: 'gpt_input',
            activity_type: 'model_call',
            activity_name: 'gpt-4o*',
            aggregation: 'sum',
            value: 'gen_ai.usage.input_tokens',
            tiers: [{ up_to: '1000', unit_price: '0.00001' }, { unit_price: '0.000003' }],
            included: { quantity: '100', per: 'identity' },
          },
          { name: 'all_input', activity_type: 'model_call', aggregation: 'sum', value: 'gen_ai.usage.input_tokens', unit_price: '0.000001', included: { quantity: '500', per: 'business_unit' } },
          { name: 'active_agents', activity_type: 'model_call', aggregation: 'active_identities', min_events: 2, unit_price: '5.00' },
          { name: 'tool_time', activity_type: 'tool_invocation', aggregation: 'sum', value: 'duration_ms', unit_price: '0.0001' },
        ],
      },
    ],
  }).policy
  const billing = () => renderDashboards(rated).find((d) => d.file === 'billing.json')!.json as unknown as Dashboard
  const ratedPanel = (title: string) => {
    const found = billing().panels.find((p) => p.title === title)
    if (!found) throw new Error(`no panel ${title}`)
    return found
  }

  it('rate each business unit and meter as GET /v1/billable does, and total the same amount', async () => {
    const byUnitMeter = await api<Billable>(rated, `/v1/billable?${RANGE()}&group_by=business_unit,meter`)
    expect(byUnitMeter.rows.some((r) => r.meter === 'gpt_input')).toBe(true)
    expect(byUnitMeter.rows.some((r) => r.meter === 'active_agents')).toBe(true)
    const table = await run(sqlOf(ratedPanel('Cost by business unit and meter')))
    expect(table.map((r) => ({ business_unit: r.business_unit, meter: r.meter, quantity: count(r.quantity), amount: money(r.amount) }))).toEqual(byUnitMeter.rows)
    const [amount] = await run(sqlOf(ratedPanel('Billable amount (USD)')))
    expect(money(amount!.billable_amount)).toBe(byUnitMeter.total.amount)
  })

  it('count as events only what count meters count', async () => {
    const byMeter = await api<Billable & { meters: Array<{ meter: string; aggregation: string; quantity: number }> }>(rated, `/v1/billable?${RANGE()}&group_by=meter`)
    const counted = byMeter.meters.filter((m) => m.aggregation === 'count').reduce((n, m) => n + m.quantity, 0)
    const [events] = await run(sqlOf(ratedPanel('Billable events')))
    expect(count(events!.billable_events)).toBe(counted)
  })
})

describe('identity panels', () => {
  it('list the identities, their activity and status as GET /v1/identities does at the end of the range', async () => {
    const listed = await api<{ identities: Array<Record<string, unknown>> }>(policy, `/v1/identities?at=${to.toISOString()}`)
    const rows = await run(sqlOf(panel('identities.json', 'Identity inventory')))
    const iso = (v: unknown) => (v === null ? null : new Date(String(v)).toISOString())
    const fromDashboard = rows.map((r) => ({
      id: r.id,
      type: r.type,
      owner: r.owner,
      business_unit: r.business_unit,
      declared: r.declared,
      first_seen: iso(r.first_seen),
      last_seen: iso(r.last_seen),
      activity_count: count(r.activity_count),
      status: r.status,
    }))
    const fromApi = listed.identities.map((i) => ({ id: i.id, type: i.type, owner: i.owner, business_unit: i.business_unit, declared: i.declared, first_seen: i.first_seen, last_seen: i.last_seen, activity_count: i.activity_count, status: i.status }))
    expect(fromDashboard).toEqual(fromApi)
    expect(new Set(fromApi.map((i) => i.status))).toEqual(new Set(['active', 'dormant', 'never_seen', 'unregistered']))

    const idle = await run(sqlOf(panel('identities.json', 'Dormant and never-seen declared identities')))
    expect(idle.map((r) => [r.id, r.status])).toEqual([
      ['sa-legacy-backup', 'dormant'],
      ['sa-never-used', 'never_seen'],
    ])
  })
})

describe('findings panels', () => {
  it('show the shared credential, the activity outside approvals and the failed token exchange', async () => {
    const shared = await run(sqlOf(panel('findings.json', 'Credentials used by several identities')))
    expect(shared.map((r) => [r.credential_id, r.used_by])).toEqual([['fp-shared-0001', 'int-shared-a, int-shared-b']])
    const outside = await run(sqlOf(panel('findings.json', 'Activity outside approvals')))
    expect(new Set(outside.map((r) => `${r.nhi_id} ${r.activity_type}:${r.activity_name}`))).toEqual(
      new Set(['agent-support-triage tool_invocation:create_ticket', 'agent-support-triage tool_invocation:lookup_order', 'agent-support-triage tool_invocation:send_email']),
    )
    const failures = await run(sqlOf(panel('findings.json', 'Failed token exchanges by identity')))
    expect(failures.map((r) => [r.identity, count(r.failures)])).toEqual([['agent-research', 1]])
  })

  it('hold the evidence behind what GET /v1/findings reports for the same range', async () => {
    const { findings } = await api<{ findings: Array<{ kind: string; nhi_id: string | null }> }>(policy, `/v1/findings?${RANGE()}`)
    const ids = (kind: string) => new Set(findings.filter((f) => f.kind === kind).map((f) => f.nhi_id))
    const unregistered = await run(sqlOf(panel('findings.json', 'Unregistered identities')))
    expect(new Set(unregistered.map((r) => r.id))).toEqual(ids('unregistered'))
    const shared = await run(sqlOf(panel('findings.json', 'Credentials used by several identities')))
    expect(new Set(shared.flatMap((r) => String(r.used_by).split(', ')))).toEqual(ids('credential_reuse'))
    const outside = await run(sqlOf(panel('findings.json', 'Activity outside approvals')))
    expect(new Set(outside.map((r) => r.nhi_id))).toEqual(ids('privilege_drift'))
    const idle = await run(sqlOf(panel('identities.json', 'Dormant and never-seen declared identities')))
    for (const id of ids('dormant')) expect(idle.map((r) => r.id)).toContain(id)
  })
})

describe('telemetry panels', () => {
  it('count activity and identified spans per service as GET /v1/telemetry/completeness does', async () => {
    const rows = await run(sqlOf(panel('telemetry.json', 'Completeness per service')))
    const legacy = rows.find((r) => r.service === 'legacy-reports')
    expect(legacy).toMatchObject({ identified_spans: '0', status: 'incomplete' })
    expect(count(legacy!.no_identity)).toBe(count(legacy!.activity_spans))
    const completeness = await api<{ services: Array<{ service: string; spans: number; identified_spans: number; status: string; attribute_problems: Array<{ attribute: string; spans: number }> }> }>(
      policy,
      `/v1/telemetry/completeness?${RANGE()}`,
    )
    const byService = (a: { service: unknown }, b: { service: unknown }) => String(a.service).localeCompare(String(b.service))
    expect(
      rows
        .map((r) => ({ service: r.service, spans: count(r.activity_spans), identified_spans: count(r.identified_spans), status: r.status, problems: count(r.unknown_type) + count(r.bad_activity_type) }))
        .sort(byService),
    ).toEqual(
      completeness.services
        .map((s) => ({ service: s.service, spans: s.spans, identified_spans: s.identified_spans, status: s.status, problems: s.attribute_problems.reduce((n, p) => n + p.spans, 0) }))
        .sort(byService),
    )
    expect(count(rows.find((r) => r.service === 'support-agents')!.unknown_type)).toBe(1)
    const bill = await api<Billable>(policy, `/v1/billable?${RANGE()}`)
    expect(rows.reduce((s, r) => s + count(r.activity_spans), 0)).toBe(bill.completeness.spans)
  })
})

describe('policy values written into the SQL', () => {
  it('are literals that Grafana cannot rewrite, and bill exactly as the API binds them', async () => {
    // A meter whose glob is the awkward tool name, with every character that quoting or interpolation could break.
    const awkward = validatePolicy({
      rate_cards: [
        {
          version: '2026-11',
          effective_from: '2026-11-01T00:00:00Z',
          currency: 'EUR',
          meters: [
            { name: 'awkward_tools', activity_type: 'tool_invocation', activity_name: AWKWARD_TOOL, unit_price: '1.5' },
            { name: 'other_tools', activity_type: 'tool_invocation', activity_name: 'search_*', unit_price: '0.003' },
            { name: 'api_calls', activity_type: 'api_call', status: 'any', unit_price: '0.0001' },
          ],
        },
      ],
    }).policy
    const billing = renderDashboards(awkward).find((d) => d.file === 'billing.json')!.json as unknown as Dashboard
    const sql = billing.panels.find((p) => p.title === 'Cost by business unit and meter')!.targets![0]!.rawSql!
    const ctx = context({ business_unit: ['customer-support', 'partnerships', 'sales'] })
    const rows = await run(sql, ctx)
    const bill = await api<Billable>(awkward, `/v1/billable?${RANGE()}&group_by=business_unit,meter`)
    const chosen = bill.rows.filter((r) => ['customer-support', 'partnerships', 'sales'].includes(String(r.business_unit)))
    expect(rows.map((r) => ({ business_unit: r.business_unit, meter: r.meter, quantity: count(r.events), amount: money(r.amount) }))).toEqual(chosen)
    expect(chosen).toContainEqual({ business_unit: 'customer-support', meter: 'awkward_tools', quantity: 1, amount: '1.50' })
  })

  it('are escaped for ClickHouse and hidden from Grafana', async () => {
    for (const text of [AWKWARD_TOOL, 'a\\', "'", '\n\t\u0000', '$$', '$__interval_s', '[[x]]', 'ünï €']) {
      const literal = stringLiteral(text)
      expect(literal).not.toMatch(/\$(\w|\{)|\[\[/)
      const [row] = await (await client.query({ query: `SELECT ${literal} AS v`, format: 'JSONEachRow' })).json<{ v: string }>()
      expect(row!.v).toBe(text)
    }
    expect(inlineQueryParams('SELECT {a:Array(String)}, {t:DateTime64(9)}, ${business_unit:sqlstring}', { a: ["x'"], t: '2026-11-01 00:00:00.000' })).toBe(
      "SELECT CAST(['x\\''] AS Array(String)), toDateTime64('2026-11-01 00:00:00.000', 9, 'UTC'), ${business_unit:sqlstring}",
    )
    expect(() => inlineQueryParams('SELECT {missing:String}', {})).toThrow(/missing/)
  })
})

/** Grafana's file-provisioned alert rules (apiVersion 1), as far as the committed file uses them. */
const GO_DURATION = z.string().regex(/^(\d+(ms|s|m|h|d))+$/)
const alertQuery = z.object({
  refId: z.string().regex(/^[A-Z]$/),
  relativeTimeRange: z.object({ from: z.number().int().positive(), to: z.number().int().nonnegative() }).optional(),
  datasourceUid: z.string(),
  model: z.looseObject({ refId: z.string(), datasource: z.object({ type: z.string(), uid: z.string() }) }),
})
const alertRulesSchema = z.strictObject({
  apiVersion: z.literal(1),
  groups: z
    .array(
      z.strictObject({
        orgId: z.number().int().positive(),
        name: z.string().min(1),
        folder: z.string().min(1),
        interval: GO_DURATION,
        rules: z
          .array(
            z.strictObject({
              // Grafana caps uids at 40 characters.
              uid: z.string().regex(/^[a-z0-9-]{1,40}$/),
              title: z.string().min(1),
              condition: z.string(),
              data: z.array(alertQuery).min(2),
              noDataState: z.enum(['OK', 'NoData', 'Alerting']),
              execErrState: z.enum(['OK', 'Error', 'Alerting']),
              for: GO_DURATION,
              annotations: z.record(z.string(), z.string()),
              labels: z.record(z.string(), z.string()),
              isPaused: z.boolean(),
            }),
          )
          .min(1),
      }),
    )
    .min(1),
})

describe('provisioned alert rules', () => {
  const text = readFileSync(join(REPO_ROOT, 'dashboards', ALERT_RULES_FILE), 'utf8')
  const file = parse(text) as z.infer<typeof alertRulesSchema>
  const rules = () => file.groups.flatMap((g) => g.rules)

  it('are exactly what the generator writes for the shipped default policy', async () => {
    expect(text, `${ALERT_RULES_FILE} is out of date: run npm run dashboards`).toBe(alertRulesFileText(renderAlertRules((await loadDefaultPolicy()).policy)))
  })

  it('are a valid Grafana provisioning file: the schema, unique uids, conditions that exist, provisioned datasources only', () => {
    const checked = alertRulesSchema.safeParse(file)
    expect(checked.error?.issues ?? []).toEqual([])
    const uids = rules().map((r) => r.uid)
    expect(new Set(uids).size).toBe(uids.length)
    for (const rule of rules()) {
      expect(rule.data.map((d) => d.refId), `${rule.title}: condition`).toContain(rule.condition)
      for (const query of rule.data) {
        expect(query.model.refId, rule.title).toBe(query.refId)
        if (query.datasourceUid === '__expr__') continue
        const source = provisionedDatasources.get(query.datasourceUid)
        expect(source, `${rule.title} uses datasource ${query.datasourceUid}, which is not provisioned`).toBeDefined()
        expect(query.model.datasource, rule.title).toEqual({ type: source!.type, uid: source!.uid })
        expect(query.relativeTimeRange, rule.title).toBeDefined()
      }
    }
    // The four alerts the service promises.
    expect(uids).toEqual(expect.arrayContaining(['nhi-meter-completeness', 'nhi-meter-ingest-refusals', 'nhi-meter-job-lag', 'nhi-meter-new-high-findings']))
  })

  it('write every $ as $$, so Grafana does not read macros and templates as environment variables', () => {
    const strings = JSON.stringify(file).match(/"(?:[^"\\]|\\.)*"/g) ?? []
    for (const s of strings) expect(s.replaceAll('$$', ''), s).not.toContain('$')
    expect(text).toContain('$$__fromTime')
  })

  it('alert on completeness per service with the SQL and threshold GET /v1/telemetry/completeness uses', async () => {
    const rule = rules().find((r) => r.uid === 'nhi-meter-completeness')!
    const query = rule.data.find((d) => d.refId === 'A')!
    const rows = await run(provisionedString(String(query.model.rawSql)))
    const completeness = await api<{ services: Array<{ service: string; spans: number; identified_spans: number }> }>(policy, `/v1/telemetry/completeness?${RANGE()}`)
    const share = (n: number, d: number) => Math.round((n / d) * 1e9) / 1e9
    expect(rows.map((r) => ({ service: r.service, share: Math.round(Number(r.identified_share) * 1e9) / 1e9 })).sort((a, b) => String(a.service).localeCompare(String(b.service)))).toEqual(
      completeness.services.map((s) => ({ service: s.service, share: share(s.identified_spans, s.spans) })).sort((a, b) => a.service.localeCompare(b.service)),
    )
    const threshold = rule.data.find((d) => d.refId === rule.condition)!.model as unknown as { expression: string; conditions: Array<{ evaluator: { type: string; params: number[] } }> }
    expect(threshold.expression).toBe('A')
    expect(threshold.conditions[0]!.evaluator).toEqual({ type: 'lt', params: [policy.billing.completeness_threshold] })
    // The demo's legacy service carries no identity: this rule would fire for it.
    expect(rows.find((r) => r.service === 'legacy-reports')?.identified_share).toBe(0)
  })
})
