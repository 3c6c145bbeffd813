import { diag } from '@opentelemetry/api'
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node'
import { createRequire, register as registerLoaderHook } from 'node:module'
import { pathToFileURL } from 'node:url'
import { nhiHttpRequestHook } from './http-request-hook.js'
import { reportFailure } from './report.js'
import type { NhiIdentityResolver } from './resolvers.js'

/** The optional package that brings the standard Node.js instrumentations. */
export const AUTO_INSTRUMENTATIONS_PACKAGE = '@opentelemetry/auto-instrumentations-node'

type Instrumentations = NonNullable<NodeSDKConfiguration['instrumentations']>

/** What `@opentelemetry/auto-instrumentations-node` exports that we use. */
interface AutoInstrumentationsModule {
  getNodeAutoInstrumentations(config?: Record<string, unknown>): Instrumentations[number]
}

/** Options of {@link loadAutoInstrumentations}; the defaults are what the zero-code start uses, tests replace them. */
export interface LoadAutoInstrumentationsOptions {
  /** Resolvers for the HTTP server request hook. Default the configured ones. */
  resolvers?: readonly NhiIdentityResolver[]
  /** Imports a module by name. Default dynamic `import()`. */
  importModule?: (specifier: string) => Promise<unknown>
  /** Registers the ESM loader hook that lets instrumentations patch ES modules. Default {@link registerEsmInstrumentationHook}. */
  registerEsmHook?: () => void
}

/**
 * Registers `@opentelemetry/instrumentation/hook.mjs` (import-in-the-middle),
 * found next to the auto-instrumentations package, so that instrumentations
 * also patch modules the app loads with `import`. Failures are reported
 * through `diag`; CommonJS modules are still instrumented.
 */
export function registerEsmInstrumentationHook(): void {
  try {
    const fromHere = createRequire(import.meta.url)
    const autoPath = fromHere.resolve(AUTO_INSTRUMENTATIONS_PACKAGE)
    const hookPath = createRequire(autoPath).resolve('@opentelemetry/instrumentation/hook.mjs')
    registerLoaderHook(pathToFileURL(hookPath))
  } catch (error) {
    reportFailure('registering the ESM instrumentation hook (ES modules are not auto-instrumented)', error)
  }
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
}

/** What {@link loadAutoInstrumentations} found. */
export interface AutoInstrumentationsResult {
  /** The instrumentations to pass to the SDK (empty unless `loaded`). */
  instrumentations: Instrumentations
  /** `loaded`, `absent` (not installed) or `failed` (installed but unusable; the error is in `error`). */
  status: 'loaded' | 'absent' | 'failed'
  /** Why loading failed. */
  error?: unknown
}

/**
 * Loads `@opentelemetry/auto-instrumentations-node` when it is installed and
 * returns its instrumentations, with the HTTP server request hook that
 * resolves the caller's identity. When it is not installed the list is empty:
 * the app still gets its own and the helpers' spans. Never throws; the caller
 * reports the status once its `diag` logger is set (see {@link reportAutoInstrumentations}).
 */
export async function loadAutoInstrumentations(options: LoadAutoInstrumentationsOptions = {}): Promise<AutoInstrumentationsResult> {
  const importModule =
    options.importModule ??
    (async (specifier: string) => {
      // Resolving first gives a plain MODULE_NOT_FOUND for an absent package, whatever loader (tsx, a test runner) wraps import().
      createRequire(import.meta.url).resolve(specifier)
      return import(specifier)
    })
  let loaded: AutoInstrumentationsModule
  try {
    loaded = (await importModule(AUTO_INSTRUMENTATIONS_PACKAGE)) as AutoInstrumentationsModule
  } catch (error) {
    return isModuleNotFound(error) ? { instrumentations: [], status: 'absent' } : { instrumentations: [], status: 'failed', error }
  }
  try {
    ;(options.registerEsmHook ?? registerEsmInstrumentationHook)()
    const instrumentations = loaded.getNodeAutoInstrumentations({
      '@opentelemetry/instrumentation-http': { requestHook: nhiHttpRequestHook(options.resolvers) },
    })
    return { instrumentations: [instrumentations], status: 'loaded' }
  } catch (error) {
    return { instrumentations: [], status: 'failed', error }
  }
}

/** Reports the outcome of {@link loadAutoInstrumentations} through `diag`. */
export function reportAutoInstrumentations(result: AutoInstrumentationsResult): void {
  if (result.status === 'absent') {
    diag.info(`@nhi-meter/instrumentation: ${AUTO_INSTRUMENTATIONS_PACKAGE} is not installed; libraries are not auto-instrumented`)
  } else if (result.status === 'failed') {
    reportFailure(`loading ${AUTO_INSTRUMENTATIONS_PACKAGE} (libraries are not auto-instrumented)`, result.error)
  } else {
    diag.debug(`@nhi-meter/instrumentation: ${AUTO_INSTRUMENTATIONS_PACKAGE} loaded`)
  }
}
