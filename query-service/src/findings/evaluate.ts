/**
 * Computes the findings of a range `[from, to)` as of `to` (FINDINGS.md):
 * reads what the rules need (digest-reads.ts, exact-reads.ts, telemetry/queries.ts), applies the
 * rules (detect.ts and the rules below) and returns the findings sorted.
 * Nothing here reads the clock: the same data and the same `to` give the
 * same findings. A finding exists while its condition holds in the current
 * evidence, so it disappears by itself when the condition ends.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { completenessStatus, formatDuration, identifiedRatio, type DetectionSettings } from '../policy/index.js'
import type { BusinessUnitScope } from '../identities/effective.js'
import { attributeProblems, lastSpans, lastSpansBefore, longestSilences, serviceCounts, unidentifiedSamples, type AttributeProblem } from '../telemetry/queries.js'
import { burstEpisodes, burstTestLevels, dormancyThreshold, growthCandidate, mayBurst, newNameIsDrift, sustainedGrowth, thresholdEpisodes, weeklyAdjusted, type BurstEpisode, type Episode } from './detect.js'
import { finding, iso, sortFindings, type Finding, type FindingKind } from './kinds.js'
import { burstScreen, historyBefore, identityFacts, longestIdentitySilences, seriesSummaries, type IdentityFacts, type SeriesRow } from './digest-reads.js'
import {
  activityEvents,
  activityKey,
  credentialUses,
  declarations,
  exactPeriods,
  lastServices,
  latestTraces,
  newActivities,
  sampleTraces,
  sharedCredentialUse,
  unapprovedActivities,
  windowCounts,
  type Activity,
  type CredentialUse,
  type Declaration,
  type SampleRequest,
} from './exact-reads.js'
import { seriesKey } from './reads.js'

/** What to compute. */
export interface FindingsRequest {
  from: Date
  to: Date
  detection: DetectionSettings
  /** Business units whose identities and rows the caller sees; null for all. */
  scope: BusinessUnitScope
  /** Service-level findings (telemetry_gap), which belong to no business unit. */
  includeServices: boolean
  /** Kinds asked for. */
  kinds: ReadonlySet<FindingKind>
  /** As for billing: how long after the last rollup run ledger rows may still be late (default: billing's). */
  rollupGraceSeconds?: number
}

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
/** Most activities listed in a privilege_drift finding. */
const MAX_LISTED_ACTIVITIES = 20

/** Everything known about one identity the caller may see. */
interface Profile {
  id: string
  declared?: Declaration
  series: SeriesRow[]
  /** Delivered events in [from, to): more than zero exactly when the identity was active in the range. */
  delivered: number
  /** UTC days with activity in [from, to), ascending. */
  activeDays: number[]
  firstInRangeMs: number
  /** Latest activity before `to` (0: never seen). */
  lastMs: number
  /** First activity ever (0: never seen). */
  firstMs: number
  /** Latest ok secret_rotation ever (0: none). */
  lastRotationMs: number
  /** Delivered events in the baseline stretch before the range. */
  baselineDelivered: number
  /** An owner some span carried in the look-back. */
  spanOwner: string
}

const days = (msValue: number) => Math.floor((msValue / DAY_MS) * 10) / 10
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
const round = (value: number, places = 3) => Math.round(value * 10 ** places) / 10 ** places

