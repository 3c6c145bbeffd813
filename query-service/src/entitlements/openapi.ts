/**
 * OpenAPI description of the entitlement routes: GET /v1/entitlements/{id},
 * POST /v1/entitlements/decide and GET /v1/eligibility.
 */
import { authResponses, errorResponse, textParam, timeParam, utcTimeInput, type OpenApiFragment } from '../http/openapi-fragment.js'
import { identityIdParam, identityNotFound } from '../identities/openapi.js'
import { ELIGIBILITY_CSV_HEADER, RECOMMENDATIONS } from './eligibility.js'
import { SAMPLE_TRACE_IDS } from './queries.js'
import { MAX_DECIDE_BODY_BYTES, MAX_DECIDE_REQUESTS } from './routes.js'

const dateTime = { type: 'string', format: 'date-time' } as const
const count = { type: 'integer', minimum: 0 } as const

const decisionProperties = {
  feature: { type: 'string', description: 'The entitlement’s feature name from the policy.' },
  granted: { type: 'boolean', description: 'observed >= threshold.' },
  observed: { ...count, description: 'Approved events matching the rule in the window, each span once.' },
  threshold: { type: 'integer', minimum: 1, description: 'The rule’s min_count.' },
  unapproved: { ...count, description: 'Matching events in the window that did not count: outside the identity’s approved_activities, or the identity is not declared.' },
  window: {
    type: 'object',
    additionalProperties: false,
    required: ['from', 'to', 'duration'],
    description: 'The rolling window [from, to) = [at - window, at).',
    properties: { from: dateTime, to: dateTime, duration: { type: 'string', description: 'The rule’s window as written, e.g. 7d.' } },
  },
  changes_at: {
    type: ['string', 'null'],
    format: 'date-time',
    description: 'For a granted feature, the first instant at which it would no longer be granted if no new activity arrived (its min_count-th newest event leaves the window); null when only new activity can change the answer.',
  },
} as const
const decisionRequired = ['feature', 'granted', 'observed', 'threshold', 'unapproved', 'window', 'changes_at']
const summaryProperties = Object.fromEntries(RECOMMENDATIONS.map((r) => [r, count]))

