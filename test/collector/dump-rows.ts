/**
 * Prints the stored rows of one stopped service's embedded data directory as
 * JSON: `{ traces, activity }`. Runs as its own process because the embedded
 * engine allows one data directory per process, and the equivalence test
 * compares two.
 *
 *   node --conditions=nhi-meter-source --import tsx test/collector/dump-rows.ts <dataDir>
 */
import { openStorage } from '../../query-service/src/storage/client.js'

const dataDir = process.argv[2]
if (!dataDir) {
  console.error('usage: dump-rows.ts <dataDir>')
  process.exit(2)
}
const client = await openStorage({ kind: 'embedded', dataDir })
const rows = async (query: string) => (await client.query({ query, format: 'JSONEachRow' })).json()
// Every column, in a stable order. ingested_at is the one column that records
// when a row arrived rather than what the span said, so it is left out.
const traces = await rows('SELECT * FROM otel_traces ORDER BY TraceId, SpanId')
const activity = await rows('SELECT * EXCEPT ingested_at FROM nhi_activity FINAL ORDER BY trace_id, span_id')
await client.close()
process.stdout.write(JSON.stringify({ traces, activity }))
