/**
 * The policy file's shape (POLICY.md): every key, its
 * type, its default, and the checks that span keys (unique versions, one
 * currency, meters that can never match). Unknown keys are errors, so a
 * typo never silently falls back to a default.
 */
import { CUSTOM_ACTIVITY_TYPE_PATTERN, NHI_ACTIVITY_TYPES } from '@nhi-meter/instrumentation/semconv'
import * as z from 'zod'
import { tryParseMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import type { MeterPrice, PriceModel } from '../money/pricing.js'
import { formatQuantity, tryParseQuantity, type Quantity } from '../money/quantity.js'
import { checkGlob, globMatchesEverything } from './glob.js'
import { closestMatch, describeValue, quote, type PathSegments } from './issues.js'
import { checkMeterValue } from './meter-value.js'
import { tryParseDuration, tryParseUtcTimestamp, type Duration, type ParseResult, type UtcTimestamp } from './time.js'
import { crossCheckWebhooks, WEBHOOK_KEYS, webhooksSchema, type WebhookDestination } from '../webhooks/schema.js'

/** Which spans a meter or entitlement counts: `ok` (status not Error; Unset counts as ok), `error`, or `any`. */
export const METER_STATUSES = ['ok', 'error', 'any'] as const
/** A value of a meter's or entitlement's `status`. */
export type MeterStatus = (typeof METER_STATUSES)[number]

/** What a meter measures: matching events (`count`), a span value (`sum`), or identities with at least `min_events` matching events (`active_identities`). */
export const METER_AGGREGATIONS = ['count', 'sum', 'active_identities'] as const
/** A value of a meter's `aggregation`. */
export type MeterAggregation = (typeof METER_AGGREGATIONS)[number]

/** One priced kind of use event within a rate card. */
export interface Meter {
  /** Unique within its card; the `meter` value in billing rows. */
  readonly name: string
  /** The activity type the span must have. */
  readonly activity_type: string
  /** Glob the activity name must match (default `*`). */
  readonly activity_name: string
  /** Which span statuses count (default `ok`). */
  readonly status: MeterStatus
  /** What is measured (default `count`); meters of the same aggregation and value compete for a span, others each see it. */
  readonly aggregation: MeterAggregation
  /** For `sum`: `duration_ms` or a numeric span attribute name; `null` otherwise. */
  readonly value: string | null
  /** For `active_identities`: matching events an identity needs in the month to count (default 1; 1 for other meters). */
  readonly min_events: number
  /** How the measured quantity is priced: the model, an allowance and a minimum (money/pricing.ts). */
  readonly price: MeterPrice
  /** The price per unit when the model is `unit`; `null` for tiers and packages. */
  readonly unit_price: Money | null
}

/** A price list in force from `effective_from` until the next card takes over. */
export interface RateCard {
  /** Unique label, reported in `rate_card_versions`. */
  readonly version: string
  /** First instant the card prices (inclusive). */
  readonly effective_from: UtcTimestamp
  /** ISO 4217 code; the same for every card. */
  readonly currency: string
  /** Tried in order; the first that matches a span prices it. */
  readonly meters: readonly Meter[]
}

/** A feature granted to an identity that shows enough matching activity in a rolling window. */
export interface Entitlement {
  /** Unique feature name. */
  readonly feature: string
  /** The activity type that counts. */
  readonly activity_type: string
  /** Glob the activity name must match (default `*`). */
  readonly activity_name: string
  /** Which span statuses count (default `ok`). */
  readonly status: MeterStatus
  /** Events needed in the window for the feature to be granted. */
  readonly min_count: number
  /** Rolling window ending at the decision time. */
  readonly window: Duration
}

/** Billing settings beyond the rate cards. */
export interface BillingSettings {
  /** Identified share of spans (0–1) at or above which a billing period is `complete`. */
  readonly completeness_threshold: number
}

/** Thresholds for `/v1/findings`; see POLICY.md for what each finding kind does with them. */
export interface DetectionSettings {
  /** `dormant`: no activity for longer than this. */
  readonly dormant_after: Duration
  /** `dormant`: an identity silent this long is dormant early when the silence is also unusual for it. */
  readonly dormant_early_after: Duration
  /** `dormant`: ... that is, longer than this many times its longest earlier silence in the look-back. */
  readonly dormant_gap_factor: number
  /** `burst`: the window lengths tested (below an hour: dividing an hour; otherwise whole hours). */
  readonly burst_windows: readonly Duration[]
  /** `burst`: the preceding stretch that sets the identity's expected count per window (whole days). */
  readonly burst_baseline: Duration
  /** `burst`: the rate in a window must be shown to exceed this many times the expected rate. */
  readonly burst_factor: number
  /** `burst`: and at least this many events in the window. */
  readonly burst_min_events: number
  /** `burst`: false bursts expected per identity and activity type in 30 days of steady behaviour. */
  readonly burst_false_alarms: number
  /** `privilege_drift` (b): a new name of an activity type the identity already used needs this many events in the range. */
  readonly drift_min_events: number
  /** `sustained_growth`: length of each period compared. */
  readonly sustained_growth_period: Duration
  /** `sustained_growth`: how many of the latest complete periods must each stay above the baseline median m and at least m + 3 spreads (the baseline: the periods before them; the spread from their period-to-period differences; the week's shape taken out first when a week is a whole number of periods and the baseline holds two weeks; findings/detect.ts, weeklyAdjusted and sustainedGrowth). */
  readonly sustained_growth_periods: number
  /** `sustained_growth`: the median of those periods is at least this many times the baseline median; also the level the day after a burst must stay under (else the burst began a level shift). */
  readonly sustained_growth_factor: number
  /** `sustained_growth`: and the latest period has at least this many events. */
  readonly sustained_growth_min_events: number
  /** `overactive`: the window events are counted in. */
  readonly overactive_window: Duration
  /** `overactive`: more events than this by one identity in one window. */
  readonly overactive_max_events: number
  /** `auth_failures`: the window failures are counted in. */
  readonly auth_failures_window: Duration
  /** `auth_failures`: at least this many failed token_exchange spans in one window. */
  readonly auth_failures_min_count: number
  /** `credential_reuse`: the window credential use is looked at in. */
  readonly credential_reuse_window: Duration
  /** `credential_reuse`: one credential used by more identities than this. */
  readonly credential_reuse_max_identities: number
  /** `stale_credential`: last ok secret_rotation (or first activity, if none) older than this. */
  readonly rotation_max_age: Duration
  /** `telemetry_gap`: a service's identified share of spans below this. */
  readonly telemetry_gap_min_ratio: number
  /** `telemetry_gap`: the ratio is judged over at least this many spans. */
  readonly telemetry_gap_min_spans: number
  /** `telemetry_gap`: a service that sent spans and then none for this long. */
  readonly telemetry_gap_silence: Duration
}

/** How spans name identities (README, "Agent frameworks"). */
export interface IdentitySettings {
  /** `gen_ai.agent.id` / `gen_ai.agent.name` values that frameworks stamp by default: not identities (compared case-insensitively). */
  readonly placeholder_agent_ids: readonly string[]
  /** UUID-shaped agent ids are per-run ids, not identities. */
  readonly uuid_agent_ids_are_placeholders: boolean
}

/** A validated policy with every default filled in. Loaded policies are deeply frozen. */
export interface Policy {
  /** Price lists over time; at least one, all in one currency. */
  readonly rate_cards: readonly RateCard[]
  /** Features earned by observed use; empty by default. */
  readonly entitlements: readonly Entitlement[]
  /** Billing settings, defaults filled in. */
  readonly billing: BillingSettings
  /** Finding thresholds, defaults filled in. */
  readonly detection: DetectionSettings
  /** Which span values are not identities, defaults filled in. */
  readonly identity: IdentitySettings
  /** Where events are pushed (webhooks/schema.ts); none by default. */
  readonly webhooks: readonly WebhookDestination[]
}

/** Billing defaults, as they would be written in a policy file. */
export const BILLING_DEFAULTS = { completeness_threshold: 0.99 } as const

/** Identity defaults, as they would be written in a policy file. */
export const IDENTITY_DEFAULTS = {
  placeholder_agent_ids: ['agent', 'default', 'unknown', 'assistant', 'OpenAI Agent'],
  uuid_agent_ids_are_placeholders: true,
} as const

/** Detection defaults, as they would be written in a policy file; POLICY.md and default-policy.yaml are tested against these. */
export const DETECTION_DEFAULTS = {
  dormant_after: '30d',
  dormant_early_after: '7d',
  dormant_gap_factor: 2,
  burst_windows: ['5m', '1h', '6h'],
  burst_baseline: '7d',
  burst_factor: 3,
  burst_min_events: 10,
  burst_false_alarms: 0.01,
  drift_min_events: 3,
  sustained_growth_period: '1d',
  sustained_growth_periods: 3,
  sustained_growth_factor: 2,
  sustained_growth_min_events: 20,
  overactive_window: '1h',
  overactive_max_events: 10000,
  auth_failures_window: '1h',
  auth_failures_min_count: 10,
  credential_reuse_window: '30d',
  credential_reuse_max_identities: 1,
  rotation_max_age: '90d',
  telemetry_gap_min_ratio: 0.99,
  telemetry_gap_min_spans: 100,
  telemetry_gap_silence: '1h',
} as const satisfies Record<keyof DetectionSettings, string | number | readonly string[]>

/** Limits that keep a hostile or runaway policy from exhausting memory or time. */
export const POLICY_LIMITS = {
  rateCards: 1000,
  metersPerCard: 1000,
  tiersPerMeter: 100,
  entitlements: 1000,
  /** Largest count a threshold may name. */
  maxCount: 1_000_000_000_000,
  /** Largest growth or burst factor. */
  maxFactor: 1_000_000,
} as const

const WORD_PATTERN = new RegExp(CUSTOM_ACTIVITY_TYPE_PATTERN)
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const RATIO_TEXT = /^(?:0(?:\.[0-9]{1,6})?|1(?:\.0{1,6})?)$/
const WORD_RULE = 'a–z, 0–9 and _, starting with a letter, at most 63 characters'

// ---- field schemas: each says what it expects in the words a user needs

// A zod error function: "is required" for a missing key, else "must be <what>, got <value>".
function expecting(what: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? `is required (${what})` : `must be ${what}, got ${describeValue(issue.input)}`
}

// Object schemas report a wrong type their own way and leave unknown keys to the loader,
// which names each one with a did-you-mean.
function objectError(what: string) {
  return (issue: { input?: unknown; code?: string }) =>
    issue.code === 'unrecognized_keys' ? undefined : expecting(what)(issue)
}

// `quoteHint`: a bare number would be valid once quoted (YAML reads `version: 2026` as a number).
function parsedString<T>(what: string, parse: (text: string) => ParseResult<T>, quoteHint = false) {
  const error = (issue: { input?: unknown }) =>
    quoteHint && typeof issue.input === 'number'
      ? `must be ${what}, got ${describeValue(issue.input)}; put it in quotes`
      : expecting(what)(issue)
  return z.string({ error }).transform((text, ctx): T => {
    const result = parse(text)
    if (result.ok) return result.value
    ctx.addIssue({ code: 'custom', message: result.problem, input: text })
    return z.NEVER
  })
}

function lowercaseWord(example: string) {
  const what = `a lowercase word like "${example}"`
  return parsedString(what, (text): ParseResult<string> =>
    WORD_PATTERN.test(text) ? { ok: true, value: text } : { ok: false, problem: `must be ${what} (${WORD_RULE}), got ${quote(text)}` },
  )
}

const activityType = (() => {
  const named = NHI_ACTIVITY_TYPES.join(', ')
  const what = `an activity type (${named}) or a custom lowercase word`
  return parsedString(what, (text): ParseResult<string> =>
    WORD_PATTERN.test(text) ? { ok: true, value: text } : { ok: false, problem: `must be ${what} (${WORD_RULE}), got ${quote(text)}` },
  )
})()

const activityNameGlob = parsedString('a glob like "search_*" ("*" any run, "?" one character)', checkGlob).default('*')

const meterStatus = parsedString('one of ok, error, any', (text): ParseResult<MeterStatus> =>
  (METER_STATUSES as readonly string[]).includes(text)
    ? { ok: true, value: text as MeterStatus }
    : { ok: false, problem: `must be one of ok, error, any, got ${quote(text)}` },
).default('ok')

// An amount of money: a decimal string (a bare YAML number could lose digits, so it is refused with a hint).
function money(example: string) {
  return z
    .string({
      error: (issue) =>
        typeof issue.input === 'number'
          ? `must be a decimal string like "${example}", got ${describeValue(issue.input)}; put it in quotes so no digit is lost`
          : expecting(`a decimal string like "${example}"`)(issue),
    })
    .transform((text, ctx): Money => {
      const result = tryParseMoney(text)
      if (result.ok) return result.value
      ctx.addIssue({ code: 'custom', message: result.problem, input: text })
      return z.NEVER
    })
}

const unitPrice = money('0.002')

// A quantity (tier bound, allowance, package size): a decimal string, or a whole YAML number (exact either way).
function quantity(example: string, { positive }: { positive: boolean }) {
  const what = `a decimal string like "${example}"`
  return z.unknown().transform((input, ctx): Quantity => {
    const refuse = (message: string) => {
      ctx.addIssue({ code: 'custom', message, input })
      return z.NEVER
    }
    let text: string
    if (input === undefined) return refuse(`is required (${what})`)
    if (typeof input === 'number') {
      if (input < 0) return refuse(`must not be negative, got ${describeValue(input)}`)
      if (!Number.isSafeInteger(input)) return refuse(`must be ${what}, got ${describeValue(input)}; put it in quotes so no digit is lost`)
      text = String(input)
    } else if (typeof input === 'string') text = input
    else return refuse(`must be ${what}, got ${describeValue(input)}`)
    const result = tryParseQuantity(text)
    if (!result.ok) return refuse(result.problem)
    if (positive && result.value === 0n) return refuse(`must be greater than 0, got ${describeValue(input)}`)
    return result.value
  })
}

function oneOf<const T extends string>(values: readonly T[]) {
  const what = `one of ${values.join(', ')}`
  return parsedString(what, (text): ParseResult<T> => {
    if ((values as readonly string[]).includes(text)) return { ok: true, value: text as T }
    const near = closestMatch(text, values)
    return { ok: false, problem: `must be ${what}, got ${quote(text)}${near === undefined ? '' : `; did you mean "${near}"?`}` }
  })
}

const aggregation = oneOf(METER_AGGREGATIONS).default('count')

const meterValue = parsedString('duration_ms or a numeric span attribute like "gen_ai.usage.input_tokens"', checkMeterValue)

const version = parsedString('a version label like "2026-11"', (text): ParseResult<string> =>
  VERSION_PATTERN.test(text)
    ? { ok: true, value: text }
    : { ok: false, problem: `must be a version label like "2026-11" (letters, digits, ".", "_", "-"; at most 64 characters), got ${quote(text)}` },
  true,
)

const effectiveFrom = parsedString('an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z"', tryParseUtcTimestamp)

// ISO 4217 codes as ICU knows them (Node ships full ICU); the pattern alone is the fallback.
const KNOWN_CURRENCIES: ReadonlySet<string> = new Set(
  typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('currency') : [],
)
const currency = parsedString('an ISO 4217 currency code like "USD"', (text): ParseResult<string> => {
  if (/^[a-z]{3}$/.test(text)) return { ok: false, problem: `must be an ISO 4217 currency code in capitals, e.g. "${text.toUpperCase()}", got ${quote(text)}` }
  if (!/^[A-Z]{3}$/.test(text)) return { ok: false, problem: `must be an ISO 4217 currency code like "USD" (three capital letters), got ${quote(text)}` }
  if (KNOWN_CURRENCIES.size > 0 && !KNOWN_CURRENCIES.has(text)) return { ok: false, problem: `is not an ISO 4217 currency code: ${quote(text)}` }
  return { ok: true, value: text }
})

const duration = (example: string) => parsedString(`a duration like "${example}"`, tryParseDuration)

function count(min: number, example: number) {
  const what = `a whole number from ${min} to ${POLICY_LIMITS.maxCount} like ${example}`
  return z.number({ error: expecting(what) }).transform((value, ctx): number => {
    if (Number.isInteger(value) && value >= min && value <= POLICY_LIMITS.maxCount) return value
    ctx.addIssue({ code: 'custom', message: `must be ${what}, got ${describeValue(value)}`, input: value })
    return z.NEVER
  })
}

function factor(example: number) {
  const what = `a number greater than 1 and at most ${POLICY_LIMITS.maxFactor} like ${example}`
  return z.number({ error: expecting(what) }).transform((value, ctx): number => {
    if (value > 1 && value <= POLICY_LIMITS.maxFactor) return value
    ctx.addIssue({ code: 'custom', message: `must be ${what}, got ${describeValue(value)}`, input: value })
    return z.NEVER
  })
}

// A share between 0 and 1. Six decimals at most, so the value is exactly the
// decimal the user wrote and completeness can be decided in integers.
function ratio(example: number) {
  const what = `a number from 0 to 1 like ${example}`
  return z.number({ error: expecting(what) }).transform((value, ctx): number => {
    if (value >= 0 && value <= 1 && RATIO_TEXT.test(String(value))) return value
    const problem = value >= 0 && value <= 1 ? `must have at most 6 decimal places, got ${describeValue(value)}` : `must be ${what}, got ${describeValue(value)}`
    ctx.addIssue({ code: 'custom', message: problem, input: value })
    return z.NEVER
  })
}

// A probability strictly between 0 and 1 (any precision: it only scales a test level).
function probability(example: number) {
  const what = `a number greater than 0 and less than 1 like ${example}`
  return z.number({ error: expecting(what) }).transform((value, ctx): number => {
    if (value > 0 && value < 1) return value
    ctx.addIssue({ code: 'custom', message: `must be ${what}, got ${describeValue(value)}`, input: value })
    return z.NEVER
  })
}

function list<T extends z.ZodType>(element: T, noun: string, max: number) {
  return z
    .array(element, { error: expecting(`a list of ${noun}`) })
    .max(max, { error: `must list at most ${max} ${noun}` })
}

// ---- object schemas (exported shapes let the loader name known keys in did-you-mean hints)

const tierSchema = z.strictObject(
  {
    up_to: quantity('1000', { positive: true }).optional(),
    unit_price: money('0.002').prefault('0'),
    flat_price: money('10.00').prefault('0'),
  },
  { error: objectError('a tier mapping with up_to (all but the last), unit_price, flat_price') },
)

// Tier bounds strictly increase and only the last tier is open-ended, so every quantity has exactly one tier.
const tierList = list(tierSchema, 'tiers', POLICY_LIMITS.tiersPerMeter)
  .min(1, { error: 'must list at least one tier' })
  .superRefine((tiers, ctx) => {
    let previous: { index: number; upTo: Quantity } | undefined
    tiers.forEach((tier, i) => {
      const last = i === tiers.length - 1
      const issue = (message: string) => ctx.addIssue({ code: 'custom', message, path: [i, 'up_to'], input: tier.up_to })
      if (tier.up_to === undefined) {
        if (!last) issue('is required on every tier but the last: only the last tier is unbounded (it prices everything above the tier before it)')
        return
      }
      const bound = `"${formatQuantity(tier.up_to)}"`
      if (last) issue(`must be left out on the last tier, which prices everything above the tier before it; with up_to ${bound}, usage above ${bound} would have no price`)
      else if (previous !== undefined && tier.up_to === previous.upTo) {
        issue(`is the same as tiers[${previous.index}].up_to (${bound}), so the tiers overlap; each up_to must be greater than the one before`)
      } else if (previous !== undefined && tier.up_to < previous.upTo) {
        issue(`must be greater than tiers[${previous.index}].up_to ("${formatQuantity(previous.upTo)}"), got ${bound}; list tiers in increasing order of up_to`)
      }
      previous = { index: i, upTo: tier.up_to }
    })
  })

const packageSchema = z.strictObject(
  { size: quantity('1000', { positive: true }), price: money('1.50') },
  { error: objectError('a package mapping with size and price') },
)

const includedSchema = z.strictObject(
  { quantity: quantity('1000', { positive: false }), per: oneOf(['identity', 'business_unit'] as const) },
  { error: objectError('an allowance mapping with quantity and per') },
)

const PRICE_KEYS = ['unit_price', 'tiers', 'package'] as const

const meterFields = z.strictObject(
  {
    name: lowercaseWord('tool_calls'),
    activity_type: activityType,
    activity_name: activityNameGlob,
    status: meterStatus,
    aggregation,
    value: meterValue.optional(),
    min_events: count(1, 10).optional(),
    unit_price: unitPrice.optional(),
    tiers: tierList.optional(),
    tier_mode: oneOf(['graduated', 'volume'] as const).optional(),
    package: packageSchema.optional(),
    included: includedSchema.optional(),
    minimum_charge: money('100.00').optional(),
  },
  { error: objectError('a meter mapping with name, activity_type and a price (unit_price, tiers or package)') },
)

// Keys that only make sense together. Checked even when another key of the meter is wrong
// (`when`), so one run reports everything; the values of keys that failed are left alone.
function checkMeterKeys(raw: z.output<typeof meterFields>, ctx: z.RefinementCtx): void {
  const issue = (path: PathSegments, message: string) => ctx.addIssue({ code: 'custom', message, path: [...path] })
  const priced = PRICE_KEYS.filter((key) => raw[key] !== undefined)
  if (priced.length === 0) issue(['unit_price'], 'is required: a meter needs a price, one of unit_price (a decimal string like "0.002"), tiers or package')
  for (const key of priced.slice(1)) issue([key], `cannot be given with ${priced[0] ?? ''}: a meter has one price, unit_price, tiers or package`)
  if (raw.tier_mode !== undefined && raw.tiers === undefined) issue(['tier_mode'], 'only with tiers (it says how the tiers price the quantity)')
  if (!(METER_AGGREGATIONS as readonly unknown[]).includes(raw.aggregation)) return
  if (raw.aggregation === 'sum' && raw.value === undefined) {
    issue(['value'], 'is required with aggregation: sum (duration_ms, or a numeric span attribute like "gen_ai.usage.input_tokens")')
  }
  if (raw.aggregation !== 'sum' && raw.value !== undefined) {
    issue(['value'], `only with aggregation: sum; ${raw.aggregation === 'count' ? 'a count meter counts matching events' : 'an active_identities meter counts active identities'}`)
  }
  if (raw.aggregation !== 'active_identities' && raw.min_events !== undefined) issue(['min_events'], 'only with aggregation: active_identities')
  const per = (raw.included as { per?: unknown } | undefined)?.per
  if (raw.aggregation === 'active_identities' && per === 'identity') {
    issue(
      ['included', 'per'],
      'cannot be identity on an active_identities meter: its quantity is a number of identities, each of which is 1 and would always be within its own allowance; use per: business_unit',
    )
  }
}

const meterSchema = meterFields
  .superRefine(checkMeterKeys, { when: (payload) => typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value) })
  .transform((raw): Meter => {
    const model: PriceModel =
      raw.unit_price !== undefined
        ? { kind: 'unit', unitPrice: raw.unit_price }
        : raw.tiers !== undefined
          ? { kind: raw.tier_mode ?? 'graduated', tiers: raw.tiers.map((t) => ({ upTo: t.up_to ?? null, unitPrice: t.unit_price, flatPrice: t.flat_price })) }
          : { kind: 'package', size: (raw.package as z.output<typeof packageSchema>).size, price: (raw.package as z.output<typeof packageSchema>).price }
    return {
      name: raw.name,
      activity_type: raw.activity_type,
      activity_name: raw.activity_name,
      status: raw.status,
      aggregation: raw.aggregation,
      value: raw.value ?? null,
      min_events: raw.min_events ?? 1,
      price: { model, included: raw.included ?? null, minimumCharge: raw.minimum_charge ?? ZERO_MONEY },
      unit_price: model.kind === 'unit' ? model.unitPrice : null,
    }
  })

