/**
 * A relay in front of the receiver that keeps a decoded copy of every span
 * forwarded through it (the MCP server's, in the framework tests), and the
 * receiver's answers: the tests check what a process sent, not only what
 * was billed.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { decodeProtobuf } from '../../query-service/src/otlp/decode-protobuf.js'
import type { AttributeValue as OtlpValue } from '../../query-service/src/otlp/model.js'
import type { SpanShape } from './scenario.js'

/** A span as it was exported, decoded from its OTLP/protobuf request. */
export interface ExportedSpan extends SpanShape {
  resource: Record<string, unknown>
  links: Array<{ traceId: string; spanId: string }>
  statusCode: number
}

/** A running relay. */
export interface RecordingRelay {
  /** The relay's OTLP/HTTP traces URL. */
  url: string
  spans: ExportedSpan[]
  /** The receiver's HTTP status for each request forwarded. */
  answers: number[]
  close(): Promise<void>
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

function plain(value: OtlpValue): unknown {
  switch (value.kind) {
    case 'string':
    case 'bool':
    case 'double':
      return value.value
    case 'int':
      return Number(value.value)
    case 'array':
      return value.value.map(plain)
    default:
      return undefined
  }
}

const attributesOf = (attributes: Array<{ key: string; value: OtlpValue }>) => Object.fromEntries(attributes.map((a) => [a.key, plain(a.value)]))

/** Starts a relay on loopback that forwards every request to `receiverUrl` unchanged. */
export async function startRecordingRelay(receiverUrl: string): Promise<RecordingRelay> {
  const relay = { spans: [] as ExportedSpan[], answers: [] as number[] }
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    const decoded = decodeProtobuf(req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body)
    for (const rs of decoded.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          relay.spans.push({
            name: s.name,
            kind: s.kind - 1, // OTLP kinds count from UNSPECIFIED; the API's from INTERNAL
            traceId: hex(s.traceId),
            spanId: hex(s.spanId),
            parentSpanId: s.parentSpanId.length > 0 ? hex(s.parentSpanId) : undefined,
            attributes: attributesOf(s.attributes) as SpanShape['attributes'],
            resource: attributesOf(rs.resourceAttributes),
            links: s.links.map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) })),
            statusCode: s.statusCode,
          })
        }
      }
    }
    const forward: Record<string, string> = {}
    for (const name of ['content-type', 'content-encoding', 'authorization']) {
      const value = req.headers[name]
      if (typeof value === 'string') forward[name] = value
    }
    const reply = await fetch(receiverUrl, { method: 'POST', headers: forward, body })
    relay.answers.push(reply.status)
    res.writeHead(reply.status, { 'content-type': reply.headers.get('content-type') ?? 'application/x-protobuf' }).end(Buffer.from(await reply.arrayBuffer()))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return Object.assign(relay, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  })
}
