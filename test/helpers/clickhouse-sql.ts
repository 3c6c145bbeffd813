/**
 * The ClickHouse SQL nhi-meter ships, gathered from where it lives: the
 * migrations, the SQL text and ClickHouse settings in the query service's
 * TypeScript, and the dashboards and alert rules Grafana runs. Used to check
 * what the SQL needs of a ClickHouse server (test/clickhouse-versions.test.ts).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { parse as parseYaml } from 'yaml'
import { splitStatements } from '../../query-service/src/storage/migrations.js'
import { REPO_ROOT } from './service.js'

/** One piece of shipped SQL and where it came from. */
export interface SqlText {
  /** Repository path of the file. */
  file: string
  /** The SQL (a statement, a fragment from a TypeScript string, or a dashboard query). */
  sql: string
}

/** What the shipped code asks of ClickHouse outside SQL text. */
export interface ShippedSql {
  texts: SqlText[]
  /** Settings passed with queries or set on the connection (`clickhouse_settings`, `*_SETTINGS` constants), by name, with the files. */
  clientSettings: Map<string, Set<string>>
  /** Formats named in TypeScript (`format: '…'`), with the files. */
  clientFormats: Map<string, Set<string>>
}

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && keep(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => !path.split('/').includes('node_modules'))
    .sort()
}

function add(map: Map<string, Set<string>>, name: string, file: string): void {
  if (!map.has(name)) map.set(name, new Set())
  map.get(name)!.add(file)
}

/** Strings of a TypeScript file, template literals with each `${…}` as a space, plus settings and formats named in object literals. */
function scanTypeScript(path: string, shipped: ShippedSql): void {
  const file = relative(REPO_ROOT, path)
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true)
  const unwrap = (node: ts.Expression): ts.Expression => {
    let expression = node
    while (ts.isAsExpression(expression) || ts.isParenthesizedExpression(expression) || ts.isSatisfiesExpression(expression)) expression = expression.expression
    return expression
  }
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
      shipped.texts.push({ file, sql: node.text })
    } else if (ts.isTemplateExpression(node)) {
      shipped.texts.push({ file, sql: [node.head.text, ...node.templateSpans.map((span) => span.literal.text)].join(' ') })
    }
    const settingsHolder =
      (ts.isPropertyAssignment(node) && node.name.getText(source) === 'clickhouse_settings') ||
      (ts.isVariableDeclaration(node) && /SETTINGS$/.test(node.name.getText(source)))
    if (settingsHolder && node.initializer) {
      const object = unwrap(node.initializer)
      for (const property of ts.isObjectLiteralExpression(object) ? object.properties : []) {
        if (property.name) add(shipped.clientSettings, property.name.getText(source), file)
      }
    }
    if (ts.isPropertyAssignment(node) && node.name.getText(source) === 'format') {
      const format = unwrap(node.initializer)
      if (ts.isStringLiteral(format)) add(shipped.clientFormats, format.text, file)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
}

/** Every string in a parsed JSON or YAML document. */
function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value)) return value.flatMap(stringsOf)
  if (value && typeof value === 'object') return Object.values(value).flatMap(stringsOf)
  return []
}

/** Gathers the SQL of the migrations, the query service (tests left out) and the dashboards. */
export function shippedSql(): ShippedSql {
  const shipped: ShippedSql = { texts: [], clientSettings: new Map(), clientFormats: new Map() }
  const migrations = join(REPO_ROOT, 'query-service/src/storage/migrations')
  for (const path of filesUnder(migrations, (name) => name.endsWith('.sql'))) {
    for (const sql of splitStatements(readFileSync(path, 'utf8'))) shipped.texts.push({ file: relative(REPO_ROOT, path), sql })
  }
  // Test code and test helpers (`*.test.ts`, the `test-support/` folder) do not ship.
  const isSource = (name: string) => name.endsWith('.ts') && !/(^|[.-])tests?([.-]|$)/.test(name)
  for (const path of filesUnder(join(REPO_ROOT, 'query-service/src'), isSource)) if (!path.includes('/test-support/')) scanTypeScript(path, shipped)
  for (const path of filesUnder(join(REPO_ROOT, 'dashboards'), isSource)) scanTypeScript(path, shipped)
  for (const path of filesUnder(join(REPO_ROOT, 'dashboards'), (name) => /\.(json|ya?ml)$/.test(name))) {
    const text = readFileSync(path, 'utf8')
    const document: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
    for (const sql of stringsOf(document)) shipped.texts.push({ file: relative(REPO_ROOT, path), sql })
  }
  return shipped
}

