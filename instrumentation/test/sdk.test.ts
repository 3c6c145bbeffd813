import { trace } from '@opentelemetry/api'
import { OTLPTraceExporter as OTLPHttpJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as OTLPHttpProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { ConsoleSpanExporter, InMemorySpanExporter } from '@opentelemetry/sdk-trace'
import type { Resource } from '@opentelemetry/resources'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { withIdentity } from '../src/identity.js'
import { batchSettingsFromEnv, startNhiMeter, traceExportersFromEnv, type NhiMeter } from '../src/sdk.js'
import { captureDiag } from './helpers.js'

let meter: NhiMeter | undefined
afterEach(async () => {
  await meter?.shutdown()
  meter = undefined
  vi.unstubAllEnvs()
})

function start(exporter: InMemorySpanExporter, options: Parameters<typeof startNhiMeter>[0] = {}): NhiMeter {
  meter = startNhiMeter({ exporters: [exporter], batch: false, ...options })
  return meter
}

describe('startNhiMeter', () => {
  it('puts the static identity from NHI_* variables on the resource', async () => {
    vi.stubEnv('NHI_ID', 'svc-ledger')
    vi.stubEnv('NHI_TYPE', 'workload')
    vi.stubEnv('NHI_OWNER', 'team-ledger')
    vi.stubEnv('NHI_BUSINESS_UNIT', 'finance')
    vi.stubEnv('OTEL_SERVICE_NAME', 'ledger')
    const exporter = new InMemorySpanExporter()
    start(exporter)
    trace.getTracer('t').startSpan('work').end()
    await meter!.forceFlush()
    const [span] = exporter.getFinishedSpans()
    expect(span!.resource.attributes).toMatchObject({
      'service.name': 'ledger',
      'nhi.id': 'svc-ledger',
      'nhi.type': 'workload',
      'nhi.owner': 'team-ledger',
      'nhi.business_unit': 'finance',
    })
    expect(span!.attributes['nhi.id']).toBeUndefined()
  })

  it('lets options win over NHI_* field by field, and NHI_* win over OTEL_RESOURCE_ATTRIBUTES', async () => {
    vi.stubEnv('NHI_ID', 'from-nhi-env')
    vi.stubEnv('NHI_OWNER', 'owner-from-env')
    vi.stubEnv('OTEL_RESOURCE_ATTRIBUTES', 'nhi.id=from-otel-env,nhi.business_unit=bu-from-otel,deployment.environment.name=test')
    const exporter = new InMemorySpanExporter()
    start(exporter, { identity: { owner: 'owner-from-options' } })
    trace.getTracer('t').startSpan('work').end()
    await meter!.forceFlush()
    expect(exporter.getFinishedSpans()[0]!.resource.attributes).toMatchObject({
      'nhi.id': 'from-nhi-env',
      'nhi.owner': 'owner-from-options',
      'nhi.business_unit': 'bu-from-otel',
      'deployment.environment.name': 'test',
    })
  })

  it('a scoped identity goes on the span, where it wins over the resource identity', async () => {
    vi.stubEnv('NHI_ID', 'svc-gateway')
    const exporter = new InMemorySpanExporter()
    start(exporter)
    withIdentity({ id: 'agent-support', type: 'ai_agent' }, () => trace.getTracer('t').startSpan('delegated').end())
    await meter!.forceFlush()
    const [span] = exporter.getFinishedSpans()
    expect(span!.attributes['nhi.id']).toBe('agent-support')
    expect(span!.resource.attributes['nhi.id']).toBe('svc-gateway')
  })

  it('redacts the resource as well as spans', async () => {
    vi.stubEnv('OTEL_RESOURCE_ATTRIBUTES', 'deploy.token=abc123,team=payments')
    const exporter = new InMemorySpanExporter()
    start(exporter)
    trace.getTracer('t').startSpan('work').end()
    await meter!.forceFlush()
    const resource: Resource = exporter.getFinishedSpans()[0]!.resource
    expect(resource.attributes['deploy.token']).toBeUndefined()
    expect(resource.attributes.team).toBe('payments')
  })

  it('a hook that throws is reported through diag and the span is still exported', async () => {
    const diag = captureDiag()
    const exporter = new InMemorySpanExporter()
    start(exporter, {
      onSpanStart: () => {
        throw new Error('hook bug')
      },
    })
    trace.getTracer('t').startSpan('survives').end()
    await meter!.forceFlush()
    diag.stop()
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['survives'])
    expect(diag.errors.join('\n')).toContain('hook bug')
  })

  it('never throws: a start-up failure is reported and the app goes on untraced', () => {
    const diag = captureDiag()
    meter = startNhiMeter({ exporters: [new InMemorySpanExporter()], sdk: { resource: 'not a resource' as never } })
    diag.stop()
    expect(meter.started).toBe(false)
    expect(diag.errors.join('\n')).toContain('starting nhi-meter')
  })

  it('can be stopped and started again in one process', async () => {
    const first = new InMemorySpanExporter()
    await start(first).shutdown()
    const second = new InMemorySpanExporter()
    start(second)
    trace.getTracer('t').startSpan('again').end()
    await meter!.forceFlush()
    expect(second.getFinishedSpans().map((s) => s.name)).toEqual(['again'])
    expect(first.getFinishedSpans()).toEqual([])
  })
})

