/**
 * API keys (README, "Access"): a keys file lists `{ name, sha256, scopes,
 * business_units? }`; without one, the service generates a single admin key
 * on first start, keeps only its hash in ClickHouse and prints the key once.
 * Keys are compared by their SHA-256 in constant time.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { readRows } from '../storage/read.js'

/** Every scope a key can hold; `admin` holds them all. */
export const SCOPES = ['billing:read', 'findings:read', 'inventory:write', 'ingest:write', 'admin'] as const
/** One scope. */
export type Scope = (typeof SCOPES)[number]

/** Who is calling: the key's name, what it may do, and which business units it may see (null: all). */
export interface Principal {
  name: string
  scopes: ReadonlySet<Scope>
  businessUnits: readonly string[] | null
}

const keyEntrySchema = z
  .object({
    name: z.string().min(1).max(200),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the 64-character hex SHA-256 of the key, not the key itself')
      .transform((s) => s.toLowerCase()),
    scopes: z.array(z.enum(SCOPES)).min(1),
    business_units: z.array(z.string().min(1).max(200)).min(1).optional(),
  })
  .strict()

const keysFileSchema = z.array(keyEntrySchema).min(1, 'must list at least one key')

/** One known key, by hash. */
interface StoredKey {
  hash: Buffer
  principal: Principal
}

/**
 * Compares two 32-byte hashes; must take the same time whatever they hold.
 * Injectable so a test can count the comparisons without timing anything.
 */
export type HashComparator = (stored: Buffer, presented: Buffer) => boolean

/** The set of keys the service accepts. */
export class KeyStore {
  private constructor(
    private readonly keys: StoredKey[],
    private readonly compare: HashComparator,
  ) {}

  /** Builds a store from validated entries (`compare` defaults to crypto.timingSafeEqual). */
  static fromEntries(entries: z.infer<typeof keysFileSchema>, compare: HashComparator = timingSafeEqual): KeyStore {
    return new KeyStore(
      entries.map((e) => ({
        hash: Buffer.from(e.sha256, 'hex'),
        principal: { name: e.name, scopes: new Set(e.scopes), businessUnits: e.business_units ?? null },
      })),
      compare,
    )
  }

  /** Loads and validates a keys file (YAML or JSON); errors name the entry and key. */
  static fromFile(path: string): KeyStore {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      throw new Error(`NHI_METER_API_KEYS_FILE: cannot read ${path}: ${(error as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = parseYaml(text, { maxAliasCount: 100 })
    } catch (error) {
      throw new Error(`NHI_METER_API_KEYS_FILE: ${path} is not valid YAML or JSON: ${(error as Error).message}`)
    }
    const result = keysFileSchema.safeParse(parsed)
    if (!result.success) {
      const issue = result.error.issues[0]!
      const where = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
      throw new Error(`NHI_METER_API_KEYS_FILE: ${path}: ${where ? `${where.replace(/^\./, '')}: ` : ''}${issue.message}`)
    }
    return KeyStore.fromEntries(result.data)
  }

  /**
   * Returns the principal for a presented key, or undefined. Every stored
   * hash is compared, in constant time, whether or where a match is found,
   * so the time taken says nothing about which key (if any) matched.
   */
  authenticate(presentedKey: string): Principal | undefined {
    const presented = sha256(presentedKey)
    let match: Principal | undefined
    for (const key of this.keys) {
      const equal = this.compare(key.hash, presented)
      if (equal && !match) match = key.principal
    }
    return match
  }

  /** How many keys are known. */
  get size(): number {
    return this.keys.length
  }
}

/** SHA-256 of a key, as bytes. */
export function sha256(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest()
}

/** Generates a new key in nhi-meter's format (`nhim_` and 43 base64url characters). */
export function generateKey(): string {
  return `nhim_${randomBytes(32).toString('base64url')}`
}

/** Reads the `Authorization: Bearer <key>` header; returns the key or an error reason. */
export function bearerKey(header: string | undefined | null): { key: string } | { problem: string } {
  if (!header) return { problem: 'missing Authorization header; send Authorization: Bearer <key>' }
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header.trim())
  if (!match) return { problem: 'malformed Authorization header; expected Bearer <key>' }
  return { key: match[1]! }
}

/** True when the principal holds the scope (admin holds every scope). */
export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has('admin') || principal.scopes.has(scope)
}

/** A generated key as nhi_api_keys stores it (its hash, never the key). */
const storedKeyRow = z.object({ name: z.string(), sha256: z.string(), scopes: z.array(z.enum(SCOPES)), business_units: z.array(z.string()) })

/**
 * The keys the service generated itself. On a first start with no keys
 * file, creates one admin key, stores its hash and returns the key so the
 * caller can print it once.
 */
export async function loadGeneratedKeys(client: ClickHouseClient): Promise<{ store: KeyStore; newKey?: string }> {
  const rows = await readRows(client, {
    query: 'SELECT name, sha256, scopes, business_units FROM nhi_api_keys FINAL ORDER BY created_at',
    row: storedKeyRow,
  })
  if (rows.length > 0) {
    return {
      store: KeyStore.fromEntries(
        rows.map((r) => ({ name: r.name, sha256: r.sha256, scopes: r.scopes, business_units: r.business_units.length > 0 ? r.business_units : undefined })),
      ),
    }
  }
  const newKey = generateKey()
  const entry = { name: 'admin (generated at first start)', sha256: sha256(newKey).toString('hex'), scopes: ['admin' as const] }
  await client.insert({ table: 'nhi_api_keys', values: [{ ...entry, business_units: [] }], format: 'JSONEachRow' })
  return { store: KeyStore.fromEntries([entry]), newKey }
}
