import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request an OTLP sink received. */
export interface ReceivedRequest {
  path: string
  headers: IncomingHttpHeaders
  body: string
}

/** A span from an OTLP/JSON request, flattened with its resource attributes. */
export interface ReceivedSpan {
  name: string
  attributes: Record<string, unknown>
  resource: Record<string, unknown>
  status: { code?: number; message?: string }
}

/** A stand-in OTLP/HTTP receiver that keeps what it is sent and answers 200. */
export interface OtlpSink {
  endpoint: string
  requests: ReceivedRequest[]
  /** Spans of the OTLP/JSON trace requests received so far (or of the given requests). */
  spans(received?: ReceivedRequest[]): ReceivedSpan[]
  clear(): void
  close(): Promise<void>
}

type OtlpAttribute = { key: string; value: Record<string, unknown> }
type OtlpResourceSpans = {
  resource: { attributes?: OtlpAttribute[] }
  scopeSpans: Array<{ spans: Array<{ name: string; attributes?: OtlpAttribute[]; status?: { code?: number; message?: string } }> }>
}

const flatten = (attributes: OtlpAttribute[] = []) => Object.fromEntries(attributes.map((a) => [a.key, Object.values(a.value)[0]]))

/** Starts a sink on a free loopback port. */
export async function startOtlpSink(): Promise<OtlpSink> {
  const sink: Omit<OtlpSink, 'endpoint' | 'close'> & { requests: ReceivedRequest[] } = {
    requests: [],
    spans: (received = sink.requests) =>
      received
        .filter((r) => r.path === '/v1/traces' && String(r.headers['content-type']).includes('json'))
        .flatMap((r) => (JSON.parse(r.body) as { resourceSpans: OtlpResourceSpans[] }).resourceSpans)
        .flatMap((rs) =>
          rs.scopeSpans.flatMap((ss) =>
            ss.spans.map((s) => ({ name: s.name, attributes: flatten(s.attributes), resource: flatten(rs.resource.attributes), status: s.status ?? {} })),
          ),
        ),
    clear: () => {
      sink.requests = []
    },
  }
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      sink.requests.push({ path: req.url ?? '', headers: req.headers, body })
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return Object.assign(sink, {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as OtlpSink
}
