/**
 * Several query services on one ClickHouse (README, "Scaling out"): three processes run
 * as `npm start` runs, with the same `CLICKHOUSE_URL`, behind no load
 * balancer but each sent its share of the spans, as one would send them. The
 * server is the real ClickHouse engine behind its HTTP interface (test
 * fixture, helpers/clickhouse-http-server.ts: no ClickHouse server is
 * obtainable here).
 *
 * - The usage summary job runs in all three at once, every second: the
 *   summary holds every closed day and month, each span once (no double
 *   counting, no lost period), and every process bills the same.
 * - Two processes close the same month at the same moment: one statement,
 *   and the hash chain does not fork when the next month is closed.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startClickHouseHttp, type ClickHouseHttp } from './helpers/clickhouse-http.js'
import { REPO_ROOT, startService, tempDataDir, type ServiceUnderTest } from './helpers/service.js'

const IDS = ['agent-1', 'agent-2', 'agent-3', 'agent-4']
/** Spans per identity per day, over 5 days of October 2026 (a closed month). */
const PER_DAY = 30
const DAYS = [3, 9, 15, 22, 30]

let clickhouse: ClickHouseHttp
const services: ServiceUnderTest[] = []
let direct: ClickHouseClient
let key: string

/** OTLP/JSON for the spans numbered in `numbers`: identity (a resource of its own), day and time follow from the number. */
function exportBody(numbers: number[]): string {
  const resourceSpans = IDS.map((id, i) => ({
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'agents' } }, { key: 'nhi.id', value: { stringValue: id } }] },
    scopeSpans: [
      {
        spans: numbers
          .filter((n) => n % IDS.length === i)
          .map((n) => {
            const day = DAYS[Math.floor(n / (IDS.length * PER_DAY)) % DAYS.length]!
            const start = BigInt(Date.UTC(2026, 9, day, 1 + (n % 20), n % 60)) * 1_000_000n
            return {
              traceId: `a${(n + 1).toString(16).padStart(31, '0')}`,
              spanId: (n + 1).toString(16).padStart(16, '0'),
              name: 'execute_tool',
              kind: 1,
              startTimeUnixNano: String(start),
              endTimeUnixNano: String(start + 1_000_000n),
              attributes: [
                { key: 'gen_ai.operation.name', value: { stringValue: 'execute_tool' } },
                { key: 'gen_ai.tool.name', value: { stringValue: 'lookup' } },
              ],
            }
          }),
      },
    ],
  }))
  return JSON.stringify({ resourceSpans })
}

const TOTAL = IDS.length * PER_DAY * DAYS.length

async function post(service: ServiceUnderTest, url: string, body: string): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body, signal: AbortSignal.timeout(30_000) })
}

beforeAll(async () => {
  clickhouse = await startClickHouseHttp()
  // The shipped policy, its card in force from the start of 2026, so October and November both bill.
  const policyFile = join(tempDataDir('nhi-meter-policy-'), 'policy.yaml')
  writeFileSync(policyFile, readFileSync(join(REPO_ROOT, 'query-service/policy/default-policy.yaml'), 'utf8').replace('effective_from: "2026-11-01T00:00:00Z"', 'effective_from: "2026-01-01T00:00:00Z"'))
  // A grace of 2 s: periods are summarised once their rows are that old, so the test need not wait the default 120 s.
  const env = { CLICKHOUSE_URL: clickhouse.url, NHI_METER_POLICY: policyFile, NHI_METER_ROLLUP_INTERVAL_SECONDS: '1', NHI_METER_ROLLUP_GRACE_SECONDS: '2', NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS: '1' }
  // The first creates the schema and the admin key; the others find both.
  services.push(await startService({ env, timeoutMs: 60_000 }))
  key = services[0]!.adminKey!
  services.push(...(await Promise.all([startService({ env, timeoutMs: 60_000 }), startService({ env, timeoutMs: 60_000 })])))
  direct = createClient({ url: clickhouse.url })

  // Each process receives a third of the spans, and a sixth of all spans is sent to a second process too.
  const numbers = Array.from({ length: TOTAL }, (_, n) => n)
  const shares = services.map((_, i) => numbers.filter((n) => n % services.length === i || (n % 6 === 0 && n % services.length === (i + 1) % services.length)))
  const answers = await Promise.all(services.map((s, i) => post(s, s.otlpUrl, exportBody(shares[i]!))))
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200])
}, 180_000)

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()))
  await direct?.close()
  await clickhouse?.stop()
})

