import { readFileSync } from 'node:fs'
import { context, trace, type Span } from '@opentelemetry/api'
import { fingerprintCredential, resolveFingerprintKey } from './fingerprint.js'
import { setRequestIdentity, toIdentityRecord, type IdentityRecord, type NhiIdentity } from './identity.js'
import { reportFailure } from './report.js'
import { ATTR_NHI_ID, type NhiType } from './semconv.js'

/** Request headers as Node (`IncomingMessage.headers`), fetch (`Headers`) or a plain object present them. */
export type HeadersLike = { get(name: string): string | null } | Record<string, string | string[] | undefined>

/** What a resolver sees of an inbound request: its headers (a Node `IncomingMessage`, a fetch `Request` and most framework requests fit). */
export interface InboundRequest {
  /** The request headers. */
  readonly headers: HeadersLike
}

/**
 * Resolves who sent a request. Returns undefined when it cannot tell, so the
 * next resolver is asked. Must be synchronous and cheap (an in-memory look-up):
 * it runs on every request. A resolver that throws is reported through `diag`
 * and skipped; the request goes on.
 */
export type NhiIdentityResolver = (request: InboundRequest) => NhiIdentity | undefined

/** Reads one header, whatever shape the request's headers have; repeated headers give their first value. */
export function headerValue(request: InboundRequest, name: string): string | undefined {
  const headers = request?.headers
  if (!headers) return undefined
  const lower = name.toLowerCase()
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(lower) ?? undefined
  }
  const value = (headers as Record<string, string | string[] | undefined>)[lower] ?? (headers as Record<string, string | string[] | undefined>)[name]
  return Array.isArray(value) ? value[0] : value
}

/** Identity fields a key map gives for a credential (the fingerprint is added by the resolver). */
export type MappedIdentity = Omit<NhiIdentity, 'credentialId'>

