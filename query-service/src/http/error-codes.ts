/**
 * Every code the query API's error envelope carries, each with the HTTP
 * status it comes with and what it means: a closed list, so a client can
 * switch on `error.code` and /openapi.json can list them (the `ErrorCode`
 * schema). ApiError and errorBody accept only these codes; a test holds the
 * list to the codes the source uses and to /openapi.json.
 *
 * Not in this list: the OTLP receiver answers with OTLP's own status
 * (google.rpc.Status, numeric codes), and GET /metrics with plain text.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'

/** One code's HTTP status and its meaning in one line. */
export interface ErrorCodeEntry {
  /** The status the code is always answered with; 'varies' only for http_error, which keeps the framework's. */
  status: ContentfulStatusCode | 'varies'
  meaning: string
}

/** The closed list, by status. */
export const ERROR_CODES = {
  invalid_parameter: { status: 400, meaning: 'A query or path parameter is unknown, malformed or out of range; the message names it.' },
  invalid_body: { status: 400, meaning: 'The request body is empty, not valid UTF-8 or JSON, or fails validation; the message names the field.' },
  malformed_request: { status: 400, meaning: 'The HTTP request itself could not be parsed.' },
  unauthenticated: { status: 401, meaning: 'The Authorization header is missing or malformed, or names an unknown API key.' },
  forbidden: { status: 403, meaning: 'The key lacks the scope the route needs, or the request reaches beyond the business units the key is limited to.' },
  not_found: { status: 404, meaning: 'No such route, or no such identity or statement that this key may see.' },
  method_not_allowed: { status: 405, meaning: 'The path exists but not with this method; the Allow header lists the methods it serves.' },
  request_timeout: { status: 408, meaning: 'The request was not received in time.' },
  already_closed: { status: 409, meaning: 'The month is already closed; statements are never rewritten.' },
  out_of_order: { status: 409, meaning: 'A later month is already closed; months are closed in order.' },
  conflict: { status: 409, meaning: 'Another request closed a month at the same moment; close this one again.' },
  payload_too_large: { status: 413, meaning: 'The request body is over the configured limit.' },
  unsupported_media_type: { status: 415, meaning: 'The Content-Type is not one the route reads; the message lists those it does.' },
  rate_limited: { status: 429, meaning: 'This key made too many requests, or this address presented too many refused keys; retry after Retry-After seconds.' },
  headers_too_large: { status: 431, meaning: "The request line and headers are over the HTTP server's limit." },
  internal: { status: 500, meaning: 'An unexpected error; it is logged with the request id.' },
  statement_tampered: { status: 500, meaning: 'A closed statement no longer matches its content hash: it was changed after it was closed.' },
  http_error: { status: 'varies', meaning: 'The HTTP framework refused the request itself, with a status of its own (no route of this API raises one).' },
  storage_unavailable: { status: 503, meaning: 'Storage is not reachable; retry after Retry-After seconds.' },
  storage_full: { status: 503, meaning: 'Storage is out of disk space; an operator must free space, then retry after Retry-After seconds.' },
} as const satisfies Record<string, ErrorCodeEntry>

/** One code of the list. */
export type ErrorCode = keyof typeof ERROR_CODES

/** The codes answered with a status of their own, which ApiError takes. */
export type FixedStatusErrorCode = { [K in ErrorCode]: (typeof ERROR_CODES)[K]['status'] extends number ? K : never }[ErrorCode]

/** The status of a code. */
export function statusOf(code: FixedStatusErrorCode): ContentfulStatusCode {
  return ERROR_CODES[code].status
}