const rateCardSchema = z.strictObject(
  {
    version,
    effective_from: effectiveFrom,
    currency,
    meters: list(meterSchema, 'meters', POLICY_LIMITS.metersPerCard).min(1, { error: 'must list at least one meter' }),
  },
  { error: objectError('a rate card mapping with version, effective_from, currency, meters') },
)

const entitlementSchema = z.strictObject(
  {
    feature: lowercaseWord('high_capacity_processing'),
    activity_type: activityType,
    activity_name: activityNameGlob,
    status: meterStatus,
    min_count: count(1, 100),
    window: duration('7d'),
  },
  { error: objectError('an entitlement mapping with feature, activity_type, min_count, window') },
)

const billingSchema = z.strictObject(
  { completeness_threshold: ratio(0.99).prefault(BILLING_DEFAULTS.completeness_threshold) },
  { error: objectError('a mapping of billing settings') },
)

const placeholderValue = z
  .string({ error: expecting('an agent id or name such as "agent"') })
  .min(1, { error: 'must not be empty' })
  .max(256, { error: 'must be at most 256 characters' })
const identitySchema = z.strictObject(
  {
    placeholder_agent_ids: list(placeholderValue, 'placeholder agent ids', 1000).prefault([...IDENTITY_DEFAULTS.placeholder_agent_ids]),
    uuid_agent_ids_are_placeholders: z
      .boolean({ error: expecting('true or false') })
      .prefault(IDENTITY_DEFAULTS.uuid_agent_ids_are_placeholders),
  },
  { error: objectError('a mapping of identity settings') },
)

