import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { REPO_ROOT } from '../helpers/service.js'
import { collectorBinary, OTELCOL_CONFIG, TEST_OVERLAY } from './collector.js'

interface Manifest {
  dist: { name: string; version: string }
  receivers: { gomod: string }[]
  processors: { gomod: string }[]
  exporters: { gomod: string }[]
  extensions: { gomod: string }[]
  providers: { gomod: string }[]
}

const manifest = parse(readFileSync(join(REPO_ROOT, 'collector-config/builder.yaml'), 'utf8')) as Manifest
const buildScript = readFileSync(join(REPO_ROOT, 'collector-config/build.sh'), 'utf8')
const builderVersion = /^BUILDER_VERSION=(v\d+\.\d+\.\d+)$/m.exec(buildScript)?.[1]
const kinds = ['receivers', 'processors', 'exporters', 'extensions'] as const
const modules = [...kinds.flatMap((k) => manifest[k]), ...manifest.providers].map(({ gomod }) => {
  const [path, version] = gomod.split(' ')
  return { path: path!, version: version! }
})

/** Component types (the part of an id before `/`) that a config uses, per kind. */
function usedComponentTypes(...files: string[]): Record<(typeof kinds)[number], Set<string>> {
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>(), extensions: new Set<string>() }
  for (const file of files) {
    const config = parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown> | undefined>
    for (const kind of kinds) for (const id of Object.keys(config[kind] ?? {})) used[kind].add(id.split('/')[0]!)
  }
  return used
}

describe('the otelcol-nhi builder manifest', () => {
  it('pins one Collector release across every module, and build.sh uses the builder of that release', () => {
    expect(builderVersion).toMatch(/^v0\.\d+\.\d+$/)
    const core = modules.filter((m) => m.path.startsWith('go.opentelemetry.io/collector/'))
    const contrib = modules.filter((m) => m.path.startsWith('github.com/open-telemetry/opentelemetry-collector-contrib/'))
    expect(core.length + contrib.length).toBe(modules.length)
    // Core modules are either at the release's 0.x version or at its one 1.x (stable) version;
    // the builder's strict versioning fails the build if the 1.x one belongs to another release.
    expect(core.filter((m) => m.version.startsWith('v0.')).map((m) => m.version)).toEqual(
      core.filter((m) => m.version.startsWith('v0.')).map(() => builderVersion),
    )
    expect(new Set(core.filter((m) => m.version.startsWith('v1.')).map((m) => m.version)).size).toBe(1)
    const release = builderVersion!.replace(/\.\d+$/, '')
    for (const m of contrib) expect(m.version, m.path).toMatch(new RegExp(`^${release.replaceAll('.', '\\.')}\\.\\d+$`))
    expect(new Set(contrib.map((m) => m.version)).size).toBe(1)
  })

  it('names the same release as the Collector image in docker-compose.yml and the distribution version', () => {
    const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string }> }
    const contribVersion = modules.find((m) => m.path.includes('opentelemetry-collector-contrib'))!.version.slice(1)
    expect(compose.services['otel-collector']!.image).toBe(`otel/opentelemetry-collector-contrib:${contribVersion}`)
    expect(manifest.dist.version).toBe(`${contribVersion}-nhi`)
  })
})

const collector = collectorBinary()
if (collector.skipReason) console.warn(`test/collector/builder.test.ts: skipping the tests that run the Collector. ${collector.skipReason}`)

describe.skipIf(!collector.path)('the built otelcol-nhi Collector', () => {
  const binary = collector.path!
  const env = { ...process.env, CLICKHOUSE_ENDPOINT: 'tcp://127.0.0.1:9000', NHI_TEST_EMITTED_FILE: '/dev/null', NHI_TEST_RECEIVER_TRACES_URL: 'http://127.0.0.1:4318/v1/traces' }

  it('validate accepts the shipped config as it is, and with the test overlay', () => {
    const plain = spawnSync(binary, ['validate', '--config', OTELCOL_CONFIG], { env, encoding: 'utf8' })
    expect(plain.status, plain.stderr).toBe(0)
    const overlaid = spawnSync(binary, ['validate', '--config', OTELCOL_CONFIG, '--config', TEST_OVERLAY], { env, encoding: 'utf8' })
    expect(overlaid.status, overlaid.stderr).toBe(0)
  })

  it('validate compiles the OTTL statements and their regular expressions, so a broken rule fails here', () => {
    const broken = readFileSync(OTELCOL_CONFIG, 'utf8').replace('stringify_all(span.attributes)', 'stringify_all(span.attributes')
    const dir = mkdtempSync(join(tmpdir(), 'nhi-otelcol-'))
    writeFileSync(join(dir, 'broken.yaml'), broken)
    const result = spawnSync(binary, ['validate', '--config', join(dir, 'broken.yaml')], { env, encoding: 'utf8' })
    expect(result.status).not.toBe(0)
    expect(result.stderr).toMatch(/transform\/redact_secrets/)
  })

  it('validate refuses the config when the ClickHouse endpoint is not configured', () => {
    const { CLICKHOUSE_ENDPOINT: _unset, ...withoutEndpoint } = env
    const result = spawnSync(binary, ['validate', '--config', OTELCOL_CONFIG], { env: withoutEndpoint, encoding: 'utf8' })
    expect(result.status).not.toBe(0)
    expect(result.stderr).toMatch(/clickhouse/)
  })

  it('has exactly the components that the config and the test overlay use', () => {
    const listed = parse(execFileSync(binary, ['components'], { encoding: 'utf8' })) as Record<string, { name: string }[] | undefined>
    const used = usedComponentTypes(OTELCOL_CONFIG, TEST_OVERLAY)
    for (const kind of kinds) {
      expect(new Set((listed[kind] ?? []).map((c) => c.name)), kind).toEqual(used[kind])
    }
    expect(listed.connectors ?? []).toEqual([])
  })
})
