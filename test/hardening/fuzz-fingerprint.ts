/**
 * A fingerprint of everything stored in a data directory: per table, its
 * row count and the sum of cityHash64 over all its columns (order-free, so
 * background merges that only reorder parts do not change it; replacing
 * engines are read with FINAL). Run with the service stopped, since one
 * process holds an embedded data directory at a time:
 *
 *   node --conditions=nhi-meter-source --import tsx test/hardening/fuzz-fingerprint.ts <data dir>
 *
 * prints one JSON object { table: { rows, hash } }.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { openStorage } from '../../query-service/src/storage/client.js'
import { REPO_ROOT } from '../helpers/service.js'

/** Per table: rows and content hash. */
export type Fingerprint = Record<string, { rows: string; hash: string }>

async function fingerprint(dataDir: string): Promise<Fingerprint> {
  const client = await openStorage({ kind: 'embedded', dataDir })
  try {
    const tables = await (
      await client.query({
        query: "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND engine NOT IN ('View', 'MaterializedView') ORDER BY name",
        format: 'JSONEachRow',
      })
    ).json<{ name: string; engine: string }>()
    const result: Fingerprint = {}
    for (const { name, engine } of tables) {
      const final = /^(Replacing|Collapsing|VersionedCollapsing|Aggregating|Summing)MergeTree$/.test(engine) ? 'FINAL' : ''
      const [row] = await (
        await client.query({ query: `SELECT toString(count()) AS rows, toString(sum(cityHash64(*))) AS hash FROM \`${name.replace(/`/g, '``')}\` ${final}`, format: 'JSONEachRow' })
      ).json<{ rows: string; hash: string }>()
      result[name] = row!
    }
    return result
  } finally {
    await client.close()
  }
}

/** Fingerprints `dataDir` in a child process (the test process may not open the embedded engine). */
export function fingerprintDataDir(dataDir: string): Promise<Fingerprint> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=nhi-meter-source', '--import', 'tsx', fileURLToPath(import.meta.url), dataDir], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`fingerprint of ${dataDir} failed (exit ${code}):\n${err}`))
      resolve(JSON.parse(out.trim().split('\n').pop()!) as Fingerprint)
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dataDir = process.argv[2]
  if (!dataDir) throw new Error('usage: fuzz-fingerprint.ts <data dir>')
  process.stdout.write(`${JSON.stringify(await fingerprint(dataDir))}\n`)
}
