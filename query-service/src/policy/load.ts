/**
 * Loading a policy: from a file (YAML or JSON, chosen by extension or by
 * content), from a string, or from an already-parsed value. Every problem
 * is collected and reported at once, each naming its key path and, for
 * text, its line and column; a policy with any problem is refused whole.
 */
import { open } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml'
import {
  closestMatch,
  formatPath,
  PolicyError,
  type PathSegments,
  type PolicyIssue,
} from './issues.js'
import { crossCheckPolicy, POLICY_KEYS, policySchema, type Policy, type RawPolicyIssue } from './schema.js'

/** Largest policy accepted, in bytes; real policies are a few kilobytes. */
export const MAX_POLICY_BYTES = 1024 * 1024

/**
 * Most aliased nodes a YAML policy may expand to. Anchors and aliases are
 * handy for sharing a meter list between cards; a "billion laughs" document
 * nests them to expand exponentially, and is refused at this count.
 */
export const MAX_YAML_ALIAS_COUNT = 100

/** The policy shipped with nhi-meter, used when `NHI_METER_POLICY` is unset. */
export const DEFAULT_POLICY_PATH = fileURLToPath(new URL('../../policy/default-policy.yaml', import.meta.url))

/** The two notations a policy may be written in. */
export type PolicyFormat = 'yaml' | 'json'

/** A policy that passed every check, with what is worth telling the operator. */
export interface LoadedPolicy {
  /** The validated policy, defaults filled in, deeply frozen. */
  readonly policy: Policy
  /** Problems that do not stop loading (e.g. an activity type one letter off a named one); log them. */
  readonly warnings: readonly PolicyIssue[]
  /** Where the policy came from: the file path, or the label given for a string. */
  readonly source: string
  /** How the text was read. */
  readonly format: PolicyFormat
}

/** Options for {@link parsePolicy}. */
export interface ParsePolicyOptions {
  /** Force a notation; by default JSON is used when the text is a JSON object, YAML otherwise. */
  format?: PolicyFormat
  /** A label for messages, e.g. the file path; defaults to `(string)`. */
  source?: string
}

/** Reads, parses and validates a policy file; throws {@link PolicyError} listing every problem. */
export async function loadPolicyFile(path: string): Promise<LoadedPolicy> {
  const text = await readPolicyText(path)
  return parsePolicy(text, { source: path, format: formatFromExtension(path) })
}

/** Loads the shipped default policy. */
export async function loadDefaultPolicy(): Promise<LoadedPolicy> {
  return loadPolicyFile(DEFAULT_POLICY_PATH)
}

/** Parses and validates policy text (YAML or JSON); throws {@link PolicyError} listing every problem. */
export function parsePolicy(text: string, options: ParsePolicyOptions = {}): LoadedPolicy {
  const source = options.source ?? '(string)'
  // Measured before parsing so an oversized input costs nothing more.
  if (text.length > MAX_POLICY_BYTES || Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    throw new PolicyError(source, [{ path: '(file)', message: tooLarge(Buffer.byteLength(text, 'utf8')) }])
  }
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  const format = options.format ?? sniffFormat(body)
  const parsed = format === 'json' ? readJson(body) : readYaml(body)
  if (!parsed.ok) throw new PolicyError(source, parsed.issues)
  return validate(parsed.value, source, format, parsed.locate)
}

/** Validates an already-parsed policy value (e.g. from a test or an API body); throws {@link PolicyError}. */
export function validatePolicy(value: unknown, source = '(value)'): LoadedPolicy {
  return validate(value, source, 'json', () => undefined)
}

/** How a file's notation is chosen: `.json` is JSON, `.yaml`/`.yml` YAML, anything else decided by its content. */
export function formatFromExtension(path: string): PolicyFormat | undefined {
  const lower = path.toLowerCase()
  if (lower.endsWith('.json')) return 'json'
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml'
  return undefined
}

// ---- reading

type Position = { line: number; column: number }
type Locate = (path: PathSegments) => Position | undefined
type Parsed = { ok: true; value: unknown; locate: Locate } | { ok: false; issues: PolicyIssue[] }

