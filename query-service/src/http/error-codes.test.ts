import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openApiDocument } from '../openapi.js'
import { storageRefusal } from '../storage/disk-space.js'
import { ERROR_CODES, type ErrorCode } from './error-codes.js'
import { ApiError } from './errors.js'

const SRC = fileURLToPath(new URL('..', import.meta.url))
const LISTED = Object.keys(ERROR_CODES) as ErrorCode[]

/** Every non-test TypeScript file of query-service/src but the list itself, as text. */
function sources(): Array<{ path: string; text: string }> {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('error-codes.ts'))
    .map((path) => ({ path, text: readFileSync(join(SRC, path), 'utf8') }))
}

describe('error codes', () => {
  it('answer every code the source writes where an error is raised from the list, and list no code nothing raises', () => {
    const files = sources()
    // Where a code is written: an ApiError, an envelope body, the parser-error answers, a storage refusal.
    const raised = new Set(files.flatMap((f) => [...f.text.matchAll(/\b(?:ApiError|errorBody|answer|statusOf)\(\s*'([a-z_]+)'|\bcode: '([a-z_]+)'/g)].map((m) => m[1] ?? m[2]!)))
    const zodIssue = 'custom'
    raised.delete(zodIssue)
    expect([...raised].filter((code) => !(code in ERROR_CODES))).toEqual([])
    expect(LISTED.filter((code) => !files.some((f) => f.text.includes(`'${code}'`)))).toEqual([])
  })

  it('are listed in /openapi.json exactly as the list has them, each with its status and meaning, and the envelope refers to them', () => {
    const schemas = (openApiDocument().components as { schemas: Record<string, Record<string, unknown>> }).schemas
    const schema = schemas.ErrorCode!
    expect(schema.enum).toEqual(LISTED)
    const descriptions = schema['x-enumDescriptions'] as Record<string, string>
    expect(Object.keys(descriptions)).toEqual(LISTED)
    for (const code of LISTED) {
      const { status, meaning } = ERROR_CODES[code]
      expect(descriptions[code]).toContain(meaning)
      if (status !== 'varies') expect(descriptions[code]).toContain(`HTTP ${status}`)
    }
    expect(JSON.stringify(schemas.Error)).toContain('"$ref":"#/components/schemas/ErrorCode"')
  })

  it('give an ApiError the status its code is listed with', () => {
    expect(new ApiError('already_closed', 'closed').status).toBe(409)
    expect(new ApiError('storage_full', 'full').status).toBe(503)
  })

  it('give storage refusals, which the receiver shares, the status their code is listed with', () => {
    for (const diskFull of [true, false]) {
      const refusal = storageRefusal(diskFull)
      expect(refusal.status).toBe(ERROR_CODES[refusal.code].status)
    }
  })
})
