/**
 * Zero-code start: `node --import @nhi-meter/instrumentation/register app.js`.
 *
 * Starts the OpenTelemetry Node SDK configured by the standard `OTEL_*`
 * variables and the `NHI_*` ones, with the auto-instrumentations when
 * `@opentelemetry/auto-instrumentations-node` is installed, and flushes spans
 * when the process ends. Nothing here throws into the app: a failure is
 * written to stderr once and the app runs untraced.
 */
import { loadAutoInstrumentations, reportAutoInstrumentations } from './auto-instrumentations.js'
import { startNhiMeter, type NhiMeter } from './sdk.js'

/** How long a signal waits for spans to be flushed before the process goes on ending. */
const SIGNAL_FLUSH_TIMEOUT_MS = 5_000

async function startFromEnvironment(): Promise<NhiMeter | undefined> {
  try {
    if (process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined
    const auto = await loadAutoInstrumentations()
    const meter = startNhiMeter({ instrumentations: auto.instrumentations })
    reportAutoInstrumentations(auto)
    if (meter.started) flushOnExit(meter)
    return meter
  } catch (error) {
    console.error('@nhi-meter/instrumentation: not started, the app runs untraced:', error)
    return undefined
  }
}

/**
 * Exports pending spans before the process goes away. On a natural exit the
 * SDK is shut down. On SIGTERM/SIGINT spans are flushed; if the app has no
 * handler of its own the signal is then re-raised, so the process still ends
 * as it would have without us.
 */
function flushOnExit(meter: NhiMeter): void {
  process.once('beforeExit', () => {
    void meter.shutdown()
  })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = (): void => {
      const appHandles = process.listenerCount(signal) > 1
      const flushed = appHandles ? meter.forceFlush() : meter.shutdown()
      // An unreachable endpoint must not hold the process past its signal for the export timeout.
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, SIGNAL_FLUSH_TIMEOUT_MS).unref())
      void Promise.race([flushed, deadline]).finally(() => {
        if (appHandles) return
        process.removeListener(signal, onSignal)
        process.kill(process.pid, signal)
      })
    }
    process.on(signal, onSignal)
  }
}

/** The meter the zero-code start created, for apps that want to flush or stop it. */
export const meter: NhiMeter | undefined = await startFromEnvironment()
