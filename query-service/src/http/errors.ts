/**
 * The one error type of the query API and its envelope
 * `{ error: { code, message, request_id } }` (README, "Access"). Codes come
 * from the closed list in error-codes.ts, which also fixes their statuses.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { statusOf, type ErrorCode, type FixedStatusErrorCode } from './error-codes.js'

/** An error the API answers with a stable code and that code's status. */
export class ApiError extends Error {
  readonly status: ContentfulStatusCode

  constructor(
    readonly code: FixedStatusErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.status = statusOf(code)
  }
}

/** 400 for a bad query parameter; the message names it. */
export function badParameter(name: string, problem: string): ApiError {
  return new ApiError('invalid_parameter', `${name}: ${problem}`)
}

/** The envelope body. */
export function errorBody(code: ErrorCode, message: string, requestId: string): { error: { code: ErrorCode; message: string; request_id: string } } {
  return { error: { code, message, request_id: requestId } }
}
