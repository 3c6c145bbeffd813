import type { Attributes, AttributeValue, Link, SpanContext } from '@opentelemetry/api'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources'
import type { ReadableSpan, SpanExporter, TimedEvent } from '@opentelemetry/sdk-trace'
import { fingerprintCredential, resolveFingerprintKey } from './fingerprint.js'
import { isSecretKey, looksLikeSecret, REDACTED_VALUE } from './redaction.js'
import { reportFailure } from './report.js'

/** Options of the redaction step. */
export interface RedactionOptions {
  /** Redact before export. Default true; turning it off lets secrets reach storage unless the Collector or receiver drops them. */
  enabled?: boolean
  /**
   * What replaces a value that looks like a secret: `replace` (default) puts
   * `[REDACTED]`, as the Collector and the built-in receiver do; `fingerprint`
   * puts the value's `fp_…` fingerprint, so reuse of one leaked secret can still be traced.
   * Attributes whose key names a secret (`*.token`, `*.password`, …) are always dropped.
   */
  secretValues?: 'replace' | 'fingerprint'
  /** HMAC key for `fingerprint`. Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
}

/**
 * What the redactor remembers about one attribute key: whether the key names
 * a secret, and the last few values seen under it that were found safe.
 * Attribute names are few and most values repeat (methods, hosts, routes,
 * identities), while a regex test costs about as much as our whole per-span
 * budget; comparing a value with a few remembered ones costs almost nothing,
 * allocates nothing, and a value unique to each span (an id in a URL) simply
 * falls through to the test. Only safe values are remembered: no secret is
 * ever held here.
 */
interface KeyState {
  readonly secretKey: boolean
  readonly recentSafe: string[]
  /**
   * Values of some keys never repeat (an id in every URL); comparing each with
   * the remembered ones is then pure loss, and not small: equal-length values
   * with a long common prefix are compared almost to the end. Such keys stop
   * remembering for a while (`skip` checks) and are re-evaluated after it.
   */
  hits: number
  misses: number
  skip: number
}

/** Safe values remembered per key. */
const RECENT_SAFE_PER_KEY = 4
/** Keys remembered; the map is cleared when it reaches this size, so odd keys cannot grow it without limit. */
const KEY_STATE_LIMIT = 8192
/** Checks after which a key's hit rate is judged, and for which a key with too few hits stops remembering. */
const HIT_RATE_WINDOW = 256
/** Longer values are not remembered (they are rarely repeated, and comparing them is not free). */
const REMEMBERED_VALUE_MAX_LENGTH = 512
/** Pseudo-keys for strings that are not attribute values. */
const SPAN_NAME = '\u0000span.name'
const EVENT_NAME = '\u0000event.name'
const STATUS_MESSAGE = '\u0000status.message'

/**
 * Applies the shared secrets rule (`redaction.ts`, README "Redaction") to whole
 * spans: attributes of the span, its events and links and its resource, the
 * span name and the status message. Spans with nothing to redact are passed
 * through as they are; others are exported as a redacted copy, so the live
 * span is never changed.
 */
export class SpanRedactor {
  private readonly fingerprintValues: boolean
  private readonly fingerprintKey: string | undefined
  private readonly keys = new Map<string, KeyState>()
  private readonly lastKeys: string[] = []
  private readonly lastStates: KeyState[] = []
  private readonly resources = new WeakMap<Resource, Resource>()

  constructor(options: Omit<RedactionOptions, 'enabled'> = {}) {
    this.fingerprintValues = options.secretValues === 'fingerprint'
    this.fingerprintKey = this.fingerprintValues ? resolveFingerprintKey(options.fingerprintKey) : undefined
  }

  /** The span as it may be exported: the same object when nothing needed redaction. */
  redactSpan(span: ReadableSpan): ReadableSpan {
    const attributes = this.redactAttributes(span.attributes)
    const events = this.redactEvents(span.events)
    const links = this.redactLinks(span.links)
    const resource = this.redactResource(span.resource)
    const name = this.redactText(this.keyState(SPAN_NAME), span.name)
    const statusMessage = span.status.message === undefined ? undefined : this.redactText(this.keyState(STATUS_MESSAGE), span.status.message)
    if (
      attributes === span.attributes &&
      events === span.events &&
      links === span.links &&
      resource === span.resource &&
      name === span.name &&
      statusMessage === span.status.message
    ) {
      return span
    }
    const spanContext: SpanContext = span.spanContext()
    return {
      name,
      kind: span.kind,
      spanContext: () => spanContext,
      parentSpanContext: span.parentSpanContext,
      startTime: span.startTime,
      endTime: span.endTime,
      status: statusMessage === span.status.message ? span.status : { ...span.status, message: statusMessage },
      attributes,
      links,
      events,
      duration: span.duration,
      ended: span.ended,
      resource,
      instrumentationScope: span.instrumentationScope,
      droppedAttributesCount: span.droppedAttributesCount,
      droppedEventsCount: span.droppedEventsCount,
      droppedLinksCount: span.droppedLinksCount,
    }
  }

  /** Redacted resource, computed once per resource object. */
  redactResource(resource: Resource): Resource {
    const known = this.resources.get(resource)
    if (known) return known
    const attributes = this.redactAttributes(resource.attributes)
    const redacted = attributes === resource.attributes ? resource : resourceFromAttributes(attributes, { schemaUrl: resource.schemaUrl })
    this.resources.set(resource, redacted)
    return redacted
  }

