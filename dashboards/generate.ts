/**
 * Writes the Grafana dashboards (dashboards/json/*.json) for a policy.
 *
 *   npm run dashboards                         # the shipped default policy
 *   npm run dashboards -- --policy my.yaml     # your policy (what NHI_METER_POLICY points at)
 *   npm run dashboards -- --check              # exit 1 when the files are out of date
 *   npm run dashboards -- --out DIR            # write somewhere else (the alert rules too, unless --alerts-out FILE)
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
import { ALERT_RULES_FILE, alertRulesFileText, renderAlertRules } from './alerts.js'
import { dashboardFileText, renderDashboards } from './definitions.js'

/** Where the committed dashboards live (and docker-compose mounts). */
const DASHBOARDS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'json')
/** The committed alert rules (docker-compose mounts their folder). */
const ALERT_RULES_PATH = join(dirname(fileURLToPath(import.meta.url)), ALERT_RULES_FILE)

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { policy: { type: 'string' }, check: { type: 'boolean', default: false }, out: { type: 'string' }, 'alerts-out': { type: 'string' } } })
  const loaded = values.policy ? await loadPolicyFile(values.policy) : await loadDefaultPolicy()
  const dir = values.out ? resolve(values.out) : DASHBOARDS_DIR
  const rendered = renderDashboards(loaded.policy)
  const wanted = new Set(rendered.map((d) => d.file))
  // With --out, the rules go beside the dashboards unless --alerts-out says where.
  const alertsPath = values['alerts-out'] ? resolve(values['alerts-out']) : values.out ? join(dir, 'nhi-meter-alerts.yaml') : ALERT_RULES_PATH
  const alertsText = alertRulesFileText(renderAlertRules(loaded.policy))
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
    let currentAlerts = ''
    try {
      currentAlerts = readFileSync(alertsPath, 'utf8')
    } catch {
      // missing counts as stale
    }
    if (currentAlerts !== alertsText) stale.push(alertsPath)
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
  mkdirSync(dirname(alertsPath), { recursive: true })
  writeFileSync(alertsPath, alertsText)
  console.log(`dashboards: wrote ${[...wanted].join(', ')} to ${dir} and the alert rules to ${alertsPath}${values.policy ? ` for ${values.policy}` : ' for the default policy'}`)
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
