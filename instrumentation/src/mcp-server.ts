/**
 * Tool calls of a Model Context Protocol server as OpenTelemetry spans, with
 * the calling client's identity on them.
 *
 * Nothing here imports `@modelcontextprotocol/sdk`: the server is reached
 * through the few members of the SDK's `Server` (and `McpServer.server`) the
 * code below names, so the package installs and loads without the SDK.
 */
import {
  context,
  isSpanContextValid,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { TRACER_NAME } from './activities.js'
import { fingerprintCredential } from './fingerprint.js'
import { setRequestIdentity, toIdentityRecord, type IdentityRecord, type NhiIdentity } from './identity.js'
import { isSecretKey, looksLikeSecret, redactAttribute, REDACTED_VALUE } from './redaction.js'
import { reportFailure, warnOnce } from './report.js'
import {
  ATTR_ENDUSER_ID,
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_TOOL_CALL_ARGUMENTS,
  ATTR_GEN_AI_TOOL_CALL_ID,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_JSONRPC_REQUEST_ID,
  ATTR_MCP_METHOD_NAME,
  ATTR_MCP_PROTOCOL_VERSION,
  ATTR_MCP_SESSION_ID,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NHI_ACTIVITY_NAME,
  ATTR_NHI_ACTIVITY_TYPE,
  ATTR_RPC_RESPONSE_STATUS_CODE,
  type NhiType,
} from './semconv.js'
import { VERSION } from './version.js'

/** The JSON-RPC method of a tool call. */
export const MCP_TOOLS_CALL_METHOD = 'tools/call'

/** `params._meta` keys read as the tool call id (`gen_ai.tool.call.id`), first present wins. */
export const MCP_TOOL_CALL_ID_META_KEYS = ['gen_ai.tool.call.id', 'toolCallId'] as const

/** JSON-RPC "internal error": what the SDK answers for a thrown error without an integer code. */
const JSONRPC_INTERNAL_ERROR = -32603

/** Nesting kept when recording arguments; deeper values are replaced. */
const ARGUMENTS_MAX_DEPTH = 8

/**
 * The authentication of the request, as the SDK's `AuthInfo` (`extra.authInfo`)
 * has it: set by `requireBearerAuth`, or by whatever sets `req.auth` in front
 * of the Streamable HTTP transport.
 */
export interface McpAuthInfo {
  /** The access token. Never recorded; only its fingerprint is (`nhi.credential.id`). */
  token?: string
  /** The OAuth client id the token was issued to. */
  clientId?: string
  /** Scopes of the token. */
  scopes?: string[]
  /** Anything else the token verifier attached. */
  extra?: Record<string, unknown>
}

/** What {@link McpServerInstrumentationOptions.identityFromAuth} is told about the call. */
export interface McpToolCallInfo {
  /** The tool called. */
  toolName: string | undefined
  /** The MCP session, when the transport has sessions. */
  sessionId: string | undefined
  /** The HTTP request headers, when the transport is HTTP. */
  headers: McpRequestHeaders | undefined
}

/** HTTP request headers as the SDK passes them (`extra.requestInfo.headers`, lower-case names). */
export type McpRequestHeaders = Readonly<Record<string, string | string[] | undefined>>

/**
 * Maps a request's auth info to the identity that acts. Must be synchronous
 * and cheap; return undefined when the caller is not an NHI you track.
 */
export type McpIdentityFromAuth = (authInfo: McpAuthInfo, call: McpToolCallInfo) => NhiIdentity | undefined

/** Options of {@link instrumentMcpServer}; every field is optional. */
export interface McpServerInstrumentationOptions {
  /** Where the spans go. Default the global tracer provider. */
  tracerProvider?: TracerProvider
  /**
   * Who the caller is, from its auth info. Default: `authInfo.clientId` as
   * `nhi.id`, of type {@link nhiType}. A callback that throws (or returns a
   * promise) is reported through `diag` and the default is used.
   */
  identityFromAuth?: McpIdentityFromAuth
  /** `nhi.type` of callers whose identity gives none. Default `ai_agent`. */
  nhiType?: NhiType
  /**
   * Record the tool arguments as `gen_ai.tool.call.arguments` (JSON). Default
   * false: arguments often hold personal data. When on, arguments whose name
   * is a secret's (`password`, `api_key`, ...) are left out and values that
   * look like credentials are replaced by `[REDACTED]`.
   */
  recordArguments?: boolean
  /**
   * Reads the caller's trace context from `params._meta` and HTTP headers.
   * Default W3C Trace Context and Baggage, whatever the global propagator is,
   * because the MCP conventions put `traceparent`/`tracestate`/`baggage` in `_meta`.
   */
  propagator?: TextMapPropagator
  /** HMAC key for the token's fingerprint (`nhi.credential.id`). Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
}

/** The members of an SDK request handler's `extra` that are read. */
interface RequestExtraLike {
  authInfo?: McpAuthInfo
  sessionId?: string
  requestId?: string | number
  requestInfo?: { headers?: McpRequestHeaders }
}

/** The members of a JSON-RPC `tools/call` request that are read. */
interface ToolsCallRequestLike {
  id?: string | number | null
  params?: { name?: unknown; arguments?: unknown; _meta?: Record<string, unknown> }
}

type RequestHandler = (request: ToolsCallRequestLike, extra: RequestExtraLike) => unknown

/**
 * The SDK's `Protocol` keeps its request handlers, each taking the raw
 * JSON-RPC request, in this map. It is not public API, but it is the one
 * place every `tools/call` handler goes through: `McpServer` registers its
 * handler lazily (at the first tool), often before the server is handed to us,
 * and `Server#setRequestHandler` wraps what it is given.
 */
interface ProtocolLike {
  setRequestHandler: unknown
  _requestHandlers?: unknown
}

/** Servers already instrumented: instrumenting twice would trace each call twice. */
const instrumented = new WeakSet<object>()

function isProtocol(value: unknown): value is ProtocolLike {
  return value !== null && typeof value === 'object' && typeof (value as ProtocolLike).setRequestHandler === 'function'
}

/** The low-level `Server` of an `McpServer`, or the `Server` itself. */
function lowLevelServer(server: unknown): ProtocolLike | undefined {
  const inner = (server as { server?: unknown } | null | undefined)?.server
  if (isProtocol(inner)) return inner
  return isProtocol(server) ? server : undefined
}

const carrierGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key] ?? carrier[key.toLowerCase()]
    if (typeof value === 'string') return value
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[]
    return undefined
  },
}

