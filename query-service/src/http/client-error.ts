/**
 * Requests Node's HTTP parser refuses before the app sees them (a request
 * line or headers over the server's limit, malformed HTTP) are answered with
 * the API's error envelope instead of Node's empty default response, so every
 * refusal a client can receive reads the same.
 */
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { maxHeaderSize, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { statusOf, type FixedStatusErrorCode } from './error-codes.js'
import { errorBody } from './errors.js'

/** Status, code and message for a parser error code. */
export function clientErrorAnswer(code: string | undefined, maxHeaderSize: number): { status: number; code: FixedStatusErrorCode; message: string } {
  const answer = (errorCode: FixedStatusErrorCode, message: string) => ({ status: statusOf(errorCode), code: errorCode, message })
  if (code === 'HPE_HEADER_OVERFLOW') return answer('headers_too_large', `request line and headers over ${maxHeaderSize} bytes; send long values in a body or shorten them`)
  if (code === 'HPE_REQUEST_TIMEOUT' || code === 'ERR_HTTP_REQUEST_TIMEOUT') return answer('request_timeout', 'request not received in time')
  return answer('malformed_request', 'malformed HTTP request')
}

/** Installs the envelope answer on `server` (Node's default is an empty 400 or 431). */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A reset connection, or one whose response has begun, cannot take an answer.
    const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
    if (error.code === 'ECONNRESET' || !socket.writable || started) {
      socket.destroy()
      return
    }
    const answer = clientErrorAnswer(error.code, maxHeaderSize)
    const body = JSON.stringify(errorBody(answer.code, answer.message, randomUUID()))
    socket.end(
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  })
}
