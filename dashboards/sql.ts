/**
 * SQL for the Grafana dashboards, built from the query service's own
 * fragments. Grafana's ClickHouse plugin cannot bind query parameters, so
 * the policy values that the API binds (`{card0_types:Array(String)}` ...)
 * are written into the dashboard SQL as escaped literals by
 * `inlineQueryParams`, from the very parameter objects the API binds. The
 * billable match, the card in force, the effective business unit and the
 * approval rule are the query service's text; nothing here restates them.
 */
import { meterMatchSql, meterNameSql } from '../query-service/src/billing/meters.js'
import { EFFECTIVE_BUSINESS_UNIT, INVENTORY_JOIN } from '../query-service/src/identities/effective.js'
import type { RateCard } from '../query-service/src/policy/index.js'

/**
 * A ClickHouse string literal for any text. Backslash and quote are
 * escaped, control characters become `\xHH`, and the characters that
 * Grafana or its ClickHouse plugin would read as a variable or macro
 * (`$name`, `${...}`, `$__macro(...)`, `[[name]]`) are written as `\xHH`
 * too, so a policy value can never be rewritten by template interpolation.
 */
export function stringLiteral(value: string): string {
  let out = "'"
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!
    const code = ch.charCodeAt(0)
    const next = value[i + 1] ?? ''
    if (ch === '\\') out += '\\\\'
    else if (ch === "'") out += "\\'"
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else if (ch === '$' && /[A-Za-z0-9_{]/.test(next)) out += '\\x24'
    else if (ch === '[' && next === '[') out += '\\x5b'
    else out += ch
  }
  return `${out}'`
}

const TIME_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/

/** A literal of a query-parameter type, with the value the API would bind. */
export function sqlLiteral(value: unknown, type: string): string {
  const array = /^Array\((.+)\)$/.exec(type)
  if (array) {
    if (!Array.isArray(value)) throw new TypeError(`parameter of type ${type} needs an array, got ${typeof value}`)
    return `CAST([${value.map((v) => sqlLiteral(v, array[1]!)).join(', ')}] AS ${type})`
  }
  if (type === 'String') {
    if (typeof value !== 'string') throw new TypeError(`parameter of type String needs a string, got ${typeof value}`)
    return stringLiteral(value)
  }
  const dateTime64 = /^DateTime64\((\d)\)$/.exec(type)
  if (dateTime64 || type === 'DateTime') {
    if (typeof value !== 'string' || !TIME_TEXT.test(value)) throw new TypeError(`parameter of type ${type} needs 'YYYY-MM-DD hh:mm:ss[.f]', got ${JSON.stringify(value)}`)
    // Parameters are UTC (the API's session time zone); a literal says so itself.
    return dateTime64 ? `toDateTime64(${stringLiteral(value)}, ${dateTime64[1]}, 'UTC')` : `toDateTime(${stringLiteral(value)}, 'UTC')`
  }
  if (/^U?Int(8|16|32|64)$/.test(type)) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new TypeError(`parameter of type ${type} needs a safe integer, got ${JSON.stringify(value)}`)
    return `to${type}(${value})`
  }
  throw new TypeError(`no literal form for parameter type ${type}`)
}

// `{name:Type}` as the API writes a bound parameter; `${name:format}` is a Grafana variable, never a parameter.
const PLACEHOLDER = /(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}/g

/**
 * Replaces every `{name:Type}` parameter in the query service's SQL with a
 * literal of the value it would bind. A placeholder without a value is an
 * error: the dashboard would otherwise ship SQL that cannot run.
 */
export function inlineQueryParams(sql: string, params: Readonly<Record<string, unknown>>): string {
  return sql.replace(PLACEHOLDER, (_whole, name: string, type: string) => {
    if (!Object.hasOwn(params, name)) throw new RangeError(`no value for query parameter ${name}`)
    return sqlLiteral(params[name], type.trim())
  })
}

/** The dashboard's half-open time range, as the API reads `[from, to)` (`$__timeFilter` would include `to`). */
export const RANGE = (column: string) => `${column} >= $__fromTime AND ${column} < $__toTime`

