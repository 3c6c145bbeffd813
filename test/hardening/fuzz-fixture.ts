/**
 * The service the fuzzing tests attack: the real `npm start` process on
 * loopback with a fresh data directory, loaded the way users load it. The
 * demo workload goes through the real OpenTelemetry SDK and exporter into
 * the built-in receiver, a few spans carry identity and activity names full
 * of quoting and template characters (legitimate data that looks hostile),
 * and an inventory is declared through POST /v1/inventory.
 */
import { runDemoWorkload, type WorkloadSummary } from '../demo/workload.js'
import { exported, makeSpans, sendSpans, SpanKind, SpanStatusCode } from '../helpers/otel.js'
import { startService, type ServiceUnderTest } from '../helpers/service.js'

/** Identity ids in the seeded data that contain characters a careless query would misread. */
export const AWKWARD_IDS = ["agent-o'brien", 'bot-`tick`-{id:String}', 'sa-ünïcode-☃'] as const

/** Identities declared by the seed. */
export const DECLARED = [
  { id: 'agent-support-triage', type: 'ai_agent', owner: 'team-support', business_unit: 'customer-support', tier: 'standard', approved_activities: ['token_exchange', 'tool_invocation:search_*'] },
  { id: 'int-crm-sync', type: 'integration', owner: 'team-crm', business_unit: 'sales', tier: 'standard', approved_activities: [] },
  { id: 'sa-nightly-etl', type: 'service_account', owner: 'team-data', business_unit: 'data-platform', tier: 'standard', approved_activities: [] },
  { id: 'sa-never-used', type: 'service_account', owner: 'team-finance', business_unit: 'finance', tier: 'standard', approved_activities: [] },
  { id: AWKWARD_IDS[0], type: 'ai_agent', owner: "team-'quotes'", business_unit: 'research', tier: 'standard', approved_activities: ['tool_invocation'] },
]

/** A seeded service and its admin key. */
export interface SeededService {
  service: ServiceUnderTest
  key: string
  summary: WorkloadSummary
  /** Start of the UTC day the extra spans were placed on. */
  seededDay: Date
}

/** Starts the service and loads it; `env` is passed to the process. */
export async function startSeededService(env: Record<string, string> = {}): Promise<SeededService> {
  const service = await startService({ env })
  const key = service.adminKey
  if (!key) throw new Error(`the service printed no admin key:\n${service.output()}`)
  const headers = { Authorization: `Bearer ${key}` }
  try {
    const summary = await runDemoWorkload({ tracesUrl: service.otlpUrl, headers })

    // Earlier this month (or the last day of the previous one on the 1st), so ranges ending now include them.
    const now = new Date()
    const seededDay = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), Math.max(1, now.getUTCDate() - 1)))
    const start = (offsetMs: number) => new Date(seededDay.getTime() + 3_600_000 + offsetMs)
    const spans = await makeSpans({ 'service.name': 'awkward-tools', 'nhi.business_unit': 'research' }, (tracer) => {
      AWKWARD_IDS.forEach((id, i) => {
        for (let n = 0; n < 5; n++) {
          const span = tracer.startSpan('execute_tool', {
            startTime: start(i * 60_000 + n * 1000),
            attributes: {
              'nhi.id': id,
              'gen_ai.operation.name': 'execute_tool',
              'gen_ai.tool.name': n % 2 ? "search'; DROP TABLE otel_traces; --" : '{x:Identifier} FORMAT TSV SETTINGS max_threads=1',
            },
          })
          if (n === 4) span.setStatus({ code: SpanStatusCode.ERROR, message: 'tool failed' })
          span.end(start(i * 60_000 + n * 1000 + 50))
        }
      })
      tracer.startSpan('GET /health', { kind: SpanKind.SERVER, startTime: start(500_000) }).end(start(500_010))
    })
    if (!exported(await sendSpans(spans, { url: service.otlpUrl, protocol: 'protobuf', headers }))) throw new Error('the receiver refused the seed spans')

    const declared = await fetch(`${service.apiUrl}/v1/inventory`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(DECLARED) })
    if (declared.status !== 200) throw new Error(`POST /v1/inventory answered ${declared.status}: ${await declared.text()}`)
    return { service, key, summary, seededDay }
  } catch (error) {
    await service.stop()
    throw error
  }
}
