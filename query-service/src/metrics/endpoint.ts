/**
 * The service's Prometheus scrape endpoint: `GET /metrics` on a listener of
 * its own (NHI_METER_METRICS_PORT), never on the API or receiver ports. The
 * OpenTelemetry metrics SDK aggregates; its Prometheus exporter is used as a
 * pull reader and serializer only, so this module owns the listener: a port
 * that cannot be bound stops start-up, and closing stops it.
 */
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { MeterProvider, type ViewOptions } from '@opentelemetry/sdk-metrics'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { METRICS, prometheusName } from './catalog.js'
import { createServiceMetrics, type ServiceMetrics } from './instruments.js'

/** Name of the meter (the `otel_scope_name` label of every series). */
export const METER_NAME = '@nhi-meter/query-service'

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  metrics: ServiceMetrics
  /** The bound port. */
  port: number
  /** Stops the listener and the meter provider. */
  close(): Promise<void>
}

/**
 * One view per metric renames it to its Prometheus name (with the unit, as
 * OpenTelemetry's Prometheus compatibility rules ask), since the exporter
 * only turns dots into underscores and adds `_total`.
 */
function prometheusViews(): ViewOptions[] {
  return Object.values(METRICS).map((metric) => ({ instrumentName: metric.name, meterName: METER_NAME, name: prometheusName(metric) }))
}

/** Starts the meter provider and listens on `host:port` (0: any free port). */
export async function startMetricsEndpoint(options: { port: number; host: string; serviceVersion?: string }): Promise<MetricsEndpoint> {
  const reader = new PrometheusExporter({ preventServerStart: true })
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'nhi-meter', ...(options.serviceVersion ? { 'service.version': options.serviceVersion } : {}) }),
    readers: [reader],
    views: prometheusViews(),
  })
  const metrics = createServiceMetrics(provider.getMeter(METER_NAME, options.serviceVersion))
  const serializer = new PrometheusSerializer()

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found; metrics are served at GET /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET\n')
      return
    }
    reader.collect().then(
      ({ resourceMetrics }) => {
        const body = serializer.serialize(resourceMetrics)
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`)
      },
    )
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port, options.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await provider.shutdown().catch(() => undefined)
    throw new Error(`NHI_METER_METRICS_PORT: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error })
  }
  return {
    metrics,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
      await provider.shutdown()
    },
  }
}
