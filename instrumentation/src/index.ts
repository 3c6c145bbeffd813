export * from './semconv.js'
export { REDACTED_VALUE, SECRET_KEY_PATTERNS, SECRET_VALUE_PATTERNS, isSecretKey, looksLikeSecret, redactAttribute } from './redaction.js'
export {
  FINGERPRINT_KEY_ENV,
  FINGERPRINT_PREFIX,
  fingerprintCredential,
  isFingerprint,
} from './fingerprint.js'
export {
  IDENTITY_ENV,
  IDENTITY_PRECEDENCE,
  getIdentity,
  setIdentity,
  withIdentity,
  type IdentitySource,
  type NhiIdentity,
} from './identity.js'
export {
  API_KEY_HEADER_ENV,
  API_KEY_IDENTITIES_FILE_ENV,
  apiKeyResolver,
  decodeJwtClaims,
  defaultResolvers,
  headerValue,
  identityFromJwtClaims,
  oauthClientResolver,
  readApiKeyIdentitiesFile,
  resolveRequestIdentity,
  withRequestIdentity,
  type ApiKeyResolverOptions,
  type HeadersLike,
  type InboundRequest,
  type JwtClaimsOptions,
  type MappedIdentity,
  type NhiIdentityResolver,
  type OAuthClientResolverOptions,
  type RequestIdentityOptions,
} from './resolvers.js'
export { NhiIdentitySpanProcessor, type NhiIdentitySpanProcessorOptions, type SpanStartHook } from './identity-span-processor.js'
export { RedactingSpanExporter, SpanRedactor, type RedactionOptions } from './redacting-span-exporter.js'
export {
  TRACER_NAME,
  activity,
  apiCall,
  secretRotation,
  tokenExchange,
  toolCall,
  workflowRun,
  type ActivityFn,
  type ActivityOptions,
} from './activities.js'
export { nhiHttpRequestHook } from './http-request-hook.js'
export {
  MCP_TOOL_CALL_ID_META_KEYS,
  MCP_TOOLS_CALL_METHOD,
  instrumentMcpServer,
  type McpAuthInfo,
  type McpIdentityFromAuth,
  type McpRequestHeaders,
  type McpServerInstrumentationOptions,
  type McpToolCallInfo,
} from './mcp-server.js'
export {
  AUTO_INSTRUMENTATIONS_PACKAGE,
  loadAutoInstrumentations,
  reportAutoInstrumentations,
  type AutoInstrumentationsResult,
  type LoadAutoInstrumentationsOptions,
} from './auto-instrumentations.js'
export {
  nhiSpanProcessors,
  startNhiMeter,
  traceExportersFromEnv,
  type BatchSettings,
  type NhiMeter,
  type NhiMeterOptions,
  type NhiSpanProcessorsOptions,
} from './sdk.js'
export { VERSION } from './version.js'
