/**
 * Runs the benchmarks under bench/: `npm run bench` runs every one in turn,
 * `npm run bench -- ingest billing` runs the named ones. Each benchmark is a
 * script `bench/<name>.ts` that prints its own figures; they run one after
 * another in child processes so one's memory does not skew the next.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const benchDir = fileURLToPath(new URL('.', import.meta.url))
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort()
const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !available.includes(w))
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${available.join(', ')}`)
  process.exit(2)
}
// Each benchmark runs with the V8 flags `npm start` gives the service (its young-generation size), read from
// package.json, so in-process figures are those of the service as users run it.
const startScript = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start
const v8Flags = startScript.split(/\s+/).filter((arg) => /^--max-semi-space-size=\d+$/.test(arg))
let failed = 0
for (const name of wanted.length > 0 ? wanted : available) {
  console.log(`\n=== bench/${name} ===`)
  const result = spawnSync(process.execPath, [...v8Flags, '--conditions=nhi-meter-source', '--import', 'tsx', `${benchDir}${name}.ts`], { stdio: 'inherit' })
  if (result.status !== 0) failed++
}
process.exit(failed > 0 ? 1 : 0)