/** The findings of the request, sorted (kinds.ts, sortFindings). */
export async function computeFindings(client: ClickHouseClient, request: FindingsRequest): Promise<Finding[]> {
  const d = request.detection
  const from = request.from.getTime()
  const to = request.to.getTime()
  const wants = (...kinds: FindingKind[]) => kinds.some((k) => request.kinds.has(k))

  // Times. Growth periods and windows are numbered from the epoch, so the same data falls in the same periods.
  const periodMs = d.sustained_growth_period.ms
  const recentEnd = Math.floor(to / periodMs) * periodMs
  const recentStart = recentEnd - d.sustained_growth_periods * periodMs
  const periodOrigin = Math.min(Math.ceil(from / periodMs) * periodMs, recentStart - d.sustained_growth_periods * periodMs)
  const baselineFrom = from - d.burst_baseline.ms
  const credentialWindow = { from: Math.max(from, to - d.credential_reuse_window.ms), to }
  const lookback = Math.floor(Math.min(baselineFrom, periodOrigin, credentialWindow.from) / HOUR_MS) * HOUR_MS

  const period = { origin: periodOrigin, ms: periodMs, count: Math.max(0, Math.round((recentEnd - periodOrigin) / periodMs)) }
  const [series, facts, history, inventory, scopedCredentials] = await Promise.all([
    seriesSummaries(client, { lookback, from, to, baselineFrom, period }, request.scope),
    identityFacts(client, { lookback, credentialFrom: credentialWindow.from, to }, request.scope),
    historyBefore(client, lookback, request.scope),
    declarations(client, request.scope),
    // A limited caller's digest shows only its units' rows; who else shares a credential needs every unit's.
    request.scope && wants('credential_reuse') ? credentialUses(client, credentialWindow) : Promise.resolve(null),
  ])
  const credentials = scopedCredentials ?? credentialsOf(facts)
  const profiles = buildProfiles(series, facts, history, inventory)
  const findings: Finding[] = []
  const context: Context = { client, request, profiles, from, to, baselineFrom, lookback }

  if (wants('unregistered', 'orphaned')) findings.push(...(await identityGaps(context)))
  const dormancy = wants('dormant', 'telemetry_gap') ? await dormant(context) : { findings: [], unjudged: new Map<string, DormancyGap>() }
  if (wants('dormant')) findings.push(...dormancy.findings)
  if (wants('stale_credential')) findings.push(...staleCredentials(context, credentials))
  if (wants('credential_reuse')) findings.push(...(await credentialReuse(context, credentials, credentialWindow)))
  if (wants('privilege_drift')) findings.push(...(await privilegeDrift(context)))
  if (wants('burst')) findings.push(...(await bursts(context)))
  if (wants('sustained_growth')) findings.push(...(await growth(context, period, recentStart, recentEnd)))
  if (wants('overactive', 'auth_failures')) findings.push(...(await windowRules(context)))
  if (wants('telemetry_gap') && request.includeServices) findings.push(...(await telemetryGaps(context, dormancy.unjudged)))

  return sortFindings(findings.filter((f) => request.kinds.has(f.kind)))
}

/**
 * An upper bound of the events any window of `windowMs` can hold, from the
 * busiest hour: a window overlaps at most ceil(windowMs / 1 h) + 1 hours.
 */
function windowBound(maxPerHour: number, windowMs: number): number {
  return maxPerHour * (Math.ceil(windowMs / HOUR_MS) + 1)
}

interface Context {
  client: ClickHouseClient
  request: FindingsRequest
  profiles: Map<string, Profile>
  from: number
  to: number
  baselineFrom: number
  /** Start of the look-back (a whole hour). */
  lookback: number
}

/** Who used which credential, from the digest (every unit's rows, for a caller who sees them all). */
function credentialsOf(facts: ReadonlyMap<string, IdentityFacts>): CredentialUse[] {
  const ids = new Map<string, Set<string>>()
  for (const [id, f] of facts) for (const c of f.credentials) ids.set(c, (ids.get(c) ?? new Set()).add(id))
  return [...ids].map(([credentialId, set]) => ({ credentialId, ids: [...set].sort() })).sort((a, b) => compare(a.credentialId, b.credentialId))
}

function buildProfiles(series: SeriesRow[], facts: ReadonlyMap<string, IdentityFacts>, history: Awaited<ReturnType<typeof historyBefore>>, inventory: Declaration[]): Map<string, Profile> {
  const profiles = new Map<string, Profile>()
  const profile = (id: string): Profile => {
    let p = profiles.get(id)
    if (!p) {
      p = { id, series: [], delivered: 0, activeDays: [], firstInRangeMs: 0, lastMs: 0, firstMs: 0, lastRotationMs: 0, baselineDelivered: 0, spanOwner: '' }
      profiles.set(id, p)
    }
    return p
  }
  const earliest = (a: number, b: number) => (a === 0 ? b : b === 0 ? a : Math.min(a, b))
  for (const d of inventory) profile(d.id).declared = d
  for (const h of history) {
    const p = profile(h.nhiId)
    p.firstMs = earliest(p.firstMs, h.firstMs)
    p.lastMs = Math.max(p.lastMs, h.lastMs)
    p.lastRotationMs = Math.max(p.lastRotationMs, h.lastRotationMs)
  }
  for (const s of series) {
    const p = profile(s.nhiId)
    p.series.push(s)
    p.delivered += s.delivered
    p.baselineDelivered += s.baselineDelivered
    p.activeDays = [...new Set([...p.activeDays, ...s.activeDays])].sort((a, b) => a - b)
    if (s.delivered > 0) p.firstInRangeMs = earliest(p.firstInRangeMs, s.firstInRangeMs)
    p.firstMs = earliest(p.firstMs, s.firstMs)
    p.lastMs = Math.max(p.lastMs, s.lastMs)
    if (s.activityType === 'secret_rotation') p.lastRotationMs = Math.max(p.lastRotationMs, s.lastOkMs)
  }
  for (const [id, f] of facts) if (profiles.has(id)) profile(id).spanOwner = f.owner
  return profiles
}

// ---- inventory: unregistered, orphaned

