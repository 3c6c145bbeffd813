/**
 * The reference the receiver's protobuf decoder (otlp/decode-protobuf.ts)
 * is tested against: the same bodies decoded with protobufjs's reflection
 * code from trace-service.proto, into the same model.
 */
import protobuf from 'protobufjs'
import { fileURLToPath } from 'node:url'
import { MalformedPayloadError, type Attribute, type AttributeValue, type TraceExport } from '../otlp/model.js'

const root = protobuf.loadSync(fileURLToPath(new URL('../otlp/trace-service.proto', import.meta.url)))
const ExportRequest = root.lookupType('nhimeter.otlp.ExportTraceServiceRequest')

/** protobufjs represents 64-bit fields as Long (or number when small). */
interface LongLike {
  low: number
  high: number
  unsigned: boolean
}
type Int64 = LongLike | number | null | undefined

function toBigInt(value: Int64, signed: boolean): bigint {
  if (value === null || value === undefined) return 0n
  if (typeof value === 'number') return BigInt(value)
  const unsigned = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0)
  return signed ? BigInt.asIntN(64, unsigned) : unsigned
}

/* eslint-disable @typescript-eslint/no-explicit-any -- protobufjs messages are untyped; every field is read defensively below */
function attributeValue(v: any, depth: number): AttributeValue {
  if (!v || depth > 32) return { kind: 'empty' }
  switch (v.value) {
    case 'stringValue':
      return { kind: 'string', value: v.stringValue }
    case 'boolValue':
      return { kind: 'bool', value: v.boolValue }
    case 'intValue':
      return { kind: 'int', value: toBigInt(v.intValue, true) }
    case 'doubleValue':
      return { kind: 'double', value: v.doubleValue }
    case 'bytesValue':
      return { kind: 'bytes', value: v.bytesValue }
    case 'arrayValue':
      return { kind: 'array', value: (v.arrayValue?.values ?? []).map((x: any) => attributeValue(x, depth + 1)) }
    case 'kvlistValue':
      return { kind: 'kvlist', value: attributes(v.kvlistValue?.values, depth + 1) }
    default:
      return { kind: 'empty' }
  }
}

function attributes(list: any[] | undefined, depth = 0): Attribute[] {
  return (list ?? []).map((kv) => ({ key: kv.key ?? '', value: attributeValue(kv.value, depth) }))
}

const EMPTY = new Uint8Array(0)

/** protobufjs leaves absent bytes fields as an empty array; the model wants a Uint8Array. */
function bytes(value: unknown): Uint8Array {
  return value instanceof Uint8Array && value.length > 0 ? value : EMPTY
}

/** Decodes with protobufjs's generated reflection code. */
export function decodeProtobufReflection(body: Uint8Array): TraceExport {
  let message: any
  try {
    message = ExportRequest.decode(body)
  } catch (error) {
    throw new MalformedPayloadError(`body is not a valid protobuf ExportTraceServiceRequest: ${(error as Error).message}`)
  }
  return {
    resourceSpans: (message.resourceSpans ?? []).map((rs: any) => ({
      resourceAttributes: attributes(rs.resource?.attributes),
      scopeSpans: (rs.scopeSpans ?? []).map((ss: any) => ({
        scopeName: ss.scope?.name ?? '',
        scopeVersion: ss.scope?.version ?? '',
        spans: (ss.spans ?? []).map((s: any) => ({
          traceId: bytes(s.traceId),
          spanId: bytes(s.spanId),
          parentSpanId: bytes(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: s.kind ?? 0,
          startTimeUnixNano: toBigInt(s.startTimeUnixNano, false),
          endTimeUnixNano: toBigInt(s.endTimeUnixNano, false),
          attributes: attributes(s.attributes),
          events: (s.events ?? []).map((e: any) => ({
            timeUnixNano: toBigInt(e.timeUnixNano, false),
            name: e.name ?? '',
            attributes: attributes(e.attributes),
          })),
          links: (s.links ?? []).map((l: any) => ({
            traceId: bytes(l.traceId),
            spanId: bytes(l.spanId),
            traceState: l.traceState ?? '',
            attributes: attributes(l.attributes),
          })),
          statusCode: s.status?.code ?? 0,
          statusMessage: s.status?.message ?? '',
        })),
      })),
    })),
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */
