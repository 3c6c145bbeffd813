import { context, diag, propagation, trace } from '@opentelemetry/api'
import { OTLPTraceExporter as OTLPHttpJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as OTLPHttpProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import {
  defaultResource,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  type ResourceDetector,
} from '@opentelemetry/resources'
import { NodeSDK, type NodeSDKConfiguration } from '@opentelemetry/sdk-node'
// `sdk-trace`, not `sdk-trace-base`: the stable trace SDK under the name both lines publish (2.9+ and 3.x), with the same API.
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type BatchSpanProcessorOptions,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace'
import { resolveFingerprintKey, usesDefaultFingerprintKey, warnDefaultFingerprintKey } from './fingerprint.js'
import { processIdentityAttributes, type NhiIdentity } from './identity.js'
import { NhiIdentitySpanProcessor, type SpanStartHook } from './identity-span-processor.js'
import { RedactingSpanExporter, type RedactionOptions } from './redacting-span-exporter.js'
import { reportFailure } from './report.js'
import { configureResolvers, defaultResolvers, type NhiIdentityResolver } from './resolvers.js'

/** Batch processor settings (queue and batch sizes, delays); unset fields follow the `OTEL_BSP_*` variables. */
export type BatchSettings = Omit<BatchSpanProcessorOptions, 'exporter'>

/** The variables of the batch settings, as the OpenTelemetry SDK environment specification names them. */
const BATCH_VARIABLES = {
  maxExportBatchSize: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
  maxQueueSize: 'OTEL_BSP_MAX_QUEUE_SIZE',
  scheduledDelayMillis: 'OTEL_BSP_SCHEDULE_DELAY',
  exportTimeoutMillis: 'OTEL_BSP_EXPORT_TIMEOUT',
} as const

/**
 * Fills the batch settings not given in code from the `OTEL_BSP_*` variables.
 * `sdk-trace`'s processor reads no variables (`sdk-trace-base`'s did, and it
 * has no 3.x release), so this keeps them honoured on both lines.
 */
export function batchSettingsFromEnv(settings: BatchSettings = {}, env: NodeJS.ProcessEnv = process.env): BatchSettings {
  const filled: BatchSettings = { ...settings }
  for (const [field, variable] of Object.entries(BATCH_VARIABLES) as [keyof typeof BATCH_VARIABLES, string][]) {
    const raw = env[variable]?.trim()
    if (filled[field] !== undefined || !raw) continue
    const value = Number(raw)
    if (Number.isFinite(value) && value >= 0) filled[field] = value
    else diag.warn(`@nhi-meter/instrumentation: ${variable}=${JSON.stringify(raw)} is not a number; ignored`)
  }
  return filled
}

/** Options of {@link nhiSpanProcessors}. */
export interface NhiSpanProcessorsOptions {
  /** Where spans go. Each is wrapped so it only ever receives redacted spans. */
  exporters: readonly SpanExporter[]
  /** Redaction settings; on by default. */
  redaction?: RedactionOptions
  /** Hook run for every span as it starts. */
  onSpanStart?: SpanStartHook
  /** Batch settings (they default to the `OTEL_BSP_*` variables); `false` exports each span at once (for tests and debugging). */
  batch?: BatchSettings | false
  /** Where the `OTEL_BSP_*` variables are read. Default `process.env`. */
  env?: NodeJS.ProcessEnv
}

/**
 * The span processors nhi-meter needs, in order: identity stamping first (so
 * every later processor sees the identity), then one export processor per
 * exporter, each exporting through redaction. Use it to add nhi-meter to a
 * tracer provider you build yourself.
 */
export function nhiSpanProcessors(options: NhiSpanProcessorsOptions): SpanProcessor[] {
  const redaction = options.redaction ?? {}
  const processors: SpanProcessor[] = [new NhiIdentitySpanProcessor({ onSpanStart: options.onSpanStart })]
  for (const exporter of options.exporters) {
    const guarded = redaction.enabled === false ? exporter : new RedactingSpanExporter(exporter, redaction)
    processors.push(
      options.batch === false || exporter instanceof ConsoleSpanExporter
        ? new SimpleSpanProcessor({ exporter: guarded })
        : new BatchSpanProcessor({ ...batchSettingsFromEnv(options.batch || {}, options.env), exporter: guarded }),
    )
  }
  return processors
}

/**
 * The trace exporters the standard variables ask for: `OTEL_TRACES_EXPORTER`
 * (`otlp` by default, `console`, `none`) and, for `otlp`,
 * `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`:
 * `http/protobuf` (the default, as the OpenTelemetry specification sets it
 * for SDKs; `@opentelemetry/exporter-trace-otlp-proto`) or `http/json`
 * (`@opentelemetry/exporter-trace-otlp-http`). The OTLP exporters read their endpoint, headers,
 * timeout and compression from the `OTEL_EXPORTER_OTLP_*` variables themselves.
 */
export function traceExportersFromEnv(env: NodeJS.ProcessEnv = process.env): SpanExporter[] {
  const names = [
    ...new Set(
      (env.OTEL_TRACES_EXPORTER ?? '')
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== ''),
    ),
  ]
  if (names.includes('none')) return []
  if (names.length === 0) names.push('otlp')
  const exporters: SpanExporter[] = []
  for (const name of names) {
    if (name === 'otlp') {
      const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf').trim()
      if (protocol === 'http/json') exporters.push(new OTLPHttpJsonTraceExporter())
      else {
        if (protocol !== 'http/protobuf') diag.warn(`@nhi-meter/instrumentation: OTLP protocol "${protocol}" is not supported; exporting with http/protobuf`)
        exporters.push(new OTLPHttpProtoTraceExporter())
      }
    } else if (name === 'console') {
      exporters.push(new ConsoleSpanExporter())
    } else {
      diag.warn(`@nhi-meter/instrumentation: OTEL_TRACES_EXPORTER value "${name}" is not supported (use otlp, console or none); ignored`)
    }
  }
  return exporters
}

const detectorsByName: Record<string, ResourceDetector[]> = {
  env: [envDetector],
  host: [hostDetector],
  os: [osDetector],
  process: [processDetector],
  serviceinstance: [serviceInstanceIdDetector],
  all: [envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector],
}

/** The resource detectors `OTEL_NODE_RESOURCE_DETECTORS` selects, as the Node SDK reads it (default env, process, host). */
function resourceDetectorsFromEnv(env: NodeJS.ProcessEnv): ResourceDetector[] {
  const names = (env.OTEL_NODE_RESOURCE_DETECTORS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (names.length === 0) return [envDetector, processDetector, hostDetector]
  if (names.includes('none')) return []
  return [...new Set(names.flatMap((n) => detectorsByName[n] ?? []))]
}

/** Options of {@link startNhiMeter}; every field is optional. */
export interface NhiMeterOptions {
  /** `service.name` of the process. Default `OTEL_SERVICE_NAME`, then the SDK default. */
  serviceName?: string
  /** Static identity of the process, put on the resource. Each field wins over its `NHI_*` variable. */
  identity?: Partial<Pick<NhiIdentity, 'id' | 'type' | 'owner' | 'businessUnit'>>
  /** Where spans go. Default: the exporters `OTEL_TRACES_EXPORTER` names (OTLP/HTTP by default). */
  exporters?: readonly SpanExporter[]
  /** How inbound requests are tied to identities. Default {@link defaultResolvers}. */
  resolvers?: readonly NhiIdentityResolver[]
  /** HMAC key for credential fingerprints. Default `NHI_CREDENTIAL_FINGERPRINT_KEY`. */
  fingerprintKey?: string
  /** Redaction settings; on by default. */
  redaction?: RedactionOptions
  /** Hook run for every span as it starts. */
  onSpanStart?: SpanStartHook
  /** Batch settings of the export processors; default the `OTEL_BSP_*` variables. `false` exports each span at once. */
  batch?: BatchSettings | false
  /** Instrumentations to enable (e.g. `getNodeAutoInstrumentations()`). */
  instrumentations?: NodeSDKConfiguration['instrumentations']
  /** Any other Node SDK setting (sampler, span limits, resource, propagator, metric readers, …). */
  sdk?: Partial<NodeSDKConfiguration>
  /** Environment to read `NHI_*` and `OTEL_*` settings from. Default `process.env`. */
  env?: NodeJS.ProcessEnv
}

/** A started nhi-meter: the SDK and the means to flush and stop it. */
export interface NhiMeter {
  /** False when start-up failed (the reason went to `diag`); the app runs on untraced. */
  readonly started: boolean
  /** The underlying OpenTelemetry Node SDK. */
  readonly sdk: NodeSDK | undefined
  /** The resolvers `withRequestIdentity` uses. */
  readonly resolvers: readonly NhiIdentityResolver[]
  /** Exports every span ended so far. */
  forceFlush(): Promise<void>
  /** Exports what is pending, stops the SDK and unregisters it from the OpenTelemetry API. */
  shutdown(): Promise<void>
}

/**
 * Starts OpenTelemetry tracing with NHI identity on every span and redaction
 * before export, and registers it globally. Settings come from `options`,
 * then the `NHI_*` and `OTEL_*` variables. Never throws: a failure is reported
 * through `diag` and a handle with `started: false` is returned.
 */
export function startNhiMeter(options: NhiMeterOptions = {}): NhiMeter {
  const env = options.env ?? process.env
  let resolvers: readonly NhiIdentityResolver[] = []
  try {
    // Resolved without warning: the SDK sets up the diag logger, so warnings are given after it starts.
    const fingerprintKey = resolveFingerprintKey(options.fingerprintKey, env, false)
    resolvers = options.resolvers ?? defaultResolvers(env, fingerprintKey)
    configureResolvers(resolvers, fingerprintKey)

    const processors = nhiSpanProcessors({
      exporters: options.exporters ?? traceExportersFromEnv(env),
      redaction: { fingerprintKey, ...options.redaction },
      onSpanStart: options.onSpanStart,
      batch: options.batch,
      env,
    })
    const sdkOptions: Partial<NodeSDKConfiguration> = { ...options.sdk }
    const identityAttributes = processIdentityAttributes(options.identity, env)
    if (sdkOptions.autoDetectResources === false) {
      sdkOptions.resource = (sdkOptions.resource ?? defaultResource()).merge(resourceFromAttributes(identityAttributes))
    } else {
      // Detected attributes (OTEL_RESOURCE_ATTRIBUTES among them) are merged over
      // the base resource; the NHI identity detector runs last so NHI_* wins.
      sdkOptions.resourceDetectors = [
        ...(sdkOptions.resourceDetectors ?? resourceDetectorsFromEnv(env)),
        { detect: () => ({ attributes: identityAttributes }) },
      ]
    }
    // The package is about traces: metrics and logs stay off unless their variables ask for them.
    if (!sdkOptions.metricReaders && !sdkOptions.metricReader && !env.OTEL_METRICS_EXPORTER) sdkOptions.metricReaders = []
    if (!sdkOptions.logRecordProcessors && !sdkOptions.logRecordProcessor && !env.OTEL_LOGS_EXPORTER) sdkOptions.logRecordProcessors = []
    const sdk = new NodeSDK({
      ...sdkOptions,
      serviceName: options.serviceName ?? sdkOptions.serviceName,
      instrumentations: [...(sdkOptions.instrumentations ?? []), ...(options.instrumentations ?? [])],
      spanProcessors: [...processors.slice(0, 1), ...(sdkOptions.spanProcessors ?? []), ...processors.slice(1)],
    })
    sdk.start()
    if (usesDefaultFingerprintKey(options.fingerprintKey, env)) warnDefaultFingerprintKey()
    let stopped = false
    return {
      started: true,
      sdk,
      resolvers,
      forceFlush: async () => {
        await Promise.all(processors.map((p) => p.forceFlush().catch((error: unknown) => reportFailure('flushing spans', error))))
      },
      shutdown: async () => {
        if (stopped) return
        stopped = true
        try {
          await sdk.shutdown()
        } catch (error) {
          reportFailure('shutting down the SDK', error)
        }
        trace.disable()
        context.disable()
        propagation.disable()
      },
    }
  } catch (error) {
    reportFailure('starting nhi-meter (spans are not exported)', error)
    return { started: false, sdk: undefined, resolvers, forceFlush: async () => {}, shutdown: async () => {} }
  }
}
