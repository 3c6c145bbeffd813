/**
 * OpenAPI description of the identity routes: GET /v1/identities,
 * GET /v1/identities/{id}/activity, POST /v1/inventory, DELETE /v1/inventory/{id}.
 */
import { NHI_TYPES } from '@nhi-meter/instrumentation/semconv'
import { authResponses, errorResponse, textParam, timeParam, type OpenApiFragment } from '../http/openapi-fragment.js'
import { MAX_APPROVED_ACTIVITIES, MAX_INVENTORY_BATCH } from './inventory.js'
import { ACTIVITY_GRANULARITIES, IDENTITY_STATUSES } from './queries.js'
import { IDENTITIES_PAGE, MAX_INVENTORY_BODY_BYTES } from './routes.js'

const dateTime = { type: 'string', format: 'date-time' } as const
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const
const count = { type: 'integer', minimum: 0 } as const
const statusList = `(${IDENTITY_STATUSES.join('|')})`
const declarations = { type: 'array', maxItems: MAX_INVENTORY_BATCH, items: { $ref: '#/components/schemas/DeclaredIdentity' } } as const

/** The `{id}` path parameter shared by the identity and entitlement routes. */
export const identityIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'Identity id (nhi.id), percent-encoded. Ids longer than 256 characters do not exist (404).',
  schema: { type: 'string', minLength: 1 },
} as const

/** The 404 of a route about one identity. */
export const identityNotFound = errorResponse('no such identity, or one this key may not see (the two read the same)')

