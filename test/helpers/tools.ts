/**
 * The foreign clients the hardening tests use (schemathesis and the
 * OpenTelemetry Python SDK in a virtualenv, telemetrygen from the Go module
 * proxy), installed on first use by scripts/hardening-tools.sh. Without
 * Python or Go the tests that need them skip locally with a message naming
 * the tool; under CI=true a missing tool is a failure.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from './service.js'

/** Paths of the installed tools, or why they are missing. */
export type HardeningTools =
  | { python: string; schemathesis: string; telemetrygen: string; skipReason?: undefined }
  | { python?: undefined; schemathesis?: undefined; telemetrygen?: undefined; skipReason: string }

let cached: HardeningTools | undefined

/** Installs (once, cached) and returns the hardening tools. */
export function hardeningTools(): HardeningTools {
  if (cached) return cached
  const missing = ['python3', 'go'].filter((tool) => {
    const probe = spawnSync(tool, [tool === 'go' ? 'version' : '--version'], { encoding: 'utf8' })
    return probe.error !== undefined || probe.status !== 0
  })
  if (missing.length > 0) {
    const reason = `${missing.join(' and ')} not installed: the hardening tests drive the service with schemathesis and the OpenTelemetry Python SDK (Python 3) and telemetrygen (Go)`
    if (process.env.CI === 'true') throw new Error(`${reason}. Under CI=true this is a failure, not a skip.`)
    return (cached = { skipReason: reason })
  }
  const install = spawnSync('bash', [join(REPO_ROOT, 'scripts/hardening-tools.sh')], { encoding: 'utf8', timeout: 20 * 60_000, maxBuffer: 16 * 1024 * 1024 })
  if (install.status !== 0) throw new Error(`scripts/hardening-tools.sh failed (exit ${install.status}):\n${install.stderr}`)
  const paths = Object.fromEntries(
    install.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('=', 2) as [string, string]),
  )
  const python = paths.python!
  return (cached = { python, schemathesis: join(python, '..', 'schemathesis'), telemetrygen: paths.telemetrygen! })
}
