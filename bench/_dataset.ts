/**
 * The shared benchmark dataset (README, Figures): 10,000,000 use events of
 * 1,000 identities over 30 days (1-30 October 2026, a closed billing month
 * on this project's calendar), plus 2 % of them delivered
 * a second time, loaded into an embedded ClickHouse by SQL (the raw spans go
 * into otel_traces; the ledger view derives nhi_activity exactly as for
 * real ingest). Built once and cached under
 * ${NHI_METER_CACHE_DIR:-~/.cache/nhi-meter}/bench-<spans>; every benchmark
 * opens the same directory in turn (one process at a time).
 *
 * Shape, all deterministic from the event number n:
 * - identity `id-<hash(n) % 1000>`, each in one of 10 business units and 50 services;
 * - 50 % tool invocations (gen_ai execute_tool, 20 tool names), 20 % API
 *   calls (SERVER spans), 15 % workflow executions, 10 % token exchanges,
 *   5 % secret rotations; 3 % of spans have status Error;
 * - 1 % of spans carry no identity at all (they count against completeness).
 *
 * BENCH_SHAPE=longtail selects the long-tailed dataset (README, Figures: "Which shapes"), the shape
 * real NHI populations have, in its own directory:
 * - 10,000 identities with Zipf-like popularity (exponent 0.9: the busiest
 *   makes about 6 % of all calls, the median one about 0.005 %), drawn by
 *   inverting the continuous Zipf CDF;
 * - 40 % API calls over 300 HTTP routes and 40 % tool invocations over 40
 *   tools, each identity using its own subset (3-32 routes, 1-8 tools);
 *   10 % workflow executions (20 pipelines), 7 % token exchanges, 3 %
 *   secret rotations;
 * - 200 services and 20 business units; 3 % errors, 2 % duplicates, 1 %
 *   unidentified, as the default shape.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { openStorage } from '../query-service/src/storage/client.js'
import { migrate } from '../query-service/src/storage/migrations.js'

/** Number of unique spans (override with BENCH_SPANS for a quick run). */
export const DATASET_SPANS = Number(process.env.BENCH_SPANS ?? 10_000_000)
/** Every 50th span is delivered twice: 2 % duplicates. */
export const DUPLICATE_EVERY = 50
/** A policy for the dataset: the shipped default's meters, in force from the start of 2026. */
export const DATASET_POLICY_YAML = `
rate_cards:
  - version: "bench-2026"
    effective_from: "2026-01-01T00:00:00Z"
    currency: USD
    meters:
      - { name: tool_calls, activity_type: tool_invocation, unit_price: "0.002" }
      - { name: workflow_runs, activity_type: workflow_execution, unit_price: "0.01" }
      - { name: api_calls, activity_type: api_call, unit_price: "0.0001" }
      - { name: token_exchanges, activity_type: token_exchange, unit_price: "0.0005" }
      - { name: secret_rotations, activity_type: secret_rotation, unit_price: "0" }
entitlements:
  - { feature: high_capacity_processing, activity_type: workflow_execution, min_count: 100, window: 7d }
  - { feature: premium_automation, activity_type: secret_rotation, min_count: 1, window: 30d }
`

/** The month the data covers. */
export const DATASET_FROM = '2026-10-01T00:00:00Z'
/** End of the month (exclusive). */
export const DATASET_TO = '2026-11-01T00:00:00Z'

/**
 * Which dataset: `default` (1,000 evenly busy identities), `longtail`
 * (BENCH_SHAPE=longtail) or `longtail-agents` (BENCH_SHAPE=longtail-agents:
 * the long tail with a quarter of its tool calls turned into model calls
 * that carry token counts; see {@link longTailSql}).
 */
export const DATASET_SHAPE: 'default' | 'longtail' | 'longtail-agents' =
  process.env.BENCH_SHAPE === 'longtail' ? 'longtail' : process.env.BENCH_SHAPE === 'longtail-agents' ? 'longtail-agents' : 'default'

