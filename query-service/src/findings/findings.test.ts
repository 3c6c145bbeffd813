import type { ClickHouseClient } from '@clickhouse/client'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OtelTraceRow } from '../otlp/rows.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage } from '../test-support/storage.js'
import { backfillFindingsDigest } from './digest.js'
import { computeFindings } from './evaluate.js'
import { CONTROLS, FINDING_KINDS, type Finding } from './kinds.js'
import { telemetryOpenApi } from '../telemetry/openapi.js'
import { findingsOpenApi } from './openapi.js'
import { declare, findingsApp, SENSITIVE_POLICY, spread, use } from '../test-support/findings.js'

const POLICY = SENSITIVE_POLICY
const RANGE = 'from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z'
const HISTORY_FROM = '2026-09-20T00:00:00Z'
const END = '2026-11-01T00:00:00Z'

let client: ClickHouseClient
let api: ReturnType<typeof findingsApp>

/** Normal life of an identity: six API calls and one secret rotation a day, its own credential. */
function healthy(id: string, options: { from?: string; to?: string; service?: string; bu?: string; extraTypes?: string[] } = {}): OtelTraceRow[] {
  const from = options.from ?? HISTORY_FROM
  const to = options.to ?? END
  const days = Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000)
  const common = { service: options.service, bu: options.bu, credential: `fp-${id}` }
  return [
    ...spread(id, from, to, days * 6, common),
    ...spread(id, new Date(Date.parse(from) + 3_600_000).toISOString(), to, days, { ...common, type: 'secret_rotation', name: 'rotate' }),
    ...(options.extraTypes ?? []).flatMap((type) => spread(id, new Date(Date.parse(from) + 7_200_000).toISOString(), to, days, { ...common, type, name: `${type}-normal` })),
  ]
}

const at = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString()
/** `n` uses spread evenly over the `minutes` (default 59) from `start`. */
const burstOf = (id: string, start: string, n: number, options: Parameters<typeof use>[2] = {}, minutes = 59) =>
  Array.from({ length: n }, (_, i) => use(id, at(start, (i * minutes) / n), { credential: `fp-${id}`, ...options }))

