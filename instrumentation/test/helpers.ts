import { context, diag, DiagLogLevel, trace, type DiagLogger } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { nhiSpanProcessors, type NhiSpanProcessorsOptions } from '../src/sdk.js'
import { resetFailureReports } from '../src/report.js'

/** A real tracer provider with nhi-meter's processors, exporting to memory, registered globally. */
export interface TestTracing {
  exporter: InMemorySpanExporter
  provider: BasicTracerProvider
  /** Spans exported so far. */
  spans(): ReadableSpan[]
  /** The exported span with this name (fails when there is none or several). */
  span(name: string): ReadableSpan
  /** Unregisters everything. */
  stop(): Promise<void>
}

/** Starts tracing as an app using `nhiSpanProcessors` would, with immediate export so tests need not wait. */
export function startTestTracing(options: Partial<NhiSpanProcessorsOptions> & { resourceAttributes?: Record<string, string> } = {}): TestTracing {
  const exporter = new InMemorySpanExporter()
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'test-service', ...options.resourceAttributes }),
    spanProcessors: nhiSpanProcessors({ exporters: [exporter], batch: false, ...options }),
  })
  trace.setGlobalTracerProvider(provider)
  return {
    exporter,
    provider,
    spans: () => exporter.getFinishedSpans(),
    span: (name) => {
      const found = exporter.getFinishedSpans().filter((s) => s.name === name)
      if (found.length !== 1) throw new Error(`expected one span named ${name}, found ${found.length}: ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`)
      return found[0]!
    },
    stop: async () => {
      await provider.shutdown()
      trace.disable()
      context.disable()
    },
  }
}

/** A tracer for test code. */
export function testTracer() {
  return trace.getTracer('test')
}

/** A diag logger that records what it is told. */
export interface CapturedDiag {
  errors: string[]
  warnings: string[]
  infos: string[]
  stop(): void
}

/** Captures `diag` output at every level until `stop()`. */
export function captureDiag(): CapturedDiag {
  resetFailureReports()
  const captured: CapturedDiag = { errors: [], warnings: [], infos: [], stop: () => diag.disable() }
  const format = (message: string, args: unknown[]) => [message, ...args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a)))].join(' ')
  const logger: DiagLogger = {
    error: (m, ...a) => void captured.errors.push(format(m, a)),
    warn: (m, ...a) => void captured.warnings.push(format(m, a)),
    info: (m, ...a) => void captured.infos.push(format(m, a)),
    debug: () => {},
    verbose: () => {},
  }
  diag.setLogger(logger, { logLevel: DiagLogLevel.ALL, suppressOverrideMessage: true })
  return captured
}

/** Every string in a span's exported data: name, status, attributes of span, events, links and resource. */
export function exportedStrings(span: ReadableSpan): string[] {
  const out: string[] = [span.name]
  if (span.status.message) out.push(span.status.message)
  const collect = (attributes: Record<string, unknown> | undefined) => {
    for (const [key, value] of Object.entries(attributes ?? {})) {
      out.push(key)
      if (Array.isArray(value)) out.push(...value.map(String))
      else if (value !== undefined) out.push(String(value))
    }
  }
  collect(span.attributes)
  collect(span.resource.attributes)
  for (const event of span.events) {
    out.push(event.name)
    collect(event.attributes)
  }
  for (const link of span.links) collect(link.attributes)
  return out
}