/** Meters an agent platform bills by, over the longtail-agents dataset: calls, tokens per model, active agents. */
export const AGENT_METERS_YAML = `
      - { name: model_calls, activity_type: model_call, unit_price: "0.001" }
      - name: gpt_input_tokens
        activity_type: model_call
        activity_name: "gpt-4o*"
        aggregation: sum
        value: gen_ai.usage.input_tokens
        tiers: [{ up_to: "100000000", unit_price: "0.0000025" }, { unit_price: "0.000002" }]
      - { name: other_input_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.000001" }
      - { name: output_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.output_tokens, unit_price: "0.00001" }
      - { name: active_agents, activity_type: model_call, aggregation: active_identities, min_events: 10, unit_price: "5.00" }
`

/**
 * The long-tailed generator (see the module note), with `n` the event
 * number; spans spread evenly over `{span_ms}` milliseconds from `{start}`
 * (query parameters; bench/_dataset.ts passes October 2026). With `agents`,
 * events 30-39 of each hundred are model calls instead of tool calls: a
 * chat (or, for the embedding model, embeddings) request to one of six
 * models, each identity using two or three, with long-tailed input token
 * counts (20 to 20,000, most small), output tokens up to 1,500, and 5 %
 * without any usage attributes (as a client that does not report them).
 */
export function longTailSql(where: string, agents = false): string {
  const toolMax = agents ? 30 : 40
  const isModel = `kind_pick >= ${toolMax} AND kind_pick < 40`
  return `
    INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
      ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage)
    SELECT
      toDateTime64({start:String}, 9, 'UTC') + toIntervalNanosecond(intDiv(n * {span_ms:UInt64}, {spans:UInt64}) * 1000000 + n % 1000) AS Timestamp,
      concat(leftPad(lower(hex(toUInt64(n))), 16, '0'), '6c6f6e677461696c') AS TraceId,
      leftPad(lower(hex(toUInt64(n * 2 + 1))), 16, '0') AS SpanId,
      '' AS ParentSpanId, '' AS TraceState,
      multiIf(kind_pick < ${toolMax}, 'execute_tool', ${isModel}, concat(if(model LIKE 'text-embedding%', 'embeddings ', 'chat '), model), kind_pick < 80, concat('GET ', route), kind_pick < 90, 'workflow.run', kind_pick < 97, 'token.exchange', 'secret.rotate') AS SpanName,
      if(kind_pick >= 40 AND kind_pick < 80, 'Server', 'Internal') AS SpanKind,
      concat('svc-', toString(identity % 200)) AS ServiceName,
      map('service.name', concat('svc-', toString(identity % 200)), 'nhi.business_unit', concat('bu-', toString(identity % 20)), 'nhi.owner', concat('team-', toString(identity % 150))) AS ResourceAttributes,
      'bench' AS ScopeName, '1.0.0' AS ScopeVersion,
      mapFilter((k, v) -> v != '', map(
        'nhi.id', if(unidentified, '', concat('lt-', leftPad(toString(identity), 5, '0'))),
        'nhi.type', if(unidentified, '', ['ai_agent', 'service_account', 'api_key', 'integration'][identity % 4 + 1]),
        'nhi.credential.id', if(unidentified, '', concat('fp_', lower(hex(intHash64(identity))))),
        'gen_ai.operation.name', multiIf(kind_pick < ${toolMax}, 'execute_tool', ${isModel}, if(model LIKE 'text-embedding%', 'embeddings', 'chat'), ''),
        'gen_ai.request.model', if(${isModel}, model, ''),
        'gen_ai.usage.input_tokens', if(${isModel} AND reports_usage, toString(20 + toUInt32(floor(pow(intHash32(n * 13) / 4294967296, 3) * 19980))), ''),
        'gen_ai.usage.output_tokens', if(${isModel} AND reports_usage AND model NOT LIKE 'text-embedding%', toString(5 + intHash32(n * 17) % 1500), ''),
        'gen_ai.tool.name', if(kind_pick < ${toolMax}, concat('tool-', toString((identity * 7 + pick % (1 + identity % 8)) % 40)), ''),
        'nhi.activity.type', multiIf(kind_pick >= 80 AND kind_pick < 90, 'workflow_execution', kind_pick >= 90 AND kind_pick < 97, 'token_exchange', kind_pick >= 97, 'secret_rotation', ''),
        'nhi.activity.name', multiIf(kind_pick >= 80 AND kind_pick < 90, concat('pipeline-', toString((identity + pick) % 20)), kind_pick >= 90 AND kind_pick < 97, 'oauth2.client_credentials', kind_pick >= 97, 'db-password', ''),
        'http.route', if(kind_pick >= 40 AND kind_pick < 80, route, '')
      )) AS SpanAttributes,
      1000000 + n % 5000000 AS Duration,
      if(intHash32(n * 7) % 100 < 3, 'Error', 'Unset') AS StatusCode,
      '' AS StatusMessage
    FROM (
      SELECT n, identity, kind_pick, pick, unidentified,
        concat('/v1/r', toString((identity * 13 + pick % (3 + identity % 30)) % 300), '/{id}') AS route,
        ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.5-pro', 'llama-3.1-70b', 'text-embedding-3-small'][(identity + pick % (2 + identity % 2)) % 6 + 1] AS model,
        intHash32(n * 19) % 100 >= 5 AS reports_usage
      FROM (
        SELECT number AS n,
          -- Zipf(0.9) over 10,000 by the inverse of the continuous CDF: x = (1 + u (N^0.1 - 1))^10.
          least(9999, toUInt32(floor(pow(1 + (intHash64(number) / 18446744073709551616) * (pow(10000, 0.1) - 1), 10))) - 1) AS identity,
          intHash32(number * 5) % 100 AS kind_pick,
          intHash32(number * 11) AS pick,
          intHash32(number * 3) % 100 = 0 AS unidentified
        FROM numbers({spans:UInt64})))
    ${where}
    SETTINGS max_insert_block_size = 1048576, max_block_size = 1048576`
}