const d = DETECTION_DEFAULTS
const detectionSchema = z.strictObject(
  {
    dormant_after: duration('30d').prefault(d.dormant_after),
    dormant_early_after: duration('7d').prefault(d.dormant_early_after),
    dormant_gap_factor: factor(2).prefault(d.dormant_gap_factor),
    burst_windows: list(duration('1h'), 'durations', 6).min(1, { error: 'must list at least one window length' }).prefault([...d.burst_windows]),
    burst_baseline: duration('7d').prefault(d.burst_baseline),
    burst_factor: factor(3).prefault(d.burst_factor),
    burst_min_events: count(1, 10).prefault(d.burst_min_events),
    burst_false_alarms: probability(0.01).prefault(d.burst_false_alarms),
    drift_min_events: count(1, 3).prefault(d.drift_min_events),
    sustained_growth_period: duration('1d').prefault(d.sustained_growth_period),
    sustained_growth_periods: count(2, 3).prefault(d.sustained_growth_periods),
    sustained_growth_factor: factor(2).prefault(d.sustained_growth_factor),
    sustained_growth_min_events: count(1, 20).prefault(d.sustained_growth_min_events),
    overactive_window: duration('1h').prefault(d.overactive_window),
    overactive_max_events: count(1, 10000).prefault(d.overactive_max_events),
    auth_failures_window: duration('1h').prefault(d.auth_failures_window),
    auth_failures_min_count: count(1, 10).prefault(d.auth_failures_min_count),
    credential_reuse_window: duration('30d').prefault(d.credential_reuse_window),
    credential_reuse_max_identities: count(1, 1).prefault(d.credential_reuse_max_identities),
    rotation_max_age: duration('90d').prefault(d.rotation_max_age),
    telemetry_gap_min_ratio: ratio(0.99).prefault(d.telemetry_gap_min_ratio),
    telemetry_gap_min_spans: count(1, 100).prefault(d.telemetry_gap_min_spans),
    telemetry_gap_silence: duration('1h').prefault(d.telemetry_gap_silence),
  },
  { error: objectError('a mapping of detection thresholds') },
)

