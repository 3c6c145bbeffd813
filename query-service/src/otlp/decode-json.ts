/**
 * Decodes OTLP/HTTP JSON bodies as the OTLP specification defines them:
 * lowerCamelCase field names (the protobuf names in snake_case are accepted
 * too, as protobuf JSON parsers do), trace and span ids as hex strings,
 * enums as integers (or their names), 64-bit integers as strings or numbers,
 * bytes values as base64. Unknown fields are ignored; a field of the wrong
 * type makes the whole payload malformed, with a message that says where.
 */
import { MalformedPayloadError, type Attribute, type AttributeValue, type Span, type TraceExport } from './model.js'

type Json = unknown
type Obj = Record<string, Json>

const SPAN_KINDS: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
}
const STATUS_CODES: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 }

function fail(path: string, problem: string): never {
  throw new MalformedPayloadError(`${path}: ${problem}`)
}

function isObject(value: Json): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Reads a field by its camelCase name or its snake_case protobuf name. */
function field(obj: Obj, camel: string): Json {
  if (camel in obj) return obj[camel]
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
  return obj[snake]
}

function object(value: Json, path: string): Obj | undefined {
  if (value === undefined || value === null) return undefined
  if (!isObject(value)) fail(path, 'must be an object')
  return value
}

function array(value: Json, path: string): Json[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) fail(path, 'must be an array')
  return value
}

function string(value: Json, path: string): string {
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') fail(path, 'must be a string')
  return value
}

const INT64 = /^-?\d{1,20}$/

function int64(value: Json, path: string, signed: boolean): bigint {
  if (value === undefined || value === null) return 0n
  let parsed: bigint
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) fail(path, 'must be an integer')
    parsed = BigInt(value)
  } else if (typeof value === 'string' && INT64.test(value)) {
    parsed = BigInt(value)
  } else {
    fail(path, 'must be an integer or a decimal string')
  }
  const [min, max] = signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n]
  if (parsed < min || parsed > max) fail(path, `out of range for a ${signed ? 'signed' : 'unsigned'} 64-bit integer`)
  return parsed
}

function enumValue(value: Json, path: string, names: Record<string, number>): number {
  if (value === undefined || value === null) return 0
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && value in names) return names[value]!
  fail(path, `must be an integer or one of ${Object.keys(names).join(', ')}`)
}

const HEX = /^[0-9a-fA-F]*$/

