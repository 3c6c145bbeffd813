/**
 * Starts the single-node product in this process: storage (embedded or
 * server), migrations, API keys, the query API and the OTLP receiver; and
 * stops it cleanly, draining spans already accepted.
 */
import { serve, type ServerType } from '@hono/node-server'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { KeyStore, loadGeneratedKeys } from './auth/keys.js'
import { createApp, failedAuthBuckets } from './app.js'
import { answerClientErrors } from './http/client-error.js'
import { scheduleRollup } from './billing/rollup.js'
import { placeholderRule, scheduleTraceResolution } from './traces/job.js'
import { backfillIdentityActivity } from './identities/backfill.js'
import { importInventoryFile } from './identities/inventory-file.js'
import { backfillFindingsDigest } from './findings/digest.js'
import type { Policy } from './policy/index.js'
import type { Config } from './config.js'
import { createReceiver, type Receiver } from './otlp/receiver.js'
import { DurableWriter } from './otlp/durable-writer.js'
import { join } from 'node:path'
import { clientForJobs, openStorage } from './storage/client.js'
import { migrate } from './storage/migrations.js'
import { startWebhooks, type RunningWebhooks } from './webhooks/job.js'
import type { SigningDestination } from './webhooks/secrets.js'
import { startMetricsEndpoint, type MetricsEndpoint } from './metrics/endpoint.js'
import { scheduleFindingsEvaluation } from './metrics/findings-evaluation.js'
import { NOOP_METRICS } from './metrics/instruments.js'

/** A running service. */
export interface RunningService {
  apiPort: number
  /** Undefined when the receiver is off. */
  otlpPort: number | undefined
  /** Port of GET /metrics; undefined when metrics are off. */
  metricsPort: number | undefined
  /** The admin key generated on this start (first start without a keys file), shown once. */
  generatedKey: string | undefined
  /** Stops accepting, drains accepted spans, closes storage. */
  close(): Promise<void>
}

/** Logging hooks; the entry point prints, tests stay quiet. */
export interface ServiceLog {
  info(message: string): void
  error(message: string, error?: unknown): void
}

