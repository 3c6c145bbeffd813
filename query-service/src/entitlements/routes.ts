/**
 * GET /v1/entitlements/{id}, POST /v1/entitlements/decide (a batch for a
 * policy decision point) and GET /v1/eligibility (the license eligibility
 * report). Rules come from the policy's `entitlements`; IDENTITIES.md
 * describes the semantics.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { z } from 'zod'
import { ApiError, badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseTime, rejectUnknown } from '../http/params.js'
import { csvResponse, responseFormat } from '../http/format.js'
import { describeProblems, type InventoryProblem } from '../identities/inventory.js'
import { parseJsonBody, readBodyText } from '../http/body.js'
import { identityVisible, visibleUnits } from '../identities/queries.js'
import { notFound, parseAt, pathId } from '../http/identity-path.js'
import { describeValue, formatPath, quote, type Policy } from '../policy/index.js'
import { decideFeature } from './decide.js'
import { ELIGIBILITY_CSV_HEADER, eligibilityCsvRows, eligibilityReport } from './eligibility.js'
import { entitlementFigures } from './queries.js'
import { singleIdentityFigures } from './single.js'

/** What the entitlement routes need. */
export interface EntitlementsDeps {
  client: ClickHouseClient
  /** Current validated policy: its entitlements and detection.dormant_after. */
  policy: () => Policy
}

/** At most this many requests in one POST /v1/entitlements/decide. */
export const MAX_DECIDE_REQUESTS = 10_000
/** Largest decide body, in bytes. */
export const MAX_DECIDE_BODY_BYTES = 2 * 1024 * 1024

const decideBody = z.strictObject({
  at: z.string({ error: (issue) => `must be an RFC 3339 UTC timestamp, got ${describeValue(issue.input)}` }).optional(),
  requests: z
    .array(
      z.strictObject({
        nhi_id: z
          .string({ error: (issue) => `must be an identity id (a string), got ${describeValue(issue.input)}` })
          .min(1, { error: 'must not be empty' })
          .max(256, { error: 'must be at most 256 characters' }),
        feature: z.string({ error: (issue) => `must be a feature name (a string), got ${describeValue(issue.input)}` }).optional(),
      }),
      { error: (issue) => `must be a list of { nhi_id, feature? }, got ${describeValue(issue.input)}` },
    )
    .max(MAX_DECIDE_REQUESTS, { error: `must list at most ${MAX_DECIDE_REQUESTS} requests` }),
})

/** Builds the entitlements sub-app. */
export function entitlementsRoutes(deps: EntitlementsDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()

  app.get('/entitlements/:id', requireScope('billing:read'), async (c) => {
    const id = pathId(c.req.param('id'))
    const query = c.req.query()
    rejectUnknown(query, ['at'])
    const at = parseAt(query.at)
    const rules = deps.policy().entitlements
    const units = c.get('principal').businessUnits
    const f = await singleIdentityFigures(deps.client, { id, at, rules, businessUnits: units })
    // Events in a window prove the identity visible; otherwise ask (one more query, only then).
    if (!f && !(await identityVisible(deps.client, id, units))) throw notFound()
    return c.json({
      nhi_id: id,
      at: at.toISOString(),
      features: rules.map((rule, i) => decideFeature(rule, at, f?.features[i], true)),
    })
  })

  app.post('/entitlements/decide', requireScope('billing:read'), async (c) => {
    rejectUnknown(c.req.query(), [])
    const parsed = decideBody.safeParse(parseJsonBody(await readBodyText(c.req.raw, MAX_DECIDE_BODY_BYTES)))
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue): InventoryProblem => ({
        path: formatPath(issue.path.map((p) => (typeof p === 'number' ? p : String(p)))),
        message: issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => quote(k, 40)).join(', ')}` : issue.message,
      }))
      throw new ApiError('invalid_body', describeProblems(problems))
    }
    const body = parsed.data
    let at: Date
    try {
      at = parseAt(body.at)
    } catch (error) {
      throw new ApiError('invalid_body', (error as Error).message)
    }
    const rules = deps.policy().entitlements
    const ruleIndex = new Map(rules.map((r, i) => [r.feature, i]))
    const unknown = body.requests.findIndex((r) => r.feature !== undefined && !ruleIndex.has(r.feature))
    if (unknown >= 0) {
      const names = rules.map((r) => r.feature).join(', ') || '(the policy defines none)'
      throw new ApiError('invalid_body', `requests[${unknown}].feature: unknown feature ${quote(body.requests[unknown]!.feature!)}; the policy defines ${names}`)
    }
    const figures = await entitlementFigures(deps.client, {
      ids: body.requests.map((r) => r.nhi_id),
      at,
      rules,
      businessUnits: c.get('principal').businessUnits,
      evidence: false,
      history: null,
    })
    const decisions = body.requests.flatMap((request) => {
      const f = figures.get(request.nhi_id)
      const indexes = request.feature === undefined ? rules.map((_, i) => i) : [ruleIndex.get(request.feature)!]
      return indexes.map((i) => ({ nhi_id: request.nhi_id, ...decideFeature(rules[i]!, at, f?.features[i], false) }))
    })
    return c.json({ at: at.toISOString(), decisions })
  })

  app.get('/eligibility', requireScope('billing:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, ['business_unit', 'at', 'format'])
    const at = query.at === undefined ? new Date() : parseTime('at', query.at)
    if (query.business_unit === '') throw badParameter('business_unit', 'must not be empty')
    const format = responseFormat(c, query.format)
    const units = visibleUnits(c.get('principal').businessUnits, query.business_unit)
    const report = await eligibilityReport(deps.client, { at, units, businessUnitFilter: query.business_unit ?? null, policy: deps.policy() })
    if (format === 'csv') return csvResponse(c, 'eligibility.csv', ELIGIBILITY_CSV_HEADER, eligibilityCsvRows(report))
    return c.json(report)
  })

  return app
}