/** The zod schema of a whole policy file; its output is a {@link Policy} before the cross-key checks. */
export const policySchema: z.ZodType<Policy> = z.strictObject(
  {
    rate_cards: list(rateCardSchema, 'rate cards', POLICY_LIMITS.rateCards).min(1, {
      error: 'must list at least one rate card (bills need a price list and a currency)',
    }),
    entitlements: list(entitlementSchema, 'entitlements', POLICY_LIMITS.entitlements).default([]),
    billing: billingSchema.prefault({}),
    detection: detectionSchema.prefault({}),
    identity: identitySchema.prefault({}),
    webhooks: webhooksSchema.default([]),
  },
  { error: objectError('a mapping with rate_cards, and optionally entitlements, billing, detection, identity and webhooks') },
)

/**
 * The keys each mapping accepts, by path pattern (`[]` stands for any list
 * index): the source of did-you-mean hints and of the docs test.
 */
export const POLICY_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': ['rate_cards', 'entitlements', 'billing', 'detection', 'identity', 'webhooks'],
  'rate_cards[]': Object.keys(rateCardSchema.shape),
  'rate_cards[].meters[]': Object.keys(meterFields.shape),
  'rate_cards[].meters[].tiers[]': Object.keys(tierSchema.shape),
  'rate_cards[].meters[].package': Object.keys(packageSchema.shape),
  'rate_cards[].meters[].included': Object.keys(includedSchema.shape),
  'entitlements[]': Object.keys(entitlementSchema.shape),
  billing: Object.keys(billingSchema.shape),
  detection: Object.keys(detectionSchema.shape),
  identity: Object.keys(identitySchema.shape),
  'webhooks[]': WEBHOOK_KEYS,
}

