/**
 * A field-by-field OTLP trace decoder over protobufjs's wire Reader: the
 * same work protobufjs's generated code does, minus the intermediate message
 * and Long objects, so a span costs a few microseconds. Field numbers are
 * those of trace-service.proto; unknown fields are skipped as protobuf
 * requires. `decode-protobuf.test.ts` checks it against protobufjs's own
 * reflection decoder.
 */
import protobuf from 'protobufjs/minimal.js'
import type { Attribute, AttributeValue, ResourceSpans, ScopeSpans, Span, SpanEvent, SpanLink, TraceExport } from './model.js'

type Reader = protobuf.Reader

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LENGTH = 2
const MAX_DEPTH = 32
const EMPTY = new Uint8Array(0)

function expectWire(actual: number, expected: number, field: string): void {
  if (actual !== expected) throw new Error(`field ${field} has wire type ${actual}, expected ${expected}`)
}

function fixed64(reader: Reader): bigint {
  const low = reader.fixed32()
  const high = reader.fixed32()
  return (BigInt(high) << 32n) | BigInt(low)
}

/** A varint read as a signed 64-bit integer, exactly. */
function int64(reader: Reader): bigint {
  const long = reader.int64() as unknown as { low: number; high: number } | number
  if (typeof long === 'number') return BigInt(long)
  return BigInt.asIntN(64, (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0))
}

/** Runs `field` for each field of the embedded message at the reader's position. */
function message(reader: Reader, field: (tag: number, wire: number) => void): void {
  const end = reader.uint32() + reader.pos
  if (end > reader.len) throw new Error('embedded message runs past the end of the body')
  while (reader.pos < end) {
    const key = reader.uint32()
    field(key >>> 3, key & 7)
  }
  if (reader.pos !== end) throw new Error('embedded message overruns its declared length')
}

function anyValue(reader: Reader, depth: number): AttributeValue {
  if (depth > MAX_DEPTH) throw new Error('attribute values nested too deeply')
  let value: AttributeValue = { kind: 'empty' }
  message(reader, (tag, wire) => {
    switch (tag) {
      case 1:
        expectWire(wire, WIRE_LENGTH, 'AnyValue.string_value')
        value = { kind: 'string', value: reader.string() }
        break
      case 2:
        expectWire(wire, WIRE_VARINT, 'AnyValue.bool_value')
        value = { kind: 'bool', value: reader.bool() }
        break
      case 3:
        expectWire(wire, WIRE_VARINT, 'AnyValue.int_value')
        value = { kind: 'int', value: int64(reader) }
        break
      case 4:
        expectWire(wire, WIRE_FIXED64, 'AnyValue.double_value')
        value = { kind: 'double', value: reader.double() }
        break
      case 5: {
        expectWire(wire, WIRE_LENGTH, 'AnyValue.array_value')
        const values: AttributeValue[] = []
        message(reader, (t, w) => {
          if (t === 1) {
            expectWire(w, WIRE_LENGTH, 'ArrayValue.values')
            values.push(anyValue(reader, depth + 1))
          } else reader.skipType(w)
        })
        value = { kind: 'array', value: values }
        break
      }
      case 6: {
        expectWire(wire, WIRE_LENGTH, 'AnyValue.kvlist_value')
        const values: Attribute[] = []
        message(reader, (t, w) => {
          if (t === 1) {
            expectWire(w, WIRE_LENGTH, 'KeyValueList.values')
            values.push(keyValue(reader, depth + 1))
          } else reader.skipType(w)
        })
        value = { kind: 'kvlist', value: values }
        break
      }
      case 7:
        expectWire(wire, WIRE_LENGTH, 'AnyValue.bytes_value')
        value = { kind: 'bytes', value: reader.bytes() }
        break
      default:
        reader.skipType(wire)
    }
  })
  return value
}

function keyValue(reader: Reader, depth = 0): Attribute {
  let key = ''
  let value: AttributeValue = { kind: 'empty' }
  message(reader, (tag, wire) => {
    if (tag === 1) {
      expectWire(wire, WIRE_LENGTH, 'KeyValue.key')
      key = reader.string()
    } else if (tag === 2) {
      expectWire(wire, WIRE_LENGTH, 'KeyValue.value')
      value = anyValue(reader, depth)
    } else reader.skipType(wire)
  })
  return { key, value }
}

function event(reader: Reader): SpanEvent {
  const e: SpanEvent = { timeUnixNano: 0n, name: '', attributes: [] }
  message(reader, (tag, wire) => {
    if (tag === 1) {
      expectWire(wire, WIRE_FIXED64, 'Event.time_unix_nano')
      e.timeUnixNano = fixed64(reader)
    } else if (tag === 2) {
      expectWire(wire, WIRE_LENGTH, 'Event.name')
      e.name = reader.string()
    } else if (tag === 3) {
      expectWire(wire, WIRE_LENGTH, 'Event.attributes')
      e.attributes.push(keyValue(reader))
    } else reader.skipType(wire)
  })
  return e
}

