/**
 * SQL for the Grafana dashboards, built from the query service's own
 * fragments. Grafana's ClickHouse plugin cannot bind query parameters, so
 * the policy values that the API binds (`{card0_types:Array(String)}` ...)
 * are written into the dashboard SQL as escaped literals by
 * `inlineQueryParams`, from the very parameter objects the API binds. The
 * billable match, the card in force, the effective business unit and the
 * approval rule are the query service's text; nothing here restates them.
 */
import { meterMatchSql, meterNameSql, meterSlotsSql, valueAggregatesSql } from '../query-service/src/billing/meters.js'
import { linear, ratedByGroup } from '../query-service/src/billing/rating.js'
import { formatQuantity } from '../query-service/src/money/quantity.js'
import { groupAmountSql } from './rating-sql.js'
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

/** What a billable source groups by, besides the meter. */
export interface BillableSourceOptions {
  /** Bucket events into `time` by the panel's interval (`$__interval_s`). */
  timeBucket?: boolean
  /** Template variables that filter the events. */
  variables: readonly VariableName[]
}

// Per card, what the source needs to know of each meter, as bound parameters (inlined as literals).
function meterFacts(cards: readonly RateCard[]): Record<string, unknown> {
  const params: Record<string, unknown> = {}
  cards.forEach((card, i) => {
    params[`card${i}_aggs`] = card.meters.map((m) => m.aggregation)
    // 1: priced on its own row (a unit price, nothing per group); 0: priced per rating group (ratedGroupsSource).
    params[`card${i}_alone`] = card.meters.map((m) => (ratedPerUnitGroup(m) ? 0 : 1))
    params[`card${i}_min_events`] = card.meters.map((m) => m.min_events)
    params[`card${i}_included_id`] = card.meters.map((m) => (m.price.included?.per === 'identity' ? formatQuantity(m.price.included.quantity) : '0'))
  })
  return params
}

// Whether the dashboards rate a meter per business unit and month: as the API does, except that a sum at a plain unit
// price is priced row by row (its fractional parts may then differ from the API's by a few nano-units; README).
function ratedPerUnitGroup(meter: RateCard['meters'][number]): boolean {
  return ratedByGroup(meter) && !(meter.aggregation === 'sum' && linear(meter))
}

const perCard = (cards: readonly RateCard[], name: string, type: string, fallback: string) =>
  cards.length === 0 ? fallback : `multiIf(${cards.map((_, i) => `card_idx = ${i}, {card${i}_${name}:Array(${type})}`).join(', ')}, ${fallback})`

/**
 * The use events in the dashboard's range, per activity and meter, matched
 * as GET /v1/billable matches them (billing/meters.ts: the card in force,
 * one meter per meter class, first match wins): the ledger read with FINAL
 * (each span once), identified events only, the policy written in as
 * literals. Columns: `month`, `card_idx`, `meter_idx`, `meter`, `nhi_id`,
 * `business_unit`, `service`, `time` (with timeBucket), `c` (events) and
 * `v` (the meter's summed value, sum meters), plus the meter's facts.
 */
function matchedUsage(cards: readonly RateCard[], options: BillableSourceOptions & { filters: string[] }): { sql: string; params: Record<string, unknown> } {
  const match = meterMatchSql(cards)
  const values = valueAggregatesSql(cards)
  const slots = meterSlotsSql(cards)
  const time = options.timeBucket ? ['toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time'] : []
  const timeKey = options.timeBucket ? ['time'] : []
  const keys = [...timeKey, 'month', 'nhi_id', 'eff_business_unit', 'service', 'activity_type', 'activity_name', 'status', 'card_idx']
  const sql = `
      SELECT ${[...timeKey, 'month', 'nhi_id', 'eff_business_unit AS business_unit', 'service', 'card_idx', 'toInt32(m) - 1 AS meter_idx', `${meterNameSql(cards)} AS meter`, 'c'].join(', ')},
             ${perCard(cards, 'aggs', 'String', "CAST([], 'Array(String)')")}[m] AS agg,
             ${perCard(cards, 'alone', 'UInt8', "CAST([], 'Array(UInt8)')")}[m] AS alone,
             if(agg = 'sum', s[${perCard(cards, 'value_col', 'UInt8', "CAST([], 'Array(UInt8)')")}[m]], toDecimal128(0, 9)) AS v
      FROM (
        SELECT *, ${match.matched} AS matched
        FROM (
          SELECT ${[...time, 'toStartOfMonth(event_time) AS month', 'nhi_id', `${BUSINESS_UNIT} AS eff_business_unit`, 'service', 'activity_type', 'activity_name', 'status', `${match.cardIndex} AS card_idx`, 'count() AS c', `${values.sums} AS s`].join(', ')}
          FROM nhi_activity FINAL
          ${INVENTORY_JOIN}
          WHERE ${RANGE('event_time')}
            AND nhi_id != ''${options.filters.map((f) => `
            AND ${f}`).join('')}
          GROUP BY ${keys.join(', ')}))
      ARRAY JOIN matched AS m`
  // Cards without a sum meter have no value columns; their meters add none.
  const valueColumns = Object.fromEntries(cards.map((card, i) => [`card${i}_value_col`, card.meters.map(() => 0)]))
  return { sql, params: { ...match.params, ...values.params, ...valueColumns, ...slots.params, ...meterFacts(cards) } }
}

