/**
 * Added cost per span of @nhi-meter/instrumentation's processors.
 *
 * For each exporter set-up, two tracer providers run the same workload in
 * one process, in alternating rounds:
 *   bare       the SDK alone, a BatchSpanProcessor in front of the exporter;
 *   nhi-meter  `nhiSpanProcessors` in front of the same kind of exporter:
 *              identity stamping on start, redaction of each span at export.
 * A span is a typical HTTP client span: 7 attributes that repeat from span to
 * span and a `url.full` built per span (an id in it), as instrumentations build it.
 * The figure is CPU time (user + system) per span of start + end and of the
 * batch export, drained at the end of each round; CPU time rather than wall
 * time because other processes share the machine. Rounds of the two run in
 * pairs; the added share is the median over pairs, with the middle half of
 * the pairs to show the spread.
 *
 * Exporter set-ups:
 *   no-op      accepts each batch and does nothing: the worst case for us,
 *              since no work of the exporter dilutes ours;
 *   OTLP/HTTP  the exporters the package ships (JSON, its default, and protobuf)
 *              sending to a sink in a child process: what an app pays.
 * Scenarios:
 *   process identity  identity on the resource only (the zero-code default); same spans in both;
 *   scoped identity   spans inside withIdentity; the bare SDK gets the same five nhi.*
 *                     attributes from the app, so both export the same spans;
 *   scoped vs plain   (no-op only) as above but the bare spans carry no identity, so
 *                     the cost of carrying five more attributes counts against us too.
 *
 *   node --conditions=nhi-meter-source --import tsx bench/instrumentation.ts
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { context, SpanKind, type Attributes, type Context, type Tracer } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { nhiSpanProcessors, setIdentity, type NhiIdentity } from '@nhi-meter/instrumentation'

const CHUNK = 256

/** Accepts every batch at once, so only span processing is measured. */
class NoopExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    done({ code: ExportResultCode.SUCCESS })
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** Counts what the exporter it wraps was handed, to check no span was dropped. */
class CountingExporter implements SpanExporter {
  exported = 0
  constructor(private readonly inner: SpanExporter) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.exported += spans.length
    this.inner.export(spans, done)
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }
}

/** An OTLP/HTTP sink in a child process, so its work is not counted in ours. */
async function startSink(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(
    process.execPath,
    ['-e', "const s=require('http').createServer((q,r)=>{q.resume();q.on('end',()=>r.writeHead(200,{'content-type':'application/json'}).end('{}'))});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const [port] = (await once(child.stdout!, 'data')) as [Buffer]
  return { url: `http://127.0.0.1:${port.toString().trim()}/v1/traces`, stop: () => child.kill() }
}

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const resource = resourceFromAttributes({ 'service.name': 'bench', 'nhi.id': 'svc-bench', 'nhi.type': 'workload' })

const spanAttributes: Attributes = {
  'http.request.method': 'GET',
  'server.address': 'api.example.com',
  'server.port': 443,
  'http.response.status_code': 200,
  'nhi.activity.type': 'api_call',
  'nhi.activity.name': 'GET /v1/invoices',
  'user_agent.original': 'billing-agent/1.4 (node)',
}
const identity: NhiIdentity = { id: 'agent-billing', type: 'ai_agent', owner: 'team-finance', businessUnit: 'finance', credentialId: 'fp_0123456789abcdef' }
const withIdentityAttributes: Attributes = {
  ...spanAttributes,
  'nhi.id': identity.id,
  'nhi.type': identity.type,
  'nhi.owner': identity.owner,
  'nhi.business_unit': identity.businessUnit,
  'nhi.credential.id': identity.credentialId,
}
const noScope: Context = context.active()
const scoped: Context = setIdentity(noScope, identity)

interface Variant {
  tracer: Tracer
  exporter: CountingExporter
  provider: BasicTracerProvider
  context: Context
  attributes: Attributes
  samples: number[]
}

interface Setup {
  name: string
  spansPerRound: number
  rounds: number
  warmUp: number
  makeExporter: () => SpanExporter
}

function variant(setup: Setup, withNhiMeter: boolean, ctx: Context, attributes: Attributes): Variant {
  const exporter = new CountingExporter(setup.makeExporter())
  // A queue that holds a whole round, so a slow sink never makes the processor drop spans.
  const batch = { maxQueueSize: setup.spansPerRound }
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: withNhiMeter ? nhiSpanProcessors({ exporters: [exporter], batch }) : [new BatchSpanProcessor(exporter, batch)],
  })
  return { tracer: provider.getTracer('bench'), exporter, provider, context: ctx, attributes, samples: [] }
}