/** Identities' paths and schemas. */
export const identitiesOpenApi: OpenApiFragment = {
  schemas: {
    Identity: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'type', 'owner', 'business_unit', 'declared', 'tier', 'approved_activities', 'first_seen', 'last_seen', 'activity_count', 'status'],
      properties: {
        id: { type: 'string' },
        type: { type: 'string', description: 'nhi.type; the inventory’s for a declared identity, else the latest span’s.' },
        owner: { type: 'string' },
        business_unit: { type: 'string' },
        declared: { type: 'boolean', description: 'In the inventory.' },
        tier: { type: ['string', 'null'], description: 'Allocated tier (declared identities; null otherwise).' },
        approved_activities: { type: ['array', 'null'], items: { type: 'string' }, description: 'Declared approved activities (null when not declared).' },
        first_seen: { ...nullableDateTime, description: 'First use event before `at` (null when never seen).' },
        last_seen: { ...nullableDateTime, description: 'Latest use event before `at`.' },
        activity_count: { ...count, description: 'Use events before `at`, each span once.' },
        status: { type: 'string', enum: [...IDENTITY_STATUSES] },
      },
    },
    IdentityList: {
      type: 'object',
      additionalProperties: false,
      required: ['at', 'identities', 'next_after'],
      properties: {
        at: dateTime,
        identities: { type: 'array', items: { $ref: '#/components/schemas/Identity' } },
        next_after: { type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last page.' },
      },
    },
    IdentityActivity: {
      type: 'object',
      additionalProperties: false,
      required: ['nhi_id', 'from', 'to', 'granularity', 'series'],
      properties: {
        nhi_id: { type: 'string' },
        from: dateTime,
        to: dateTime,
        granularity: { type: 'string', enum: [...ACTIVITY_GRANULARITIES] },
        series: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['activity_type', 'events', 'points'],
            properties: {
              activity_type: { type: 'string' },
              events: count,
              points: {
                type: 'array',
                description: 'Periods with at least one event, in time order.',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['period', 'events', 'errors'],
                  properties: { period: { ...dateTime, description: 'Start of the period (UTC).' }, events: count, errors: { ...count, description: 'Of which status Error.' } },
                },
              },
            },
          },
        },
      },
    },
    DeclaredIdentity: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'type'],
      properties: {
        id: { type: 'string', minLength: 1, maxLength: 256, description: 'nhi.id; visible characters, no leading or trailing spaces.' },
        type: { type: 'string', enum: [...NHI_TYPES] },
        owner: { type: 'string', maxLength: 256, default: '' },
        business_unit: { type: 'string', maxLength: 128, default: '', description: 'A key limited to business units may declare only into its own.' },
        tier: {
          type: 'string',
          pattern: '^[A-Za-z0-9_.+-]{0,128}$',
          default: '',
          description: 'A label, or policy entitlement features joined by + (see the eligibility report).',
        },
        approved_activities: {
          type: 'array',
          maxItems: MAX_APPROVED_ACTIVITIES,
          default: [],
          description: 'Activity types (`tool_invocation`) or `type:name-glob` entries (`tool_invocation:search_*`). Empty: every activity is approved.',
          items: { type: 'string' },
        },
      },
    },
    InventoryUpsertResult: {
      type: 'object',
      additionalProperties: false,
      required: ['received', 'created', 'updated', 'unchanged'],
      properties: { received: count, created: count, updated: count, unchanged: { ...count, description: 'Already declared exactly so; not written again.' } },
    },
  },
  paths: {
    '/v1/identities': {
      get: {
        summary: 'Declared and observed identities with their status',
        description:
          'The inventory joined with observed activity as of `at`. Status: active (activity within detection.dormant_after), dormant (declared, seen, not since), never_seen (declared, no activity), unregistered (activity, not declared). Scope billing:read or findings:read; a key limited to business units sees only identities and events of its units.',
        security: [{ bearer: [] }],
        parameters: [
          textParam('business_unit', 'Only this (effective) business unit.', { minLength: 1 }),
          { name: 'status', in: 'query', required: false, description: `Comma list of ${IDENTITY_STATUSES.join(', ')}; default all.`, schema: { type: 'string', pattern: `^${statusList}(,${statusList})*$` } },
          timeParam('at', 'Time the answer is as of (RFC 3339 UTC); default now.'),
          { name: 'limit', in: 'query', required: false, description: `Page size, default ${IDENTITIES_PAGE.default}.`, schema: { type: 'integer', minimum: 1, maximum: IDENTITIES_PAGE.max } },
          textParam('after', 'Only ids after this one (from next_after).'),
        ],
        responses: {
          '200': { description: 'Identities sorted by id', content: { 'application/json': { schema: { $ref: '#/components/schemas/IdentityList' } } } },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('billing:read or findings:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/identities/{id}/activity': {
      get: {
        summary: 'One identity’s activity per activity type over time',
        description: 'Use events in [from, to) per activity type and period, each span once. Scope billing:read or findings:read.',
        security: [{ bearer: [] }],
        parameters: [
          identityIdParam,
          timeParam('from', 'Start, inclusive (RFC 3339 UTC). Default: start of the current UTC month.'),
          timeParam('to', 'End, exclusive (RFC 3339 UTC). Default: now.'),
          { name: 'granularity', in: 'query', required: false, description: 'Period size, default day; hour only for ranges up to 31 days.', schema: { type: 'string', enum: [...ACTIVITY_GRANULARITIES] } },
        ],
        responses: {
          '200': { description: 'Series per activity type', content: { 'application/json': { schema: { $ref: '#/components/schemas/IdentityActivity' } } } },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('billing:read or findings:read'),
          '404': identityNotFound,
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/inventory': {
      post: {
        summary: 'Declare identities (bulk upsert)',
        description: `Idempotent: identities declared exactly so are left alone. The whole batch is validated first and stored in one write, or not at all. At most ${MAX_INVENTORY_BATCH} identities and ${MAX_INVENTORY_BODY_BYTES} bytes. Scope inventory:write; a key limited to business units may declare only into its units, may not take over an identity declared in another unit, and may not claim an undeclared identity whose spans name another unit (403).`,
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: declarations },
            'application/yaml': { schema: { ...declarations, description: 'The same list in YAML 1.2.' } },
            'text/csv': { schema: { type: 'string', description: 'Header line naming id, type and any of owner, business_unit, tier, approved_activities (entries separated by ;).' } },
          },
        },
        responses: {
          '200': { description: 'Stored', content: { 'application/json': { schema: { $ref: '#/components/schemas/InventoryUpsertResult' } } } },
          '400': errorResponse('invalid body; the message names every offending field, e.g. [3].approved_activities[0]'),
          ...authResponses('inventory:write'),
          '413': errorResponse('body too large'),
          '415': errorResponse('Content-Type not JSON, YAML or CSV'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/inventory/{id}': {
      delete: {
        summary: 'Retire a declaration',
        description: 'The identity is no longer declared; if it keeps acting it shows as unregistered. Scope inventory:write; a key limited to business units may retire only its units’ identities.',
        security: [{ bearer: [] }],
        parameters: [identityIdParam],
        responses: {
          '200': {
            description: 'Retired',
            content: {
              'application/json': {
                schema: { type: 'object', additionalProperties: false, required: ['id', 'deleted'], properties: { id: { type: 'string' }, deleted: { const: true } } },
              },
            },
          },
          '400': errorResponse('bad parameter'),
          ...authResponses('inventory:write'),
          '404': errorResponse('not declared, or declared in a unit this key may not see'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
  },
}