function headerString(headers: McpRequestHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** The text with a credential-looking value replaced, as the secrets rule wants for free text. */
function safeText(text: string): string {
  return looksLikeSecret(text) ? REDACTED_VALUE : text
}

/** Arguments as JSON without secret-named members and with credential-looking strings replaced. */
function sanitizeArguments(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return safeText(value)
  if (value === null || typeof value !== 'object') return value
  if (depth >= ARGUMENTS_MAX_DEPTH) return '[…]'
  if (Array.isArray(value)) return value.map((v) => sanitizeArguments(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, member] of Object.entries(value)) {
    if (!isSecretKey(key)) out[key] = sanitizeArguments(member, depth + 1)
  }
  return out
}

/** Applies the secrets rule to each attribute: secret keys dropped, credential-looking values replaced. */
function redactAttributes(attributes: Record<string, AttributeValue | undefined>): Attributes {
  const out: Attributes = {}
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined) continue
    const kept = redactAttribute(key, value)
    if (kept !== undefined) out[key] = kept
  }
  return out
}

/** One server's settings, defaults merged once. */
class McpToolCallTracing {
  private readonly tracer: Tracer
  private readonly identityFromAuth: McpIdentityFromAuth | undefined
  private readonly nhiType: NhiType
  private readonly recordArguments: boolean
  private readonly propagator: TextMapPropagator
  private readonly fingerprintKey: string | undefined

