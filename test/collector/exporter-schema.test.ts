/**
 * The Collector writes with `create_schema: false`, so its INSERTs land in the
 * otel_traces table that query-service's migrations create. There is no
 * ClickHouse server in CI, but the embedded engine runs the same DDL: this
 * creates the table exactly as the pinned clickhouseexporter would (from its
 * own SQL template, read from the Go module the Collector is built from) next
 * to ours, and compares them column by column, and checks every column the
 * exporter INSERTs exists in ours.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { openStorage } from '../../query-service/src/storage/client.js'
import { migrate } from '../../query-service/src/storage/migrations.js'
import { REPO_ROOT, tempDataDir } from '../helpers/service.js'
import { goModuleDir } from './collector.js'

const EXPORTER_MODULE = 'github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter'
const manifest = parse(readFileSync(join(REPO_ROOT, 'collector-config/builder.yaml'), 'utf8')) as { exporters: { gomod: string }[] }
const exporterVersion = manifest.exporters.map((e) => e.gomod.split(' ')).find(([path]) => path === EXPORTER_MODULE)![1]!
const exporterSource = goModuleDir(EXPORTER_MODULE, exporterVersion)
if (exporterSource.skipReason) console.warn(`test/collector/exporter-schema.test.ts: skipped. ${exporterSource.skipReason}`)

interface Column {
  name: string
  type: string
}

describe.skipIf(!exporterSource.dir)(`otel_traces against clickhouseexporter ${exporterVersion}`, () => {
  let client: ClickHouseClient
  const templates = join(exporterSource.dir ?? '', 'internal/sqltemplates')
  const describeTable = async (table: string): Promise<Column[]> =>
    (await (await client.query({ query: `DESCRIBE TABLE ${table}`, format: 'JSONEachRow' })).json<Column>()).map(({ name, type }) => ({ name, type }))

  beforeAll(async () => {
    client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
    await migrate(client)
    // The exporter's template is a Go format string: database, table, ON CLUSTER, engine, TTL.
    const exporterDdl = readFileSync(join(templates, 'traces_table.sql'), 'utf8')
      .replace('%q.%q %s', 'exporter_otel_traces')
      .replace('ENGINE = %s', 'ENGINE = MergeTree()')
      .replace(/^%s$/m, '')
    expect(exporterDdl).not.toContain('%')
    await client.command({ query: exporterDdl })
  })

  afterAll(async () => {
    await client?.close()
  })

  it('has exactly the columns, types and order of the table the exporter would create', async () => {
    const ours = await describeTable('otel_traces')
    expect(ours.length).toBeGreaterThan(0)
    expect(ours).toEqual(await describeTable('exporter_otel_traces'))
  })

  it('has every column the exporter INSERTs', async () => {
    const insert = readFileSync(join(templates, 'traces_insert.sql'), 'utf8')
    const inserted = /\(([^)]*)\)\s*VALUES/.exec(insert)![1]!.split(',').map((c) => c.trim())
    expect(inserted).toContain('Events.Attributes')
    const ours = new Set((await describeTable('otel_traces')).map((c) => c.name))
    for (const column of inserted) expect(ours.has(column), column).toBe(true)
  })
})
