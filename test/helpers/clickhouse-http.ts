/**
 * Starts a ClickHouse HTTP endpoint for tests of the `CLICKHOUSE_URL` path:
 * the real ClickHouse engine (chDB) behind the subset of the HTTP protocol
 * that `@clickhouse/client` speaks, in its own process with its own data
 * directory. It exists because no ClickHouse server can be installed where
 * this project is tested; see clickhouse-http-server.ts for what is and is
 * not a server's behaviour.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { REPO_ROOT, tempDataDir } from './service.js'

const SERVER_SCRIPT = fileURLToPath(new URL('./clickhouse-http-server.ts', import.meta.url))

/** A running ClickHouse HTTP endpoint. */
export interface ClickHouseHttp {
  /** `http://127.0.0.1:<port>` */
  url: string
  port: number
  dataDir: string
  /** Everything the process printed. */
  output(): string
  /** SIGTERM, resolves once the process has exited. */
  stop(): Promise<void>
}

/** Starts the endpoint on `port` (0: any free port) over `dataDir` (default: a fresh one). */
export async function startClickHouseHttp(options: { dataDir?: string; port?: number; timeoutMs?: number } = {}): Promise<ClickHouseHttp> {
  const dataDir = options.dataDir ?? tempDataDir('nhi-meter-clickhouse-')
  const child = spawn(process.execPath, ['--conditions=nhi-meter-source', '--import', 'tsx', SERVER_SCRIPT, dataDir, String(options.port ?? 0)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ClickHouse HTTP endpoint did not start:\n${output}`)), options.timeoutMs ?? 30_000)
    child.stdout.on('data', () => {
      const match = /^listening (\d+)$/m.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`ClickHouse HTTP endpoint exited before it listened:\n${output}`))
    })
  })
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
