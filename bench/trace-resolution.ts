/**
 * bench/trace-resolution: what deciding agent-framework spans costs. The
 * dataset is agent traces as the frameworks emit them (README, "Agent
 * frameworks"), BENCH_TRACE_SPANS spans (default 10,000,000) over 30 days:
 * every trace is
 * - an `invoke_agent` span naming the agent only by `gen_ai.agent.name`
 *   (2,000 agents in 50 services, Zipf-like popularity: agent k of trace n
 *   is the integer part of 2000^u for a uniform u, so a few agents run most
 *   traces), with `user.id` as the principal;
 * - a turn span carrying the framework's placeholder agent name and id;
 * - 5 tool spans without identity (`execute_tool`, 40 tool names), one
 *   model call (`chat`), and
 * - for every third trace, one of the tools reached over MCP: an MCP client
 *   span under it and the MCP server's span under that (three spans, one
 *   tool call), on the server's own service.
 * Children are inserted before their parents (as exporters send them), in
 * batches of 512 traces' worth of spans, so the view splits every batch as
 * it does on real ingest.
 *
 * Measures, in one run: the job over the whole backlog (every event pending:
 * the worst case, e.g. after the job was off), its time per million spans
 * and per million decided events; a second run over nothing; and checks the
 * outcome: every tool call billed once to its agent.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { IDENTITY_DEFAULTS } from '../query-service/src/policy/index.js'
import { openStorage } from '../query-service/src/storage/client.js'
import { migrate } from '../query-service/src/storage/migrations.js'
import { placeholderRule, runTraceResolution } from '../query-service/src/traces/job.js'

const SPANS = Number(process.env.BENCH_TRACE_SPANS ?? 10_000_000)
/** Spans per trace: agent, turn, 5 tools, a model call, and on average one MCP pair for every third trace (2/3 of a span). */
const SPANS_PER_TRACE = 8 + 2 / 3
const TRACES = Math.floor(SPANS / SPANS_PER_TRACE)
const BATCH_TRACES = 200_000

// Per trace n (all deterministic): agent k, service, tool names. Span ids:
// n*16 + slot (slot 1 agent, 2 turn, 3..7 tools, 8 model, 9 MCP client, 10 MCP server).
function insertSql(where: string, slots: string): string {
  return `
    INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
      ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage)
    SELECT
      toDateTime64('2026-10-01 00:00:00', 9, 'UTC') + toIntervalNanosecond(intDiv(n * 2592000000, {traces:UInt64}) * 1000000 + slot * 1000) AS Timestamp,
      concat(leftPad(lower(hex(toUInt64(n))), 16, '0'), '6167656e74747263') AS TraceId,
      leftPad(lower(hex(toUInt64(n * 16 + slot))), 16, '0') AS SpanId,
      multiIf(slot = 1, '', slot = 2, leftPad(lower(hex(toUInt64(n * 16 + 1))), 16, '0'),
              slot = 9, leftPad(lower(hex(toUInt64(n * 16 + 3))), 16, '0'), slot = 10, leftPad(lower(hex(toUInt64(n * 16 + 9))), 16, '0'),
              leftPad(lower(hex(toUInt64(n * 16 + 2))), 16, '0')) AS ParentSpanId,
      '' AS TraceState,
      multiIf(slot = 1, concat('invoke_agent agent-', toString(agent)), slot = 2, 'unknown', slot <= 7, concat('execute_tool ', tool),
              slot = 8, 'chat model-a', slot = 9, concat('MCP send tools/call ', tool), concat('execute_tool ', tool)) AS SpanName,
      multiIf(slot = 9, 'Client', slot = 10, 'Server', slot IN (1, 8), 'Client', 'Internal') AS SpanKind,
      if(slot = 10, 'mcp-tools', concat('agents-', toString(agent % 50))) AS ServiceName,
      if(slot = 10, map('service.name', 'mcp-tools', 'nhi.id', 'mcp-tools-server'), map('service.name', concat('agents-', toString(agent % 50)))) AS ResourceAttributes,
      'bench' AS ScopeName, '1.0.0' AS ScopeVersion,
      mapFilter((k, v) -> v != '', map(
        'gen_ai.operation.name', multiIf(slot = 1, 'invoke_agent', slot = 2, 'unknown', slot = 8, 'chat', slot = 9, '', 'execute_tool'),
        'gen_ai.agent.name', multiIf(slot = 1, concat('agent-', toString(agent)), slot IN (2, 3, 4, 5, 6, 7, 8), 'OpenAI Agent', ''),
        'gen_ai.agent.id', if(slot IN (2, 3, 4, 5, 6, 7, 8), 'agent', ''),
        'gen_ai.tool.name', if(slot IN (3, 4, 5, 6, 7, 10), tool, ''),
        'gen_ai.request.model', if(slot = 8, 'model-a', ''),
        'mcp.method.name', if(slot IN (9, 10), 'tools/call', ''),
        'jsonrpc.request.id', if(slot IN (9, 10), toString(n % 7), ''),
        'user.id', if(slot = 1, concat('user-', toString(n % 5000)), ''),
        'nhi.id', if(slot = 10, concat('client-', toString(agent % 50)), '')
      )) AS SpanAttributes,
      1000000 AS Duration, 'Unset' AS StatusCode, '' AS StatusMessage
    FROM (
      SELECT n, slot, toUInt32(floor(pow(2000, (intHash32(n) % 1000000) / 1000000.0))) AS agent,
             concat('tool-', toString((n * 7 + if(slot IN (9, 10), 3, slot)) % 40)) AS tool
      FROM (SELECT number + {first:UInt64} AS n FROM numbers({count:UInt64}))
      ARRAY JOIN ${slots} AS slot
      ${where}
    )
    SETTINGS max_insert_block_size = 1048576`
}

