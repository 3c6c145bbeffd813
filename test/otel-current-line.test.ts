/**
 * @nhi-meter/instrumentation in an app on either OpenTelemetry JS line, packed
 * as it would be published and installed from the registry in a throw-away
 * app. Its OpenTelemetry packages are peer dependencies (see the package's
 * README, Compatibility), so each app must end up with the SDK line it chose
 * and one copy of it:
 *
 * - the current line (instrumentation/README.md, Compatibility): `@opentelemetry/sdk-node` 0.301, `sdk-trace`
 *   3.1 and the API 1.10, on Node 24 (0.30x needs Node 22.15 or newer):
 *   - zero-code: `node --import @nhi-meter/instrumentation/register` with an
 *     app that only uses the API (no second SDK started by the app);
 *   - the app's own provider: a 0.301 `NodeSDK` given our span processors;
 * - the 2.x line, on the Node running the suite: an app that names only the
 *   API 1.9 gets `sdk-node` 0.223 and `sdk-trace` 2.x for our peers, and
 *   exports in zero-code mode.
 *
 * Each must export the app's spans with the identity and without the
 * secrets, and the app must hold one copy of `@opentelemetry/api`.
 *
 * Needs the npm registry and Node 24 from it (scripts/node-lts.sh); a machine
 * without them skips with the reason, except under CI=true.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from './helpers/service.js'

const VERSIONS = { '@opentelemetry/api': '1.10.0', '@opentelemetry/sdk-node': '0.301.2', '@opentelemetry/sdk-trace': '3.1.1', '@opentelemetry/exporter-trace-otlp-http': '0.301.2' }
/** What a Node 20 app on the 2.x line names: the API only; npm picks our SDK peers to match it. */
const VERSIONS_2X = { '@opentelemetry/api': '~1.9.0' }
const TARBALL = 'nhi-meter-instrumentation-0.1.0.tgz'

let root = ''
let app = ''
let app2x = ''
let nodeBin = ''
let skipReason: string | undefined
let sink: Server
let port = 0
const bodies: string[] = []

/** A throw-away app with these dependencies and our packed tarball, installed with the npm on PATH under `node`. */
function installApp(dir: string, dependencies: Record<string, string>, node: string): string {
  mkdirSync(dir)
  execFileSync('cp', [join(root, TARBALL), dir])
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'otel-app', private: true, type: 'module', dependencies: { ...dependencies, '@nhi-meter/instrumentation': `file:./${TARBALL}` } }),
  )
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PATH: `${join(node, '..')}:${process.env.PATH}` } })
  writeFileSync(
    join(dir, 'zero-code.mjs'),
    `import { trace } from '@opentelemetry/api'
trace.getTracer('app').startSpan('execute_tool lookup', { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup', 'db.password': 'zero-code-secret' } }).end()
`,
  )
  return dir
}

/** Every installed copy of a package in the app's tree, by path, with its version. */
function installedCopies(dir: string, name: string): { path: string; version: string }[] {
  const listing = spawnSync('npm', ['ls', '--all', '--parseable'], { cwd: dir, encoding: 'utf8' })
  const paths = [...new Set(listing.stdout.split('\n').filter((line) => line.endsWith(join('node_modules', ...name.split('/')))))]
  return paths.map((path) => ({ path, version: (JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as { version: string }).version }))
}

function prepare(): void {
  const node = spawnSync('bash', [join(REPO_ROOT, 'scripts/node-lts.sh'), '24'], { encoding: 'utf8' })
  if (node.status !== 0) throw new Error(`Node 24 from the npm registry: ${node.stderr.trim()}`)
  nodeBin = node.stdout.trim()
  root = mkdtempSync(join(tmpdir(), 'nhi-meter-otel-lines-'))
  // Packed as published (its prepack builds dist/).
  execFileSync('npm', ['pack', '--silent', '--pack-destination', root], { cwd: join(REPO_ROOT, 'instrumentation'), stdio: ['ignore', 'ignore', 'pipe'] })
  app = installApp(join(root, 'current'), VERSIONS, nodeBin)
  app2x = installApp(join(root, 'line-2x'), VERSIONS_2X, process.execPath)
  writeFileSync(
    join(app, 'own-provider.mjs'),
    `import { NodeSDK } from '@opentelemetry/sdk-node'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { nhiSpanProcessors, withIdentity } from '@nhi-meter/instrumentation'
import { trace } from '@opentelemetry/api'
const sdk = new NodeSDK({ serviceName: 'own-provider-app', spanProcessors: nhiSpanProcessors({ exporters: [new OTLPTraceExporter({ url: process.argv[2] })] }) })
sdk.start()
withIdentity({ id: 'agent-own', type: 'ai_agent' }, () => {
  trace.getTracer('app').startSpan('execute_tool lookup', { attributes: { 'gen_ai.operation.name': 'execute_tool', 'db.password': 'own-provider-secret' } }).end()
})
await sdk.shutdown()
`,
  )
}

