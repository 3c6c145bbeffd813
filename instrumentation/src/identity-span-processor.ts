import { trace, type Context, type Span as ApiSpan } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace'
import { identityRecordOf, type IdentityRecord, type NhiIdentity } from './identity.js'
import { reportFailure } from './report.js'
import { ATTR_NHI_ID } from './semconv.js'

/**
 * Called for every span as it starts, after identity attributes are stamped,
 * with the identity the span was attributed to (undefined when none came from
 * the context). A hook that throws is reported through `diag`; the span goes on.
 */
export type SpanStartHook = (span: Span, identity: Readonly<NhiIdentity> | undefined) => void

/** Options of {@link NhiIdentitySpanProcessor}. */
export interface NhiIdentitySpanProcessorOptions {
  /** Runs for every started span; see {@link SpanStartHook}. */
  onSpanStart?: SpanStartHook
}

/**
 * Identities resolved for spans that were started before the identity was
 * known (an HTTP server span, when the request hook resolves the caller), so
 * that their children inherit it even though it is not in their context.
 */
const identityBySpan = new WeakMap<object, IdentityRecord>()
/** Whether any span identity was remembered; until then spans skip the parent look-up. */
let inheritanceInUse = false

/** Records that `span` acts as `record`, so spans started under it inherit the identity. */
export function rememberSpanIdentity(span: ApiSpan, record: IdentityRecord): void {
  inheritanceInUse = true
  identityBySpan.set(span, record)
}

/**
 * Stamps the acting identity on each span as it starts. Precedence, highest
 * first: an `nhi.id` set on the span by the caller; the identity of
 * `withIdentity`; the identity resolved from the inbound request; an identity
 * inherited from the parent span; otherwise none on the span, and readers
 * fall back to the resource's static identity.
 *
 * Only `onStart` does work; it copies a few precomputed attributes and does
 * not allocate when there is no identity.
 */
export class NhiIdentitySpanProcessor implements SpanProcessor {
  private readonly onSpanStart: SpanStartHook | undefined

  constructor(options: NhiIdentitySpanProcessorOptions = {}) {
    this.onSpanStart = options.onSpanStart
  }

  onStart(span: Span, parentContext: Context): void {
    let record = identityRecordOf(parentContext)
    if (record === undefined && inheritanceInUse) {
      const parent = trace.getSpan(parentContext)
      if (parent !== undefined) {
        record = identityBySpan.get(parent)
        if (record !== undefined) identityBySpan.set(span, record)
      }
    }
    if (record !== undefined) {
      const attributes = span.attributes
      if (attributes[ATTR_NHI_ID] === undefined) {
        const entries = record.attributes
        for (let i = 0; i < entries.length; i++) {
          const entry = entries[i]!
          if (attributes[entry[0]] === undefined) span.setAttribute(entry[0], entry[1])
        }
      }
    }
    if (this.onSpanStart !== undefined) {
      try {
        this.onSpanStart(span, record?.identity)
      } catch (error) {
        reportFailure('onSpanStart hook', error)
      }
    }
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve()
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
