/**
 * The `webhooks:` section of the policy file (POLICY.md; README, "Webhooks"):
 * where events are pushed, which events, and which findings and business
 * units each destination hears about. The secret itself is never in the
 * policy: `secret_env` names the environment variable that holds it, read
 * once at start-up (secrets.ts).
 */
import * as z from 'zod'
import { FINDING_KINDS, SEVERITIES, type FindingKind, type Severity } from '../findings/kinds.js'
import { closestMatch, describeValue, quote, type PathSegments } from '../policy/issues.js'

/** Every event a destination may ask for, in the order the README lists them. */
export const WEBHOOK_EVENTS = ['finding.opened', 'finding.resolved', 'completeness.below_threshold', 'statement.closed'] as const
/** One event name, also the `type` of its deliveries. */
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number]

/** One destination of webhook deliveries, defaults filled in. */
export interface WebhookDestination {
  /** Unique among destinations; names the destination in logs (the URL may carry a token, so it is never logged). */
  readonly name: string
  /** Where deliveries are POSTed: http or https. */
  readonly url: string
  /** The environment variable holding the signing secret (read at start-up, never stored). */
  readonly secret_env: string
  /** The events sent to this destination. */
  readonly events: readonly WebhookEventType[]
  /** Findings below this severity are not sent (finding events only; default low, i.e. all). */
  readonly min_severity: Severity
  /** Finding kinds sent (finding events only); every kind by default. */
  readonly kinds: readonly FindingKind[]
  /** Business units this destination covers; null (the default) for all of them. */
  readonly business_units: readonly string[] | null
}

/** Limits that keep a runaway policy from fanning out without bound. */
export const WEBHOOK_LIMITS = { destinations: 100, businessUnits: 1000 } as const

const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/
const ENV_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

// "is required" for a missing key, else "must be <what>, got <value>" (as the rest of the policy says it).
function expecting(what: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? `is required (${what})` : `must be ${what}, got ${describeValue(issue.input)}`)
}

function checkedString(what: string, check: (text: string) => string | undefined) {
  return z.string({ error: expecting(what) }).superRefine((text, ctx) => {
    const problem = check(text)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: text })
  })
}

// One of a fixed vocabulary, with a did-you-mean for a near miss.
function oneOf<T extends string>(noun: string, values: readonly T[]) {
  const listed = values.join(', ')
  return z.string({ error: expecting(`${noun}: one of ${listed}`) }).transform((text, ctx): T => {
    if ((values as readonly string[]).includes(text)) return text as T
    const near = closestMatch(text, values)
    ctx.addIssue({ code: 'custom', input: text, message: `unknown ${noun} ${quote(text)}; ${near !== undefined ? `did you mean "${near}"? ` : ''}expected one of ${listed}` })
    return z.NEVER
  })
}

function nonEmptyList<T extends z.ZodType>(element: T, noun: string, max: number, whenAbsent: string) {
  return z
    .array(element, { error: expecting(`a list of ${noun}`) })
    .min(1, { error: `must list at least one of the ${noun}; leave the key out for ${whenAbsent}` })
    .max(max, { error: `must list at most ${max} ${noun}` })
}

const url = checkedString('an http:// or https:// URL', (text) => {
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    return `must be an http:// or https:// URL, got ${quote(text)}`
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `must be an http:// or https:// URL, got the scheme ${quote(parsed.protocol.slice(0, -1))}`
  if (parsed.username !== '' || parsed.password !== '') return 'must not carry a user name or password; deliveries are authenticated by their signature'
  return undefined
})

const businessUnit = checkedString('a business unit name', (text) =>
  text.trim() === '' ? 'must not be empty' : text.length > 256 ? 'must be at most 256 characters' : undefined,
)

/** The zod schema of one destination. */
export const webhookDestinationSchema = z.strictObject(
  {
    name: checkedString('a name like "secops"', (text) =>
      NAME_PATTERN.test(text) ? undefined : `must be a name like "secops" (a–z, 0–9, _ and -, starting with a letter or digit, at most 63 characters), got ${quote(text)}`,
    ),
    url,
    secret_env: checkedString('the name of an environment variable like NHI_METER_WEBHOOK_SECOPS', (text) =>
      ENV_PATTERN.test(text) ? undefined : `must be the name of an environment variable like NHI_METER_WEBHOOK_SECOPS (letters, digits and _), got ${quote(text)}; the secret itself never goes in the policy`,
    ),
    events: nonEmptyList(oneOf('event', WEBHOOK_EVENTS), 'events', WEBHOOK_EVENTS.length * 4, 'nothing: a destination must ask for something').transform((events) => [
      ...new Set(events),
    ]),
    min_severity: oneOf('severity', SEVERITIES).default('low'),
    kinds: nonEmptyList(oneOf('finding kind', FINDING_KINDS), 'finding kinds', FINDING_KINDS.length * 4, 'every kind')
      .transform((kinds) => [...new Set(kinds)])
      .default([...FINDING_KINDS]),
    business_units: nonEmptyList(businessUnit, 'business units', WEBHOOK_LIMITS.businessUnits, 'every business unit')
      .transform((units): string[] | null => [...new Set(units)].sort())
      .default(null),
  },
  {
    error: (issue: { input?: unknown; code?: string }) =>
      issue.code === 'unrecognized_keys' ? undefined : expecting('a destination mapping with name, url, secret_env, events')(issue),
  },
)

/** The zod schema of the `webhooks:` section: a list of destinations (absent: none). */
export const webhooksSchema = z
  .array(webhookDestinationSchema, { error: expecting('a list of webhook destinations') })
  .max(WEBHOOK_LIMITS.destinations, { error: `must list at most ${WEBHOOK_LIMITS.destinations} destinations` })

/** The keys a destination accepts (for did-you-mean hints and the docs test). */
export const WEBHOOK_KEYS: readonly string[] = Object.keys(webhookDestinationSchema.shape)

/** Checks across destinations: names are unique. */
export function crossCheckWebhooks(destinations: readonly WebhookDestination[]): Array<{ path: PathSegments; message: string }> {
  const errors: Array<{ path: PathSegments; message: string }> = []
  const names = new Map<string, number>()
  destinations.forEach((destination, i) => {
    const same = names.get(destination.name)
    if (same !== undefined) errors.push({ path: ['webhooks', i, 'name'], message: `${quote(destination.name)} is already the name of webhooks[${same}]; names must be unique` })
    else names.set(destination.name, i)
  })
  return errors
}
