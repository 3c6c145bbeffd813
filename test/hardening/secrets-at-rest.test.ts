/**
 * No secrets at rest: a corpus of credentials (SHAPES) in every part of a
 * span a sender controls (PLACEMENTS) goes through both ingest paths, the
 * built-in receiver of the real service and the real Collector (otelcol-nhi
 * with the shipped otelcol.yaml; its output is stored the way its
 * ClickHouse exporter stores it). Then every row of every table in the data
 * directory is dumped and searched for each secret's distinctive fragment,
 * and for the service's own API key.
 *
 * Placements a path does not redact are known limits: they are asserted as
 * such, by name, in their own tests, so the day one is fixed that test fails
 * and the placement moves to the protected list.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OtelTraceRow } from '../../query-service/src/otlp/rows.js'
import { openStorage } from '../../query-service/src/storage/client.js'
import { collectorBinary, OTELCOL_CONFIG, startCollector } from '../collector/collector.js'
import { startService, type ServiceUnderTest } from '../helpers/service.js'
import { corpusExport, PLACEMENTS, type Placement, type PlacedSecret } from './access-secrets-corpus.js'

const collector = collectorBinary()
if (collector.skipReason) console.warn(`test/hardening/secrets-at-rest.test.ts: Collector path skipped. ${collector.skipReason}`)

/**
 * Placements each path does not redact today. The redaction rule applies to
 * attribute keys and values, and its value half to span names, status
 * messages and event names, on both paths; the Collector's statements have
 * no span-link context, so link attributes pass through it. Secrets inside
 * arrays and maps are caught by both (the Collector's statements stringify
 * them first).
 */
const RECEIVER_KNOWN_LIMITS: Placement[] = []
const COLLECTOR_KNOWN_LIMITS: Placement[] = ['LA']

let service: ServiceUnderTest
let adminKey: string
let viaReceiver: PlacedSecret[]
let viaCollector: PlacedSecret[] = []
let emittedText = ''
/** Every stored row of every table, as text, one entry per table. */
let stored: Array<{ table: string; text: string }>

interface OtlpValue {
  stringValue?: string
  intValue?: string | number
  doubleValue?: number
  boolValue?: boolean
  bytesValue?: string
  arrayValue?: { values?: OtlpValue[] }
  kvlistValue?: { values?: Array<{ key: string; value: OtlpValue }> }
}
type OtlpAttributes = Array<{ key: string; value: OtlpValue }> | undefined

/** A value as a plain JSON value (for the JSON form of arrays and maps). */
function plain(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.bytesValue !== undefined) return v.bytesValue
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(plain)
  if (v.kvlistValue) return Object.fromEntries((v.kvlistValue.values ?? []).map((kv) => [kv.key, plain(kv.value)]))
  return ''
}

/** Attributes as the ClickHouse exporter stores them: Map(String, String), arrays and maps as JSON. */
function asMap(attributes: OtlpAttributes): Record<string, string> {
  return Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, value.stringValue ?? (typeof plain(value) === 'string' ? (plain(value) as string) : JSON.stringify(plain(value)))]))
}

const nanoText = (ns: string) => {
  const n = BigInt(ns)
  return `${new Date(Number(n / 1_000_000n)).toISOString().slice(0, 19).replace('T', ' ')}.${(n % 1_000_000_000n).toString().padStart(9, '0')}`
}

