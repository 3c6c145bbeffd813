/**
 * The receiver's view of an OTLP trace export, independent of the wire
 * encoding: protobuf and JSON both decode into these types, so validation,
 * redaction and row building are written once.
 */

/** An OTLP AnyValue. 64-bit integers stay exact as bigint. */
export type AttributeValue =
  | { kind: 'string'; value: string }
  | { kind: 'bool'; value: boolean }
  | { kind: 'int'; value: bigint }
  | { kind: 'double'; value: number }
  | { kind: 'bytes'; value: Uint8Array }
  | { kind: 'array'; value: AttributeValue[] }
  | { kind: 'kvlist'; value: Attribute[] }
  | { kind: 'empty' }

/** One key/value attribute. */
export interface Attribute {
  key: string
  value: AttributeValue
}

/** A span event. */
export interface SpanEvent {
  timeUnixNano: bigint
  name: string
  attributes: Attribute[]
}

/** A span link. Ids are raw bytes (validated later). */
export interface SpanLink {
  traceId: Uint8Array
  spanId: Uint8Array
  traceState: string
  attributes: Attribute[]
}

/** One span with its ids as raw bytes; validation decides whether it is accepted. */
export interface Span {
  traceId: Uint8Array
  spanId: Uint8Array
  parentSpanId: Uint8Array
  traceState: string
  name: string
  kind: number
  startTimeUnixNano: bigint
  endTimeUnixNano: bigint
  attributes: Attribute[]
  events: SpanEvent[]
  links: SpanLink[]
  statusCode: number
  statusMessage: string
}

/** Spans of one instrumentation scope. */
export interface ScopeSpans {
  scopeName: string
  scopeVersion: string
  spans: Span[]
}

/** Spans of one resource. */
export interface ResourceSpans {
  resourceAttributes: Attribute[]
  scopeSpans: ScopeSpans[]
}

/** A decoded ExportTraceServiceRequest. */
export interface TraceExport {
  resourceSpans: ResourceSpans[]
}

/** Thrown for a payload that cannot be decoded at all: the receiver answers 400. */
export class MalformedPayloadError extends Error {
  override readonly name = 'MalformedPayloadError'
}
