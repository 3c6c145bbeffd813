import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { tempDataDir } from '../../../test/helpers/service.js'
import { openStorage } from './client.js'
import { EARLIER_TEXT_CHECKSUMS, loadMigrations, migrate, schemaStatements, splitStatements } from './migrations.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
const OTEL_TRACES = '0001_otel_traces.sql'
/** The header line 0001 shipped with, before it named the pinned exporter version. */
const SHIPPED_0001_LINE = '-- (v0.165, internal/sqltemplates/traces_table.sql)'

/** A copy of the migrations directory with one file's text rewritten; returns the directory, as `loadMigrations` takes it. */
function migrationsWith(file: string, edit: (sql: string) => string): string {
  const dir = join(tempDataDir('nhi-meter-migrations-'), 'migrations/')
  cpSync(MIGRATIONS_DIR, dir, { recursive: true })
  writeFileSync(join(dir, file), edit(readFileSync(join(dir, file), 'utf8')))
  return dir
}

/** 0001 as it shipped: the current file with its second line put back. */
const shipped0001 = (sql: string): string => sql.replace(/^(.*\n)(.*)\n/, `$1${SHIPPED_0001_LINE}\n`)

/** Migrates a fresh database as releases before statement checksums did: the whole file's checksum is recorded. */
async function migratedWithTextChecksums(dir: string) {
  const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
  await migrate(client, { migrations: loadMigrations(dir).map((m) => ({ ...m, checksum: m.textChecksum })) })
  return client
}

const recordedChecksums = async (client: Awaited<ReturnType<typeof openStorage>>) =>
  new Map(
    (await (await client.query({ query: 'SELECT version, checksum FROM nhi_schema_migrations', format: 'JSONEachRow' })).json<{ version: number; checksum: string }>()).map(
      (r) => [Number(r.version), r.checksum],
    ),
  )

