/**
 * What Grafana does to a panel's SQL before ClickHouse sees it, for the
 * ClickHouse datasource plugin (grafana-clickhouse-datasource v4), so the
 * committed dashboards can be run against a real engine in tests:
 *
 * 1. the plugin's frontend replaces `$__conditionalAll(condition, $var)` by
 *    `1=1` when the variable is All or empty, else by the condition;
 * 2. Grafana interpolates template variables (`$var`, `${var}`,
 *    `${var:format}`, `[[var]]`); a multi-value variable without a format
 *    becomes `'a','b'` through the plugin's own formatter, `sqlstring`
 *    quotes each value and doubles single quotes;
 * 3. the plugin's backend expands its macros: `$__timeFilter(col)` is
 *    `col >= toDateTime(from) AND col <= toDateTime(to)` (seconds, `to`
 *    included), `$__fromTime`/`$__toTime` are `toDateTime(seconds)`, the
 *    `_ms` forms use `fromUnixTimestamp64Milli`, `$__interval_s` is the
 *    panel interval in whole seconds (at least 1).
 *
 * Written from the plugin's macro documentation and source behaviour; the
 * dashboard test runs every panel through it.
 */

/** The selection of one template variable: `'All'`, or the chosen values. */
export type VariableSelection = 'All' | readonly string[]

/** Everything Grafana knows when it runs a panel. */
export interface PanelContext {
  from: Date
  to: Date
  /** The panel's interval in milliseconds (Grafana derives it from the range and the panel width). */
  intervalMs: number
  /** Current selection per dashboard variable. */
  variables: Readonly<Record<string, VariableSelection>>
  /** Every option of each variable, for All without `$__conditionalAll`. */
  options?: Readonly<Record<string, readonly string[]>>
}

const ALL = '$__all'

/** Splits a macro's bracketed arguments at top-level commas, as the plugin's frontend does. */
function frontendMacroArgs(query: string, openIndex: number): string[] {
  const args: string[] = []
  let depth = 0
  let lastEnd = 1
  const text = query.substring(openIndex)
  const re = /\(|\)|,/g
  let m: RegExpExecArray | null
  while ((m = re.exec(text)) !== null) {
    if (m[0] === '(') depth++
    else if (m[0] === ')') depth--
    if (m[0] === ',' && depth === 1) {
      args.push(text.substring(lastEnd, re.lastIndex - 1))
      lastEnd = re.lastIndex
    }
    if (depth === 0) {
      args.push(text.substring(lastEnd, re.lastIndex - 1))
      return args
    }
  }
  return []
}

function currentValue(selection: VariableSelection | undefined): string {
  if (selection === undefined) return ''
  return selection === 'All' ? ALL : selection.join(',')
}