/** The otel_traces rows the Collector's ClickHouse exporter would write for what the Collector emitted. */
function exporterRows(fileText: string): OtelTraceRow[] {
  const rows: OtelTraceRow[] = []
  for (const line of fileText.split('\n').filter((l) => l.trim() !== '')) {
    const request = JSON.parse(line) as {
      resourceSpans: Array<{
        resource?: { attributes?: OtlpAttributes }
        scopeSpans: Array<{
          scope?: { name?: string; version?: string }
          spans: Array<{
            traceId: string
            spanId: string
            parentSpanId?: string
            traceState?: string
            name: string
            kind?: number
            startTimeUnixNano: string
            endTimeUnixNano: string
            attributes?: OtlpAttributes
            events?: Array<{ timeUnixNano: string; name: string; attributes?: OtlpAttributes }>
            links?: Array<{ traceId: string; spanId: string; traceState?: string; attributes?: OtlpAttributes }>
            status?: { code?: number; message?: string }
          }>
        }>
      }>
    }
    for (const rs of request.resourceSpans) {
      const resource = asMap(rs.resource?.attributes)
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          rows.push({
            Timestamp: nanoText(s.startTimeUnixNano),
            TraceId: s.traceId,
            SpanId: s.spanId,
            ParentSpanId: s.parentSpanId ?? '',
            TraceState: s.traceState ?? '',
            SpanName: s.name,
            SpanKind: ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][s.kind ?? 0]!,
            ServiceName: resource['service.name'] ?? '',
            ResourceAttributes: resource,
            ScopeName: ss.scope?.name ?? '',
            ScopeVersion: ss.scope?.version ?? '',
            SpanAttributes: asMap(s.attributes),
            Duration: String(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)),
            StatusCode: ['Unset', 'Ok', 'Error'][s.status?.code ?? 0]!,
            StatusMessage: s.status?.message ?? '',
            'Events.Timestamp': (s.events ?? []).map((e) => nanoText(e.timeUnixNano)),
            'Events.Name': (s.events ?? []).map((e) => e.name),
            'Events.Attributes': (s.events ?? []).map((e) => asMap(e.attributes)),
            'Links.TraceId': (s.links ?? []).map((l) => l.traceId),
            'Links.SpanId': (s.links ?? []).map((l) => l.spanId),
            'Links.TraceState': (s.links ?? []).map((l) => l.traceState ?? ''),
            'Links.Attributes': (s.links ?? []).map((l) => asMap(l.attributes)),
          })
        }
      }
    }
  }
  return rows
}