beforeAll(async () => {
  client = await freshStorage()
  api = findingsApp(client, () => POLICY)
  const declared = [
    'dormant-1',
    'gap-1',
    'bursty-1',
    'growing-1',
    'shifted-1',
    'busy-1',
    'drift-learned',
    'failing-1',
    'sharer-a',
    'stale-1',
    'dark-user',
    'typo-1',
  ]
  await declare(client, [
    ...declared.map((id) => ({ id })),
    { id: 'never-1', updated_at: '2026-09-01T00:00:00.000Z' },
    { id: 'ownerless-1', owner: '' },
    { id: 'sharer-b', business_unit: 'sales' },
    { id: 'drift-declared', approved_activities: ['api_call', 'secret_rotation', 'tool_invocation:search_*'] },
    // Its list does not name secret_rotation: its daily rotations are drift, of lower severity.
    { id: 'rotating-unlisted', approved_activities: ['api_call'] },
    'weekly-job',
    'daily-cron',
    'quiet-stop',
  ].map((d) => (typeof d === 'string' ? { id: d } : d)))
  await insertSpans(client, [
    ...healthy('dormant-1', { to: '2026-10-14T00:00:00Z' }),
    ...healthy('gap-1', { to: '2026-10-16T00:00:00Z', service: 'svc-legacy' }),
    ...healthy('shadow-1'),
    ...healthy('ownerless-1'),
    ...healthy('bursty-1'),
    ...burstOf('bursty-1', '2026-10-15T10:00:00Z', 30),
    // 10 a day, then 40 a day for the last five days: a level shift, no window anywhere near a burst.
    ...spread('growing-1', HISTORY_FROM, '2026-10-27T00:00:00Z', 37 * 10, { credential: 'fp-growing-1' }),
    ...spread('growing-1', '2026-10-27T00:00:00Z', END, 5 * 40, { credential: 'fp-growing-1' }),
    ...spread('growing-1', '2026-09-20T01:00:00Z', END, 42, { credential: 'fp-growing-1', type: 'secret_rotation', name: 'rotate' }),
    // One an hour, then 25 an hour for the last five days: every hour of the shift clears the burst
    // threshold, but the shift persists, so it is growth and not a burst.
    ...spread('shifted-1', HISTORY_FROM, '2026-10-27T00:00:00Z', 37 * 24, { credential: 'fp-shifted-1' }),
    ...spread('shifted-1', '2026-10-27T00:00:00Z', END, 5 * 24 * 25, { credential: 'fp-shifted-1' }),
    ...spread('shifted-1', '2026-09-20T00:30:00Z', END, 42, { credential: 'fp-shifted-1', type: 'secret_rotation', name: 'rotate' }),
    ...healthy('busy-1'),
    ...burstOf('busy-1', '2026-10-12T09:00:00Z', 60),
    ...healthy('drift-declared'),
    ...spread('drift-declared', '2026-10-02T00:00:00Z', END, 10, { type: 'tool_invocation', name: 'search_web', credential: 'fp-drift-declared' }),
    ...burstOf('drift-declared', '2026-10-20T09:00:00Z', 3, { type: 'tool_invocation', name: 'delete_repo' }),
    ...healthy('drift-learned'),
    ...burstOf('drift-learned', '2026-10-18T14:00:00Z', 4, { type: 'workflow_execution', name: 'export-all' }),
    ...healthy('failing-1', { extraTypes: ['token_exchange'] }),
    ...burstOf('failing-1', '2026-10-16T03:00:00Z', 8, { type: 'token_exchange', name: 'token_exchange-normal', status: 'Error' }),
    ...healthy('sharer-a'),
    ...burstOf('sharer-a', '2026-10-05T00:00:00Z', 2, { credential: 'fp-shared' }),
    ...healthy('sharer-b', { bu: 'sales' }),
    ...burstOf('sharer-b', '2026-10-06T00:00:00Z', 2, { credential: 'fp-shared', bu: 'sales' }),
    ...spread('stale-1', HISTORY_FROM, END, 42 * 6, { credential: 'fp-stale-1' }),
    ...healthy('dark-user', { service: 'svc-dark' }),
    ...Array.from({ length: 60 }, (_, i) => spanRow({ start: at('2026-10-10T00:00:00Z', i * 97), kind: 'Server', service: 'svc-dark' })),
    // A service whose instrumentation writes an activity type that is not a lowercase word, from the start.
    ...healthy('typo-1', { service: 'svc-typo' }),
    ...spread('typo-1', HISTORY_FROM, END, 42, { service: 'svc-typo', type: 'Tool Call', name: 'x', credential: 'fp-typo-1' }),
    ...burstOf('typo-1', '2026-10-31T23:00:00Z', 3, { service: 'svc-typo', attributes: { 'nhi.type': 'Robot' } }),
    ...healthy('rotating-unlisted'),
    // Near misses that must stay quiet: a quiet identity's weekly job (Mondays, 45 calls in half an hour; the policy's overactive limit is 50) and daily cron (40 calls in five minutes).
    ...healthy('weekly-job'),
    ...Array.from({ length: 6 }, (_, week) => burstOf('weekly-job', at('2026-09-21T02:00:00Z', week * 7 * 1440), 45, {}, 30)).flat(),
    ...healthy('daily-cron'),
    ...Array.from({ length: 42 }, (_, day) => burstOf('daily-cron', at('2026-09-20T03:00:00Z', day * 1440), 40, {}, 4)).flat(),
    // Six calls a day, then none for the last eight and a half days: far longer than any silence it had before.
    ...healthy('quiet-stop', { to: '2026-10-23T12:00:00Z' }),
  ])
})

afterAll(async () => {
  await client?.close()
})