async function identityGaps(ctx: Context): Promise<Finding[]> {
  const { profiles, to, from } = ctx
  const active = [...profiles.values()].filter((p) => p.delivered > 0)
  const samples = await latestTraces(ctx.client, new Map(active.map((p) => [p.id, p.lastMs])), ctx.request.scope)
  const activity = (p: Profile) => ({
    active_days: p.activeDays.length,
    first_seen: iso(p.firstInRangeMs),
    last_seen: iso(p.lastMs),
    activity_types: p.series.filter((s) => s.delivered > 0).map((s) => s.activityType),
    sample_trace_ids: samples.get(p.id) ?? [],
  })
  const findings: Finding[] = []
  for (const p of active) {
    if (p.declared) continue
    findings.push(finding('unregistered', p.id, 'medium', { from: p.firstInRangeMs, to }, `${p.id} was active on ${plural(p.activeDays.length, 'day')} but is not declared in the inventory`, activity(p)))
  }
  for (const p of profiles.values()) {
    const owner = p.declared ? p.declared.owner : p.spanOwner
    if (owner.trim() !== '' || (!p.declared && p.delivered === 0)) continue
    const activeNow = p.delivered > 0
    findings.push(
      finding(
        'orphaned',
        p.id,
        activeNow ? 'high' : 'medium',
        { from: activeNow ? p.firstInRangeMs : from, to },
        p.declared
          ? `${p.id} is declared without an owner${activeNow ? ` and was active on ${plural(p.activeDays.length, 'day')}` : ''}`
          : `${p.id} was active on ${plural(p.activeDays.length, 'day')} and no span named an owner`,
        activeNow
          ? { declared: Boolean(p.declared), ...activity(p) }
          : { declared: true, active_days: 0, first_seen: null, last_seen: p.lastMs > 0 ? iso(p.lastMs) : null, activity_types: [], sample_trace_ids: [] },
      ),
    )
  }
  return findings
}

// ---- dormant, told apart from a service that stopped reporting

/** An identity whose silence cannot be judged because the service it reported through went quiet too. */
interface DormancyGap {
  service: string
  ids: string[]
  lastSpanMs: number
}

async function dormant(ctx: Context): Promise<{ findings: Finding[]; unjudged: Map<string, DormancyGap> }> {
  const { profiles, to, request } = ctx
  const after = request.detection.dormant_after
  const findings: Finding[] = []
  // Silent past dormant_after, or past dormant_early_after and dormant_gap_factor × the identity's own longest earlier silence.
  const early = request.detection.dormant_early_after
  const maybe = [...profiles.values()].filter((p) => p.lastMs > 0 && to - p.lastMs > early.ms)
  const gaps = await longestIdentitySilences(ctx.client, maybe.filter((p) => to - p.lastMs <= after.ms).map((p) => p.id), { lookback: ctx.lookback, before: to }, request.scope)
  const thresholdOf = (p: Profile) => dormancyThreshold(gaps.get(p.id), { afterMs: after.ms, earlyAfterMs: early.ms, gapFactor: request.detection.dormant_gap_factor })
  const silent = maybe.filter((p) => to - p.lastMs > thresholdOf(p))
  for (const p of profiles.values()) {
    if (p.lastMs === 0 && p.declared && to - p.declared.updatedMs > after.ms) {
      findings.push(
        finding('dormant', p.id, 'low', { from: p.declared.updatedMs, to }, `${p.id} is declared but no activity of it has been seen (declaration unchanged for ${days(to - p.declared.updatedMs)} days)`, {
          declared: true,
          last_seen: null,
          inactive_days: null,
          dormant_after: after.text,
          last_service: null,
          longest_earlier_silence_days: null,
          declaration_updated: iso(p.declared.updatedMs),
        }),
      )
    }
  }
  const unjudged = new Map<string, DormancyGap>()
  if (silent.length === 0) return { findings, unjudged }
  const services = await lastServices(ctx.client, new Map(silent.map((p) => [p.id, p.lastMs])), to, ctx.request.scope)
  const since = Math.min(...silent.map((p) => p.lastMs))
  const lastSpan = await lastSpans(ctx.client, new Date(since), new Date(to), [...new Set(services.values())])
  for (const p of silent) {
    const service = services.get(p.id) ?? ''
    const serviceLast = lastSpan.get(service) ?? 0
    // Dormant only if the service kept reporting past the point where the identity should have shown up again.
    if (serviceLast < p.lastMs + thresholdOf(p)) {
      const gap = unjudged.get(service) ?? { service, ids: [], lastSpanMs: serviceLast }
      gap.ids.push(p.id)
      unjudged.set(service, gap)
      continue
    }
    findings.push(
      finding('dormant', p.id, 'medium', { from: p.lastMs, to }, `${p.id} has had no activity for ${days(to - p.lastMs)} days while ${service} kept reporting${to - p.lastMs > after.ms ? '' : ` (its longest earlier silence: ${days(gaps.get(p.id) ?? 0)} days)`}`, {
        declared: Boolean(p.declared),
        last_seen: iso(p.lastMs),
        inactive_days: days(to - p.lastMs),
        dormant_after: after.text,
        longest_earlier_silence_days: to - p.lastMs > after.ms ? null : days(gaps.get(p.id) ?? 0),
        last_service: service,
        declaration_updated: p.declared ? iso(p.declared.updatedMs) : null,
      }),
    )
  }
  return { findings, unjudged }
}