/** The generator as SQL over `numbers(...)`, with `n` the event number. */
function generatorSql(where: string): string {
  if (DATASET_SHAPE !== 'default') return longTailSql(where, DATASET_SHAPE === 'longtail-agents')
  return `
    INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
      ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage)
    SELECT
      toDateTime64('2026-10-01 00:00:00', 9, 'UTC') + toIntervalNanosecond(intDiv(n * 2592000000, {spans:UInt64}) * 1000000 + n % 1000) AS Timestamp,
      concat(leftPad(lower(hex(toUInt64(n))), 16, '0'), '6e68696d62656e63') AS TraceId,
      leftPad(lower(hex(toUInt64(n * 2 + 1))), 16, '0') AS SpanId,
      '' AS ParentSpanId, '' AS TraceState,
      multiIf(kind_pick < 5, 'execute_tool', kind_pick < 7, 'GET /v1/orders/{id}', kind_pick < 8 AND n % 20 < 10, 'invoke_workflow', kind_pick < 8, 'workflow.run', kind_pick < 9, 'token.exchange', 'secret.rotate') AS SpanName,
      if(kind_pick >= 5 AND kind_pick < 7, 'Server', 'Internal') AS SpanKind,
      concat('svc-', toString(identity % 50)) AS ServiceName,
      map('service.name', concat('svc-', toString(identity % 50)), 'nhi.business_unit', concat('bu-', toString(identity % 10)), 'nhi.owner', concat('team-', toString(identity % 40))) AS ResourceAttributes,
      'bench' AS ScopeName, '1.0.0' AS ScopeVersion,
      mapFilter((k, v) -> v != '', map(
        'nhi.id', if(unidentified, '', concat('id-', leftPad(toString(identity), 4, '0'))),
        'nhi.type', if(unidentified, '', ['ai_agent', 'service_account', 'api_key', 'integration'][identity % 4 + 1]),
        'nhi.credential.id', if(unidentified, '', concat('fp_', lower(hex(intHash64(identity))))),
        'gen_ai.operation.name', multiIf(kind_pick < 5, 'execute_tool', kind_pick = 7 AND n % 20 < 10, 'invoke_workflow', ''),
        'gen_ai.tool.name', if(kind_pick < 5, concat('tool-', toString(n % 20)), ''),
        'nhi.activity.type', multiIf(kind_pick = 7 AND n % 20 >= 10, 'workflow_execution', kind_pick = 8, 'token_exchange', kind_pick = 9, 'secret_rotation', ''),
        'nhi.activity.name', multiIf(kind_pick = 7, concat('pipeline-', toString(n % 5)), kind_pick = 8, 'oauth2.client_credentials', kind_pick = 9, 'db-password', ''),
        'http.route', if(kind_pick >= 5 AND kind_pick < 7, '/v1/orders/{id}', '')
      )) AS SpanAttributes,
      1000000 + n % 5000000 AS Duration,
      if(intHash32(n * 7) % 100 < 3, 'Error', 'Unset') AS StatusCode,
      '' AS StatusMessage
    FROM (SELECT number AS n, intHash32(number) % 1000 AS identity, number % 10 AS kind_pick, intHash32(number * 3) % 100 = 0 AS unidentified FROM numbers({spans:UInt64}))
    ${where}
    SETTINGS max_insert_block_size = 1048576, max_block_size = 1048576`
}

