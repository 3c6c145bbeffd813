/**
 * The license eligibility report: for each declared identity, the tier it
 * was allocated against the approved use observed, and a recommendation.
 *
 * A tier is a label, or features of the policy joined by `+`
 * (`high_capacity_processing+premium_automation`); parts that name a policy
 * entitlement are the usage-conditioned rights the tier grants, other parts
 * (`gold`, `standard`) carry no condition. At `at`:
 *
 * - **revoke** when the identity has no approved activity within
 *   `detection.dormant_after` (never seen, dormant, or acting only outside
 *   its approved activities);
 * - **downgrade** when it has, but at least one of its tier's features is
 *   not earned now; the recommended tier keeps the earned features and the
 *   labels;
 * - **keep** otherwise.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { declaredIdentities, identityStatus, type IdentityStatus } from '../identities/queries.js'
import type { Entitlement, Policy } from '../policy/index.js'
import { decideFeature, type FeatureDecision } from './decide.js'
import { entitlementFigures } from './queries.js'

/** The three recommendations. */
export const RECOMMENDATIONS = ['keep', 'downgrade', 'revoke'] as const
/** One recommendation. */
export type Recommendation = (typeof RECOMMENDATIONS)[number]

/** One line of the report. */
export interface EligibilityLine {
  id: string
  type: string
  owner: string
  business_unit: string
  tier: string
  status: Exclude<IdentityStatus, 'unregistered'>
  last_seen: string | null
  /** Approved events in [at - dormant_after, at). */
  recent_activity: number
  /** Events in the same stretch outside the identity's approved activities. */
  recent_unapproved_activity: number
  /** The tier's usage-conditioned features, each decided at `at`. */
  features: Array<Omit<FeatureDecision, 'evidence'>>
  recommendation: Recommendation
  /** The tier to move to: the same on keep, the earned part on downgrade, null on revoke. */
  recommended_tier: string | null
  reason: string
}

/** The whole report. */
export interface EligibilityReport {
  at: string
  business_unit: string | null
  dormant_after: string
  summary: Record<Recommendation, number>
  /** The same counts per business unit, sorted by unit. */
  by_business_unit: Array<{ business_unit: string } & Record<Recommendation, number>>
  identities: EligibilityLine[]
}

/** The policy features a tier names, in tier order (unknown parts are labels). */
export function tierFeatures(tier: string, rules: readonly Entitlement[]): Entitlement[] {
  const byName = new Map(rules.map((r) => [r.feature, r]))
  const parts = tier.split('+').filter((p) => p !== '')
  return [...new Set(parts)].flatMap((p) => (byName.has(p) ? [byName.get(p)!] : []))
}

/** Builds the report for the declared identities the units see, at `at`. */
export async function eligibilityReport(
  client: ClickHouseClient,
  options: { at: Date; units: readonly string[] | null; businessUnitFilter: string | null; policy: Policy },
): Promise<EligibilityReport> {
  const { at, policy } = options
  const dormant = policy.detection.dormant_after
  const declared = await declaredIdentities(client, options.units)
  const rules = policy.entitlements
  const figures = await entitlementFigures(client, {
    ids: declared.map((d) => d.id),
    at,
    rules,
    businessUnits: options.units,
    evidence: false,
    history: { recentFrom: new Date(at.getTime() - dormant.ms) },
  })
  const summary: Record<Recommendation, number> = { keep: 0, downgrade: 0, revoke: 0 }
  const identities = declared.map((d): EligibilityLine => {
    const f = figures.get(d.id)
    const lastSeenMs = f?.lastSeenMs ?? null
    const status = identityStatus(true, lastSeenMs, at.getTime(), dormant.ms) as EligibilityLine['status']
    const allocated = tierFeatures(d.tier, rules)
    const features = allocated.map((rule) => decideFeature(rule, at, f?.features[rules.indexOf(rule)], false))
    const recent = f?.recentApproved ?? 0
    const recentUnapproved = f?.recentUnapproved ?? 0
    let recommendation: Recommendation
    let recommendedTier: string | null
    let reason: string
    if (recent === 0) {
      recommendation = 'revoke'
      recommendedTier = null
      reason =
        status === 'never_seen'
          ? 'never seen: no activity recorded for this identity'
          : status === 'dormant'
            ? `dormant: no activity since ${new Date(lastSeenMs!).toISOString()} (longer than dormant_after ${dormant.text})`
            : `no approved activity in the last ${dormant.text}; ${recentUnapproved} event${recentUnapproved === 1 ? '' : 's'} outside approved_activities`
    } else {
      const missing = features.filter((x) => !x.granted)
      if (missing.length === 0) {
        recommendation = 'keep'
        recommendedTier = d.tier
        reason =
          features.length === 0
            ? `active: ${recent} approved event${recent === 1 ? '' : 's'} in the last ${dormant.text}; the tier has no usage-conditioned features`
            : `active, and every feature of the tier is earned (${features.map((x) => `${x.feature} ${x.observed}/${x.threshold} in ${x.window.duration}`).join(', ')})`
      } else {
        recommendation = 'downgrade'
        const missingNames = new Set(missing.map((x) => x.feature))
        recommendedTier = [...new Set(d.tier.split('+').filter((p) => p !== '' && !missingNames.has(p)))].join('+')
        reason = `not earned: ${missing.map((x) => `${x.feature} (${x.observed} of ${x.threshold} approved events in ${x.window.duration})`).join(', ')}`
      }
    }
    summary[recommendation]++
    return {
      id: d.id,
      type: d.type,
      owner: d.owner,
      business_unit: d.business_unit,
      tier: d.tier,
      status,
      last_seen: lastSeenMs === null ? null : new Date(lastSeenMs).toISOString(),
      recent_activity: recent,
      recent_unapproved_activity: recentUnapproved,
      features,
      recommendation,
      recommended_tier: recommendedTier,
      reason,
    }
  })
  const perUnit = new Map<string, { business_unit: string } & Record<Recommendation, number>>()
  for (const line of identities) {
    const unit = perUnit.get(line.business_unit) ?? { business_unit: line.business_unit, keep: 0, downgrade: 0, revoke: 0 }
    unit[line.recommendation]++
    perUnit.set(line.business_unit, unit)
  }
  const byBusinessUnit = [...perUnit.values()].sort((a, b) => (a.business_unit < b.business_unit ? -1 : a.business_unit > b.business_unit ? 1 : 0))
  return { at: at.toISOString(), business_unit: options.businessUnitFilter, dormant_after: dormant.text, summary, by_business_unit: byBusinessUnit, identities }
}

/** CSV columns of the report. */
export const ELIGIBILITY_CSV_HEADER = [
  'id',
  'type',
  'owner',
  'business_unit',
  'tier',
  'status',
  'last_seen',
  'recent_activity',
  'recent_unapproved_activity',
  'features_earned',
  'features_not_earned',
  'recommendation',
  'recommended_tier',
  'reason',
] as const

/** The report's identities as CSV rows (features joined with `+`). */
export function eligibilityCsvRows(report: EligibilityReport): Array<Array<string | number | null>> {
  return report.identities.map((line) => [
    line.id,
    line.type,
    line.owner,
    line.business_unit,
    line.tier,
    line.status,
    line.last_seen,
    line.recent_activity,
    line.recent_unapproved_activity,
    line.features.filter((f) => f.granted).map((f) => f.feature).join('+'),
    line.features.filter((f) => !f.granted).map((f) => f.feature).join('+'),
    line.recommendation,
    line.recommended_tier,
    line.reason,
  ])
}