// ---- credentials

function staleCredentials(ctx: Context, credentials: CredentialUse[]): Finding[] {
  const { profiles, to, request } = ctx
  const maxAge = request.detection.rotation_max_age
  const credentialsOf = new Map<string, string[]>()
  for (const c of credentials) for (const id of c.ids) credentialsOf.set(id, [...(credentialsOf.get(id) ?? []), c.credentialId])
  const findings: Finding[] = []
  for (const p of profiles.values()) {
    if (p.delivered === 0) continue
    const reference = p.lastRotationMs > 0 ? p.lastRotationMs : p.firstMs
    const age = to - reference
    if (age <= maxAge.ms) continue
    findings.push(
      finding(
        'stale_credential',
        p.id,
        age > 2 * maxAge.ms ? 'high' : 'medium',
        { from: reference, to },
        p.lastRotationMs > 0
          ? `${p.id} is still active but last rotated its secret ${days(age)} days ago (rotation_max_age ${maxAge.text})`
          : `${p.id} has been active for ${days(age)} days without a secret rotation (rotation_max_age ${maxAge.text})`,
        {
          last_rotation: p.lastRotationMs > 0 ? iso(p.lastRotationMs) : null,
          first_seen: iso(p.firstMs),
          age_days: days(age),
          rotation_max_age: maxAge.text,
          credential_ids: credentialsOf.get(p.id) ?? [],
        },
      ),
    )
  }
  return findings
}

async function credentialReuse(ctx: Context, credentials: CredentialUse[], window: { from: number; to: number }): Promise<Finding[]> {
  const { profiles, request } = ctx
  const limit = request.detection.credential_reuse_max_identities
  const shared = credentials.filter((c) => c.ids.length > limit && c.ids.some((id) => profiles.has(id)))
  const uses = await sharedCredentialUse(ctx.client, shared.map((c) => c.credentialId), window, request.scope)
  const useOf = new Map(uses.map((u) => [`${u.credentialId}\u0000${u.nhiId}`, u]))
  const findings: Finding[] = []
  for (const c of shared) {
    for (const id of c.ids) {
      const use = useOf.get(`${c.credentialId}\u0000${id}`)
      if (!profiles.has(id) || !use) continue
      const others = c.ids.length - 1
      findings.push(
        finding('credential_reuse', id, 'high', { from: use.firstMs, to: window.to }, `${id} shares credential ${c.credentialId} with ${plural(others, 'other identity', 'other identities')}`, {
          credential_id: c.credentialId,
          identities: c.ids.length,
          // Only identities the caller may see are named.
          shared_with: c.ids.filter((other) => other !== id && profiles.has(other)),
          events: use.events,
          first_use: iso(use.firstMs),
          last_use: iso(use.lastMs),
          max_identities: limit,
          sample_trace_ids: use.sampleTraceIds,
        }),
      )
    }
  }
  return findings
}

// ---- privilege drift

