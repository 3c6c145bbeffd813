import type { ClickHouseClient } from '@clickhouse/client'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { tempDataDir } from '../../../test/helpers/service.js'
import { backfillFindingsDigest } from '../findings/digest.js'
import { use } from '../test-support/findings.js'
import { insertSpans } from '../test-support/spans.js'
import { openStorage } from './client.js'
import { EARLIER_TEXT_CHECKSUMS, loadMigrations, migrate, schemaStatements, splitStatements, toClusterStatements, trackTables, type TableDefinitions } from './migrations.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
const OTEL_TRACES = '0001_otel_traces.sql'
/** The header line 0001 shipped with, before it named the pinned exporter version. */
const SHIPPED_0001_LINE = '-- (v0.165, internal/sqltemplates/traces_table.sql)'
/** The versions from 0030 on: what migrating a database left at 0029 applies. */
const FROM_30 = loadMigrations()
  .map((m) => m.version)
  .filter((v) => v >= 30)

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

/** The names migration 0030 gave up: three derived tables and the views of two of them. */
const RENAMED_IN_0030 = ['nhi_findings_hourly', 'nhi_findings_hourly_mv', 'nhi_findings_daily', 'nhi_findings_daily_mv', 'nhi_usage_summarized']

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
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['nhi_usage_summary', 'nhi_usage_summary_periods', 'nhi_usage_summary_runs']))
      // Migration 0030 renamed the derived tables whose names misled, and their views.
      for (const renamed of RENAMED_IN_0030) expect(tables.map((t) => t.name)).not.toContain(renamed)
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['nhi_identity_hours', 'nhi_identity_hours_mv', 'nhi_identity_days', 'nhi_identity_days_mv']))
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