  constructor(options: McpServerInstrumentationOptions) {
    this.tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(TRACER_NAME, VERSION)
    this.identityFromAuth = options.identityFromAuth
    this.nhiType = options.nhiType ?? 'ai_agent'
    this.recordArguments = options.recordArguments ?? false
    this.propagator =
      options.propagator ?? new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] })
    this.fingerprintKey = options.fingerprintKey
  }

  /** Wraps a `tools/call` handler so each call runs inside its span. */
  wrap(handler: RequestHandler): RequestHandler {
    return (request, extra) => this.traceToolCall(handler, request, extra)
  }

  private traceToolCall(handler: RequestHandler, request: ToolsCallRequestLike, extra: RequestExtraLike): unknown {
    let span: Span
    let handlerContext: Context
    try {
      ;({ span, handlerContext } = this.startSpan(request, extra))
    } catch (error) {
      reportFailure('starting an MCP tool call span', error)
      return handler(request, extra)
    }
    let result: unknown
    try {
      result = context.with(handlerContext, () => handler(request, extra))
    } catch (error) {
      this.endWithError(span, error)
      throw error
    }
    return Promise.resolve(result).then(
      (value) => {
        this.endWithResult(span, value)
        return value
      },
      (error: unknown) => {
        this.endWithError(span, error)
        throw error
      },
    )
  }

  private startSpan(request: ToolsCallRequestLike, extra: RequestExtraLike): { span: Span; handlerContext: Context } {
    const params = request?.params
    const toolName = typeof params?.name === 'string' && params.name !== '' ? params.name : undefined
    const meta = params?._meta !== null && typeof params?._meta === 'object' ? params._meta : undefined
    const headers = extra?.requestInfo?.headers
    const { parent, links } = this.parentOf(meta, headers)
    const requestId = request?.id ?? extra?.requestId
    const record = this.callerIdentity(extra?.authInfo, { toolName, sessionId: extra?.sessionId, headers })

    const attributes: Record<string, AttributeValue | undefined> = {
      [ATTR_MCP_METHOD_NAME]: MCP_TOOLS_CALL_METHOD,
      [ATTR_GEN_AI_OPERATION_NAME]: 'execute_tool',
      [ATTR_GEN_AI_TOOL_NAME]: toolName,
      [ATTR_NHI_ACTIVITY_TYPE]: 'tool_invocation',
      [ATTR_NHI_ACTIVITY_NAME]: toolName,
      [ATTR_JSONRPC_REQUEST_ID]: requestId === undefined || requestId === null ? undefined : String(requestId),
      [ATTR_MCP_SESSION_ID]: extra?.sessionId || undefined,
      [ATTR_GEN_AI_TOOL_CALL_ID]: toolCallIdOf(meta),
    }
    if (headers) {
      attributes[ATTR_MCP_PROTOCOL_VERSION] = headerString(headers, 'mcp-protocol-version')
      attributes[ATTR_NETWORK_TRANSPORT] = 'tcp'
      attributes[ATTR_NETWORK_PROTOCOL_NAME] = 'http'
    }
    if (record) {
      for (const [key, value] of record.attributes) attributes[key] = value
      attributes[ATTR_ENDUSER_ID] = record.identity.id
    }
    if (this.recordArguments && params?.arguments !== undefined) {
      attributes[ATTR_GEN_AI_TOOL_CALL_ARGUMENTS] = JSON.stringify(sanitizeArguments(params.arguments))
    }
    const spanName = toolName === undefined ? 'execute_tool' : `execute_tool ${safeText(toolName)}`
    const span = this.tracer.startSpan(spanName, { kind: SpanKind.SERVER, attributes: redactAttributes(attributes), links }, parent)
    let handlerContext = trace.setSpan(parent, span)
    // Spans the tool starts act for the caller too, as under withRequestIdentity.
    if (record) handlerContext = setRequestIdentity(handlerContext, record)
    return { span, handlerContext }
  }

  /**
   * The caller's trace context, as the MCP conventions order it: `params._meta`
   * first; else the HTTP headers, unless the ambient span (an HTTP server span)
   * already continues their trace; else the ambient context. The ambient span
   * is linked when it is not the parent.
   */
  private parentOf(meta: Record<string, unknown> | undefined, headers: McpRequestHeaders | undefined): { parent: Context; links: Link[] } {
    const active = context.active()
    const ambient = trace.getSpanContext(active)
    const ambientValid = ambient !== undefined && isSpanContextValid(ambient)
    let parent = meta ? this.extract(active, meta) : undefined
    if (parent === undefined && headers) {
      const fromHeaders = this.extract(active, headers)
      if (fromHeaders !== undefined && !(ambientValid && ambient.traceId === trace.getSpanContext(fromHeaders)?.traceId)) parent = fromHeaders
    }
    if (parent === undefined) return { parent: active, links: [] }
    const linkAmbient = ambientValid && ambient.spanId !== trace.getSpanContext(parent)?.spanId
    return { parent, links: linkAmbient ? [{ context: ambient }] : [] }
  }

  /** The context with the carrier's remote span, or undefined when it carries none. */
  private extract(base: Context, carrier: Record<string, unknown>): Context | undefined {
    if (carrierGetter.get(carrier, 'traceparent') === undefined) return undefined
    const extracted = this.propagator.extract(base, carrier, carrierGetter)
    const spanContext = trace.getSpanContext(extracted)
    if (spanContext === undefined || spanContext === trace.getSpanContext(base) || !isSpanContextValid(spanContext)) return undefined
    return extracted
  }

  private callerIdentity(authInfo: McpAuthInfo | undefined, call: McpToolCallInfo): IdentityRecord | undefined {
    if (authInfo === null || typeof authInfo !== 'object') return undefined
    let identity = this.defaultIdentity(authInfo)
    if (this.identityFromAuth) {
      try {
        const mapped: unknown = this.identityFromAuth(authInfo, call)
        if (mapped !== null && typeof mapped === 'object' && typeof (mapped as PromiseLike<unknown>).then === 'function') {
          throw new Error('identityFromAuth must return an identity synchronously, not a promise')
        }
        identity = mapped === undefined || mapped === null ? undefined : { ...(mapped as NhiIdentity) }
        if (identity && identity.credentialId === undefined) identity.credentialId = this.credentialOf(authInfo)
      } catch (error) {
        reportFailure('MCP identityFromAuth callback (the OAuth client id is used)', error)
      }
    }
    if (identity === undefined) return undefined
    identity.type ??= this.nhiType
    return toIdentityRecord(identity, 'request', this.fingerprintKey)
  }

  private defaultIdentity(authInfo: McpAuthInfo): NhiIdentity | undefined {
    if (typeof authInfo.clientId !== 'string' || authInfo.clientId.trim() === '') return undefined
    return { id: authInfo.clientId, type: this.nhiType, credentialId: this.credentialOf(authInfo) }
  }

  private credentialOf(authInfo: McpAuthInfo): string | undefined {
    return typeof authInfo.token === 'string' && authInfo.token !== '' ? fingerprintCredential(authInfo.token, this.fingerprintKey) : undefined
  }

  private endWithResult(span: Span, result: unknown): void {
    try {
      if (result !== null && typeof result === 'object' && (result as { isError?: unknown }).isError === true) {
        // The call itself succeeded; the tool reported a failure in its result.
        span.setAttribute(ATTR_ERROR_TYPE, 'tool_error')
        span.setStatus({ code: SpanStatusCode.ERROR })
      }
    } catch (error) {
      reportFailure('recording an MCP tool result', error)
    } finally {
      span.end()
    }
  }

  private endWithError(span: Span, error: unknown): void {
    try {
      // The JSON-RPC error code the client receives: the error's own integer code, else "internal error".
      const ownCode = (error as { code?: unknown } | null | undefined)?.code
      const code = String(Number.isSafeInteger(ownCode) ? ownCode : JSONRPC_INTERNAL_ERROR)
      const message = safeText(error instanceof Error ? error.message : String(error))
      span.setAttribute(ATTR_ERROR_TYPE, code)
      span.setAttribute(ATTR_RPC_RESPONSE_STATUS_CODE, code)
      const stack = error instanceof Error && error.stack !== undefined ? error.stack.replace(error.message, message) : undefined
      span.recordException({ name: error instanceof Error ? error.name : 'Error', message, stack: stack === undefined || looksLikeSecret(stack) ? undefined : stack })
      span.setStatus({ code: SpanStatusCode.ERROR, message })
    } catch (reportError) {
      reportFailure('recording an MCP tool error', reportError)
    } finally {
      span.end()
    }
  }
}

