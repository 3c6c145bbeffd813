/**
 * bench/ingest: OTLP ingest into the single-node product, at the client
 * shapes the world sends (README, Figures).
 *
 * For each shape (exports in flight x spans per export) it starts the
 * service as `npm start` does (its own process, embedded ClickHouse in a
 * fresh directory) and drives it with the real OpenTelemetry protobuf
 * exporter, each exporter keeping one export in flight as the SDK's batch
 * processor does (one exporter instance, reused, so its connection is kept
 * alive):
 *
 * - 1 x 512: one SDK process with the default batch size;
 * - 4 x 512 and 16 x 512: a few and many such processes;
 * - 16 x 2,000: large batches (the shape this bench used before the ingest log).
 *
 * Prints per shape: spans/s acknowledged (into the ingest log) and spans/s
 * stored (from the first send until the ledger holds the last span, which
 * is what a sustained rate can be), the p50 and p99 export round trip, the
 * service's CPU per span until stored, its peak RSS (VmHWM), and whether
 * the ledger holds every acknowledged span.
 *
 * Targets (README, Figures): 1 x 512 >= 20,000 spans/s with p50 round trip <=
 * 10 ms; 16 x 512 >= 35,000 spans/s; peak RSS <= 1.5 GiB.
 *
 *   npm run bench -- ingest                       (300,000 spans per shape)
 *   BENCH_INGEST_SPANS=600000 npm run bench -- ingest
 *   BENCH_INGEST_SHAPES=1x512,16x512 npm run bench -- ingest
 */
import { readFileSync } from 'node:fs'
import { ExportResultCode } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { makeSpans, SpanKind } from '../test/helpers/otel.js'
import { startService } from '../test/helpers/service.js'
import { percentile } from './_stats.js'

const TOTAL_SPANS = Number(process.env.BENCH_INGEST_SPANS ?? 300_000)
const SHAPES = (process.env.BENCH_INGEST_SHAPES ?? '1x512,4x512,16x512,16x2000').split(',').map((s) => {
  const [exporters, batch] = s.split('x').map(Number)
  return { exporters: exporters!, batch: batch! }
})

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0)
  return kb / 1024
}

/** `TOTAL_SPANS` SDK spans in batches of `size`, their span ids unique to this shape (`tag`). */
async function batchesOf(size: number, tag: number): Promise<ReadableSpan[][]> {
  const batches: ReadableSpan[][] = []
  const start = Date.UTC(2026, 10, 2)
  for (let b = 0; b < TOTAL_SPANS / size; b++) {
    batches.push(
      await makeSpans({ 'service.name': `agent-fleet-${tag}-${b % 8}`, 'nhi.type': 'ai_agent', 'nhi.business_unit': b % 2 ? 'finance' : 'sales' }, (tracer) => {
        for (let i = 0; i < size; i++) {
          const n = b * size + i
          tracer
            .startSpan('execute_tool', {
              kind: SpanKind.INTERNAL,
              startTime: new Date(start + n * 10),
              attributes: { 'nhi.id': `agent-${n % 1000}`, 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': `tool-${n % 20}`, 'http.response.status_code': 200 },
            })
            .end(new Date(start + n * 10 + 5))
        }
      }),
    )
  }
  return batches
}

async function runShape(exporters: number, batchSize: number, tag: number): Promise<string> {
  const batches = await batchesOf(batchSize, tag)
  const service = await startService({ env: { NHI_METER_OTLP_AUTH: 'none' } })
  const pid = service.process.pid!
  try {
    const clients = Array.from({ length: exporters }, () => new OTLPTraceExporter({ url: service.otlpUrl, timeoutMillis: 30_000 }))
    const exportOnce = (client: OTLPTraceExporter, spans: ReadableSpan[]) => new Promise<boolean>((resolve) => client.export(spans, (r) => resolve(r.code === ExportResultCode.SUCCESS)))
    // Warm-up: one export per client, not counted (their ids repeat the first batch's, deduplicated in the ledger).
    await Promise.all(clients.map((c) => exportOnce(c, batches[0]!.slice(0, 1))))

    let next = 0
    let acknowledged = 0
    let failed = 0
    const roundTrips: number[] = []
    const cpuBefore = cpuSeconds(pid)
    const began = performance.now()
    await Promise.all(
      clients.map(async (client) => {
        while (next < batches.length) {
          const batch = batches[next++]!
          const sent = performance.now()
          const ok = await exportOnce(client, batch)
          roundTrips.push(performance.now() - sent)
          if (ok) acknowledged += batch.length
          else failed += batch.length
        }
      }),
    )
    const seconds = (performance.now() - began) / 1000
    await Promise.all(clients.map((c) => c.shutdown()))

    // Acknowledged means in the ingest log: the run ends when ClickHouse has it all. Polled every 100 ms (a read of
    // the ledger's recent rows: it costs the service a little CPU, counted below).
    let stored = 0
    const deadline = Date.now() + 300_000
    while (Date.now() < deadline) {
      const response = await fetch(`${service.apiUrl}/v1/telemetry/completeness?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z`, { headers: { Authorization: `Bearer ${service.adminKey}` } })
      const body = (await response.json()) as { services: Array<{ service: string; spans: number }> }
      stored = body.services.filter((s) => s.service.startsWith(`agent-fleet-${tag}-`)).reduce((a, s) => a + s.spans, 0)
      if (stored >= acknowledged) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const storedSeconds = (performance.now() - began) / 1000
    const serviceCpu = cpuSeconds(pid) - cpuBefore
    const rss = peakRssMiB(pid)
    return (
      `| ${exporters} x ${batchSize} | ${Math.round(acknowledged / seconds).toLocaleString('en-US')} spans/s | ${Math.round(acknowledged / storedSeconds).toLocaleString('en-US')} spans/s | ` +
      `${percentile(roundTrips, 50).toFixed(1)} ms / ${percentile(roundTrips, 99).toFixed(1)} ms | ` +
      `${((serviceCpu / acknowledged) * 1e6).toFixed(1)} µs | ${rss.toFixed(0)} MiB | ${stored === acknowledged ? 'yes' : `NO (${stored} of ${acknowledged})`}${failed ? `; ${failed} failed` : ''} |`
    )
  } finally {
    await service.stop()
  }
}

async function main(): Promise<void> {
  const lines: string[] = []
  for (const [i, shape] of SHAPES.entries()) {
    console.log(`shape ${shape.exporters} x ${shape.batch}: generating ${TOTAL_SPANS.toLocaleString('en-US')} spans with the OpenTelemetry SDK, then sending ...`)
    lines.push(await runShape(shape.exporters, shape.batch, i))
  }
  console.log('')
  console.log(
    `| exports in flight x spans per export (${TOTAL_SPANS.toLocaleString('en-US')} spans each, protobuf) | acknowledged (into the ingest log) | stored (first send to the last span in the ledger) | round trip p50 / p99 | service CPU per span (until stored) | service peak RSS | every acknowledged span in the ledger |`,
  )
  console.log('|---|---|---|---|---|---|---|')
  for (const line of lines) console.log(line)
  console.log('')
  console.log('Targets (README, Figures): 1 x 512 >= 20,000 spans/s, p50 round trip <= 10 ms; 16 x 512 >= 35,000 spans/s; peak RSS <= 1,536 MiB.')
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