/**
 * Billable usage in the dashboard's range as rows of (`time`?, `nhi_id`,
 * `business_unit`, `service`, `meter`, `events`, `quantity`, `amount`),
 * one per activity and meter: `events` counts what count meters count;
 * `quantity` is events, or the summed value of a sum meter; `amount` prices
 * the row at its meter's unit price, exactly (Decimal128). Meters priced
 * per rating group (tiers, packages, allowances, minimums, active
 * identities) have `amount` 0 here and their amounts in
 * {@link ratedGroupsSource}; active-identity meters have `quantity` 0.
 */
export function billableSource(cards: readonly RateCard[], options: BillableSourceOptions): string {
  const usage = matchedUsage(cards, { ...options, filters: ledgerFilters(options.variables) })
  const timeKey = options.timeBucket ? ['time'] : []
  const sql = `(
    SELECT ${[...timeKey, 'nhi_id', 'business_unit', 'service', 'meter'].join(', ')},
           if(agg = 'count', c, 0) AS events,
           multiIf(agg = 'sum', v, agg = 'count', toDecimal128(c, 9), toDecimal128(0, 9)) AS quantity,
           if(alone = 1, toDecimal128(round(quantity * toDecimal128(${perCard(cards, 'prices', 'String', "CAST([], 'Array(String)')")}[meter_idx + 1], 9), 9), 9), toDecimal128(0, 9)) AS amount
    FROM (${usage.sql})
  )`
  return inlineQueryParams(sql, usage.params)
}

/**
 * Meters priced per rating group, rated in SQL as the API rates them: rows
 * of (`business_unit`, `meter`, `identities`, `amount`), one per month of the
 * range, rate card, meter and business unit, for meters that tiers,
 * packages, an allowance, a minimum charge or an active-identity count
 * price. A group is a whole business unit, so only the business-unit
 * variable narrows it. `identities` is the group's count of active
 * identities for an active-identity meter, else 0 (the other meters'
 * quantities are in {@link billableSource}). Empty when no meter is priced
 * per group.
 */
export function ratedGroupsSource(cards: readonly RateCard[], options: { variables: readonly VariableName[] }): string {
  const rated: Array<{ card: number; meter: number }> = []
  cards.forEach((card, c) => card.meters.forEach((meter, m) => (ratedPerUnitGroup(meter) ? rated.push({ card: c, meter: m }) : undefined)))
  if (rated.length === 0) {
    return "(SELECT '' AS business_unit, '' AS meter, toDecimal128(0, 9) AS identities, toDecimal128(0, 9) AS amount WHERE 0)"
  }
  const usage = matchedUsage(cards, { variables: [], filters: options.variables.includes('business_unit') ? [variableFilter('business_unit', BUSINESS_UNIT)] : [] })
  const which = (r: { card: number; meter: number }) => `card_idx = ${r.card} AND meter_idx = ${r.meter}`
  const perMeter = (value: (meter: RateCard['meters'][number]) => string) =>
    `multiIf(${rated.map((r) => `${which(r)}, ${value(cards[r.card]!.meters[r.meter]!)}`).join(', ')}, toDecimal128(0, 9))`
  const quantity = "multiIf(group_agg = 'active_identities', q_active, group_agg = 'sum', q_value, toDecimal128(q_events, 9))"
  const sql = `(
    SELECT business_unit, meter, if(group_agg = 'active_identities', quantity, toDecimal128(0, 9)) AS identities,
           ${perMeter((meter) => groupAmountSql(meter.price, { quantity: 'quantity', beyondPerIdentity: 'q_beyond' }))} AS amount
    FROM (
      SELECT month, card_idx, meter_idx, business_unit, any(identity_meter) AS meter, any(identity_agg) AS group_agg,
             sum(e) AS q_events, sum(v_sum) AS q_value,
             toDecimal128(countIf(e >= min_events), 9) AS q_active,
             sum(greatest(if(identity_agg = 'sum', v_sum, toDecimal128(e, 9)) - toDecimal128(included_id, 9), toDecimal128(0, 9))) AS q_beyond,
             ${quantity} AS quantity
      FROM (
        SELECT month, card_idx, meter_idx, business_unit, nhi_id, any(meter) AS identity_meter, any(agg) AS identity_agg, sum(c) AS e, sum(v) AS v_sum,
               any(${perCard(cards, 'min_events', 'UInt32', "CAST([], 'Array(UInt32)')")}[meter_idx + 1]) AS min_events,
               any(${perCard(cards, 'included_id', 'String', "CAST([], 'Array(String)')")}[meter_idx + 1]) AS included_id
        FROM (${usage.sql})
        WHERE alone = 0
        GROUP BY month, card_idx, meter_idx, business_unit, nhi_id)
      GROUP BY month, card_idx, meter_idx, business_unit)
    WHERE (${rated.map(which).join(') OR (')})
  )`
  return inlineQueryParams(sql, usage.params)
}
