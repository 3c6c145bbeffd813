/**
 * Rows for otel_traces the plain way: a decoded export converted span by
 * span into row objects, and row objects encoded as JSONCompactEachRow
 * lines. The receiver's one-pass encoding (otlp/rows.ts, encodeExport) is
 * tested against it, and writer tests encode their rows with it.
 */
import type { TraceExport } from '../otlp/model.js'
import type { OtelTraceRow } from '../otlp/rows.js'
import { eachStorableSpan, formatUnixNano, hex, idHex, redactedMap, redactedText, SPAN_KIND_NAMES, STATUS_CODE_NAMES } from '../otlp/stored-span.js'

/** The rows to store and what was refused. */
export interface ConvertedExport {
  rows: OtelTraceRow[]
  rejectedSpans: number
  /** One message per distinct reason, for the partial-success error_message. */
  rejectionReasons: string[]
}

/**
 * Encodes rows as JSONCompactEachRow (one JSON array per line, columns in
 * OTEL_TRACE_COLUMNS order). Lines are assembled by hand: the spans
 * of one resource share one attributes object, serialized once per call
 * instead of once per span, and empty event and link arrays are literals.
 */
export function encodeCompactRows(rows: readonly OtelTraceRow[]): Buffer {
  const resourceJson = new Map<Record<string, string>, string>()
  const json = JSON.stringify
  const list = (values: readonly unknown[]) => (values.length === 0 ? '[]' : json(values))
  const lines = new Array<string>(rows.length)
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!
    let resource = resourceJson.get(r.ResourceAttributes)
    if (resource === undefined) {
      resource = json(r.ResourceAttributes)
      resourceJson.set(r.ResourceAttributes, resource)
    }
    lines[i] =
      `[${json(r.Timestamp)},${json(r.TraceId)},${json(r.SpanId)},${json(r.ParentSpanId)},${json(r.TraceState)},${json(r.SpanName)},` +
      `${json(r.SpanKind)},${json(r.ServiceName)},${resource},${json(r.ScopeName)},${json(r.ScopeVersion)},${json(r.SpanAttributes)},` +
      `${json(r.Duration)},${json(r.StatusCode)},${json(r.StatusMessage)},${list(r['Events.Timestamp'])},${list(r['Events.Name'])},` +
      `${list(r['Events.Attributes'])},${list(r['Links.TraceId'])},${list(r['Links.SpanId'])},${list(r['Links.TraceState'])},${list(r['Links.Attributes'])}]`
  }
  return Buffer.from(lines.join('\n'))
}

/** Converts a decoded export to otel_traces rows, redacting secrets and rejecting spans that cannot be stored. */
export function toOtelTraceRows(request: TraceExport): ConvertedExport {
  const rows: OtelTraceRow[] = []
  const rejected = eachStorableSpan(request, (span, scope, resource) => {
    rows.push({
      Timestamp: formatUnixNano(span.startTimeUnixNano),
      TraceId: hex(span.traceId),
      SpanId: hex(span.spanId),
      ParentSpanId: idHex(span.parentSpanId),
      TraceState: span.traceState,
      SpanName: redactedText(span.name),
      SpanKind: SPAN_KIND_NAMES[span.kind] ?? '',
      ServiceName: resource.serviceName,
      ResourceAttributes: resource.attributes,
      ScopeName: scope.scopeName,
      ScopeVersion: scope.scopeVersion,
      SpanAttributes: redactedMap(span.attributes),
      Duration: (span.endTimeUnixNano - span.startTimeUnixNano).toString(),
      StatusCode: STATUS_CODE_NAMES[span.statusCode] ?? '',
      StatusMessage: redactedText(span.statusMessage),
      'Events.Timestamp': span.events.map((e) => formatUnixNano(e.timeUnixNano)),
      'Events.Name': span.events.map((e) => redactedText(e.name)),
      'Events.Attributes': span.events.map((e) => redactedMap(e.attributes)),
      'Links.TraceId': span.links.map((l) => idHex(l.traceId)),
      'Links.SpanId': span.links.map((l) => idHex(l.spanId)),
      'Links.TraceState': span.links.map((l) => l.traceState),
      'Links.Attributes': span.links.map((l) => redactedMap(l.attributes)),
    })
  })
  return { rows, ...rejected }
}