const pairs = (findings: Finding[]) => findings.map((f) => `${f.kind} ${f.nhi_id ?? `(${String(f.evidence.service)})`}`).sort()
const only = (findings: Finding[], kind: string, id: string | null) => {
  const matching = findings.filter((f) => f.kind === kind && f.nhi_id === id)
  expect(matching, `${kind} ${id}`).toHaveLength(1)
  return matching[0] as Finding
}

describe('GET /v1/findings with injected cases', () => {
  let all: Finding[]
  beforeAll(async () => {
    all = await api.findings(RANGE)
  })

  it('finds every injected case, and nothing else', () => {
    expect(pairs(all)).toEqual(
      [
        'auth_failures failing-1',
        'burst busy-1',
        'burst bursty-1',
        'credential_reuse sharer-a',
        'credential_reuse sharer-b',
        'dormant dormant-1',
        'dormant never-1',
        'dormant quiet-stop',
        'orphaned ownerless-1',
        'overactive busy-1',
        'privilege_drift drift-declared',
        'privilege_drift drift-learned',
        'privilege_drift rotating-unlisted',
        'stale_credential stale-1',
        'sustained_growth growing-1',
        'sustained_growth shifted-1',
        'telemetry_gap (svc-dark)',
        'telemetry_gap (svc-legacy)',
        'telemetry_gap (svc-typo)',
        'unregistered shadow-1',
      ].sort(),
    )
  })

  it('gives every finding a severity, a window inside the range, a sentence, evidence and its controls', () => {
    for (const f of all) {
      expect(['high', 'medium', 'low']).toContain(f.severity)
      expect(f.window.from < f.window.to, `${f.kind} ${f.nhi_id}`).toBe(true)
      expect(f.window.to <= '2026-11-01T00:00:00.000Z').toBe(true)
      expect(f.summary).toMatch(/^\S.*[^.]$/)
      expect(f.controls).toEqual(CONTROLS[f.kind])
      expect(f.evidence).toBeTypeOf('object')
    }
  })

  it('finds the same findings when asked for no sample traces (the metrics job), and reads none but those of the reads that decide', async () => {
    const request = { from: new Date('2026-10-01T00:00:00Z'), to: new Date(END), detection: POLICY.detection, scope: null, includeServices: true, kinds: new Set(FINDING_KINDS) }
    const samplesOf = (f: Finding) => (f.evidence.sample_trace_ids as string[] | undefined) ?? []
    const full = await computeFindings(client, request)
    const bare = await computeFindings(client, { ...request, samples: false })
    expect(bare.map((f) => [f.kind, f.nhi_id, f.severity])).toEqual(full.map((f) => [f.kind, f.nhi_id, f.severity]))
    // Credential reuse and telemetry gaps find their samples in the reads that decide them: those stay.
    const sampledBy = (findings: Finding[], kinds: string[]) => findings.filter((f) => samplesOf(f).length > 0 && kinds.includes(f.kind)).length
    expect(sampledBy(bare, FINDING_KINDS.filter((k) => k !== 'credential_reuse' && k !== 'telemetry_gap'))).toBe(0)
    expect(sampledBy(full, FINDING_KINDS.filter((k) => k !== 'credential_reuse' && k !== 'telemetry_gap'))).toBeGreaterThan(5)
  })

  it('lists findings by severity, then kind, then identity', () => {
    const order = all.map((f) => [['high', 'medium', 'low'].indexOf(f.severity), FINDING_KINDS.indexOf(f.kind), f.nhi_id ?? '\uffff'] as const)
    const sorted = [...order].sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0))
    expect(order).toEqual(sorted)
  })

  it('reports a burst that returned to normal with its baseline and sample traces', () => {
    const burst = only(all, 'burst', 'bursty-1')
    expect(burst.window).toEqual({ from: '2026-10-15T10:00:00.000Z', to: '2026-10-15T11:00:00.000Z' })
    expect(burst.evidence).toMatchObject({ activity_type: 'api_call', window_length: '1h', window_from: '2026-10-15T10:00:00.000Z', observed: 30, events: 30, factor: 3, ongoing: false })
    // A quiet identity (six calls a day): what its history expects of that hour is well under one call.
    expect(burst.evidence.expected).toBeLessThan(1)
    expect(burst.evidence.tail_probability).toBeLessThanOrEqual(burst.evidence.test_level as number)
    expect(burst.summary).toMatch(/^bursty-1 ran 30 api_call events in the 1h from 2026-10-15T10:00:00.000Z, where 0\.\d+ were expected/)
    expect((burst.evidence.sample_trace_ids as string[]).length).toBe(3)
  })

  it('tells a persisting level shift (growth) from a burst, even when every hour of the shift is far above the old normal', () => {
    expect(all.filter((f) => f.nhi_id === 'shifted-1').map((f) => f.kind)).toEqual(['sustained_growth'])
    const growth = only(all, 'sustained_growth', 'growing-1')
    expect(growth.window).toEqual({ from: '2026-10-27T00:00:00.000Z', to: '2026-11-01T00:00:00.000Z' })
    expect(growth.evidence).toMatchObject({ activity_type: 'api_call', period: '1d', baseline: { median: 10, mad: 0 }, growth_factor: 4 })
    expect((growth.evidence.recent as Array<{ events: number }>).map((r) => r.events)).toEqual([40, 40, 40, 40, 40])
  })

  it('reports overactivity and failed token exchanges per policy window', () => {
    expect(only(all, 'overactive', 'busy-1')).toMatchObject({ window: { from: '2026-10-12T09:00:00.000Z', to: '2026-10-12T10:00:00.000Z' }, evidence: { peak_window_events: 60, max_events: 50 } })
    expect(only(all, 'auth_failures', 'failing-1').evidence).toMatchObject({ peak_window_failures: 8, min_count: 5, windows_over: 1 })
  })

  it('stays quiet about a weekly job and a daily cron: the same window last week, or on most days, is what is expected', () => {
    expect(all.filter((f) => f.nhi_id === 'weekly-job' || f.nhi_id === 'daily-cron')).toEqual([])
  })

  it('calls an identity dormant early when its silence is far longer than any it had before', () => {
    expect(only(all, 'dormant', 'quiet-stop').evidence).toMatchObject({ inactive_days: 8.6, dormant_after: '10d', last_service: 'svc-main' })
    expect(only(all, 'dormant', 'quiet-stop').evidence.longest_earlier_silence_days).toBeLessThan(1)
  })

  it('tells dormancy from a service that stopped reporting', () => {
    expect(only(all, 'dormant', 'dormant-1').evidence).toMatchObject({ last_service: 'svc-main', dormant_after: '10d', declared: true })
    // gap-1 fell silent together with the only service it reported through: not dormant, a telemetry gap.
    expect(all.some((f) => f.nhi_id === 'gap-1')).toBe(false)
    const legacy = all.find((f) => f.kind === 'telemetry_gap' && f.evidence.service === 'svc-legacy')
    expect(legacy?.evidence.identities_without_evidence).toEqual(['gap-1'])
  })

  it('names the drifted activities: outside approved_activities, or new since the baseline stretch', () => {
    expect(only(all, 'privilege_drift', 'drift-declared')).toMatchObject({
      severity: 'high',
      evidence: { reason: 'unapproved', activities: [{ activity_type: 'tool_invocation', activity_name: 'delete_repo', events: 3 }], activities_total: 1 },
    })
    expect(only(all, 'privilege_drift', 'rotating-unlisted')).toMatchObject({
      severity: 'medium',
      evidence: { reason: 'unapproved', activities: [{ activity_type: 'secret_rotation', activity_name: 'rotate' }], activities_total: 1, approved_activities: ['api_call'] },
    })
    expect(only(all, 'privilege_drift', 'drift-learned')).toMatchObject({
      severity: 'medium',
      evidence: { reason: 'new_activity', activities: [{ activity_type: 'workflow_execution', activity_name: 'export-all', events: 4, first_seen: '2026-10-18T14:00:00.000Z' }] },
    })
  })

  it('reports each identity sharing a credential, and stale and ownerless identities', () => {
    expect(only(all, 'credential_reuse', 'sharer-a').evidence).toMatchObject({ credential_id: 'fp-shared', identities: 2, shared_with: ['sharer-b'], events: 2 })
    expect(only(all, 'stale_credential', 'stale-1').evidence).toMatchObject({ last_rotation: null, first_seen: '2026-09-20T00:00:00.000Z', age_days: 42, rotation_max_age: '20d' })
    expect(only(all, 'stale_credential', 'stale-1').severity).toBe('high')
    expect(only(all, 'orphaned', 'ownerless-1')).toMatchObject({ severity: 'high', evidence: { declared: true } })
    expect(only(all, 'unregistered', 'shadow-1').evidence).toMatchObject({ activity_types: ['api_call', 'secret_rotation'], last_seen: expect.stringMatching(/^2026-10-31T/) })
  })

  it('describes telemetry gaps per service: unidentified spans, values outside the vocabulary, silence', () => {
    const byService = (service: string) => all.find((f) => f.kind === 'telemetry_gap' && f.evidence.service === service) as Finding
    expect(byService('svc-dark')).toMatchObject({ nhi_id: null, severity: 'medium', evidence: { problems: ['unidentified_spans'], spans: 277, identified_spans: 217 } })
    expect((byService('svc-dark').evidence.sample_trace_ids as string[]).length).toBeGreaterThan(0)
    expect(byService('svc-typo')).toMatchObject({ severity: 'low', evidence: { problems: ['vocabulary'] } })
    expect(byService('svc-typo').evidence.attribute_problems).toEqual([
      { attribute: 'nhi.activity.type', value: 'Tool Call', spans: 31, sample_trace_ids: expect.any(Array) },
      { attribute: 'nhi.type', value: 'Robot', spans: 3, sample_trace_ids: expect.any(Array) },
    ])
    expect(byService('svc-legacy')).toMatchObject({
      severity: 'high',
      window: { to: '2026-11-01T00:00:00.000Z' },
      evidence: { problems: ['stopped_reporting'], identities_without_evidence: ['gap-1'] },
    })
  })

  it('gives the same findings for the same data and the same `to`', async () => {
    expect(await api.findings(RANGE)).toEqual(all)
  })

  it('filters by kind', async () => {
    expect(pairs(await api.findings(`${RANGE}&kind=dormant,unregistered`))).toEqual(['dormant dormant-1', 'dormant never-1', 'dormant quiet-stop', 'unregistered shadow-1'])
  })
})

