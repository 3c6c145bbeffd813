/**
 * The inventory of declared identities (POST /v1/inventory; IDENTITIES.md):
 * validation of a batch, the business-unit rules for who may declare what,
 * and the idempotent upsert into `nhi_inventory`. The same validation serves
 * the API body (JSON, YAML or CSV) and the inventory file read at start.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { NHI_TYPES } from '@nhi-meter/instrumentation/semconv'
import { z } from 'zod'
import { readFirst, readRows } from '../storage/read.js'
import { toClickHouseTime } from '../storage/time.js'
import { checkGlob, describeValue, formatPath, quote } from '../policy/index.js'

/** At most this many identities in one POST /v1/inventory. */
export const MAX_INVENTORY_BATCH = 10_000
/** At most this many identities in an inventory file. */
export const MAX_INVENTORY_FILE_ITEMS = 200_000
/** At most this many entries in one identity's approved_activities. */
export const MAX_APPROVED_ACTIVITIES = 100
/** Problems spelled out in one error message; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 20

/** One declared identity, as stored. */
export interface DeclaredIdentity {
  id: string
  type: string
  owner: string
  business_unit: string
  tier: string
  /** Activity types (`tool_invocation`) or `type:name-glob` entries (`tool_invocation:search_*`). */
  approved_activities: string[]
}

/** One problem in a batch, located by its path (`[3].approved_activities[0]`). */
export interface InventoryProblem {
  path: string
  message: string
}

/** A batch that cannot be stored; `message` spells out the problems. */
export class InventoryValidationError extends Error {
  constructor(readonly problems: readonly InventoryProblem[]) {
    super(describeProblems(problems))
  }
}

/** Renders problems as `path: message; path: message (and N more)`. */
export function describeProblems(problems: readonly InventoryProblem[]): string {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `${p.path}: ${p.message}`)
  const more = problems.length - listed.length
  return listed.join('; ') + (more > 0 ? `; and ${more} more problem${more === 1 ? '' : 's'}` : '')
}

const ACTIVITY_TYPE = /^[a-z][a-z0-9_]{0,62}$/
// Control, format (bidi) and separator characters, and lone surrogates: an id
// or owner must read the same in every report and terminal.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/u
const TIER = /^[A-Za-z0-9_.+-]{0,128}$/

function expected(what: string) {
  return (issue: { input?: unknown }) => `must be ${what}, got ${describeValue(issue.input)}`
}

function visibleText(what: string, max: number, required: boolean) {
  return z.string({ error: expected(what) }).superRefine((text, ctx) => {
    if (required && text === '') ctx.addIssue({ code: 'custom', message: `must not be empty` })
    else if (Array.from(text).length > max) ctx.addIssue({ code: 'custom', message: `must be at most ${max} characters, got ${Array.from(text).length}` })
    else if (INVISIBLE.test(text)) ctx.addIssue({ code: 'custom', message: `must contain only visible characters, got ${quote(text)}` })
    else if (text.trim() !== text) ctx.addIssue({ code: 'custom', message: `must not start or end with spaces, got ${quote(text)}` })
  })
}

const approvedActivity = z.string({ error: expected('an activity type or "type:name-glob"') }).superRefine((entry, ctx) => {
  const colon = entry.indexOf(':')
  const type = colon < 0 ? entry : entry.slice(0, colon)
  if (!ACTIVITY_TYPE.test(type)) {
    ctx.addIssue({ code: 'custom', message: `must be an activity type (a lowercase word such as tool_invocation) or "type:name-glob", got ${quote(entry)}` })
    return
  }
  if (colon >= 0) {
    const glob = checkGlob(entry.slice(colon + 1))
    if (!glob.ok) ctx.addIssue({ code: 'custom', message: `name glob ${glob.problem}` })
  }
})

const declaredIdentity = z.strictObject(
  {
    id: visibleText('an identity id (a non-empty string)', 256, true),
    type: z.enum(NHI_TYPES, { error: (issue) => `must be one of ${NHI_TYPES.join(', ')}, got ${describeValue(issue.input)}` }),
    owner: visibleText('a team or person (a string)', 256, false).default(''),
    business_unit: visibleText('a business unit (a string)', 128, false).default(''),
    tier: z
      .string({ error: expected('a tier (a string)') })
      .regex(TIER, { error: (issue) => `must be letters, digits, "_", ".", "+" or "-", at most 128, got ${describeValue(issue.input)}` })
      .default(''),
    approved_activities: z
      .array(approvedActivity, { error: expected('a list of activity types or "type:name-glob" entries') })
      .max(MAX_APPROVED_ACTIVITIES, { error: `must list at most ${MAX_APPROVED_ACTIVITIES} entries` })
      .default([]),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : `must be a mapping with id, type, owner, business_unit, tier, approved_activities, got ${describeValue(issue.input)}`) },
)

