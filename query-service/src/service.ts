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
import { openStorage } from './storage/client.js'
import { migrate } from './storage/migrations.js'

/** A running service. */
export interface RunningService {
  apiPort: number
  /** Undefined when the receiver is off. */
  otlpPort: number | undefined
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
export async function startService(config: Config, policy: () => Policy, log: ServiceLog): Promise<RunningService> {
  const client = await openStorage(
    config.CLICKHOUSE_URL
      ? { kind: 'server', url: config.CLICKHOUSE_URL, username: config.CLICKHOUSE_USER, password: config.CLICKHOUSE_PASSWORD, database: config.CLICKHOUSE_DATABASE }
      : { kind: 'embedded', dataDir: config.NHI_METER_DATA_DIR },
    log,
  )
  try {
    const applied = await migrate(client, config.NHI_METER_CLICKHOUSE_CLUSTER ? { cluster: { cluster: config.NHI_METER_CLICKHOUSE_CLUSTER } } : {})
    if (applied.length > 0) log.info(`schema: applied migrations ${applied.join(', ')}`)
    const backfilled = await backfillIdentityActivity(client)
    if (backfilled) log.info(`identity ledger: copied ${backfilled} earlier use events`)
    const digested = await backfillFindingsDigest(client)
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

    const app = createApp({
      client,
      keys: () => keys,
      policy,
      logError: (requestId, error) => log.error(`request ${requestId} failed`, error),
      rollupGraceSeconds: config.NHI_METER_ROLLUP_GRACE_SECONDS,
      rateLimit: {
        perSecond: config.NHI_METER_RATE_LIMIT_PER_SECOND,
        burst: config.NHI_METER_RATE_LIMIT_BURST,
        authFailuresPerMinute: config.NHI_METER_AUTH_FAILURES_PER_MINUTE,
      },
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
    })
    if (config.NHI_METER_OTLP_PORT !== 'off') {
      receiver = createReceiver({
        writer,
        keys: config.NHI_METER_OTLP_AUTH === 'none' ? undefined : keys,
        failedAuthPerClient: failedAuthBuckets(config.NHI_METER_AUTH_FAILURES_PER_MINUTE),
        maxBodyBytes: config.NHI_METER_OTLP_MAX_BODY_BYTES,
        onError: (error) => log.error('receiver error', error),
      })
      otlpPort = await receiver.listen(config.NHI_METER_OTLP_PORT, config.NHI_METER_HOST)
    }

    const rollup =
      config.NHI_METER_ROLLUP_INTERVAL_SECONDS > 0
        ? scheduleRollup(client, config.NHI_METER_ROLLUP_INTERVAL_SECONDS * 1000, () => policy().rate_cards, (error, failedRuns) => log.error(`usage summary job failed${failedRuns > 1 ? ` (${failedRuns} runs in a row)` : ''}; billing stays exact, it reads the ledger meanwhile`, error), { graceSeconds: config.NHI_METER_ROLLUP_GRACE_SECONDS })
        : undefined

    const resolution =
      config.NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS > 0
        ? scheduleTraceResolution(
            client,
            () => placeholderRule(policy().identity),
            config.NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS * 1000,
            { waitSeconds: config.NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS },
            (error) => log.error('trace resolution failed; the events it decides stay pending (counted in completeness) until a run succeeds', error),
          )
        : undefined

    return {
      apiPort,
      otlpPort,
      generatedKey,
      close: async () => {
        await resolution?.stop()
        await rollup?.stop()
        await receiver?.close()
        await writer.close()
        await new Promise<void>((resolve) => api.close(() => resolve()))
        await client.close()
      },
    }
  } catch (error) {
    await client.close().catch(() => undefined)
    throw error
  }
}