describe('responses', () => {
  // The fragments' schemas (telemetry_gap evidence refers to telemetry's AttributeProblem), compiled as OpenAPI 3.1 (JSON Schema 2020-12) reads them.
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false })
  ajv.addSchema({ $id: 'nhi-meter', components: { schemas: { ...findingsOpenApi.schemas, ...telemetryOpenApi.schemas } } })
  const conforms = (schema: string, body: unknown) => {
    const validate = ajv.compile({ $ref: `nhi-meter#/components/schemas/${schema}` })
    expect(validate(body), JSON.stringify(validate.errors?.slice(0, 3))).toBe(true)
  }

  it('match the OpenAPI schemas, evidence of every kind included', async () => {
    const body = (await (await api.get(`/v1/findings?${RANGE}`)).json()) as { findings: Finding[] }
    expect(new Set(body.findings.map((f) => f.kind))).toEqual(new Set(FINDING_KINDS))
    conforms('Findings', body)
    conforms('TelemetryCompleteness', await (await api.get(`/v1/telemetry/completeness?${RANGE}`)).json())
  })

  it('would not match with evidence of another kind', async () => {
    const [dormant] = await api.findings(`${RANGE}&kind=dormant`)
    const validate = ajv.compile({ $ref: 'nhi-meter#/components/schemas/Finding' })
    expect(validate(dormant)).toBe(true)
    expect(validate({ ...dormant, kind: 'burst' })).toBe(false)
  })
})

