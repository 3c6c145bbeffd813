/**
 * Raw HTTP/1.1 over a socket, for requests fetch refuses to send: bytes that
 * are not UTF-8 in the target or a header, NUL and control characters,
 * percent-encodings left exactly as written, repeated headers.
 */
import { connect } from 'node:net'

/** A request as bytes on the wire. */
export interface RawRequest {
  method: string
  /** Path and query exactly as sent (already percent-encoded as the test wants). */
  target: string
  headers?: Array<[string, string | Buffer]>
  body?: string | Buffer
}

/** What came back. */
export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  text: string
}

function decodeChunked(data: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd < 0) break
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (!Number.isFinite(size) || size === 0) break
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/** Bodies larger than this wait EARLY_ANSWER_WAIT_MS for an answer to their headers before they are sent. */
const EARLY_ANSWER_BYTES = 1024 * 1024
const EARLY_ANSWER_WAIT_MS = 2000

/** Sends one request on a fresh connection (Connection: close) and reads the whole answer. */
export function rawRequest(baseUrl: string, request: RawRequest, timeoutMs = 30_000): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl)
  const body = request.body === undefined ? undefined : Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body, 'utf8')
  const head: Buffer[] = [Buffer.from(`${request.method} ${request.target} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n`, 'latin1')]
  for (const [name, value] of request.headers ?? []) head.push(Buffer.from(`${name}: `, 'latin1'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'), Buffer.from('\r\n'))
  if (body !== undefined) head.push(Buffer.from(`Content-Length: ${body.length}\r\n`))
  head.push(Buffer.from('\r\n'))
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(new Error(`no complete answer to ${request.method} ${request.target.slice(0, 120)} in ${timeoutMs} ms`)), timeoutMs)
    // A large body waits for an early answer first, and then goes in 64 KiB pieces that stop once an answer
    // arrives, as curl does: a server that refuses a body by its Content-Length (413) closes the connection,
    // and the reset our further bytes would cause could discard its answer before we read it.
    const sendBody = async () => {
      if (body !== undefined && body.length > EARLY_ANSWER_BYTES) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, EARLY_ANSWER_WAIT_MS)
          socket.once('data', () => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      for (let at = 0; body !== undefined && at < body.length && chunks.length === 0 && !socket.destroyed; at += 65_536) {
        if (!socket.write(body.subarray(at, at + 65_536))) await new Promise((resolve) => socket.once('drain', resolve))
      }
    }
    socket.on('connect', () => {
      socket.write(Buffer.concat(head))
      void sendBody()
    })
    socket.on('data', (d: Buffer) => chunks.push(d))
    // The server may answer and close before it has read a body it refuses; what it answered still counts.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') {
        clearTimeout(timer)
        reject(error)
      }
    })
    socket.on('close', () => {
      clearTimeout(timer)
      const data = Buffer.concat(chunks)
      const split = data.indexOf('\r\n\r\n')
      if (split < 0) return reject(new Error(`connection closed without an HTTP answer to ${request.method} ${request.target.slice(0, 120)} (${data.length} bytes)`))
      const [statusLine, ...lines] = data.subarray(0, split).toString('latin1').split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const rest = data.subarray(split + 4)
      const payload = /chunked/i.test(headers['transfer-encoding'] ?? '') ? decodeChunked(rest) : rest
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: payload, text: payload.toString('utf8') })
    })
  })
}