/** Step 1: `$__conditionalAll`, last occurrence first, replaced with String.replace as the plugin does. */
export function applyConditionalAll(sql: string, variables: PanelContext['variables']): string {
  const macro = '$__conditionalAll('
  let query = sql
  let index = query.lastIndexOf(macro)
  while (index !== -1) {
    const params = frontendMacroArgs(query, index + macro.length - 1)
    if (params.length !== 2) return query
    const name = /(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+/.exec(params[1]!.trim())
    let phrase = params[0]!
    if (name) {
      const value = currentValue(variables[name[0]])
      if (value === '' || value === ALL) phrase = '1=1'
    }
    query = query.replace(`${macro}${params[0]},${params[1]})`, phrase)
    index = query.lastIndexOf(macro)
  }
  return query
}

function sqlString(value: string | readonly string[]): string {
  const one = (v: string) => `'${v.replace(/'|"/g, (c) => (c === "'" ? "''" : '\\"'))}'`
  return typeof value === 'string' ? one(value) : value.map(one).join(',')
}

function formatValue(value: string | readonly string[], format: string | undefined): string {
  if (format === undefined) return typeof value === 'string' ? value : `'${value.join("','")}'`
  switch (format) {
    case 'sqlstring':
      return sqlString(value)
    case 'raw':
    case 'csv':
      return typeof value === 'string' ? value : value.join(',')
    case 'singlequote':
      return (typeof value === 'string' ? [value] : value).map((v) => `'${v.replace(/'/g, "\\'")}'`).join(',')
    default:
      throw new RangeError(`variable format ${format} is not modelled`)
  }
}

const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g

/** Step 2: template variables and Grafana's built-in ones; unknown names stay as written. */
export function interpolateVariables(sql: string, context: PanelContext): string {
  const builtIn: Record<string, string> = {
    __from: String(context.from.getTime()),
    __to: String(context.to.getTime()),
    __interval_ms: String(context.intervalMs),
  }
  return sql.replace(VARIABLE, (match, plain?: string, bracket?: string, bracketFormat?: string, braced?: string, _path?: string, bracedFormat?: string) => {
    const name = plain ?? bracket ?? braced!
    const format = bracketFormat ?? bracedFormat
    if (Object.hasOwn(builtIn, name)) return builtIn[name]!
    const selection = context.variables[name]
    if (selection === undefined) return match
    const value = selection === 'All' ? (context.options?.[name] ?? []) : selection
    return formatValue(value, format)
  })
}

function backendMacroArgs(rest: string): { args: string[]; length: number } {
  if (!rest.startsWith('(')) return { args: [], length: 0 }
  const args: string[] = []
  let depth = 0
  let current = ''
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i]!
    if (ch === '(') {
      depth++
      if (depth === 1) continue
    } else if (ch === ')') {
      depth--
      if (depth === 0) {
        args.push(current.trim())
        return { args, length: i + 1 }
      }
    } else if (ch === ',' && depth === 1) {
      args.push(current.trim())
      current = ''
      continue
    }
    current += ch
  }
  throw new SyntaxError('macro arguments without a closing bracket')
}

/** Step 3: the plugin's backend macros. */
export function expandMacros(sql: string, context: PanelContext): string {
  const fromS = Math.floor(context.from.getTime() / 1000)
  const toS = Math.floor(context.to.getTime() / 1000)
  const date = (d: Date) => `toDate('${d.toISOString().slice(0, 10)}')`
  const intervalS = Math.max(Math.floor(context.intervalMs / 1000), 1)
  const one = (args: string[], name: string) => {
    if (args.length !== 1) throw new RangeError(`$__${name} expects 1 argument, got ${args.length}`)
    return args[0]!
  }
  const macros: Record<string, (args: string[]) => string> = {
    fromTime: () => `toDateTime(${fromS})`,
    toTime: () => `toDateTime(${toS})`,
    fromTime_ms: () => `fromUnixTimestamp64Milli(${context.from.getTime()})`,
    toTime_ms: () => `fromUnixTimestamp64Milli(${context.to.getTime()})`,
    timeFilter: (a) => `${one(a, 'timeFilter')} >= toDateTime(${fromS}) AND ${one(a, 'timeFilter')} <= toDateTime(${toS})`,
    timeFilter_ms: (a) =>
      `${one(a, 'timeFilter_ms')} >= fromUnixTimestamp64Milli(${context.from.getTime()}) AND ${one(a, 'timeFilter_ms')} <= fromUnixTimestamp64Milli(${context.to.getTime()})`,
    dateFilter: (a) => `${one(a, 'dateFilter')} >= ${date(context.from)} AND ${one(a, 'dateFilter')} <= ${date(context.to)}`,
    timeInterval: (a) => `toStartOfInterval(toDateTime(${one(a, 'timeInterval')}), INTERVAL ${intervalS} second)`,
    interval_s: () => String(intervalS),
  }
  let query = sql
  for (const [name, expand] of Object.entries(macros)) {
    const re = new RegExp(`\\$__${name}\\b`, 'g')
    let out = ''
    let cursor = 0
    let m: RegExpExecArray | null
    while ((m = re.exec(query)) !== null) {
      const { args, length } = backendMacroArgs(query.slice(m.index + m[0].length))
      out += query.slice(cursor, m.index) + expand(args)
      cursor = m.index + m[0].length + length
      re.lastIndex = cursor
    }
    query = out + query.slice(cursor)
  }
  return query
}

/** All three steps, in Grafana's order. */
export function expandPanelSql(sql: string, context: PanelContext): string {
  return expandMacros(interpolateVariables(applyConditionalAll(sql, context.variables), context), context)
}
