/**
 * OpenAPI description of the billing routes.
 */
import { authResponses, errorResponse, textParam, timeParam, utcTimeInput, type OpenApiFragment } from '../http/openapi-fragment.js'
import { PERIOD_PATTERN } from './statement.js'
import { GRANULARITIES, GROUP_BY_KEYS } from './queries.js'

const groupByKey = `(${GROUP_BY_KEYS.map((k) => k.replace('.', '\\.')).join('|')})`
const period = { type: 'string', pattern: PERIOD_PATTERN, description: 'A month, YYYY-MM (years 1970 to 2200).' } as const
// A quantity: a whole number (events, identities, tokens, milliseconds), or the exact decimal as a string when a sum
// meter adds fractions (or a whole number beyond 2^53 - 1).
const quantity = {
  oneOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\d+(\\.\\d+)?$' },
  ],
} as const
const signedQuantity = { oneOf: [{ type: 'integer' }, { type: 'string', pattern: '^-?\\d+(\\.\\d+)?$' }] } as const

/** Billing's paths and schemas. */
export const billingOpenApi: OpenApiFragment = {
  schemas: {
    Total: {
      type: 'object',
      required: ['quantity', 'amount'],
      properties: { quantity, amount: { type: 'string', pattern: '^\\d+\\.\\d+$' } },
    },
    SignedTotal: {
      type: 'object',
      required: ['quantity', 'amount'],
      properties: { quantity: signedQuantity, amount: { type: 'string', pattern: '^-?\\d+\\.\\d+$' } },
    },
    StatementLine: {
      type: 'object',
      required: ['nhi.id', 'meter', 'quantity', 'amount'],
      properties: { 'nhi.id': { type: 'string' }, meter: { type: 'string' }, quantity: signedQuantity, amount: { type: 'string', pattern: '^-?\\d+\\.\\d+$' } },
    },
    Statement: {
      type: 'object',
      required: ['period', 'from', 'to', 'closed_at', 'currency', 'rate_card_versions', 'completeness', 'lines', 'total', 'adjustments', 'adjustments_total', 'previous', 'content_hash'],
      properties: {
        period: { type: 'string' },
        from: { type: 'string', format: 'date-time' },
        to: { type: 'string', format: 'date-time' },
        closed_at: { type: 'string', format: 'date-time' },
        currency: { type: 'string' },
        rate_card_versions: { type: 'array', items: { type: 'string' } },
        completeness: { $ref: '#/components/schemas/Completeness' },
        lines: { type: 'array', items: { $ref: '#/components/schemas/StatementLine' } },
        total: { $ref: '#/components/schemas/Total' },
        adjustments: { type: 'array', items: { allOf: [{ $ref: '#/components/schemas/StatementLine' }, { type: 'object', required: ['period'], properties: { period: { type: 'string' } } }] } },
        meters: { type: 'array', items: { $ref: '#/components/schemas/MeterTotal' }, description: 'Per-meter figures; present when a meter sums a value or counts identities.' },
        adjustments_total: { $ref: '#/components/schemas/SignedTotal' },
        previous: { oneOf: [{ type: 'null' }, { type: 'object', required: ['period', 'content_hash'], properties: { period: { type: 'string' }, content_hash: { type: 'string' } } }] },
        content_hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      },
    },
        Completeness: {
          type: 'object',
          required: ['spans', 'identified_spans', 'identified_ratio', 'status', 'threshold'],
          properties: {
            spans: { type: 'integer', minimum: 0, description: 'Activity spans in the range (deduplicated).' },
            identified_spans: { type: 'integer', minimum: 0, description: 'Of those, spans tied to an identity.' },
            identified_ratio: { type: 'number', minimum: 0, maximum: 1 },
            status: { type: 'string', enum: ['complete', 'incomplete'] },
            threshold: { type: 'number', minimum: 0, maximum: 1, description: 'Ratio at or above which the evidence counts as complete.' },
            pending_spans: {
              type: 'integer',
              minimum: 0,
              description: 'Use events still waiting for trace resolution (their identity may be on an ancestor span not yet arrived): counted in spans, not identified or billed until decided. Absent from statements closed before it existed.',
            },
          },
        },
        MeterTotal: {
          type: 'object',
          required: ['meter', 'aggregation', 'quantity', 'events', 'amount'],
          properties: {
            meter: { type: 'string' },
            aggregation: { type: 'string', enum: ['count', 'sum', 'active_identities'] },
            value: { type: 'string', description: 'What a sum meter adds: a span attribute or duration_ms.' },
            quantity,
            events: { type: 'integer', minimum: 0, description: 'Matching events.' },
            events_without_value: { type: 'integer', minimum: 0, description: 'Sum meters: matching events that carried no value (they added 0).' },
            amount: { type: 'string', pattern: '^\\d+\\.\\d+$' },
          },
        },
        Billable: {
          type: 'object',
          required: ['from', 'to', 'currency', 'rate_card_versions', 'completeness', 'meters', 'rows', 'total'],
          properties: {
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            currency: { type: 'string' },
            rate_card_versions: { type: 'array', items: { type: 'string' } },
            completeness: { $ref: '#/components/schemas/Completeness' },
            meters: { type: 'array', items: { $ref: '#/components/schemas/MeterTotal' }, description: 'Per meter, in name order: quantity, events, events without a value and amount.' },
            rows: {
              type: 'array',
              items: {
                type: 'object',
                required: ['quantity', 'amount'],
                properties: { quantity, amount: { type: 'string', pattern: '^\\d+\\.\\d+$' } },
                additionalProperties: { type: 'string' },
              },
            },
            total: {
              type: 'object',
              required: ['quantity', 'amount'],
              properties: { quantity, amount: { type: 'string', pattern: '^\\d+\\.\\d+$' } },
            },
          },
        },
  },
  paths: {
    '/v1/statements': {
      get: {
        summary: 'Closed billing periods',
        description: 'Every closed month with its totals and content hash. Scope billing:read; keys limited to business units are refused (statements cover every unit).',
        security: [{ bearer: [] }],
        responses: {
          '200': {
            description: 'Statements, oldest first',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['statements'],
                  properties: {
                    statements: {
                      type: 'array',
                      items: {
                        type: 'object',
                        required: ['period', 'closed_at', 'total', 'adjustments_total', 'completeness_status', 'content_hash'],
                        properties: {
                          period: { type: 'string' },
                          closed_at: { type: 'string', format: 'date-time' },
                          total: { $ref: '#/components/schemas/Total' },
                          adjustments_total: { $ref: '#/components/schemas/SignedTotal' },
                          completeness_status: { type: 'string', enum: ['complete', 'incomplete'] },
                          content_hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
          ...authResponses('billing:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
      post: {
        summary: 'Close a month',
        description:
          'Writes the immutable statement of a month that is over: lines per identity and meter, totals, completeness, and adjustments for spans that arrived after earlier months were closed. Months are closed in order. Scope admin.',
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { type: 'object', required: ['period'], additionalProperties: false, properties: { period } } } },
        },
        responses: {
          '201': { description: 'The statement', content: { 'application/json': { schema: { $ref: '#/components/schemas/Statement' } } } },
          '400': errorResponse('bad body or the month is not over'),
          ...authResponses('admin'),
          '409': errorResponse('already closed (codes already_closed, out_of_order), or another request closed a month at the same moment (conflict: close again)'),
          '413': errorResponse('body too large'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/statements/{period}': {
      get: {
        summary: 'One closed month',
        security: [{ bearer: [] }],
        parameters: [{ name: 'period', in: 'path', required: true, schema: period }],
        responses: {
          '200': { description: 'The statement as closed, with its content hash (verified on read)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Statement' } } } },
          '400': errorResponse('bad period'),
          ...authResponses('billing:read'),
          '404': errorResponse('not closed'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
    '/v1/billable/evidence': {
      get: {
        summary: 'The spans behind a billing row',
        description:
          'Counts the billable spans matching the given row keys, each span once (for a count meter the count equals the row quantity for the same range; for a sum meter it is the events whose values make up the quantity; for an active-identity meter, the events of the identities counted) and returns sample trace ids, oldest first. Scope billing:read; business-unit keys see only their units.',
        security: [{ bearer: [] }],
        parameters: [
          timeParam('from', 'Start of the range, inclusive (RFC 3339 UTC). Default: start of the current UTC month.'),
          timeParam('to', 'End of the range, exclusive (RFC 3339 UTC). Default: now.'),
          ...['nhi.id', 'meter', 'business_unit', 'activity.type', 'activity.name', 'service', 'on_behalf_of'].map((name) => textParam(name, `Only spans whose ${name} is this value.`)),
          { name: 'period', in: 'query', required: false, description: 'Only spans in the period starting here (with granularity).', schema: utcTimeInput },
          { name: 'granularity', in: 'query', required: false, description: 'Period size for period (default day).', schema: { type: 'string', enum: [...GRANULARITIES] } },
          { name: 'limit', in: 'query', required: false, description: 'Most trace ids returned (1-1000, default 20).', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
        ],
        responses: {
          '200': {
            description: 'Matching count and sample trace ids',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['from', 'to', 'filters', 'count', 'sample_trace_ids'],
                  properties: {
                    from: { type: 'string', format: 'date-time' },
                    to: { type: 'string', format: 'date-time' },
                    filters: { type: 'object', additionalProperties: { type: 'string' } },
                    count: { type: 'integer', minimum: 0 },
                    sample_trace_ids: { type: 'array', items: { type: 'string' } },
                  },
                },
              },
            },
          },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('billing:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
      '/v1/billable': {
        get: {
          summary: 'Billable activity over a range',
          description:
            'Counts billable events (spans with a resolved identity that match a meter of the rate card in force at their start), grouped as asked and priced exactly. Each span counts once (TraceId + SpanId). Scope billing:read; a key limited to business units sees only theirs.',
          security: [{ bearer: [] }],
          parameters: [
            timeParam('from', 'Start of the range, inclusive (RFC 3339 UTC). Default: start of the current UTC month.'),
            timeParam('to', 'End of the range, exclusive (RFC 3339 UTC). Default: now.'),
            {
              name: 'group_by',
              in: 'query',
              required: false,
              description: `Comma list of ${GROUP_BY_KEYS.join(', ')}, each at most once. Default nhi.id,meter.`,
              schema: { type: 'string', pattern: `^${groupByKey}(,${groupByKey})*$` },
            },
            { name: 'granularity', in: 'query', required: false, description: 'Period size, with group_by period.', schema: { type: 'string', enum: [...GRANULARITIES] } },
            { name: 'format', in: 'query', required: false, description: 'json (default) or csv; Accept: text/csv also selects CSV.', schema: { type: 'string', enum: ['json', 'csv'] } },
          ],
          responses: {
            '200': {
              description: 'Billable rows, total and completeness',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Billable' } }, 'text/csv': { schema: { type: 'string' } } },
            },
            '400': errorResponse('bad parameter (the message names it)'),
            ...authResponses('billing:read'),
            '503': errorResponse('storage unavailable'),
          },
        },
      },
  },
}