/** Compares release numbers (`25.8`, `25.8.15.35`) part by part. */
export function compareReleases(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** What the engine says of itself: its version, functions, settings, formats, table engines and setting changes by release. */
export interface EngineCatalogue {
  version: string
  functions: Map<string, { name: string; aggregate: boolean; caseInsensitive: boolean; introducedIn: string }>
  combinators: string[]
  settings: Set<string>
  formats: Set<string>
  tableEngines: Set<string>
  settingsChanges: { version: string; name: string; previous: string; next: string; reason: string }[]
}

/** Reads the engine's catalogue from its system tables. */
export async function catalogue(client: ClickHouseClient): Promise<EngineCatalogue> {
  const rows = async <T>(query: string): Promise<T[]> => (await client.query({ query, format: 'JSONEachRow' })).json<T>()
  const [{ version }] = (await rows<{ version: string }>('SELECT version() AS version')) as [{ version: string }]
  const functions = new Map<string, { name: string; aggregate: boolean; caseInsensitive: boolean; introducedIn: string }>()
  for (const f of await rows<{ name: string; is_aggregate: number; case_insensitive: number; introduced_in: string }>(
    'SELECT name, is_aggregate, case_insensitive, introduced_in FROM system.functions',
  )) {
    functions.set(f.name, { name: f.name, aggregate: f.is_aggregate === 1, caseInsensitive: f.case_insensitive === 1, introducedIn: f.introduced_in })
  }
  return {
    version,
    functions,
    combinators: (await rows<{ name: string }>('SELECT name FROM system.aggregate_function_combinators')).map((r) => r.name),
    settings: new Set(
      (await rows<{ name: string }>('SELECT name FROM system.settings UNION ALL SELECT name FROM system.merge_tree_settings')).map((r) => r.name),
    ),
    formats: new Set((await rows<{ name: string }>('SELECT name FROM system.formats')).map((r) => r.name)),
    tableEngines: new Set((await rows<{ name: string }>('SELECT name FROM system.table_engines')).map((r) => r.name)),
    settingsChanges: await rows(
      'SELECT version, c.name AS name, c.previous_value AS previous, c.new_value AS next, c.reason AS reason FROM system.settings_changes ARRAY JOIN changes AS c',
    ),
  }
}

/** What the shipped SQL uses, by kind, each with the files it is in. */
export interface Used {
  functions: Map<string, Set<string>>
  settings: Map<string, Set<string>>
  formats: Map<string, Set<string>>
  engines: Map<string, Set<string>>
}

/** The function a call token names: itself, or an aggregate function with combinator suffixes (`sumForEach`, `groupUniqArrayArrayIf`). */
export function functionOf(token: string, catalogue: EngineCatalogue): { name: string; base: string } | undefined {
  const lookup = (name: string) => {
    const exact = catalogue.functions.get(name)
    if (exact) return exact
    // Case-insensitive functions count in lower or mixed case; an all-capital word before `(` is a keyword or type (NOT, DATE).
    if (name === name.toUpperCase()) return undefined
    for (const f of catalogue.functions.values()) if (f.caseInsensitive && f.name.toLowerCase() === name.toLowerCase()) return f
    return undefined
  }
  const direct = lookup(token)
  if (direct) return { name: direct.name, base: direct.name }
  for (const combinator of catalogue.combinators) {
    if (!token.endsWith(combinator) || token.length === combinator.length) continue
    const inner = functionOf(token.slice(0, -combinator.length), catalogue)
    if (inner && catalogue.functions.get(inner.base)?.aggregate) return { name: token, base: inner.base }
  }
  return undefined
}

/** What the shipped SQL uses of the engine's catalogue. */
export function usedBy(shipped: ShippedSql, catalogue: EngineCatalogue): Used {
  const used: Used = { functions: new Map(), settings: new Map(), formats: new Map(), engines: new Map() }
  for (const { file, sql } of shipped.texts) {
    // A call is a name directly followed by `(`: prose ("a range (of …)") has a space there, our SQL never does.
    for (const [, token] of sql.matchAll(/(?<![\w.$])([A-Za-z_][A-Za-z0-9_]*)\(/g)) {
      const f = functionOf(token!, catalogue)
      if (f) add(used.functions, f.name, file)
    }
    for (const [, list] of sql.matchAll(/\b(?:SETTINGS|MODIFY SETTING)\s+((?:\w+\s*=\s*[^,;\n]+(?:,\s*)?)+)/g)) {
      for (const [, name] of list!.matchAll(/(\w+)\s*=/g)) add(used.settings, name!, file)
    }
    for (const [, name] of sql.matchAll(/\bFORMAT\s+(\w+)/g)) if (catalogue.formats.has(name!)) add(used.formats, name!, file)
    for (const [, name] of sql.matchAll(/\bENGINE\s*=\s*(\w+)/g)) if (catalogue.tableEngines.has(name!)) add(used.engines, name!, file)
  }
  for (const [name, files] of shipped.clientSettings) for (const file of files) add(used.settings, name, file)
  for (const [name, files] of shipped.clientFormats) for (const file of files) if (catalogue.formats.has(name)) add(used.formats, name, file)
  return used
}