describe('who sees what', () => {
  it('shows a business-unit key only findings about identities in its units, computed from their rows, and no service-level findings', async () => {
    const ops = await api.findings(RANGE, 'ops')
    expect(ops.some((f) => f.kind === 'telemetry_gap')).toBe(false)
    expect(ops.some((f) => f.nhi_id === 'sharer-b')).toBe(false)
    // sharer-b is in sales: the ops key learns that the credential is shared, not with whom.
    expect(only(ops, 'credential_reuse', 'sharer-a').evidence).toMatchObject({ identities: 2, shared_with: [] })
    const admin = await api.findings(RANGE)
    expect(pairs(ops)).toEqual(pairs(admin.filter((f) => f.kind !== 'telemetry_gap' && f.nhi_id !== 'sharer-b')))
  })

  it('narrows any key to the business units asked for; service-level findings need an unnarrowed request', async () => {
    expect(pairs(await api.findings(`${RANGE}&business_unit=sales`))).toEqual(['credential_reuse sharer-b'])
    expect(await api.findings(`${RANGE}&business_unit=sales`, 'ops')).toEqual([])
    expect((await api.findings(RANGE, 'analyst')).some((f) => f.kind === 'telemetry_gap')).toBe(true)
  })

  it('refuses keys without findings:read, and requests without a key', async () => {
    expect((await api.get(`/v1/findings?${RANGE}`, 'billing')).status).toBe(403)
    expect((await api.get(`/v1/telemetry/completeness?${RANGE}`, 'billing')).status).toBe(403)
    expect((await api.app.request(`/v1/findings?${RANGE}`)).status).toBe(401)
  })
})

