/**
 * The findings job behind the `nhi_meter.findings.*` metrics: every
 * interval it computes the findings of the last 30 days exactly as
 * `GET /v1/findings` does for an unrestricted key (every kind, every
 * business unit, service-level findings too) and hands them to the metrics,
 * which expose how many are open and count those that are new. Grafana's
 * "new high-severity finding" alert reads that counter. It runs only while
 * metrics are served; a failed run is reported and retried next interval.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { computeFindings } from '../findings/evaluate.js'
import { FINDING_KINDS } from '../findings/kinds.js'
import { DEFAULT_FINDINGS_DAYS } from '../findings/routes.js'
import type { Policy } from '../policy/index.js'
import type { ServiceMetrics } from './instruments.js'

/** Starts the job; the first run is a few seconds after start, then one every `intervalMs` (never two at once). */
export function scheduleFindingsEvaluation(
  client: ClickHouseClient,
  policy: () => Policy,
  intervalMs: number,
  metrics: ServiceMetrics,
  onError: (error: unknown) => void,
  options: { rollupGraceSeconds?: number; firstRunAfterMs?: number } = {},
): { stop(): Promise<void> } {
  const observe = metrics.jobs.periodic('findings_evaluation')
  let running: Promise<void> | undefined
  let stopped = false
  let failing = false
  const tick = () => {
    if (running || stopped) return
    running = observe(async () => {
      const to = new Date()
      const findings = await computeFindings(client, {
        from: new Date(to.getTime() - DEFAULT_FINDINGS_DAYS * 86_400_000),
        to,
        detection: policy().detection,
        scope: null,
        includeServices: true,
        kinds: new Set(FINDING_KINDS),
        rollupGraceSeconds: options.rollupGraceSeconds,
        // The metrics count findings by kind and severity: their sample traces would be read for nothing.
        samples: false,
      })
      metrics.findings.evaluated(findings)
    })
      .then(() => {
        failing = false
      })
      .catch((error: unknown) => {
        // Reported when failures start, not on every run while they last.
        if (!failing) onError(error)
        failing = true
      })
      .finally(() => {
        running = undefined
      })
  }
  const timer = setInterval(tick, intervalMs)
  timer.unref()
  setTimeout(tick, options.firstRunAfterMs ?? 5_000).unref()
  return {
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
