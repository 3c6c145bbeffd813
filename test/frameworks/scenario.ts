/**
 * What the agent-framework scenarios share: the product started with a rate
 * card that bills every tool call, a real OpenTelemetry pipeline that sends
 * to its receiver (and keeps a copy of every span so a test can say what the
 * framework emitted), a guard that keeps every request on this machine, and
 * the wait for trace resolution before the bill is read.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { context, propagation, type Attributes } from '@opentelemetry/api'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { startService, tempDataDir, waitForTraceResolution as waitForSettled, type ServiceUnderTest } from '../helpers/service.js'

/** The rate card of every scenario: each successful tool call, whatever its name, is one billable event. */
export const TOOL_CALL_POLICY = `rate_cards:
  - version: "frameworks"
    effective_from: "2020-01-01T00:00:00Z"
    currency: USD
    meters:
      - name: tool_calls
        activity_type: tool_invocation
        activity_name: "*"
        status: any
        unit_price: "0.002"
`

/** The product under test, with the key that reads its API and writes to its receiver. */
export interface MeteredService {
  service: ServiceUnderTest
  key: string
  stop(): Promise<void>
}

/** Starts nhi-meter billing tool calls, with trace resolution running every second. */
export async function startMeteredService(): Promise<MeteredService> {
  const policyFile = join(tempDataDir('nhi-meter-frameworks-policy-'), 'policy.yaml')
  writeFileSync(policyFile, TOOL_CALL_POLICY)
  const service = await startService({ env: { NHI_METER_POLICY: policyFile, NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS: '1' } })
  if (!service.adminKey) throw new Error(`the service printed no admin key:\n${service.output()}`)
  return { service, key: service.adminKey, stop: async () => void (await service.stop()) }
}

/** One export the OTLP exporter made, as the receiver answered it. */
export interface ExportRecord { spans: number; ok: boolean; error?: string }

/**
 * The real OTLP/protobuf exporter, with a note of every answer: the batch
 * processor drops export errors silently, and a test must be able to say the
 * receiver took every span.
 */
class RecordingExporter implements SpanExporter {
  readonly exports: ExportRecord[] = []
  constructor(private readonly inner: SpanExporter) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.exports.push({ spans: spans.length, ok: result.code === ExportResultCode.SUCCESS, ...(result.error ? { error: String(result.error) } : {}) })
      done(result)
    })
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve()
  }
}

/** An application's tracing set up the usual way, plus what a test needs to look at it. */
export interface AppTracing {
  provider: NodeTracerProvider
  /** Every span the application finished, in end order. */
  finished(): ReadableSpan[]
  /** Every export to the receiver and its answer. */
  exports: ExportRecord[]
  /** Flushes and shuts down, so every span has been offered to the receiver. */
  shutdown(): Promise<void>
}

/**
 * Registers a global NodeTracerProvider (async-hooks context, W3C
 * propagation) that batches to nhi-meter's receiver over OTLP/protobuf, as
 * an application in production would. Each test file runs in its own
 * process, so the global registration does not leak between files.
 */
export function startAppTracing(options: { serviceName: string; otlpUrl: string; key: string; resource?: Attributes }): AppTracing {
  const memory = new InMemorySpanExporter()
  const otlp = new RecordingExporter(new OTLPTraceExporter({ url: options.otlpUrl, headers: { Authorization: `Bearer ${options.key}` } }))
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName, ...options.resource }),
    spanProcessors: [new BatchSpanProcessor(otlp), new SimpleSpanProcessor(memory)],
  })
  provider.register()
  // The in-memory exporter forgets its spans when the provider shuts it down, so they are kept here first.
  let kept: ReadableSpan[] | undefined
  return {
    provider,
    finished: () => kept ?? memory.getFinishedSpans(),
    exports: otlp.exports,
    shutdown: async () => {
      await provider.forceFlush()
      kept = [...memory.getFinishedSpans()]
      await provider.shutdown()
    },
  }
}

/** Requests that tried to leave the machine while the guard was on. */
export interface NetworkGuard { refused: string[]; restore(): void }

/**
 * Refuses every `fetch` to a host other than loopback, and remembers it. The
 * SDKs under test call vendor clouds by default (model APIs, trace ingest);
 * a test asserts `refused` is empty, so a default we failed to override
 * shows up as a failure instead of as traffic.
 */
export function guardNetwork(): NetworkGuard {
  const original = globalThis.fetch
  const refused: string[] = []
  globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
    if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost' && url.hostname !== '[::1]') {
      refused.push(url.href)
      throw new Error(`network guard: refused ${url.href}; tests must stay on loopback`)
    }
    return original(input, init)
  }) as typeof fetch
  return { refused, restore: () => void (globalThis.fetch = original) }
}

/**
 * `fetch` that sends the active trace context (W3C `traceparent`) with each
 * request, as an HTTP client instrumentation would; none is installed here,
 * and without it an MCP server's spans would start a trace of their own.
 */
export const traceContextFetch: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined))
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) })
  return fetch(input, { ...init, headers })
}

/** The active trace context as MCP request metadata (`params._meta.traceparent`), the MCP way of carrying it. */
export function traceContextMeta(): Record<string, string> {
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier
}

/** The smallest arguments a JSON Schema (an MCP tool's `inputSchema`) accepts: each required property with a plain value. */
export function sampleArguments(schema: unknown): Record<string, unknown> {
  const { properties = {}, required = [] } = (schema ?? {}) as { properties?: Record<string, { type?: string; enum?: unknown[] }>; required?: string[] }
  const sample = (property: { type?: string; enum?: unknown[] } | undefined): unknown => {
    if (property?.enum?.length) return property.enum[0]
    switch (property?.type) {
      case 'number': case 'integer': return 1
      case 'boolean': return true
      case 'array': return []
      case 'object': return {}
      default: return 'sample'
    }
  }
  return Object.fromEntries(required.map((name) => [name, sample(properties[name])]))
}