/** Options of {@link apiKeyResolver}. */
export interface ApiKeyResolverOptions {
  /**
   * Who each key is, by the key's fingerprint (`fingerprintCredential(key)`), so
   * no key is kept in clear: an object, a Map, or a look-up function.
   */
  identities: Record<string, MappedIdentity> | ReadonlyMap<string, MappedIdentity> | ((fingerprint: string) => MappedIdentity | undefined)
  /** Header carrying the key. Default `x-api-key`, or `authorization` when `scheme` is set. */
  header?: string
  /** Authorization scheme in front of the key, e.g. `Bearer`; default none. */
  scheme?: string
  /** `nhi.type` for identities the map gives no type. Default `api_key`. */
  defaultType?: NhiType
  /** HMAC key for fingerprints. Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
}

/**
 * Resolves an API key presented in a header by looking its fingerprint up in
 * a map. A known key gives its identity with `nhi.credential.id` set to the
 * fingerprint; an unknown key gives nothing (the next resolver is asked).
 */
export function apiKeyResolver(options: ApiKeyResolverOptions): NhiIdentityResolver {
  const header = options.header ?? (options.scheme ? 'authorization' : 'x-api-key')
  const schemePrefix = options.scheme ? `${options.scheme.toLowerCase()} ` : undefined
  const key = resolveFingerprintKey(options.fingerprintKey)
  const defaultType = options.defaultType ?? 'api_key'
  const { identities } = options
  const lookUp: (fingerprint: string) => MappedIdentity | undefined =
    typeof identities === 'function'
      ? identities
      : identities instanceof Map
        ? (fp) => identities.get(fp)
        : (fp) => (Object.hasOwn(identities, fp) ? (identities as Record<string, MappedIdentity>)[fp] : undefined)
  return (request) => {
    let presented = headerValue(request, header)?.trim()
    if (!presented) return undefined
    if (schemePrefix) {
      if (presented.slice(0, schemePrefix.length).toLowerCase() !== schemePrefix) return undefined
      presented = presented.slice(schemePrefix.length).trim()
      if (!presented) return undefined
    }
    const fingerprint = fingerprintCredential(presented, key)
    const mapped = lookUp(fingerprint)
    if (!mapped) return undefined
    return { ...mapped, type: mapped.type ?? defaultType, credentialId: fingerprint }
  }
}

/** Decodes the claims of a JWT without verifying it. Returns undefined when the value is not a JWT with a JSON object payload. */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  // Access tokens are a few KB at most; a huge header is not worth parsing on the hot path.
  if (token.length > 16_384) return undefined
  const parts = token.split('.')
  if (parts.length !== 3 || !parts[1]) return undefined
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Options of {@link identityFromJwtClaims} and {@link oauthClientResolver}. */
export interface JwtClaimsOptions {
  /** Claims naming the client, first present wins. Default `client_id`, `azp`, `sub`. */
  claims?: readonly string[]
  /** `nhi.type` of the identity. Default `service_account`. */
  type?: NhiType
  /** Extra fields (owner, business unit, type) by client id. */
  identities?: Record<string, Partial<MappedIdentity>> | ReadonlyMap<string, Partial<MappedIdentity>>
}

const DEFAULT_CLIENT_CLAIMS = ['client_id', 'azp', 'sub'] as const

function extraFieldsFor(identities: JwtClaimsOptions['identities'], clientId: string): Partial<MappedIdentity> | undefined {
  if (!identities) return undefined
  if (identities instanceof Map) return identities.get(clientId)
  return Object.hasOwn(identities, clientId) ? (identities as Record<string, Partial<MappedIdentity>>)[clientId] : undefined
}

/**
 * Turns OAuth/JWT claims into an identity: the id is the first of `client_id`,
 * `azp`, `sub` present; when the client id came from `client_id` or `azp` and
 * `sub` names someone else, `sub` is the principal acted for (`nhi.on_behalf_of`).
 * Use it with claims your app has verified; the claims are trusted as given.
 */
export function identityFromJwtClaims(claims: Record<string, unknown>, options: JwtClaimsOptions = {}): NhiIdentity | undefined {
  const names = options.claims ?? DEFAULT_CLIENT_CLAIMS
  let id: string | undefined
  let idClaim: string | undefined
  for (const name of names) {
    const value = claims[name]
    if (typeof value === 'string' && value !== '') {
      id = value
      idClaim = name
      break
    }
  }
  if (!id) return undefined
  const identity: NhiIdentity = { id, type: options.type ?? 'service_account', ...extraFieldsFor(options.identities, id) }
  const subject = claims.sub
  if (idClaim !== 'sub' && typeof subject === 'string' && subject !== '' && subject !== id) identity.onBehalfOf = subject
  return identity
}

/** Options of {@link oauthClientResolver}. */
export interface OAuthClientResolverOptions extends JwtClaimsOptions {
  /** Header carrying the credential. Default `authorization`. */
  header?: string
  /** Also resolve `Basic` client credentials (client id and secret, as sent to a token endpoint). Default true. */
  basic?: boolean
  /** HMAC key for fingerprints. Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
}

/**
 * Resolves OAuth clients from the `Authorization` header: a `Bearer` JWT by
 * its claims (see {@link identityFromJwtClaims}), or `Basic` client
 * credentials by the client id. The token or secret is only fingerprinted.
 *
 * The JWT signature is NOT verified here: the identity is what the token
 * claims. It is trustworthy only when the app (or a gateway in front of it)
 * rejects requests whose token does not verify; otherwise use
 * {@link identityFromJwtClaims} with verified claims inside `withIdentity`.
 */
export function oauthClientResolver(options: OAuthClientResolverOptions = {}): NhiIdentityResolver {
  const header = options.header ?? 'authorization'
  const key = resolveFingerprintKey(options.fingerprintKey)
  const basic = options.basic ?? true
  return (request) => {
    const value = headerValue(request, header)?.trim()
    if (!value) return undefined
    const space = value.indexOf(' ')
    if (space < 0) return undefined
    const scheme = value.slice(0, space).toLowerCase()
    const credential = value.slice(space + 1).trim()
    if (!credential) return undefined
    if (scheme === 'bearer') {
      const claims = decodeJwtClaims(credential)
      const identity = claims && identityFromJwtClaims(claims, options)
      return identity ? { ...identity, credentialId: fingerprintCredential(credential, key) } : undefined
    }
    if (scheme === 'basic' && basic) {
      const decoded = Buffer.from(credential, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon <= 0) return undefined
      let clientId: string
      try {
        clientId = decodeURIComponent(decoded.slice(0, colon))
      } catch {
        clientId = decoded.slice(0, colon)
      }
      return {
        id: clientId,
        type: options.type ?? 'service_account',
        ...extraFieldsFor(options.identities, clientId),
        credentialId: fingerprintCredential(decoded, key),
      }
    }
    return undefined
  }
}

/** Environment variable naming a JSON file of API-key identities by fingerprint, for the zero-code start. */
export const API_KEY_IDENTITIES_FILE_ENV = 'NHI_API_KEY_IDENTITIES_FILE'
/** Environment variable naming the API-key header for the zero-code start (default `x-api-key`). */
export const API_KEY_HEADER_ENV = 'NHI_API_KEY_HEADER'

/**
 * Reads an API-key identities file: a JSON object from fingerprint to
 * `{ id, type, owner, business_unit }` (`businessUnit` also accepted).
 */
export function readApiKeyIdentitiesFile(path: string): Map<string, MappedIdentity> {
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'))
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${path}: expected a JSON object from credential fingerprint to identity`)
  }
  const identities = new Map<string, MappedIdentity>()
  for (const [fingerprint, raw] of Object.entries(parsed as Record<string, Record<string, unknown>>)) {
    if (typeof raw?.id !== 'string') throw new Error(`${path}: entry ${fingerprint} has no string "id"`)
    const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
    identities.set(fingerprint, {
      id: raw.id,
      type: str(raw.type),
      owner: str(raw.owner),
      businessUnit: str(raw.business_unit) ?? str(raw.businessUnit),
      onBehalfOf: str(raw.on_behalf_of) ?? str(raw.onBehalfOf),
    })
  }
  return identities
}

/**
 * The resolvers used when none are given: the API-key map of
 * `NHI_API_KEY_IDENTITIES_FILE` (header `NHI_API_KEY_HEADER`, default
 * `x-api-key`) when set, then OAuth/JWT claims from `Authorization`.
 */
export function defaultResolvers(env: NodeJS.ProcessEnv = process.env, fingerprintKey?: string): NhiIdentityResolver[] {
  const resolvers: NhiIdentityResolver[] = []
  const file = env[API_KEY_IDENTITIES_FILE_ENV]
  if (file) {
    try {
      resolvers.push(apiKeyResolver({ identities: readApiKeyIdentitiesFile(file), header: env[API_KEY_HEADER_ENV] || undefined, fingerprintKey }))
    } catch (error) {
      reportFailure(`reading ${API_KEY_IDENTITIES_FILE_ENV}`, error)
    }
  }
  resolvers.push(oauthClientResolver({ fingerprintKey }))
  return resolvers
}

let configuredResolvers: readonly NhiIdentityResolver[] | undefined
let configuredFingerprintKey: string | undefined

/** Sets the resolvers that {@link withRequestIdentity} uses by default (done by `startNhiMeter`). */
export function configureResolvers(resolvers: readonly NhiIdentityResolver[], fingerprintKey?: string): void {
  configuredResolvers = resolvers
  configuredFingerprintKey = fingerprintKey
}

function currentResolvers(): readonly NhiIdentityResolver[] {
  configuredResolvers ??= defaultResolvers(process.env, configuredFingerprintKey)
  return configuredResolvers
}

/**
 * Asks each resolver in turn and returns the first identity found. A resolver
 * that throws or returns a promise is reported through `diag` and skipped.
 */
export function resolveRequestIdentity(
  request: InboundRequest,
  resolvers: readonly NhiIdentityResolver[] = currentResolvers(),
): IdentityRecord | undefined {
  for (let i = 0; i < resolvers.length; i++) {
    let identity: NhiIdentity | undefined
    try {
      identity = resolvers[i]!(request)
    } catch (error) {
      reportFailure(`identity resolver #${i + 1}${resolvers[i]!.name ? ` (${resolvers[i]!.name})` : ''}`, error)
      continue
    }
    if (identity === undefined || identity === null) continue
    if (typeof (identity as { then?: unknown }).then === 'function') {
      reportFailure(`identity resolver #${i + 1}`, new TypeError('a resolver must return an identity synchronously, not a promise'))
      continue
    }
    const record = toIdentityRecord(identity, 'request', configuredFingerprintKey)
    if (record) return record
  }
  return undefined
}

