/**
 * bench/entitlements: entitlement decisions over the shared 10M-span dataset
 * (1,000 identities, 30 days, 2 % duplicates; bench/_dataset.ts).
 *
 * The dataset's identities are undeclared, and undeclared activity earns
 * nothing, so the run first declares all 1,000 (each in the business unit
 * its spans name, approving every activity type, tool names by glob so the
 * approval match is exercised) and retires the declarations at the end,
 * leaving the shared dataset as it found it. With the dataset's policy (the
 * shipped default's rules: high_capacity_processing, 100 ok workflow runs in
 * 7d; premium_automation, 1 ok secret rotation in 30d), at the end of the
 * dataset's month, through the real app:
 *
 * - GET /v1/entitlements/{id}?at: p50 and p95 of 100 calls, 100 different
 *   identities (after 2 warm-up calls);
 * - POST /v1/entitlements/decide with 1,000 identities (every feature each):
 *   each of 5 runs, after one warm-up;
 * and checks that the batch and the single answers agree.
 *
 * Targets (README, Figures): single decision p50 <= 20 ms; 1,000-identity batch <= 1 s.
 */
import { createApp } from '../query-service/src/app.js'
import { KeyStore, sha256 } from '../query-service/src/auth/keys.js'
import { backfillIdentityActivity } from '../query-service/src/identities/backfill.js'
import { retireDeclarations, upsertInventory, type DeclaredIdentity } from '../query-service/src/identities/inventory.js'
import { parsePolicy } from '../query-service/src/policy/index.js'
import { DATASET_POLICY_YAML, DATASET_SHAPE, DATASET_TO, openDataset, settleMerges } from './_dataset.js'
import { percentile } from './_stats.js'

const KEY = 'nhim_bench_entitlements_key_0123456789ab'
const RUNS = 100
const BATCH_RUNS = 5
// The end of the dataset's month: every window ends where the data does.
const AT = DATASET_TO


interface Decision {
  nhi_id: string
  feature: string
  granted: boolean
  observed: number
  changes_at: string | null
}

async function main(): Promise<void> {
  const { client, buildSeconds } = await openDataset()
  const { policy } = parsePolicy(DATASET_POLICY_YAML)
  const keys = KeyStore.fromEntries([{ name: 'bench', sha256: sha256(KEY).toString('hex'), scopes: ['admin'] }])
  const headers = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }
  const app = createApp(
    { client, keys: () => keys, policy: () => policy }
  )

  const t = performance.now()
  const backfilled = await backfillIdentityActivity(client)
  const backfillSeconds = (performance.now() - t) / 1000

  // A freshly built or backfilled dataset is many overlapping parts that ClickHouse merges in the background
  // while the data is open; a live deployment's month-old data is merged. Let those merges finish first.
  const settleSeconds = await settleMerges(client, 'nhi_identity_activity')
  const [parts] = await (await client.query({ query: "SELECT count() AS n, sum(rows) AS rows FROM system.parts WHERE active AND table = 'nhi_identity_activity'", format: 'JSONEachRow' })).json<{ n: string; rows: string }>()

  // The long-tailed dataset: every tenth of its 10,000 identities, from the busiest to the quietest.
  const ids = Array.from({ length: 1000 }, (_, i) => (DATASET_SHAPE === 'longtail' ? `lt-${String(i * 10).padStart(5, '0')}` : `id-${String(i).padStart(4, '0')}`))
  const declarations: DeclaredIdentity[] = ids.map((id, i) => ({
    id,
    type: ['ai_agent', 'service_account', 'api_key', 'integration'][i % 4]!,
    owner: `team-${i % 40}`,
    business_unit: `bu-${i % 10}`,
    tier: 'high_capacity_processing+premium_automation',
    approved_activities: ['workflow_execution', 'secret_rotation', 'api_call', 'token_exchange', 'tool_invocation:tool-*'],
  }))
  await upsertInventory(client, declarations)
  try {
    const single: number[] = []
    const singleAnswers = new Map<string, Decision[]>()
    for (let i = 0; i < RUNS + 2; i++) {
      const id = ids[(i * 37) % ids.length]!
      const started = performance.now()
      const response = await app.request(`/v1/entitlements/${id}?at=${AT}`, { headers })
      const body = (await response.json()) as { features: Decision[] }
      if (response.status !== 200) throw new Error(`GET /v1/entitlements/${id}: ${response.status} ${JSON.stringify(body)}`)
      if (i >= 2) single.push(performance.now() - started)
      singleAnswers.set(id, body.features)
    }

    const batchBody = JSON.stringify({ at: AT, requests: ids.map((nhi_id) => ({ nhi_id })) })
    const batch: number[] = []
    let decisions: Decision[] = []
    for (let i = 0; i < BATCH_RUNS + 1; i++) {
      const started = performance.now()
      const response = await app.request('/v1/entitlements/decide', { method: 'POST', headers, body: batchBody })
      const body = (await response.json()) as { decisions: Decision[] }
      if (response.status !== 200) throw new Error(`POST /v1/entitlements/decide: ${response.status} ${JSON.stringify(body)}`)
      if (i >= 1) batch.push(performance.now() - started)
      decisions = body.decisions
    }

    const agree = [...singleAnswers].every(([id, features]) =>
      features.every((f) => {
        const d = decisions.find((x) => x.nhi_id === id && x.feature === f.feature)
        return d !== undefined && d.granted === f.granted && d.observed === f.observed && d.changes_at === f.changes_at
      }),
    )
    const granted = (feature: string) => decisions.filter((d) => d.feature === feature && d.granted).length

    console.log('')
    console.log('| figure | value |')
    console.log('|---|---|')
    if (buildSeconds > 0) console.log(`| dataset build (10M spans + 2 % duplicates, by SQL) | ${buildSeconds.toFixed(0)} s |`)
    if (backfilled !== null) console.log(`| backfill of nhi_identity_activity from the ledger (once per dataset) | ${backfillSeconds.toFixed(1)} s (${backfilled.toLocaleString('en-US')} rows) |`)
    console.log(`| background merges of nhi_identity_activity waited for | ${settleSeconds.toFixed(0)} s; ${parts?.n} parts, ${Number(parts?.rows).toLocaleString('en-US')} rows |`)
    console.log(`| GET /v1/entitlements/{id}: p50 / p95 of ${RUNS} identities | ${percentile(single, 50).toFixed(1)} ms / ${percentile(single, 95).toFixed(1)} ms (target p50 <= 20 ms) |`)
    console.log(`| POST /v1/entitlements/decide, 1,000 identities x 2 features: ${BATCH_RUNS} runs | ${batch.map((x) => x.toFixed(0)).join(', ')} ms; median ${percentile(batch, 50).toFixed(0)} ms (target <= 1 s) |`)
    console.log(`| granted at ${AT} | high_capacity_processing ${granted('high_capacity_processing')}, premium_automation ${granted('premium_automation')} of 1,000 |`)
    console.log(`| batch answers identical to single answers (${singleAnswers.size} identities) | ${agree ? 'yes' : 'NO'} |`)
  } finally {
    await retireDeclarations(client, ids, null)
    await client.close()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
