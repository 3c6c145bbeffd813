import type { Attributes, AttributeValue, Link, SpanContext } from '@opentelemetry/api'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources'
import type { ReadableSpan, SpanExporter, TimedEvent } from '@opentelemetry/sdk-trace-base'
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

/** Key decisions repeat endlessly (attribute names are few), so they are remembered; bounded so odd keys cannot grow it without limit. */
const KEY_CACHE_LIMIT = 4096

/**
 * Applies the shared secrets rule (`redaction.ts`, SPEC section 2) to whole
 * spans: attributes of the span, its events and links and its resource, the
 * span name and the status message. Spans with nothing to redact are passed
 * through as they are; others are exported as a redacted copy, so the live
 * span is never changed.
 */
export class SpanRedactor {
  private readonly fingerprintValues: boolean
  private readonly fingerprintKey: string | undefined
  private readonly secretKeys = new Map<string, boolean>()
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
    const name = this.redactText(span.name)
    const statusMessage = span.status.message === undefined ? undefined : this.redactText(span.status.message)
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
    for (const key in attributes) {
      const value = attributes[key]
      const kept = this.isSecretKey(key) ? undefined : this.redactValue(value)
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

  private isSecretKey(key: string): boolean {
    let secret = this.secretKeys.get(key)
    if (secret === undefined) {
      secret = isSecretKey(key)
      if (this.secretKeys.size >= KEY_CACHE_LIMIT) this.secretKeys.clear()
      this.secretKeys.set(key, secret)
    }
    return secret
  }

  private redactValue(value: AttributeValue | undefined): AttributeValue | undefined {
    if (typeof value === 'string') return this.redactText(value)
    if (Array.isArray(value)) {
      let out: AttributeValue | undefined
      for (let i = 0; i < value.length; i++) {
        const element: unknown = value[i]
        if (typeof element !== 'string') continue
        const kept = this.redactText(element)
        if (kept === element) continue
        out ??= [...value] as AttributeValue
        ;(out as unknown[])[i] = kept
      }
      return out ?? value
    }
    return value
  }

  private redactText(text: string): string {
    if (!looksLikeSecret(text)) return text
    return this.fingerprintValues ? fingerprintCredential(text, this.fingerprintKey) : REDACTED_VALUE
  }

  private redactEvents(events: TimedEvent[]): TimedEvent[] {
    let out: TimedEvent[] | undefined
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      const attributes = event.attributes === undefined ? undefined : this.redactAttributes(event.attributes)
      const name = this.redactText(event.name)
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