// Content sniffing: a document that is a JSON object is JSON; anything else
// is YAML (which also reads JSON, so a misnamed file still loads).
function sniffFormat(text: string): PolicyFormat {
  const first = text.trimStart()[0]
  if (first !== '{' && first !== '[') return 'yaml'
  try {
    JSON.parse(text)
    return 'json'
  } catch {
    return 'yaml'
  }
}

async function readPolicyText(path: string): Promise<string> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    throw new PolicyError(path, [{ path: '(file)', message: `cannot be read: ${describeFsError(error)}` }])
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new PolicyError(path, [{ path: '(file)', message: 'is not a regular file' }])
    if (stat.size > MAX_POLICY_BYTES) throw new PolicyError(path, [{ path: '(file)', message: tooLarge(stat.size) }])
    // Read at most one byte past the limit, in case the file grew after stat.
    const buffer = Buffer.alloc(Math.min(stat.size, MAX_POLICY_BYTES) + 1)
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
    if (bytesRead > MAX_POLICY_BYTES) throw new PolicyError(path, [{ path: '(file)', message: tooLarge(bytesRead) }])
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, bytesRead))
    } catch {
      throw new PolicyError(path, [{ path: '(file)', message: 'is not valid UTF-8 text' }])
    }
  } finally {
    await handle.close()
  }
}

function readJson(text: string): Parsed {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return { ok: false, issues: [{ path: '(top level)', message: `is not valid JSON: ${message}` }] }
  }
  // JSON.parse keeps the last of two equal keys without a word; the YAML
  // parser (JSON is YAML) catches duplicates and knows where every key is.
  const { doc, lineCounter } = yamlDocument(text)
  const duplicates = doc.errors.filter((e) => e.code === 'DUPLICATE_KEY').map((e) => yamlIssue(doc, lineCounter, e.pos[0], e.message, e.code))
  if (duplicates.length > 0) return { ok: false, issues: duplicates }
  return { ok: true, value, locate: doc.errors.length === 0 ? locator(doc, lineCounter) : () => undefined }
}

function readYaml(text: string): Parsed {
  const { doc, lineCounter } = yamlDocument(text)
  const problems = [...doc.errors, ...doc.warnings]
  if (problems.length > 0) {
    return { ok: false, issues: problems.map((e) => yamlIssue(doc, lineCounter, e.pos[0], e.message, e.code)) }
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT }), locate: locator(doc, lineCounter) }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (/alias/i.test(message)) {
      return {
        ok: false,
        issues: [{ path: '(top level)', message: `uses aliases that expand to more than ${MAX_YAML_ALIAS_COUNT} nodes; a policy never needs that many (YAML alias bomb?)` }],
      }
    }
    return { ok: false, issues: [{ path: '(top level)', message: `cannot be read as YAML: ${message}` }] }
  }
}

function yamlDocument(text: string): { doc: Document.Parsed; lineCounter: LineCounter } {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    strict: true,
    stringKeys: true,
    uniqueKeys: true,
    merge: false,
    version: '1.2',
  })
  return { doc, lineCounter }
}

function yamlIssue(doc: Document.Parsed, lineCounter: LineCounter, offset: number, message: string, code: string): PolicyIssue {
  const path = pathAt(doc, offset)
  const { line, col } = lineCounter.linePos(offset)
  const text =
    code === 'DUPLICATE_KEY'
      ? 'appears twice in the same mapping; each key may appear once'
      : code === 'TAG_RESOLVE_FAILED' || /Unresolved tag/.test(message)
        ? `uses a YAML tag nhi-meter does not read (${message.replace(/ at line.*$/s, '')}); remove the tag`
        : code === 'MULTIPLE_DOCS'
          ? 'holds more than one YAML document ("---"); a policy is one document'
          : `is not valid YAML: ${message.replace(/ at line.*$/s, '')}`
  return { path: formatPath(path), message: text, line, column: col }
}

// The key path of the deepest node whose source range holds the offset
// (for YAML errors, which come with an offset but no key path).
function pathAt(doc: Document.Parsed, offset: number): (string | number)[] {
  const path: (string | number)[] = []
  let node: unknown = doc.contents
  while (isMap(node) || isSeq(node)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const keyRange = (p.key as Node | null)?.range
        const end = (p.value as Node | null)?.range?.[2] ?? keyRange?.[2]
        return keyRange != null && end != null && keyRange[0] <= offset && offset < end
      })
      if (!pair) break
      path.push(isScalar(pair.key) ? String(pair.key.value) : '?')
      if (offset < ((pair.key as Node).range?.[1] ?? 0)) break
      node = pair.value
    } else {
      const index = node.items.findIndex((item) => {
        const range = (item as Node | null)?.range
        return range != null && range[0] <= offset && offset < range[2]
      })
      if (index < 0) break
      path.push(index)
      node = node.items[index]
    }
  }
  return path
}