describe('batch settings', () => {
  /** Ends `count` spans and returns the sizes of the batches the exporter was handed. */
  async function batchSizes(count: number, options: Parameters<typeof startNhiMeter>[0]): Promise<number[]> {
    const exporter = new InMemorySpanExporter()
    const sizes: number[] = []
    const export_ = exporter.export.bind(exporter)
    exporter.export = (spans, done) => {
      sizes.push(spans.length)
      export_(spans, done)
    }
    meter = startNhiMeter({ exporters: [exporter], ...options })
    for (let i = 0; i < count; i++) trace.getTracer('t').startSpan(`work ${i}`).end()
    await meter.forceFlush()
    return sizes
  }

  it('follow the OTEL_BSP_* variables of the environment given, on either SDK line', async () => {
    expect(await batchSizes(5, { env: { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '2' } })).toEqual([2, 2, 1])
  })

  it('set in code win over the variables, field by field', async () => {
    expect(await batchSizes(5, { env: { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '2' }, batch: { maxExportBatchSize: 3 } })).toEqual([3, 2])
    expect(batchSettingsFromEnv({ maxQueueSize: 10 }, { OTEL_BSP_MAX_QUEUE_SIZE: '99', OTEL_BSP_SCHEDULE_DELAY: ' 250 ' })).toEqual({ maxQueueSize: 10, scheduledDelayMillis: 250 })
  })

  it('ignore a variable that is not a number, with a warning naming it', () => {
    const diag = captureDiag()
    expect(batchSettingsFromEnv({}, { OTEL_BSP_EXPORT_TIMEOUT: 'soon' })).toEqual({})
    diag.stop()
    expect(diag.warnings.join('\n')).toContain('OTEL_BSP_EXPORT_TIMEOUT')
  })
})

describe('trace exporters from OTEL_* variables', () => {
  it('default to OTLP over HTTP with protobuf, as the specification sets it for SDKs', () => {
    const exporters = traceExportersFromEnv({})
    expect(exporters).toHaveLength(1)
    expect(exporters[0]).toBeInstanceOf(OTLPHttpProtoTraceExporter)
  })

  it('honour the protocol and the exporter list', () => {
    expect(traceExportersFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })[0]).toBeInstanceOf(OTLPHttpJsonTraceExporter)
    expect(traceExportersFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' })[0]).toBeInstanceOf(OTLPHttpJsonTraceExporter)
    const both = traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'otlp, console' })
    expect(both.map((e) => e.constructor)).toEqual([OTLPHttpProtoTraceExporter, ConsoleSpanExporter])
    expect(traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'none' })).toEqual([])
  })

  it('warn about values they do not support', () => {
    const diag = captureDiag()
    expect(traceExportersFromEnv({ OTEL_TRACES_EXPORTER: 'zipkin' })).toEqual([])
    expect(traceExportersFromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })[0]).toBeInstanceOf(OTLPHttpProtoTraceExporter)
    diag.stop()
    expect(diag.warnings.join('\n')).toMatch(/zipkin[\s\S]*grpc/)
  })
})
