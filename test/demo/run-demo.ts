/**
 * `npm run demo`: a newcomer's first minute. Starts a throw-away nhi-meter
 * (fresh data directory, the usual ports unless NHI_METER_PORT /
 * NHI_METER_OTLP_PORT say otherwise), drives the demo workload through the
 * real OpenTelemetry SDK, prints what it billed and the URLs to try, and
 * keeps running until Ctrl-C.
 *
 * With OTEL_EXPORTER_OTLP_ENDPOINT set (docker-compose), it only sends the
 * workload there: the Collector and the query service run elsewhere.
 * NHI_METER_DEMO_EXIT=1 stops after the summary (used by the tests).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../query-service/src/config.js'
import { loadDefaultPolicy } from '../../query-service/src/policy/index.js'
import { startService } from '../../query-service/src/service.js'
import { EXAMPLE_INVENTORY, runExampleWorkload } from '../../instrumentation/examples/agent-gateway/workload.js'
import { ingestLogSpans } from '../helpers/service.js'
import { runDemoWorkload } from './workload.js'

interface Billable {
  currency: string
  completeness: { spans: number; identified_spans: number; identified_ratio: number; status: string; threshold: number }
  rows: Array<{ 'nhi.id': string; meter: string; quantity: number; amount: string }>
  total: { quantity: number; amount: string }
}

/**
 * The findings the demo sets up on purpose. The workload runs for a minute,
 * so no identity has the days of history that bursts, growth and dormancy
 * are judged against; those kinds cannot appear here.
 */
const PLANTED: Record<string, string> = {
  'privilege_drift crm-sync':
    'the example inventory approves crm-sync for token_exchange and secret_rotation only, and the example workload has it run the support agent (instrumentation/examples/agent-gateway/workload.ts)',
  'unregistered int-billing-export': 'the inventory the demo posts leaves this partner integration out',
}

async function remoteOnly(endpoint: string): Promise<void> {
  const base = endpoint.replace(/\/$/, '')
  const tracesUrl = `${base}/v1/traces`
  for (let attempt = 1; ; attempt++) {
    try {
      const summary = await runDemoWorkload({ tracesUrl })
      const example = await runExampleWorkload({ endpoint: base })
      console.log(`demo: sent the workload to ${tracesUrl}:`, summary, example.requests)
      return
    } catch (error) {
      if (attempt >= 10) throw error
      await new Promise((resolve) => setTimeout(resolve, 3000))
    }
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => '  ' + r.map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('   ')).join('\n')
}

