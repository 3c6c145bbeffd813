/**
 * Writes the Grafana dashboards (dashboards/json/*.json) for a policy.
 *
 *   npm run dashboards                         # the shipped default policy
 *   npm run dashboards -- --policy my.yaml     # your policy (what NHI_METER_POLICY points at)
 *   npm run dashboards -- --check              # exit 1 when the files are out of date
 *   npm run dashboards -- --out DIR            # write somewhere else
 *
 * The dashboards inline the policy's meters and thresholds as SQL literals
 * (Grafana cannot bind query parameters), so regenerate them whenever the
 * policy changes.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadDefaultPolicy, loadPolicyFile, PolicyError } from '../query-service/src/policy/index.js'
import { dashboardFileText, renderDashboards } from './definitions.js'

/** Where the committed dashboards live (and docker-compose mounts). */
const DASHBOARDS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'json')

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { policy: { type: 'string' }, check: { type: 'boolean', default: false }, out: { type: 'string' } } })
  const loaded = values.policy ? await loadPolicyFile(values.policy) : await loadDefaultPolicy()
  const dir = values.out ? resolve(values.out) : DASHBOARDS_DIR
  const rendered = renderDashboards(loaded.policy)
  const wanted = new Set(rendered.map((d) => d.file))
  if (values.check) {
    const stale: string[] = []
    for (const { file, json } of rendered) {
      let current = ''
      try {
        current = readFileSync(join(dir, file), 'utf8')
      } catch {
        // missing counts as stale
      }
      if (current !== dashboardFileText(json)) stale.push(file)
    }
    const extra = listJson(dir).filter((f) => !wanted.has(f))
    if (stale.length > 0 || extra.length > 0) {
      console.error(`dashboards: out of date in ${dir}: ${[...stale, ...extra.map((f) => `${f} (not generated)`)].join(', ')}; run npm run dashboards`)
      return 1
    }
    console.log(`dashboards: ${rendered.length} files up to date in ${dir}`)
    return 0
  }
  mkdirSync(dir, { recursive: true })
  for (const file of listJson(dir)) if (!wanted.has(file)) rmSync(join(dir, file))
  for (const { file, json } of rendered) writeFileSync(join(dir, file), dashboardFileText(json))
  console.log(`dashboards: wrote ${[...wanted].join(', ')} to ${dir}${values.policy ? ` for ${values.policy}` : ' for the default policy'}`)
  return 0
}

function listJson(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json'))
  } catch {
    return []
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`dashboards: ${error instanceof PolicyError ? `invalid policy: ${error.message}` : error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  },
)
