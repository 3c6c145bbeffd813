import { context, createContextKey, type AttributeValue, type Context } from '@opentelemetry/api'
import { fingerprintCredential, isFingerprint } from './fingerprint.js'
import { looksLikeSecret } from './redaction.js'
import { warnOnce } from './report.js'
import {
  ATTR_NHI_BUSINESS_UNIT,
  ATTR_NHI_CREDENTIAL_ID,
  ATTR_NHI_ID,
  ATTR_NHI_ON_BEHALF_OF,
  ATTR_NHI_OWNER,
  ATTR_NHI_TYPE,
  NHI_TYPES,
  type NhiType,
} from './semconv.js'

/** Who acted: the fields of README "Attributes", in the names code uses. */
export interface NhiIdentity {
  /** Stable id of the acting identity (`nhi.id`); required to bill. */
  id: string
  /** Kind of identity (`nhi.type`); an unknown value becomes `other`. */
  type?: NhiType | (string & {})
  /** Accountable team or person (`nhi.owner`). */
  owner?: string
  /** Cost centre (`nhi.business_unit`). */
  businessUnit?: string
  /** Fingerprint of the credential used (`nhi.credential.id`); a raw credential given here is fingerprinted, never stored. */
  credentialId?: string
  /** The principal the identity acts for, when delegated (`nhi.on_behalf_of`). */
  onBehalfOf?: string
}

/**
 * An identity checked once and turned into the span attributes it stamps, so
 * the per-span work is a copy of a few entries.
 */
export interface IdentityRecord {
  /** The identity as given, after checks. */
  readonly identity: Readonly<NhiIdentity>
  /** The `nhi.*` attributes it puts on a span, `nhi.id` first. */
  readonly attributes: ReadonlyArray<readonly [string, AttributeValue]>
  /** Where it came from, for the precedence rules and diagnostics. */
  readonly source: IdentitySource
}

/** Where an identity came from. */
export type IdentitySource = 'scoped' | 'request' | 'process'

/**
 * Which identity a span is attributed to, highest first. The README's
 * precedence table is this list (a test compares them); the span processor
 * and the readers of README "Identity precedence" implement it.
 */
export const IDENTITY_PRECEDENCE = [
  { source: 'span', rule: 'An `nhi.id` the app set on the span itself; the other sources then add nothing to that span.' },
  { source: 'scoped', rule: 'The innermost `withIdentity` (or `setIdentity` context, or an activity helper’s `identity` option).' },
  { source: 'request', rule: 'The identity the resolvers found for the inbound request (`withRequestIdentity`).' },
  { source: 'parent', rule: 'The identity of the HTTP server span the request hook resolved, inherited down its span tree.' },
  { source: 'process', rule: 'The resource: `identity` option, then `NHI_*` variables, then `nhi.*` in `OTEL_RESOURCE_ATTRIBUTES`, field by field.' },
] as const

/** Turns a value of `nhi.type` into one README "Attributes" allows, warning once about unknown ones. */
export function normalizeNhiType(type: string | undefined): NhiType | undefined {
  if (type === undefined || type === '') return undefined
  if ((NHI_TYPES as readonly string[]).includes(type)) return type as NhiType
  warnOnce(`nhi-type:${type}`, `nhi.type "${type}" is not one of ${NHI_TYPES.join(', ')}; using "other"`)
  return 'other'
}

/**
 * Checks an identity and computes its attributes. Returns undefined (and warns
 * once) when it has no usable id. A `credentialId` that is not already a
 * fingerprint is fingerprinted, so a raw key passed by mistake never reaches a span.
 */
