import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CONFIG_KEYS } from '../config.js'
import { METRICS, prometheusSeriesNames, type MetricDefinition } from './catalog.js'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')

/** The README's metrics table row for a metric. */
function row(metric: MetricDefinition): string {
  const shown = prometheusSeriesNames(metric).map((n) => `\`${n}\``).join(' ')
  // What Prometheus calls it: an up-down counter is a gauge there.
  const type = metric.kind === 'updowncounter' ? 'gauge' : metric.kind
  const labels = metric.attributes.map((a) => `\`${a.replace(/[^A-Za-z0-9_]/g, '_')}\``).join(', ') || '–'
  return `| ${shown} | ${type} | \`${metric.unit}\` | ${labels} | \`${metric.name}\` | ${metric.description} |`
}

describe('README', () => {
  it('lists every metric the service exposes, exactly as metrics/catalog.ts defines it', () => {
    const table = /<!-- metrics:start -->\n([\s\S]*?)\n<!-- metrics:end -->/.exec(readme)?.[1]
    const header = '| Prometheus name | type | unit | labels | OpenTelemetry name | meaning |\n|---|---|---|---|---|---|'
    expect(table).toBe([header, ...Object.values(METRICS).map(row)].join('\n'))
  })

  it('documents every environment variable the service reads in its Configuration table', () => {
    const configuration = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration\n') + 1))
    for (const key of CONFIG_KEYS) expect(configuration, key).toContain(`\`${key}\``)
  })
})
