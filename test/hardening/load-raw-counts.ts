/**
 * Prints, as JSON, the raw rows per service in a stopped service's data
 * directory: rows and distinct spans in otel_traces, ledger rows read with
 * FINAL, and span ids stored more than once. Run by `rawCounts` in
 * load-otlp.ts as a child process.
 *
 *   node --conditions=nhi-meter-source --import tsx test/hardening/load-raw-counts.ts <data dir>
 */
import { openStorage } from '../../query-service/src/storage/client.js'

async function main(dataDir: string): Promise<void> {
  const client = await openStorage({ kind: 'embedded', dataDir })
  try {
    const raw = await client.query({
      query: `SELECT ServiceName AS service, count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM otel_traces GROUP BY service`,
      format: 'JSONEachRow',
    })
    const ledger = await client.query({ query: 'SELECT service, count() AS n FROM nhi_activity FINAL GROUP BY service', format: 'JSONEachRow' })
    const duplicated = await client.query({
      query: `SELECT ServiceName AS service, groupArray(1000)(SpanId) AS ids FROM (SELECT ServiceName, SpanId FROM otel_traces GROUP BY ServiceName, TraceId, SpanId HAVING count() > 1) GROUP BY service`,
      format: 'JSONEachRow',
    })
    const ledgerOf = new Map((await ledger.json<{ service: string; n: string }>()).map((r) => [r.service, Number(r.n)]))
    const duplicatesOf = new Map((await duplicated.json<{ service: string; ids: string[] }>()).map((r) => [r.service, r.ids]))
    const out: Record<string, { rows: number; spans: number; ledger: number; duplicated: string[] }> = {}
    for (const r of await raw.json<{ service: string; rows: string; spans: string }>()) {
      out[r.service] = { rows: Number(r.rows), spans: Number(r.spans), ledger: ledgerOf.get(r.service) ?? 0, duplicated: duplicatesOf.get(r.service) ?? [] }
    }
    process.stdout.write(JSON.stringify(out))
  } finally {
    await client.close()
  }
}

main(process.argv[2]!).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
