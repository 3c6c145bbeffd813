/**
 * telemetry_gap (FINDINGS.md, Kinds): per service, unidentified spans
 * below telemetry_gap_min_ratio, attribute values outside the vocabulary,
 * or a service that stopped reporting (including one whose silence
 * explains an identity's, from the dormancy judgement). Service-level:
 * only for a caller who sees every business unit.
 */
import { completenessStatus, formatDuration, identifiedRatio } from '../../policy/index.js'
import { attributeProblems, lastSpans, lastSpansBefore, longestSilences, serviceCounts, unidentifiedSamples, type AttributeProblem } from '../../telemetry/queries.js'
import { finding, iso, type Severity } from '../kinds.js'
import { plural, round, type Rule } from '../rule.js'

/** What is wrong with a service's telemetry. */
export type TelemetryProblem = 'unidentified_spans' | 'vocabulary' | 'stopped_reporting'

/** The evidence of a telemetry_gap finding, in the order the API writes it (FINDINGS.md, Evidence; findings/openapi.ts). */
export type TelemetryGapEvidence = {
  spans: number
  identified_spans: number
  identified_ratio: number
  attribute_problems: Array<{ attribute: string; value: string; spans: number; sample_trace_ids: string[] }>
  last_span: string | null
  silent_for_seconds: number | null
  longest_earlier_silence_seconds: number | null
  identities_without_evidence: string[]
  service: string
  problems: TelemetryProblem[]
  min_ratio: number
  silence: string
  sample_trace_ids: string[]
}

/** When a stopped service last reported and how long it has been silent. */
type Silence = Pick<TelemetryGapEvidence, 'last_span' | 'silent_for_seconds' | 'longest_earlier_silence_seconds'>

/** What is known of one service's gap while the rule collects it. */
interface Gap {
  reasons: string[]
  severity: Severity
  windowFrom: number
  problems: TelemetryProblem[]
  attributeProblems: TelemetryGapEvidence['attribute_problems']
  silence: Silence | null
  identitiesWithoutEvidence: string[]
}

/** One finding per service with any problem; its severity is the highest of them. */
export const telemetryGapRule: Rule = async (ctx) => {
  if (!ctx.request.includeServices) return []
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

  const gaps = new Map<string, Gap>()
  const gap = (service: string): Gap => {
    let g = gaps.get(service)
    if (!g) {
      g = { reasons: [], severity: 'low', windowFrom: from, problems: [], attributeProblems: [], silence: null, identitiesWithoutEvidence: [] }
      gaps.set(service, g)
    }
    return g
  }
  const raise = (g: Gap, severity: Severity) => {
    if (severity === 'high' || (severity === 'medium' && g.severity === 'low')) g.severity = severity
  }

  for (const c of counts) {
    const ratio = c.spans === 0 ? 1 : c.identifiedSpans / c.spans
    if (c.spans < d.telemetry_gap_min_spans || completenessStatus(c.spans, c.identifiedSpans, d.telemetry_gap_min_ratio) === 'complete') continue
    const g = gap(c.service)
    raise(g, 'medium')
    g.problems.push('unidentified_spans')
    g.reasons.push(`${round((1 - ratio) * 100, 1)}% of its ${plural(c.spans, 'activity span')} carried no identity`)
  }
  const problemsBy = new Map<string, AttributeProblem[]>()
  for (const p of problems) problemsBy.set(p.service, [...(problemsBy.get(p.service) ?? []), p])
  for (const [service, list] of problemsBy) {
    const g = gap(service)
    g.problems.push('vocabulary')
    const spans = list.reduce((sum, p) => sum + p.spans, 0)
    g.reasons.push(`${plural(spans, 'span')} carried ${[...new Set(list.map((p) => p.attribute))].join(' or ')} values outside the vocabulary`)
    g.attributeProblems = list.map((p) => ({ attribute: p.attribute, value: p.value, spans: p.spans, sample_trace_ids: p.sampleTraceIds }))
  }
  const stopped = (service: string, lastMs: number, longestEarlierMs: number | null) => {
    const g = gap(service)
    raise(g, 'high')
    g.problems.push('stopped_reporting')
    g.windowFrom = lastMs > 0 ? lastMs : from
    g.reasons.push(lastMs > 0 ? `it has sent no spans for ${formatDuration(Math.floor((to - lastMs) / 1000) * 1000)}` : 'it has sent no spans')
    g.silence = {
      last_span: lastMs > 0 ? iso(lastMs) : null,
      silent_for_seconds: lastMs > 0 ? Math.floor((to - lastMs) / 1000) : null,
      longest_earlier_silence_seconds: longestEarlierMs === null ? null : Math.floor(longestEarlierMs / 1000),
    }
  }
  for (const service of quiet) {
    const last = quietLast.get(service) ?? 0
    const longest = silences.get(service) ?? 0
    // A service that is often quiet for hours (a nightly job) is not "stopped" until it is quiet for longer than ever before.
    if (last > 0 && to - last >= d.telemetry_gap_silence.ms && to - last > longest) stopped(service, last, longest)
  }
  for (const [service, u] of (await ctx.dormancy()).unjudged) {
    if (!gaps.get(service)?.silence?.last_span && to - u.lastSpanMs >= d.telemetry_gap_silence.ms) stopped(service, u.lastSpanMs, null)
    const g = gaps.get(service)
    if (g) g.identitiesWithoutEvidence = [...u.ids].sort()
  }

  const countsOf = new Map(counts.map((c) => [c.service, c]))
  const ratioGaps = [...gaps].filter(([, g]) => g.problems.includes('unidentified_spans')).map(([s]) => s)
  const unidentified = await unidentifiedSamples(client, ratioGaps, range)
  return [...gaps].map(([service, g]) => {
    const c = countsOf.get(service)
    const evidence: TelemetryGapEvidence = {
      spans: c ? c.spans : 0,
      identified_spans: c ? c.identifiedSpans : 0,
      identified_ratio: c ? identifiedRatio(c.spans, c.identifiedSpans) : 1,
      attribute_problems: g.attributeProblems,
      last_span: g.silence ? g.silence.last_span : null,
      silent_for_seconds: g.silence ? g.silence.silent_for_seconds : null,
      longest_earlier_silence_seconds: g.silence ? g.silence.longest_earlier_silence_seconds : null,
      identities_without_evidence: g.identitiesWithoutEvidence,
      service,
      problems: g.problems,
      min_ratio: d.telemetry_gap_min_ratio,
      silence: d.telemetry_gap_silence.text,
      sample_trace_ids: [...new Set([...(unidentified.get(service) ?? []), ...g.attributeProblems.flatMap((p) => p.sample_trace_ids)])].slice(0, 3),
    }
    return finding('telemetry_gap', null, g.severity, { from: g.windowFrom, to }, `${service}: ${g.reasons.join('; ')}`, evidence)
  })
}
