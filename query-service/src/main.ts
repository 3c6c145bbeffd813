/**
 * Entry point of `npm start`: reads the environment once, starts the
 * single-node product and shuts it down cleanly on SIGINT/SIGTERM.
 */
import { ConfigError, parseConfig } from './config.js'
import { loadDefaultPolicy, loadPolicyFile, PolicyError } from './policy/index.js'
import { InventoryFileError } from './identities/inventory-file.js'
import { startService } from './service.js'
import { withSecrets } from './webhooks/secrets.js'

const log = {
  info: (message: string) => console.log(`nhi-meter: ${message}`),
  error: (message: string, error?: unknown) => console.error(`nhi-meter: ${message}`, error instanceof Error ? error.message : (error ?? '')),
}

async function main(): Promise<void> {
  const config = parseConfig(process.env)
  const loaded = config.NHI_METER_POLICY ? await loadPolicyFile(config.NHI_METER_POLICY) : await loadDefaultPolicy()
  for (const warning of loaded.warnings) log.info(`policy warning: ${warning.path}: ${warning.message}`)
  const started = Date.now()
  // The webhook secrets are read here, once, with the rest of the environment; a missing one stops start-up.
  const webhooks = withSecrets(loaded.policy.webhooks, process.env, loaded.source)
  const service = await startService(config, () => loaded.policy, log, webhooks)
  const host = config.NHI_METER_HOST.includes(':') ? `[${config.NHI_METER_HOST}]` : config.NHI_METER_HOST
  log.info(`query API on http://${host}:${service.apiPort} (storage: ${config.CLICKHOUSE_URL ? `ClickHouse at ${new URL(config.CLICKHOUSE_URL).origin}` : `embedded ClickHouse in ${config.NHI_METER_DATA_DIR}`})`)
  if (service.otlpPort !== undefined) {
    log.info(`OTLP/HTTP receiver on http://${host}:${service.otlpPort}/v1/traces${config.NHI_METER_OTLP_AUTH === 'none' ? ' (no auth: loopback only)' : ' (needs a key with ingest:write)'}`)
  }
  if (service.metricsPort !== undefined) log.info(`metrics (Prometheus) on http://${host}:${service.metricsPort}/metrics`)
  if (service.generatedKey) {
    console.log(
      [
        '',
        'nhi-meter: no NHI_METER_API_KEYS_FILE, so an admin API key was created. It is shown this once and only its SHA-256 is kept:',
        '',
        `    ${service.generatedKey}`,
        '',
        '  Use it as:  Authorization: Bearer <key>   (for exporters: OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <key>")',
        '',
      ].join('\n'),
    )
  }

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info(`${signal}: draining and shutting down`)
    service.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('shutdown failed', error)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // Said last, once signals are handled: anything waiting for this line may stop the process at once.
  log.info(`ready in ${Date.now() - started} ms`)
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`nhi-meter: invalid configuration: ${error.message}`)
  } else if (error instanceof InventoryFileError) {
    console.error(`nhi-meter: invalid inventory file: ${error.message}`)
  } else if (error instanceof PolicyError) {
    console.error(`nhi-meter: invalid policy (NHI_METER_POLICY): ${error.message}`)
  } else {
    console.error(`nhi-meter: failed to start: ${error instanceof Error ? error.message : String(error)}`)
  }
  process.exit(1)
})
