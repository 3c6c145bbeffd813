import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startOtlpSink, type OtlpSink, type ReceivedRequest } from './otlp-sink.js'

let sink: OtlpSink
let endpoint: string
let requests: ReceivedRequest[] = []

beforeAll(async () => {
  sink = await startOtlpSink()
  endpoint = sink.endpoint
})
afterAll(() => sink.close())
beforeEach(() => {
  sink.clear()
  requests = sink.requests
})

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const app = fileURLToPath(new URL('./fixtures/zero-code-app.ts', import.meta.url))

function runApp(env: Record<string, string>, signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=nhi-meter-source', '--import', 'tsx', '--import', '@nhi-meter/instrumentation/register', app],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH,
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer test-ingest-key',
          OTEL_SERVICE_NAME: 'zero-code-app',
          OTEL_LOG_LEVEL: 'info',
          NHI_ID: 'svc-zero',
          NHI_TYPE: 'workload',
          NHI_BUSINESS_UNIT: 'research',
          NHI_CREDENTIAL_FINGERPRINT_KEY: 'test-key',
          ...env,
        },
      },
    )
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (signal && output.includes('ready')) setTimeout(() => child.kill(signal), 100)
    })
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.on('error', reject)
    child.on('exit', (code, sig) => resolve({ code, signal: sig, output }))
  })
}

/** Spans of the OTLP/JSON requests received. */
function receivedSpans(received = sink.requests) {
  return sink.spans(received)
}

/** One run with the default settings but JSON bodies (readable in assertions), shared by the tests that only read its outcome. */
let defaultRun: Promise<{ code: number | null; output: string; received: ReceivedRequest[] }> | undefined
function runDefault() {
  defaultRun ??= runApp({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).then((result) => ({ ...result, received: sink.requests }))
  return defaultRun
}

describe('zero-code start (node --import @nhi-meter/instrumentation/register)', () => {
  it('exports the app’s spans over OTLP/HTTP with the NHI and OTEL settings from the environment', async () => {
    const { code, output, received } = await runDefault()
    expect(code, output).toBe(0)
    const spans = receivedSpans(received)
    expect(spans.map((s) => s.name).sort()).toEqual(['execute_tool summarise', 'process-level work'])
    const tool = spans.find((s) => s.name === 'execute_tool summarise')!
    expect(tool.attributes).toMatchObject({ 'nhi.id': 'agent-zero', 'nhi.type': 'ai_agent', 'gen_ai.tool.name': 'summarise' })
    expect(tool.resource).toMatchObject({ 'service.name': 'zero-code-app', 'nhi.id': 'svc-zero', 'nhi.type': 'workload', 'nhi.business_unit': 'research' })
    expect(spans.find((s) => s.name === 'process-level work')!.attributes['nhi.id']).toBeUndefined()
    const traces = received.find((r) => r.path === '/v1/traces')!
    expect(traces.headers.authorization).toBe('Bearer test-ingest-key')
    expect(traces.headers['content-type']).toContain('application/json')
  })

  it('never exports the secrets the app put on its spans', async () => {
    const { received } = await runDefault()
    const bodies = received.map((r) => r.body).join('\n')
    expect(bodies).toContain('execute_tool summarise')
    expect(bodies).not.toContain('ZEROCODEZEROCODE')
    expect(bodies).not.toContain('zero-code-password')
    expect(bodies).not.toContain('db.password')
  })

  it('runs without @opentelemetry/auto-instrumentations-node and says so at info level', async () => {
    const { code, output } = await runDefault()
    expect(code).toBe(0)
    expect(output).toContain('@opentelemetry/auto-instrumentations-node is not installed')
  })

  it('on SIGTERM flushes the spans and still ends the process as the signal would', async () => {
    const { code, signal } = await runApp({ ZERO_CODE_APP_WAIT: '1', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'SIGTERM')
    expect(signal).toBe('SIGTERM')
    expect(code).toBeNull()
    expect(receivedSpans().map((s) => s.name)).toContain('execute_tool summarise')
  })

  it('does nothing when OTEL_SDK_DISABLED is true, and the app still runs', async () => {
    const { code } = await runApp({ OTEL_SDK_DISABLED: 'true' })
    expect(code).toBe(0)
    expect(requests).toEqual([])
  })

  it('exports http/protobuf when no protocol is set, as the OpenTelemetry specification sets it for SDKs', async () => {
    await runApp({})
    const traces = requests.find((r) => r.path === '/v1/traces')
    expect(traces?.headers['content-type']).toBe('application/x-protobuf')
  })
})
