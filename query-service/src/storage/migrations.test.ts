import { describe, expect, it } from 'vitest'
import { tempDataDir } from '../../../test/helpers/service.js'
import { openStorage } from './client.js'
import { loadMigrations, migrate, schemaStatements, splitStatements } from './migrations.js'

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
    const distributed = (name: string) => statements.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER`))!
    expect(distributed('nhi_inventory')).toContain('cityHash64(id)')
    expect(distributed('nhi_usage_rollup')).toContain('cityHash64(nhi_id)')
    expect(distributed('nhi_usage_rolled')).toContain('cityHash64(period)')
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

  it('runs every statement ON CLUSTER and refuses an unsafe cluster name', () => {
    for (const s of statements) expect(s).toContain('ON CLUSTER nhi')
    expect(() => schemaStatements({ cluster: "x'; DROP TABLE otel_traces; --" })).toThrow(/invalid cluster name/)
  })
})
