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
 * - per span: every span is read by the job once when its hour has closed
 *   and settled (no row of it newer than the grace), and once more when its
 *   day has (the day level, from the ledger); months are built from days.
 *   Measured by generating BENCH_SPANS (default 5M) long-tailed spans into
 *   one hour of yesterday (closed, within the two days the hour level
 *   keeps), waiting out the grace, and timing the run that summarises that
 *   hour and that day;
 * - per run: each run (every NHI_METER_ROLLUP_INTERVAL_SECONDS, default 60)
 *   looks for periods changed since the previous run by reading what was
 *   ingested since its watermark minus the 120 s grace: at 30,000 spans/s,
 *   (60 + 120) s x 30,000 = 5.4M rows. Measured by inserting that many spans
 *   into the current, open hour and timing runs that find nothing closed to
 *   rebuild.
 *
 * CPU share at 30,000 spans/s = per-span cost x 30,000 + per-run cost / 60 s.
 * It holds for spans that arrive on time (within the grace): a span that
 * arrives later for a closed hour or day makes the next run rebuild that
 * whole period (see the README's Known limits).
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
const GRACE_SECONDS = 120
const HOUR_SPANS = Number(process.env.BENCH_SPANS ?? 5_000_000)
const RECENT_SPANS = RATE * (INTERVAL_SECONDS + GRACE_SECONDS)

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
    // A closed hour is rebuilt once its rows are older than the grace (until then billing reads it from the ledger).
    await new Promise((resolve) => setTimeout(resolve, (GRACE_SECONDS + 1) * 1000))
    let firstPeriods = 0
    const first = await cpuSeconds(async () => {
      firstPeriods = (await runRollup(client, policy.rate_cards, GRACE_SECONDS)).periodsRebuilt
    })
    const perSpan = first.cpu / HOUR_SPANS

    // The open hour: what a run reads to find changes at 30,000 spans/s (the rows of the interval plus the grace).
    const openHour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000)
    const generate = await cpuSeconds(() =>
      client.command({
        query: longTailSql(''),
        query_params: { spans: RECENT_SPANS, start: clickhouseTime(openHour), span_ms: Math.max(1, Date.now() - openHour.getTime() - 1000) },
        clickhouse_settings: { wait_end_of_query: 1 },
      }),
    )
    const runs: Array<{ cpu: number; wall: number; periods: number }> = []
    for (let i = 0; i < 3; i++) {
      let periods = 0
      const measured = await cpuSeconds(async () => {
        periods = (await runRollup(client, policy.rate_cards, GRACE_SECONDS)).periodsRebuilt
      })
      runs.push({ ...measured, periods })
    }
    await client.close()
    runs.sort((a, b) => a.cpu - b.cpu)
    const perRun = runs[1]!
    const share = perSpan * RATE + perRun.cpu / INTERVAL_SECONDS

    console.log('')
    console.log('| figure | value |')
    console.log('|---|---|')
    console.log(`| first run: summarises one closed hour and its day (${firstPeriods} periods), ${HOUR_SPANS.toLocaleString('en-US')} long-tailed spans | ${first.cpu.toFixed(1)} CPU s (${first.wall.toFixed(1)} s wall): ${(perSpan * 1e6).toFixed(2)} CPU µs per span |`)
    console.log(`| a run that finds nothing closed, ${RECENT_SPANS.toLocaleString('en-US')} spans ingested within its look-back (generated in ${generate.wall.toFixed(0)} s) | median of 3: ${(perRun.cpu * 1000).toFixed(0)} CPU ms (${(perRun.wall * 1000).toFixed(0)} ms wall; periods rebuilt ${perRun.periods}) |`)
    console.log(`| CPU share of one core at ${RATE.toLocaleString('en-US')} spans/s, a run every ${INTERVAL_SECONDS} s | ${(share * 100).toFixed(1)} % (per span ${(perSpan * RATE * 100).toFixed(1)} %, per run ${((perRun.cpu / INTERVAL_SECONDS) * 100).toFixed(2)} %) (target <= 10 %) |`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
