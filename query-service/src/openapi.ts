/**
 * The OpenAPI 3.1 description of the query API, served at /openapi.json.
 * Each domain documents its own routes in an `openapi.ts` beside them
 * (an OpenApiFragment); this file adds the shared parts and merges them.
 */
import { billingOpenApi } from './billing/openapi.js'
import { entitlementsOpenApi } from './entitlements/openapi.js'
import { findingsOpenApi } from './findings/openapi.js'
import { identitiesOpenApi } from './identities/openapi.js'
import { telemetryOpenApi } from './telemetry/openapi.js'
import { maxHeaderSize } from 'node:http'
import { errorCodeSchema, errorResponse, type OpenApiFragment } from './http/openapi-fragment.js'

/** Every domain's routes, documented next to them. */
const fragments: OpenApiFragment[] = [billingOpenApi, identitiesOpenApi, entitlementsOpenApi, findingsOpenApi, telemetryOpenApi]

/** Every operation can meet the HTTP server's header limit (a long query string), answered with the envelope (http/client-error.ts). */
const headersTooLarge = errorResponse(`request line and headers over ${maxHeaderSize} bytes (the HTTP server's limit)`)

type Operation = { responses: Record<string, unknown>; [key: string]: unknown }

function withServerLimits(paths: Record<string, Record<string, Operation>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(paths).map(([path, item]) => [
      path,
      Object.fromEntries(Object.entries(item).map(([method, operation]) => [method, { ...operation, responses: { '431': headersTooLarge, ...operation.responses } }])),
    ]),
  )
}

/** Builds the document. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'nhi-meter query API',
      version: '0.1.0',
      description: 'Activity-based licensing and security findings for non-human identities, from OpenTelemetry traces.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An nhi-meter API key (README, "Access").' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'request_id'],
              properties: { code: { $ref: '#/components/schemas/ErrorCode' }, message: { type: 'string' }, request_id: { type: 'string' } },
            },
          },
        },
        ErrorCode: errorCodeSchema(),
        ...Object.fromEntries(fragments.flatMap((f) => Object.entries(f.schemas ?? {}))),
      },
    },
    paths: withServerLimits({
      '/healthz': {
        get: {
          summary: 'Process is up',
          security: [],
          responses: { '200': { description: 'up', content: { 'application/json': { schema: { type: 'object', properties: { status: { const: 'ok' } } } } } } },
        },
      },
      '/readyz': {
        get: {
          summary: 'Storage is reachable',
          security: [],
          responses: {
            '200': { description: 'ready', content: { 'application/json': { schema: { type: 'object', properties: { status: { const: 'ready' } } } } } },
            '503': errorResponse('storage unreachable'),
          },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } } },
      },
      ...(Object.fromEntries(fragments.flatMap((f) => Object.entries(f.paths))) as Record<string, Record<string, Operation>>),
    }),
  }
}