// How an error message names what a meter measures.
function measureText(meter: Meter): string {
  return meter.aggregation === 'sum' ? `the sum of ${meter.value ?? ''}` : meter.aggregation === 'active_identities' ? 'active identities' : 'events'
}

/** A problem found by {@link crossCheckPolicy}, located by key path segments. */
export interface RawPolicyIssue {
  readonly path: PathSegments
  readonly message: string
}

/**
 * Checks that need more than one key: unique card versions and start
 * instants, one currency, unique meter names, meters that an earlier meter
 * always wins over, unique features, and detection windows that make sense.
 * Near-misses of named activity types are warnings (custom types are
 * allowed, so "tool_invocations" may be intended).
 */
export function crossCheckPolicy(policy: Policy): { errors: RawPolicyIssue[]; warnings: RawPolicyIssue[] } {
  const errors: RawPolicyIssue[] = []
  const warnings: RawPolicyIssue[] = []
  const firstCurrency = policy.rate_cards[0]?.currency
  const measuredBy = new Map<string, { card: number; meter: Meter }>()
  const versions = new Map<string, number>()
  const starts = new Map<number, number>()

  policy.rate_cards.forEach((card, c) => {
    const sameVersion = versions.get(card.version)
    if (sameVersion !== undefined) {
      errors.push({ path: ['rate_cards', c, 'version'], message: `${quote(card.version)} is already the version of rate_cards[${sameVersion}]; versions must be unique` })
    } else versions.set(card.version, c)

    const sameStart = starts.get(card.effective_from.ms)
    if (sameStart !== undefined) {
      errors.push({
        path: ['rate_cards', c, 'effective_from'],
        message: `is the same instant as rate_cards[${sameStart}].effective_from; two cards cannot take effect at once`,
      })
    } else starts.set(card.effective_from.ms, c)

    if (card.currency !== firstCurrency) {
      errors.push({
        path: ['rate_cards', c, 'currency'],
        message: `must be ${String(firstCurrency)} like rate_cards[0], got ${quote(card.currency)}; every card shares one currency so bills can be totalled`,
      })
    }

    const names = new Map<string, number>()
    card.meters.forEach((meter, m) => {
      // A meter name is one line of every bill across cards: it must measure the same thing on each card.
      const earlier = measuredBy.get(meter.name)
      if (earlier && (earlier.meter.aggregation !== meter.aggregation || earlier.meter.value !== meter.value)) {
        errors.push({
          path: ['rate_cards', c, 'meters', m, 'aggregation'],
          message: `${quote(meter.name)} measures ${measureText(meter)} here but ${measureText(earlier.meter)} in rate_cards[${earlier.card}]; a meter name means one quantity on every card (give this one another name)`,
        })
      } else if (!earlier) measuredBy.set(meter.name, { card: c, meter })
      const sameName = names.get(meter.name)
      if (sameName !== undefined) {
        errors.push({
          path: ['rate_cards', c, 'meters', m, 'name'],
          message: `${quote(meter.name)} is already the name of rate_cards[${c}].meters[${sameName}]; meter names must be unique within a card`,
        })
      } else names.set(meter.name, m)
      const shadows = shadowingMeters(card.meters, m)
      if (shadows.length > 0) {
        const earlier = shadows.map((i) => `rate_cards[${c}].meters[${i}] (${card.meters[i]?.name ?? ''})`).join(' and ')
        errors.push({
          path: ['rate_cards', c, 'meters', m],
          message: `can never match: ${earlier} come${shadows.length === 1 ? 's' : ''} first and match${shadows.length === 1 ? 'es' : ''} every span it would (first match wins); move it up or narrow the earlier meter`,
        })
      }
      warnAboutActivityType(meter.activity_type, ['rate_cards', c, 'meters', m, 'activity_type'], warnings)
    })
  })

  const features = new Map<string, number>()
  policy.entitlements.forEach((entitlement, e) => {
    const same = features.get(entitlement.feature)
    if (same !== undefined) {
      errors.push({ path: ['entitlements', e, 'feature'], message: `${quote(entitlement.feature)} is already defined by entitlements[${same}]; each feature has one rule` })
    } else features.set(entitlement.feature, e)
    warnAboutActivityType(entitlement.activity_type, ['entitlements', e, 'activity_type'], warnings)
  })

  const detection = policy.detection
  const HOUR = 3_600_000
  const DAY = 86_400_000
  detection.burst_windows.forEach((window, i) => {
    const fits = window.ms < HOUR ? window.ms % 60_000 === 0 && HOUR % window.ms === 0 : window.ms % HOUR === 0
    if (!fits) {
      errors.push({ path: ['detection', 'burst_windows', i], message: `must be a whole number of minutes that divides an hour, or a whole number of hours, got ${quote(window.text)}; windows are aligned to the clock` })
    } else if (window.ms > detection.sustained_growth_period.ms) {
      errors.push({ path: ['detection', 'burst_windows', i], message: `must be at most detection.sustained_growth_period (${detection.sustained_growth_period.text}), got ${quote(window.text)}; a longer excursion is a level shift, not a burst` })
    }
  })
  if (detection.burst_baseline.ms % DAY !== 0 || detection.burst_baseline.ms < 3 * DAY) {
    errors.push({
      path: ['detection', 'burst_baseline'],
      message: `must be a whole number of days, at least 3d, got ${quote(detection.burst_baseline.text)}; the expected count of a window is learnt from the same window on earlier days`,
    })
  }
  if (detection.dormant_early_after.ms > detection.dormant_after.ms) {
    errors.push({ path: ['detection', 'dormant_early_after'], message: `must be at most detection.dormant_after (${detection.dormant_after.text}), got ${quote(detection.dormant_early_after.text)}` })
  }
  errors.push(...crossCheckWebhooks(policy.webhooks))
  return { errors, warnings }
}

