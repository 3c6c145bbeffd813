/**
 * Fixtures for the findings tests: use events as spans, declarations, a
 * policy with chosen detection thresholds, and the query API on real
 * embedded storage.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createApp } from '../app.js'
import { validatePolicy, type Policy } from '../policy/index.js'
import { testKeys } from './keys.js'
import { TEST_POLICY } from './policy.js'
import { spanRow } from './spans.js'
import type { OtelTraceRow } from '../otlp/rows.js'
import type { Finding } from '../findings/kinds.js'

/** One use event of an identity. */
export function use(
  id: string,
  start: string,
  options: { type?: string; name?: string; status?: 'Unset' | 'Error'; service?: string; owner?: string; bu?: string; credential?: string; attributes?: Record<string, string> } = {},
): OtelTraceRow {
  return spanRow({
    start,
    service: options.service ?? 'svc-main',
    status: options.status ?? 'Unset',
    attributes: {
      'nhi.id': id,
      'nhi.type': 'service_account',
      'nhi.activity.type': options.type ?? 'api_call',
      'nhi.activity.name': options.name ?? 'GET /orders',
      'nhi.owner': options.owner ?? 'team-a',
      'nhi.business_unit': options.bu ?? 'ops',
      ...(options.credential ? { 'nhi.credential.id': options.credential } : {}),
      ...options.attributes,
    },
  })
}

/** `n` events of an identity spread evenly over [from, to). */
export function spread(id: string, from: string, to: string, n: number, options: Parameters<typeof use>[2] = {}): OtelTraceRow[] {
  const start = Date.parse(from)
  const step = (Date.parse(to) - start) / n
  return Array.from({ length: n }, (_, i) => use(id, new Date(start + Math.floor(i * step)).toISOString(), options))
}

/** A declaration for nhi_inventory. */
export interface TestDeclaration {
  id: string
  owner?: string
  business_unit?: string
  type?: string
  approved_activities?: string[]
  updated_at?: string
}

/** Writes declarations (a later updated_at replaces an earlier one). */
export async function declare(client: ClickHouseClient, entries: TestDeclaration[]): Promise<void> {
  await client.insert({
    table: 'nhi_inventory',
    values: entries.map((e) => ({
      id: e.id,
      type: e.type ?? 'service_account',
      owner: e.owner ?? 'team-a',
      business_unit: e.business_unit ?? 'ops',
      tier: 'standard',
      approved_activities: e.approved_activities ?? [],
      updated_at: (e.updated_at ?? '2026-09-01T00:00:00.000Z').replace('T', ' ').replace('Z', ''),
    })),
    format: 'JSONEachRow',
  })
}

/** TEST_POLICY's rate cards with the given detection thresholds. */
export function policyWith(detection: Record<string, unknown>): Policy {
  return validatePolicy({
    rate_cards: TEST_POLICY.rate_cards.map((card) => ({
      version: card.version,
      effective_from: card.effective_from.text,
      currency: card.currency,
      meters: card.meters.map((m) => ({ name: m.name, activity_type: m.activity_type, activity_name: m.activity_name, status: m.status, unit_price: '0.001' })),
    })),
    detection,
  }).policy
}

/** Keys used by the findings tests. */
export const keys = testKeys([
  { name: 'admin', scopes: ['admin'] },
  { name: 'analyst', scopes: ['findings:read'] },
  { name: 'ops', scopes: ['findings:read'], business_units: ['ops'] },
  { name: 'billing', scopes: ['billing:read'] },
])

/** The query API as app.ts builds it, and a GET helper that authenticates as a named key. */
export function findingsApp(client: ClickHouseClient, policy: () => Policy) {
  const app = createApp({ client, keys: () => keys.store, policy, logError: (_id, error) => console.error(error) })
  const get = (path: string, key = 'admin') => Promise.resolve(app.request(path, { headers: { Authorization: `Bearer ${keys.key(key)}` } }))
  const findings = async (query: string, key = 'admin'): Promise<Finding[]> => {
    const response = await get(`/v1/findings?${query}`, key)
    if (response.status !== 200) throw new Error(`GET /v1/findings?${query}: ${response.status} ${await response.text()}`)
    return ((await response.json()) as { findings: Finding[] }).findings
  }
  return { app, get, findings }
}

/**
 * The detection thresholds of the findings tests: small enough that injected
 * cases stay small, and sensitive enough that normal noise would trip them.
 */
export const SENSITIVE_POLICY = policyWith({
  dormant_after: '10d',
  burst_windows: ['5m', '1h', '6h'],
  burst_baseline: '7d',
  burst_factor: 3,
  burst_min_events: 10,
  sustained_growth_period: '1d',
  sustained_growth_periods: 5,
  sustained_growth_factor: 2,
  sustained_growth_min_events: 30,
  overactive_window: '1h',
  overactive_max_events: 50,
  auth_failures_window: '1h',
  auth_failures_min_count: 5,
  credential_reuse_window: '30d',
  credential_reuse_max_identities: 1,
  rotation_max_age: '20d',
  telemetry_gap_min_ratio: 0.9,
  telemetry_gap_min_spans: 20,
  telemetry_gap_silence: '6h',
})