/** Starts everything the configuration asks for. */
export async function startService(config: Config, policy: () => Policy, log: ServiceLog, webhookDestinations: readonly SigningDestination[] = []): Promise<RunningService> {
  // First, so a port already taken stops start-up before storage is opened, and start-up jobs are measured.
  const endpoint: MetricsEndpoint | undefined =
    config.NHI_METER_METRICS_PORT === 'off' ? undefined : await startMetricsEndpoint({ port: config.NHI_METER_METRICS_PORT, host: config.NHI_METER_HOST })
  const metrics = endpoint?.metrics ?? NOOP_METRICS
  const client = await openStorage(
    config.CLICKHOUSE_URL
      ? { kind: 'server', url: config.CLICKHOUSE_URL, username: config.CLICKHOUSE_USER, password: config.CLICKHOUSE_PASSWORD, database: config.CLICKHOUSE_DATABASE }
      : { kind: 'embedded', dataDir: config.NHI_METER_DATA_DIR },
    log,
  ).catch(async (error: unknown) => {
    await endpoint?.close().catch(() => undefined)
    throw error
  })
  // Jobs that run on a timer take their turn after requests on the embedded engine.
  const jobs = clientForJobs(client)
  let webhooks: RunningWebhooks | undefined
  try {
    const applied = await migrate(client, config.NHI_METER_CLICKHOUSE_CLUSTER ? { cluster: { cluster: config.NHI_METER_CLICKHOUSE_CLUSTER } } : {})
    if (applied.length > 0) log.info(`schema: applied migrations ${applied.join(', ')}`)
    const backfilled = await metrics.jobs.once('identity_backfill', () => backfillIdentityActivity(client))
    if (backfilled) log.info(`identity ledger: copied ${backfilled} earlier use events`)
    const digested = await metrics.jobs.once('findings_digest_backfill', () => backfillFindingsDigest(client))
    if (digested) log.info(`findings digest: summarised ${digested} earlier use events`)
    if (config.NHI_METER_INVENTORY_FILE) {
      const imported = await importInventoryFile(client, config.NHI_METER_INVENTORY_FILE)
      log.info(`inventory: ${config.NHI_METER_INVENTORY_FILE}: ${imported.created} created, ${imported.updated} updated, ${imported.unchanged} unchanged`)
    }

    let keys: KeyStore
    let generatedKey: string | undefined
    if (config.NHI_METER_API_KEYS_FILE) {
      keys = KeyStore.fromFile(config.NHI_METER_API_KEYS_FILE)
    } else {
      const generated = await loadGeneratedKeys(client)
      keys = generated.store
      generatedKey = generated.newKey
    }

    // Before the API, so a month closed through it queues statement.closed; pending deliveries resume now.
    webhooks = await startWebhooks({
      client: jobs,
      policy,
      destinations: webhookDestinations,
      dir: join(config.NHI_METER_DATA_DIR, 'webhooks'),
      intervalMs: config.NHI_METER_WEBHOOK_INTERVAL_SECONDS * 1000,
      settleMs: config.NHI_METER_ROLLUP_GRACE_SECONDS * 1000,
      delivery: { timeoutMs: config.NHI_METER_WEBHOOK_TIMEOUT_SECONDS * 1000, maxRetryMs: config.NHI_METER_WEBHOOK_MAX_RETRY_SECONDS * 1000 },
      log,
    })
    const app = createApp({
      onStatementClosed: webhooks?.statementClosed,
      client,
      keys: () => keys,
      policy,
      logError: (requestId, error) => log.error(`request ${requestId} failed`, error),
      rateLimit: {
        perSecond: config.NHI_METER_RATE_LIMIT_PER_SECOND,
        burst: config.NHI_METER_RATE_LIMIT_BURST,
        authFailuresPerMinute: config.NHI_METER_AUTH_FAILURES_PER_MINUTE,
      },
      metrics,
    })
    const api: ServerType = await new Promise((resolve, reject) => {
      const server = serve({ fetch: app.fetch, port: config.NHI_METER_PORT, hostname: config.NHI_METER_HOST }, () => resolve(server))
      server.once('error', reject)
    })
    answerClientErrors(api as Server)
    const apiPort = (api.address() as AddressInfo).port

    let receiver: Receiver | undefined
    let otlpPort: number | undefined
    // Exports are acknowledged once in the durable log; a background loop moves the log into ClickHouse.
    const writer = new DurableWriter(client, {
      dir: config.NHI_METER_INGEST_LOG_DIR ?? join(config.NHI_METER_DATA_DIR, 'ingest-log'),
      maxBytes: config.NHI_METER_INGEST_LOG_MAX_BYTES,
      maxRows: config.NHI_METER_OTLP_MAX_QUEUED_SPANS,
      onStorageState: (state) =>
        state.ok
          ? log.info('ingest: storing the ingest log in ClickHouse again')
          : log.error(`ingest: storing the ingest log in ClickHouse failed${state.diskFull ? ' (storage is out of disk space)' : ''}; exports are still taken until the log is full, and retried`, state.error),
      metrics,
    })
    metrics.observe((report) =>
      report.ingestLog({ spans: writer.pendingRows, bytes: writer.pendingBytes, maxSpans: config.NHI_METER_OTLP_MAX_QUEUED_SPANS, maxBytes: config.NHI_METER_INGEST_LOG_MAX_BYTES }),
    )
    if (config.NHI_METER_OTLP_PORT !== 'off') {
      receiver = createReceiver({
        writer,
        keys: config.NHI_METER_OTLP_AUTH === 'none' ? undefined : keys,
        failedAuthPerClient: failedAuthBuckets(config.NHI_METER_AUTH_FAILURES_PER_MINUTE),
        maxBodyBytes: config.NHI_METER_OTLP_MAX_BODY_BYTES,
        onError: (error) => log.error('receiver error', error),
        metrics,
      })
      otlpPort = await receiver.listen(config.NHI_METER_OTLP_PORT, config.NHI_METER_HOST)
    }

    const rollup =
      config.NHI_METER_ROLLUP_INTERVAL_SECONDS > 0
        ? scheduleRollup(jobs, config.NHI_METER_ROLLUP_INTERVAL_SECONDS * 1000, () => policy().rate_cards, (error, failedRuns) => log.error(`usage summary job failed${failedRuns > 1 ? ` (${failedRuns} runs in a row)` : ''}; billing stays exact, it reads the ledger meanwhile`, error), {
            // The embedded engine knows its writes under way and needs no grace; a server's writers cannot all be seen.
            graceSeconds: config.CLICKHOUSE_URL ? config.NHI_METER_ROLLUP_GRACE_SECONDS : undefined,
            observeRun: metrics.jobs.periodic('usage_summary'),
          })
        : undefined

    const resolution =
      config.NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS > 0
        ? scheduleTraceResolution(
            jobs,
            () => placeholderRule(policy().identity),
            config.NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS * 1000,
            { waitSeconds: config.NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS },
            (error) => log.error('trace resolution failed; the events it decides stay pending (counted in completeness) until a run succeeds', error),
            metrics.jobs.periodic('trace_resolution'),
          )
        : undefined

    const findingsEvaluation =
      endpoint && config.NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS > 0
        ? scheduleFindingsEvaluation(jobs, policy, config.NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS * 1000, metrics, (error) => log.error('findings evaluation for the metrics failed; nhi_meter_findings_* keep their last values until a run succeeds', error))
        : undefined

    return {
      apiPort,
      otlpPort,
      metricsPort: endpoint?.port,
      generatedKey,
      close: async () => {
        await findingsEvaluation?.stop()
        await resolution?.stop()
        await rollup?.stop()
        await receiver?.close()
        await writer.close()
        await new Promise<void>((resolve) => api.close(() => resolve()))
        await webhooks?.close()
        await client.close()
        // Last, so a scrape during shutdown still answers.
        await endpoint?.close()
      },
    }
  } catch (error) {
    await webhooks?.close().catch(() => undefined)
    await client.close().catch(() => undefined)
    await endpoint?.close().catch(() => undefined)
    throw error
  }
}