/** Entitlements' paths and schemas. */
export const entitlementsOpenApi: OpenApiFragment = {
  schemas: {
    EntitlementDecision: {
      type: 'object',
      additionalProperties: false,
      required: [...decisionRequired, 'evidence'],
      properties: {
        ...decisionProperties,
        evidence: {
          type: 'object',
          additionalProperties: false,
          required: ['sample_trace_ids'],
          properties: { sample_trace_ids: { type: 'array', maxItems: SAMPLE_TRACE_IDS, items: { type: 'string' }, description: 'Traces of the newest counted events, newest first.' } },
        },
      },
    },
    Entitlements: {
      type: 'object',
      additionalProperties: false,
      required: ['nhi_id', 'at', 'features'],
      properties: { nhi_id: { type: 'string' }, at: dateTime, features: { type: 'array', items: { $ref: '#/components/schemas/EntitlementDecision' } } },
    },
    DecideRequest: {
      type: 'object',
      additionalProperties: false,
      required: ['requests'],
      properties: {
        at: { ...utcTimeInput, description: 'Decision time (RFC 3339 UTC); default now.' },
        requests: {
          type: 'array',
          maxItems: MAX_DECIDE_REQUESTS,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['nhi_id'],
            properties: { nhi_id: { type: 'string', minLength: 1, maxLength: 256 }, feature: { type: 'string', description: 'One feature; every policy feature when absent.' } },
          },
        },
      },
    },
    DecideResponse: {
      type: 'object',
      additionalProperties: false,
      required: ['at', 'decisions'],
      properties: {
        at: dateTime,
        decisions: {
          type: 'array',
          description: 'In request order; a request without a feature expands to every feature in policy order.',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['nhi_id', ...decisionRequired],
            properties: { nhi_id: { type: 'string' }, ...decisionProperties },
          },
        },
      },
    },
    EligibilityLine: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'type', 'owner', 'business_unit', 'tier', 'status', 'last_seen', 'recent_activity', 'recent_unapproved_activity', 'features', 'recommendation', 'recommended_tier', 'reason'],
      properties: {
        id: { type: 'string' },
        type: { type: 'string' },
        owner: { type: 'string' },
        business_unit: { type: 'string' },
        tier: { type: 'string', description: 'Allocated tier from the inventory.' },
        status: { type: 'string', enum: ['active', 'dormant', 'never_seen'] },
        last_seen: { type: ['string', 'null'], format: 'date-time' },
        recent_activity: { ...count, description: 'Approved events within detection.dormant_after before `at`.' },
        recent_unapproved_activity: { ...count, description: 'Events in the same stretch outside approved_activities.' },
        features: {
          type: 'array',
          description: 'The tier’s usage-conditioned features (tier parts that name a policy entitlement), decided at `at`.',
          items: { type: 'object', additionalProperties: false, required: decisionRequired, properties: decisionProperties },
        },
        recommendation: { type: 'string', enum: [...RECOMMENDATIONS] },
        recommended_tier: { type: ['string', 'null'], description: 'Same tier on keep, the earned part on downgrade (may be empty), null on revoke.' },
        reason: { type: 'string' },
      },
    },
    EligibilityReport: {
      type: 'object',
      additionalProperties: false,
      required: ['at', 'business_unit', 'dormant_after', 'summary', 'by_business_unit', 'identities'],
      properties: {
        at: dateTime,
        business_unit: { type: ['string', 'null'], description: 'The business_unit filter, if any.' },
        dormant_after: { type: 'string', description: 'detection.dormant_after from the policy.' },
        summary: { type: 'object', additionalProperties: false, required: [...RECOMMENDATIONS], properties: summaryProperties },
        by_business_unit: {
          type: 'array',
          items: { type: 'object', additionalProperties: false, required: ['business_unit', ...RECOMMENDATIONS], properties: { business_unit: { type: 'string' }, ...summaryProperties } },
        },
        identities: { type: 'array', items: { $ref: '#/components/schemas/EligibilityLine' } },
      },
    },
  },
  paths: {
    '/v1/entitlements/{id}': {
      get: {
        summary: 'Which features an identity has earned at a time',
        description:
          'Each policy entitlement is granted when the identity has at least min_count approved events matching its rule in [at - window, at). Only activity the identity is approved for counts: a declared identity’s approved_activities (all, when empty); an undeclared identity’s activity never counts. Spans that arrive late change past answers; each span counts once. Scope billing:read; a key limited to business units sees only its units’ identities and events.',
        security: [{ bearer: [] }],
        parameters: [identityIdParam, timeParam('at', 'Decision time (RFC 3339 UTC); default now.')],
        responses: {
          '200': { description: 'One decision per policy entitlement, in policy order', content: { 'application/json': { schema: { $ref: '#/components/schemas/Entitlements' } } } },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('billing:read'),
          '404': identityNotFound,
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/entitlements/decide': {
      post: {
        summary: 'Decide a batch of (identity, feature) requests, for a policy decision point',
        description: `Same answers as GET /v1/entitlements/{id}, without evidence, from one grouped query. An identity that does not exist, or that the key may not see, is answered as one without activity. At most ${MAX_DECIDE_REQUESTS} requests and ${MAX_DECIDE_BODY_BYTES} bytes. Scope billing:read.`,
        security: [{ bearer: [] }],
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/DecideRequest' } } } },
        responses: {
          '200': { description: 'Decisions', content: { 'application/json': { schema: { $ref: '#/components/schemas/DecideResponse' } } } },
          '400': errorResponse('invalid body; the message names the field, e.g. requests[3].feature'),
          ...authResponses('billing:read'),
          '413': errorResponse('body too large'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/eligibility': {
      get: {
        summary: 'License eligibility report: keep, downgrade or revoke each declared identity’s tier',
        description:
          'Per declared identity: revoke when it has no approved activity within detection.dormant_after (never seen, dormant, or acting only outside its approved activities); downgrade when its tier names policy features it has not earned at `at`; keep otherwise. Scope billing:read; a key limited to business units sees only its units.',
        security: [{ bearer: [] }],
        parameters: [
          textParam('business_unit', 'Only this business unit.', { minLength: 1 }),
          timeParam('at', 'Decision time (RFC 3339 UTC); default now.'),
          { name: 'format', in: 'query', required: false, description: 'json (default) or csv; Accept: text/csv also selects CSV.', schema: { type: 'string', enum: ['json', 'csv'] } },
        ],
        responses: {
          '200': {
            description: 'The report',
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/EligibilityReport' } },
              'text/csv': { schema: { type: 'string', description: `Header ${ELIGIBILITY_CSV_HEADER.join(',')}; one line per identity.` } },
            },
          },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('billing:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
  },
}
