/**
 * Hostile input in every parameter, field and header of the query API,
 * enumerated from the service's own /openapi.json (a new route or parameter
 * is attacked without editing this test): SQL and ClickHouse query syntax
 * (`{id:String}`, FORMAT, SETTINGS), template syntax, 2 KB and 100 KB
 * values, NUL and control characters, lone surrogates, invalid and overlong
 * UTF-8 as raw bytes, malformed percent-encoding, values of the wrong JSON
 * type, hostile parameter names, huge, deeply nested and malformed bodies,
 * and hostile Authorization, X-Request-Id, Content-Type and Accept headers.
 *
 * What each value must get:
 * - a value the documented schema refuses: 400 naming the parameter or
 *   field (431 when the request line alone passes the HTTP server's 16 KiB
 *   limit, 413 for a body over the limit), in the error envelope;
 * - a value the schema allows (a free-text filter such as `nhi.id` on the
 *   evidence route, `business_unit`, `after`): 200, because it is just a
 *   filter that matches nothing, or 400 naming it when the API is stricter
 *   than the schema can say; an identity id in a path: 404, since no such
 *   identity exists;
 * - bytes no string can hold (invalid UTF-8, malformed percent-encoding):
 *   either of the above;
 * - never a 5xx, never a dropped connection; the process stays up.
 *
 * Storage is compared byte for byte: the service is stopped, every table's
 * row count and sum of cityHash64 over all columns is read from the data
 * directory, the service restarts on it, every hostile request is sent, and
 * after a second stop the fingerprint must be identical. Strings the
 * inventory accepts as legitimate values are declared and read back
 * verbatim first (so the sweep's repeats of them are no-op upserts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startService, type ServiceUnderTest } from '../helpers/service.js'
import { DECLARED, startSeededService } from './fuzz-fixture.js'
import { fingerprintDataDir } from './fuzz-fingerprint.js'
import { bodyFields, conforms, HOSTILE_VALUES, operationsOf, WRONG_TYPES, type BodyField, type HostileValue, type OpenApiDocument, type OperationSpec, type ParameterSpec } from './fuzz-hostile.js'
import { rawRequest, type RawRequest, type RawResponse } from './fuzz-http.js'

/** Rate limits off: this test sends far more refused keys and requests than a client should. */
const ENV = { NHI_METER_RATE_LIMIT_PER_SECOND: '0', NHI_METER_AUTH_FAILURES_PER_MINUTE: '0', NHI_METER_ROLLUP_INTERVAL_SECONDS: '0' }
/** A declared identity (so a query probe on an identity route reaches past the 404). */
const KNOWN_ID = DECLARED[0]!.id

let service: ServiceUnderTest
let key: string
let operations: OperationSpec[]
/** Every request sent and its answer, for the failure message. */
const problems: string[] = []
let sent = 0

beforeAll(async () => {
  const seeded = await startSeededService(ENV)
  service = seeded.service
  key = seeded.key
  const document = (await (await fetch(`${service.apiUrl}/openapi.json`)).json()) as OpenApiDocument
  operations = operationsOf(document)
}, 180_000)

afterAll(async () => {
  await service?.stop()
})

const auth = (): Array<[string, string]> => [['Authorization', `Bearer ${key}`]]

interface Expectation {
  /** Allowed statuses. */
  statuses: number[]
  /** For a 400: the message must start with one of these names followed by ':' (or contain it, for body paths). */
  names?: string[]
}