beforeAll(async () => {
  try {
    prepare()
  } catch (error) {
    skipReason = `cannot install the OpenTelemetry JS lines from the npm registry: ${(error as Error).message.slice(0, 300)}`
    if (process.env.CI === 'true') throw new Error(`${skipReason}. Under CI=true this is a failure, not a skip.`)
    console.warn(`otel-current-line.test.ts skipped: ${skipReason}`)
    return
  }
  sink = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  port = (sink.address() as { port: number }).port
}, 300_000)

afterAll(async () => {
  await new Promise((resolve) => (sink ? sink.close(resolve) : resolve(undefined)))
  if (root) rmSync(root, { recursive: true, force: true })
})

/** Runs an app (by default the current-line one on Node 24); asynchronously, so the sink in this process can answer its exports meanwhile. */
async function run(args: string[], env: Record<string, string> = {}, where: { dir: string; node: string } = { dir: app, node: nodeBin }): Promise<void> {
  const child = spawn(where.node, args, { cwd: where.dir, env: { PATH: process.env.PATH, ...env } })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  expect(code, output).toBe(0)
}

describe('@nhi-meter/instrumentation with sdk-node 0.301 and the API 1.10 on Node 24', () => {
  it('exports in zero-code mode with the identity on the resource and no secret', async (context) => {
    if (skipReason) return context.skip()
    bodies.length = 0
    await run(['--import', '@nhi-meter/instrumentation/register', 'zero-code.mjs'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      NHI_ID: 'svc-zero',
      NHI_TYPE: 'workload',
    })
    const body = bodies.join('\n')
    expect(body).toContain('execute_tool lookup')
    expect(body).toMatch(/"key":"nhi\.id","value":\{"stringValue":"svc-zero"\}/)
    expect(body).not.toContain('zero-code-secret')
  })

  it('stamps the identity and keeps secrets out when its processors run on the app’s own 3.x provider', async (context) => {
    if (skipReason) return context.skip()
    bodies.length = 0
    await run(['own-provider.mjs', `http://127.0.0.1:${port}/v1/traces`])
    const body = bodies.join('\n')
    expect(body).toContain('execute_tool lookup')
    expect(body).toMatch(/"key":"nhi\.id","value":\{"stringValue":"agent-own"\}/)
    expect(body).not.toContain('own-provider-secret')
  })

  it('leaves the app one copy of @opentelemetry/api and of each SDK package, all on the 3.x line, with every peer met', (context) => {
    if (skipReason) return context.skip()
    expect(installedCopies(app, '@opentelemetry/api')).toEqual([{ path: join(app, 'node_modules', '@opentelemetry', 'api'), version: '1.10.0' }])
    for (const name of ['@opentelemetry/sdk-trace', '@opentelemetry/core', '@opentelemetry/resources']) {
      const copies = installedCopies(app, name)
      expect(copies, name).toHaveLength(1)
      expect(copies[0]!.version, name).toMatch(/^3\./)
    }
    expect(installedCopies(app, '@opentelemetry/sdk-node').map((c) => c.version)).toEqual(['0.301.2'])
    // No second SDK line beside the app's: sdk-trace-base only exists on 2.x.
    expect(installedCopies(app, '@opentelemetry/sdk-trace-base')).toEqual([])
    const ls = spawnSync('npm', ['ls', '--all'], { cwd: app, encoding: 'utf8' })
    expect(ls.status, ls.stdout + ls.stderr).toBe(0)
    expect(ls.stdout).not.toMatch(/invalid|UNMET (?!OPTIONAL)/)
  })
})

describe('@nhi-meter/instrumentation in an app on the 2.x line that names only the API 1.9', () => {
  it('gets the 2.x SDK for its peers, with one copy of @opentelemetry/api and every peer met', (context) => {
    if (skipReason) return context.skip()
    expect(installedCopies(app2x, '@opentelemetry/api').map((c) => c.version)).toEqual([expect.stringMatching(/^1\.9\./)])
    // The copies our package loads (top level); sdk-node pins exact versions of its own, which npm may nest beside them.
    const topLevel = (name: string) => installedCopies(app2x, name).find((c) => c.path === join(app2x, 'node_modules', ...name.split('/')))?.version
    expect(topLevel('@opentelemetry/sdk-node')).toMatch(/^0\.223\./)
    for (const name of ['@opentelemetry/sdk-trace', '@opentelemetry/core', '@opentelemetry/resources']) expect(topLevel(name), name).toMatch(/^2\./)
    const ls = spawnSync('npm', ['ls', '--all'], { cwd: app2x, encoding: 'utf8' })
    expect(ls.status, ls.stdout + ls.stderr).toBe(0)
  })

  it('exports in zero-code mode with the identity on the resource and no secret', async (context) => {
    if (skipReason) return context.skip()
    bodies.length = 0
    await run(
      ['--import', '@nhi-meter/instrumentation/register', 'zero-code.mjs'],
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', NHI_ID: 'svc-zero-2x', NHI_TYPE: 'workload' },
      { dir: app2x, node: process.execPath },
    )
    const body = bodies.join('\n')
    expect(body).toContain('execute_tool lookup')
    expect(body).toMatch(/"key":"nhi\.id","value":\{"stringValue":"svc-zero-2x"\}/)
    expect(body).not.toContain('zero-code-secret')
  })
})
