/**
 * Fixtures shared by query-service tests: an embedded ClickHouse in a temp
 * directory with the schema applied, keys of each kind, and a way to load
 * spans straight into otel_traces (the ledger view derives the rest).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KeyStore, sha256, type Scope } from './auth/keys.js'
import { validatePolicy, type Policy } from './policy/index.js'
import { formatUnixNano, type OtelTraceRow } from './otlp/rows.js'
import { openStorage } from './storage/client.js'
import { migrate } from './storage/migrations.js'

/** Opens a fresh embedded ClickHouse with the schema applied. */
export async function freshStorage(): Promise<ClickHouseClient> {
  const client = await openStorage({ kind: 'embedded', dataDir: mkdtempSync(join(tmpdir(), 'nhi-meter-unit-')) })
  await migrate(client)
  return client
}

/** Test keys: the key text is its name prefixed with `nhim_test_`. */
export function testKeys(entries: Array<{ name: string; scopes: Scope[]; business_units?: string[] }>): { store: KeyStore; key: (name: string) => string } {
  const key = (name: string) => `nhim_test_${name}_0123456789abcdef`
  return { store: KeyStore.fromEntries(entries.map((e) => ({ ...e, sha256: sha256(key(e.name)).toString('hex') }))), key }
}

/** A policy priced in USD: tool calls 0.002, workflows 0.05 (ok only), API calls 0.0001 (any status); default entitlements and detection. */
export const TEST_POLICY: Policy = validatePolicy({
  rate_cards: [
    {
      version: '2026-11',
      effective_from: '2026-11-01T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' },
        { name: 'workflows', activity_type: 'workflow_execution', status: 'ok', unit_price: '0.05' },
        { name: 'api_calls', activity_type: 'api_call', status: 'any', unit_price: '0.0001' },
      ],
    },
  ],
}).policy

let spanCounter = 0

/** A span row with sensible defaults; attributes go on the span unless `resource` is given. */
export function spanRow(options: {
  start: string
  attributes?: Record<string, string>
  resource?: Record<string, string>
  service?: string
  kind?: string
  status?: 'Unset' | 'Ok' | 'Error'
  traceId?: string
  spanId?: string
  parentSpanId?: string
  name?: string
  /** Span duration in nanoseconds (default 1000). */
  durationNs?: number
}): OtelTraceRow {
  spanCounter++
  const startNs = BigInt(new Date(options.start).getTime()) * 1_000_000n
  return {
    Timestamp: formatUnixNano(startNs),
    TraceId: options.traceId ?? spanCounter.toString(16).padStart(32, 'a'),
    SpanId: options.spanId ?? spanCounter.toString(16).padStart(16, 'b'),
    ParentSpanId: options.parentSpanId ?? '',
    TraceState: '',
    SpanName: options.name ?? 'op',
    SpanKind: options.kind ?? 'Internal',
    ServiceName: options.service ?? 'svc',
    ResourceAttributes: { 'service.name': options.service ?? 'svc', ...options.resource },
    ScopeName: 'test',
    ScopeVersion: '',
    SpanAttributes: options.attributes ?? {},
    Duration: String(options.durationNs ?? 1000),
    StatusCode: options.status ?? 'Unset',
    StatusMessage: '',
    'Events.Timestamp': [],
    'Events.Name': [],
    'Events.Attributes': [],
    'Links.TraceId': [],
    'Links.SpanId': [],
    'Links.TraceState': [],
    'Links.Attributes': [],
  }
}

/** Inserts span rows into otel_traces. */
export async function insertSpans(client: ClickHouseClient, rows: OtelTraceRow[]): Promise<void> {
  await client.insert({ table: 'otel_traces', values: rows, format: 'JSONEachRow' })
}
