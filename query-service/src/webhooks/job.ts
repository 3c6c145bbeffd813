/**
 * Webhooks in a running service: the outbox opened from the data
 * directory, deliveries resumed, the evaluator scheduled, and the hook the
 * statements route calls when a month is closed.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import type { Statement } from '../billing/statement.js'
import type { Policy } from '../policy/index.js'
import { WebhookDelivery, type DeliveryOptions } from './deliver.js'
import { WebhookEvaluator } from './evaluate.js'
import { statementEvent } from './events.js'
import { Outbox } from './outbox.js'
import type { SigningDestination } from './secrets.js'

/** What {@link startWebhooks} needs. */
export interface WebhooksOptions {
  client: ClickHouseClient
  policy: () => Policy
  destinations: readonly SigningDestination[]
  /** The outbox and the evaluator's state. */
  dir: string
  /** How often the evaluator runs; 0: not in this process (deliveries of what it queues still go out). */
  intervalMs: number
  /** See EvaluatorOptions.settleMs. */
  settleMs: number
  delivery?: DeliveryOptions
  log: { info(message: string): void; error(message: string, error?: unknown): void }
  /** The first run's delay (default 1 s, as the other jobs). */
  firstRunDelayMs?: number
}

/** Webhooks running in this process. */
export interface RunningWebhooks {
  /** Queues statement.closed for the destinations that asked for it; never throws (a failure is logged). */
  statementClosed(statement: Statement & { content_hash: string }): Promise<void>
  /** Runs the evaluator now (tests; the schedule runs it by itself). */
  evaluate(nowMs?: number): Promise<void>
  /** Stops the evaluator and the deliveries; what is pending stays in the outbox. */
  close(): Promise<void>
}

/** Starts webhooks; undefined when the policy has no destination. */
export async function startWebhooks(options: WebhooksOptions): Promise<RunningWebhooks | undefined> {
  const { destinations, log } = options
  if (destinations.length === 0) return undefined
  const outbox = await Outbox.open({ dir: options.dir })
  const delivery = new WebhookDelivery(outbox, destinations, {
    ...options.delivery,
    onAttemptFailed: (entry, attempt, reason) => log.error(`webhook ${entry.destination}: ${entry.type} ${entry.id} attempt ${attempt} failed (${reason}); retrying`),
    onGiveUp: (entry, reason) => log.error(`webhook ${entry.destination}: ${entry.type} ${entry.id} given up: ${reason}`),
    onOutboxError: (error) => log.error('webhook outbox could not be written; deliveries resume with the next event or start', error),
  })
  await delivery.start()
  const pending = outbox.pending().length
  if (pending > 0) log.info(`webhooks: ${pending} deliveries pending from before, resumed`)

  const evaluator = new WebhookEvaluator({ client: options.client, policy: options.policy, destinations, outbox, dir: options.dir, intervalMs: Math.max(1, options.intervalMs), settleMs: options.settleMs })
  let running: Promise<void> | undefined
  let failedRuns = 0
  const evaluate = (nowMs?: number): Promise<void> => {
    running ??= evaluator
      .run(nowMs)
      .then((result) => {
        failedRuns = 0
        if (result.refused > 0) log.error(`webhooks: ${result.refused} events not queued: their destination already has the most deliveries pending`)
      })
      .catch((error: unknown) => {
        failedRuns++
        // A lasting failure (storage away) is reported when it starts and then every tenth run.
        if (failedRuns % 10 === 1) log.error(`webhook evaluation failed${failedRuns > 1 ? ` (${failedRuns} runs in a row)` : ''}; changes are found by the next run that succeeds`, error)
      })
      .finally(() => {
        running = undefined
      })
    return running
  }
  const timers: NodeJS.Timeout[] = []
  if (options.intervalMs > 0) {
    timers.push(setInterval(() => void evaluate(), options.intervalMs), setTimeout(() => void evaluate(), options.firstRunDelayMs ?? 1_000))
    for (const timer of timers) timer.unref()
  }

  return {
    statementClosed: async (statement) => {
      const event = statementEvent(statement, new Date())
      const body = JSON.stringify(event)
      const targets = destinations.filter((d) => d.events.includes('statement.closed') && d.business_units === null)
      try {
        await outbox.add(targets.map((d) => ({ destination: d.name, id: event.id, type: event.type, body })))
      } catch (error) {
        log.error(`webhooks: statement.closed for ${statement.period} could not be queued`, error)
      }
    },
    evaluate,
    close: async () => {
      for (const timer of timers) clearInterval(timer)
      await running
      await delivery.close()
      await outbox.close()
    },
  }
}
