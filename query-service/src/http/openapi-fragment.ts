/**
 * Pieces each domain uses to document its routes for /openapi.json.
 */
import { ERROR_CODES, type ErrorCode } from './error-codes.js'
import { MAX_PARAM_LENGTH, UTC_TIME_PATTERN } from './params.js'

/** One domain's paths and component schemas. */
export interface OpenApiFragment {
  paths: Record<string, unknown>
  schemas?: Record<string, unknown>
}

/** An object schema whose properties are all required and the only ones allowed. */
export function closedObject(properties: Record<string, unknown>, description?: string): Record<string, unknown> {
  return { type: 'object', required: Object.keys(properties), additionalProperties: false, properties, ...(description ? { description } : {}) }
}

/** A response with the error envelope. */
export function errorResponse(description: string): Record<string, unknown> {
  return { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }
}

/**
 * The `ErrorCode` schema: the closed list of error-codes.ts as an enum,
 * each code's status and meaning in `x-enumDescriptions` (the extension
 * Redoc and other renderers show beside each value) and in the description.
 */
export function errorCodeSchema(): Record<string, unknown> {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[]
  const line = (code: ErrorCode) => `${ERROR_CODES[code].status === 'varies' ? 'its own status' : `HTTP ${ERROR_CODES[code].status}`}: ${ERROR_CODES[code].meaning}`
  return {
    type: 'string',
    enum: codes,
    description: `The error envelope's code: a closed list, each code always with the same status.\n\n${codes.map((code) => `- \`${code}\` (${line(code)})`).join('\n')}`,
    'x-enumDescriptions': Object.fromEntries(codes.map((code) => [code, line(code)])),
  }
}

/** A time the API accepts as input: RFC 3339 in UTC (Z or +00:00), years 1970 to 2200 (parseTime). */
export const utcTimeInput = { type: 'string', format: 'date-time', pattern: UTC_TIME_PATTERN } as const

/** An optional RFC 3339 time query parameter. */
export function timeParam(name: string, description: string): Record<string, unknown> {
  return { name, in: 'query', required: false, description, schema: utcTimeInput }
}

/** A free-text query parameter (a filter value); every query value is at most MAX_PARAM_LENGTH characters. */
export function textParam(name: string, description: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, in: 'query', required: false, description, schema: { type: 'string', maxLength: MAX_PARAM_LENGTH, ...extra } }
}

/** The usual auth failures of a /v1 route needing `scope`, and its rate limit. */
export function authResponses(scope: string): Record<string, unknown> {
  return {
    '401': errorResponse('missing, malformed or unknown key'),
    '403': errorResponse(`key lacks ${scope}`),
    '429': {
      ...errorResponse('rate limited: this key made too many requests, or this address presented too many refused keys'),
      headers: { 'Retry-After': { required: true, description: 'Seconds to wait before retrying.', schema: { type: 'string', pattern: '^[0-9]+$' } } },
    },
  }
}
