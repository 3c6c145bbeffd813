/**
 * What otel_traces stores of a span, exactly as the contrib
 * clickhouseexporter writes it (v0.161.0, the pinned version: attribute
 * values through pdata's `AsString`, ids as lowercase hex, kind and status
 * through pdata's `String()`), after applying the secrets rule; and which
 * spans cannot be stored faithfully, refused one by one with their reason
 * and reported as partial success. The receiver's encoding (rows.ts)
 * writes its rows from these.
 */
import { isSecretKey, looksLikeSecret, REDACTED_VALUE } from '@nhi-meter/instrumentation/redaction'
import type { Attribute, AttributeValue, ScopeSpans, Span, TraceExport } from './model.js'

/** pdata's `String()` of each span kind, by its number. */
export const SPAN_KIND_NAMES = ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']
/** pdata's `String()` of each status code, by its number. */
export const STATUS_CODE_NAMES = ['Unset', 'Ok', 'Error']
/** DateTime64(9) ends in 2262-04-11; later instants cannot be stored. */
const MAX_UNIX_NANO = 9_214_646_400_000_000_000n

/** Formats nanoseconds since the epoch as a ClickHouse DateTime64(9) literal in UTC. */
export function formatUnixNano(ns: bigint): string {
  // Split the decimal digits rather than divide: BigInt arithmetic allocates, and this runs per span.
  const digits = ns.toString()
  const split = digits.length - 9
  const seconds = split > 0 ? digits.slice(0, split) : '0'
  const fraction = split > 0 ? digits.slice(split) : digits.padStart(9, '0')
  if (seconds !== lastSecond) {
    const iso = new Date(Number(seconds) * 1000).toISOString()
    lastSecond = seconds
    lastSecondText = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`
  }
  return `${lastSecondText}.${fraction}`
}
// Spans of one export mostly start within the same second.
let lastSecond = ''
let lastSecondText = ''

const HEX_BYTES = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

/** Bytes as lowercase hex. */
export function hex(bytes: Uint8Array): string {
  let text = ''
  for (let i = 0; i < bytes.length; i++) text += HEX_BYTES[bytes[i]!]
  return text
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false
  return true
}

/** pdata's id-to-hex: an all-zero id is the empty string. */
export function idHex(bytes: Uint8Array): string {
  return isZero(bytes) ? '' : hex(bytes)
}

/**
 * String escaping of pdata's JSON for maps and slices. pdata does not apply
 * encoding/json's HTML escaping (`<`, `>`, `&` stay as they are), which the
 * live Collector test confirms; JSON.stringify escapes the same way.
 */
function goJsonString(s: string): string {
  return JSON.stringify(s)
}

/** Go's float formatting in encoding/json and pdata (ES6 number-to-string). */
function goFloat(n: number): string {
  return String(n)
}

function rawJson(value: AttributeValue): string {
  switch (value.kind) {
    case 'string':
      return goJsonString(value.value)
    case 'bool':
      return String(value.value)
    case 'int':
      return value.value.toString()
    case 'double':
      return Number.isFinite(value.value) ? goFloat(value.value) : 'null'
    case 'bytes':
      return goJsonString(Buffer.from(value.value).toString('base64'))
    case 'array':
      return `[${value.value.map(rawJson).join(',')}]`
    case 'kvlist': {
      // Go marshals maps with sorted keys; the last duplicate key wins, as in pcommon.Map.
      const entries = new Map<string, AttributeValue>()
      for (const kv of value.value) entries.set(kv.key, kv.value)
      const keys = [...entries.keys()].sort()
      return `{${keys.map((k) => `${goJsonString(k)}:${rawJson(entries.get(k)!)}`).join(',')}}`
    }
    case 'empty':
      return 'null'
  }
}

/** pdata's `Value.AsString()`. */
function asString(value: AttributeValue): string {
  switch (value.kind) {
    case 'string':
      return value.value
    case 'bool':
      return value.value ? 'true' : 'false'
    case 'int':
      return value.value.toString()
    case 'double':
      return goFloat(value.value)
    case 'bytes':
      return Buffer.from(value.value).toString('base64')
    case 'array':
    case 'kvlist':
      return rawJson(value)
    case 'empty':
      return ''
  }
}

// Attribute keys and values repeat across spans (tool names, ids, routes),
// so the secrets verdicts of short strings are memoised. Long strings are
// decided each time and never kept (a cache keyed by them would pin request
// bodies in memory), and the caches are cleared when they grow large, so
// their memory stays bounded (at most CACHE_LIMIT x MEMO_MAX_LENGTH
// characters each) under hostile high-cardinality input.
const CACHE_LIMIT = 50_000
const MEMO_MAX_LENGTH = 256
const secretKeyVerdicts = new Map<string, boolean>()
const secretValueVerdicts = new Map<string, boolean>()

function memo(cache: Map<string, boolean>, input: string, decide: (s: string) => boolean): boolean {
  if (input.length > MEMO_MAX_LENGTH) return decide(input)
  let verdict = cache.get(input)
  if (verdict === undefined) {
    verdict = decide(input)
    if (cache.size >= CACHE_LIMIT) cache.clear()
    cache.set(input, verdict)
  }
  return verdict
}

/** Characters held by the secrets caches, verdicts and memoised JSON text (the caches are private here, so the test of their bound reads this). */
export function secretVerdictCacheCharacters(): number {
  let n = 0
  for (const cache of [secretKeyVerdicts, secretValueVerdicts, keyTexts, valueTexts]) for (const key of cache.keys()) n += key.length
  return n
}

/**
 * Applies the secrets rule to a list of attributes and flattens it into a
 * string map. Arrays and maps are checked in their stored (JSON) form, so a
 * secret nested inside them is caught too.
 */
export function redactedMap(attributes: Attribute[]): Record<string, string> {
  const map: Record<string, string> = {}
  for (const { key, value } of attributes) {
    if (memo(secretKeyVerdicts, key, isSecretKey)) continue
    const stored = asString(value)
    map[key] = stored.length > 0 && memo(secretValueVerdicts, stored, looksLikeSecret) ? REDACTED_VALUE : stored
  }
  return map
}

/**
 * Applies the value half of the secrets rule to free text that is not an
 * attribute (span names, status messages, event names): a credential there
 * replaces the whole text, as it would an attribute value.
 */
export function redactedText(text: string): string {
  return text.length > 0 && memo(secretValueVerdicts, text, looksLikeSecret) ? REDACTED_VALUE : text
}

function rejectionReason(span: Span): string | undefined {
  if (span.traceId.length !== 16 || isZero(span.traceId)) return 'trace_id must be 16 bytes and not all zero'
  if (span.spanId.length !== 8 || isZero(span.spanId)) return 'span_id must be 8 bytes and not all zero'
  if (span.parentSpanId.length !== 0 && span.parentSpanId.length !== 8) return 'parent_span_id must be empty or 8 bytes'
  if (span.startTimeUnixNano === 0n) return 'start_time_unix_nano is required: a use event is billed at its start time'
  if (span.startTimeUnixNano >= MAX_UNIX_NANO || span.endTimeUnixNano >= MAX_UNIX_NANO) return 'timestamps beyond 2262 cannot be stored'
  if (span.endTimeUnixNano < span.startTimeUnixNano) return 'end_time_unix_nano is before start_time_unix_nano'
  for (const link of span.links) {
    if ((link.traceId.length !== 0 && link.traceId.length !== 16) || (link.spanId.length !== 0 && link.spanId.length !== 8)) {
      return 'a link has a malformed trace_id or span_id'
    }
  }
  for (const event of span.events) {
    if (event.timeUnixNano >= MAX_UNIX_NANO) return 'an event timestamp is beyond 2262'
  }
  return undefined
}

/** A resource as every row of its spans stores it. */
export interface StoredResource {
  attributes: Record<string, string>
  serviceName: string
}

/**
 * Visits each span of an export that can be stored, with its resource as
 * stored (secrets rule applied) and its scope; counts the others and says
 * why they were refused. The one traversal of the receiver's encoding
 * (rows.ts) and of the row objects the tests hold it to.
 */
export function eachStorableSpan(
  request: TraceExport,
  visit: (span: Span, scope: ScopeSpans, resource: StoredResource) => void,
): { rejectedSpans: number; rejectionReasons: string[] } {
  const reasons = new Set<string>()
  let rejectedSpans = 0
  for (const resourceSpans of request.resourceSpans) {
    const serviceAttribute = resourceSpans.resourceAttributes.findLast((a) => a.key === 'service.name')
    const attributes = redactedMap(resourceSpans.resourceAttributes)
    // The service name comes from the redacted map so a secret-looking service.name never leaks through it.
    const resource = { attributes, serviceName: serviceAttribute ? (attributes['service.name'] ?? '') : '' }
    for (const scope of resourceSpans.scopeSpans) {
      for (const span of scope.spans) {
        const reason = rejectionReason(span)
        if (reason) {
          rejectedSpans++
          reasons.add(reason)
        } else visit(span, scope, resource)
      }
    }
  }
  return { rejectedSpans, rejectionReasons: [...reasons] }
}

const json = JSON.stringify
/** Keys a plain object would reorder (array indexes) or drop (`__proto__`). */
const REORDERED_KEY = /^(?:\d+|__proto__)$/

/**
 * {@link redactedMap} serialized: the same JSON text as
 * `JSON.stringify(redactedMap(attributes))`, written straight from the
 * attributes when no key repeats and none is one a plain object would move
 * or drop (the common case), through the object otherwise.
 */
export function redactedMapJson(attributes: Attribute[]): string {
  // Repeated keys are found by comparing with the keys before, which is
  // quadratic: a span with more attributes than this goes through the object.
  if (attributes.length > MAX_DIRECT_ATTRIBUTES) return json(redactedMap(attributes))
  let out = '{'
  let kept: string[] | undefined
  for (const { key, value } of attributes) {
    const quotedKey = keyJson(key)
    if (quotedKey === REORDERED) return json(redactedMap(attributes))
    if (quotedKey === SECRET_KEY) continue
    if (kept === undefined) kept = [key]
    else if (kept.includes(key)) return json(redactedMap(attributes))
    else kept.push(key)
    out += `${kept.length === 1 ? '' : ','}${quotedKey}:${valueJson(asString(value))}`
  }
  return `${out}}`
}

/** Most attributes {@link redactedMapJson} writes directly. */
const MAX_DIRECT_ATTRIBUTES = 64

const SECRET_KEY = 0
const REORDERED = 1
// The JSON text of attribute keys, and of attribute values and free text
// (span names, status messages) as stored (secrets rule applied),
// memoised with the same bounds as the verdict caches above: keys and values
// repeat across spans, and each lookup saves a verdict lookup and a JSON.stringify.
const keyTexts = new Map<string, string | typeof SECRET_KEY | typeof REORDERED>()
const valueTexts = new Map<string, string>()

function keyJson(key: string): string | typeof SECRET_KEY | typeof REORDERED {
  let text = keyTexts.get(key)
  if (text === undefined) {
    text = REORDERED_KEY.test(key) ? REORDERED : memo(secretKeyVerdicts, key, isSecretKey) ? SECRET_KEY : json(key)
    if (key.length > MEMO_MAX_LENGTH) return text
    if (keyTexts.size >= CACHE_LIMIT) keyTexts.clear()
    keyTexts.set(key, text)
  }
  return text
}

/** {@link redactedText} of an attribute value or free text, as its JSON string. */
export function valueJson(stored: string): string {
  let text = valueTexts.get(stored)
  if (text === undefined) {
    text = json(stored.length > 0 && memo(secretValueVerdicts, stored, looksLikeSecret) ? REDACTED_VALUE : stored)
    if (stored.length > MEMO_MAX_LENGTH) return text
    if (valueTexts.size >= CACHE_LIMIT) valueTexts.clear()
    valueTexts.set(stored, text)
  }
  return text
}
