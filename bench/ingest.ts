/**
 * bench/ingest: sustained OTLP ingest into the single-node product.
 *
 * Starts the service as `npm start` does (its own process, embedded
 * ClickHouse in a fresh directory), then drives it with the real
 * OpenTelemetry protobuf exporter: batches of SDK spans from several
 * concurrent exporters, as a fleet of instrumented services would. Prints
 * acknowledged spans per second, the service's peak RSS (VmHWM) and checks
 * that every acknowledged span is in the ledger.
 *
 * Target (issue 2): >= 30,000 spans/s with peak RSS <= 1.5 GiB. For scale,
 * the Collector's own published capacity is ~10-12k spans/s per core.
 *
 *   npm run bench -- ingest            (defaults below)
 *   BENCH_INGEST_SPANS=600000 npm run bench -- ingest
 */
import { readFileSync } from 'node:fs'
import { exported, makeSpans, sendSpans, SpanKind } from '../test/helpers/otel.js'
import { startService } from '../test/helpers/service.js'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'

const TOTAL_SPANS = Number(process.env.BENCH_INGEST_SPANS ?? 300_000)
const BATCH = Number(process.env.BENCH_INGEST_BATCH ?? 2_000)
const CONCURRENCY = Number(process.env.BENCH_INGEST_CONCURRENCY ?? 16)

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

async function main(): Promise<void> {
  console.log(`generating ${TOTAL_SPANS} spans with the OpenTelemetry SDK ...`)
  const batches: ReadableSpan[][] = []
  const start = Date.UTC(2026, 10, 2)
  for (let b = 0; b < TOTAL_SPANS / BATCH; b++) {
    batches.push(
      await makeSpans({ 'service.name': `agent-fleet-${b % 8}`, 'nhi.type': 'ai_agent', 'nhi.business_unit': b % 2 ? 'finance' : 'sales' }, (tracer) => {
        for (let i = 0; i < BATCH; i++) {
          const n = b * BATCH + i
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

  const service = await startService({ env: { NHI_METER_OTLP_AUTH: 'none' } })
  const pid = service.process.pid!
  const url = service.otlpUrl
  try {
    // Warm-up: one batch, not counted.
    const warm = await makeSpans({ 'service.name': 'warm-up' }, (t) => t.startSpan('x', { startTime: new Date(start) }).end(new Date(start + 1)))
    await sendSpans(warm, { url, protocol: 'protobuf' })

    let next = 0
    let acknowledged = 0
    let failed = 0
    const serviceCpuBefore = cpuSeconds(pid)
    const clientCpuBefore = process.cpuUsage()
    const began = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < batches.length) {
          const batch = batches[next++]!
          const result = await sendSpans(batch, { url, protocol: 'protobuf' })
          if (exported(result)) acknowledged += batch.length
          else failed += batch.length
        }
      }),
    )
    const seconds = (performance.now() - began) / 1000
    const rss = peakRssMiB(pid)
    const serviceCpu = cpuSeconds(pid) - serviceCpuBefore
    const clientCpuUsage = process.cpuUsage(clientCpuBefore)
    const clientCpu = (clientCpuUsage.user + clientCpuUsage.system) / 1e6

    const response = await fetch(`${service.apiUrl}/v1/billable?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&group_by=business_unit`, {
      headers: { Authorization: `Bearer ${service.adminKey}` },
    })
    const billable = (await response.json()) as { completeness: { spans: number } }
    const stored = billable.completeness.spans

    const rate = acknowledged / seconds
    console.log('')
    console.log('| figure | value |')
    console.log('|---|---|')
    console.log(`| spans acknowledged | ${acknowledged} (failed: ${failed}) |`)
    console.log(`| elapsed | ${seconds.toFixed(2)} s |`)
    console.log(`| ingest rate | ${Math.round(rate).toLocaleString('en-US')} spans/s (target >= 30,000) |`)
    console.log(`| service peak RSS | ${rss.toFixed(0)} MiB (target <= 1536 MiB) |`)
    console.log(`| activity spans in the ledger | ${stored} (expected ${acknowledged}) |`)
    console.log(`| CPU used by the service | ${serviceCpu.toFixed(1)} s (${((serviceCpu / acknowledged) * 1e6).toFixed(1)} µs per span) |`)
    console.log(`| CPU used by the load generator (SDK + exporter) | ${clientCpu.toFixed(1)} s on the same 2-core machine |`)
    console.log(`| exporters x batch | ${CONCURRENCY} x ${BATCH} spans, protobuf |`)
    if (stored !== acknowledged) console.log('!! the ledger does not hold every acknowledged span')
  } finally {
    await service.stop()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
