/**
 * credential_reuse (FINDINGS.md, Kinds): one credential fingerprint used by
 * more than credential_reuse_max_identities identities in the credential
 * window, counted across every business unit, naming only the identities
 * the caller may see.
 */
import { sharedCredentialUse } from '../exact-reads.js'
import { finding, iso, type Finding } from '../kinds.js'
import { plural, type Rule } from '../rule.js'

/** One high finding per visible identity using a credential more identities used than credential_reuse_max_identities. */
export const credentialReuseRule: Rule = async (ctx) => {
  const { profiles, request, credentials, credentialWindow: window } = ctx
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
