/**
 * Demo data for the dashboard and overview tests: the `npm run demo`
 * workload sent through the real OpenTelemetry SDK into the built-in
 * receiver (in this process, into the caller's embedded ClickHouse), plus a
 * few spans and declarations that give every findings and inventory panel
 * something to show: a declared identity that has gone dormant, one never
 * seen, a declaration that moves an identity to another business unit, an
 * approval list the agent exceeds, a credential two identities share, and a
 * failed token exchange with an nhi.type outside the vocabulary.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createReceiver } from '../query-service/src/otlp/receiver.js'
import { SpanWriter } from '../query-service/src/otlp/span-writer.js'
import { insertSpans, spanRow } from '../query-service/src/test-support/spans.js'
import { runDemoWorkload, type WorkloadSummary } from './demo/workload.js'

/** A tool name that carries every character Grafana or ClickHouse could misread. */
export const AWKWARD_TOOL = "we'ird\\$business_unit[[identity]]${service}$__fromTime{card0_types:String}"

/** What was loaded. */
export interface DemoData {
  summary: WorkloadSummary
  /** When the workload ran. */
  loadedAt: Date
}

/** Loads the demo workload and the extra fixtures into `client`. */
export async function loadDemoData(client: ClickHouseClient): Promise<DemoData> {
  const writer = new SpanWriter(client)
  const receiver = createReceiver({ writer })
  const port = await receiver.listen(0, '127.0.0.1')
  const loadedAt = new Date()
  let summary: WorkloadSummary
  try {
    summary = await runDemoWorkload({ tracesUrl: `http://127.0.0.1:${port}/v1/traces` })
  } finally {
    await receiver.close()
  }
  const at = (offsetMs: number) => new Date(loadedAt.getTime() + offsetMs).toISOString()
  const day = 86_400_000
  await insertSpans(client, [
    // Dormant: declared below, last active 45 days ago.
    spanRow({ start: at(-45 * day), service: 'backup', attributes: { 'nhi.id': 'sa-legacy-backup', 'nhi.activity.type': 'workflow_execution', 'nhi.activity.name': 'nightly-backup' } }),
    // Two identities behind one credential fingerprint.
    ...['int-shared-a', 'int-shared-b'].map((id, i) =>
      spanRow({ start: at(-60_000 - i * 1000), service: 'partner-gateway', kind: 'Server', attributes: { 'nhi.id': id, 'nhi.business_unit': 'partnerships', 'nhi.credential.id': 'fp-shared-0001', 'http.route': '/v1/invoices' } }),
    ),
    // A failed token exchange, whose nhi.type is outside the vocabulary.
    spanRow({ start: at(-30_000), service: 'support-agents', status: 'Error', attributes: { 'nhi.id': 'agent-research', 'nhi.type': 'robot', 'nhi.activity.type': 'token_exchange', 'nhi.activity.name': 'oauth2.client_credentials' } }),
    // A tool name full of quoting and template characters, billed like any other tool call.
    spanRow({ start: at(-20_000), service: 'support-agents', attributes: { 'nhi.id': 'agent-research', 'nhi.business_unit': 'customer-support', 'nhi.activity.type': 'tool_invocation', 'nhi.activity.name': AWKWARD_TOOL } }),
  ])
  const declared = [
    { id: 'agent-support-triage', type: 'ai_agent', owner: 'team-support', business_unit: 'customer-support', tier: 'standard', approved_activities: ['token_exchange', 'tool_invocation:search_*'] },
    { id: 'int-crm-sync', type: 'integration', owner: 'team-crm', business_unit: 'sales', tier: 'standard', approved_activities: [] },
    { id: 'sa-nightly-etl', type: 'service_account', owner: 'team-data', business_unit: 'data-platform', tier: 'standard', approved_activities: [] },
    { id: 'sa-legacy-backup', type: 'service_account', owner: 'team-data', business_unit: 'data-platform', tier: 'standard', approved_activities: [] },
    { id: 'sa-never-used', type: 'service_account', owner: 'team-finance', business_unit: 'finance', tier: 'standard', approved_activities: [] },
  ]
  const updatedAt = new Date(loadedAt.getTime() - 60 * day).toISOString().replace('T', ' ').replace('Z', '')
  await client.insert({ table: 'nhi_inventory', values: declared.map((d) => ({ ...d, updated_at: updatedAt })), format: 'JSONEachRow' })
  return { summary, loadedAt }
}
