/**
 * The demo workload: four simulated services instrumented with
 * @nhi-meter/instrumentation, each with its own tracer provider and
 * resource, exporting over OTLP/HTTP protobuf with the real exporter.
 *
 * - support-agents: two AI agents calling tools (some calls fail) and
 *   exchanging tokens;
 * - nightly-etl: a service account running workflows and rotating its secret;
 * - partner-gateway: an API-key gateway whose inbound calls are attributed to
 *   the partner integration that owns each key;
 * - legacy-reports: a service with no identity at all, whose requests count
 *   against telemetry completeness instead of being billed.
 */
import { context, SpanKind, type Tracer } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { apiCall, nhiSpanProcessors, secretRotation, tokenExchange, toolCall, withIdentity, workflowRun } from '@nhi-meter/instrumentation'

/** Where and how to send. */
export interface WorkloadTarget {
  /** OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
  tracesUrl: string
  headers?: Record<string, string>
}

/** What the workload sent, so a caller can check the bill. */
export interface WorkloadSummary {
  toolCalls: { ok: number; failed: number }
  workflowRuns: number
  apiCalls: number
  tokenExchanges: number
  secretRotations: number
  unidentifiedRequests: number
}

let contextManagerReady = false

function service(name: string, resource: Record<string, string>, target: WorkloadTarget) {
  const exporter = new OTLPTraceExporter({ url: target.tracesUrl, headers: target.headers ?? {} })
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': name, ...resource }),
    spanProcessors: nhiSpanProcessors({ exporters: [exporter] }),
  })
  return { tracer: provider.getTracer(name), provider }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs the workload once and flushes every provider. */
export async function runDemoWorkload(target: WorkloadTarget, scale = 1): Promise<WorkloadSummary> {
  if (!contextManagerReady) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    contextManagerReady = true
  }
  const summary: WorkloadSummary = { toolCalls: { ok: 0, failed: 0 }, workflowRuns: 0, apiCalls: 0, tokenExchanges: 0, secretRotations: 0, unidentifiedRequests: 0 }
  const agents = service('support-agents', { 'nhi.owner': 'team-support', 'nhi.business_unit': 'customer-support' }, target)
  const etl = service('nightly-etl', { 'nhi.id': 'sa-nightly-etl', 'nhi.type': 'service_account', 'nhi.owner': 'team-data', 'nhi.business_unit': 'data-platform' }, target)
  const gateway = service('partner-gateway', { 'nhi.business_unit': 'partnerships' }, target)
  const legacy = service('legacy-reports', {}, target)

  const tools = ['search_kb', 'create_ticket', 'lookup_order', 'send_email']
  const agentIds = [
    { id: 'agent-support-triage', calls: 40 * scale },
    { id: 'agent-research', calls: 15 * scale },
  ]
  await Promise.all(
    agentIds.map(({ id, calls }) =>
      withIdentity({ id, type: 'ai_agent', owner: 'team-support', businessUnit: 'customer-support' }, async () => {
        await tokenExchange('oauth2.client_credentials', async () => sleep(1), { tracer: agents.tracer, credential: `demo-client-secret-for-${id}` })
        summary.tokenExchanges++
        for (let i = 0; i < calls; i++) {
          const tool = tools[i % tools.length]!
          const fails = i % 13 === 12
          await toolCall(
            tool,
            async () => {
              await sleep(0)
              if (fails) throw new Error(`${tool} timed out`)
            },
            { tracer: agents.tracer },
          ).catch(() => undefined)
          if (fails) summary.toolCalls.failed++
          else summary.toolCalls.ok++
        }
      }),
    ),
  )

  for (let i = 0; i < 6 * scale; i++) {
    await workflowRun(i % 3 === 0 ? 'load-warehouse' : 'refresh-aggregates', async () => sleep(1), { tracer: etl.tracer })
    summary.workflowRuns++
  }
  await secretRotation('warehouse-password', async () => sleep(1), { tracer: etl.tracer })
  summary.secretRotations++

  const partners = [
    { id: 'int-crm-sync', key: 'demo-partner-key-crm', owner: 'team-crm' },
    { id: 'int-billing-export', key: 'demo-partner-key-billing', owner: 'team-finance' },
  ]
  for (let i = 0; i < 20 * scale; i++) {
    const partner = partners[i % partners.length]!
    await apiCall('GET /v1/orders/{id}', async () => sleep(0), {
      tracer: gateway.tracer,
      kind: SpanKind.SERVER,
      identity: { id: partner.id, type: 'integration', owner: partner.owner, businessUnit: 'partnerships' },
      credential: partner.key,
      attributes: { 'http.route': '/v1/orders/{id}', 'http.request.method': 'GET' },
    })
    summary.apiCalls++
  }

  for (let i = 0; i < 3 * scale; i++) {
    legacyRequest(legacy.tracer)
    summary.unidentifiedRequests++
  }

  await Promise.all([agents, etl, gateway, legacy].map((s) => s.provider.shutdown()))
  return summary
}

function legacyRequest(tracer: Tracer): void {
  tracer.startSpan('GET /reports/monthly', { kind: SpanKind.SERVER, attributes: { 'http.route': '/reports/monthly' } }).end()
}
