import type { Span } from '@opentelemetry/api'
import { rememberSpanIdentity } from './identity-span-processor.js'
import { reportFailure } from './report.js'
import { resolveRequestIdentity, stampIdentity, type InboundRequest, type NhiIdentityResolver } from './resolvers.js'

/**
 * A `requestHook` for `@opentelemetry/instrumentation-http`: on each inbound
 * request it resolves the caller with the resolvers, stamps the identity on
 * the HTTP server span, and makes spans started under that span inherit it.
 * Outgoing requests are left alone. Never throws.
 *
 * @example getNodeAutoInstrumentations({ '@opentelemetry/instrumentation-http': { requestHook: nhiHttpRequestHook() } })
 */
export function nhiHttpRequestHook(resolvers?: readonly NhiIdentityResolver[]): (span: Span, request: unknown) => void {
  return (span, request) => {
    try {
      // An inbound IncomingMessage has a headers object; an outgoing ClientRequest has getHeader() instead.
      if (request === null || typeof request !== 'object') return
      if (typeof (request as { getHeader?: unknown }).getHeader === 'function') return
      if (typeof (request as { headers?: unknown }).headers !== 'object') return
      const record = resolveRequestIdentity(request as InboundRequest, resolvers)
      if (!record) return
      stampIdentity(span, record)
      rememberSpanIdentity(span, record)
    } catch (error) {
      reportFailure('HTTP request identity hook', error)
    }
  }
}