/** True when an error message names `name` (a parameter, or a body path such as `[0].owner`, possibly more precisely: `[0].owner[2]`). */
function names(message: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(^|[ ;])(body: )?${escaped}([[.][^:]*)?: `).test(message)
}

/** A name as the server decodes it from the URL: percent-decoded, or left as sent when that is not UTF-8. */
function decodedName(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

/** Sends and checks the universal rules: an answer, no 5xx, the envelope on every error. Returns the response. */
async function probe(what: string, request: RawRequest, expected: Expectation): Promise<RawResponse | undefined> {
  sent++
  let response: RawResponse
  try {
    response = await rawRequest(service.apiUrl, request)
  } catch (error) {
    problems.push(`${what}: no answer (${(error as Error).message})`)
    return undefined
  }
  const summary = `${what}: ${response.status} ${response.text.slice(0, 300)}`
  if (response.status >= 500) problems.push(`server error: ${summary}`)
  else if (!expected.statuses.includes(response.status)) problems.push(`expected ${expected.statuses.join(' or ')}: ${summary}`)
  if (response.status >= 400) {
    let envelope: { error?: { code?: unknown; message?: unknown; request_id?: unknown } } | undefined
    try {
      envelope = JSON.parse(response.text)
    } catch {
      problems.push(`not the error envelope: ${summary}`)
      return response
    }
    const error = envelope?.error
    if (typeof error?.code !== 'string' || typeof error.message !== 'string' || typeof error.request_id !== 'string') problems.push(`not the error envelope: ${summary}`)
    else {
      if (response.headers['x-request-id'] !== undefined && response.headers['x-request-id'] !== error.request_id) problems.push(`request_id differs from X-Request-Id: ${summary}`)
      if (response.status === 400 && expected.names && !expected.names.some((n) => names(error.message as string, n))) {
        problems.push(`400 does not name ${expected.names.join(' or ')}: ${summary}`)
      }
    }
  } else if (response.status === 200 && /json/.test(response.headers['content-type'] ?? '')) {
    try {
      JSON.parse(response.text)
    } catch {
      problems.push(`200 with a body that is not JSON: ${summary}`)
    }
  }
  return response
}

/** The request line a probe's value would make, and whether it passes the server's header limit. */
const OVER_HEADER_LIMIT = 16 * 1024

function pathFor(op: OperationSpec, override?: { name: string; raw: string }): string {
  return op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    if (override?.name === name) return override.raw
    if (name === 'period') return '2000-01'
    return encodeURIComponent(op.method === 'DELETE' ? 'not-declared-probe' : KNOWN_ID)
  })
}

/** What a parameter may answer to a value. */
function expectationFor(op: OperationSpec, parameter: ParameterSpec, value: HostileValue, targetLength: number): Expectation {
  if (targetLength > OVER_HEADER_LIMIT) return { statuses: [431] }
  const refuses = { statuses: [400], names: [parameter.name] }
  const accepts = parameter.in === 'path' ? { statuses: [404, 400], names: [parameter.name] } : { statuses: [200, 400], names: [parameter.name] }
  if (value.text === undefined) return { statuses: [...new Set([...accepts.statuses, 400])], names: [parameter.name] }
  const schemaOk = conforms(parameter.schema, value.text)
  if (!schemaOk) return parameter.in === 'path' && op.path.includes('{id}') ? { statuses: [404, 400], names: [parameter.name] } : refuses
  return accepts
}

function target(op: OperationSpec, query: string, pathOverride?: { name: string; raw: string }): string {
  return `${pathFor(op, pathOverride)}${query ? `?${query}` : ''}`
}

/** Valid values for required body properties, by name. */
function validValue(name: string, n: number): unknown {
  if (name === 'id') return `probe-${n}`
  if (name === 'type') return 'bot'
  if (name === 'nhi_id') return KNOWN_ID
  if (name === 'requests') return []
  if (name === 'period') return '1969-12'
  throw new Error(`no known-good value for required body property ${name}; add one`)
}

/** Body probes: the value, with identity ids prefixed so no body-declared id equals a path probe's id. */
function bodyProbes(op: OperationSpec): Array<{ what: string; field: BodyField; value: unknown; schemaOk: boolean }> {
  let n = 0
  const fields = bodyFields(op.jsonBody!, validValue, () => ++n)
  return fields.flatMap((field) => {
    const values: Array<{ label: string; value: unknown }> = [
      ...HOSTILE_VALUES.filter((v) => v.text !== undefined).map((v) => ({ label: v.label, value: field.label.endsWith('].id') ? `probe:${v.text!}` : v.text })),
      ...WRONG_TYPES,
    ]
    return values.map(({ label, value }) => ({ what: `${op.method} ${op.path} body ${field.label} = ${label}`, field, value, schemaOk: conforms(field.schema, value) }))
  })
}

const mutating = (op: OperationSpec) => op.method !== 'GET'

describe('hostile input', () => {
  it('stores the strings the inventory accepts exactly as sent, and refuses the others naming the field', async () => {
    const inventory = operations.find((op) => op.method === 'POST' && op.path === '/v1/inventory')!
    const accepted: Array<{ body: unknown }> = []
    for (const p of bodyProbes(inventory)) {
      const body = JSON.stringify(p.field.bodyWith(p.value))
      const response = await probe(p.what, { method: 'POST', target: '/v1/inventory', headers: [...auth(), ['Content-Type', 'application/json']], body }, p.schemaOk ? { statuses: [200, 400], names: [p.field.label] } : { statuses: [400], names: [p.field.label] })
      if (response?.status === 200) accepted.push({ body: JSON.parse(body) })
    }
    // Read back: every accepted declaration is there, field for field, as sent.
    const listed = await fetch(`${service.apiUrl}/v1/identities?limit=100000`, { headers: { Authorization: `Bearer ${key}` } })
    const identities = ((await listed.json()) as { identities: Array<Record<string, unknown>> }).identities
    const byId = new Map(identities.map((i) => [i.id, i]))
    for (const { body } of accepted) {
      const declared = (body as Array<Record<string, unknown>>)[0]!
      const stored = byId.get(declared.id)
      if (!stored) {
        problems.push(`accepted declaration ${JSON.stringify(declared).slice(0, 200)} is not listed`)
        continue
      }
      for (const [field, value] of Object.entries(declared)) if (JSON.stringify(stored[field]) !== JSON.stringify(value)) problems.push(`declared ${field} ${JSON.stringify(value).slice(0, 100)} reads back as ${JSON.stringify(stored[field]).slice(0, 100)}`)
    }
    console.log(`inventory: ${accepted.length} hostile declarations accepted and read back verbatim, ${sent - accepted.length} refused`)
    expect(problems).toEqual([])
    expect(accepted.length).toBeGreaterThan(0)
  }, 180_000)

  it('answers every hostile parameter, field, body and header with a 4xx naming it or a legitimate empty answer, never a 5xx, and changes no stored byte', async () => {
    expect(await service.stop()).toBe(0)
    const before = await fingerprintDataDir(service.dataDir)
    service = await startService({ dataDir: service.dataDir, env: ENV })
    const pid = service.process.pid
    const started = Date.now()
    sent = 0

    // 1. Every query and path parameter of every operation.
    for (const op of operations) {
      for (const parameter of op.parameters) {
        for (const value of HOSTILE_VALUES) {
          const query = parameter.in === 'query' ? `${encodeURIComponent(parameter.name)}=${value.raw}` : ''
          const t = target(op, query, parameter.in === 'path' ? { name: parameter.name, raw: value.raw } : undefined)
          await probe(`${op.method} ${op.path} ${parameter.in} ${parameter.name} = ${value.label}`, { method: op.method, target: t, headers: auth() }, expectationFor(op, parameter, value, t.length))
        }
        // The parameter twice, and empty.
        if (parameter.in === 'query') {
          await probe(`${op.method} ${op.path} ${parameter.name} twice`, { method: op.method, target: target(op, `${parameter.name}=a&${parameter.name}=b`), headers: auth() }, { statuses: [200, 400, 404], names: [parameter.name] })
          await probe(`${op.method} ${op.path} ${parameter.name} empty`, { method: op.method, target: target(op, `${parameter.name}=`), headers: auth() }, { statuses: [200, 400], names: [parameter.name] })
        }
      }
      // 2. Hostile parameter names: /v1 routes refuse parameters they do not know, naming them.
      if (op.secured) {
        for (const value of HOSTILE_VALUES) {
          const t = target(op, `${value.raw}=1`)
          const name = decodedName(value.raw)
          const expected: Expectation = t.length > OVER_HEADER_LIMIT ? { statuses: [431] } : { statuses: [400], names: name.length > 64 ? undefined : [name] }
          await probe(`${op.method} ${op.path} parameter named ${value.label}`, { method: op.method, target: t, headers: auth() }, expected)
        }
      }
    }

    // 3. Every field of every JSON body, hostile strings and wrong types (the inventory's accepted ones are no-op repeats).
    for (const op of operations.filter((o) => o.jsonBody)) {
      for (const p of bodyProbes(op)) {
        const response = await probe(p.what, { method: op.method, target: pathFor(op), headers: [...auth(), ['Content-Type', 'application/json']], body: JSON.stringify(p.field.bodyWith(p.value)) }, p.schemaOk ? { statuses: [200, 400], names: [p.field.label] } : { statuses: [400], names: [p.field.label] })
        if (response?.status === 200 && op.path === '/v1/inventory') {
          const counts = JSON.parse(response.text) as { created: number; updated: number }
          if (counts.created + counts.updated > 0) problems.push(`${p.what}: the repeat wrote again (${response.text})`)
        }
      }
    }

    // 4. Whole bodies: not UTF-8, raw NUL, malformed, wrong top-level types, prototype keys, deeply nested, huge, wrong media types.
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`
    const huge = JSON.stringify(Array.from({ length: 120_000 }, (_, i) => ({ id: `huge-${i}`, type: 'bot', owner: 'x'.repeat(64) })))
    const bodies: Array<{ label: string; body: string | Buffer; contentType?: string; statuses: number[] }> = [
      { label: 'invalid UTF-8', body: Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0xc0, 0xae, 0x22, 0x5d]), statuses: [400] },
      { label: 'raw NUL in a string', body: '[{"id":"a\u0000b","type":"bot"}]', statuses: [400] },
      { label: 'truncated JSON', body: '[{"id":', statuses: [400] },
      { label: 'empty', body: '', statuses: [400] },
      ...['{}', '"x"', '42', 'null', 'true', '[]'].map((b) => ({ label: `top level ${b}`, body: b, statuses: [200, 400] })),
      { label: '__proto__ key', body: '{"__proto__":{"admin":true},"period":"1969-12","requests":[]}', statuses: [400] },
      { label: '__proto__ in an item', body: '[{"__proto__":{"polluted":true},"id":"proto-probe","type":"bot"}]', statuses: [400] },
      { label: 'nested 200000 deep', body: deep, statuses: [400] },
      { label: `${(huge.length / 1024 / 1024).toFixed(0)} MiB`, body: huge, statuses: [400, 413] },
      { label: 'text/plain', body: '[]', contentType: 'text/plain', statuses: [200, 400, 415] },
      { label: 'hostile Content-Type', body: '[]', contentType: "application/json; charset=' OR 1=1 --{x:String}", statuses: [200, 400, 415] },
      { label: 'multipart Content-Type', body: '--x\r\n\r\n[]\r\n--x--', contentType: 'multipart/form-data; boundary=x', statuses: [400, 415] },
    ]
    for (const op of operations.filter((o) => o.jsonBody)) {
      for (const b of bodies) {
        // `[]` and `{}` may be complete, valid (and harmless) bodies for some routes; anything else must be refused.
        await probe(`${op.method} ${op.path} body ${b.label}`, { method: op.method, target: pathFor(op), headers: [...auth(), ['Content-Type', b.contentType ?? 'application/json']], body: b.body }, { statuses: b.statuses })
      }
    }
    // A body over the limit, announced by Content-Length and refused before it is read.
    for (const op of operations.filter(mutating)) {
      await probe(`${op.method} ${op.path} announces 11 MiB`, { method: op.method, target: pathFor(op), headers: [...auth(), ['Content-Type', 'application/json']], body: Buffer.alloc(11 * 1024 * 1024, 0x20) }, { statuses: [400, 404, 413] })
    }

    // 5. Headers, on a route that reads data.
    const billable = '/v1/billable?group_by=nhi.id,meter'
    const badAuth: Array<[string, string | Buffer | undefined]> = [
      ['missing', undefined],
      ['empty', ''],
      ['scheme only', 'Bearer'],
      ['Basic', 'Basic YWRtaW46YWRtaW4='],
      ['SQL key', "Bearer ' OR 1=1 --"],
      ['ClickHouse parameter key', 'Bearer {key:String}'],
      ['key with a suffix', `Bearer ${key}x`],
      ['key and more', `Bearer ${key} ${key}`],
      ['key prefix', `Bearer ${key.slice(0, -1)}`],
      ['control character in key', Buffer.from(`Bearer ${key}\u0001`, 'latin1')],
      ['invalid UTF-8 key', Buffer.concat([Buffer.from('Bearer nhim_'), Buffer.from([0xff, 0xfe, 0xc0, 0xae])])],
      ['2 KB key', `Bearer nhim_${'a'.repeat(2048)}`],
    ]
    for (const [label, value] of badAuth) {
      await probe(`Authorization ${label}`, { method: 'GET', target: billable, headers: value === undefined ? [] : [['Authorization', value]] }, { statuses: [401, 400] })
    }
    await probe('Authorization 100 KB', { method: 'GET', target: billable, headers: [['Authorization', `Bearer ${'A'.repeat(100 * 1024)}`]] }, { statuses: [431] })
    await probe('Authorization NUL byte', { method: 'GET', target: billable, headers: [['Authorization', Buffer.from(`Bearer ${key}\u0000`, 'latin1')]] }, { statuses: [400, 401] })
    await probe('two Authorization headers', { method: 'GET', target: billable, headers: [...auth(), ['Authorization', "Bearer ' OR 1=1 --"]] }, { statuses: [200, 400, 401] })
    for (const value of HOSTILE_VALUES.filter((v) => v.text !== undefined && !/[\0\r\n]/.test(v.text))) {
      const response = await probe(`X-Request-Id ${value.label}`, { method: 'GET', target: billable, headers: [...auth(), ['X-Request-Id', value.text!]] }, { statuses: value.text!.length > OVER_HEADER_LIMIT ? [431] : [200] })
      if (response?.status === 200 && !/^[A-Za-z0-9._:-]{1,64}$/.test(response.headers['x-request-id'] ?? '')) problems.push(`X-Request-Id ${value.label} was echoed unsafely: ${response.headers['x-request-id']?.slice(0, 100)}`)
      const accept = await probe(`Accept ${value.label}`, { method: 'GET', target: billable, headers: [...auth(), ['Accept', value.text!]] }, { statuses: value.text!.length > OVER_HEADER_LIMIT ? [431] : [200] })
      if (accept?.status === 200 && !/^(application\/json|text\/csv)/.test(accept.headers['content-type'] ?? '')) problems.push(`Accept ${value.label} answered ${accept.headers['content-type']}`)
    }
    await probe('Accept text/csv with SQL', { method: 'GET', target: billable, headers: [...auth(), ['Accept', "text/csv; q=' OR 1=1 --"]] }, { statuses: [200] })
    await probe('header line with a bare CR', { method: 'GET', target: billable, headers: [...auth(), ['X-Probe', Buffer.from('a\rb', 'latin1')]] }, { statuses: [200, 400] })

    const seconds = (Date.now() - started) / 1000
    // The same process answered everything and is still healthy.
    expect(service.process.pid).toBe(pid)
    expect(service.process.exitCode).toBeNull()
    expect((await fetch(`${service.apiUrl}/healthz`)).status).toBe(200)
    expect((await fetch(`${service.apiUrl}/readyz`)).status).toBe(200)
    console.log(`hostile input: ${sent} requests to ${operations.length} operations in ${seconds.toFixed(0)} s, ${problems.length} problems`)
    expect(problems.slice(0, 40), `${problems.length} problems`).toEqual([])
    expect(service.output()).not.toMatch(/request \S+ failed/)

    expect(await service.stop()).toBe(0)
    const after = await fingerprintDataDir(service.dataDir)
    expect(Object.keys(before).length).toBeGreaterThan(5)
    expect(after).toEqual(before)

    // The fingerprint does see a change: one more declaration alters it.
    service = await startService({ dataDir: service.dataDir, env: ENV })
    const declare = await fetch(`${service.apiUrl}/v1/inventory`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify([{ id: 'fingerprint-check', type: 'bot' }]) })
    expect(declare.status).toBe(200)
    expect(await service.stop()).toBe(0)
    const changed = await fingerprintDataDir(service.dataDir)
    expect(changed.nhi_inventory).not.toEqual(before.nhi_inventory)
    expect({ ...changed, nhi_inventory: before.nhi_inventory }).toEqual(before)
  }, 600_000)
})