function hexId(value: Json, path: string): Uint8Array {
  const hex = string(value, path)
  if (!HEX.test(hex) || hex.length % 2 !== 0) fail(path, 'must be a hex string')
  return Buffer.from(hex, 'hex')
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

function anyValue(value: Json, path: string, depth: number): AttributeValue {
  if (depth > 32) fail(path, 'nested too deeply')
  const obj = object(value, path)
  if (!obj) return { kind: 'empty' }
  if ('stringValue' in obj || 'string_value' in obj) return { kind: 'string', value: string(field(obj, 'stringValue'), `${path}.stringValue`) }
  if ('boolValue' in obj || 'bool_value' in obj) {
    const b = field(obj, 'boolValue')
    if (typeof b !== 'boolean') fail(`${path}.boolValue`, 'must be a boolean')
    return { kind: 'bool', value: b }
  }
  if ('intValue' in obj || 'int_value' in obj) return { kind: 'int', value: int64(field(obj, 'intValue'), `${path}.intValue`, true) }
  if ('doubleValue' in obj || 'double_value' in obj) {
    const d = field(obj, 'doubleValue')
    if (typeof d === 'number') return { kind: 'double', value: d }
    if (d === 'NaN' || d === 'Infinity' || d === '-Infinity') return { kind: 'double', value: Number(d) }
    if (typeof d === 'string' && d.trim() !== '' && Number.isFinite(Number(d))) return { kind: 'double', value: Number(d) }
    fail(`${path}.doubleValue`, 'must be a number')
  }
  if ('bytesValue' in obj || 'bytes_value' in obj) {
    const b = string(field(obj, 'bytesValue'), `${path}.bytesValue`)
    if (!BASE64.test(b)) fail(`${path}.bytesValue`, 'must be base64')
    return { kind: 'bytes', value: Buffer.from(b, 'base64') }
  }
  if ('arrayValue' in obj || 'array_value' in obj) {
    const arr = object(field(obj, 'arrayValue'), `${path}.arrayValue`)
    return { kind: 'array', value: array(arr?.values, `${path}.arrayValue.values`).map((v, i) => anyValue(v, `${path}.arrayValue.values[${i}]`, depth + 1)) }
  }
  if ('kvlistValue' in obj || 'kvlist_value' in obj) {
    const kv = object(field(obj, 'kvlistValue'), `${path}.kvlistValue`)
    return { kind: 'kvlist', value: attributes(kv?.values, `${path}.kvlistValue.values`, depth + 1) }
  }
  return { kind: 'empty' }
}

function attributes(value: Json, path: string, depth = 0): Attribute[] {
  return array(value, path).map((item, i) => {
    const kv = object(item, `${path}[${i}]`) ?? {}
    return { key: string(kv.key, `${path}[${i}].key`), value: anyValue(kv.value, `${path}[${i}].value`, depth) }
  })
}

function span(value: Json, path: string): Span {
  const s = object(value, path) ?? {}
  const status = object(s.status, `${path}.status`) ?? {}
  return {
    traceId: hexId(field(s, 'traceId'), `${path}.traceId`),
    spanId: hexId(field(s, 'spanId'), `${path}.spanId`),
    parentSpanId: hexId(field(s, 'parentSpanId'), `${path}.parentSpanId`),
    traceState: string(field(s, 'traceState'), `${path}.traceState`),
    name: string(s.name, `${path}.name`),
    kind: enumValue(s.kind, `${path}.kind`, SPAN_KINDS),
    startTimeUnixNano: int64(field(s, 'startTimeUnixNano'), `${path}.startTimeUnixNano`, false),
    endTimeUnixNano: int64(field(s, 'endTimeUnixNano'), `${path}.endTimeUnixNano`, false),
    attributes: attributes(s.attributes, `${path}.attributes`),
    events: array(s.events, `${path}.events`).map((e, i) => {
      const ev = object(e, `${path}.events[${i}]`) ?? {}
      return {
        timeUnixNano: int64(field(ev, 'timeUnixNano'), `${path}.events[${i}].timeUnixNano`, false),
        name: string(ev.name, `${path}.events[${i}].name`),
        attributes: attributes(ev.attributes, `${path}.events[${i}].attributes`),
      }
    }),
    links: array(s.links, `${path}.links`).map((l, i) => {
      const link = object(l, `${path}.links[${i}]`) ?? {}
      return {
        traceId: hexId(field(link, 'traceId'), `${path}.links[${i}].traceId`),
        spanId: hexId(field(link, 'spanId'), `${path}.links[${i}].spanId`),
        traceState: string(field(link, 'traceState'), `${path}.links[${i}].traceState`),
        attributes: attributes(link.attributes, `${path}.links[${i}].attributes`),
      }
    }),
    statusCode: enumValue(status.code, `${path}.status.code`, STATUS_CODES),
    statusMessage: string(status.message, `${path}.status.message`),
  }
}

/** Decodes an OTLP/JSON ExportTraceServiceRequest; throws MalformedPayloadError with the offending path. */
export function decodeJson(body: Uint8Array): TraceExport {
  let parsed: Json
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))
  } catch (error) {
    throw new MalformedPayloadError(`body is not valid JSON: ${(error as Error).message}`)
  }
  const root = object(parsed, 'request')
  if (!root) fail('request', 'must be an object')
  return {
    resourceSpans: array(field(root, 'resourceSpans'), 'resourceSpans').map((rsValue, r) => {
      const rs = object(rsValue, `resourceSpans[${r}]`) ?? {}
      const resource = object(rs.resource, `resourceSpans[${r}].resource`) ?? {}
      return {
        resourceAttributes: attributes(resource.attributes, `resourceSpans[${r}].resource.attributes`),
        scopeSpans: array(field(rs, 'scopeSpans'), `resourceSpans[${r}].scopeSpans`).map((ssValue, s) => {
          const path = `resourceSpans[${r}].scopeSpans[${s}]`
          const ss = object(ssValue, path) ?? {}
          const scope = object(ss.scope, `${path}.scope`) ?? {}
          return {
            scopeName: string(scope.name, `${path}.scope.name`),
            scopeVersion: string(scope.version, `${path}.scope.version`),
            spans: array(ss.spans, `${path}.spans`).map((sp, i) => span(sp, `${path}.spans[${i}]`)),
          }
        }),
      }
    }),
  }
}