/** Puts an identity's attributes on a span that has none yet (an explicit `nhi.id` on the span wins). */
export function stampIdentity(span: Span, record: IdentityRecord): void {
  const attributes = (span as { attributes?: Record<string, unknown> }).attributes
  if (attributes?.[ATTR_NHI_ID] !== undefined) return
  for (const [key, value] of record.attributes) {
    if (attributes?.[key] === undefined) span.setAttribute(key, value)
  }
}

/** Options of {@link withRequestIdentity}. */
export interface RequestIdentityOptions {
  /** Resolvers to ask instead of the configured ones. */
  resolvers?: readonly NhiIdentityResolver[]
}

/**
 * Resolves who sent `request` and runs `fn` with every span started inside it
 * attributed to that identity. The span active at the call (typically the HTTP
 * server span) gets the identity too. When no resolver knows the caller, `fn`
 * runs unchanged. Resolver failures never reach `fn` or its caller.
 *
 * @example http.createServer((req, res) => withRequestIdentity(req, () => handle(req, res)))
 */
export function withRequestIdentity<T>(request: InboundRequest, fn: () => T, options: RequestIdentityOptions = {}): T {
  let ctx = context.active()
  try {
    const record = resolveRequestIdentity(request, options.resolvers)
    if (record) {
      const active = trace.getSpan(ctx)
      if (active?.isRecording()) stampIdentity(active, record)
      ctx = setRequestIdentity(ctx, record)
    }
  } catch (error) {
    reportFailure('request identity resolution', error)
  }
  return context.with(ctx, fn)
}