describe('the findings digest', () => {
  it('reads the partial hours at both ends of a range from the ledger, so times are exact', async () => {
    const seen = await api.findings('from=2026-10-10T08:30:00Z&to=2026-10-10T12:00:00.001Z&kind=unregistered')
    expect(seen.map((f) => [f.nhi_id, f.evidence.first_seen, f.evidence.last_seen])).toEqual([['shadow-1', '2026-10-10T12:00:00.000Z', '2026-10-10T12:00:00.000Z']])
    // The 08:00 event is before `from`, the 12:00 one not before `to`: not active in this range.
    expect(await api.findings('from=2026-10-10T08:30:00Z&to=2026-10-10T12:00:00Z&kind=unregistered')).toEqual([])
  })

  it('is rebuilt from the ledger once by the backfill, with the same findings', async () => {
    const before = await api.findings(RANGE)
    await client.command({ query: 'TRUNCATE TABLE nhi_identity_hours' })
    await client.command({ query: 'TRUNCATE TABLE nhi_identity_days' })
    expect((await api.findings(RANGE)).some((f) => f.kind === 'unregistered')).toBe(false)
    expect(await backfillFindingsDigest(client, { before: new Date(Date.now() + 60_000) })).toBeGreaterThan(0)
    expect(await api.findings(RANGE)).toEqual(before)
    expect(await backfillFindingsDigest(client)).toBeNull()
  })
})

describe('parameters', () => {
  it.each([
    ['kind=colour', 'kind'],
    ['kind=dormant,dormant', 'kind'],
    ['from=yesterday', 'from'],
    ['from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z', 'from'],
    ['to=2026-13-01T00:00:00Z', 'to'],
    ['business_unit=', 'business_unit'],
    ['business_unit=ops,,sales', 'business_unit'],
    ['severity=high', 'severity'],
  ])('answers 400 naming the parameter for %s', async (query, parameter) => {
    const response = await api.get(`/v1/findings?${query}`)
    expect(response.status).toBe(400)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('invalid_parameter')
    expect(body.error.message.startsWith(`${parameter}:`)).toBe(true)
  })

  it('looks back 30 days from `to` by default', async () => {
    const body = (await (await api.get('/v1/findings?to=2026-11-01T00:00:00Z&kind=dormant')).json()) as { from: string; to: string }
    expect(body).toMatchObject({ from: '2026-10-02T00:00:00.000Z', to: '2026-11-01T00:00:00.000Z' })
  })
})