async function privilegeDrift(ctx: Context): Promise<Finding[]> {
  const { profiles, from, to, baselineFrom, request } = ctx
  const approvals = (p: Profile) => p.declared?.approvedActivities.length ?? 0
  const restricted = [...profiles.values()].filter((p) => p.delivered > 0 && approvals(p) > 0).map((p) => p.id)
  // Without declared approvals, what the identity did in the baseline stretch is what it is there for.
  const learned = [...profiles.values()].filter((p) => p.delivered > 0 && p.baselineDelivered > 0 && approvals(p) === 0).map((p) => p.id)
  const [unapproved, fresh] = await Promise.all([
    unapprovedActivities(ctx.client, restricted, { from, to }),
    newActivities(ctx.client, learned, { baselineFrom, from, to }, request.scope),
  ])
  // Rule (b): a new activity type needs one event; a new name of a type already used needs drift_min_events and a rate
  // at which missing the whole baseline stretch would have been improbable (a rarely used route is not a new privilege).
  const freshEvents = await activityEvents(ctx.client, fresh, { from, to }, ctx.request.scope)
  const knownTypes = (id: string) => new Set(profiles.get(id)?.series.filter((s) => s.baselineDelivered > 0).map((s) => s.activityType))
  const material = fresh.filter(
    (use) =>
      !knownTypes(use.nhiId).has(use.activityType) ||
      newNameIsDrift(freshEvents.get(activityKey(use.nhiId, use.activityType, use.activityName)) ?? 0, use.firstMs, to, request.detection.burst_baseline.ms, request.detection.drift_min_events),
  )
  const byIdentity = new Map<string, { reason: 'unapproved' | 'new_activity'; uses: Activity[] }>()
  for (const [reason, uses] of [['unapproved', unapproved], ['new_activity', material]] as const) {
    for (const use of uses) {
      const entry = byIdentity.get(use.nhiId) ?? { reason, uses: [] }
      entry.uses.push(use)
      byIdentity.set(use.nhiId, entry)
    }
  }
  const entries = [...byIdentity].map(([id, e]) => ({ id, ...e, uses: e.uses.sort((a, b) => a.firstMs - b.firstMs || compare(a.activityType, b.activityType) || compare(a.activityName, b.activityName)) }))
  const listed = entries.flatMap((e) => e.uses.slice(0, MAX_LISTED_ACTIVITIES))
  const [events, samples] = await Promise.all([
    activityEvents(ctx.client, listed, { from, to }, ctx.request.scope),
    sampleTraces(ctx.client, entries.map((e) => ({ nhiId: e.id, from, to, activityType: e.uses[0]!.activityType, activityName: e.uses[0]!.activityName })), ctx.request.scope),
  ])
  return entries.map((e, i) => {
    const first = e.uses[0]!
    const example = `${first.activityType}:${first.activityName}`
    const declared = profiles.get(e.id)?.declared
    return finding(
      'privilege_drift',
      e.id,
      // A secret rotation outside the list may be healthy, but it is a write to a secrets store the list did not grant.
      e.reason === 'unapproved' ? (e.uses.every((u) => u.activityType === 'secret_rotation') ? 'medium' : 'high') : 'medium',
      { from: first.firstMs, to },
      e.reason === 'unapproved'
        ? `${e.id} used ${plural(e.uses.length, 'activity', 'activities')} outside its approved_activities, first ${example}`
        : `${e.id} began ${plural(e.uses.length, 'activity', 'activities')} not seen in the ${request.detection.burst_baseline.text} before the range, first ${example}`,
      {
        reason: e.reason,
        activities: e.uses.slice(0, MAX_LISTED_ACTIVITIES).map((u) => ({
          activity_type: u.activityType,
          activity_name: u.activityName,
          events: events.get(activityKey(u.nhiId, u.activityType, u.activityName)) ?? 0,
          first_seen: iso(u.firstMs),
        })),
        activities_total: e.uses.length,
        approved_activities: declared?.approvedActivities ?? [],
        sample_trace_ids: samples[i] ?? [],
      },
    )
  })
}

// ---- bursts and growth

