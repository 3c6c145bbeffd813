/**
 * A real Prometheus for the metrics tests: built from the Go module proxy by
 * scripts/prometheus.sh (cached), started on a free loopback port with a
 * config of the test's making, and queried through its HTTP API. Without Go
 * the tests that need it skip locally with a message naming the tool; under
 * CI=true a missing Go fails them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { freePort, REPO_ROOT } from './service.js'

/** The build script. */
export const PROMETHEUS_BUILD_SCRIPT = join(REPO_ROOT, 'scripts/prometheus.sh')

/** Where the tests get Prometheus from: a binary, or why there is none. */
export type PrometheusBinary = { path: string; skipReason?: undefined } | { path?: undefined; skipReason: string }

/** Returns the Prometheus binary, building it on first use (minutes, once). */
export function prometheusBinary(): PrometheusBinary {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' })
  if (go.error || go.status !== 0) {
    const reason = 'Go is not installed, so Prometheus cannot be built from the Go module proxy: install Go (https://go.dev/doc/install) to run the metrics scrape tests locally'
    if (process.env.CI === 'true') throw new Error(`${reason}. Under CI=true this is a failure, not a skip.`)
    return { skipReason: reason }
  }
  const build = spawnSync('bash', [PROMETHEUS_BUILD_SCRIPT], { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 1024 * 1024 })
  if (build.status !== 0) throw new Error(`scripts/prometheus.sh failed (exit ${build.status}):\n${build.stderr}`)
  return { path: build.stdout.trim().split('\n').at(-1)! }
}

/** One sample of an instant query. */
export interface Sample {
  labels: Record<string, string>
  value: number
}

/** A running Prometheus. */
export interface RunningPrometheus {
  url: string
  /** Evaluates an instant PromQL query now. */
  query(promql: string): Promise<Sample[]>
  output(): string
  stop(): Promise<void>
  process: ChildProcess
}

/** Starts Prometheus with `config` (an object written as its YAML config file); resolves once it is ready. */
export async function startPrometheus(binary: string, config: Record<string, unknown>): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-prometheus-'))
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(binary, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Prometheus exited with ${child.exitCode} before it was ready:\n${output}`)
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    )
    if (ready) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`Prometheus was not ready within 30 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    output: () => output,
    process: child,
    query: async (promql) => {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
      const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } }
      if (body.status !== 'success') throw new Error(`PromQL ${promql} failed: ${body.error}`)
      if (body.data!.resultType !== 'vector') throw new Error(`PromQL ${promql} returned a ${body.data!.resultType}, not a vector`)
      return body.data!.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }))
    },
    stop: async () => {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** Series names and their samples in a Prometheus text-format scrape (comments skipped). */
export function parseScrape(text: string): Map<string, Sample[]> {
  const series = new Map<string, Sample[]>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line)
    if (!match) throw new Error(`not a sample line: ${line}`)
    const labels = Object.fromEntries([...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]))
    const samples = series.get(match[1]!) ?? []
    samples.push({ labels, value: Number(match[4]) })
    series.set(match[1]!, samples)
  }
  return series
}
