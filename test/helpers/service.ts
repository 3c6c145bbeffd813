/**
 * Runs the product the way a user does (`npm start`'s command) as a child
 * process, for end-to-end tests: a fresh data directory, free ports, the
 * generated admin key read from its first-start banner.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { testTempDir } from '../../query-service/src/test-support/storage.js'

/** Repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** A running service under test. */
export interface ServiceUnderTest {
  apiUrl: string
  /** Full URL of the traces endpoint. */
  otlpUrl: string
  /** Full URL of the Prometheus scrape endpoint (GET /metrics); undefined when the test turned metrics off. */
  metricsUrl: string | undefined
  dataDir: string
  /** The generated admin key (undefined when a keys file was given or the data dir already had one). */
  adminKey: string | undefined
  /** Everything the process printed so far. */
  output(): string
  /** Graceful stop (SIGTERM), resolves with the exit code, or the signal's name if one ended the process. */
  stop(): Promise<number | string | null>
  /** SIGKILL, no chance to flush anything. */
  kill(): Promise<void>
  process: ChildProcess
}

/** Finds a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1)
  return port!
}

/**
 * Distinct free ports: every listener is held open until all are picked, so
 * two picks can never return the same port (one closed before the next is
 * asked for could be handed out again).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer()
          server.unref()
          server.on('error', reject)
          server.listen(0, '127.0.0.1', () => resolve(server))
        }),
    ),
  )
  const ports = servers.map((server) => (server.address() as { port: number }).port)
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  return ports
}

/** Makes a fresh temporary data directory, removed once the test file has run (services restart on it until then). */
export function tempDataDir(prefix = 'nhi-meter-test-'): string {
  return testTempDir(prefix)
}

/**
 * Starts `query-service/src/main.ts` with the given environment; resolves once it says it is ready. The free ports
 * it picks can be taken by another process (a test file in parallel, an outgoing connection's ephemeral port) before
 * the service binds them: a start that fails with EADDRINUSE is tried again on fresh ports, up to three times.
 */
export async function startService(options: { env?: Record<string, string>; dataDir?: string; timeoutMs?: number } = {}): Promise<ServiceUnderTest> {
  const dataDir = options.dataDir ?? tempDataDir()
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce({ ...options, dataDir })
    } catch (error) {
      if (attempt >= 3 || !/EADDRINUSE/.test((error as Error).message)) throw error
    }
  }
}

async function startOnce(options: { env?: Record<string, string>; dataDir: string; timeoutMs?: number }): Promise<ServiceUnderTest> {
  const dataDir = options.dataDir
  // Metrics on a free port too: on the default 9464 every service of a parallel test run would collide.
  const [apiPort, otlpPort, metricsPort] = await freePorts(3)
  const env = {
    ...process.env,
    NHI_METER_PORT: String(apiPort),
    NHI_METER_OTLP_PORT: String(otlpPort),
    NHI_METER_METRICS_PORT: String(metricsPort),
    NHI_METER_DATA_DIR: dataDir,
    NHI_METER_HOST: '127.0.0.1',
    ...options.env,
  }
  // The arguments of `npm start` (package.json), so tests run what users run.
  const child = spawn(process.execPath, ['--max-semi-space-size=64', '--conditions=nhi-meter-source', '--import', 'tsx', 'query-service/src/main.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)))

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not become ready:\n${output}`)), options.timeoutMs ?? 30_000)
    const check = () => {
      if (/nhi-meter: ready in/.test(output)) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout!.on('data', check)
    exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`service exited with ${code} before it was ready:\n${output}`))
    })
  })
  const adminKey = /^\s+(nhim_[A-Za-z0-9_-]+)\s*$/m.exec(output)?.[1]
  return {
    apiUrl: `http://127.0.0.1:${env.NHI_METER_PORT}`,
    otlpUrl: `http://127.0.0.1:${env.NHI_METER_OTLP_PORT}/v1/traces`,
    metricsUrl: env.NHI_METER_METRICS_PORT === 'off' ? undefined : `http://127.0.0.1:${env.NHI_METER_METRICS_PORT}/metrics`,
    dataDir,
    adminKey,
    output: () => output,
    process: child,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      return exited
    },
    kill: async () => {
      if (child.exitCode !== null) return
      child.kill('SIGKILL')
      await exited
    },
  }
}

/** The spans the service's ingest log holds and has not yet stored, from its metrics endpoint (`nhi_meter_ingest_log_spans`). */
export async function ingestLogSpans(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text()
  const value = /^nhi_meter_ingest_log_spans(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1]
  if (value === undefined) throw new Error(`the metrics have no nhi_meter_ingest_log_spans:\n${text.slice(0, 2000)}`)
  return Number(value)
}

/**
 * Waits until every span the receiver acknowledged is stored (the metrics
 * endpoint's `nhi_meter_ingest_log_spans` is 0: a request sees acknowledged
 * spans once the ingest log has stored them), then until no use event
 * between `from` and `to` waits for trace resolution (GET
 * /v1/telemetry/completeness reports `pending_spans: 0`), so a test reads
 * settled bills. A report without the field fails at once.
 */
export async function waitForTraceResolution(service: Pick<ServiceUnderTest, 'apiUrl' | 'metricsUrl'>, key: string, window: { from: string; to: string }, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs
  if (!service.metricsUrl) throw new Error('waitForTraceResolution needs the metrics endpoint, to see what the ingest log holds')
  for (;;) {
    const waiting = await ingestLogSpans(service.metricsUrl)
    if (waiting === 0) break
    if (Date.now() > deadline) throw new Error(`the ingest log still holds ${waiting} spans after ${deadlineMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const apiUrl = service.apiUrl
  const path = `/v1/telemetry/completeness?from=${encodeURIComponent(window.from)}&to=${encodeURIComponent(window.to)}`
  for (;;) {
    const response = await fetch(`${apiUrl}${path}`, { headers: { Authorization: `Bearer ${key}` } })
    const text = await response.text()
    if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${text}`)
    const report = JSON.parse(text) as { pending_spans?: unknown }
    if (!('pending_spans' in report)) throw new Error(`GET /v1/telemetry/completeness has no top-level pending_spans (report: ${text})`)
    if (report.pending_spans === 0) return
    if (Date.now() > deadline) throw new Error(`pending_spans is still ${JSON.stringify(report.pending_spans)} after ${deadlineMs} ms (report: ${text})`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
