/**
 * Numbered DDL files under ./migrations, applied once each and recorded in
 * `nhi_schema_migrations`. Every statement is idempotent (IF NOT EXISTS, IF
 * EXISTS), so a start-up that dies half-way simply applies the rest next
 * time. A file whose SQL changed after it was applied stops start-up:
 * shipped migrations are never edited, a new one is added instead. Their
 * `--` comment lines are never executed, so they may be corrected (see
 * migrations/README.md).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { readRows } from './read.js'

/** One migration file. */
export interface Migration {
  version: number
  name: string
  statements: string[]
  /** SHA-256 of the statements as executed (comment lines left out); recorded when the migration is applied. */
  checksum: string
  /** SHA-256 of the whole file, comments included: what was recorded before comments stopped counting. */
  textChecksum: string
}

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/

/** Splits a SQL file into statements: each ends with `;` at the end of a line; `--` comment lines are dropped. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;[ \t]*$/m)
    .map((chunk) =>
      chunk
        .split('\n')
        .filter((line) => !/^\s*--/.test(line))
        .join('\n')
        .trim(),
    )
    .filter((statement) => statement.length > 0)
}

/**
 * Whole-file checksums that deployments recorded for an earlier text of a
 * migration whose comment lines were corrected since, each mapped to the
 * statements checksum of that earlier text. A database that recorded one
 * still starts as long as the file's statements are unchanged. Add an entry
 * (the old `textChecksum` and its `checksum`) whenever a comment in a
 * migration shipped before statement checksums is corrected.
 */