  /** The attributes without secrets: the same object when nothing changed. */
  redactAttributes(attributes: Attributes): Attributes {
    let out: Attributes | undefined
    let index = 0
    for (const key in attributes) {
      const value = attributes[key]
      // Spans from one instrumentation list their keys in the same order, so the
      // state is usually where it was for the previous span: a pointer compare
      // instead of a map look-up.
      let state: KeyState
      if (this.lastKeys[index] === key) {
        state = this.lastStates[index]!
      } else {
        state = this.keys.get(key) ?? this.keyState(key)
        this.lastKeys[index] = key
        this.lastStates[index] = state
      }
      index++
      // Fast path, inlined: a number or boolean, or a string seen safe under this key lately.
      if (!state.secretKey && out === undefined) {
        if (typeof value === 'string') {
          if (state.skip === 0) {
            const recent = state.recentSafe
            let seen = false
            for (let i = 0; i < recent.length; i++) {
              if (recent[i] === value) {
                seen = true
                break
              }
            }
            if (seen) {
              state.hits++
              continue
            }
          }
        } else if (!Array.isArray(value)) {
          continue
        }
      }
      const kept = state.secretKey ? undefined : this.redactValue(state, value)
      if (kept === value && out === undefined) continue
      if (out === undefined) {
        out = {}
        for (const earlier in attributes) {
          if (earlier === key) break
          out[earlier] = attributes[earlier]
        }
      }
      if (kept !== undefined) out[key] = kept
    }
    return out ?? attributes
  }

  private keyState(key: string): KeyState {
    let state = this.keys.get(key)
    if (state === undefined) {
      state = { secretKey: isSecretKey(key), recentSafe: [], hits: 0, misses: 0, skip: 0 }
      if (this.keys.size >= KEY_STATE_LIMIT) this.keys.clear()
      this.keys.set(key, state)
    }
    return state
  }

  private redactValue(state: KeyState, value: AttributeValue | undefined): AttributeValue | undefined {
    if (typeof value === 'string') return this.redactText(state, value)
    if (Array.isArray(value)) {
      let out: AttributeValue | undefined
      for (let i = 0; i < value.length; i++) {
        const element: unknown = value[i]
        if (typeof element !== 'string') continue
        const kept = this.redactText(state, element)
        if (kept === element) continue
        out ??= [...value] as AttributeValue
        ;(out as unknown[])[i] = kept
      }
      return out ?? value
    }
    return value
  }

  private redactText(state: KeyState, text: string): string {
    const recent = state.recentSafe
    if (state.skip > 0) {
      state.skip--
    } else {
      for (let i = 0; i < recent.length; i++) {
        if (recent[i] === text) {
          state.hits++
          return text
        }
      }
      if (++state.misses + state.hits >= HIT_RATE_WINDOW) {
        // Fewer than one hit in four: stop comparing for a window, then try again.
        if (state.hits * 3 < state.misses) {
          state.skip = HIT_RATE_WINDOW * 16
          recent.length = 0
        }
        state.hits = 0
        state.misses = 0
      }
    }
    if (looksLikeSecret(text)) return this.fingerprintValues ? fingerprintCredential(text, this.fingerprintKey) : REDACTED_VALUE
    if (state.skip === 0 && text.length <= REMEMBERED_VALUE_MAX_LENGTH) {
      if (recent.length >= RECENT_SAFE_PER_KEY) recent.pop()
      recent.unshift(text)
    }
    return text
  }

  private redactEvents(events: TimedEvent[]): TimedEvent[] {
    let out: TimedEvent[] | undefined
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      const attributes = event.attributes === undefined ? undefined : this.redactAttributes(event.attributes)
      const name = this.redactText(this.keyState(EVENT_NAME), event.name)
      if (attributes === event.attributes && name === event.name) continue
      out ??= events.slice()
      out[i] = { ...event, name, attributes }
    }
    return out ?? events
  }

  private redactLinks(links: Link[]): Link[] {
    let out: Link[] | undefined
    for (let i = 0; i < links.length; i++) {
      const link = links[i]!
      if (link.attributes === undefined) continue
      const attributes = this.redactAttributes(link.attributes)
      if (attributes === link.attributes) continue
      out ??= links.slice()
      out[i] = { ...link, attributes }
    }
    return out ?? links
  }
}

/**
 * A span exporter that redacts each batch before handing it to the exporter
 * it wraps. Redaction runs at export, off the path of the code that ends a
 * span, and never changes the live span. If redaction itself fails the batch
 * is dropped (reported through `diag`) rather than exported unredacted.
 */
export class RedactingSpanExporter implements SpanExporter {
  private readonly redactor: SpanRedactor

  constructor(
    private readonly exporter: SpanExporter,
    options: Omit<RedactionOptions, 'enabled'> = {},
  ) {
    this.redactor = new SpanRedactor(options)
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    let redacted: ReadableSpan[]
    try {
      redacted = spans.map((span) => this.redactor.redactSpan(span))
    } catch (error) {
      reportFailure('redaction (batch dropped so no secret is exported)', error)
      resultCallback({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) })
      return
    }
    this.exporter.export(redacted, resultCallback)
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown()
  }

  forceFlush(): Promise<void> {
    return this.exporter.forceFlush?.() ?? Promise.resolve()
  }
}
