import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api'
import { fingerprintCredential } from './fingerprint.js'
import { setIdentity, type NhiIdentity } from './identity.js'
import { reportFailure, warnOnce } from './report.js'
import {
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_NHI_ACTIVITY_NAME,
  ATTR_NHI_ACTIVITY_TYPE,
  ATTR_NHI_CREDENTIAL_ID,
  ATTR_NHI_ON_BEHALF_OF,
  CUSTOM_ACTIVITY_TYPE_PATTERN,
  NHI_ACTIVITY_TYPES,
  type NhiActivityType,
} from './semconv.js'
import { VERSION } from './version.js'

/** Name of the tracer the helpers use when none is given. */
export const TRACER_NAME = '@nhi-meter/instrumentation'

/** Options every activity helper takes. */
export interface ActivityOptions {
  /** Act as this identity for the activity and everything inside it (as `withIdentity`). */
  identity?: NhiIdentity
  /** The credential presented for this activity; only its fingerprint is recorded (`nhi.credential.id`). */
  credential?: string
  /** The principal the identity acts for in this activity (`nhi.on_behalf_of`). */
  onBehalfOf?: string
  /** More span attributes (they go through redaction like any other). */
  attributes?: Attributes
  /** Span kind. Default `INTERNAL`, `CLIENT` for API calls and token exchanges. */
  kind?: SpanKind
  /** Tracer to use. Default the global tracer named `@nhi-meter/instrumentation`. */
  tracer?: Tracer
  /** HMAC key for the credential fingerprint. Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
}

/** The work an activity wraps: gets the activity's span, may be sync or async. */
export type ActivityFn<T> = (span: Span) => T

const customActivityType = new RegExp(CUSTOM_ACTIVITY_TYPE_PATTERN)

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function'
}

function markFailed(span: Span, error: unknown): void {
  try {
    if (error instanceof Error) span.recordException(error)
    else span.recordException(String(error))
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
  } catch (reportError) {
    reportFailure('recording an activity error', reportError)
  }
}

/**
 * Runs `fn` inside an active span describing one use event of an identity:
 * `nhi.activity.type` and `nhi.activity.name` set, status OK when `fn` returns
 * (or its promise resolves), ERROR with the exception recorded when it throws
 * (or rejects) — the error is rethrown unchanged. The helpers below are
 * shorthands for the named activity types; this one takes a custom lowercase word too.
 */
export function activity<T>(type: NhiActivityType | (string & {}), name: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  if (!(NHI_ACTIVITY_TYPES as readonly string[]).includes(type) && !customActivityType.test(type)) {
    warnOnce(`activity-type:${type}`, `activity type "${type}" is not one lowercase word; recorded as "other"`)
    type = 'other'
  }
  const attributes: Attributes = { ...options.attributes, [ATTR_NHI_ACTIVITY_TYPE]: type, [ATTR_NHI_ACTIVITY_NAME]: name }
  if (options.credential) attributes[ATTR_NHI_CREDENTIAL_ID] = fingerprintCredential(options.credential, options.fingerprintKey)
  if (options.onBehalfOf) attributes[ATTR_NHI_ON_BEHALF_OF] = options.onBehalfOf
  return runActivity(`${type} ${name}`, attributes, fn, options)
}

function runActivity<T>(spanName: string, attributes: Attributes, fn: ActivityFn<T>, options: ActivityOptions): T {
  const tracer = options.tracer ?? trace.getTracer(TRACER_NAME, VERSION)
  const ctx = options.identity ? setIdentity(context.active(), options.identity) : context.active()
  return tracer.startActiveSpan(spanName, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, ctx, (span) => {
    let result: T
    try {
      result = fn(span)
    } catch (error) {
      markFailed(span, error)
      span.end()
      throw error
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (value) => {
          span.setStatus({ code: SpanStatusCode.OK })
          span.end()
          return value
        },
        (error: unknown) => {
          markFailed(span, error)
          span.end()
          throw error
        },
      ) as T
    }
    span.setStatus({ code: SpanStatusCode.OK })
    span.end()
    return result
  })
}

/**
 * An agent's tool invocation (`tool_invocation`, named after the tool). Also
 * carries the GenAI conventions `gen_ai.operation.name = execute_tool` and
 * `gen_ai.tool.name`, and the GenAI span name `execute_tool <tool>`, so other
 * OpenTelemetry tools recognise it.
 */
export function toolCall<T>(toolName: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  const attributes: Attributes = {
    ...options.attributes,
    [ATTR_NHI_ACTIVITY_TYPE]: 'tool_invocation',
    [ATTR_NHI_ACTIVITY_NAME]: toolName,
    [ATTR_GEN_AI_OPERATION_NAME]: 'execute_tool',
    [ATTR_GEN_AI_TOOL_NAME]: toolName,
  }
  if (options.credential) attributes[ATTR_NHI_CREDENTIAL_ID] = fingerprintCredential(options.credential, options.fingerprintKey)
  if (options.onBehalfOf) attributes[ATTR_NHI_ON_BEHALF_OF] = options.onBehalfOf
  return runActivity(`execute_tool ${toolName}`, attributes, fn, options)
}

/** One run of a workflow (`workflow_execution`, named after the workflow). */
export function workflowRun<T>(workflowName: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  return activity('workflow_execution', workflowName, fn, options)
}

/**
 * A token exchange (`token_exchange`): the identity trades a credential for
 * another (OAuth token request, STS assume-role). Name it after the audience
 * or token endpoint; pass the presented credential as `credential` to record
 * its fingerprint, never the token itself.
 */
export function tokenExchange<T>(name: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  return activity('token_exchange', name, fn, { kind: SpanKind.CLIENT, ...options })
}

/** A secret rotation (`secret_rotation`), named after the secret (its name, never its value). */
export function secretRotation<T>(secretName: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  return activity('secret_rotation', secretName, fn, options)
}

/** An API call made by the identity (`api_call`), named after the operation or route template. */
export function apiCall<T>(operation: string, fn: ActivityFn<T>, options: ActivityOptions = {}): T {
  return activity('api_call', operation, fn, { kind: SpanKind.CLIENT, ...options })
}
