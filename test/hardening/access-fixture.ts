/**
 * The data and keys the access tests run against: two business units (A and
 * B), each with identities seen in spans, declared in the inventory, or
 * both, plus the cases where the two disagree (an identity whose spans say A
 * but whose declaration says B belongs to B). Every string that belongs to
 * unit B only is a marker: none may appear in an answer to a unit-A key.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { exported, makeSpans, sendSpans, SpanKind } from '../helpers/otel.js'
import { REPO_ROOT } from '../helpers/service.js'

/** Key text of each named key. */
export const KEYS = {
  admin: 'nhim_access_admin_Qm9hcmQtYWRtaW4tMDEyMzQ1Njc4',
  unitA: 'nhim_access_unit_a_YS1vbmx5LWFuYWx5c3RzLTAxMjM0',
  unitB: 'nhim_access_unit_b_Yi1vbmx5LWFuYWx5c3RzLTAxMjM0',
  billingOnly: 'nhim_access_billing_YmlsbGluZy1vbmx5LTAxMjM0NTY3',
  findingsOnly: 'nhim_access_findings_ZmluZGluZ3Mtb25seS0wMTIzNDU2',
  inventoryOnly: 'nhim_access_inventory_aW52ZW50b3J5LW9ubHktMDEyMzQ1',
  ingestOnly: 'nhim_access_ingest_aW5nZXN0LW9ubHktMDEyMzQ1Njc4OQ',
} as const

/** The keys file the service is started with (its hashes only). */
export function writeKeysFile(): string {
  const hash = (key: string) => createHash('sha256').update(key).digest('hex')
  const entries = [
    { name: 'admin', sha256: hash(KEYS.admin), scopes: ['admin'] },
    { name: 'unit-a analysts', sha256: hash(KEYS.unitA), scopes: ['billing:read', 'findings:read', 'inventory:write'], business_units: ['unit-a'] },
    { name: 'unit-b analysts', sha256: hash(KEYS.unitB), scopes: ['billing:read', 'findings:read', 'inventory:write'], business_units: ['unit-b'] },
    { name: 'billing only', sha256: hash(KEYS.billingOnly), scopes: ['billing:read'] },
    { name: 'findings only', sha256: hash(KEYS.findingsOnly), scopes: ['findings:read'] },
    { name: 'inventory only', sha256: hash(KEYS.inventoryOnly), scopes: ['inventory:write'] },
    { name: 'ingest only', sha256: hash(KEYS.ingestOnly), scopes: ['ingest:write'] },
  ]
  const path = join(mkdtempSync(join(tmpdir(), 'nhi-access-keys-')), 'keys.json')
  writeFileSync(path, JSON.stringify(entries))
  return path
}

/** The shipped policy with its rate card in force since January, so last month's spans are billable too. */
export function writePolicyFile(): string {
  const shipped = readFileSync(join(REPO_ROOT, 'query-service/policy/default-policy.yaml'), 'utf8')
  const policy = shipped.replace('effective_from: "2026-11-01T00:00:00Z"', 'effective_from: "2000-01-01T00:00:00Z"')
  if (policy === shipped) throw new Error('default-policy.yaml changed: update writePolicyFile')
  const path = join(mkdtempSync(join(tmpdir(), 'nhi-access-policy-')), 'policy.yaml')
  writeFileSync(path, policy)
  return path
}

/** Identities of unit B, by how they come to belong to it. */
export const B_IDS = {
  /** Seen in spans that say unit-b; not declared. */
  observed: 'agent-b1',
  /** Seen in spans that say unit-a, declared in unit-b: the declaration wins, so it is B's. */
  moved: 'moved-to-b',
  /** Declared in unit-b, never seen. */
  declaredOnly: 'declared-b-only',
  /** Seen with an nhi.type outside the vocabulary (a telemetry attribute problem). */
  oddType: 'weird-b3',
} as const

/** Identities of unit A. */
export const A_IDS = { observed: 'agent-a1', declaredOnly: 'declared-a-only' } as const

/**
 * An undeclared identity whose spans name both units: two tool calls in
 * unit-a (A's rows), three secret rotations in unit-b (B's rows).
 */
export const SPLIT_ID = 'split-ab'

/** A credential both agent-a1 and agent-b1 use (a credential_reuse finding, for the admin). */
export const SHARED_CREDENTIAL = 'cred-shared-ab'

/** Unit B's other distinctive strings. */
export const B_STRINGS = { unit: 'unit-b', owner: 'owner-b', service: 'b-payments', badType: 'bogus-b-type' } as const

/** Stand-ins that exist nowhere: answers about B's objects must read like answers about these. */
export const GHOST = { id: 'ghost-z9', unit: 'unit-ghost', service: 'ghost-service' } as const

/** What was seeded, for the assertions. */
export interface Seeded {
  /** Every string only unit B's data contains (ids, unit, owner, service, attribute value, trace ids). */
  bMarkers: string[]
  /** Billable spans (and activity spans) of unit A over the whole range. */
  aActivitySpans: number
  /** Start of last month (UTC) and a `to` after every span: the range every request uses. */
  from: string
  to: string
  /** Last month as YYYY-MM (closed by a statement). */
  lastMonth: string
  /** The decision instant used for entitlements and identities. */
  at: string
}

interface SpanPlan {
  id?: string
  unit?: string
  owner?: string
  type?: string
  credential?: string
  activity: 'tool' | 'rotation' | 'server'
  start: Date
}

