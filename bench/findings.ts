/**
 * bench/findings: every finding for a month over the shared 10M-span dataset
 * (1,000 identities, 30 days, 2 % duplicates; bench/_dataset.ts).
 *
 * Measures GET /v1/findings for October (all kinds, default detection
 * thresholds, an admin key) through the real app: p50 and p95 of 7 calls
 * after 2 warm-up calls; GET /v1/telemetry/completeness for the same month;
 * and prints what the month yields per kind, and the merge state of the
 * tables read with FINAL (unmerged parts make FINAL dearer).
 *
 * As in production, the usage rollup job has run before the requests
 * (per-service completeness reads clean rolled-up periods from it; a grace
 * of 0 s for a freshly built dataset, as bench/billing uses), and the
 * findings digest holds the whole month (a dataset built before migration
 * 0020 gets the one-off backfill a service runs at start).
 *
 * Target (README, Figures): all findings for a month <= 2 s. Benchmarks do not assert.
 */
import { createApp } from '../query-service/src/app.js'
import { KeyStore, sha256 } from '../query-service/src/auth/keys.js'
import { runRollup } from '../query-service/src/billing/rollup.js'
import { backfillFindingsDigest } from '../query-service/src/findings/digest.js'
import type { Finding } from '../query-service/src/findings/kinds.js'
import { parsePolicy } from '../query-service/src/policy/index.js'
import { DATASET_FROM, DATASET_POLICY_YAML, DATASET_TO, openDataset } from './_dataset.js'
import { percentile } from './_stats.js'

const KEY = 'nhim_bench_findings_key_0123456789abcdef'
const WARMUP = 2
const RUNS = 7


async function main(): Promise<void> {
  const { client, buildSeconds } = await openDataset()
  const { policy } = parsePolicy(DATASET_POLICY_YAML, { source: 'bench policy' })
  const keys = KeyStore.fromEntries([{ name: 'bench', sha256: sha256(KEY).toString('hex'), scopes: ['admin'] }])
  const app = createApp({ client, keys: () => keys, policy: () => policy, rollupGraceSeconds: 0 })
  const headers = { Authorization: `Bearer ${KEY}` }

  // Background work a running service does on its own: the usage rollup job, and (once, for a
  // dataset built before migration 0020) the findings digest backfill.
  let started = performance.now()
  const digestRows = await backfillFindingsDigest(client)
  const digestSeconds = (performance.now() - started) / 1000
  started = performance.now()
  const rollup = await runRollup(client, policy.rate_cards, 0)
  const rollupSeconds = (performance.now() - started) / 1000

  async function time(url: string): Promise<{ times: number[]; body: unknown }> {
    const times: number[] = []
    let body: unknown
    for (let i = 0; i < WARMUP + RUNS; i++) {
      started = performance.now()
      const response = await app.request(url, { headers })
      if (response.status !== 200) throw new Error(`${url}: ${response.status} ${await response.text()}`)
      body = await response.json()
      if (i >= WARMUP) times.push(performance.now() - started)
    }
    return { times, body }
  }

  const findings = await time(`/v1/findings?from=${DATASET_FROM}&to=${DATASET_TO}`)
  const completeness = await time(`/v1/telemetry/completeness?from=${DATASET_FROM}&to=${DATASET_TO}`)

  const byKind = new Map<string, number>()
  for (const f of (findings.body as { findings: Finding[] }).findings) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1)
  const parts = await (
    await client.query({
      query: `SELECT table, count() AS parts, sum(rows) AS rows FROM system.parts
              WHERE active AND database = currentDatabase() AND table IN ('nhi_activity', 'nhi_identity_activity', 'nhi_usage_summary', 'nhi_identity_hours', 'nhi_identity_days')
              GROUP BY table ORDER BY table`,
      format: 'JSONEachRow',
    })
  ).json<{ table: string; parts: string; rows: string }>()

  console.log(`dataset: ${buildSeconds > 0 ? `built in ${buildSeconds.toFixed(0)} s` : 'cached'}; ${parts.map((p) => `${p.table} ${Number(p.rows).toLocaleString('en-US')} rows in ${p.parts} parts`).join(', ')}`)
  console.log(`before the requests: findings digest backfill ${digestRows === null ? 'already done' : `${digestSeconds.toFixed(1)} s (${digestRows.toLocaleString('en-US')} ledger rows)`}; rollup job ${rollupSeconds.toFixed(1)} s (${rollup.hoursRecomputed} hours)`)
  console.log(`GET /v1/findings, October, all kinds: p50 ${percentile(findings.times, 50).toFixed(0)} ms, p95 ${percentile(findings.times, 95).toFixed(0)} ms (${RUNS} calls; target <= 2000 ms)`)
  console.log(`  findings by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`)
  console.log(`GET /v1/telemetry/completeness, October: p50 ${percentile(completeness.times, 50).toFixed(0)} ms, p95 ${percentile(completeness.times, 95).toFixed(0)} ms`)
  await client.close()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
