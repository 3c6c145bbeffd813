/**
 * Request bodies, for every route that takes one: read with a byte cap that
 * holds whether or not the client sent Content-Length, so a huge or endless
 * body is refused (413) before it is buffered.
 */
import { ApiError } from './errors.js'

/** Reads the body as UTF-8 text, refusing more than `maxBytes` (413) and invalid UTF-8 (400). */
export async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > maxBytes) throw new ApiError('payload_too_large', `request body over ${maxBytes} bytes`)
  if (!request.body) return ''
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined)
      throw new ApiError('payload_too_large', `request body over ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch {
    throw new ApiError('invalid_body', 'body: not valid UTF-8')
  }
}

/** Parses a JSON body, answering 400 `invalid_body` when it is not JSON. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw new ApiError('invalid_body', 'body: empty; send a JSON document')
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new ApiError('invalid_body', `body: not valid JSON: ${(error as Error).message.slice(0, 200)}`)
  }
}