export function toIdentityRecord(identity: NhiIdentity, source: IdentitySource, fingerprintKey?: string): IdentityRecord | undefined {
  if (typeof identity?.id !== 'string' || identity.id.trim() === '') {
    warnOnce(`identity-without-id:${source}`, `an identity from ${source} has no id and was ignored`)
    return undefined
  }
  const type = normalizeNhiType(identity.type)
  let credentialId = identity.credentialId
  if (credentialId !== undefined && !isFingerprint(credentialId)) {
    if (looksLikeSecret(credentialId)) {
      warnOnce('raw-credential-id', 'credentialId looked like a raw credential and was fingerprinted; pass fingerprintCredential(secret)')
      credentialId = fingerprintCredential(credentialId, fingerprintKey)
    }
  }
  const checked: NhiIdentity = { id: identity.id }
  const attributes: Array<[string, AttributeValue]> = [[ATTR_NHI_ID, identity.id]]
  if (type) {
    checked.type = type
    attributes.push([ATTR_NHI_TYPE, type])
  }
  if (identity.owner) {
    checked.owner = identity.owner
    attributes.push([ATTR_NHI_OWNER, identity.owner])
  }
  if (identity.businessUnit) {
    checked.businessUnit = identity.businessUnit
    attributes.push([ATTR_NHI_BUSINESS_UNIT, identity.businessUnit])
  }
  if (credentialId) {
    checked.credentialId = credentialId
    attributes.push([ATTR_NHI_CREDENTIAL_ID, credentialId])
  }
  if (identity.onBehalfOf) {
    checked.onBehalfOf = identity.onBehalfOf
    attributes.push([ATTR_NHI_ON_BEHALF_OF, identity.onBehalfOf])
  }
  return { identity: Object.freeze(checked), attributes: Object.freeze(attributes), source }
}

/** Environment variables of the static process identity (README "Attributes" names, upper-cased). */
export const IDENTITY_ENV = {
  id: 'NHI_ID',
  type: 'NHI_TYPE',
  owner: 'NHI_OWNER',
  businessUnit: 'NHI_BUSINESS_UNIT',
} as const

/**
 * The static identity of the process: fields from `options` win over the
 * `NHI_ID`, `NHI_TYPE`, `NHI_OWNER`, `NHI_BUSINESS_UNIT` variables, field by field.
 * Returns the resource attributes to add (empty when nothing is set).
 */
export function processIdentityAttributes(
  options: Partial<Pick<NhiIdentity, 'id' | 'type' | 'owner' | 'businessUnit'>> | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const pick = (field: keyof typeof IDENTITY_ENV): string | undefined => {
    const value = options?.[field] ?? env[IDENTITY_ENV[field]]
    return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined
  }
  const attributes: Record<string, string> = {}
  const id = pick('id')
  const type = normalizeNhiType(pick('type'))
  const owner = pick('owner')
  const businessUnit = pick('businessUnit')
  if (id) attributes[ATTR_NHI_ID] = id
  if (type) attributes[ATTR_NHI_TYPE] = type
  if (owner) attributes[ATTR_NHI_OWNER] = owner
  if (businessUnit) attributes[ATTR_NHI_BUSINESS_UNIT] = businessUnit
  return attributes
}

/**
 * Both identities a context can carry live under one key, so the span
 * processor finds the one that applies with a single context look-up.
 */
interface ContextIdentities {
  readonly scoped?: IdentityRecord
  readonly request?: IdentityRecord
  /** The record spans take: scoped wins over request. */
  readonly effective: IdentityRecord
}

const IDENTITIES = createContextKey('@nhi-meter/instrumentation identities')

/** The identity record a span started in `ctx` takes: scoped identity first, then the request's. */
export function identityRecordOf(ctx: Context): IdentityRecord | undefined {
  return (ctx.getValue(IDENTITIES) as ContextIdentities | undefined)?.effective
}

/** The identity spans started in `ctx` are attributed to, if any (scoped wins over request). */
export function getIdentity(ctx: Context = context.active()): Readonly<NhiIdentity> | undefined {
  return identityRecordOf(ctx)?.identity
}

/** Returns a context in which spans act as `identity` (like {@link withIdentity}, for code that manages contexts itself). */
export function setIdentity(ctx: Context, identity: NhiIdentity): Context {
  const record = toIdentityRecord(identity, 'scoped')
  if (!record) return ctx
  const current = ctx.getValue(IDENTITIES) as ContextIdentities | undefined
  return ctx.setValue(IDENTITIES, { scoped: record, request: current?.request, effective: record } satisfies ContextIdentities)
}

/** Returns a context carrying an identity resolved from an inbound request (a scoped identity already there still wins). */
export function setRequestIdentity(ctx: Context, record: IdentityRecord): Context {
  const current = ctx.getValue(IDENTITIES) as ContextIdentities | undefined
  return ctx.setValue(IDENTITIES, { scoped: current?.scoped, request: record, effective: current?.scoped ?? record } satisfies ContextIdentities)
}

/**
 * Runs `fn` with every span started inside it (and in everything it awaits)
 * attributed to `identity`. The identity travels in the OpenTelemetry context,
 * so concurrent calls never see each other's identity; the innermost scope wins.
 */
export function withIdentity<T>(identity: NhiIdentity, fn: () => T): T {
  return context.with(setIdentity(context.active(), identity), fn)
}