/** A row of `GET /v1/billable`, keys as grouped. */
export type BillableRow = Record<string, string | number | null>

/** Reads `path` from the API as JSON, failing with the body when the answer is not 200. */
export async function getJson<T>(metered: MeteredService, path: string): Promise<T> {
  const response = await fetch(`${metered.service.apiUrl}${path}`, { headers: { Authorization: `Bearer ${metered.key}` } })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${text}`)
  return JSON.parse(text) as T
}

/** The range a scenario's spans fall in: from a minute before it started to a minute after it ended. */
export interface Window { from: string; to: string }

/** A window around spans made between `startedAt` and now. */
export function windowSince(startedAt: Date): Window {
  const minute = 60_000
  return { from: new Date(startedAt.getTime() - minute).toISOString(), to: new Date(Date.now() + minute).toISOString() }
}

/** Waits until no event in the window waits for trace resolution (see test/helpers/service.ts). */
export function waitForTraceResolution(metered: MeteredService, window: Window, deadlineMs = 30_000): Promise<void> {
  return waitForSettled(metered.service, metered.key, window, deadlineMs)
}

/** The grouping every scenario bills by: who, what, and for whom. */
export const TOOL_CALL_GROUPING = 'nhi.id,activity.type,activity.name,on_behalf_of'

/** The billable rows of the window grouped by identity, activity and principal, in a stable order. */
export async function billedToolCalls(metered: MeteredService, window: Window): Promise<BillableRow[]> {
  const query = new URLSearchParams({ from: window.from, to: window.to, group_by: TOOL_CALL_GROUPING })
  const bill = await getJson<{ rows: BillableRow[] }>(metered, `/v1/billable?${query}`)
  return bill.rows
    .map((row) => ({ 'nhi.id': row['nhi.id']!, 'activity.type': row['activity.type']!, 'activity.name': row['activity.name']!, on_behalf_of: row.on_behalf_of ?? null, quantity: row.quantity! }))
    .sort(byIdentityAndName)
}

/** What a scenario expects billed: one agent's calls of one tool for one principal. */
export interface ExpectedCalls { agent: string; tool: string; principal: string; calls: number }

/** The rows {@link billedToolCalls} must return for these expectations, in the same order. */
export function expectedRows(expected: ExpectedCalls[]): BillableRow[] {
  const merged = new Map<string, BillableRow>()
  for (const e of expected) {
    const key = JSON.stringify([e.agent, e.tool, e.principal])
    const row = merged.get(key)
    if (row) row.quantity = Number(row.quantity) + e.calls
    else merged.set(key, { 'nhi.id': e.agent, 'activity.type': 'tool_invocation', 'activity.name': e.tool, on_behalf_of: e.principal, quantity: e.calls })
  }
  return [...merged.values()].sort(byIdentityAndName)
}

function byIdentityAndName(a: BillableRow, b: BillableRow): number {
  return String(a['nhi.id']).localeCompare(String(b['nhi.id'])) || String(a['activity.name']).localeCompare(String(b['activity.name'])) || String(a.on_behalf_of).localeCompare(String(b.on_behalf_of))
}

/** A finished span reduced to what identity resolution reads, for shape assertions and failure messages. */
export interface SpanShape {
  name: string
  kind: number
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  attributes: Attributes
}

/** Shapes of finished spans, ordered by start time. */
export function shapes(spans: ReadableSpan[]): SpanShape[] {
  return [...spans]
    .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
    .map((span) => ({
      name: span.name,
      kind: span.kind,
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanContext?.spanId,
      attributes: span.attributes,
    }))
}

/** The spans from `span`'s parent up to its trace's root, nearest first. */
export function ancestorsOf(span: SpanShape, all: SpanShape[]): SpanShape[] {
  const byId = new Map(all.map((s) => [s.spanId, s]))
  const chain: SpanShape[] = []
  for (let parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined; parent; parent = parent.parentSpanId ? byId.get(parent.parentSpanId) : undefined) {
    chain.push(parent)
  }
  return chain
}

/** The names of {@link ancestorsOf}. */
export function ancestry(span: SpanShape, all: SpanShape[]): string[] {
  return ancestorsOf(span, all).map((s) => s.name)
}

/** An indented outline of span trees with selected attributes, to print when a shape assertion fails. */
export function outline(all: SpanShape[], keys: (key: string) => boolean = () => true): string {
  const children = new Map<string | undefined, SpanShape[]>()
  const ids = new Set(all.map((s) => s.spanId))
  for (const span of all) {
    const parent = span.parentSpanId && ids.has(span.parentSpanId) ? span.parentSpanId : undefined
    children.set(parent, [...(children.get(parent) ?? []), span])
  }
  const lines: string[] = []
  const walk = (span: SpanShape, depth: number) => {
    const attributes = Object.entries(span.attributes).filter(([key]) => keys(key)).map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    lines.push(`${'  '.repeat(depth)}${span.name} [kind ${span.kind}, trace ${span.traceId.slice(0, 8)}] ${attributes.join(' ')}`)
    for (const child of children.get(span.spanId) ?? []) walk(child, depth + 1)
  }
  for (const root of children.get(undefined) ?? []) walk(root, 0)
  return lines.join('\n')
}