/** Template variables every dashboard may use. */
export type VariableName = 'business_unit' | 'identity' | 'service'

/**
 * A filter on a template variable: the plugin's `$__conditionalAll` turns
 * it into `1=1` when the variable is All (so rows with an empty value are
 * kept, as in the API), and Grafana's `sqlstring` format quotes the chosen
 * values.
 */
export function variableFilter(variable: VariableName, expression: string): string {
  return `$__conditionalAll(${expression} IN (\${${variable}:sqlstring}), $${variable})`
}

/** The effective business unit of a ledger row (inventory wins), given INVENTORY_JOIN. */
export const BUSINESS_UNIT = EFFECTIVE_BUSINESS_UNIT

/** Filters of the three variables on a ledger-like source joined with INVENTORY_JOIN. */
export function ledgerFilters(variables: readonly VariableName[]): string[] {
  const column: Record<VariableName, string> = { business_unit: BUSINESS_UNIT, identity: 'nhi_id', service: 'service' }
  return variables.map((v) => variableFilter(v, column[v]))
}

/** SQL pricing a row from its `card_idx` and `meter_idx` at the matched meter's unit price, exactly (Decimal128(9)). */
function meterPriceSql(cards: readonly RateCard[]): string {
  if (cards.length === 0) return 'toDecimal128(0, 9)'
  const branches = cards.map((_, i) => `card_idx = ${i}, toDecimal128(arrayElement({card${i}_prices:Array(String)}, meter_idx + 1), 9)`)
  return `multiIf(meter_idx < 0, toDecimal128(0, 9), ${branches.join(', ')}, toDecimal128(0, 9))`
}

/** What a billable source groups by, besides the meter. */
export interface BillableSourceOptions {
  /** Bucket events into `time` by the panel's interval (`$__interval_s`). */
  timeBucket?: boolean
  /** Template variables that filter the events. */
  variables: readonly VariableName[]
}

/**
 * Billable use events in the dashboard's range as rows of (`time`?,
 * `nhi_id`, `business_unit`, `service`, `meter`, `quantity`, `amount`):
 * the ledger read with FINAL (each span once), identified events only, the
 * card in force at each event and the first meter of it that matches,
 * exactly as GET /v1/billable decides (billing/queries.ts, policy
 * rate-card.ts), with the policy written in as literals. Events are summed
 * per activity before the meter match, as the API does, so the match runs
 * on few rows.
 */
export function billableSource(cards: readonly RateCard[], options: BillableSourceOptions): string {
  const match = meterMatchSql(cards)
  const time = options.timeBucket ? ['toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time'] : []
  const timeKey = options.timeBucket ? ['time'] : []
  const sql = `(
    SELECT ${[...timeKey, 'nhi_id', 'business_unit', 'service', `${meterNameSql(cards)} AS meter`, 'quantity', `quantity * ${meterPriceSql(cards)} AS amount`].join(', ')}
    FROM (
      SELECT ${[...timeKey, 'nhi_id', 'eff_business_unit AS business_unit', 'service', 'card_idx', 'toInt32(m) - 1 AS meter_idx', 'events AS quantity'].join(', ')}
      FROM (
        SELECT ${[...timeKey, 'nhi_id', 'eff_business_unit', 'service', 'card_idx', 'events', `${match.matched} AS matched`].join(', ')}
        FROM (
        SELECT ${[...time, 'nhi_id', `${BUSINESS_UNIT} AS eff_business_unit`, 'service', 'activity_type', 'activity_name', 'status', `${match.cardIndex} AS card_idx`, 'count() AS events'].join(', ')}
        FROM nhi_activity FINAL
        ${INVENTORY_JOIN}
        WHERE ${RANGE('event_time')}
          AND nhi_id != ''${ledgerFilters(options.variables)
            .map((f) => `\n          AND ${f}`)
            .join('')}
        GROUP BY ${[...timeKey, 'nhi_id', 'eff_business_unit', 'service', 'activity_type', 'activity_name', 'status', 'card_idx'].join(', ')}
        )
      )
      ARRAY JOIN matched AS m
    )
  )`
  return inlineQueryParams(sql, match.params)
}
