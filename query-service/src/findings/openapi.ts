/**
 * OpenAPI description of GET /v1/findings. A test validates real responses
 * against these schemas; telemetry_gap evidence refers to the
 * AttributeProblem schema of telemetry/openapi.ts.
 */
import { authResponses, closedObject, errorResponse, textParam, timeParam, type OpenApiFragment } from '../http/openapi-fragment.js'
import { FINDING_KINDS, SEVERITIES, type FindingKind } from './kinds.js'

const time = { type: 'string', format: 'date-time' }
const nullableTime = { type: ['string', 'null'], format: 'date-time' }
const count = { type: 'integer', minimum: 0 }
const text = { type: 'string' }
const texts = { type: 'array', items: { type: 'string' } }
const samples = { type: 'array', items: { type: 'string' }, maxItems: 3, description: 'Latest distinct trace ids behind the finding.' }
const ratio = { type: 'number', minimum: 0, maximum: 1 }
const duration = { type: 'string', description: 'A policy duration as written, e.g. 30d.' }
const kindList = `(${FINDING_KINDS.join('|')})`

/** Evidence of each kind, exactly as the API returns it. */
const evidence: Record<FindingKind, Record<string, unknown>> = {
  dormant: closedObject({
    declared: { type: 'boolean' },
    last_seen: { ...nullableTime, description: 'Last activity before `to`; null for a declared identity never seen.' },
    inactive_days: { type: ['number', 'null'], minimum: 0 },
    dormant_after: duration,
    last_service: { type: ['string', 'null'], description: 'Service of the last activity; it kept reporting after the identity fell silent.' },
    longest_earlier_silence_days: { type: ['number', 'null'], description: 'Dormant early (before dormant_after): its longest silence in the look-back.' },
    declaration_updated: nullableTime,
  }),
  unregistered: closedObject({
    active_days: { ...count, description: 'UTC days of the range with activity.' },
    first_seen: time,
    last_seen: time,
    activity_types: texts,
    sample_trace_ids: samples,
  }),
  orphaned: closedObject({
    declared: { type: 'boolean' },
    active_days: count,
    first_seen: nullableTime,
    last_seen: nullableTime,
    activity_types: texts,
    sample_trace_ids: samples,
  }),
  burst: closedObject({
    activity_type: text,
    window_length: { ...duration, description: 'Length of the most improbable window that fired (one of burst_windows).' },
    window_from: { ...time, description: 'Start of that window.' },
    observed: { ...count, description: 'Events in that window (each span once).' },
    expected: { type: 'number', description: "Events the identity's own history expected in that window." },
    tail_probability: { type: 'number', description: 'Chance of at least `observed` events at `factor` × `expected` (Poisson); 0 when below the smallest double.' },
    log10_tail_probability: { type: 'number' },
    test_level: { type: 'number', description: 'The tail probability a window had to reach: burst_false_alarms shared over the windows tested in 30 days.' },
    factor: { type: 'number', description: 'burst_factor.' },
    events: { ...count, description: 'Events in the whole episode (the finding window).' },
    windows_fired: { ...count, description: 'Windows of all lengths that fired in the episode.' },
    ongoing: { type: 'boolean', description: 'The range ended before activity returned to normal.' },
    sample_trace_ids: samples,
  }),
  sustained_growth: closedObject({
    activity_type: text,
    period: duration,
    recent: { type: 'array', items: closedObject({ from: time, events: count }) },
    baseline: closedObject({ median: { type: 'number' }, mad: { type: 'number' }, periods: count, weekly_adjusted: { type: 'boolean', description: 'Periods were divided by their weekday shape before comparing.' } }),
    growth_factor: { type: 'number' },
    sample_trace_ids: samples,
  }),
  overactive: closedObject({
    peak_window_events: count,
    windows_over: count,
    events: count,
    max_events: count,
    overactive_window: duration,
    sample_trace_ids: samples,
  }),
  privilege_drift: closedObject({
    reason: { type: 'string', enum: ['unapproved', 'new_activity'] },
    activities: { type: 'array', maxItems: 20, items: closedObject({ activity_type: text, activity_name: text, events: count, first_seen: time }) },
    activities_total: count,
    approved_activities: texts,
    sample_trace_ids: samples,
  }),
  auth_failures: closedObject({
    peak_window_failures: count,
    windows_over: count,
    failures: count,
    min_count: count,
    auth_failures_window: duration,
    sample_trace_ids: samples,
  }),
  credential_reuse: closedObject({
    credential_id: text,
    identities: { ...count, description: 'Identities that used the credential in the window, in every business unit.' },
    shared_with: { ...texts, description: 'The other identities, as far as the key may see them.' },
    events: count,
    first_use: time,
    last_use: time,
    max_identities: count,
    sample_trace_ids: samples,
  }),
  stale_credential: closedObject({
    last_rotation: nullableTime,
    first_seen: time,
    age_days: { type: 'number', minimum: 0 },
    rotation_max_age: duration,
    credential_ids: texts,
  }),
  telemetry_gap: closedObject({
    service: text,
    problems: { type: 'array', minItems: 1, items: { type: 'string', enum: ['unidentified_spans', 'vocabulary', 'stopped_reporting'] } },
    spans: count,
    identified_spans: count,
    identified_ratio: ratio,
    min_ratio: ratio,
    attribute_problems: { type: 'array', items: { $ref: '#/components/schemas/AttributeProblem' } },
    last_span: nullableTime,
    silent_for_seconds: { type: ['integer', 'null'], minimum: 0 },
    longest_earlier_silence_seconds: { type: ['integer', 'null'], minimum: 0 },
    silence: duration,
    identities_without_evidence: { ...texts, description: 'Identities whose silence coincides with the service\'s and is therefore not called dormant.' },
    sample_trace_ids: samples,
  }),
}

