/**
 * GET /v1/telemetry/completeness (FINDINGS.md, "Telemetry completeness"),
 * under the findings:read scope: per service, activity spans, those tied to
 * an identity, the ratio and status, why the others were not, and attribute
 * values outside the vocabulary. A key limited to business units counts only
 * its units' rows.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseRange, rejectUnknown } from '../http/params.js'
import { completenessStatus, identifiedRatio, type Policy } from '../policy/index.js'
import { attributeProblems, pendingSpans, serviceCounts, unidentifiedReasons, type AttributeProblem } from './queries.js'

/** What the telemetry routes need. */
export interface TelemetryDeps {
  client: ClickHouseClient
  /** Current validated policy (its `billing.completeness_threshold`). */
  policy: () => Policy
  /** The clock, read once per request for the default range only. */
  now?: () => Date
  /** Passed to the usage rollup planner, as AppDeps.rollupGraceSeconds is for billing. */
  rollupGraceSeconds?: number
}

const COMPLETENESS_PARAMS = ['from', 'to'] as const

/** Builds the sub-app serving /telemetry/completeness (mount under /v1). */
export function telemetryRoutes(deps: TelemetryDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const now = deps.now ?? (() => new Date())

  app.get('/telemetry/completeness', requireScope('findings:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, COMPLETENESS_PARAMS)
    const range = parseRange(query, now())
    const scope = c.get('principal').businessUnits
    const threshold = deps.policy().billing.completeness_threshold
    const [counts, problems, reasons, pending] = await Promise.all([
      serviceCounts(deps.client, range, scope, deps.rollupGraceSeconds),
      attributeProblems(deps.client, range, scope),
      unidentifiedReasons(deps.client, range, scope),
      pendingSpans(deps.client, range, scope),
    ])
    const problemsOf = new Map<string, AttributeProblem[]>()
    for (const p of problems) problemsOf.set(p.service, [...(problemsOf.get(p.service) ?? []), p])
    const reasonsOf = new Map<string, Record<string, number>>()
    for (const r of reasons) reasonsOf.set(r.service, { ...reasonsOf.get(r.service), [r.reason]: r.spans })
    // A service whose only events are still waiting for their trace is listed too.
    const listed = [...counts, ...[...pending.keys()].filter((service) => !counts.some((s) => s.service === service)).map((service) => ({ service, spans: 0, identifiedSpans: 0 }))]
    listed.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))
    let spans = 0
    let identified = 0
    let waiting = 0
    const services = listed.map((s) => {
      // As in billing: events waiting for their trace count as not (yet) identified.
      const waitingHere = pending.get(s.service) ?? 0
      const all = s.spans + waitingHere
      spans += all
      identified += s.identifiedSpans
      waiting += waitingHere
      return {
        service: s.service,
        spans: all,
        identified_spans: s.identifiedSpans,
        identified_ratio: identifiedRatio(all, s.identifiedSpans),
        status: completenessStatus(all, s.identifiedSpans, threshold),
        pending_spans: waitingHere,
        unidentified_reasons: reasonsOf.get(s.service) ?? {},
        attribute_problems: (problemsOf.get(s.service) ?? []).map((p) => ({ attribute: p.attribute, value: p.value, spans: p.spans, sample_trace_ids: p.sampleTraceIds })),
      }
    })
    return c.json({
      from: range.from.toISOString(),
      to: range.to.toISOString(),
      threshold,
      pending_spans: waiting,
      services,
      total: { spans, identified_spans: identified, identified_ratio: identifiedRatio(spans, identified), status: completenessStatus(spans, identified, threshold), pending_spans: waiting },
    })
  })
  return app
}
