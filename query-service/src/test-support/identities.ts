/**
 * Fixtures for the identities and entitlements tests: use events of a named
 * identity, a policy with entitlement rules, and the query API on that policy.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { KeyStore } from '../auth/keys.js'
import { createApp } from '../app.js'
import { validatePolicy, type Policy } from '../policy/index.js'
import { spanRow } from './spans.js'
import type { OtelTraceRow } from '../otlp/rows.js'

/** A use event of `id`: activity type and name on the span, business unit when given. */
export function useEvent(
  id: string,
  start: string,
  activity: { type: string; name?: string; businessUnit?: string; status?: 'Unset' | 'Ok' | 'Error'; traceId?: string; spanId?: string; owner?: string; nhiType?: string },
): OtelTraceRow {
  return spanRow({
    start,
    status: activity.status,
    traceId: activity.traceId,
    spanId: activity.spanId,
    attributes: {
      'nhi.id': id,
      'nhi.activity.type': activity.type,
      'nhi.activity.name': activity.name ?? 'op',
      ...(activity.businessUnit ? { 'nhi.business_unit': activity.businessUnit } : {}),
      ...(activity.owner ? { 'nhi.owner': activity.owner } : {}),
      ...(activity.nhiType ? { 'nhi.type': activity.nhiType } : {}),
    },
  })
}

/**
 * A policy with three rules: high_capacity_processing (3 ok workflow runs in
 * 7d), premium_automation (1 ok secret rotation in 30d) and nightly_batch
 * (2 workflow runs named nightly_*, any status, in 1d); dormant after 10d.
 */
export const ENTITLEMENT_POLICY: Policy = validatePolicy({
  rate_cards: [{ version: '2026-11', effective_from: '2026-11-01T00:00:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' }] }],
  entitlements: [
    { feature: 'high_capacity_processing', activity_type: 'workflow_execution', status: 'ok', min_count: 3, window: '7d' },
    { feature: 'premium_automation', activity_type: 'secret_rotation', status: 'ok', min_count: 1, window: '30d' },
    { feature: 'nightly_batch', activity_type: 'workflow_execution', activity_name: 'nightly_*', status: 'any', min_count: 2, window: '1d' },
  ],
  detection: { dormant_after: '10d' },
}).policy

/** The query API as app.ts builds it (the identities and entitlements routes among the rest), on `policy`. */
export function identitiesApp(client: ClickHouseClient, keys: KeyStore, policy: Policy = ENTITLEMENT_POLICY): ReturnType<typeof createApp> {
  return createApp({ client, keys: () => keys, policy: () => policy })
}

/** A declaration row as POST /v1/inventory takes it. */
export function declaration(id: string, businessUnit: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, type: 'service_account', owner: 'team-a', business_unit: businessUnit, ...extra }
}