/** Findings' paths and schemas. */
export const findingsOpenApi: OpenApiFragment = {
  schemas: {
    Finding: {
      type: 'object',
      required: ['kind', 'nhi_id', 'severity', 'window', 'summary', 'evidence', 'controls'],
      properties: {
        kind: { type: 'string', enum: [...FINDING_KINDS] },
        nhi_id: { type: ['string', 'null'], description: 'The identity; null for a service-level finding (telemetry_gap).' },
        severity: { type: 'string', enum: [...SEVERITIES] },
        window: closedObject({ from: time, to: time }, 'When the condition held, [from, to).'),
        summary: { type: 'string', description: 'One sentence.' },
        evidence: { type: 'object' },
        controls: { type: 'array', items: { type: 'string', pattern: '^(OWASP-NHI[0-9]+|NIST-CSF-[A-Z]{2}\\.[A-Z]{2}-[0-9]{2})$' }, description: 'OWASP Non-Human Identities Top 10 (2025) and NIST CSF 2.0 items (FINDINGS.md).' },
      },
      oneOf: FINDING_KINDS.map((kind) => ({ properties: { kind: { const: kind }, evidence: evidence[kind] } })),
    },
    Findings: closedObject({ from: time, to: time, findings: { type: 'array', items: { $ref: '#/components/schemas/Finding' } } }),
  },
  paths: {
    '/v1/findings': {
      get: {
        summary: 'Security findings about identities and telemetry in a range',
        description:
          'Findings of the range [from, to) as of `to` (query-service/src/findings/FINDINGS.md): every kind, its rule, thresholds from the policy\'s detection section, severity, evidence and controls. The same data and the same `to` give the same findings, in the same order (severity, kind, identity, window). A finding disappears when its condition ends. Scope findings:read. A key limited to business units sees findings about its identities only, computed from their rows, and no telemetry_gap findings; so does a request with business_unit.',
        security: [{ bearer: [] }],
        parameters: [
          timeParam('from', 'Start of the range, inclusive (RFC 3339 UTC). Default: 30 days before `to`.'),
          timeParam('to', 'End of the range, exclusive, and the instant findings are judged at (RFC 3339 UTC). Default: now.'),
          textParam('kind', `Comma list of ${FINDING_KINDS.join(', ')}, each at most once. Default: all.`, { pattern: `^${kindList}(,${kindList})*$` }),
          textParam('business_unit', 'Comma list of at most 100 business units (effective: the inventory\'s for declared identities); only findings about their identities. Narrows a limited key further.', { pattern: '^[^,]+(,[^,]+)*$' }),
        ],
        responses: {
          '200': { description: 'Findings, sorted', content: { 'application/json': { schema: { $ref: '#/components/schemas/Findings' } } } },
          '400': errorResponse('bad parameter (the message names it)'),
          ...authResponses('findings:read'),
          '503': errorResponse('storage unavailable'),
        },
      },
    },
  },
}
