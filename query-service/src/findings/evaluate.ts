/**
 * Computes the findings of a range `[from, to)` as of `to` (FINDINGS.md):
 * works out the times every rule shares, reads the profiles (profile.ts),
 * runs the rule of each kind asked for (rules/<kind>.ts, one signature:
 * rule.ts) and returns the findings sorted. Nothing here reads the clock:
 * the same data and the same `to` give the same findings. A finding exists
 * while its condition holds in the current evidence, so it disappears by
 * itself when the condition ends.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { BusinessUnitScope } from '../identities/effective.js'
import type { DetectionSettings } from '../policy/index.js'
import { latestTraces, sampleTraces } from './exact-reads.js'
import { FINDING_KINDS, sortFindings, type Finding, type FindingKind } from './kinds.js'
import { readProfiles } from './profile.js'
import { HOUR_MS } from './reads.js'
import type { Rule, RuleContext } from './rule.js'
import { authFailuresRule } from './rules/auth-failures.js'
import { burstRule } from './rules/burst.js'
import { credentialReuseRule } from './rules/credential-reuse.js'
import { dormantRule, judgeDormancy } from './rules/dormant.js'
import { orphanedRule } from './rules/orphaned.js'
import { overactiveRule } from './rules/overactive.js'
import { privilegeDriftRule } from './rules/privilege-drift.js'
import { staleCredentialRule } from './rules/stale-credential.js'
import { sustainedGrowthRule } from './rules/sustained-growth.js'
import { telemetryGapRule } from './rules/telemetry-gap.js'
import { unregisteredRule } from './rules/unregistered.js'

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
  /** False when only the findings are wanted, not their sample trace ids (the metrics count them): no read is made for samples (credential reuse and telemetry gaps keep those the reads that decide them bring). */
  samples?: boolean
}

/** The rule of each kind. */
const RULES: Readonly<Record<FindingKind, Rule>> = {
  dormant: dormantRule,
  unregistered: unregisteredRule,
  orphaned: orphanedRule,
  burst: burstRule,
  sustained_growth: sustainedGrowthRule,
  overactive: overactiveRule,
  privilege_drift: privilegeDriftRule,
  auth_failures: authFailuresRule,
  credential_reuse: credentialReuseRule,
  stale_credential: staleCredentialRule,
  telemetry_gap: telemetryGapRule,
}

/** The times of one evaluation, in epoch milliseconds. */
export interface RangeTimes {
  /** The range judged, [from, to). */
  from: number
  to: number
  /** Start of the baseline stretch new activity and bursts are compared with (from - burst_baseline). */
  baselineFrom: number
  /** Start of the look-back every read starts at (a whole hour, at or before every other start). */
  lookback: number
  /** Growth periods: origin (a multiple of the length), length and how many up to recentEnd. */
  period: { origin: number; ms: number; count: number }
  /** The recent growth periods, [recentStart, recentEnd): the last complete ones ending at or before `to`. */
  recentStart: number
  recentEnd: number
  /** Where credential use is counted: [max(from, to - credential_reuse_window), to). */
  credentialWindow: { from: number; to: number }
}

/** Works out the times of an evaluation. Growth periods and windows are numbered from the epoch, so the same data falls in the same periods. */
export function rangeTimes(request: Pick<FindingsRequest, 'from' | 'to' | 'detection'>): RangeTimes {
  const d = request.detection
  const from = request.from.getTime()
  const to = request.to.getTime()
  const periodMs = d.sustained_growth_period.ms
  const recentEnd = Math.floor(to / periodMs) * periodMs
  const recentStart = recentEnd - d.sustained_growth_periods * periodMs
  const periodOrigin = Math.min(Math.ceil(from / periodMs) * periodMs, recentStart - d.sustained_growth_periods * periodMs)
  const baselineFrom = from - d.burst_baseline.ms
  const credentialWindow = { from: Math.max(from, to - d.credential_reuse_window.ms), to }
  const lookback = Math.floor(Math.min(baselineFrom, periodOrigin, credentialWindow.from) / HOUR_MS) * HOUR_MS
  const period = { origin: periodOrigin, ms: periodMs, count: Math.max(0, Math.round((recentEnd - periodOrigin) / periodMs)) }
  return { from, to, baselineFrom, lookback, period, recentStart, recentEnd, credentialWindow }
}

/** The findings of the request, sorted (kinds.ts, sortFindings). */
export async function computeFindings(client: ClickHouseClient, request: FindingsRequest): Promise<Finding[]> {
  const times = rangeTimes(request)
  const { profiles, credentials } = await readProfiles(client, request, times)
  const context: RuleContext = {
    ...times,
    client,
    request,
    profiles,
    credentials,
    // Only the findings of active identities that are undeclared or have no declared owner show samples.
    activeSamples: once(async () =>
      request.samples === false
        ? new Map()
        : latestTraces(client, new Map([...profiles.values()].filter((p) => p.delivered > 0 && (!p.declared || p.declared.owner.trim() === '')).map((p) => [p.id, p.lastMs])), request.scope),
    ),
    sampleTraces: async (requests) => (request.samples === false ? requests.map(() => []) : sampleTraces(client, requests, request.scope)),
    dormancy: once(() => judgeDormancy(context)),
  }
  const findings: Finding[] = []
  for (const kind of FINDING_KINDS) if (request.kinds.has(kind)) findings.push(...(await RULES[kind](context)))
  return sortFindings(findings)
}

/** A read made on first use and shared after. */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined
  return () => (result ??= read())
}