// Finds a key path in the YAML source: the key's position (the line a user
// looks for), a list item's, or the nearest enclosing one for a missing key.
function locator(doc: Document.Parsed, lineCounter: LineCounter): Locate {
  return (path) => {
    let node: unknown = doc.contents
    let offset = (node as Node | null)?.range?.[0]
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(doc)
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment))
        if (!pair) break
        offset = (pair.key as Node).range?.[0] ?? offset
        node = pair.value
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment] as Node | undefined
        if (!item) break
        offset = item.range?.[0] ?? offset
        node = item
      } else break
    }
    if (offset === undefined) return undefined
    const { line, col } = lineCounter.linePos(offset)
    return { line, column: col }
  }
}

// ---- validating

function validate(value: unknown, source: string, format: PolicyFormat, locate: Locate): LoadedPolicy {
  if (value === null || value === undefined) {
    throw new PolicyError(source, [
      { path: '(top level)', message: 'is empty; a policy needs at least rate_cards (see query-service/src/policy/POLICY.md)' },
    ])
  }
  const result = policySchema.safeParse(withoutEmptySections(value), { reportInput: true })
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue): RawPolicyIssue[] =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ path: [...(issue.path as PathSegments), key], message: unknownKeyMessage(issue.path as PathSegments, key) }))
        : [{ path: issue.path as PathSegments, message: issue.message }],
    )
    throw new PolicyError(source, placeAll(issues, locate))
  }
  const { errors, warnings } = crossCheckPolicy(result.data)
  if (errors.length > 0) throw new PolicyError(source, placeAll(errors, locate))
  return { policy: deepFreeze(result.data), warnings: placeAll(warnings, locate), source, format }
}

// A section written with nothing under it (`detection:` with every line
// commented out) is YAML null; treat it as absent so its defaults apply.
function withoutEmptySections(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) }
  for (const key of ['entitlements', 'billing', 'detection', 'webhooks']) {
    if (Object.hasOwn(copy, key) && copy[key] === null) delete copy[key]
  }
  return copy
}

function unknownKeyMessage(parent: PathSegments, key: string): string {
  const pattern = parent.map((s) => (typeof s === 'number' ? '[]' : s)).join('.').replace(/\.\[\]/g, '[]')
  const known = POLICY_KEYS[pattern] ?? []
  if (key === '<<') return 'merge keys ("<<") are not supported; repeat the keys, or alias the whole value'
  const near = closestMatch(key, known)
  if (near !== undefined) return `unknown key; did you mean "${near}"?`
  return known.length > 0 ? `unknown key; expected one of ${known.join(', ')}` : 'unknown key'
}

function placeAll(issues: readonly RawPolicyIssue[], locate: Locate): PolicyIssue[] {
  const placed = issues.map((issue, order) => ({ issue: place(issue, locate), order }))
  // Document order where positions are known, so the list reads top to bottom.
  placed.sort((a, b) => {
    const la = a.issue.line ?? Infinity
    const lb = b.issue.line ?? Infinity
    if (la !== lb) return la - lb
    const ca = a.issue.column ?? 0
    const cb = b.issue.column ?? 0
    return ca !== cb ? ca - cb : a.order - b.order
  })
  return placed.map((p) => p.issue)
}

function place(issue: RawPolicyIssue, locate: Locate): PolicyIssue {
  const at = locate(issue.path)
  const path = formatPath(issue.path)
  return at ? { path, message: issue.message, line: at.line, column: at.column } : { path, message: issue.message }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

function tooLarge(bytes: number): string {
  return `is ${(bytes / 1024 / 1024).toFixed(1)} MiB; a policy may be at most ${MAX_POLICY_BYTES / 1024 / 1024} MiB`
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: string }).code
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'EISDIR') return 'it is a directory'
  return error instanceof Error ? error.message : String(error)
}

