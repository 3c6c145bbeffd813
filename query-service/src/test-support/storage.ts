/** An embedded ClickHouse for a test: a temp directory with the schema applied, removed when the client closes. */
import type { ClickHouseClient } from '@clickhouse/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStorage } from '../storage/client.js'
import { migrate } from '../storage/migrations.js'

/** Temp directories of this process not yet removed: removed after each test file (vitest.config.ts's setup file). */
const leftOver = new Set<string>()

/** Removes every directory {@link testTempDir} made that is still there. */
export function removeLeftOverTempDirs(): void {
  for (const dir of leftOver) rmSync(dir, { recursive: true, force: true })
  leftOver.clear()
}

/** Makes a temporary directory that is removed after the test file, if not before. */
export function testTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  leftOver.add(dir)
  return dir
}

/** Removes a directory made by {@link testTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  leftOver.delete(dir)
}

/** Opens a fresh embedded ClickHouse with the schema applied; its directory goes when the client closes. */
export async function freshStorage(): Promise<ClickHouseClient> {
  const dir = testTempDir('nhi-meter-unit-')
  const client = await openStorage({ kind: 'embedded', dataDir: dir })
  const close = client.close.bind(client)
  client.close = async () => {
    await close()
    removeTempDir(dir)
  }
  await migrate(client)
  return client
}