/** Every row of every table (views excluded: their rows are in their target tables), as JSON text. */
async function dumpEveryTable(client: ClickHouseClient): Promise<Array<{ table: string; text: string }>> {
  const tables = await (
    await client.query({ query: "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View' ORDER BY name", format: 'JSONEachRow' })
  ).json<{ name: string }>()
  const dumps: Array<{ table: string; text: string }> = []
  for (const { name } of tables) {
    const result = await client.query({ query: `SELECT * FROM \`${name.replaceAll('`', '')}\``, format: 'JSONEachRow' })
    dumps.push({ table: name, text: await result.text() })
  }
  return dumps
}

/** Where each placed secret was found: table names, and `emitted` for the Collector's output. */
function leaks(placed: PlacedSecret[], placements: (p: Placement) => boolean, alsoIn: Array<{ table: string; text: string }> = []): string[] {
  const found: string[] = []
  for (const secret of placed.filter((s) => placements(s.placement))) {
    const where = [...stored, ...alsoIn].filter((d) => d.text.includes(secret.fragment)).map((d) => d.table)
    if (where.length > 0) found.push(`${secret.shape} in a ${PLACEMENTS[secret.placement]} (${secret.fragment}): ${where.join(', ')}`)
  }
  return found
}

beforeAll(async () => {
  service = await startService({ timeoutMs: 60_000 })
  adminKey = service.adminKey!
  const start = Date.now() - 3_600_000
  const receiverExport = corpusExport('R', start)
  viaReceiver = receiverExport.placed
  const answer = await fetch(service.otlpUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${adminKey}` }, body: receiverExport.body })
  const answerText = await answer.text()
  if (answer.status !== 200 || answerText.includes('rejected')) throw new Error(`the receiver refused the corpus: ${answer.status} ${answerText}`)

  let collectorRows: OtelTraceRow[] = []
  if (collector.path) {
    const dir = mkdtempSync(join(tmpdir(), 'nhi-secrets-otelcol-'))
    const emittedFile = join(dir, 'emitted.json')
    const overlay = join(dir, 'overlay.yaml')
    // Everything as shipped (receivers, memory_limiter, the redaction statements); only the exporter is a file.
    writeFileSync(overlay, ['exporters:', '  file/emitted:', `    path: ${emittedFile}`, '    format: json', 'service:', '  pipelines:', '    traces:', '      exporters: [file/emitted]', ''].join('\n'))
    const otelcol = await startCollector(collector.path, [OTELCOL_CONFIG, overlay], {})
    const collectorExport = corpusExport('C', start)
    viaCollector = collectorExport.placed
    const sent = await fetch(otelcol.otlpHttpUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: collectorExport.body })
    if (sent.status !== 200) throw new Error(`the Collector refused the corpus: ${sent.status} ${await sent.text()}\n${otelcol.output()}`)
    if ((await otelcol.stop()) !== 0) throw new Error(`the Collector did not stop cleanly:\n${otelcol.output()}`)
    emittedText = readFileSync(emittedFile, 'utf8')
    collectorRows = exporterRows(emittedText)
    if (collectorRows.length !== viaCollector.length) throw new Error(`the Collector emitted ${collectorRows.length} spans, expected ${viaCollector.length}`)
  }

  // One process may hold a data directory at a time: stop the service, then open its directory here.
  expect(await service.stop(), service.output()).toBe(0)
  const client = await openStorage({ kind: 'embedded', dataDir: service.dataDir })
  try {
    if (collectorRows.length > 0) await client.insert({ table: 'otel_traces', values: collectorRows, format: 'JSONEachRow' })
    stored = await dumpEveryTable(client)
  } finally {
    await client.close()
  }
}, 240_000)

afterAll(async () => {
  await service?.stop()
})

describe('what is stored', () => {
  it('holds both paths\' spans in otel_traces and the ledger, so the scan below looks at real rows', () => {
    const traces = stored.find((d) => d.table === 'otel_traces')!.text
    const ledger = stored.find((d) => d.table === 'nhi_activity')!.text
    expect(traces.split('\n').filter(Boolean).length).toBe(viaReceiver.length + viaCollector.length)
    expect(ledger).toContain('corpus-agent-R')
    if (collector.path) expect(ledger).toContain('corpus-agent-C')
    expect(stored.length).toBeGreaterThanOrEqual(8)
  })

  it('never holds the service\'s API key, only its hash', () => {
    expect(adminKey).toMatch(/^nhim_/)
    for (const dump of stored) expect(dump.text.includes(adminKey), dump.table).toBe(false)
    expect(stored.find((d) => d.table === 'nhi_api_keys')!.text).toContain(createHashHex(adminKey))
  })
})

describe('the built-in receiver', () => {
  it('stores no secret from resource, span, event or link attributes, inside arrays or maps, span names, status messages or event names', () => {
    expect(RECEIVER_KNOWN_LIMITS).toEqual([])
    expect(leaks(viaReceiver, () => true)).toEqual([])
  })
})

describe.skipIf(!collector.path)('the Collector with the shipped config', () => {
  it('emits and leads to storing no secret from resource, span or event attributes, inside arrays or maps, span names, status messages or event names', () => {
    const emitted = [{ table: 'emitted by the Collector', text: emittedText }]
    expect(leaks(viaCollector, (p) => !COLLECTOR_KNOWN_LIMITS.includes(p), emitted)).toEqual([])
  })

  it('known limit: passes secrets in link attributes through (OTTL has no span-link context)', () => {
    const found = leaks(viaCollector, (p) => COLLECTOR_KNOWN_LIMITS.includes(p), [{ table: 'emitted by the Collector', text: emittedText }])
    const expected = viaCollector.filter((s) => COLLECTOR_KNOWN_LIMITS.includes(s.placement))
    expect(found).toHaveLength(expected.length)
  })
})

function createHashHex(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}
