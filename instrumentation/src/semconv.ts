/**
 * Every `nhi.*` attribute name, defined once. The query service, the
 * Collector config tests and the docs read these constants; nothing else
 * spells the names out.
 */

/** Stable id of the acting identity; required for a span to be billed. */
export const ATTR_NHI_ID = 'nhi.id'
/** Kind of identity: one of {@link NHI_TYPES}. */
export const ATTR_NHI_TYPE = 'nhi.type'
/** Accountable team or person. */
export const ATTR_NHI_OWNER = 'nhi.owner'
/** Cost centre the identity is charged to. */
export const ATTR_NHI_BUSINESS_UNIT = 'nhi.business_unit'
/** Non-secret fingerprint of the credential used (never the secret). */
export const ATTR_NHI_CREDENTIAL_ID = 'nhi.credential.id'
/** What kind of use event the span is: one of {@link NHI_ACTIVITY_TYPES} or a custom lowercase word. */
export const ATTR_NHI_ACTIVITY_TYPE = 'nhi.activity.type'
/** The operation: tool name, route template, workflow name. */
export const ATTR_NHI_ACTIVITY_NAME = 'nhi.activity.name'
/** The principal the identity acts for, when delegated. */
export const ATTR_NHI_ON_BEHALF_OF = 'nhi.on_behalf_of'

/** OpenTelemetry GenAI conventions nhi-meter understands without re-instrumenting. */
export const ATTR_GEN_AI_AGENT_ID = 'gen_ai.agent.id'
/** GenAI operation name, e.g. `execute_tool`, `invoke_workflow`. */
export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name'
/** GenAI tool name, present on `execute_tool` spans. */
export const ATTR_GEN_AI_TOOL_NAME = 'gen_ai.tool.name'
/** GenAI tool call id: the id the model gave the call, when the caller passes it on. */
export const ATTR_GEN_AI_TOOL_CALL_ID = 'gen_ai.tool.call.id'
/** GenAI tool call arguments, as JSON (opt-in: arguments may hold personal data). */
export const ATTR_GEN_AI_TOOL_CALL_ARGUMENTS = 'gen_ai.tool.call.arguments'

/** OpenTelemetry MCP conventions: the JSON-RPC method of the request, e.g. `tools/call`. */
export const ATTR_MCP_METHOD_NAME = 'mcp.method.name'
/** MCP session id, when the transport has sessions. */
export const ATTR_MCP_SESSION_ID = 'mcp.session.id'
/** MCP protocol version the client announced. */
export const ATTR_MCP_PROTOCOL_VERSION = 'mcp.protocol.version'
/** JSON-RPC request id, as a string. */
export const ATTR_JSONRPC_REQUEST_ID = 'jsonrpc.request.id'
/** JSON-RPC error code of a failed request, as a string. */
export const ATTR_RPC_RESPONSE_STATUS_CODE = 'rpc.response.status_code'
/** The authenticated caller, as the general OpenTelemetry conventions name it. */
export const ATTR_ENDUSER_ID = 'enduser.id'
/** The class of error an operation ended with. */
export const ATTR_ERROR_TYPE = 'error.type'
/** Transport protocol (`tcp` under HTTP, `pipe` under stdio). */
export const ATTR_NETWORK_TRANSPORT = 'network.transport'
/** Application protocol, e.g. `http`. */
export const ATTR_NETWORK_PROTOCOL_NAME = 'network.protocol.name'

/** The identity types README "Attributes" allows for `nhi.type`. */
export const NHI_TYPES = ['service_account', 'api_key', 'ai_agent', 'workload', 'integration', 'bot', 'other'] as const
/** A value of `nhi.type`. */
export type NhiType = (typeof NHI_TYPES)[number]

/** The named activity types; a custom lowercase word is also accepted. */
export const NHI_ACTIVITY_TYPES = ['api_call', 'token_exchange', 'workflow_execution', 'tool_invocation', 'secret_rotation'] as const
/** A value of `nhi.activity.type`. */
export type NhiActivityType = (typeof NHI_ACTIVITY_TYPES)[number]

/** A custom activity type must be one lowercase word (letters, digits, underscores). */
export const CUSTOM_ACTIVITY_TYPE_PATTERN = '^[a-z][a-z0-9_]{0,62}$'

/** Identity attributes that may sit on the resource as well as on the span (span wins). */
export const IDENTITY_ATTRIBUTES = [ATTR_NHI_ID, ATTR_NHI_TYPE, ATTR_NHI_OWNER, ATTR_NHI_BUSINESS_UNIT] as const