describe('migration 0030, which renames the derived tables whose names misled', () => {
  const before0030 = () => loadMigrations().filter((m) => m.version < 30)
  const statementsOf0030 = () => loadMigrations().find((m) => m.version === 30)!.statements

  /** A database migrated to 0029 with rows in the three tables: use events through the views, and a summarised day. */
  async function migratedTo0029(): Promise<ClickHouseClient> {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client, { migrations: before0030() })
    await insertSpans(client, [
      use('agent-a', '2026-10-01T10:02:00Z', { credential: 'fp-a' }),
      use('agent-a', '2026-10-01T10:17:00Z', { credential: 'fp-a', status: 'Error' }),
      use('agent-b', '2026-10-02T08:00:00Z', { owner: 'team-b', credential: 'fp-b' }),
    ])
    await client.insert({
      table: 'nhi_usage_summarized',
      values: [{ level: 'day', policy_key: 'cards-1', period: '2026-10-01 00:00:00', summarized_at: '2026-10-02 00:05:00.000' }],
      format: 'JSONEachRow',
    })
    return client
  }

  // FINAL: what the rows say, however the background merges have combined them.
  const rowsOf = async (client: ClickHouseClient, table: string) =>
    (await client.query({ query: `SELECT * FROM ${table} FINAL ORDER BY ALL`, format: 'JSONEachRow' })).json<Record<string, unknown>>()
  const namesIn = async (client: ClickHouseClient) =>
    (await (await client.query({ query: 'SELECT name FROM system.tables WHERE database = currentDatabase()', format: 'JSONEachRow' })).json<{ name: string }>()).map((t) => t.name)
  /** Delivered and failed events of an identity's hour, and the credentials of its day, as the renamed tables hold them. */
  const digestOf = async (client: ClickHouseClient, id: string, hour: string) => {
    const [hours] = await (
      await client.query({
        query: 'SELECT sum(delivered) AS delivered, sum(failed) AS failed FROM nhi_identity_hours WHERE nhi_id = {id:String} AND hour = {hour:DateTime}',
        query_params: { id, hour },
        format: 'JSONEachRow',
      })
    ).json<{ delivered: string; failed: string }>()
    const [days] = await (
      await client.query({
        query: 'SELECT arraySort(groupUniqArrayArray(credentials)) AS credentials FROM nhi_identity_days WHERE nhi_id = {id:String} AND day = toDate({hour:DateTime})',
        query_params: { id, hour },
        format: 'JSONEachRow',
      })
    ).json<{ credentials: string[] }>()
    return { delivered: Number(hours!.delivered), failed: Number(hours!.failed), credentials: days!.credentials }
  }

  it('keeps every row of the three tables under their new names, and the views write to the renamed tables', async () => {
    const client = await migratedTo0029()
    try {
      const before = {
        hours: await rowsOf(client, 'nhi_findings_hourly'),
        days: await rowsOf(client, 'nhi_findings_daily'),
        periods: await rowsOf(client, 'nhi_usage_summarized'),
      }
      expect([before.hours.length, before.days.length, before.periods.length]).toEqual([2, 2, 1])
      expect(await migrate(client)).toEqual(FROM_30)
      for (const renamed of RENAMED_IN_0030) expect(await namesIn(client)).not.toContain(renamed)
      expect(await rowsOf(client, 'nhi_identity_hours')).toEqual(before.hours)
      expect(await rowsOf(client, 'nhi_identity_days')).toEqual(before.days)
      expect(await rowsOf(client, 'nhi_usage_summary_periods')).toEqual(before.periods)
      expect(await digestOf(client, 'agent-a', '2026-10-01 10:00:00')).toEqual({ delivered: 2, failed: 1, credentials: ['fp-a'] })
      // A span inserted the usual way reaches both renamed tables through the new views.
      await insertSpans(client, [use('agent-a', '2026-10-01T10:40:00Z', { credential: 'fp-a2' })])
      expect(await digestOf(client, 'agent-a', '2026-10-01 10:00:00')).toEqual({ delivered: 3, failed: 1, credentials: ['fp-a', 'fp-a2'] })
      // The digest's one-off backfill writes the renamed tables.
      expect(await backfillFindingsDigest(client, { before: new Date(Date.now() + 60_000) })).toBeGreaterThan(0)
      expect((await digestOf(client, 'agent-a', '2026-10-01 10:00:00')).delivered).toBe(6)
    } finally {
      await client.close()
    }
  })

  it('starts again after a start-up that died after any of its statements, and keeps the rows', async () => {
    const statements = statementsOf0030()
    for (let done = 1; done <= statements.length; done++) {
      const client = await migratedTo0029()
      try {
        const hoursBefore = await rowsOf(client, 'nhi_findings_hourly')
        const periodsBefore = await rowsOf(client, 'nhi_usage_summarized')
        for (const statement of statements.slice(0, done)) await client.command({ query: statement })
        // Spans are still taken meanwhile: no view is left writing to a table that was renamed.
        await insertSpans(client, [use('agent-c', '2026-10-03T09:00:00Z', { credential: 'fp-c' })])
        expect(await migrate(client), `after ${done} statements`).toEqual(FROM_30)
        expect(await migrate(client)).toEqual([])
        for (const renamed of RENAMED_IN_0030) expect(await namesIn(client)).not.toContain(renamed)
        expect(await rowsOf(client, 'nhi_identity_hours')).toEqual(expect.arrayContaining(hoursBefore))
        expect(await rowsOf(client, 'nhi_usage_summary_periods')).toEqual(periodsBefore)
        await insertSpans(client, [use('agent-d', '2026-10-03T11:00:00Z', { credential: 'fp-d' })])
        expect(await digestOf(client, 'agent-d', '2026-10-03 11:00:00')).toEqual({ delivered: 1, failed: 0, credentials: ['fp-d'] })
      } finally {
        await client.close()
      }
    }
  })

  it('creates the views again with the SELECT of the migration that last defined each', () => {
    const migrations = loadMigrations()
    const selectOf = (version: number, view: string) =>
      migrations
        .find((m) => m.version === version)!
        .statements.find((s) => s.startsWith(`CREATE MATERIALIZED VIEW IF NOT EXISTS ${view} `))!
        .replace(/^.*\n/, '')
    expect(selectOf(30, 'nhi_identity_hours_mv')).toBe(selectOf(23, 'nhi_findings_hourly_mv'))
    expect(selectOf(30, 'nhi_identity_days_mv')).toBe(selectOf(20, 'nhi_findings_daily_mv'))
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
    expect(distributed('nhi_usage_summary_periods')).toContain('cityHash64(period)')
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

  it('renames a table on every node: the local table renamed, its Distributed table replaced with the key it was created with', () => {
    const at = statements.indexOf('RENAME TABLE IF EXISTS nhi_findings_hourly_local TO nhi_identity_hours_local ON CLUSTER nhi')
    expect(statements.slice(at - 2, at + 3)).toEqual([
      'DROP VIEW IF EXISTS nhi_findings_hourly_mv ON CLUSTER nhi',
      // Dropped while its local table still has the old name, so rows it still queues reach it.
      'DROP TABLE IF EXISTS nhi_findings_hourly ON CLUSTER nhi',
      'RENAME TABLE IF EXISTS nhi_findings_hourly_local TO nhi_identity_hours_local ON CLUSTER nhi',
      'CREATE TABLE IF NOT EXISTS nhi_identity_hours ON CLUSTER nhi AS nhi_identity_hours_local\nENGINE = Distributed(nhi, currentDatabase(), nhi_identity_hours_local, cityHash64(nhi_id))',
      expect.stringMatching(/^CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_identity_hours_mv ON CLUSTER nhi TO nhi_identity_hours_local AS\n[\s\S]*FROM nhi_activity_local\n/),
    ])
    const shardKey = (name: string) => /, (\w+\(\w+\))\)$/.exec(statements.findLast((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER`))!)![1]
    for (const [from, to] of [
      ['nhi_findings_hourly', 'nhi_identity_hours'],
      ['nhi_findings_daily', 'nhi_identity_days'],
      ['nhi_usage_summarized', 'nhi_usage_summary_periods'],
    ] as const) {
      expect(shardKey(to), to).toBe(shardKey(from))
      const rename = statements.indexOf(`RENAME TABLE IF EXISTS ${from}_local TO ${to}_local ON CLUSTER nhi`)
      expect(rename, from).toBeGreaterThan(0)
      // The local table keeps its rows: from the rename on, nothing drops it under either name.
      const drops = statements.slice(rename - 1).filter((s) => s.startsWith(`DROP TABLE IF EXISTS ${from}_local `) || s.startsWith(`DROP TABLE IF EXISTS ${to}_local `))
      expect(drops).toEqual([])
    }
    expect(shardKey('nhi_usage_summary_periods')).toBe('cityHash64(period)')
  })

  it('renames a Null table on each node alone, and refuses to rename a table no earlier statement creates', () => {
    const tables: TableDefinitions = new Map()
    trackTables(tables, 'CREATE TABLE IF NOT EXISTS nhi_scratch (\n    x UInt8\n) ENGINE = Null')
    expect(toClusterStatements('RENAME TABLE IF EXISTS nhi_scratch TO nhi_scratch_2', { cluster: 'nhi' }, tables)).toEqual([
      'RENAME TABLE IF EXISTS nhi_scratch_local TO nhi_scratch_2_local ON CLUSTER nhi',
    ])
    trackTables(tables, 'RENAME TABLE IF EXISTS nhi_scratch TO nhi_scratch_2')
    expect([...tables.keys()]).toEqual(['nhi_scratch_2'])
    expect(() => toClusterStatements('RENAME TABLE IF EXISTS nhi_elsewhere TO nhi_here', { cluster: 'nhi' }, tables)).toThrow(/no earlier statement creates it/)
  })

  it('renames on a cluster that applied the earlier migrations long ago, knowing their tables from the files', async () => {
    // No cluster runs here: a client that records the DDL migrate() sends, with a ledger that lists 0001–0029.
    const applied = loadMigrations().filter((m) => m.version < 30)
    const sent: string[] = []
    const recorder = {
      command: async ({ query }: { query: string }) => void sent.push(query),
      query: async () => ({ json: async () => applied.map((m) => ({ version: m.version, checksum: m.checksum })) }),
      insert: async () => undefined,
    } as unknown as ClickHouseClient
    expect(await migrate(recorder, { cluster: { cluster: 'nhi' } })).toEqual(FROM_30)
    const clusterForm = statements.slice(schemaStatements({ cluster: 'nhi' }, applied).length)
    expect(sent.slice(1)).toEqual(clusterForm)
    expect(sent).toContain('CREATE TABLE IF NOT EXISTS nhi_usage_summary_periods ON CLUSTER nhi AS nhi_usage_summary_periods_local\nENGINE = Distributed(nhi, currentDatabase(), nhi_usage_summary_periods_local, cityHash64(period))')
  })

  it('is ClickHouse SQL the server parses, statement by statement', async () => {
    const client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    try {
      for (const statement of statements) {
        await expect(client.query({ query: 'SELECT formatQuery({statement:String})', query_params: { statement }, format: 'JSONEachRow' }), statement).resolves.toBeDefined()
      }
    } finally {
      await client.close()
    }
  })

  it('runs every statement ON CLUSTER and refuses an unsafe cluster name', () => {
    for (const s of statements) expect(s).toContain('ON CLUSTER nhi')
    expect(() => schemaStatements({ cluster: "x'; DROP TABLE otel_traces; --" })).toThrow(/invalid cluster name/)
  })
})
