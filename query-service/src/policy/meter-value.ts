/**
 * What a `sum` meter may add up (POLICY.md, "Pricing"): the span's duration
 * (`duration_ms`) or a numeric span attribute. Attributes that cannot be a
 * quantity are refused by name at start-up, so a meter never silently sums
 * nothing: strings the OpenTelemetry conventions define (model names,
 * routes, ids), numbers that are not amounts (status codes, ports, line
 * numbers), every `nhi.*` attribute, and names the ledger drops as
 * secret-like. The ledger's migration 0028 keeps numeric span attributes
 * except {@link NUMERIC_NON_QUANTITY_ATTRIBUTES} and secret-like names;
 * meter-value.test.ts holds the two to the same lists.
 */
import type { ParseResult } from './time.js'

/** The `value` that sums span durations, each rounded up to a whole millisecond. */
export const DURATION_VALUE = 'duration_ms'

/** Prefix of nhi-meter's own attributes: identities and activity, never quantities. */
export const NHI_ATTRIBUTE_PREFIX = 'nhi.'

// Strings in the OpenTelemetry semantic conventions that someone pricing
// agents, APIs or workflows might pick by mistake.
const STRING_ATTRIBUTES = [
  'gen_ai.request.model',
  'gen_ai.response.model',
  'gen_ai.operation.name',
  'gen_ai.system',
  'gen_ai.provider.name',
  'gen_ai.agent.id',
  'gen_ai.agent.name',
  'gen_ai.agent.description',
  'gen_ai.tool.name',
  'gen_ai.tool.call.id',
  'gen_ai.tool.type',
  'gen_ai.tool.description',
  'gen_ai.response.id',
  'gen_ai.response.finish_reasons',
  'gen_ai.conversation.id',
  'gen_ai.output.type',
  'gen_ai.data_source.id',
  'http.route',
  'http.request.method',
  'http.request.method_original',
  'url.full',
  'url.path',
  'url.query',
  'url.scheme',
  'url.domain',
  'server.address',
  'client.address',
  'network.peer.address',
  'network.protocol.name',
  'network.protocol.version',
  'network.transport',
  'user_agent.original',
  'service.name',
  'service.version',
  'service.namespace',
  'service.instance.id',
  'rpc.system',
  'rpc.service',
  'rpc.method',
  'db.system',
  'db.system.name',
  'db.namespace',
  'db.operation.name',
  'db.collection.name',
  'db.query.text',
  'error.type',
  'exception.type',
  'exception.message',
  'code.function',
  'code.function.name',
  'code.namespace',
  'code.filepath',
  'code.file.path',
  'thread.name',
  'messaging.system',
  'messaging.destination.name',
  'messaging.operation.name',
  'messaging.message.id',
  'mcp.method.name',
  'mcp.session.id',
  'jsonrpc.request.id',
  'enduser.id',
  'user.id',
  'session.id',
  'deployment.environment',
  'deployment.environment.name',
  'host.name',
] as const

/**
 * Numeric span attributes that are not quantities: codes, ports, line and
 * thread numbers. Summing them means nothing, and the ledger does not keep
 * them (migration 0028 lists exactly these).
 */
export const NUMERIC_NON_QUANTITY_ATTRIBUTES: readonly string[] = [
  'http.response.status_code',
  'http.status_code',
  'rpc.grpc.status_code',
  'server.port',
  'client.port',
  'url.port',
  'network.peer.port',
  'network.local.port',
  'net.peer.port',
  'net.host.port',
  'code.lineno',
  'code.line.number',
  'thread.id',
]

/** Every named attribute a meter may not sum (besides `nhi.*` and secret-like names): strings, then numbers that are not quantities. */
export const NON_QUANTITY_ATTRIBUTES: readonly string[] = [...STRING_ATTRIBUTES, ...NUMERIC_NON_QUANTITY_ATTRIBUTES]

/** Attribute names the ledger drops as secret-like (tested lowercased), as migration 0028 does. */
export const SECRET_LIKE_ATTRIBUTE = /(^|[._])(token|api_key|apikey|password|passwd|secret)$|authorization/

/** Names of identifiers that may be numeric (`user.id`, `jsonrpc.request.id`, `process.pid`): not quantities, and not kept in the ledger. */
export const IDENTIFIER_LIKE_ATTRIBUTE = /(^|[._])(id|pid|uid|gid)$/

const STRINGS: ReadonlySet<string> = new Set(STRING_ATTRIBUTES)
const NUMBERS: ReadonlySet<string> = new Set(NUMERIC_NON_QUANTITY_ATTRIBUTES)
const MODEL_NAMES: ReadonlySet<string> = new Set(['gen_ai.request.model', 'gen_ai.response.model'])
// Dotted lowercase: `gen_ai.usage.input_tokens`, `http.request.body.size`.
const ATTRIBUTE_NAME = /^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$/
const MAX_ATTRIBUTE_NAME = 255
const SUGGESTION = 'sum a numeric attribute such as gen_ai.usage.input_tokens, or duration_ms'

/** True when a span attribute may be summed by a meter: not `nhi.*`, not a known non-quantity, not secret-like. */
export function isQuantityAttribute(name: string): boolean {
  const lower = name.toLowerCase()
  return !name.startsWith(NHI_ATTRIBUTE_PREFIX) && !STRINGS.has(name) && !NUMBERS.has(name) && !SECRET_LIKE_ATTRIBUTE.test(lower) && !IDENTIFIER_LIKE_ATTRIBUTE.test(lower)
}

/**
 * Checks a meter's `value`: `duration_ms`, or a dotted lowercase span
 * attribute name that can hold a quantity; the problem says why not (no
 * key path; the schema adds it).
 */
export function checkMeterValue(text: string): ParseResult<string> {
  if (text === DURATION_VALUE) return { ok: true, value: text }
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)
  if (text.length > MAX_ATTRIBUTE_NAME || !ATTRIBUTE_NAME.test(text)) {
    return { ok: false, problem: `must be duration_ms or a span attribute name in dotted lowercase like "gen_ai.usage.input_tokens" (at most ${MAX_ATTRIBUTE_NAME} characters), got ${shown}` }
  }
  if (text.startsWith(NHI_ATTRIBUTE_PREFIX)) {
    return { ok: false, problem: `cannot sum ${shown}: nhi.* attributes name identities and their activity, they are not numbers; ${SUGGESTION}` }
  }
  if (MODEL_NAMES.has(text)) {
    return {
      ok: false,
      problem: `cannot sum ${shown}: it is a string (the model's name), not a number; to price tokens per model, match model calls with activity_type: model_call and activity_name: "gpt-4o*", and sum gen_ai.usage.input_tokens`,
    }
  }
  if (STRINGS.has(text)) {
    return { ok: false, problem: `cannot sum ${shown}: the OpenTelemetry conventions define it as a string, not a number; ${SUGGESTION}` }
  }
  if (NUMBERS.has(text)) {
    return { ok: false, problem: `cannot sum ${shown}: it is a number but not a quantity (a status code, port, line or thread number), and the ledger does not keep it; ${SUGGESTION}` }
  }
  if (SECRET_LIKE_ATTRIBUTE.test(text)) {
    return { ok: false, problem: `cannot sum ${shown}: its name looks like a secret's, and the ledger drops such attributes; ${SUGGESTION}` }
  }
  if (IDENTIFIER_LIKE_ATTRIBUTE.test(text)) {
    return { ok: false, problem: `cannot sum ${shown}: it names an identifier (even when its value is a number), not a quantity, and the ledger does not keep it; ${SUGGESTION}` }
  }
  return { ok: true, value: text }
}
