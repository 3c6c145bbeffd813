/**
 * The `{id}` of an identity in a path (/v1/identities/{id}/…,
 * /v1/entitlements/{id}, /v1/inventory/{id}) and the 404 every such route
 * answers for an identity that does not exist or that the key may not see.
 */
import { ApiError } from './errors.js'
import { parseTime } from './params.js'

/** Longest identity id accepted in a path. */
const MAX_ID_LENGTH = 256

/** The identity id from the path; an impossible id is simply not found. */
export function pathId(raw: string | undefined): string {
  if (!raw || Array.from(raw).length > MAX_ID_LENGTH) throw notFound()
  return raw
}

/** 404 for an identity that does not exist or that the key may not see (the two read the same). */
export function notFound(): ApiError {
  return new ApiError('not_found', 'no such identity')
}

/** Parses an optional decision time; default now. */
export function parseAt(value: string | undefined): Date {
  return value === undefined ? new Date() : parseTime('at', value)
}
