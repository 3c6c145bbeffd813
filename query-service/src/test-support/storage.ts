/** An embedded ClickHouse for a test: a temp directory with the schema applied. */
import type { ClickHouseClient } from '@clickhouse/client'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStorage } from '../storage/client.js'
import { migrate } from '../storage/migrations.js'

/** Opens a fresh embedded ClickHouse with the schema applied. */
export async function freshStorage(): Promise<ClickHouseClient> {
  const client = await openStorage({ kind: 'embedded', dataDir: mkdtempSync(join(tmpdir(), 'nhi-meter-unit-')) })
  await migrate(client)
  return client
}