async function main(): Promise<void> {
  if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return remoteOnly(process.env.OTEL_EXPORTER_OTLP_ENDPOINT)

  const dataDir = mkdtempSync(join(tmpdir(), 'nhi-meter-demo-'))
  // A throw-away instance decides spans that wait for their trace within seconds, not minutes (unless told otherwise).
  const config = parseConfig({
    NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS: '1',
    NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS: '3',
    ...process.env,
    NHI_METER_DATA_DIR: dataDir,
    NHI_METER_API_KEYS_FILE: '',
  })
  const { policy } = await loadDefaultPolicy()
  const quiet = { info: () => undefined, error: (message: string, error?: unknown) => console.error(`nhi-meter: ${message}`, error) }
  const service = await startService(config, () => policy, quiet)
  const key = service.generatedKey!
  const api = `http://${config.NHI_METER_HOST}:${service.apiPort}`
  const stop = async () => {
    await service.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    console.log(`nhi-meter demo: service on ${api}, embedded ClickHouse in ${dataDir} (removed on exit)`)
    console.log('running the workload: AI agents, an ETL service account, an API-key gateway, a legacy service without identity ...')
    const otlpBase = `http://${config.NHI_METER_HOST}:${service.otlpPort}`
    const sent = await runDemoWorkload({ tracesUrl: `${otlpBase}/v1/traces`, headers: { Authorization: `Bearer ${key}` } })
    console.log('running the example agent gateway (instrumentation/examples/agent-gateway, zero-code instrumentation) ...')
    const example = await runExampleWorkload({ endpoint: otlpBase, headers: { authorization: `Bearer ${key}` } })
    console.log(`  ${example.succeeded + example.failed} requests from ${Object.keys(example.requests).length} callers (${example.failed} failed)`)

    // Declare most identities, as a team keeping its inventory in git would; int-billing-export stays undeclared.
    const declared = [
      ...EXAMPLE_INVENTORY,
      { id: 'agent-research', type: 'ai_agent', owner: 'team-support', business_unit: 'customer-support', tier: 'standard', approved_activities: ['tool_invocation', 'token_exchange'] },
      { id: 'sa-nightly-etl', type: 'service_account', owner: 'team-data', business_unit: 'data-platform', tier: 'high_capacity_processing', approved_activities: ['workflow_execution', 'secret_rotation'] },
      { id: 'int-crm-sync', type: 'integration', owner: 'team-crm', business_unit: 'partnerships', tier: 'standard', approved_activities: ['api_call'] },
      { id: 'sa-legacy-batch', type: 'service_account', owner: 'team-finance', business_unit: 'finance', tier: 'standard', approved_activities: ['workflow_execution'] },
    ]
    const posted = await fetch(`${api}/v1/inventory`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(declared) })
    if (!posted.ok) throw new Error(`POST /v1/inventory answered ${posted.status}: ${await posted.text()}`)
    if (service.metricsPort !== undefined) await settleIngest(`http://${config.NHI_METER_HOST}:${service.metricsPort}/metrics`)
    await settleTraces(api, key)
    const response = await fetch(`${api}/v1/billable?group_by=nhi.id,meter`, { headers: { Authorization: `Bearer ${key}` } })
    const bill = (await response.json()) as Billable
    console.log('')
    console.log(`Billable this month (${bill.currency}), from GET /v1/billable?group_by=nhi.id,meter:`)
    console.log(table([['identity', 'meter', 'quantity', 'amount'], ...bill.rows.map((r) => [r['nhi.id'], r.meter, String(r.quantity), r.amount]), ['total', '', String(bill.total.quantity), bill.total.amount]]))
    const c = bill.completeness
    console.log('')
    console.log(
      `Completeness: ${c.identified_spans} of ${c.spans} use events tied to an identity (${(c.identified_ratio * 100).toFixed(1)}%, threshold ${c.threshold * 100}%): ${c.status.toUpperCase()}.`,
    )
    console.log(`  The ${sent.unidentifiedRequests} requests of legacy-reports carry no identity: they are not billed, and the period says so.`)
    console.log(`  ${sent.toolCalls.failed + example.failed} failed calls are not billed (meters bill status ok by default).`)
    const identities = (await (await fetch(`${api}/v1/identities`, { headers: { Authorization: `Bearer ${key}` } })).json()) as { identities: Array<{ id: string; status: string }> }
    const byStatus = new Map<string, string[]>()
    for (const identity of identities.identities) byStatus.set(identity.status, [...(byStatus.get(identity.status) ?? []), identity.id])
    console.log('')
    console.log('Identities (GET /v1/identities):')
    for (const [status, ids] of [...byStatus].sort()) console.log(`  ${status.padEnd(13)} ${ids.sort().join(', ')}`)
    const { findings } = (await (await fetch(`${api}/v1/findings`, { headers: { Authorization: `Bearer ${key}` } })).json()) as { findings: Array<{ kind: string; nhi_id: string | null; severity: string; summary: string; evidence: Record<string, unknown> }> }
    console.log('')
    console.log('Findings (GET /v1/findings), each one the demo planted, and why:')
    for (const f of findings) {
      const subject = `${f.kind} ${f.nhi_id ?? String(f.evidence.service)}`
      console.log(`  ${f.severity.padEnd(6)} ${subject}: ${f.summary}`)
      console.log(`         ${PLANTED[subject] ? `planted: ${PLANTED[subject]}` : 'NOT PLANTED by the demo: a finding on normal behaviour (please report it)'}`)
    }
    console.log('')
    console.log('Try (the admin key below is for this demo instance only):')
    console.log(`  export KEY=${key}`)
    console.log(`  curl -H "Authorization: Bearer $KEY" "${api}/v1/billable?group_by=nhi.id,meter"`)
    console.log(`  curl -H "Authorization: Bearer $KEY" "${api}/v1/billable?group_by=business_unit,period&granularity=day&format=csv"`)
    console.log(`  curl -H "Authorization: Bearer $KEY" "${api}/v1/entitlements/sa-nightly-etl"`)
    console.log(`  curl -H "Authorization: Bearer $KEY" "${api}/v1/findings"`)
    console.log(`  curl ${api}/openapi.json`)
    console.log(`  open ${api}/ in a browser for the overview page (paste the key when it asks)`)
    console.log('')
    if (process.env.NHI_METER_DEMO_EXIT === '1') {
      await stop()
      return
    }
    console.log('Running until Ctrl-C.')
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve())
      process.once('SIGTERM', () => resolve())
    })
    await stop()
  } catch (error) {
    await stop()
    throw error
  }
}

main().catch((error: unknown) => {
  console.error('demo failed:', error instanceof Error ? error.message : error)
  process.exit(1)
})

/**
 * Waits (at most a minute) until the trace resolution job has decided every
 * use event that needed its trace, so the bill printed is settled.
 */
/** Waits until the ingest log has stored every span the receiver took (bills show spans once they are stored). */
async function settleIngest(metricsUrl: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const waiting = await ingestLogSpans(metricsUrl)
    if (waiting === 0) return
    if (Date.now() > deadline) {
      console.log(`  (${waiting} spans are still in the ingest log; the bill below does not hold them yet)`)
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function settleTraces(api: string, key: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const response = await fetch(`${api}/v1/telemetry/completeness`, { headers: { Authorization: `Bearer ${key}` } })
    const report = (await response.json()) as { pending_spans: number }
    if (report.pending_spans === 0) return
    if (Date.now() > deadline) {
      console.log(`  (${report.pending_spans} use events still wait for their trace; the bill below leaves them out and says so)`)
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
