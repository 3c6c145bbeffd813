/**
 * The one error type of the query API and its envelope
 * `{ error: { code, message, request_id } }` (SPEC section 5).
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'

/** An error the API answers with its own status and a stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** 400 for a bad query parameter; the message names it. */
export function badParameter(name: string, problem: string): ApiError {
  return new ApiError(400, 'invalid_parameter', `${name}: ${problem}`)
}

/** The envelope body. */
export function errorBody(code: string, message: string, requestId: string): { error: { code: string; message: string; request_id: string } } {
  return { error: { code, message, request_id: requestId } }
}