async function bursts(ctx: Context): Promise<Finding[]> {
  const { profiles, from, to, request } = ctx
  const d = request.detection
  const windows = d.burst_windows.map((w) => w.ms)
  const baselineDays = Math.round(d.burst_baseline.ms / DAY_MS)
  const dayStart = Math.floor((from - d.burst_baseline.ms) / DAY_MS) * DAY_MS
  const rangeDayStart = Math.floor(from / DAY_MS) * DAY_MS
  // The false-alarm budget is per identity: shared among its activity types.
  const typesOf = new Map([...profiles.values()].map((p) => [p.id, Math.max(1, p.series.length)]))
  const levelsFor = (id: string) => burstTestLevels(windows, d.burst_false_alarms / (typesOf.get(id) ?? 1))

  // Screen on delivered counts: a window can fire only if its upper bound does against a lower bound
  // of its expected count (the level term, with a fifth of slack for re-deliveries).
  const screen = await burstScreen(ctx.client, { dayStart, rangeDayStart, to, windows }, request.scope)
  const firstRangeDay = Math.round((rangeDayStart - dayStart) / DAY_MS)
  const screenRule = { windows, baselineDays, factor: d.burst_factor, minEvents: d.burst_min_events }
  const seriesByKey = new Map([...profiles.values()].flatMap((p) => p.series.map((s) => [s.key, s] as const)))
  const candidates = screen.flatMap((row) => {
    const s = seriesByKey.get(row.key)
    return s && mayBurst({ ...row, firstRangeDay }, { ...screenRule, levels: levelsFor(s.nhiId) }) ? [s] : []
  })
  if (candidates.length === 0) return []

  const step = windows.reduce((a, b) => gcd(a, b))
  const counts = await windowCounts(
    ctx.client,
    { ids: [...new Set(candidates.map((s) => s.nhiId))], types: [...new Set(candidates.map((s) => s.activityType))], kind: 'by_type', windowMs: step, start: dayStart, to },
    request.scope,
  )
  const found: Array<{ s: SeriesRow; episode: BurstEpisode; level: number }> = []
  for (const s of candidates) {
    const sparse = counts.get(seriesKey(s.nhiId, s.activityType))
    if (!sparse) continue
    const dense = new Float64Array(Math.ceil((to - dayStart) / step))
    const offset = dayStart / step
    for (const [k, n] of sparse) dense[k - offset] = n
    const levels = levelsFor(s.nhiId)
    const rule = { from, to, windows, levels, baselineDays, factor: d.burst_factor, minEvents: d.burst_min_events, maxEpisodeMs: d.sustained_growth_period.ms, shiftFactor: d.sustained_growth_factor }
    for (const episode of burstEpisodes({ startMs: dayStart, stepMs: step, counts: dense, firstEventMs: s.firstMs }, rule)) {
      found.push({ s, episode, level: levels[windows.indexOf(episode.window.ms)] as number })
    }
  }
  const samples = await sampleTraces(ctx.client, found.map(({ s, episode }) => ({ nhiId: s.nhiId, activityType: s.activityType, from: episode.from, to: episode.to })), ctx.request.scope)
  return found.map(({ s, episode, level }, i) => {
    const w = episode.window
    const length = formatDuration(w.ms)
    const expected = round(w.expected, 2)
    return finding(
      'burst',
      s.nhiId,
      'medium',
      { from: episode.from, to: episode.to },
      `${s.nhiId} ran ${plural(w.observed, `${s.activityType} event`)} in the ${length} from ${iso(w.from)}, where ${expected} were expected (${w.expected > 0 ? `${round(w.observed / w.expected, 1)}×, ` : ''}chance ${formatProbability(w.logTail)} at ${d.burst_factor}× the expected rate)${episode.ongoing ? ', still going at the end of the range' : ''}`,
      {
        activity_type: s.activityType,
        window_length: length,
        window_from: iso(w.from),
        observed: w.observed,
        expected,
        tail_probability: Number(Math.exp(w.logTail).toPrecision(3)),
        log10_tail_probability: round(w.logTail / Math.LN10, 2),
        test_level: Number(level.toPrecision(3)),
        factor: d.burst_factor,
        events: episode.events,
        windows_fired: episode.windowsFired,
        ongoing: episode.ongoing,
        sample_trace_ids: samples[i] ?? [],
      },
    )
  })
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

/** A tail probability for a summary: "1 in 3.2e+9", or "below 1e-300" when it underflows. */
function formatProbability(logTail: number): string {
  const log10 = logTail / Math.LN10
  if (log10 < -300) return 'below 1e-300'
  return `1 in ${Number((1 / Math.exp(logTail)).toPrecision(2)).toExponential(1).replace('e+', 'e')}`
}

async function growth(ctx: Context, period: { origin: number; ms: number; count: number }, recentStart: number, recentEnd: number): Promise<Finding[]> {
  const { profiles, request } = ctx
  const d = request.detection
  const options = { periods: d.sustained_growth_periods, factor: d.sustained_growth_factor, minEvents: d.sustained_growth_min_events }
  // Delivered counts choose the candidates; the decision is made on exact counts.
  // Periods that are not whole hours cannot be screened from the hourly digest: every series is a candidate.
  const screened = period.ms % HOUR_MS === 0
  // The week's shape is taken out first (detect.ts, weeklyAdjusted), so quiet weekends and busy Mondays are neither growth nor its absence.
  const adjusted = (series: readonly number[]) => weeklyAdjusted(series, series.length - options.periods, period.origin, period.ms)
  const candidates = [...profiles.values()].flatMap((p) => p.series.filter((s) => (screened ? growthCandidate(adjusted(s.periods), options) : s.delivered > 0)))
  const exact = await exactPeriods(ctx.client, candidates, period, request.scope)
  const found: Array<{ s: SeriesRow; g: NonNullable<ReturnType<typeof sustainedGrowth>>; raw: number[] }> = []
  for (const s of candidates) {
    const raw = exact.get(seriesKey(s.nhiId, s.activityType)) ?? []
    const g = sustainedGrowth(adjusted(raw), options)
    if (g && (raw[raw.length - 1] ?? 0) >= options.minEvents) found.push({ s, g, raw })
  }
  const samples = await sampleTraces(ctx.client, found.map(({ s }) => ({ nhiId: s.nhiId, activityType: s.activityType, from: recentStart, to: recentEnd })), ctx.request.scope)
  const text = d.sustained_growth_period.text
  return found.map(({ s, g, raw }, i) =>
    finding(
      'sustained_growth',
      s.nhiId,
      'low',
      { from: recentStart, to: recentEnd },
      `${s.nhiId}'s ${s.activityType} activity has stayed at ${round(g.factor, 2)}× its usual ${round(g.baseline.median, 1)} per ${text} for the last ${plural(g.recent.length, 'period')}`,
      {
        activity_type: s.activityType,
        period: text,
        recent: raw.slice(-g.recent.length).map((events, k) => ({ from: iso(recentStart + k * period.ms), events })),
        baseline: { median: round(g.baseline.median, 2), mad: round(g.baseline.mad, 2), periods: g.baseline.size, weekly_adjusted: adjusted(raw).some((v, k) => v !== raw[k]) },
        growth_factor: round(g.factor, 2),
        sample_trace_ids: samples[i] ?? [],
      },
    ),
  )
}

// ---- overactive and auth_failures: runs of windows over a fixed threshold

async function windowRules(ctx: Context): Promise<Finding[]> {
  const { profiles, from, to, request } = ctx
  const d = request.detection
  const rules = [
    {
      kind: 'overactive' as const,
      window: d.overactive_window,
      threshold: d.overactive_max_events + 1,
      ids: [...profiles.values()].filter((p) => p.series.reduce((sum, s) => sum + windowBound(s.maxHour, d.overactive_window.ms), 0) > d.overactive_max_events).map((p) => p.id),
      countKind: 'all' as const,
    },
    {
      kind: 'auth_failures' as const,
      window: d.auth_failures_window,
      threshold: d.auth_failures_min_count,
      ids: [...profiles.values()].filter((p) => p.series.some((s) => s.activityType === 'token_exchange' && windowBound(s.maxFailedHour, d.auth_failures_window.ms) >= d.auth_failures_min_count)).map((p) => p.id),
      countKind: 'failed_token_exchange' as const,
    },
  ].filter((r) => request.kinds.has(r.kind) && r.ids.length > 0)

  const findings: Finding[] = []
  for (const rule of rules) {
    const w = rule.window.ms
    const counts = await windowCounts(ctx.client, { ids: rule.ids, kind: rule.countKind, windowMs: w, start: from, to }, request.scope)
    const found: Array<{ id: string; e: Episode; total: number }> = []
    for (const id of rule.ids) {
      const series = counts.get(id)
      if (!series) continue
      for (const e of thresholdEpisodes(series, Math.floor(from / w), Math.ceil(to / w), rule.threshold)) found.push({ id, e, total: e.events })
    }
    const windowOf = (e: Episode) => ({ from: Math.max(e.first * w, from), to: Math.min((e.last + 1) * w, to) })
    const requests: SampleRequest[] = found.map(({ id, e }) =>
      rule.kind === 'overactive' ? { nhiId: id, ...windowOf(e) } : { nhiId: id, ...windowOf(e), activityType: 'token_exchange', failedOnly: true },
    )
    const samples = await sampleTraces(ctx.client, requests, ctx.request.scope)
    found.forEach(({ id, e }, i) => {
      if (rule.kind === 'overactive') {
        findings.push(
          finding('overactive', id, e.peak > 2 * d.overactive_max_events ? 'high' : 'medium', windowOf(e), `${id} ran ${e.peak} events in one ${rule.window.text} window, over the policy's ${d.overactive_max_events}`, {
            peak_window_events: e.peak,
            windows_over: e.windows,
            events: e.events,
            max_events: d.overactive_max_events,
            overactive_window: rule.window.text,
            sample_trace_ids: samples[i] ?? [],
          }),
        )
      } else {
        findings.push(
          finding('auth_failures', id, e.peak >= 10 * d.auth_failures_min_count ? 'high' : 'medium', windowOf(e), `${id} had ${plural(e.peak, 'failed token exchange')} in one ${rule.window.text} window (policy: ${d.auth_failures_min_count})`, {
            peak_window_failures: e.peak,
            windows_over: e.windows,
            failures: e.events,
            min_count: d.auth_failures_min_count,
            auth_failures_window: rule.window.text,
            sample_trace_ids: samples[i] ?? [],
          }),
        )
      }
    })
  }
  return findings
}

// ---- telemetry gaps (service level)

async function telemetryGaps(ctx: Context, unjudged: Map<string, DormancyGap>): Promise<Finding[]> {
  const { client, from, to, request } = ctx
  const d = request.detection
  const range = { from: new Date(from), to: new Date(to) }
  const [counts, problems, recent] = await Promise.all([
    serviceCounts(client, range, null, request.rollupGraceSeconds),
    attributeProblems(client, range, null),
    lastSpans(client, new Date(to - d.telemetry_gap_silence.ms), range.to),
  ])
  // Services that sent activity spans in the range and none of any kind lately.
  const quiet = counts.map((c) => c.service).filter((s) => !recent.has(s))
  const quietLast = await lastSpansBefore(client, quiet, range.from, range.to)
  // "Stopped" means silent for longer than ever in the baseline stretch before the silence began.
  const silences = await longestSilences(client, quietLast, range.from, d.burst_baseline.ms)

  interface Gap {
    reasons: string[]
    severity: 'high' | 'medium' | 'low'
    windowFrom: number
    evidence: Record<string, unknown>
  }
  const gaps = new Map<string, Gap>()
  const gap = (service: string): Gap => {
    let g = gaps.get(service)
    if (!g) {
      g = { reasons: [], severity: 'low', windowFrom: from, evidence: { service, problems: [] as string[], min_ratio: d.telemetry_gap_min_ratio, silence: d.telemetry_gap_silence.text } }
      gaps.set(service, g)
    }
    return g
  }
  const raise = (g: Gap, severity: Gap['severity']) => {
    if (severity === 'high' || (severity === 'medium' && g.severity === 'low')) g.severity = severity
  }

  for (const c of counts) {
    const ratio = c.spans === 0 ? 1 : c.identifiedSpans / c.spans
    if (c.spans < d.telemetry_gap_min_spans || completenessStatus(c.spans, c.identifiedSpans, d.telemetry_gap_min_ratio) === 'complete') continue
    const g = gap(c.service)
    raise(g, 'medium')
    ;(g.evidence.problems as string[]).push('unidentified_spans')
    g.reasons.push(`${round((1 - ratio) * 100, 1)}% of its ${plural(c.spans, 'activity span')} carried no identity`)
  }
  const problemsBy = new Map<string, AttributeProblem[]>()
  for (const p of problems) problemsBy.set(p.service, [...(problemsBy.get(p.service) ?? []), p])
  for (const [service, list] of problemsBy) {
    const g = gap(service)
    ;(g.evidence.problems as string[]).push('vocabulary')
    const spans = list.reduce((sum, p) => sum + p.spans, 0)
    g.reasons.push(`${plural(spans, 'span')} carried ${[...new Set(list.map((p) => p.attribute))].join(' or ')} values outside the vocabulary`)
    g.evidence.attribute_problems = list.map((p) => ({ attribute: p.attribute, value: p.value, spans: p.spans, sample_trace_ids: p.sampleTraceIds }))
  }
  const stopped = (service: string, lastMs: number, longestEarlierMs: number | null) => {
    const g = gap(service)
    raise(g, 'high')
    ;(g.evidence.problems as string[]).push('stopped_reporting')
    g.windowFrom = lastMs > 0 ? lastMs : from
    g.reasons.push(lastMs > 0 ? `it has sent no spans for ${formatDuration(Math.floor((to - lastMs) / 1000) * 1000)}` : 'it has sent no spans')
    Object.assign(g.evidence, {
      last_span: lastMs > 0 ? iso(lastMs) : null,
      silent_for_seconds: lastMs > 0 ? Math.floor((to - lastMs) / 1000) : null,
      longest_earlier_silence_seconds: longestEarlierMs === null ? null : Math.floor(longestEarlierMs / 1000),
    })
  }
  for (const service of quiet) {
    const last = quietLast.get(service) ?? 0
    const longest = silences.get(service) ?? 0
    // A service that is often quiet for hours (a nightly job) is not "stopped" until it is quiet for longer than ever before.
    if (last > 0 && to - last >= d.telemetry_gap_silence.ms && to - last > longest) stopped(service, last, longest)
  }
  for (const [service, u] of unjudged) {
    if (!gaps.get(service)?.evidence.last_span && to - u.lastSpanMs >= d.telemetry_gap_silence.ms) stopped(service, u.lastSpanMs, null)
    const g = gaps.get(service)
    if (g) g.evidence.identities_without_evidence = [...u.ids].sort()
  }

  const countsOf = new Map(counts.map((c) => [c.service, c]))
  for (const [service, g] of gaps) {
    const c = countsOf.get(service)
    if (c) Object.assign(g.evidence, { spans: c.spans, identified_spans: c.identifiedSpans, identified_ratio: identifiedRatio(c.spans, c.identifiedSpans) })
  }
  const ratioGaps = [...gaps].filter(([, g]) => (g.evidence.problems as string[]).includes('unidentified_spans')).map(([s]) => s)
  const unidentified = await unidentifiedSamples(client, ratioGaps, range)
  return [...gaps].map(([service, g]) => {
    const attributeSamples = ((g.evidence.attribute_problems as Array<{ sample_trace_ids: string[] }> | undefined) ?? []).flatMap((p) => p.sample_trace_ids)
    return finding('telemetry_gap', null, g.severity, { from: g.windowFrom, to }, `${service}: ${g.reasons.join('; ')}`, {
      spans: 0,
      identified_spans: 0,
      identified_ratio: 1,
      attribute_problems: [],
      last_span: null,
      silent_for_seconds: null,
      longest_earlier_silence_seconds: null,
      identities_without_evidence: [],
      ...g.evidence,
      sample_trace_ids: [...new Set([...(unidentified.get(service) ?? []), ...attributeSamples])].slice(0, 3),
    })
  })
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