function toolCallIdOf(meta: Record<string, unknown> | undefined): string | undefined {
  if (!meta) return undefined
  for (const key of MCP_TOOL_CALL_ID_META_KEYS) {
    const value = meta[key]
    if (typeof value === 'string' && value !== '') return value
    if (typeof value === 'number') return String(value)
  }
  return undefined
}

/**
 * Makes every `tools/call` request the server handles an OpenTelemetry span
 * (`execute_tool <tool>`, kind SERVER) that joins the caller's trace
 * (`params._meta.traceparent`, else the HTTP `traceparent` header) and names
 * the caller (`nhi.id`, `enduser.id`) from the request's auth info. Works on
 * the SDK's `McpServer` and on its low-level `Server`, before or after tools
 * are registered or the server is connected. Instrumenting a server twice
 * changes nothing. Never throws: a server it cannot instrument is reported
 * through `diag` and returned as it was.
 *
 * @example instrumentMcpServer(new McpServer({ name: 'tools', version: '1.0.0' }))
 */
export function instrumentMcpServer<T>(server: T, options: McpServerInstrumentationOptions = {}): T {
  try {
    const protocol = lowLevelServer(server)
    if (protocol === undefined) {
      warnOnce('mcp-not-a-server', 'instrumentMcpServer was given something that is not an MCP McpServer or Server; tool calls are not traced')
      return server
    }
    if (instrumented.has(protocol)) return server
    const handlers = protocol._requestHandlers
    if (!(handlers instanceof Map)) {
      warnOnce('mcp-handlers', 'this @modelcontextprotocol/sdk version keeps its request handlers where instrumentMcpServer cannot reach them; tool calls are not traced')
      return server
    }
    const tracing = new McpToolCallTracing(options)
    const requestHandlers = handlers as Map<string, unknown>
    const set = requestHandlers.set
    const wrapIfToolsCall = (method: string, handler: unknown): unknown =>
      method === MCP_TOOLS_CALL_METHOD && typeof handler === 'function' ? tracing.wrap(handler as RequestHandler) : handler
    // Handlers registered later (McpServer's first registerTool, setRequestHandler) are wrapped as they are set.
    requestHandlers.set = function (this: Map<string, unknown>, method: string, handler: unknown) {
      return set.call(this, method, wrapIfToolsCall(method, handler))
    }
    const existing = requestHandlers.get(MCP_TOOLS_CALL_METHOD)
    if (existing !== undefined) set.call(requestHandlers, MCP_TOOLS_CALL_METHOD, wrapIfToolsCall(MCP_TOOLS_CALL_METHOD, existing))
    instrumented.add(protocol)
  } catch (error) {
    reportFailure('instrumenting an MCP server (tool calls are not traced)', error)
  }
  return server
}