let serial = 0

/** One round of spans, yielding between chunks as an app would, then drained. CPU ns per span. */
async function round(v: Variant, spans: number): Promise<number> {
  const before = v.exporter.exported
  const cpu = process.cpuUsage()
  for (let done = 0; done < spans; done += CHUNK) {
    context.with(v.context, () => {
      for (let i = 0; i < CHUNK; i++) {
        const span = v.tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: v.attributes })
        span.setAttribute('url.full', `https://api.example.com/v1/invoices/${serial++}?limit=50`)
        span.end()
      }
    })
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  await v.provider.forceFlush()
  const used = process.cpuUsage(cpu)
  const exported = v.exporter.exported - before
  if (exported !== spans) throw new Error(`exported ${exported} of ${spans} spans`)
  return ((used.user + used.system) * 1000) / spans
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function run(setup: Setup, includePlain: boolean): Promise<void> {
  const scenarios = [
    { name: 'process identity', bare: variant(setup, false, noScope, spanAttributes), ours: variant(setup, true, noScope, spanAttributes) },
    { name: 'scoped identity', bare: variant(setup, false, noScope, withIdentityAttributes), ours: variant(setup, true, scoped, spanAttributes) },
  ]
  if (includePlain) {
    scenarios.push({ name: 'scoped vs plain', bare: variant(setup, false, noScope, spanAttributes), ours: variant(setup, true, scoped, spanAttributes) })
  }
  for (let i = 0; i < setup.warmUp; i++) {
    for (const s of scenarios) {
      await round(s.bare, setup.spansPerRound)
      await round(s.ours, setup.spansPerRound)
    }
  }
  for (let i = 0; i < setup.rounds; i++) {
    for (const s of scenarios) {
      // Alternate the order so drift (GC, CPU frequency, neighbours) hits both alike.
      const order = i % 2 === 0 ? [s.bare, s.ours] : [s.ours, s.bare]
      for (const v of order) v.samples.push(await round(v, setup.spansPerRound))
    }
  }
  console.log(`\n${setup.name} exporter: ${setup.spansPerRound} spans per round, ${setup.rounds} paired rounds after ${setup.warmUp} warm-up`)
  console.log('scenario           bare ns/span   + nhi-meter   added ns   added % (median of pairs, middle half)')
  for (const s of scenarios) {
    const bare = median(s.bare.samples)
    const ours = median(s.ours.samples)
    // Each round of ours is compared with the bare round run next to it, so slow
    // drift and neighbours' load cancel out; the middle half shows the spread.
    const added = s.ours.samples.map((o, i) => ((o - s.bare.samples[i]!) / s.bare.samples[i]!) * 100).sort((a, b) => a - b)
    const q = (f: number) => added[Math.min(added.length - 1, Math.floor(f * added.length))]!
    console.log(
      `${s.name.padEnd(17)} ${bare.toFixed(0).padStart(13)} ${ours.toFixed(0).padStart(13)} ${(ours - bare).toFixed(0).padStart(10)} ${median(added).toFixed(1).padStart(9)} (${q(0.25).toFixed(1)} to ${q(0.75).toFixed(1)})`,
    )
    await s.bare.provider.shutdown()
    await s.ours.provider.shutdown()
  }
}

console.log(`CPU time per span (start + end + export), Node ${process.version}; target: <= 10 % added per span`)
await run({ name: 'no-op', spansPerRound: CHUNK * 32, rounds: 31, warmUp: 4, makeExporter: () => new NoopExporter() }, true)
const sink = await startSink()
try {
  await run({ name: 'OTLP/HTTP (JSON)', spansPerRound: CHUNK * 16, rounds: 21, warmUp: 3, makeExporter: () => new OTLPTraceExporter({ url: sink.url }) }, false)
  await run({ name: 'OTLP/HTTP (protobuf)', spansPerRound: CHUNK * 16, rounds: 21, warmUp: 3, makeExporter: () => new OTLPProtoTraceExporter({ url: sink.url }) }, false)
} finally {
  sink.stop()
}