function unknownKeysMessage(keys: readonly string[]): string {
  return `unknown key${keys.length === 1 ? '' : 's'} ${keys.map((k) => quote(k, 40)).join(', ')}; known keys: id, type, owner, business_unit, tier, approved_activities`
}

/**
 * Validates a whole batch before anything is stored: every item, every
 * field, and that no id appears twice. Returns the identities with defaults
 * filled in (owner, business_unit, tier empty; approved_activities none), or
 * throws {@link InventoryValidationError} listing every problem.
 */
export function validateInventory(value: unknown, maxItems: number = MAX_INVENTORY_BATCH): DeclaredIdentity[] {
  if (!Array.isArray(value)) throw new InventoryValidationError([{ path: '(top level)', message: `must be a list of identities, got ${describeValue(value)}` }])
  if (value.length > maxItems) throw new InventoryValidationError([{ path: '(top level)', message: `must list at most ${maxItems} identities, got ${value.length}` }])
  const problems: InventoryProblem[] = []
  const items: DeclaredIdentity[] = []
  const firstIndexOf = new Map<string, number>()
  value.forEach((raw, index) => {
    const result = declaredIdentity.safeParse(raw)
    if (!result.success) {
      for (const issue of result.error.issues) {
        if (issue.code === 'unrecognized_keys') {
          problems.push({ path: formatPath([index, ...issue.path.map(pathSegment)]), message: unknownKeysMessage(issue.keys) })
        } else {
          problems.push({ path: formatPath([index, ...issue.path.map(pathSegment)]), message: issue.message })
        }
      }
      return
    }
    const item = { ...result.data, approved_activities: [...result.data.approved_activities] }
    const earlier = firstIndexOf.get(item.id)
    if (earlier !== undefined) problems.push({ path: formatPath([index, 'id']), message: `${quote(item.id)} is already declared at [${earlier}]; list each identity once` })
    else firstIndexOf.set(item.id, index)
    items.push(item)
  })
  if (problems.length > 0) throw new InventoryValidationError(problems)
  return items
}

function pathSegment(segment: PropertyKey): string | number {
  return typeof segment === 'number' ? segment : String(segment)
}

/** Outcome of an upsert: how many identities were new, changed, or already declared exactly so. */
export interface InventoryUpsertResult {
  received: number
  created: number
  updated: number
  unchanged: number
}

const storedRow = z.object({
  id: z.string(),
  type: z.string(),
  owner: z.string(),
  business_unit: z.string(),
  tier: z.string(),
  approved_activities: z.array(z.string()),
  updated_at: z.string(),
})

/** The current declarations of the given identities. */
export async function currentDeclarations(client: ClickHouseClient, ids: readonly string[]): Promise<Map<string, DeclaredIdentity & { updatedAtMs: number }>> {
  if (ids.length === 0) return new Map()
  const rows = await readRows(client, {
    query: `
      SELECT id, type, owner, business_unit, tier, approved_activities, updated_at
      FROM nhi_inventory FINAL
      WHERE id IN {ids:Array(String)}`,
    params: { ids },
    row: storedRow,
  })
  return new Map(rows.map((r) => [r.id, { ...r, updatedAtMs: Date.parse(r.updated_at.endsWith('Z') ? r.updated_at : `${r.updated_at}Z`) }]))
}

/**
 * Whether a key limited to `businessUnits` may store these declarations;
 * returns the first problem, or undefined. Such a key may declare an
 * identity only into its own units, may not take over an identity declared
 * in another unit, and may not claim an undeclared identity whose activity
 * so far was attributed (by its spans) to any other unit, or to none: that
 * would move another unit's history into its view.
 */