// Earlier meters that together cover every span meter `index` could match:
// same aggregation and value (meters that measure different things each see
// every span), same activity type, a glob that matches everything (or the
// identical glob), and statuses that add up to the later meter's.
function shadowingMeters(meters: readonly Meter[], index: number): number[] {
  const later = meters[index]
  if (!later) return []
  const wanted = statusSet(later.status)
  const covered = new Set<string>()
  const by: number[] = []
  for (let i = 0; i < index; i++) {
    const earlier = meters[i] as Meter
    if (earlier.aggregation !== later.aggregation || earlier.value !== later.value) continue
    if (earlier.activity_type !== later.activity_type) continue
    if (!globMatchesEverything(earlier.activity_name) && earlier.activity_name !== later.activity_name) continue
    const adds = statusSet(earlier.status).filter((s) => wanted.includes(s) && !covered.has(s))
    if (adds.length === 0) continue
    adds.forEach((s) => covered.add(s))
    by.push(i)
  }
  return wanted.every((s) => covered.has(s)) ? by : []
}

function statusSet(status: MeterStatus): string[] {
  return status === 'any' ? ['ok', 'error'] : [status]
}

function warnAboutActivityType(activityType: string, path: PathSegments, warnings: RawPolicyIssue[]): void {
  if ((NHI_ACTIVITY_TYPES as readonly string[]).includes(activityType)) return
  const near = closestMatch(activityType, NHI_ACTIVITY_TYPES)
  if (near !== undefined) {
    warnings.push({
      path,
      message: `${quote(activityType)} is not a named activity type; did you mean "${near}"? (custom types are allowed, so this is only a warning)`,
    })
  }
}
