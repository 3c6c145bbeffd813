import { diag } from '@opentelemetry/api'

/**
 * How often the same failure is written to `diag` at error level: a resolver
 * that throws on every request would otherwise fill the host's logs.
 */
const REPORT_INTERVAL_MS = 60_000

const lastReported = new Map<string, { at: number; suppressed: number }>()

/**
 * Reports a failure of user-supplied code (a resolver, a hook) or of our own
 * processing through `diag`, never by throwing. The first failure of each
 * source is reported at once; repeats within a minute are counted and the
 * count is reported with the next one.
 */
export function reportFailure(source: string, error: unknown): void {
  try {
    const now = Date.now()
    const seen = lastReported.get(source)
    if (seen && now - seen.at < REPORT_INTERVAL_MS) {
      seen.suppressed++
      diag.debug(`@nhi-meter/instrumentation: ${source} failed again`, error)
      return
    }
    const suppressed = seen?.suppressed ?? 0
    lastReported.set(source, { at: now, suppressed: 0 })
    const repeats = suppressed > 0 ? ` (${suppressed} more failure(s) since the last report)` : ''
    diag.error(`@nhi-meter/instrumentation: ${source} failed; the app goes on${repeats}`, error)
  } catch {
    // A broken diag logger must not break the host either.
  }
}

/** Forgets reported failures so the next one is reported at once (for tests). */
export function resetFailureReports(): void {
  lastReported.clear()
}

const warnedOnce = new Set<string>()

/** Writes a configuration warning to `diag` once per process. */
export function warnOnce(key: string, message: string): void {
  if (warnedOnce.has(key)) return
  warnedOnce.add(key)
  diag.warn(`@nhi-meter/instrumentation: ${message}`)
}
