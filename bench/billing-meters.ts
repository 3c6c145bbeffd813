/**
 * bench/billing-meters: a month bill with meters that sum model tokens and
 * count active identities (README, "Meters and pricing"), on the long-tailed dataset with model
 * calls (BENCH_SHAPE=longtail-agents, set here: 10,000 Zipf-popular
 * identities, 10 % of events chat or embedding calls to six models with
 * long-tailed token counts, 5 % of them without usage attributes;
 * bench/_dataset.ts).
 *
 * Measures, in one run on the same data:
 * - the summary job's first run for the agent policy (its rows keep token
 *   sums beside the counts);
 * - GET /v1/billable for October grouped by nhi.id,meter, p50 / p95 of 20
 *   after 10 warm-up requests, on settled data (background merges done),
 *   with the agent policy: calls, input tokens of gpt-4o* models (graduated
 *   tiers), other input tokens, output tokens, active agents (at least 10
 *   model calls in the month) besides the five count meters;
 * - the same bill with the count meters only (what the new meters cost) and
 *   with the agent policy but no active-identity meter (what counting active
 *   identities costs), the three bills taken in turn, round after round;
 * - the same bill read from the ledger only, and the exact raw query a user
 *   would write over otel_traces for the token sums (deduplicated by
 *   TraceId + SpanId), whose figures must equal the API's.
 *
 * Target (README, Figures): p50 <= 100 ms for the agent policy's month bill.
 */
import { createApp } from '../query-service/src/app.js'
import { KeyStore, sha256 } from '../query-service/src/auth/keys.js'
import { policyKey, runRollup } from '../query-service/src/billing/rollup.js'
import { parsePolicy, type Policy } from '../query-service/src/policy/index.js'
import { percentile } from './_stats.js'

process.env.BENCH_SHAPE = 'longtail-agents'
const { AGENT_METERS_YAML, DATASET_FROM, DATASET_POLICY_YAML, DATASET_SPANS, DATASET_TO, openDataset, settleMerges } = await import('./_dataset.js')

const KEY = 'nhim_bench_billing_key_0123456789abcdef'
const RUNS = 20
// Requests before the timed ones: V8 optimises the bill's loops over the first few (measured: the first after start-up
// took about 300 ms, the sixth about the steady figure), and a service that bills is warm.
const WARMUPS = 10

