/**
 * Profiles: everything known about each identity the caller may see, built
 * once per evaluation from the digest reads, the history before the
 * look-back and the inventory; the rules (rules/) judge them.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { historyBefore, identityFacts, seriesSummaries, type IdentityFacts, type SeriesRow } from './digest-reads.js'
import type { FindingsRequest, RangeTimes } from './evaluate.js'
import { credentialUses, declarations, type CredentialUse, type Declaration } from './exact-reads.js'
import { iso } from './kinds.js'
import { compare } from './rule.js'

/** Everything known about one identity the caller may see. */
export interface Profile {
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

/** The profiles of the request's identities and who used which credential in the credential window. */
export async function readProfiles(client: ClickHouseClient, request: FindingsRequest, times: RangeTimes): Promise<{ profiles: Map<string, Profile>; credentials: CredentialUse[] }> {
  const { from, to, lookback, baselineFrom, period, credentialWindow } = times
  const [series, facts, history, inventory, scopedCredentials] = await Promise.all([
    seriesSummaries(client, { lookback, from, to, baselineFrom, period }, request.scope),
    identityFacts(client, { lookback, credentialFrom: credentialWindow.from, to }, request.scope),
    historyBefore(client, lookback, request.scope),
    declarations(client, request.scope),
    // A limited caller's digest shows only its units' rows; who else shares a credential needs every unit's.
    request.scope && request.kinds.has('credential_reuse') ? credentialUses(client, credentialWindow) : Promise.resolve(null),
  ])
  return { profiles: buildProfiles(series, facts, history, inventory), credentials: scopedCredentials ?? credentialsOf(facts) }
}

/** Who used which credential, from the digest (every unit's rows, for a caller who sees them all). */
function credentialsOf(facts: ReadonlyMap<string, IdentityFacts>): CredentialUse[] {
  const ids = new Map<string, Set<string>>()
  for (const [id, f] of facts) for (const c of f.credentials) ids.set(c, (ids.get(c) ?? new Set()).add(id))
  return [...ids].map(([credentialId, set]) => ({ credentialId, ids: [...set].sort() })).sort((a, b) => compare(a.credentialId, b.credentialId))
}

/** Folds the reads into one profile per identity: the inventory, the history before the look-back, then each series. */
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

/** What unregistered and orphaned findings show of an active identity's activity. */
export function activitySummary(p: Profile, samples: ReadonlyMap<string, string[]>): { active_days: number; first_seen: string; last_seen: string; activity_types: string[]; sample_trace_ids: string[] } {
  return {
    active_days: p.activeDays.length,
    first_seen: iso(p.firstInRangeMs),
    last_seen: iso(p.lastMs),
    activity_types: p.series.filter((s) => s.delivered > 0).map((s) => s.activityType),
    sample_trace_ids: samples.get(p.id) ?? [],
  }
}