describe('migrations', () => {
  it('apply once, are recorded, and are safe on every restart', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      const first = await migrate(client)
      expect(first).toEqual(loadMigrations().map((m) => m.version))
      expect(await migrate(client)).toEqual([])
      const tables = await (await client.query({ query: 'SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name', format: 'JSONEachRow' })).json<{ name: string }>()
      // Migration 0022 replaced the first derivation view.
      expect(tables.map((t) => t.name)).not.toContain('nhi_activity_mv')
      // Migration 0024 replaced the usage rollup of 0005 with the usage summary.
      for (const retired of ['nhi_usage_rollup', 'nhi_usage_rolled', 'nhi_usage_rollup_runs']) expect(tables.map((t) => t.name)).not.toContain(retired)
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['nhi_usage_summary', 'nhi_usage_summarized', 'nhi_usage_summary_runs']))
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['otel_traces', 'nhi_activity', 'nhi_span_derivation_mv', 'nhi_ledger_settled_mv', 'nhi_trace_pending_mv', 'nhi_api_keys', 'nhi_schema_migrations']))
    } finally {
      await client.close()
    }
  })

  it('refuse to start when a shipped migration was edited', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      const migrations = loadMigrations()
      await migrate(client, { migrations })
      const edited = migrations.map((m, i) => (i === 0 ? { ...m, checksum: 'edited' } : m))
      await expect(migrate(client, { migrations: edited })).rejects.toThrow(/changed after it was applied/)
    } finally {
      await client.close()
    }
  })

  it('record the checksum of the statements as executed, so a corrected comment does not stop start-up', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      await migrate(client)
      const current = loadMigrations()
      expect(await recordedChecksums(client)).toEqual(new Map(current.map((m) => [m.version, m.checksum])))
      const recommented = migrationsWith('0024_usage_summary.sql', (sql) => `-- A comment added after the migration shipped.\n${sql.replace(/^--.*$/m, '-- reworded')}`)
      expect(loadMigrations(recommented).find((m) => m.version === 24)!.textChecksum).not.toBe(current.find((m) => m.version === 24)!.textChecksum)
      expect(await migrate(client, { migrations: loadMigrations(recommented) })).toEqual([])
    } finally {
      await client.close()
    }
  })

  it('still start on a database migrated with the text 0001 shipped with, after its exporter version comment was corrected', async () => {
    const shippedDir = migrationsWith(OTEL_TRACES, shipped0001)
    const shipped = loadMigrations(shippedDir).find((m) => m.version === 1)!
    // The line put back is really the shipped one: its whole-file checksum is the one deployments recorded.
    expect(EARLIER_TEXT_CHECKSUMS[shipped.textChecksum]).toBe(shipped.checksum)
    const client = await migratedWithTextChecksums(shippedDir)
    try {
      expect((await recordedChecksums(client)).get(1)).toBe(shipped.textChecksum)
      expect(await migrate(client)).toEqual([])
    } finally {
      await client.close()
    }
  })

  it('still start on a database that recorded whole-file checksums of unchanged files', async () => {
    const client = await migratedWithTextChecksums(MIGRATIONS_DIR)
    try {
      expect(await migrate(client)).toEqual([])
    } finally {
      await client.close()
    }
  })

  it('refuse a change to a shipped migration’s SQL, whichever checksum the database recorded', async () => {
    const changedSql = (sql: string) => sql.replace('TraceState String CODEC(ZSTD(3))', 'TraceState String CODEC(ZSTD(1))')
    const changed = loadMigrations(migrationsWith(OTEL_TRACES, changedSql))
    expect(changed[0]!.statements).not.toEqual(loadMigrations()[0]!.statements)
    for (const migratedFrom of [migrationsWith(OTEL_TRACES, shipped0001), MIGRATIONS_DIR]) {
      const client = await migratedWithTextChecksums(migratedFrom)
      try {
        await expect(migrate(client, { migrations: changed })).rejects.toThrow(/migration 1_otel_traces changed after it was applied/)
      } finally {
        await client.close()
      }
    }
    const current = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      await migrate(current)
      await expect(migrate(current, { migrations: changed })).rejects.toThrow(/changed after it was applied/)
      // Two statements run as one is a change too, though only a `;` went.
      const merged = loadMigrations(migrationsWith('0024_usage_summary.sql', (sql) => sql.replace(/;[ \t]*\n/, '\n')))
      await expect(migrate(current, { migrations: merged })).rejects.toThrow(/24_usage_summary changed/)
    } finally {
      await current.close()
    }
  })

  it('create otel_traces with the clickhouseexporter column layout', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      await migrate(client)
      const columns = await (
        await client.query({ query: "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'otel_traces' ORDER BY position", format: 'JSONEachRow' })
      ).json<{ name: string; type: string }>()
      expect(columns.map((c) => `${c.name} ${c.type}`)).toEqual([
        'Timestamp DateTime64(9)',
        'TraceId String',
        'SpanId String',
        'ParentSpanId String',
        'TraceState String',
        'SpanName LowCardinality(String)',
        'SpanKind LowCardinality(String)',
        'ServiceName LowCardinality(String)',
        'ResourceAttributes Map(LowCardinality(String), String)',
        'ScopeName String',
        'ScopeVersion String',
        'SpanAttributes Map(LowCardinality(String), String)',
        'Duration UInt64',
        'StatusCode LowCardinality(String)',
        'StatusMessage String',
        'Events.Timestamp Array(DateTime64(9))',
        'Events.Name Array(LowCardinality(String))',
        'Events.Attributes Array(Map(LowCardinality(String), String))',
        'Links.TraceId Array(String)',
        'Links.SpanId Array(String)',
        'Links.TraceState Array(String)',
        'Links.Attributes Array(Map(LowCardinality(String), String))',
      ])
    } finally {
      await client.close()
    }
  })

  it('split files into statements and drop comment lines', () => {
    expect(splitStatements('-- a comment\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n')).toEqual(['CREATE TABLE a (x UInt8) ENGINE = Memory', 'SELECT 1'])
  })
})