/** The dataset's policy with extra meters appended to its card. */
function policyWith(extraMeters: string): Policy {
  const yaml = DATASET_POLICY_YAML.replace(/(\n\s*- \{ name: secret_rotations[^\n]*)/, `$1${extraMeters.replace(/\n$/, '')}`)
  return parsePolicy(yaml, { source: 'bench policy' }).policy
}

interface Body {
  rows: Array<{ 'nhi.id': string; meter: string; quantity: number | string; amount: string }>
  total: { amount: string }
  meters: Array<{ meter: string; quantity: number | string; events: number; events_without_value?: number; amount: string }>
}

async function main(): Promise<void> {
  const { client, buildSeconds } = await openDataset()
  const agents = policyWith(AGENT_METERS_YAML)
  const noActive = policyWith(AGENT_METERS_YAML.split('\n').filter((line) => !line.includes('active_identities')).join('\n'))
  const countsOnly = parsePolicy(DATASET_POLICY_YAML, { source: 'bench policy' }).policy
  const keys = KeyStore.fromEntries([{ name: 'bench', sha256: sha256(KEY).toString('hex'), scopes: ['admin'] }])
  const url = `/v1/billable?from=${DATASET_FROM}&to=${DATASET_TO}&group_by=nhi.id,meter`
  const headers = { Authorization: `Bearer ${KEY}` }

  const rollupSeconds: Record<string, number> = {}
  for (const [name, policy] of [['agents', agents], ['no active', noActive], ['counts only', countsOnly]] as const) {
    const t = performance.now()
    await runRollup(client, policy.rate_cards, 0)
    rollupSeconds[name] = (performance.now() - t) / 1000
  }
  // The first runs over a whole month leave parts that ClickHouse merges for a while on both cores: the figures are of
  // settled data.
  const settleSeconds = await settleMerges(client)

  type Bills = { times: number[]; body: Body }
  // Each policy's bill in turn, round after round, so that none is timed while the process is still warming up or
  // after the others have warmed it: the comparisons are of like with like.
  async function timeBills(policies: Array<{ policy: Policy; grace?: number }>, runs: number, warmups = WARMUPS) {
    const apps = policies.map(({ policy, grace }) => createApp({ client, keys: () => keys, policy: () => policy, rollupGraceSeconds: grace ?? 0 }))
    const times = apps.map((): number[] => [])
    const texts = apps.map(() => '')
    for (let i = 0; i < runs + warmups; i++) {
      for (const [k, app] of apps.entries()) {
        const started = performance.now()
        const response = await app.request(url, { headers })
        // Timed until the whole body has arrived. Only the last is parsed, after the runs: parsing each would leave
        // the next run's garbage collector a client's 93,000 row objects to deal with.
        texts[k] = await response.text()
        if (i >= warmups) times[k]!.push(performance.now() - started)
      }
    }
    return apps.map((_, k) => ({ times: times[k]!, body: JSON.parse(texts[k]!) as Body }))
  }

  const [withAgents, withoutActive, counts] = (await timeBills([{ policy: agents }, { policy: noActive }, { policy: countsOnly }], RUNS)) as [Bills, Bills, Bills]
  const [ledgerOnly] = (await timeBills([{ policy: agents, grace: 10 * 365 * 86400 }], 3, 1)) as [Bills]

  // The exact raw query for the token meters: each span once (TraceId + SpanId), identified model calls whose
  // status is not Error, input tokens split by the first meter's model glob.
  const rawSql = `
    SELECT nhi_id,
           sumIf(input, startsWith(model, 'gpt-4o')) AS gpt_input_tokens,
           sumIf(input, NOT startsWith(model, 'gpt-4o')) AS other_input_tokens,
           sum(output) AS output_tokens
    FROM (
      SELECT any(SpanAttributes['nhi.id']) AS nhi_id, any(SpanAttributes['gen_ai.request.model']) AS model,
             any(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS input,
             any(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS output
      FROM otel_traces
      WHERE Timestamp >= '2026-10-01 00:00:00' AND Timestamp < '2026-11-01 00:00:00'
        AND SpanAttributes['nhi.id'] != '' AND StatusCode != 'Error'
        AND SpanAttributes['gen_ai.operation.name'] IN ('chat', 'embeddings')
      GROUP BY TraceId, SpanId)
    GROUP BY nhi_id`
  const rawTimes: number[] = []
  let rawRows: Array<Record<string, string>> = []
  for (let i = 0; i < 4; i++) {
    const started = performance.now()
    rawRows = await (await client.query({ query: rawSql, format: 'JSONEachRow' })).json()
    if (i >= 1) rawTimes.push(performance.now() - started)
  }
  const api = new Map(withAgents.body.rows.map((r) => [`${r['nhi.id']}|${r.meter}`, String(r.quantity)]))
  const mismatches = rawRows.flatMap((r) =>
    (['gpt_input_tokens', 'other_input_tokens', 'output_tokens'] as const).filter((m) => r[m] !== '0' && api.get(`${r.nhi_id}|${m}`) !== r[m]),
  )

  const [size] = await (
    await client.query({
      query: `SELECT (SELECT count() FROM nhi_activity) AS ledger,
                (SELECT count() FROM nhi_usage_summary FINAL WHERE level IN ('day', 'month') AND policy_key = {key:String}) AS summary`,
      format: 'JSONEachRow',
      query_params: { key: policyKey(agents.rate_cards) },
    })
  ).json<Record<string, string>>()

  const p50 = percentile(withAgents.times, 50)
  const meter = (name: string) => withAgents.body.meters.find((m) => m.meter === name)
  console.log('')
  console.log('| figure | value |')
  console.log('|---|---|')
  if (buildSeconds > 0) console.log(`| dataset build (${DATASET_SPANS.toLocaleString('en-US')} spans + 2 % duplicates, by SQL) | ${buildSeconds.toFixed(0)} s |`)
  console.log(`| summary job, first run: agent policy / no active meter / counts only | ${rollupSeconds['agents']!.toFixed(1)} s / ${rollupSeconds['no active']!.toFixed(1)} s / ${rollupSeconds['counts only']!.toFixed(1)} s |`)
  console.log(`| summary rows (days + months) for the agent policy | ${Number(size!.summary).toLocaleString('en-US')} (${((100 * Number(size!.summary)) / Number(size!.ledger)).toFixed(1)} % of ${Number(size!.ledger).toLocaleString('en-US')} ledger rows) |`)
  console.log(`| background merges after the first runs, waited for | ${settleSeconds.toFixed(0)} s |`)
  console.log(`| GET /v1/billable, month, nhi.id,meter, agent policy: p50 / p95 of ${RUNS} (after ${WARMUPS} warm-up requests) | ${p50.toFixed(1)} ms / ${percentile(withAgents.times, 95).toFixed(1)} ms (target p50 <= 100 ms) |`)
  console.log(`| same, without the active-identity meter | ${percentile(withoutActive.times, 50).toFixed(1)} ms |`)
  console.log(`| same, count meters only | ${percentile(counts.times, 50).toFixed(1)} ms |`)
  console.log(`| same, agent policy from the ledger only: p50 of ${ledgerOnly.times.length} | ${percentile(ledgerOnly.times, 50).toFixed(0)} ms |`)
  console.log(`| exact raw query over otel_traces for the token sums: p50 of ${rawTimes.length} | ${percentile(rawTimes, 50).toFixed(0)} ms (${(percentile(rawTimes, 50) / p50).toFixed(1)}x the bill) |`)
  console.log(`| rows / total | ${withAgents.body.rows.length} rows, ${withAgents.body.total.amount} USD |`)
  console.log(`| active agents / model calls / gpt-4o* input tokens (events without a value) | ${meter('active_agents')?.quantity} / ${meter('model_calls')?.quantity} / ${meter('gpt_input_tokens')?.quantity} (${meter('gpt_input_tokens')?.events_without_value}) |`)
  console.log(`| token sums identical to the raw query | ${mismatches.length === 0 ? 'yes' : `NO (${mismatches.length} differ)`} |`)
  console.log(`| summary answer identical to the ledger-only answer | ${JSON.stringify(ledgerOnly.body) === JSON.stringify(withAgents.body) ? 'yes' : 'NO'} |`)
  await client.close()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
