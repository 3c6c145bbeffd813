/**
 * Hostile strings and the requests that carry them, derived from the
 * service's own /openapi.json so that a new route or parameter is attacked
 * without editing the test: every query and path parameter, every field of
 * every JSON body, the names of parameters, whole bodies, and headers.
 */
import { Ajv2020 } from 'ajv/dist/2020.js'

/** One hostile value: as a JS string (bodies, headers) and as it goes into a URL. */
export interface HostileValue {
  label: string
  /** The string itself; undefined when it is bytes that no string can hold (invalid UTF-8). */
  text: string | undefined
  /** Percent-encoded exactly as sent in a target. */
  raw: string
}

/** Percent-encodes every byte of the string's UTF-8 that is not unreserved; lone surrogates as the WTF-8 bytes a careless client sends. */
function encode(text: string): string {
  let out = ''
  for (const char of text) {
    const code = char.codePointAt(0)!
    if (/^[A-Za-z0-9\-._~]$/.test(char)) out += char
    else if (code >= 0xd800 && code <= 0xdfff) out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('')
    else out += [...Buffer.from(char, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  }
  return out
}

const text = (label: string, value: string): HostileValue => ({ label, text: value, raw: encode(value) })

/** The values sent into every parameter and field. */
export const HOSTILE_VALUES: HostileValue[] = [
  text('SQL tautology', "' OR 1=1 --"),
  text('SQL statement', "'; DROP TABLE otel_traces; --"),
  text('SQL union', "x' UNION SELECT name, engine FROM system.tables --"),
  text('backslash-escaped quote', "\\' OR \\'1\\'=\\'1"),
  text('backticks', '`otel_traces`'),
  text('ClickHouse parameter', '{id:String}'),
  text('ClickHouse identifier parameter', '{x:Identifier}'),
  text('FORMAT clause', 'x FORMAT JSONEachRow'),
  text('SETTINGS clause', 'x SETTINGS max_threads=1, readonly=0'),
  text('template syntax', '${service}$__fromTime[[identity]]'),
  text('NUL byte', 'a\u0000b'),
  text('control characters', '\u0001\u0007\u001b[31m\r\n\t\u007f'),
  text('bidi and zero-width characters', 'a\u202eb\u200bc'),
  text('lone surrogate', 'a\ud800b'),
  text('multibyte UTF-8', 'ünïcødé ☃ 𝕏'),
  // Well-formed but out of range: ClickHouse's DateTime64(9) overflows before 1900.
  text('month before 1900', '1458-04'),
  text('time before 1900', '1458-04-01T00:00:00Z'),
  text('time after 2262', '9999-12-31T23:59:59.999999999Z'),
  text('2 KB', 'x'.repeat(2048)),
  text('100 KB', 'A'.repeat(100 * 1024)),
  { label: 'invalid UTF-8 bytes', text: undefined, raw: '%FF%FE%FD' },
  { label: 'overlong UTF-8', text: undefined, raw: '%C0%AE%C0%AE%2F%C0%80' },
  { label: 'malformed percent-encoding', text: undefined, raw: '%zz%' },
]

/** Values of the wrong JSON type, for body fields. */
export const WRONG_TYPES: Array<{ label: string; value: unknown }> = [
  { label: 'number', value: 42 },
  { label: 'null', value: null },
  { label: 'object', value: { $gt: '' } },
  { label: 'array', value: ["' OR 1=1 --"] },
  { label: 'boolean', value: true },
]

/** A parameter of an operation. */
export interface ParameterSpec {
  name: string
  in: 'query' | 'path'
  schema: Record<string, unknown>
}

/** An operation of the document. */
export interface OperationSpec {
  method: string
  path: string
  secured: boolean
  parameters: ParameterSpec[]
  /** The application/json request body schema, $refs resolved. */
  jsonBody: Record<string, unknown> | undefined
  responses: string[]
}

/** The parts of /openapi.json the probes read. */
export type OpenApiDocument = {
  paths: Record<string, Record<string, { security?: unknown[]; parameters?: ParameterSpec[]; requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> }; responses: Record<string, unknown> }>>
  components: { schemas: Record<string, unknown> }
  security?: unknown[]
}

/** Replaces every $ref with the component it names. */
export function resolveRefs(value: unknown, components: Record<string, unknown>): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveRefs(v, components))
  if (value && typeof value === 'object') {
    const ref = (value as { $ref?: string }).$ref
    if (typeof ref === 'string') return resolveRefs(components[ref.replace('#/components/schemas/', '')], components)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveRefs(v, components)]))
  }
  return value
}

/** Every operation of the document with its parameters and JSON body. */
export function operationsOf(document: OpenApiDocument): OperationSpec[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      secured: (op.security ?? document.security ?? []).length > 0,
      parameters: op.parameters ?? [],
      jsonBody: op.requestBody?.content?.['application/json']?.schema ? (resolveRefs(op.requestBody.content['application/json'].schema, document.components.schemas) as Record<string, unknown>) : undefined,
      responses: Object.keys(op.responses),
    })),
  )
}

/** One field of a JSON body: its path in a minimal valid body and its schema. */
export interface BodyField {
  /** Path as the API names it in messages, e.g. "[0].owner" or "requests[0].feature". */
  label: string
  /** Builds a body with `value` at this field. */
  bodyWith(value: unknown): unknown
  schema: Record<string, unknown>
}

/**
 * The fields of a body schema, each with a minimal valid body around it:
 * an array body becomes a one-item list, an object gets its required
 * properties from `valid` (the test's known-good values by property name).
 */
export function bodyFields(schema: Record<string, unknown>, valid: (name: string, probe: number) => unknown, probe: () => number): BodyField[] {
  const fields: BodyField[] = []
  const walk = (node: Record<string, unknown>, prefix: string, wrap: (inner: unknown) => unknown) => {
    if (node.type === 'array' && node.items && typeof node.items === 'object') {
      const items = node.items as Record<string, unknown>
      if (items.type === 'object') return walk(items, `${prefix}[0]`, (inner) => wrap([inner]))
    }
    if (node.type !== 'object' || !node.properties) return
    const properties = node.properties as Record<string, Record<string, unknown>>
    const required = (node.required as string[] | undefined) ?? []
    for (const [name, property] of Object.entries(properties)) {
      const label = prefix === '' ? name : `${prefix}.${name}`
      const around = (value: unknown) => {
        const n = probe()
        const base = Object.fromEntries(required.filter((r) => r !== name).map((r) => [r, valid(r, n)]))
        return wrap({ ...base, [name]: value })
      }
      fields.push({ label, bodyWith: around, schema: property })
      if (property.type === 'array' && (property.items as Record<string, unknown> | undefined)?.type === 'object') {
        walk(property, label, (inner) => around(inner))
      } else if (property.type === 'array' && property.items) {
        fields.push({ label: `${label}[0]`, bodyWith: (value) => around([value]), schema: property.items as Record<string, unknown> })
      }
    }
  }
  walk(schema, '', (inner) => inner)
  return fields
}

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: false })
const compiled = new WeakMap<object, ReturnType<typeof ajv.compile>>()

/** True when the value satisfies the documented schema. */
export function conforms(schema: Record<string, unknown>, value: unknown): boolean {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  return validate(value) as boolean
}