describe('the cluster form of the schema', () => {
  const statements = schemaStatements({ cluster: 'nhi' })

  it('creates every table as a replicated local table plus a Distributed table sharded by trace id', () => {
    const traces = statements.find((s) => s.startsWith('CREATE TABLE IF NOT EXISTS otel_traces_local'))!
    expect(traces).toContain('ON CLUSTER nhi')
    expect(traces).toContain("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/otel_traces_local', '{replica}')")
    expect(statements).toContain('CREATE TABLE IF NOT EXISTS otel_traces ON CLUSTER nhi AS otel_traces_local\nENGINE = Distributed(nhi, currentDatabase(), otel_traces_local, cityHash64(TraceId))')
    const ledger = statements.find((s) => s.startsWith('CREATE TABLE IF NOT EXISTS nhi_activity_local'))!
    expect(ledger).toContain("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/nhi_activity_local', '{replica}')")
    expect(statements).toContain('CREATE TABLE IF NOT EXISTS nhi_activity ON CLUSTER nhi AS nhi_activity_local\nENGINE = Distributed(nhi, currentDatabase(), nhi_activity_local, cityHash64(trace_id))')
  })

  it('shards tables whose rows replace each other by the key they are replaced on', () => {
    // The table as the schema ends (0026 recreated the usage summary's tables).
    const distributed = (name: string) => statements.findLast((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER`))!
    expect(distributed('nhi_inventory')).toContain('cityHash64(id)')
    expect(distributed('nhi_usage_summary')).toContain('cityHash64(nhi_id)')
    expect(distributed('nhi_usage_summarized')).toContain('cityHash64(period)')
    expect(distributed('nhi_statements')).toContain('cityHash64(period)')
  })

  it('points materialized views at the local tables on each shard', () => {
    const view = statements.find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_activity_mv'))!
    expect(view).toContain('ON CLUSTER nhi TO nhi_activity_local AS')
    expect(view).toContain('FROM otel_traces_local')
    expect(view).not.toMatch(/FROM otel_traces\s/)
    const settled = statements.find((s) => s.startsWith('CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_ledger_settled_mv'))!
    expect(settled).toContain('ON CLUSTER nhi TO nhi_activity_local AS')
    expect(settled).toContain('FROM nhi_span_derivation_local')
    for (const s of statements) expect(s).not.toContain('_local_local')
  })

  it('keeps a Null table on each node without a Distributed table over it, and drops views on every node', () => {
    const nulls = statements.filter((s) => /nhi_span_derivation(_local)? /.test(s) && s.startsWith('CREATE TABLE'))
    expect(nulls).toHaveLength(1)
    expect(nulls[0]).toMatch(/^CREATE TABLE IF NOT EXISTS nhi_span_derivation_local ON CLUSTER nhi \(/)
    expect(nulls[0]).toContain('ENGINE = Null')
    expect(statements).toContain('DROP VIEW IF EXISTS nhi_activity_mv ON CLUSTER nhi')
  })

  it('drops the retired usage rollup tables on every node, local and distributed', () => {
    for (const retired of ['nhi_usage_rollup', 'nhi_usage_rolled', 'nhi_usage_rollup_runs']) {
      expect(statements).toContain(`DROP TABLE IF EXISTS ${retired} ON CLUSTER nhi`)
      expect(statements).toContain(`DROP TABLE IF EXISTS ${retired}_local ON CLUSTER nhi`)
    }
  })

  it('runs every statement ON CLUSTER and refuses an unsafe cluster name', () => {
    for (const s of statements) expect(s).toContain('ON CLUSTER nhi')
    expect(() => schemaStatements({ cluster: "x'; DROP TABLE otel_traces; --" })).toThrow(/invalid cluster name/)
  })
})
