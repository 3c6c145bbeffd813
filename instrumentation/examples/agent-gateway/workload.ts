/**
 * Drives the example agent gateway: starts `server.ts` in a child process
 * with the zero-code entry, sends it a workload from several non-human
 * identities, stops it (which flushes its spans) and reports what it did.
 * Importing this module has no side effects; the demo calls
 * {@link runExampleWorkload}.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fingerprintCredential } from '@nhi-meter/instrumentation'

/** The identities the workload acts as, in the shape of `POST /v1/inventory` (SPEC section 5). */
export const EXAMPLE_INVENTORY = [
  {
    id: 'svc-agent-gateway',
    type: 'workload',
    owner: 'team-platform',
    business_unit: 'platform',
    tier: 'standard',
    approved_activities: ['api_call', 'tool_invocation', 'workflow_execution', 'model_call', 'token_exchange'],
  },
  {
    id: 'agent-support-triage',
    type: 'ai_agent',
    owner: 'team-support',
    business_unit: 'support',
    tier: 'premium',
    approved_activities: ['workflow_execution', 'tool_invocation', 'api_call', 'token_exchange'],
  },
  { id: 'partner-acme', type: 'api_key', owner: 'team-partnerships', business_unit: 'sales', tier: 'standard', approved_activities: ['workflow_execution', 'tool_invocation', 'api_call'] },
  // Approved for exchanging tokens and rotating its secret only; the workload also has it run the agent: privilege drift, on purpose.
  { id: 'crm-sync', type: 'integration', owner: 'team-crm', business_unit: 'sales', tier: 'standard', approved_activities: ['token_exchange', 'secret_rotation'] },
] as const

/** Options of {@link runExampleWorkload}. */
export interface ExampleWorkloadOptions {
  /** OTLP/HTTP base URL the service exports to (traces go to `<endpoint>/v1/traces`), e.g. `http://127.0.0.1:4318`. */
  endpoint: string
  /** Headers sent with each export, e.g. `{ authorization: 'Bearer <key with ingest:write>' }`. */
  headers?: Record<string, string>
  /** Agent runs per caller. Default 5. */
  runsPerCaller?: number
  /** `service.name` of the example service. Default `agent-gateway`. */
  serviceName?: string
  /** Fingerprint key (`NHI_CREDENTIAL_FINGERPRINT_KEY`) of the service. Default `example-fingerprint-key`. */
  fingerprintKey?: string
  /** Where the service's own output goes. Default ignored. */
  onServiceOutput?: (line: string) => void
}

/** What the workload did. */
export interface ExampleWorkloadResult {
  /** Requests sent, by caller. */
  requests: Record<string, number>
  /** Requests answered with a 2xx status. */
  succeeded: number
  /** Requests answered with another status (the failing tool calls). */
  failed: number
  /** Exit code of the service (0 after a clean stop). */
  serviceExitCode: number | null
}

const serverPath = fileURLToPath(new URL('./server.ts', import.meta.url))
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

/** An unsigned JWT with these claims: the example's OAuth resolver reads claims without verifying (see README). */
function exampleJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.${randomBytes(16).toString('base64url')}`
}

function send(port: number, path: string, headers: Record<string, string>, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * Runs the example: the gateway in a child process, exporting to `endpoint`,
 * called by an AI agent and a partner (API keys), an OAuth integration (JWT
 * claims, acting for a user) and one anonymous caller (a telemetry gap).
 * Resolves when the service has stopped and flushed its spans.
 */
export async function runExampleWorkload(options: ExampleWorkloadOptions): Promise<ExampleWorkloadResult> {
  const fingerprintKey = options.fingerprintKey ?? 'example-fingerprint-key'
  const runs = options.runsPerCaller ?? 5
  // Fresh keys each run: nothing secret is kept in the repository.
  const agentKey = `sk_live_${randomBytes(18).toString('base64url')}`
  const partnerKey = `sk_live_${randomBytes(18).toString('base64url')}`
  const dir = mkdtempSync(join(tmpdir(), 'nhi-example-'))
  const identitiesFile = join(dir, 'api-key-identities.json')
  writeFileSync(
    identitiesFile,
    JSON.stringify({
      [fingerprintCredential(agentKey, fingerprintKey)]: { id: 'agent-support-triage', type: 'ai_agent', owner: 'team-support', business_unit: 'support' },
      [fingerprintCredential(partnerKey, fingerprintKey)]: { id: 'partner-acme', type: 'api_key', owner: 'team-partnerships', business_unit: 'sales' },
    }),
  )
  const headerList = Object.entries(options.headers ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  const child = spawn(
    process.execPath,
    ['--conditions=nhi-meter-source', '--import', 'tsx', '--import', '@nhi-meter/instrumentation/register', serverPath],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: options.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS: headerList.join(','),
        OTEL_SERVICE_NAME: options.serviceName ?? 'agent-gateway',
        NHI_ID: 'svc-agent-gateway',
        NHI_TYPE: 'workload',
        NHI_OWNER: 'team-platform',
        NHI_BUSINESS_UNIT: 'platform',
        NHI_CREDENTIAL_FINGERPRINT_KEY: fingerprintKey,
        NHI_API_KEY_IDENTITIES_FILE: identitiesFile,
      },
    },
  )
  try {
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = ''
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        const lines = buffered.split('\n')
        buffered = lines.pop() ?? ''
        for (const line of lines) {
          options.onServiceOutput?.(line)
          const match = /^listening (\d+)$/.exec(line.trim())
          if (match) resolve(Number(match[1]))
        }
      })
      child.stderr!.on('data', (chunk: Buffer) => options.onServiceOutput?.(chunk.toString().trimEnd()))
      void exited.then((code) => reject(new Error(`example service exited with ${code} before listening`)))
    })

    const callers: Array<{ name: string; headers: Record<string, string> }> = [
      { name: 'agent-support-triage', headers: { 'x-api-key': agentKey } },
      { name: 'partner-acme', headers: { 'x-api-key': partnerKey } },
      { name: 'crm-sync', headers: { authorization: `Bearer ${exampleJwt({ client_id: 'crm-sync', sub: 'user-1842', scope: 'crm.read' })}` } },
      { name: 'anonymous', headers: {} },
    ]
    const requests: Record<string, number> = {}
    let succeeded = 0
    let failed = 0
    const count = (name: string, status: number) => {
      requests[name] = (requests[name] ?? 0) + 1
      if (status >= 200 && status < 300) succeeded++
      else failed++
    }
    await Promise.all(
      callers.map(async (caller) => {
        for (let i = 0; i < runs; i++) {
          // Every fifth run of a caller hits the failing tool, so some spans end in ERROR.
          count(caller.name, await send(port, '/v1/agent/run', caller.headers, { task: `ticket batch ${i}`, fail: i % 5 === 4 }))
        }
      }),
    )
    const crm = callers[2]!
    count(crm.name, await send(port, '/v1/tokens/exchange', crm.headers, {}))
    count(crm.name, await send(port, '/v1/secrets/rotate', crm.headers, {}))

    child.kill('SIGTERM')
    return { requests, succeeded, failed, serviceExitCode: await exited }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Run directly: `node --conditions=nhi-meter-source --import tsx instrumentation/examples/agent-gateway/workload.ts [endpoint]`. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const endpoint = process.argv[2] ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://127.0.0.1:4318'
  const headers = process.env.NHI_METER_INGEST_KEY ? { authorization: `Bearer ${process.env.NHI_METER_INGEST_KEY}` } : undefined
  runExampleWorkload({ endpoint, headers, onServiceOutput: (line) => console.error(`[agent-gateway] ${line}`) }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    },
  )
}
