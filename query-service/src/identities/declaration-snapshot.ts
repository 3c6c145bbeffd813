/**
 * Every current declaration's business unit and approved activities, held
 * in memory between inventory writes, for the one-identity entitlement
 * decision (entitlements/single.ts). Reading one declaration from
 * ClickHouse costs about as much as reading the identity's events (a few
 * milliseconds for any read, however small); from memory it costs nothing.
 *
 * Exact, never stale: only on the embedded engine, where every write passes
 * through this process and storage/write-tracking.ts counts each write to
 * nhi_inventory. The snapshot is read again after any write, and a read
 * that overlapped a write answers only the request it was made for. On a ClickHouse
 * server (other writers exist) and for inventories over
 * {@link MAX_SNAPSHOT_DECLARATIONS}, {@link declarationSnapshot} answers
 * undefined and the caller reads the declaration with its query; an
 * oversized inventory is counted again at most every
 * {@link OVERSIZED_RECHECK_MS}.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { tableWriteVersion } from '../storage/write-tracking.js'

/** What a decision needs of a declaration. */
export interface DeclarationFacts {
  business_unit: string
  approved_activities: string[]
}

/** Largest inventory held in memory (about 200 bytes per declaration). */
export const MAX_SNAPSHOT_DECLARATIONS = 100_000

/** After finding the inventory too large, how long callers read declarations themselves before it is counted again. */
export const OVERSIZED_RECHECK_MS = 60_000

interface Snapshot {
  version: number
  limit: number
  /** undefined: the inventory is too large to hold. */
  declarations: ReadonlyMap<string, DeclarationFacts> | undefined
  /** When it was read (performance.now()). */
  readAt: number
}

const snapshots = new WeakMap<ClickHouseClient, Snapshot>()
const loading = new WeakMap<ClickHouseClient, { version: number; limit: number; promise: Promise<ReadonlyMap<string, DeclarationFacts> | undefined> }>()

function isDeclarationRow(row: unknown): row is [string, string, string[]] {
  return (
    Array.isArray(row) &&
    row.length === 3 &&
    typeof row[0] === 'string' &&
    typeof row[1] === 'string' &&
    Array.isArray(row[2]) &&
    row[2].every((entry: unknown) => typeof entry === 'string')
  )
}

// Positional rows checked by hand, not through storage/read.ts: this reads the whole inventory (up to 100,000
// rows) again after every inventory write, so it keeps the cheapest decoding (arrays, no schema parse per row).
async function readDeclarations(client: ClickHouseClient, limit: number): Promise<ReadonlyMap<string, DeclarationFacts> | undefined> {
  const result = await client.query({
    query: 'SELECT id, business_unit, approved_activities FROM nhi_inventory FINAL LIMIT {limit:UInt64}',
    format: 'JSONCompactEachRow',
    query_params: { limit: limit + 1 },
  })
  const declarations = new Map<string, DeclarationFacts>()
  for (const line of (await result.text()).split('\n')) {
    if (line === '') continue
    const row: unknown = JSON.parse(line)
    if (!isDeclarationRow(row)) throw new Error(`unexpected row from nhi_inventory: ${line.slice(0, 200)}`)
    declarations.set(row[0], { business_unit: row[1], approved_activities: row[2] })
  }
  return declarations.size > limit ? undefined : declarations
}

/**
 * The current declarations by identity id, or undefined when the caller
 * must read the declaration from storage itself (server storage, or an
 * inventory too large to hold).
 */
export async function declarationSnapshot(
  client: ClickHouseClient,
  limit: number = MAX_SNAPSHOT_DECLARATIONS,
): Promise<ReadonlyMap<string, DeclarationFacts> | undefined> {
  const version = tableWriteVersion(client, 'nhi_inventory')
  if (version === undefined) return undefined
  const held = snapshots.get(client)
  if (held?.limit === limit) {
    if (held.version === version) return held.declarations
    // Too large when last read: reading 100,000 rows again after every write would cost more than it saves.
    if (held.declarations === undefined && performance.now() - held.readAt < OVERSIZED_RECHECK_MS) return undefined
  }
  const pending = loading.get(client)
  if (pending?.version === version && pending.limit === limit) return pending.promise
  const promise = readDeclarations(client, limit)
  loading.set(client, { version, limit, promise })
  try {
    const declarations = await promise
    // Kept under the version it started at: a write moves the version when it
    // starts and when it ends, so a read that overlapped one is never served
    // again. A slower, older read never replaces a newer one.
    const current = snapshots.get(client)
    if (current === undefined || current.version <= version) snapshots.set(client, { version, limit, declarations, readAt: performance.now() })
    return declarations
  } finally {
    if (loading.get(client)?.promise === promise) loading.delete(client)
  }
}