/**
 * Where the dataset lives. The version changes when a migration changes how
 * existing data is stored (v3: nhi_identity_activity's smaller compressed
 * blocks, migration 0021), so every benchmark reads data as a new deployment
 * writes it.
 */
export function datasetDir(spans = DATASET_SPANS): string {
  const name = DATASET_SHAPE === 'longtail' ? `bench-longtail-v1-${spans}` : DATASET_SHAPE === 'longtail-agents' ? `bench-longtail-agents-v1-${spans}` : `bench-v3-${spans}`
  return join(process.env.NHI_METER_CACHE_DIR ?? join(homedir(), '.cache', 'nhi-meter'), name)
}

/**
 * Opens the dataset, building it first if needed. Returns the client and
 * how long the build took (0 when it was cached).
 */
export async function openDataset(spans = DATASET_SPANS): Promise<{ client: ClickHouseClient; dir: string; buildSeconds: number }> {
  const dir = datasetDir(spans)
  const ready = join(dir, 'READY')
  if (existsSync(ready)) {
    const client = await openStorage({ kind: 'embedded', dataDir: join(dir, 'data') })
    await migrate(client)
    return { client, dir, buildSeconds: 0 }
  }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const client = await openStorage({ kind: 'embedded', dataDir: join(dir, 'data') })
  await migrate(client)
  const started = performance.now()
  console.log(`dataset: generating ${spans.toLocaleString('en-US')} spans (+${100 / DUPLICATE_EVERY} % duplicates) into ${dir} ...`)
  const params = DATASET_SHAPE !== 'default' ? { spans, start: '2026-10-01 00:00:00', span_ms: 2_592_000_000 } : { spans }
  await client.command({ query: generatorSql(''), query_params: params, clickhouse_settings: { wait_end_of_query: 1 } })
  await client.command({ query: generatorSql(`WHERE n % ${DUPLICATE_EVERY} = 0`), query_params: params })
  // A month-old partition of the identity ledger ends up in one part as
  // background merges run over the following hours; a fresh build is several
  // parts until they do, and every part is one more range each decision
  // reads. Merge it now, as that month would be by the time it is decided on.
  await client.command({ query: 'OPTIMIZE TABLE nhi_identity_activity FINAL' })
  const buildSeconds = (performance.now() - started) / 1000
  writeFileSync(ready, `${new Date().toISOString()}\n`)
  console.log(`dataset: built in ${buildSeconds.toFixed(0)} s`)
  return { client, dir, buildSeconds }
}

/**
 * Waits until ClickHouse has had no merge running (on `table`, or on any
 * table) for three checks a second apart, at most five minutes; returns the
 * seconds waited. A freshly built dataset, or a summary job's first run
 * over a whole month, is many overlapping parts that ClickHouse merges in
 * the background, taking both cores for a while; a live deployment's
 * month-old data is merged. Figures of settled data are taken after this.
 */
export async function settleMerges(client: ClickHouseClient, table?: string): Promise<number> {
  const started = performance.now()
  for (let quiet = 0; quiet < 3 && performance.now() - started < 300_000; ) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const [merging] = await (
      await client.query({ query: `SELECT count() AS n FROM system.merges ${table ? 'WHERE table = {table:String}' : ''}`, format: 'JSONEachRow', ...(table ? { query_params: { table } } : {}) })
    ).json<{ n: string }>()
    quiet = Number(merging?.n ?? 0) === 0 ? quiet + 1 : 0
  }
  return (performance.now() - started) / 1000
}