describe('three query services on one ClickHouse', () => {
  it('all run the summary job at once, and the summary holds every closed day and month with each span once', async () => {
    const counts = async () =>
      (
        await (
          await direct.query({
            query: `SELECT level, sum(arraySum(events)) AS events, count() AS rows FROM nhi_usage_summary FINAL WHERE nhi_id != '' AND toYYYYMM(period) = 202610 GROUP BY level ORDER BY level`,
            format: 'JSONEachRow',
          })
        ).json<{ level: string; events: string }>()
      ).map((r) => `${r.level} ${r.events}`)
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline && JSON.stringify(await counts()) !== JSON.stringify([`day ${TOTAL}`, `month ${TOTAL}`])) await new Promise((r) => setTimeout(r, 500))
    expect(await counts()).toEqual([`day ${TOTAL}`, `month ${TOTAL}`])
    // The three keep running it (each run writes a row); after many runs at once the counts are still each span once.
    const runs = async () => Number((await (await direct.query({ query: 'SELECT count() AS runs FROM nhi_usage_summary_runs', format: 'JSONEachRow' })).json<{ runs: string }>())[0]!.runs)
    const before = await runs()
    const until = Date.now() + 30_000
    while (Date.now() < until && (await runs()) < before + 6) await new Promise((r) => setTimeout(r, 250))
    expect(await runs()).toBeGreaterThanOrEqual(before + 6)
    expect(await counts()).toEqual([`day ${TOTAL}`, `month ${TOTAL}`])
    const days = await (
      await direct.query({ query: "SELECT toDayOfMonth(period) AS day FROM nhi_usage_summary_periods FINAL WHERE level = 'day' ORDER BY day", format: 'JSONEachRow' })
    ).json<{ day: number }>()
    expect(new Set(days.map((d) => d.day))).toEqual(new Set(DAYS))
  })

  it('bills the same from every process: each span once, however many processes received it', async () => {
    const bills = await Promise.all(
      services.map(async (s) => {
        const response = await fetch(`${s.apiUrl}/v1/billable?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&group_by=nhi.id`, { headers: { authorization: `Bearer ${key}` } })
        return (await response.json()) as { rows: Array<{ 'nhi.id': string; quantity: number }>; total: { quantity: number } }
      }),
    )
    for (const bill of bills) {
      expect(bill.total.quantity).toBe(TOTAL)
      expect(bill.rows.map((r) => [r['nhi.id'], r.quantity])).toEqual(IDS.map((id) => [id, TOTAL / IDS.length]))
    }
  })

  it('closes a month once when two processes close it at the same moment, and the chain never forks', async () => {
    const close = (s: ServiceUnderTest, period: string) => post(s, `${s.apiUrl}/v1/statements`, JSON.stringify({ period }))
    const october = await Promise.all([close(services[0]!, '2026-10'), close(services[1]!, '2026-10')])
    const statuses = october.map((r) => r.status)
    expect(statuses).toContain(201)
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true)
    // November from two processes at once, one of them a second after: still one statement after October's.
    const november = await Promise.all([close(services[1]!, '2026-11'), close(services[2]!, '2026-11')])
    expect(november.map((r) => r.status)).toContain(201)
    const list = (await (await fetch(`${services[2]!.apiUrl}/v1/statements`, { headers: { authorization: `Bearer ${key}` } })).json()) as { statements: Array<{ period: string }> }
    expect(list.statements.map((s) => s.period)).toEqual(['2026-10', '2026-11'])
    const read = async (period: string) => (await (await fetch(`${services[0]!.apiUrl}/v1/statements/${period}`, { headers: { authorization: `Bearer ${key}` } })).json()) as { content_hash: string; previous: { content_hash: string } | null; total: { quantity: number } }
    const [oct, nov] = [await read('2026-10'), await read('2026-11')]
    expect(oct.total.quantity).toBe(TOTAL)
    expect(nov.previous?.content_hash).toBe(oct.content_hash)
  })
})
