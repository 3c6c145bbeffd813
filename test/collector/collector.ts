/**
 * Runs the real Collector (otelcol-nhi, built from collector-config/builder.yaml)
 * for tests: finds or builds the binary, starts it with otelcol.yaml plus an
 * overlay on free loopback ports, waits for its health check, stops it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts, REPO_ROOT } from '../helpers/service.js'

/** The shipped Collector config. */
export const OTELCOL_CONFIG = join(REPO_ROOT, 'collector-config/otelcol.yaml')
/** The test overlay that swaps the ClickHouse exporter for a file and the built-in receiver. */
export const TEST_OVERLAY = join(REPO_ROOT, 'test/collector/overlay.yaml')
/** The build script. */
export const BUILD_SCRIPT = join(REPO_ROOT, 'collector-config/build.sh')

/** Where the tests get the Collector from: a binary, or why there is none. */
export type CollectorBinary = { path: string; skipReason?: undefined } | { path?: undefined; skipReason: string }

/**
 * Returns the otelcol-nhi binary, building it with collector-config/build.sh
 * when it is not cached yet (minutes, once). Without Go the tests are
 * skipped locally with a message, but under CI=true a missing Go fails them:
 * CI must prove the config on a real Collector.
 */
export function collectorBinary(): CollectorBinary {
  const missingGo = goMissing()
  if (missingGo) return { skipReason: missingGo }
  const build = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 1024 * 1024 })
  if (build.status !== 0) throw new Error(`collector-config/build.sh failed (exit ${build.status}):\n${build.stderr}`)
  const path = build.stdout.trim().split('\n').at(-1)!
  return { path }
}

/** Why Go cannot be used here, or undefined when it can; under CI=true a missing Go throws. */
function goMissing(): string | undefined {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' })
  if (!go.error && go.status === 0) return undefined
  const reason = 'Go is not installed, so the Collector cannot be built: install Go (https://go.dev/doc/install) to run the Collector tests locally'
  if (process.env.CI === 'true') throw new Error(`${reason}. Under CI=true this is a failure, not a skip.`)
  return reason
}

/**
 * The source directory of a Go module the Collector is built from (from the
 * Go module cache, downloaded through the module proxy if needed), or why
 * there is none.
 */
export function goModuleDir(module: string, version: string): { dir: string; skipReason?: undefined } | { dir?: undefined; skipReason: string } {
  const missingGo = goMissing()
  if (missingGo) return { skipReason: missingGo }
  const download = spawnSync('go', ['mod', 'download', '-json', `${module}@${version}`], { encoding: 'utf8', timeout: 10 * 60_000 })
  if (download.status !== 0) throw new Error(`go mod download ${module}@${version} failed:\n${download.stdout}${download.stderr}`)
  return { dir: (JSON.parse(download.stdout) as { Dir: string }).Dir }
}

/** Environment that puts every listener of otelcol.yaml on a free loopback port and the queue in a temp dir. */
export async function loopbackEnvironment(): Promise<{ env: Record<string, string>; otlpHttpUrl: string; healthUrl: string; metricsUrl: string }> {
  const [grpc, http, health, metrics] = await freePorts(4)
  const env = {
    OTELCOL_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
    OTELCOL_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
    OTELCOL_HEALTH_CHECK_ENDPOINT: `127.0.0.1:${health}`,
    OTELCOL_METRICS_HOST: '127.0.0.1',
    OTELCOL_METRICS_PORT: String(metrics),
    OTELCOL_QUEUE_DIR: mkdtempSync(join(tmpdir(), 'nhi-otelcol-queue-')),
    // Required by the (unused) clickhouse exporter's config validation; nothing connects to it.
    CLICKHOUSE_ENDPOINT: 'tcp://127.0.0.1:9000',
  }
  return {
    env,
    otlpHttpUrl: `http://127.0.0.1:${http}/v1/traces`,
    healthUrl: `http://127.0.0.1:${health}/`,
    metricsUrl: `http://127.0.0.1:${metrics}/metrics`,
  }
}

/** A running Collector. */
export interface RunningCollector {
  /** OTLP/HTTP traces endpoint. */
  otlpHttpUrl: string
  /** The Collector's own metrics, Prometheus text format. */
  metricsUrl: string
  output(): string
  /** SIGTERM: the Collector drains its pipeline and flushes the file exporter; resolves with the exit code. */
  stop(): Promise<number | null>
  process: ChildProcess
}

/** Starts the Collector with the given config files and extra environment; resolves once its health check answers 200. */
export async function startCollector(binary: string, configs: string[], extraEnv: Record<string, string>): Promise<RunningCollector> {
  const { env, otlpHttpUrl, healthUrl, metricsUrl } = await loopbackEnvironment()
  const child = spawn(binary, configs.flatMap((c) => ['--config', c]), {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Collector exited with ${child.exitCode} before it was healthy:\n${output}`)
    const healthy = await fetch(healthUrl).then(
      (r) => r.ok,
      () => false,
    )
    if (healthy) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the Collector did not become healthy within 30 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    otlpHttpUrl,
    metricsUrl,
    output: () => output,
    process: child,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      return exited
    },
  }
}

/** Reads one unlabelled-or-labelled gauge or counter from the Collector's metrics; the first series wins. */
export async function collectorMetric(collector: RunningCollector, name: string): Promise<number | undefined> {
  const text = await (await fetch(collector.metricsUrl)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}