async function main(): Promise<void> {
  const dir = join(process.env.NHI_METER_CACHE_DIR ?? join(homedir(), '.cache', 'nhi-meter'), `bench-traces-v1-${SPANS}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const client = await openStorage({ kind: 'embedded', dataDir: join(dir, 'data') })
  try {
    await migrate(client)
    console.log(`dataset: ${TRACES.toLocaleString('en-US')} agent traces (${SPANS.toLocaleString('en-US')} spans) into ${dir} ...`)
    let t = performance.now()
    for (let first = 0; first < TRACES; first += BATCH_TRACES) {
      const count = Math.min(BATCH_TRACES, TRACES - first)
      // Children first, parents last: the MCP server, then the client, tools and model call, then turn and agent.
      for (const slots of ['[10]', '[9]', '[3, 4, 5, 6, 7, 8]', '[2, 1]']) {
        const where = slots === '[10]' || slots === '[9]' ? 'WHERE n % 3 = 0' : ''
        await client.command({ query: insertSql(where, slots), query_params: { first, count, traces: TRACES }, clickhouse_settings: { wait_end_of_query: 1 } })
      }
    }
    const buildSeconds = (performance.now() - t) / 1000
    const [counts] = await (await client.query({ query: 'SELECT (SELECT count() FROM otel_traces) AS spans, (SELECT count() FROM nhi_trace_pending) AS pending', format: 'JSONEachRow' })).json<{ spans: string; pending: string }>()
    const spans = Number(counts!.spans)
    const pending = Number(counts!.pending)
    console.log(`dataset: built in ${buildSeconds.toFixed(0)} s; ${spans.toLocaleString('en-US')} spans, ${pending.toLocaleString('en-US')} use events pending`)

    const rule = placeholderRule({ ...IDENTITY_DEFAULTS, placeholder_agent_ids: [...IDENTITY_DEFAULTS.placeholder_agent_ids] })
    const cpu = process.cpuUsage()
    t = performance.now()
    const run = await runTraceResolution(client, rule, { waitSeconds: 0 })
    const seconds = (performance.now() - t) / 1000
    const used = process.cpuUsage(cpu)
    t = performance.now()
    const idle = await runTraceResolution(client, rule, { waitSeconds: 0 })
    const idleSeconds = (performance.now() - t) / 1000

    const [outcome] = await (
      await client.query({
        query: `SELECT countIf(activity_type = 'tool_invocation') AS tools, countIf(activity_type = 'tool_invocation' AND startsWith(nhi_id, 'agent:agents-')) AS tools_to_agents,
                       countIf(nhi_id = '') AS unidentified, countIf(nhi_id = 'mcp-tools-server' OR startsWith(nhi_id, 'client-')) AS to_server,
                       countIf(on_behalf_of = '') AS without_principal
                FROM nhi_activity FINAL`,
        format: 'JSONEachRow',
      })
    ).json<Record<string, string>>()
    const expectedTools = TRACES * 5

    console.log('')
    console.log(`trace resolution, whole backlog (${pending.toLocaleString('en-US')} events pending in ${spans.toLocaleString('en-US')} spans):`)
    console.log(`  decided: ${run.resolved.toLocaleString('en-US')} resolved, ${run.unresolved} unresolved, ${run.sameToolCall.toLocaleString('en-US')} same tool call; ${run.waiting} waiting; ${run.spansRead.toLocaleString('en-US')} spans read`)
    console.log(`  job time ${seconds.toFixed(1)} s wall: ${((seconds / spans) * 1e6).toFixed(2)} s per million spans, ${((seconds / pending) * 1e6).toFixed(2)} s per million pending events`)
    console.log(`  job process CPU (the TypeScript side; ClickHouse runs in-process too) ${((used.user + used.system) / 1e6).toFixed(1)} s`)
    console.log(`  second run with nothing to decide: ${(idleSeconds * 1000).toFixed(0)} ms (${idle.resolved + idle.unresolved + idle.sameToolCall} decided)`)
    console.log(`  outcome: ${Number(outcome!.tools).toLocaleString('en-US')} tool calls in the ledger (expected ${expectedTools.toLocaleString('en-US')}), ${Number(outcome!.tools_to_agents).toLocaleString('en-US')} billed to their agent, ${outcome!.to_server} to the MCP server or its client, ${outcome!.unidentified} unidentified, ${outcome!.without_principal} without principal`)
    const ok = Number(outcome!.tools) === expectedTools && Number(outcome!.tools_to_agents) === expectedTools && Number(outcome!.to_server) === 0 && Number(outcome!.unidentified) === 0
    console.log(`  every tool call billed once to its agent: ${ok ? 'yes' : 'NO'}`)
    writeFileSync(join(dir, 'LAST_RUN'), `${new Date().toISOString()} ${seconds.toFixed(1)} s\n`)
    if (!ok) process.exitCode = 1
  } finally {
    await client.close()
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true })
  }
}

void main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
