/**
 * OpenAPI description of GET /v1/telemetry/completeness. AttributeProblem
 * is also the shape of telemetry_gap findings' attribute problems
 * (findings/openapi.ts refers to it).
 */
import { authResponses, closedObject, errorResponse, timeParam, type OpenApiFragment } from '../http/openapi-fragment.js'
import { CHECKED_ATTRIBUTES } from './queries.js'

const time = { type: 'string', format: 'date-time' }
const count = { type: 'integer', minimum: 0 }
const text = { type: 'string' }
const samples = { type: 'array', items: { type: 'string' }, maxItems: 3, description: 'Latest distinct trace ids behind the finding.' }
const ratio = { type: 'number', minimum: 0, maximum: 1 }

/** Telemetry completeness's path and schemas. */
export const telemetryOpenApi: OpenApiFragment = {
  schemas: {
    AttributeProblem: closedObject({ attribute: { type: 'string', enum: [...CHECKED_ATTRIBUTES] }, value: text, spans: count, sample_trace_ids: samples }),
    TelemetryCompleteness: closedObject({
      from: time,
      to: time,
      threshold: { ...ratio, description: 'billing.completeness_threshold, which decides each status.' },
      pending_spans: { ...count, description: 'Use events still waiting for the trace resolution job (their identity may sit on an ancestor span not yet arrived); in no bill yet, decided within NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS.' },
      services: {
        type: 'array',
        items: closedObject({
          service: text,
          spans: { ...count, description: 'Activity spans (each once, however often delivered).' },
          identified_spans: count,
          identified_ratio: ratio,
          status: { type: 'string', enum: ['complete', 'incomplete'] },
          pending_spans: { ...count, description: 'Use events of the service still waiting for the trace resolution job.' },
          unidentified_reasons: {
            type: 'object',
            additionalProperties: count,
            description: 'Unidentified spans by reason: no_identity, placeholder_identity, ancestor_missing, parent_cycle, trace_too_large, mcp_caller_unknown (README, "Agent frameworks").',
          },
          attribute_problems: { type: 'array', items: { $ref: '#/components/schemas/AttributeProblem' } },
        }),
      },
      total: closedObject({ spans: count, identified_spans: count, identified_ratio: ratio, status: { type: 'string', enum: ['complete', 'incomplete'] }, pending_spans: count }),
    }),
  },
  paths: {
    '/v1/telemetry/completeness': {
      get: {
        summary: 'Telemetry completeness per service',
        description:
          'Per service: activity spans, those tied to an identity, the ratio and status (billing.completeness_threshold), and spans whose nhi.type or nhi.activity.type lies outside the vocabulary (at most 20 values per attribute). The totals equal the completeness block of GET /v1/billable for the same range. Scope findings:read; a key limited to business units counts only rows of its units.',
        security: [{ bearer: [] }],
        parameters: [
          timeParam('from', 'Start of the range, inclusive (RFC 3339 UTC). Default: start of the current UTC month.'),
          timeParam('to', 'End of the range, exclusive (RFC 3339 UTC). Default: now.'),
        ],
        responses: {
          '200': { description: 'Completeness per service and in total', content: { 'application/json': { schema: { $ref: '#/components/schemas/TelemetryCompleteness' } } } },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('findings:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
  },
}