export async function inventoryAccessProblem(
  client: ClickHouseClient,
  items: readonly DeclaredIdentity[],
  businessUnits: readonly string[] | null,
): Promise<InventoryProblem | undefined> {
  if (businessUnits === null) return undefined
  const allowed = new Set(businessUnits)
  const indexOf = new Map(items.map((item, i) => [item.id, i]))
  for (const [i, item] of items.entries()) {
    if (!allowed.has(item.business_unit)) {
      return { path: formatPath([i, 'business_unit']), message: `this key may declare identities only in ${businessUnits.map((u) => quote(u)).join(', ')}, got ${describeValue(item.business_unit)}` }
    }
  }
  const ids = items.map((item) => item.id)
  const declared = await currentDeclarations(client, ids)
  for (const [id, row] of declared) {
    if (!allowed.has(row.business_unit)) return { path: formatPath([indexOf.get(id)!, 'id']), message: `${quote(id)} is managed by a business unit this key cannot write to` }
  }
  const undeclared = ids.filter((id) => !declared.has(id))
  if (undeclared.length === 0) return undefined
  const foreign = await readFirst(client, {
    query: `
      SELECT DISTINCT nhi_id
      FROM nhi_identity_activity
      WHERE nhi_id IN {ids:Array(String)} AND business_unit NOT IN {units:Array(String)}
      LIMIT 1`,
    params: { ids: undeclared, units: businessUnits },
    row: z.object({ nhi_id: z.string() }),
  })
  if (foreign) return { path: formatPath([indexOf.get(foreign.nhi_id)!, 'id']), message: `${quote(foreign.nhi_id)} is managed by a business unit this key cannot write to` }
  return undefined
}

let lastStamp = 0

// A version for a new row: now, but always after the last one this process
// wrote and after the newest stored for the identities concerned, so the new
// row wins even when clocks disagree.
function nextVersion(newestStoredMs: number): string {
  lastStamp = Math.max(Date.now(), lastStamp + 1, newestStoredMs + 1)
  return toClickHouseTime(new Date(lastStamp))
}

function sameDeclaration(a: DeclaredIdentity, b: DeclaredIdentity): boolean {
  return (
    a.type === b.type &&
    a.owner === b.owner &&
    a.business_unit === b.business_unit &&
    a.tier === b.tier &&
    a.approved_activities.length === b.approved_activities.length &&
    a.approved_activities.every((entry, i) => entry === b.approved_activities[i])
  )
}

/**
 * Stores validated declarations. Idempotent: identities already declared
 * exactly so are not written again; new and changed ones are written in one
 * insert (all or nothing) with a version newer than any stored for them, so
 * the latest upsert wins.
 */
export async function upsertInventory(client: ClickHouseClient, items: readonly DeclaredIdentity[]): Promise<InventoryUpsertResult> {
  const current = await currentDeclarations(client, items.map((item) => item.id))
  let created = 0
  let updated = 0
  const changed: DeclaredIdentity[] = []
  let newest = 0
  for (const item of items) {
    const stored = current.get(item.id)
    if (stored && sameDeclaration(stored, item)) continue
    if (stored) {
      updated++
      newest = Math.max(newest, stored.updatedAtMs)
    } else created++
    changed.push(item)
  }
  if (changed.length > 0) {
    const updatedAt = nextVersion(newest)
    await client.insert({
      table: 'nhi_inventory',
      values: changed.map((item) => ({ ...item, updated_at: updatedAt, is_deleted: 0 })),
      format: 'JSONEachRow',
    })
  }
  return { received: items.length, created, updated, unchanged: items.length - changed.length }
}

/**
 * Retires declarations: the identities are no longer declared (one that
 * keeps acting becomes `unregistered`). Identities not declared, or declared
 * in a unit outside `businessUnits`, are left alone; returns the ids retired.
 */
export async function retireDeclarations(client: ClickHouseClient, ids: readonly string[], businessUnits: readonly string[] | null): Promise<string[]> {
  const current = [...(await currentDeclarations(client, ids)).values()].filter((d) => businessUnits === null || businessUnits.includes(d.business_unit))
  if (current.length === 0) return []
  const updatedAt = nextVersion(Math.max(...current.map((d) => d.updatedAtMs)))
  await client.insert({
    table: 'nhi_inventory',
    values: current.map(({ updatedAtMs: _version, ...declaration }) => ({ ...declaration, updated_at: updatedAt, is_deleted: 1 })),
    format: 'JSONEachRow',
  })
  return current.map((d) => d.id)
}
