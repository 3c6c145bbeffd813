/**
 * Numbered DDL files under ./migrations, applied once each and recorded in
 * `nhi_schema_migrations`. Every statement is idempotent (IF NOT EXISTS), so
 * a start-up that dies half-way simply applies the rest next time. A file
 * that changed after it was applied stops start-up: shipped migrations are
 * never edited, a new one is added instead.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** One migration file. */
export interface Migration {
  version: number
  name: string
  statements: string[]
  checksum: string
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

/** Reads the migration files in version order. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => MIGRATION_FILE.test(file))
    .sort()
    .map((file) => {
      const [, version, name] = MIGRATION_FILE.exec(file)!
      const sql = readFileSync(`${dir}${file}`, 'utf8')
      return {
        version: Number(version),
        name: name!,
        statements: splitStatements(sql),
        checksum: createHash('sha256').update(sql).digest('hex'),
      }
    })
}

/** Options for the cluster form of the schema. */
export interface ClusterOptions {
  /** Cluster name from the server's `remote_servers` configuration. */
  cluster: string
}

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS (\w+)\s*\(/
const CREATE_VIEW = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS/
const ENGINE = /ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?/
/**
 * Shard key columns, by preference. Rows that must meet to be replaced or
 * deduplicated (copies of a span; recomputations of a rollup row; versions
 * of an inventory entry or statement) share the key, so they land on one
 * shard where ReplacingMergeTree can merge them.
 */
const SHARD_KEY_COLUMNS = ['TraceId', 'trace_id', 'nhi_id', 'id', 'period', 'sha256']

/**
 * Rewrites single-node DDL into the scale-out form: every table becomes a
 * `<name>_local` table with a Replicated engine on each shard plus a
 * Distributed `<name>` over it (sharded by trace id, identity or period, so
 * the rows that replace each other meet on one shard), and every materialized view reads
 * and writes the local tables. All statements run ON CLUSTER.
 */
export function toClusterStatements(statement: string, { cluster }: ClusterOptions): string[] {
  if (!/^[A-Za-z0-9_]+$/.test(cluster)) throw new Error(`invalid cluster name: ${JSON.stringify(cluster)}`)
  const onCluster = `ON CLUSTER ${cluster}`
  const table = CREATE_TABLE.exec(statement)
  if (table) {
    const name = table[1]!
    const local = `${name}_local`
    // A Null table stores nothing: each node keeps its own, and views on it
    // run where the insert lands, so it needs neither replication nor a
    // Distributed table.
    if (/ENGINE = Null\b/.test(statement)) return [statement.replace(CREATE_TABLE, `CREATE TABLE IF NOT EXISTS ${local} ${onCluster} (`)]
    const engine = ENGINE.exec(statement)
    if (!engine) throw new Error(`table ${name} has no MergeTree engine to replicate`)
    const [whole, family = '', args] = engine
    const replicatedArgs = [`'/clickhouse/tables/{shard}/{database}/${local}'`, `'{replica}'`, ...(args ? [args] : [])].join(', ')
    const localDdl = statement
      .replace(CREATE_TABLE, `CREATE TABLE IF NOT EXISTS ${local} ${onCluster} (`)
      .replace(whole, `ENGINE = Replicated${family}MergeTree(${replicatedArgs})`)
    const shardColumn = SHARD_KEY_COLUMNS.find((column) => new RegExp(`^\\s*${column} `, 'm').test(statement))
    const shardKey = shardColumn ? `cityHash64(${shardColumn})` : 'rand()'
    const distributed = `CREATE TABLE IF NOT EXISTS ${name} ${onCluster} AS ${local}\nENGINE = Distributed(${cluster}, currentDatabase(), ${local}, ${shardKey})`
    return [localDdl, distributed]
  }
  const view = CREATE_VIEW.exec(statement)
  if (view) {
    const [, name, target] = view
    const rewritten = statement
      .replace(CREATE_VIEW, `CREATE MATERIALIZED VIEW IF NOT EXISTS ${name} ${onCluster} TO ${target}_local AS`)
      .replace(/\bFROM (\w+)\b/g, (_m, source: string) => `FROM ${source}_local`)
    return [rewritten]
  }
  if (/^DROP VIEW IF EXISTS (\w+)$/.test(statement)) {
    return [`${statement} ${onCluster}`]
  }
  const dropped = /^DROP TABLE IF EXISTS (\w+)$/.exec(statement)
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
  return cluster ? statements.flatMap((s) => toClusterStatements(s, cluster)) : statements
}

const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS nhi_schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3) DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version`

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
  const result = await client.query({ query: 'SELECT version, checksum FROM nhi_schema_migrations', format: 'JSONEachRow' })
  const applied = new Map((await result.json<{ version: number; checksum: string }>()).map((r) => [Number(r.version), r.checksum]))
  const appliedNow: number[] = []
  for (const migration of migrations) {
    const recorded = applied.get(migration.version)
    if (recorded !== undefined) {
      if (recorded !== migration.checksum) {
        throw new Error(
          `migration ${migration.version}_${migration.name} changed after it was applied; shipped migrations are never edited, add a new one`,
        )
      }
      continue
    }
    for (const statement of migration.statements) {
      for (const sql of options.cluster ? toClusterStatements(statement, options.cluster) : [statement]) {
        await client.command({ query: sql })
      }
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
