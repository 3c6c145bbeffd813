/**
 * API fuzzing from our own contract: schemathesis reads the running
 * service's /openapi.json and generates valid and invalid requests for
 * every operation (examples, boundary coverage, random fuzzing and stateful
 * sequences that feed one response into the next request), POST routes
 * included. Every response must be a non-5xx answer whose status, content
 * type, headers and body the document declares, and schema-violating input
 * must be refused. The service is the real `npm start` process on loopback,
 * loaded with spans through the OTLP receiver and a declared inventory; it
 * is a throw-away instance, so POST /v1/statements may close months.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hardeningTools } from '../helpers/tools.js'
import { startSeededService, type SeededService } from './fuzz-fixture.js'
import { describeFailures, parseJunitReport, runSchemathesis } from './fuzz-schemathesis.js'

const tools = hardeningTools()
/** Fixed, so a failure reproduces; NHI_METER_FUZZ_SEED and NHI_METER_FUZZ_EXAMPLES widen a local run. */
const SEED = Number(process.env.NHI_METER_FUZZ_SEED ?? 20261129)
const MAX_EXAMPLES = Number(process.env.NHI_METER_FUZZ_EXAMPLES ?? 40)

let seeded: SeededService

beforeAll(async () => {
  if (tools.skipReason) return
  seeded = await startSeededService()
}, 180_000)

afterAll(async () => {
  await seeded?.service.stop()
})

/** Every "METHOD /path" the document declares. */
async function documentedOperations(apiUrl: string): Promise<string[]> {
  const document = (await (await fetch(`${apiUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> }
  return Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
}

describe.skipIf(tools.skipReason !== undefined)('schemathesis against /openapi.json', () => {
  it('reads a failure schemathesis really found: a response that breaks a deliberately wrong document', async () => {
    // The service's own document with one lie in it: /healthz answers {"status":"ok"}, the copy says "down".
    const document = (await (await fetch(`${seeded.service.apiUrl}/openapi.json`)).json()) as { paths: Record<string, { get: { responses: Record<string, unknown> } }> }
    document.paths['/healthz']!.get.responses['200'] = {
      description: 'up',
      content: { 'application/json': { schema: { type: 'object', required: ['status'], properties: { status: { const: 'down' } } } } },
    }
    const file = join(mkdtempSync(join(tmpdir(), 'nhi-fuzz-lie-')), 'openapi.json')
    writeFileSync(file, JSON.stringify(document))
    const result = await runSchemathesis({
      schemathesis: tools.schemathesis!,
      schema: file,
      baseUrl: seeded.service.apiUrl,
      headers: {},
      seed: SEED,
      maxExamples: 5,
      args: ['--include-path', '/healthz', '--phases', 'examples,coverage,fuzzing'],
      timeoutMs: 120_000,
    })
    expect(result.exitCode).toBe(1)
    expect(result.failures.map((f) => f.operation)).toEqual(['GET /healthz'])
    expect(result.failures[0]!.detail).toMatch(/schema/i)
    expect(result.failures[0]!.detail).toContain('"status":"ok"')
  }, 150_000)

  it('reads a JUnit report without failures as clean, and refuses text that is no report', () => {
    const clean = parseJunitReport('<?xml version="1.0"?><testsuites><testsuite name="schemathesis"><testcase name="GET /healthz" time="0.1" /><testcase name="POST /v1/statements" time="1.0"></testcase></testsuite></testsuites>')
    expect(clean).toEqual({ testCases: ['GET /healthz', 'POST /v1/statements'], failures: [] })
    const failed = parseJunitReport('<testsuites><testsuite><testcase name="GET /v1/x"><error type="error" message="ST101">[500] &lt;b&gt; &amp;</error></testcase></testsuite></testsuites>')
    expect(failed.failures).toEqual([{ operation: 'GET /v1/x', codes: 'ST101', detail: '[500] <b> &' }])
    expect(() => parseJunitReport('Traceback (most recent call last):')).toThrow(/not a JUnit report/)
  })

  it('finds no server error and no response outside the document in any operation, with POST routes included', async () => {
    const { service, key } = seeded
    const operations = await documentedOperations(service.apiUrl)
    const result = await runSchemathesis({
      schemathesis: tools.schemathesis!,
      schema: `${service.apiUrl}/openapi.json`,
      headers: { Authorization: `Bearer ${key}` },
      seed: SEED,
      maxExamples: MAX_EXAMPLES,
      timeoutMs: 400_000,
    })
    console.log(
      `schemathesis: ${operations.length} operations, ${result.generated ?? '?'} test cases generated (seed ${SEED}, at most ${MAX_EXAMPLES} per operation and phase), ` +
        `${result.failures.length} failures, ${result.seconds.toFixed(0)} s`,
    )
    expect(result.failures, describeFailures(result.failures)).toEqual([])
    expect(result.exitCode).toBe(0)
    // Every documented operation was exercised (but the document itself, which schemathesis reads instead), so a new route is fuzzed without touching this test.
    expect(result.testCases.filter((name) => name !== 'Stateful tests').sort()).toEqual(operations.filter((op) => op !== 'GET /openapi.json').sort())
    expect(result.generated).toBeGreaterThan(operations.length * 20)

    // Still up and still answering with real data; nothing reached the unexpected-error handler.
    expect((await fetch(`${service.apiUrl}/healthz`)).status).toBe(200)
    const bill = await fetch(`${service.apiUrl}/v1/billable`, { headers: { Authorization: `Bearer ${key}` } })
    expect(bill.status).toBe(200)
    expect(((await bill.json()) as { total: { quantity: number } }).total.quantity).toBeGreaterThan(0)
    expect(service.output()).not.toMatch(/request \S+ failed/)
  }, 450_000)
})

if (tools.skipReason) console.warn(`test/hardening/api-fuzz.test.ts: skipped. ${tools.skipReason}`)
