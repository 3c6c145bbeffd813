/**
 * Real OpenTelemetry SDK spans and real OTLP exporters for tests: spans are
 * made by a BasicTracerProvider and sent by the same exporters an
 * application uses (protobuf or JSON over HTTP).
 */
import { type Attributes, type Tracer, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'

export { SpanKind, SpanStatusCode }

/** Records the spans `build` makes, under a resource with these attributes. */
export async function makeSpans(resource: Attributes, build: (tracer: Tracer) => void | Promise<void>): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes(resource), spanProcessors: [new SimpleSpanProcessor(memory)] })
  await build(provider.getTracer('nhi-meter-test', '1.0.0'))
  await provider.forceFlush()
  const spans = memory.getFinishedSpans()
  await provider.shutdown()
  return spans
}

/** Wire encodings of OTLP/HTTP. */
export type OtlpProtocol = 'protobuf' | 'json'

/** Sends spans through the real OTLP/HTTP exporter and reports its result. */
export async function sendSpans(spans: ReadableSpan[], options: { url: string; protocol: OtlpProtocol; headers?: Record<string, string>; compression?: 'gzip' | 'none' }): Promise<ExportResult> {
  const config = { url: options.url, headers: options.headers ?? {}, timeoutMillis: 30_000, ...(options.compression ? { compression: options.compression as never } : {}) }
  const exporter = options.protocol === 'json' ? new JsonExporter(config) : new ProtoExporter(config)
  const result = await new Promise<ExportResult>((resolve) => exporter.export(spans, resolve))
  await exporter.shutdown()
  return result
}

/** True when an export succeeded. */
export function exported(result: ExportResult): boolean {
  return result.code === ExportResultCode.SUCCESS
}

/** A fixed instant in November 2026 plus an offset, for spans with known start times. */
export function at(iso: string, offsetMs = 0): Date {
  return new Date(new Date(iso).getTime() + offsetMs)
}
