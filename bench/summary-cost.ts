/**
 * bench/summary-cost: what the usage summary job costs in CPU while a
 * service ingests 30,000 spans/s (target, README Figures: at most 10 % of one core).
 *
 * Two cores cannot ingest 30,000 spans/s and leave room to observe the job
 * for the hours and days its work is spread over (an hour at that rate is
 * 108M spans), so the figure is put together from the job's two costs,
 * each measured as CPU time of this process (the embedded ClickHouse runs
 * in it; nothing else runs during a measurement):
 *
 * - per span, once per hour and day: every span is read by the job once
 *   when its hour has closed, and once more when its day has (the day
 *   level, from the ledger); months are built from days. Measured by
 *   generating BENCH_SPANS (default 5M) long-tailed spans into one hour of
 *   yesterday (closed, within the two days the hour level keeps) and timing
 *   the run that summarises that hour and that day;
 * - per run: each run (every NHI_METER_ROLLUP_INTERVAL_SECONDS, default 60)
 *   reads what was ingested since the previous run (on the embedded engine
 *   no grace is added: it knows its writes under way), rebuilds the
 *   ten-second slices those spans fall in and grows the open hour's prefix:
 *   at 30,000 spans/s, 60 s x 30,000 = 1.8M spans. Measured by inserting
 *   that many spans, stamped over the minute before, and timing the run
 *   that follows (then two runs that find nothing new, for the fixed cost).
 *
 * CPU share at 30,000 spans/s = per-span cost x 30,000 + per-run cost / 60 s.
 * It holds for spans that arrive on time: a span that arrives after its
 * hour or day was summarised makes the next run rebuild that whole period
 * (see the README's Known limits).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runRollup } from '../query-service/src/billing/rollup.js'
import { parsePolicy } from '../query-service/src/policy/index.js'
import { openStorage } from '../query-service/src/storage/client.js'
import { migrate } from '../query-service/src/storage/migrations.js'
import { DATASET_POLICY_YAML, longTailSql } from './_dataset.js'

const RATE = 30_000
const INTERVAL_SECONDS = 60
const HOUR_SPANS = Number(process.env.BENCH_SPANS ?? 5_000_000)
const RECENT_SPANS = RATE * INTERVAL_SECONDS

/** CPU seconds (user + system, all threads of this process) that `work` took. */
async function cpuSeconds(work: () => Promise<unknown>): Promise<{ cpu: number; wall: number }> {
  const cpu = process.cpuUsage()
  const started = performance.now()
  await work()
  const used = process.cpuUsage(cpu)
  return { cpu: (used.user + used.system) / 1e6, wall: (performance.now() - started) / 1000 }
}

const clickhouseTime = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ')

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-meter-bench-summary-'))
  const { policy } = parsePolicy(DATASET_POLICY_YAML, { source: 'bench policy' })
  try {
    const client = await openStorage({ kind: 'embedded', dataDir: join(dir, 'data') })
    await migrate(client)
    const now = new Date()
    // 10:00-11:00 UTC yesterday: a closed hour of a closed day, inside the two days the hour level keeps.
    const hour = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 1, 10))
    await client.command({
      query: longTailSql(''),
      query_params: { spans: HOUR_SPANS, start: clickhouseTime(hour), span_ms: 3_600_000 },
      clickhouse_settings: { wait_end_of_query: 1 },
    })
    let firstPeriods = 0
    const first = await cpuSeconds(async () => {
      firstPeriods = (await runRollup(client, policy.rate_cards)).periodsRebuilt
    })
    const perSpan = first.cpu / HOUR_SPANS

    // What a run reads, and summarises into slices, at 30,000 spans/s: the spans of the minute before it, stamped
    // as they arrived.
    const minuteAgo = new Date(Date.now() - INTERVAL_SECONDS * 1000 - 1000)
    const generate = await cpuSeconds(() =>
      client.command({
        query: longTailSql(''),
        query_params: { spans: RECENT_SPANS, start: clickhouseTime(minuteAgo), span_ms: INTERVAL_SECONDS * 1000 },
        clickhouse_settings: { wait_end_of_query: 1 },
      }),
    )
    let slices = 0
    const perRun = await cpuSeconds(async () => {
      slices = (await runRollup(client, policy.rate_cards)).slicesRebuilt
    })
    const idle: number[] = []
    for (let i = 0; i < 2; i++) idle.push((await cpuSeconds(() => runRollup(client, policy.rate_cards))).cpu)
    await client.close()
    const share = perSpan * RATE + perRun.cpu / INTERVAL_SECONDS

    console.log('')
    console.log('| figure | value |')
    console.log('|---|---|')
    console.log(`| first run: summarises one closed hour and its day (${firstPeriods} periods), ${HOUR_SPANS.toLocaleString('en-US')} long-tailed spans | ${first.cpu.toFixed(1)} CPU s (${first.wall.toFixed(1)} s wall): ${(perSpan * 1e6).toFixed(2)} CPU µs per span |`)
    console.log(`| a run after ${RECENT_SPANS.toLocaleString('en-US')} spans of the minute before it arrived (generated in ${generate.wall.toFixed(0)} s): reads them, rebuilds their slices, grows the hour's prefix | ${(perRun.cpu * 1000).toFixed(0)} CPU ms (${(perRun.wall * 1000).toFixed(0)} ms wall; ${slices} slices and prefixes); a run that finds nothing new: ${idle.map((c) => (c * 1000).toFixed(0)).join(', ')} CPU ms |`)
    console.log(`| CPU share of one core at ${RATE.toLocaleString('en-US')} spans/s, a run every ${INTERVAL_SECONDS} s | ${(share * 100).toFixed(1)} % (per span ${(perSpan * RATE * 100).toFixed(1)} %, per run ${((perRun.cpu / INTERVAL_SECONDS) * 100).toFixed(2)} %) (target <= 10 %) |`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
