/**
 * Pieces each domain uses to document its routes for /openapi.json.
 */

/** One domain's paths and component schemas. */
export interface OpenApiFragment {
  paths: Record<string, unknown>
  schemas?: Record<string, unknown>
}

/** A response with the error envelope. */
export function errorResponse(description: string): Record<string, unknown> {
  return { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }
}

/** An optional RFC 3339 time query parameter. */
export function timeParam(name: string, description: string): Record<string, unknown> {
  return { name, in: 'query', required: false, description, schema: { type: 'string', format: 'date-time' } }
}

/** The usual auth failures of a /v1 route needing `scope`. */
export function authResponses(scope: string): Record<string, unknown> {
  return {
    '401': errorResponse('missing, malformed or unknown key'),
    '403': errorResponse(`key lacks ${scope}`),
  }
}