describe('GET /v1/telemetry/completeness', () => {
  type Completeness = {
    threshold: number
    pending_spans: number
    services: Array<{ service: string; spans: number; identified_spans: number; identified_ratio: number; status: string; attribute_problems: unknown[] }>
    total: { spans: number; identified_spans: number; identified_ratio: number; status: string }
  }
  const completeness = async (key = 'admin') => (await (await api.get(`/v1/telemetry/completeness?${RANGE}`, key)).json()) as Completeness

  it('states spans, identified spans, ratio and attribute problems per service, and their total', async () => {
    const body = await completeness()
    const dark = body.services.find((s) => s.service === 'svc-dark')
    expect(dark).toEqual({
      service: 'svc-dark',
      spans: 277,
      identified_spans: 217,
      identified_ratio: 0.783393,
      status: 'incomplete',
      pending_spans: 0,
      unidentified_reasons: { no_identity: 60 },
      attribute_problems: [],
    })
    expect(body.pending_spans).toBe(0)
    const typo = body.services.find((s) => s.service === 'svc-typo')
    expect(typo).toMatchObject({ spans: 251, identified_spans: 251, status: 'complete', attribute_problems: [{ attribute: 'nhi.activity.type', value: 'Tool Call', spans: 31 }, { attribute: 'nhi.type', value: 'Robot', spans: 3 }] })
    expect(body.total.spans).toBe(body.services.reduce((sum, s) => sum + s.spans, 0))
    expect(body.total.identified_spans).toBe(body.total.spans - 60)
    expect(body.threshold).toBe(0.99)
  })

  it('agrees with the completeness block of GET /v1/billable for the same range', async () => {
    const billable = (await (await api.get(`/v1/billable?${RANGE}`)).json()) as { completeness: { spans: number; identified_spans: number } }
    const body = await completeness()
    expect({ spans: body.total.spans, identified_spans: body.total.identified_spans }).toEqual({ spans: billable.completeness.spans, identified_spans: billable.completeness.identified_spans })
  })

  it('counts only the rows of its units for a business-unit key', async () => {
    const body = await completeness('ops')
    expect(body.services.find((s) => s.service === 'svc-dark')).toMatchObject({ spans: 217, identified_spans: 217 })
    expect(body.total.identified_spans).toBe(body.total.spans)
  })
})

describe('findings resolve by themselves', () => {
  const kindsOf = async (id: string) => (await api.findings(RANGE)).filter((f) => f.nhi_id === id).map((f) => f.kind)

  it('when the identity is declared, given an owner, or its activity approved', async () => {
    await declare(client, [
      { id: 'shadow-1', updated_at: '2026-09-02T00:00:00.000Z' },
      { id: 'ownerless-1', owner: 'team-b', updated_at: '2026-09-02T00:00:00.000Z' },
      { id: 'drift-declared', approved_activities: ['api_call', 'secret_rotation', 'tool_invocation:search_*', 'tool_invocation:delete_*'], updated_at: '2026-09-02T00:00:00.000Z' },
    ])
    expect(await kindsOf('shadow-1')).toEqual([])
    expect(await kindsOf('ownerless-1')).toEqual([])
    expect(await kindsOf('drift-declared')).toEqual([])
  })

  it('when the secret is rotated, or a dormant identity acts again', async () => {
    await insertSpans(client, [use('stale-1', '2026-10-30T12:00:00Z', { type: 'secret_rotation', name: 'rotate', credential: 'fp-stale-1' }), use('dormant-1', '2026-10-31T12:00:00Z', { credential: 'fp-dormant-1' })])
    expect(await kindsOf('stale-1')).toEqual([])
    expect(await kindsOf('dormant-1')).toEqual([])
  })

  it('when the range moves past a burst', async () => {
    expect((await api.findings('from=2026-10-16T00:00:00Z&to=2026-11-01T00:00:00Z&kind=burst')).map((f) => f.nhi_id)).toEqual([])
  })
})