function link(reader: Reader): SpanLink {
  const l: SpanLink = { traceId: EMPTY, spanId: EMPTY, traceState: '', attributes: [] }
  message(reader, (tag, wire) => {
    if (tag === 1) {
      expectWire(wire, WIRE_LENGTH, 'Link.trace_id')
      l.traceId = reader.bytes()
    } else if (tag === 2) {
      expectWire(wire, WIRE_LENGTH, 'Link.span_id')
      l.spanId = reader.bytes()
    } else if (tag === 3) {
      expectWire(wire, WIRE_LENGTH, 'Link.trace_state')
      l.traceState = reader.string()
    } else if (tag === 4) {
      expectWire(wire, WIRE_LENGTH, 'Link.attributes')
      l.attributes.push(keyValue(reader))
    } else reader.skipType(wire)
  })
  return l
}

function span(reader: Reader): Span {
  const s: Span = {
    traceId: EMPTY,
    spanId: EMPTY,
    parentSpanId: EMPTY,
    traceState: '',
    name: '',
    kind: 0,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: [],
    events: [],
    links: [],
    statusCode: 0,
    statusMessage: '',
  }
  message(reader, (tag, wire) => {
    switch (tag) {
      case 1:
        expectWire(wire, WIRE_LENGTH, 'Span.trace_id')
        s.traceId = reader.bytes()
        break
      case 2:
        expectWire(wire, WIRE_LENGTH, 'Span.span_id')
        s.spanId = reader.bytes()
        break
      case 3:
        expectWire(wire, WIRE_LENGTH, 'Span.trace_state')
        s.traceState = reader.string()
        break
      case 4:
        expectWire(wire, WIRE_LENGTH, 'Span.parent_span_id')
        s.parentSpanId = reader.bytes()
        break
      case 5:
        expectWire(wire, WIRE_LENGTH, 'Span.name')
        s.name = reader.string()
        break
      case 6:
        expectWire(wire, WIRE_VARINT, 'Span.kind')
        s.kind = reader.int32()
        break
      case 7:
        expectWire(wire, WIRE_FIXED64, 'Span.start_time_unix_nano')
        s.startTimeUnixNano = fixed64(reader)
        break
      case 8:
        expectWire(wire, WIRE_FIXED64, 'Span.end_time_unix_nano')
        s.endTimeUnixNano = fixed64(reader)
        break
      case 9:
        expectWire(wire, WIRE_LENGTH, 'Span.attributes')
        s.attributes.push(keyValue(reader))
        break
      case 11:
        expectWire(wire, WIRE_LENGTH, 'Span.events')
        s.events.push(event(reader))
        break
      case 13:
        expectWire(wire, WIRE_LENGTH, 'Span.links')
        s.links.push(link(reader))
        break
      case 15:
        expectWire(wire, WIRE_LENGTH, 'Span.status')
        message(reader, (t, w) => {
          if (t === 2) {
            expectWire(w, WIRE_LENGTH, 'Status.message')
            s.statusMessage = reader.string()
          } else if (t === 3) {
            expectWire(w, WIRE_VARINT, 'Status.code')
            s.statusCode = reader.int32()
          } else reader.skipType(w)
        })
        break
      default:
        reader.skipType(wire)
    }
  })
  return s
}

function scopeSpans(reader: Reader): ScopeSpans {
  const ss: ScopeSpans = { scopeName: '', scopeVersion: '', spans: [] }
  message(reader, (tag, wire) => {
    if (tag === 1) {
      expectWire(wire, WIRE_LENGTH, 'ScopeSpans.scope')
      message(reader, (t, w) => {
        if (t === 1) {
          expectWire(w, WIRE_LENGTH, 'InstrumentationScope.name')
          ss.scopeName = reader.string()
        } else if (t === 2) {
          expectWire(w, WIRE_LENGTH, 'InstrumentationScope.version')
          ss.scopeVersion = reader.string()
        } else reader.skipType(w)
      })
    } else if (tag === 2) {
      expectWire(wire, WIRE_LENGTH, 'ScopeSpans.spans')
      ss.spans.push(span(reader))
    } else reader.skipType(wire)
  })
  return ss
}

function resourceSpans(reader: Reader): ResourceSpans {
  const rs: ResourceSpans = { resourceAttributes: [], scopeSpans: [] }
  message(reader, (tag, wire) => {
    if (tag === 1) {
      expectWire(wire, WIRE_LENGTH, 'ResourceSpans.resource')
      message(reader, (t, w) => {
        if (t === 1) {
          expectWire(w, WIRE_LENGTH, 'Resource.attributes')
          rs.resourceAttributes.push(keyValue(reader))
        } else reader.skipType(w)
      })
    } else if (tag === 2) {
      expectWire(wire, WIRE_LENGTH, 'ResourceSpans.scope_spans')
      rs.scopeSpans.push(scopeSpans(reader))
    } else reader.skipType(wire)
  })
  return rs
}

/** Decodes an ExportTraceServiceRequest; throws on malformed wire data. */
export function decodeTraceExport(body: Uint8Array): TraceExport {
  // A Buffer gets protobufjs's BufferReader, which decodes strings natively.
  const reader = protobuf.Reader.create(Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength))
  const result: TraceExport = { resourceSpans: [] }
  while (reader.pos < reader.len) {
    const key = reader.uint32()
    if (key >>> 3 === 1) {
      expectWire(key & 7, WIRE_LENGTH, 'ExportTraceServiceRequest.resource_spans')
      result.resourceSpans.push(resourceSpans(reader))
    } else reader.skipType(key & 7)
  }
  return result
}