export const EARLIER_TEXT_CHECKSUMS: Readonly<Record<string, string>> = {
  // 0001_otel_traces: its header named clickhouseexporter v0.165 instead of the pinned v0.161.0.
  '558df1e780343911e6752d4d644051bd34a58c437d32bb1344e86064ac5fce1d': '3e0d1067aa69d76a25a36b051d35dd56a536f6537b67698d1f7f4b318da0b347',
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Reads one migration's SQL text into its statements and checksums. */
export function parseMigration(version: number, name: string, sql: string): Migration {
  const statements = splitStatements(sql)
  // Statements are joined with a terminator that none of them can contain at
  // a line end, so moving text across a statement boundary changes the sum.
  return { version, name, statements, checksum: sha256(statements.join(';\n')), textChecksum: sha256(sql) }
}

/** Whether a checksum recorded in `nhi_schema_migrations` is one this migration's current file still matches. */
export function matchesRecorded(migration: Migration, recorded: string): boolean {
  return recorded === migration.checksum || recorded === migration.textChecksum || EARLIER_TEXT_CHECKSUMS[recorded] === migration.checksum
}

/** Reads the migration files in version order. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => MIGRATION_FILE.test(file))
    .sort()
    .map((file) => {
      const [, version, name] = MIGRATION_FILE.exec(file)!
      return parseMigration(Number(version), name!, readFileSync(`${dir}${file}`, 'utf8'))
    })
}

/** Options for the cluster form of the schema. */
export interface ClusterOptions {
  /** Cluster name from the server's `remote_servers` configuration. */
  cluster: string
}

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS (\w+)\s*\(/
const CREATE_VIEW = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS/
const RENAME_TABLE = /^RENAME TABLE (IF EXISTS )?(\w+) TO (\w+)$/
const DROP_TABLE = /^DROP TABLE IF EXISTS (\w+)$/
const ENGINE = /ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?/
const NULL_ENGINE = /ENGINE = Null\b/
/**
 * Shard key columns, by preference. Rows that must meet to be replaced or
 * deduplicated (copies of a span; recomputations of a rollup row; versions
 * of an inventory entry or statement) share the key, so they land on one
 * shard where ReplacingMergeTree can merge them.
 */
const SHARD_KEY_COLUMNS = ['TraceId', 'trace_id', 'nhi_id', 'id', 'period', 'sha256']

/** The shard key of a table's Distributed table, from the columns its CREATE TABLE statement names. */
function shardKeyOf(createTable: string): string {
  const shardColumn = SHARD_KEY_COLUMNS.find((column) => new RegExp(`^\\s*${column} `, 'm').test(createTable))
  return shardColumn ? `cityHash64(${shardColumn})` : 'rand()'
}

/** The Distributed `<name>` over `<name>_local` on every node. */
function distributedTable(name: string, cluster: string, shardKey: string): string {
  const local = `${name}_local`
  return `CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER ${cluster} AS ${local}\nENGINE = Distributed(${cluster}, currentDatabase(), ${local}, ${shardKey})`
}

/**
 * The CREATE TABLE statement (single-node form) of each table that the
 * statements so far leave, by its current name: what the cluster form of a
 * later statement needs to know about a table it does not create itself.
 */
export type TableDefinitions = Map<string, string>

/** Follows one single-node statement's effect on `tables`: a table created, renamed or dropped. */
export function trackTables(tables: TableDefinitions, statement: string): void {
  const created = CREATE_TABLE.exec(statement)
  // IF NOT EXISTS: a table that exists keeps its first definition.
  if (created && !tables.has(created[1]!)) tables.set(created[1]!, statement)
  const renamed = RENAME_TABLE.exec(statement)
  if (renamed && tables.has(renamed[2]!)) {
    tables.set(renamed[3]!, tables.get(renamed[2]!)!)
    tables.delete(renamed[2]!)
  }
  const dropped = DROP_TABLE.exec(statement)
  if (dropped) tables.delete(dropped[1]!)
}

/**
 * Rewrites single-node DDL into the scale-out form: every table becomes a
 * `<name>_local` table with a Replicated engine on each shard plus a
 * Distributed `<name>` over it (sharded by trace id, identity or period, so
 * the rows that replace each other meet on one shard), and every materialized view reads
 * and writes the local tables. All statements run ON CLUSTER. A rename needs
 * the renamed table's definition from `tables` (see {@link trackTables}).
 */
export function toClusterStatements(statement: string, { cluster }: ClusterOptions, tables: ReadonlyMap<string, string> = new Map()): string[] {
  if (!/^[A-Za-z0-9_]+$/.test(cluster)) throw new Error(`invalid cluster name: ${JSON.stringify(cluster)}`)
  const onCluster = `ON CLUSTER ${cluster}`
  const table = CREATE_TABLE.exec(statement)
  if (table) {
    const name = table[1]!
    const local = `${name}_local`
    // A Null table stores nothing: each node keeps its own, and views on it
    // run where the insert lands, so it needs neither replication nor a
    // Distributed table.
    if (NULL_ENGINE.test(statement)) return [statement.replace(CREATE_TABLE, `CREATE TABLE IF NOT EXISTS ${local} ${onCluster} (`)]
    const engine = ENGINE.exec(statement)
    if (!engine) throw new Error(`table ${name} has no MergeTree engine to replicate`)
    const [whole, family = '', args] = engine
    const replicatedArgs = [`'/clickhouse/tables/{shard}/{database}/${local}'`, `'{replica}'`, ...(args ? [args] : [])].join(', ')
    const localDdl = statement
      .replace(CREATE_TABLE, `CREATE TABLE IF NOT EXISTS ${local} ${onCluster} (`)
      .replace(whole, `ENGINE = Replicated${family}MergeTree(${replicatedArgs})`)
    return [localDdl, distributedTable(name, cluster, shardKeyOf(statement))]
  }
  const view = CREATE_VIEW.exec(statement)
  if (view) {
    const [, name, target] = view
    const rewritten = statement
      .replace(CREATE_VIEW, `CREATE MATERIALIZED VIEW IF NOT EXISTS ${name} ${onCluster} TO ${target}_local AS`)
      .replace(/\bFROM (\w+)\b/g, (_m, source: string) => `FROM ${source}_local`)
    return [rewritten]
  }
  const renamed = RENAME_TABLE.exec(statement)
  if (renamed) {
    const [, ifExists = '', from, to] = renamed
    const created = tables.get(from!)
    if (!created) throw new Error(`no cluster form for renaming ${from}: no earlier statement creates it`)
    const renameLocal = `RENAME TABLE ${ifExists}${from}_local TO ${to}_local ${onCluster}`
    if (NULL_ENGINE.test(created)) return [renameLocal]
    // The Distributed table names its local table in its engine, so it is
    // replaced rather than renamed: dropped first, while the local table it
    // sends to still has the old name (a drop flushes rows still queued for
    // the shards, the engine's flush_on_detach), then created again over the
    // renamed local table with the key it was created with. The Replicated
    // table keeps its replication path, which names it as it was created.
    return [`DROP TABLE IF EXISTS ${from} ${onCluster}`, renameLocal, distributedTable(to!, cluster, shardKeyOf(created))]
  }
  if (/^DROP VIEW IF EXISTS (\w+)$/.test(statement)) {
    return [`${statement} ${onCluster}`]
  }
  const dropped = DROP_TABLE.exec(statement)
  if (dropped) {
    // The Distributed table and the local one behind it.
    return [`${statement} ${onCluster}`, `DROP TABLE IF EXISTS ${dropped[1]}_local ${onCluster}`]
  }
  if (/^ALTER TABLE (\w+)/.test(statement)) {
    const local = statement.replace(/^ALTER TABLE (\w+)/, `ALTER TABLE $1_local ${onCluster}`)
    // A new column must reach the Distributed table too, or reads through it cannot name it.
    return /^ALTER TABLE \w+ ADD COLUMN /.test(statement) ? [local, statement.replace(/^ALTER TABLE (\w+)/, `ALTER TABLE $1 ${onCluster}`)] : [local]
  }
  throw new Error(`no cluster form for statement: ${statement.slice(0, 80)}`)
}

/** The full schema as SQL statements, single-node or in cluster form. */
export function schemaStatements(cluster?: ClusterOptions, migrations: Migration[] = loadMigrations()): string[] {
  const statements = migrations.flatMap((m) => m.statements)
  if (!cluster) return statements
  const tables: TableDefinitions = new Map()
  return statements.flatMap((s) => {
    const rewritten = toClusterStatements(s, cluster, tables)
    trackTables(tables, s)
    return rewritten
  })
}

const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS nhi_schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3) DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version`

/** A row of nhi_schema_migrations: the version (UInt32, a JSON number) and its checksum. */
const appliedMigrationRow = z.object({ version: z.number(), checksum: z.string() })

/** Applies every migration not yet recorded; returns the versions applied now. */
export async function migrate(client: ClickHouseClient, options: { cluster?: ClusterOptions; migrations?: Migration[] } = {}): Promise<number[]> {
  const migrations = options.migrations ?? loadMigrations()
  const ledger = options.cluster
    ? LEDGER_DDL.replace('nhi_schema_migrations (', `nhi_schema_migrations ON CLUSTER ${options.cluster.cluster} (`).replace(
        'ENGINE = MergeTree',
        `ENGINE = ReplicatedMergeTree('/clickhouse/tables/{database}/nhi_schema_migrations', '{replica}')`,
      )
    : LEDGER_DDL
  await client.command({ query: ledger })
  const ledgerRows = await readRows(client, { query: 'SELECT version, checksum FROM nhi_schema_migrations', row: appliedMigrationRow })
  const applied = new Map(ledgerRows.map((r) => [r.version, r.checksum]))
  const appliedNow: number[] = []
  // The tables as every migration before the current one left them, applied or not (for the cluster form of a rename).
  const tables: TableDefinitions = new Map()
  for (const migration of migrations) {
    const recorded = applied.get(migration.version)
    if (recorded !== undefined) {
      if (!matchesRecorded(migration, recorded)) {
        throw new Error(
          `migration ${migration.version}_${migration.name} changed after it was applied; shipped migrations are never edited, add a new one`,
        )
      }
      for (const statement of migration.statements) trackTables(tables, statement)
      continue
    }
    for (const statement of migration.statements) {
      for (const sql of options.cluster ? toClusterStatements(statement, options.cluster, tables) : [statement]) {
        await client.command({ query: sql })
      }
      trackTables(tables, statement)
    }
    await client.insert({
      table: 'nhi_schema_migrations',
      values: [{ version: migration.version, name: migration.name, checksum: migration.checksum }],
      format: 'JSONEachRow',
    })
    appliedNow.push(migration.version)
  }
  return appliedNow
}
