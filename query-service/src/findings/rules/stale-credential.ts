/**
 * stale_credential (FINDINGS.md, Kinds): an identity active in the range
 * whose last ok secret rotation (or, with none, its first activity) is
 * more than rotation_max_age before `to`.
 */
import { finding, iso, type Finding } from '../kinds.js'
import { days, type Rule } from '../rule.js'

/** One finding per active identity whose secret is older than rotation_max_age. */
export const staleCredentialRule: Rule = async (ctx) => {
  const { profiles, to, request, credentials } = ctx
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
