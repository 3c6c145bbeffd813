/**
 * Which ClickHouse servers the schema, the API queries and the dashboards are
 * meant for: from the oldest supported (the server docker-compose pins) to
 * the newest tested (the embedded engine every other test runs on). The list
 * in query-service/src/storage/clickhouse-versions.json names each function,
 * setting, format, table engine and piece of syntax the shipped SQL uses with
 * the release it appeared in; this test keeps that list true:
 *
 * - everything the shipped SQL uses is listed, and everything listed is used;
 * - nothing listed is newer than the oldest supported server;
 * - a function's release is the one the engine's own reference gives
 *   (`system.functions.introduced_in`);
 * - a change ClickHouse made after the oldest supported release to a setting
 *   we use (`system.settings_changes`) is acknowledged in the list.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { openStorage } from '../query-service/src/storage/client.js'
import { catalogue, compareReleases, functionOf, shippedSql, usedBy, type EngineCatalogue, type ShippedSql, type Used } from './helpers/clickhouse-sql.js'
import { REPO_ROOT, tempDataDir } from './helpers/service.js'

/** One listed feature: the release it appeared in, why we rely on it, and what changed in it since. */
interface Entry {
  appeared_in: string
  source: string
  note?: string
  /** Changes ClickHouse made after the oldest supported release (`system.settings_changes` versions, for settings). */
  changed_after_oldest?: Record<string, string>
  /** A parameter of the HTTP interface rather than a query setting (not in `system.settings`). */
  http_parameter?: boolean
}

interface SyntaxEntry extends Entry {
  /** Regular expression (source text) that finds the syntax in the shipped SQL. */
  pattern: string
}

interface Versions {
  oldest_supported: string
  newest_tested: string
  functions: Record<string, Entry & { base?: string }>
  settings: Record<string, Entry>
  formats: Record<string, Entry>
  engines: Record<string, Entry>
  syntax: Record<string, SyntaxEntry>
}

const VERSIONS_FILE = 'query-service/src/storage/clickhouse-versions.json'
const versions = JSON.parse(readFileSync(join(REPO_ROOT, VERSIONS_FILE), 'utf8')) as Versions

let client: ClickHouseClient
let engine: EngineCatalogue
let used: Used
let shipped: ShippedSql

beforeAll(async () => {
  client = await openStorage({ kind: 'embedded', dataDir: tempDataDir() })
  engine = await catalogue(client)
  shipped = shippedSql()
  used = usedBy(shipped, engine)
}, 120_000)

afterAll(async () => {
  await client?.close()
})

const listing = (map: Map<string, Set<string>>) => Object.fromEntries([...map].map(([name, files]) => [name, [...files].sort()]))

describe('the ClickHouse versions the schema, API queries and dashboards are meant for', () => {
  it('name as the oldest supported server the image docker-compose pins, and as the newest tested the embedded engine', () => {
    const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string }> }
    const image = Object.values(compose.services).map((s) => s.image ?? '').find((i) => i.startsWith('clickhouse/clickhouse-server:'))
    expect(image?.split(':')[1]?.startsWith(`${versions.oldest_supported}.`), image).toBe(true)
    expect(engine.version.startsWith(`${versions.newest_tested}.`), engine.version).toBe(true)
    expect(compareReleases(versions.oldest_supported, versions.newest_tested)).toBeLessThan(0)
  })

  it('list every ClickHouse function the shipped SQL calls, and no function it does not call', () => {
    const missing = [...used.functions.keys()].filter((name) => !versions.functions[name])
    expect(listing(new Map([...used.functions].filter(([name]) => missing.includes(name)))), `add them to ${VERSIONS_FILE}`).toEqual({})
    expect(Object.keys(versions.functions).filter((name) => !used.functions.has(name)), 'listed but no longer used').toEqual([])
  })

  it('list every setting the shipped SQL and queries set, every format they read or write and every table engine they create', () => {
    for (const kind of ['settings', 'formats', 'engines'] as const) {
      const missing = [...used[kind].keys()].filter((name) => !versions[kind][name])
      expect(listing(new Map([...used[kind]].filter(([name]) => missing.includes(name)))), `${kind} to add to ${VERSIONS_FILE}`).toEqual({})
      expect(Object.keys(versions[kind]).filter((name) => !used[kind].has(name)), `${kind} listed but no longer used`).toEqual([])
    }
    // A setting the engine does not know is a typo or a removed setting, whichever version runs it.
    expect([...used.settings.keys()].filter((name) => !engine.settings.has(name) && !versions.settings[name]?.http_parameter)).toEqual([])
  })

  it('find each listed piece of syntax in the shipped SQL', () => {
    for (const [name, entry] of Object.entries(versions.syntax)) {
      const pattern = new RegExp(entry.pattern)
      expect(shipped.texts.some(({ sql }) => pattern.test(sql)), name).toBe(true)
    }
  })

  it('need nothing newer than the oldest supported server', () => {
    const tooNew = Object.entries({ ...versions.functions, ...versions.settings, ...versions.formats, ...versions.engines, ...versions.syntax })
      .filter(([, entry]) => compareReleases(entry.appeared_in, versions.oldest_supported) > 0)
      .map(([name, entry]) => `${name} (${entry.appeared_in})`)
    expect(tooNew).toEqual([])
    for (const entry of Object.values(versions.syntax)) expect(entry.source).not.toBe('')
  })

  it('record for each function the release the engine’s own reference gives', () => {
    const wrong: string[] = []
    for (const [name, entry] of Object.entries(versions.functions)) {
      const base = functionOf(name, engine)!.base
      const introducedIn = engine.functions.get(base)!.introducedIn.replace(/\.0$/, '')
      if (introducedIn && compareReleases(entry.appeared_in, introducedIn) !== 0) wrong.push(`${name}: listed ${entry.appeared_in}, system.functions says ${introducedIn} (for ${base})`)
    }
    expect(wrong).toEqual([])
  })

  it('acknowledge every change ClickHouse made to a setting we use after the oldest supported release', () => {
    const unacknowledged = engine.settingsChanges
      .filter((change) => used.settings.has(change.name) && compareReleases(change.version, versions.oldest_supported) > 0)
      .filter((change) => !versions.settings[change.name]?.changed_after_oldest?.[change.version])
      .map((change) => `${change.name} in ${change.version}: ${change.previous} -> ${change.next} (${change.reason})`)
    expect(unacknowledged).toEqual([])
  })
})
