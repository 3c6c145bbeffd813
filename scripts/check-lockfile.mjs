#!/usr/bin/env node
// Some packages list platform-only optional dependencies that the npm registry
// we use does not serve: chdb's engines for macOS and Linux arm64, vite's
// Windows helper. `npm install` then leaves them out of package-lock.json
// and `npm ci` refuses the lockfile ("Missing: @chdb/lib-darwin-arm64 from
// lock file"). Declaring them as optional entries with their os/cpu/libc lets
// `npm ci` pass and still install only what this platform needs.
//
//   node scripts/check-lockfile.mjs         exit 1 if an entry is missing
//   node scripts/check-lockfile.mjs --fix   add the missing entries
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const lockPath = fileURLToPath(new URL('../package-lock.json', import.meta.url))
const lock = JSON.parse(readFileSync(lockPath, 'utf8'))
/** Platform constraints of optional packages the registry does not serve. */
const platforms = {
  '@chdb/lib-darwin-arm64': { os: ['darwin'], cpu: ['arm64'] },
  '@chdb/lib-darwin-x64': { os: ['darwin'], cpu: ['x64'] },
  '@chdb/lib-linux-arm64-gnu': { os: ['linux'], cpu: ['arm64'], libc: ['glibc'] },
  '@chdb/lib-linux-x64-gnu': { os: ['linux'], cpu: ['x64'], libc: ['glibc'] },
  'napi-windows-process-start-time': { os: ['win32'] },
}

if (!lock.packages?.['node_modules/chdb']) {
  console.error('package-lock.json has no node_modules/chdb entry; run npm install first')
  process.exit(1)
}

const missing = []
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`
    const nested = path ? `${path}/node_modules/${name}` : key
    if (lock.packages[key] || lock.packages[nested] || missing.includes(name)) continue
    const platform = platforms[name]
    if (!platform) {
      console.error(`optional dependency ${name} of ${path || 'the root'} has no lock entry and no known platform: add it to scripts/check-lockfile.mjs`)
      process.exit(1)
    }
    missing.push(name)
    lock.packages[key] = { version: range.replace(/^[~^]/, ''), dev: entry.dev || undefined, optional: true, ...platform }
  }
}

if (missing.length === 0) {
  console.log('package-lock.json: every platform-only optional package has an entry')
} else if (process.argv.includes('--fix')) {
  const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))))
  lock.packages = sorted
  writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n')
  console.log(`package-lock.json: added optional entries for ${missing.join(', ')}`)
} else {
  console.error(`package-lock.json lacks ${missing.join(', ')}; run: node scripts/check-lockfile.mjs --fix`)
  process.exit(1)
}