async function spansOf(service: string, plans: SpanPlan[]): Promise<ReadableSpan[]> {
  return makeSpans({ 'service.name': service }, (tracer) => {
    for (const [i, p] of plans.entries()) {
      const attributes: Record<string, string> = {}
      if (p.id) attributes['nhi.id'] = p.id
      if (p.unit) attributes['nhi.business_unit'] = p.unit
      if (p.owner) attributes['nhi.owner'] = p.owner
      if (p.id) attributes['nhi.type'] = p.type ?? 'service_account'
      if (p.credential) attributes['nhi.credential.id'] = p.credential
      if (p.activity === 'tool') Object.assign(attributes, { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': `lookup-${i}` })
      if (p.activity === 'rotation') Object.assign(attributes, { 'nhi.activity.type': 'secret_rotation', 'nhi.activity.name': 'rotate' })
      if (p.activity === 'server') attributes['http.route'] = '/v1/reports'
      tracer
        .startSpan(`${p.activity} ${i}`, { kind: p.activity === 'server' ? SpanKind.SERVER : SpanKind.INTERNAL, startTime: p.start, attributes })
        .end(new Date(p.start.getTime() + 20))
    }
  })
}

/** Sends the spans through the receiver (with the ingest key) and declares the inventory (with the admin key). */
export async function seed(apiUrl: string, otlpUrl: string): Promise<Seeded> {
  const now = Date.now()
  const today = new Date(now)
  const lastMonthStart = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, 1))
  const lastMonthMid = new Date(lastMonthStart.getTime() + 14 * 86_400_000 + 12 * 3_600_000)
  const recent = (minutesAgo: number) => new Date(now - 3_600_000 - minutesAgo * 60_000)

  const aSpans = await spansOf('a-analytics', [
    ...[1, 2, 3].map((m): SpanPlan => ({ id: A_IDS.observed, unit: 'unit-a', owner: 'owner-a', credential: SHARED_CREDENTIAL, activity: 'tool', start: recent(m) })),
    ...[14, 15].map((m): SpanPlan => ({ id: SPLIT_ID, unit: 'unit-a', activity: 'tool', start: recent(m) })),
    { id: A_IDS.observed, unit: 'unit-a', owner: 'owner-a', activity: 'rotation', start: recent(4) },
    { id: A_IDS.observed, unit: 'unit-a', owner: 'owner-a', activity: 'tool', start: lastMonthMid },
    // Spans say unit-a, but the inventory declares this identity in unit-b.
    ...[5, 6].map((m): SpanPlan => ({ id: B_IDS.moved, unit: 'unit-a', owner: 'owner-a', activity: 'tool', start: recent(m) })),
    // No identity: counted in completeness, in no unit.
    { activity: 'server', start: recent(7) },
  ])
  const bSpans = await spansOf(B_STRINGS.service, [
    ...[8, 9, 10, 11].map((m): SpanPlan => ({ id: B_IDS.observed, unit: B_STRINGS.unit, owner: B_STRINGS.owner, credential: SHARED_CREDENTIAL, activity: 'tool', start: recent(m) })),
    ...[16, 17, 18].map((m): SpanPlan => ({ id: SPLIT_ID, unit: B_STRINGS.unit, activity: 'rotation', start: recent(m) })),
    { id: B_IDS.observed, unit: B_STRINGS.unit, owner: B_STRINGS.owner, activity: 'rotation', start: recent(12) },
    { id: B_IDS.observed, unit: B_STRINGS.unit, owner: B_STRINGS.owner, activity: 'tool', start: lastMonthMid },
    { id: B_IDS.oddType, unit: B_STRINGS.unit, owner: B_STRINGS.owner, type: B_STRINGS.badType, activity: 'tool', start: recent(13) },
  ])
  const headers = { Authorization: `Bearer ${KEYS.ingestOnly}` }
  for (const spans of [aSpans, bSpans]) {
    const result = await sendSpans(spans, { url: otlpUrl, protocol: 'protobuf', headers })
    if (!exported(result)) throw new Error(`seeding spans failed: ${String(result.error)}`)
  }
  const inventory = [
    { id: B_IDS.moved, type: 'workload', owner: B_STRINGS.owner, business_unit: B_STRINGS.unit, tier: 'gold', approved_activities: [] },
    { id: B_IDS.declaredOnly, type: 'integration', owner: B_STRINGS.owner, business_unit: B_STRINGS.unit, tier: 'gold', approved_activities: [] },
    { id: A_IDS.declaredOnly, type: 'integration', owner: 'owner-a', business_unit: 'unit-a', tier: 'silver', approved_activities: [] },
  ]
  const declared = await fetch(`${apiUrl}/v1/inventory`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEYS.admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(inventory),
  })
  if (declared.status !== 200) throw new Error(`seeding the inventory failed: ${declared.status} ${await declared.text()}`)

  const lastMonth = lastMonthStart.toISOString().slice(0, 7)
  const closed = await fetch(`${apiUrl}/v1/statements`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEYS.admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ period: lastMonth }),
  })
  if (closed.status !== 201) throw new Error(`closing ${lastMonth} failed: ${closed.status} ${await closed.text()}`)

  const movedTraceIds = aSpans.filter((s) => s.attributes['nhi.id'] === B_IDS.moved).map((s) => s.spanContext().traceId)
  return {
    bMarkers: [...Object.values(B_IDS), ...Object.values(B_STRINGS), ...bSpans.map((s) => s.spanContext().traceId), ...movedTraceIds],
    aActivitySpans: 7,
    from: lastMonthStart.toISOString(),
    to: new Date(Math.ceil((now + 60_000) / 60_000) * 60_000).toISOString(),
    lastMonth,
    at: new Date(Math.ceil(now / 60_000) * 60_000).toISOString(),
  }
}
