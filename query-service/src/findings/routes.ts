/**
 * GET /v1/findings (FINDINGS.md), under the findings:read scope.
 *
 * Visibility: a key limited to business units sees findings about the
 * identities in its units (by effective business unit) computed from their
 * rows only, and no service-level finding (telemetry_gap belongs to no
 * business unit). One exception, deliberate: credential_reuse counts every
 * identity using the credential, across units (the risk is the sharing
 * itself), but names only the identities the key may see. The `business_unit` parameter narrows any key the same
 * way; telemetry_gap findings appear only for an unrestricted key that did
 * not narrow the request.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseList, parseRange, parseTime, rejectUnknown } from '../http/params.js'
import type { Policy } from '../policy/index.js'
import { computeFindings } from './evaluate.js'
import { FINDING_KINDS } from './kinds.js'

/** What the findings routes need. */
export interface FindingsDeps {
  client: ClickHouseClient
  /** Current validated policy (its `detection` section). */
  policy: () => Policy
  /** The clock, read once per request for the default range only. */
  now?: () => Date
  /** Passed to the usage rollup planner, as AppDeps.rollupGraceSeconds is for billing. */
  rollupGraceSeconds?: number
}

/** Default look-back of GET /v1/findings when `from` is not given. */
export const DEFAULT_FINDINGS_DAYS = 30
const FINDINGS_PARAMS = ['from', 'to', 'kind', 'business_unit'] as const
const MAX_BUSINESS_UNITS = 100

/** Parses `business_unit`: a comma list of unit names. */
function parseBusinessUnits(value: string | undefined): string[] | null {
  if (value === undefined) return null
  const units = value.split(',').map((u) => u.trim())
  if (units.some((u) => u === '')) throw badParameter('business_unit', 'must be a comma list of business units without empty items')
  if (units.length > MAX_BUSINESS_UNITS) throw badParameter('business_unit', `lists more than ${MAX_BUSINESS_UNITS} business units`)
  return [...new Set(units)]
}

/** Builds the sub-app serving /findings (mount under /v1). */
export function findingsRoutes(deps: FindingsDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const now = deps.now ?? (() => new Date())

  app.get('/findings', requireScope('findings:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, FINDINGS_PARAMS)
    const clock = now()
    // The default look-back ends at `to` (given or now), so `?to=` alone moves the whole window.
    const to = query.to !== undefined ? parseTime('to', query.to) : clock
    const from = query.from ?? new Date(to.getTime() - DEFAULT_FINDINGS_DAYS * 86_400_000).toISOString()
    const range = parseRange({ from, to: to.toISOString() }, clock)
    const kinds = parseList('kind', query.kind, FINDING_KINDS, FINDING_KINDS)
    const requested = parseBusinessUnits(query.business_unit)
    const keyUnits = c.get('principal').businessUnits
    const scope = requested === null ? keyUnits : keyUnits === null ? requested : requested.filter((u) => keyUnits.includes(u))
    const policy = deps.policy()
    const findings = await computeFindings(deps.client, {
      from: range.from,
      to: range.to,
      detection: policy.detection,
      scope,
      includeServices: keyUnits === null && requested === null,
      kinds: new Set(kinds),
      rollupGraceSeconds: deps.rollupGraceSeconds,
    })
    return c.json({ from: range.from.toISOString(), to: range.to.toISOString(), findings })
  })

  return app
}
