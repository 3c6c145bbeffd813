/**
 * The finding vocabulary of GET /v1/findings (FINDINGS.md): kinds,
 * severities, the controls each kind bears on (the mapping table of
 * FINDINGS.md, which a test holds to this one), and the order findings are
 * listed in.
 */

/** Every finding kind, in the order FINDINGS.md lists them (also the listing order within a severity). */
export const FINDING_KINDS = [
  'dormant',
  'unregistered',
  'orphaned',
  'burst',
  'sustained_growth',
  'overactive',
  'privilege_drift',
  'auth_failures',
  'credential_reuse',
  'stale_credential',
  'telemetry_gap',
] as const
/** One finding kind. */
export type FindingKind = (typeof FINDING_KINDS)[number]

/** Severities, most urgent first. */
export const SEVERITIES = ['high', 'medium', 'low'] as const
/** One severity. */
export type Severity = (typeof SEVERITIES)[number]

/**
 * Framework items each kind bears on: OWASP Top 10 Non-Human Identities
 * Risks 2025 (`OWASP-NHI<n>`) and NIST Cybersecurity Framework 2.0
 * subcategories (`NIST-CSF-<id>`). FINDINGS.md explains each row.
 */
export const CONTROLS: Readonly<Record<FindingKind, readonly string[]>> = {
  dormant: ['OWASP-NHI1', 'NIST-CSF-PR.AA-01', 'NIST-CSF-ID.AM-08'],
  unregistered: ['OWASP-NHI1', 'NIST-CSF-ID.AM-02', 'NIST-CSF-PR.AA-01'],
  orphaned: ['OWASP-NHI1', 'NIST-CSF-PR.AA-01', 'NIST-CSF-ID.AM-08'],
  burst: ['OWASP-NHI2', 'NIST-CSF-DE.CM-09', 'NIST-CSF-DE.AE-02'],
  sustained_growth: ['OWASP-NHI5', 'NIST-CSF-PR.AA-05', 'NIST-CSF-DE.CM-09'],
  overactive: ['OWASP-NHI5', 'NIST-CSF-DE.CM-09', 'NIST-CSF-DE.AE-02'],
  privilege_drift: ['OWASP-NHI5', 'NIST-CSF-PR.AA-05', 'NIST-CSF-DE.CM-09'],
  auth_failures: ['OWASP-NHI4', 'NIST-CSF-PR.AA-03', 'NIST-CSF-DE.AE-02'],
  credential_reuse: ['OWASP-NHI9', 'NIST-CSF-PR.AA-01', 'NIST-CSF-PR.AA-02'],
  stale_credential: ['OWASP-NHI7', 'NIST-CSF-PR.AA-01'],
  telemetry_gap: ['NIST-CSF-PR.PS-04', 'NIST-CSF-DE.CM-09', 'NIST-CSF-ID.AM-02'],
}

/** A half-open time window `[from, to)` as RFC 3339 UTC strings. */
export interface FindingWindow {
  from: string
  to: string
}

/** One finding as the API returns it. */
export interface Finding {
  kind: FindingKind
  /** The identity concerned; null for a service-level finding (telemetry_gap). */
  nhi_id: string | null
  severity: Severity
  window: FindingWindow
  /** One sentence. */
  summary: string
  /** Kind-specific facts: counts, times, sample trace ids (see FINDINGS.md). */
  evidence: Record<string, unknown>
  controls: string[]
}

/** Builds a finding with the kind's controls. */
export function finding(kind: FindingKind, nhiId: string | null, severity: Severity, window: { from: number; to: number }, summary: string, evidence: Record<string, unknown>): Finding {
  return { kind, nhi_id: nhiId, severity, window: { from: iso(window.from), to: iso(window.to) }, summary, evidence, controls: [...CONTROLS[kind]] }
}

/** An epoch-millisecond instant as RFC 3339 UTC. */
export function iso(ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * Sorts findings so the same findings always come out in the same order:
 * severity (high first), kind (FINDING_KINDS order), identity (service-level
 * findings last), window start, then the summary as a final tie-break.
 */
export function sortFindings(findings: Finding[]): Finding[] {
  const rank = (s: Severity) => SEVERITIES.indexOf(s)
  const kindRank = (k: FindingKind) => FINDING_KINDS.indexOf(k)
  return findings.sort(
    (a, b) =>
      rank(a.severity) - rank(b.severity) ||
      kindRank(a.kind) - kindRank(b.kind) ||
      compareText(a.nhi_id ?? '\uffff', b.nhi_id ?? '\uffff') ||
      compareText(a.window.from, b.window.from) ||
      compareText(a.summary, b.summary),
  )
}

// Code-unit order, not locale order: the listing must not depend on the host's locale.
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
