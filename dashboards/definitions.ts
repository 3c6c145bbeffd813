/**
 * The nhi-meter Grafana dashboards, defined once in TypeScript and rendered
 * to JSON for a given policy by dashboards/generate.ts:
 *
 * - billing: billable activity and cost over time by business unit,
 *   identity and meter, with the completeness of the evidence;
 * - identities: the inventory joined with observed activity, statuses as
 *   GET /v1/identities decides them, dormancy;
 * - findings: the evidence behind findings that the ledger and inventory
 *   show directly (see README.md for what is and is not here);
 * - telemetry: completeness per service and the attribute problems behind it;
 * - service: nhi-meter's own health from its Prometheus metrics (service.ts).
 *
 * Every query reads the same tables with the query service's own SQL
 * fragments (billable match, effective identity, approvals), with the
 * policy's values written in as literals (sql.ts).
 */
import { CUSTOM_ACTIVITY_TYPE_PATTERN, NHI_TYPES } from '@nhi-meter/instrumentation/semconv'
import { pricingOf } from '../query-service/src/billing/pricing.js'
import { APPROVED_ACTIVITY, EFFECTIVE_OWNER, EFFECTIVE_TYPE, INVENTORY_JOIN } from '../query-service/src/identities/effective.js'
import type { Policy } from '../query-service/src/policy/index.js'
import { dashboardJson, type DashboardSpec, type PanelSpec, type VariableSpec } from './model.js'
import { serviceDashboard } from './service.js'
import { billableSource, ratedGroupsSource, BUSINESS_UNIT, inlineQueryParams, ledgerFilters, RANGE, variableFilter, type VariableName } from './sql.js'

const FINAL_SETTINGS = 'SETTINGS do_not_merge_across_partitions_select_final = 1'
const AND = (filters: string[]) => filters.map((f) => `\n  AND ${f}`).join('')

/** The dashboards' template variables. */
const VARIABLES: Record<VariableName, VariableSpec> = {
  business_unit: {
    name: 'business_unit',
    label: 'Business unit',
    description: 'Effective business unit: the inventory declaration for a declared identity, else the spans. All keeps rows without one.',
    sql: `SELECT unit FROM (
  SELECT DISTINCT ${BUSINESS_UNIT} AS unit FROM nhi_activity
  ${INVENTORY_JOIN}
  WHERE $__timeFilter(event_time) AND nhi_id != ''
  UNION DISTINCT
  SELECT business_unit AS unit FROM nhi_inventory FINAL
) WHERE unit != '' ORDER BY unit`,
  },
  identity: {
    name: 'identity',
    label: 'Identity',
    description: 'nhi.id of observed or declared identities (limited by the business unit chosen).',
    sql: `SELECT identity FROM (
  SELECT DISTINCT nhi_id AS identity FROM nhi_activity
  ${INVENTORY_JOIN}
  WHERE $__timeFilter(event_time) AND nhi_id != ''
    AND ${variableFilter('business_unit', BUSINESS_UNIT)}
  UNION DISTINCT
  SELECT id AS identity FROM nhi_inventory FINAL
  WHERE ${variableFilter('business_unit', 'business_unit')}
) ORDER BY identity`,
  },
  service: {
    name: 'service',
    label: 'Service',
    description: 'service.name of the spans.',
    sql: `SELECT DISTINCT service FROM nhi_activity WHERE $__timeFilter(event_time) ORDER BY service`,
  },
}

/** Integer numerator and denominator of a decimal threshold (at most 6 places), so SQL compares as exactly as the API. */
function ratioParts(threshold: number): [string, string] {
  const [whole, fraction = ''] = String(threshold).split('.')
  return [`${BigInt(`${whole}${fraction}`)}`, `${10n ** BigInt(fraction.length)}`]
}

function billingDashboard(policy: Policy): DashboardSpec {
  const { cards, currency, completenessThreshold } = pricingOf(policy)
  const variables: VariableName[] = ['business_unit', 'identity', 'service']
  const source = billableSource(cards, { variables })
  const series = billableSource(cards, { variables, timeBucket: true })
  const rated = ratedGroupsSource(cards, { variables })
  const perUnitNote = ' Meters priced per business unit (tiers, packages, allowances, minimum charges, active identities) are in "Cost by business unit and meter" and the total, not here.'
  const money = `suffix: ${currency}`
  const panels: PanelSpec[] = [
    {
      kind: 'stat',
      title: 'Billable events',
      description: 'Spans with a resolved identity counted by a count meter of the rate card in force at their start, each counted once per meter. Same rule and range [from, to) as GET /v1/billable.',
      w: 6,
      h: 4,
      unit: 'short',
      sql: `SELECT sum(events) AS billable_events FROM ${source}\n${FINAL_SETTINGS}`,
    },
    {
      kind: 'stat',
      title: `Billable amount (${currency})`,
      description: 'Usage priced exactly (Decimal128) by the meters that counted it: at a unit price per row, or per month and business unit for tiers, packages, allowances, minimum charges and active identities. Equal to total.amount of GET /v1/billable for the same range.',
      w: 6,
      h: 4,
      unit: money,
      sql: `SELECT (SELECT sum(amount) FROM ${source}) + (SELECT sum(amount) FROM ${rated}) AS billable_amount\n${FINAL_SETTINGS}`,
    },
    {
      kind: 'stat',
      title: 'Identified share of activity',
      description: `Activity spans tied to an identity, as a share of all activity spans (the completeness block of GET /v1/billable). Below billing.completeness_threshold (${completenessThreshold}) the period is incomplete.`,
      w: 6,
      h: 4,
      unit: 'percentunit',
      decimals: 2,
      thresholds: { base: 'red', steps: [{ color: 'green', value: completenessThreshold }] },
      sql: `SELECT if(count() = 0, 1, countIf(nhi_id != '') / count()) AS identified_share
FROM nhi_activity FINAL
${INVENTORY_JOIN}
WHERE ${RANGE('event_time')}${AND(ledgerFilters(variables))}
${FINAL_SETTINGS}`,
    },
    {
      kind: 'stat',
      title: 'Identities billed',
      description: 'Distinct identities with at least one billable event in the range.',
      w: 6,
      h: 4,
      unit: 'short',
      sql: `SELECT uniqExact(nhi_id) AS identities FROM ${source}\n${FINAL_SETTINGS}`,
    },
    {
      kind: 'timeseries',
      title: `Billable amount by business unit (${currency})`,
      description: `Cost per interval, stacked by effective business unit.${perUnitNote}`,
      w: 12,
      h: 9,
      unit: money,
      style: { draw: 'bars', stack: true },
      seriesLabel: 'unit',
      sql: `SELECT time, if(business_unit = '', '(none)', business_unit) AS unit, sum(amount) AS amount
FROM ${series}
GROUP BY time, unit
ORDER BY time, unit
${FINAL_SETTINGS}`,
    },
    {
      kind: 'timeseries',
      title: 'Billable events by meter',
      description: 'Billable events per interval, stacked by the count meter that counted them.',
      w: 12,
      h: 9,
      unit: 'short',
      style: { draw: 'bars', stack: true },
      seriesLabel: 'meter',
      sql: `SELECT time, meter, sum(events) AS events
FROM ${series}
GROUP BY time, meter
HAVING events > 0
ORDER BY time, meter
${FINAL_SETTINGS}`,
    },
    {
      kind: 'table',
      title: 'Cost by identity',
      description: `Every billed identity with its effective business unit, events and amount, most expensive first.${perUnitNote}`,
      w: 12,
      h: 10,
      columns: { amount: { unit: money }, nhi_id: { displayName: 'identity' } },
      sql: `SELECT nhi_id, business_unit, sum(events) AS events, sum(amount) AS amount
FROM ${source}
GROUP BY nhi_id, business_unit
ORDER BY amount DESC, nhi_id, business_unit
${FINAL_SETTINGS}`,
    },
    {
      kind: 'table',
      title: 'Cost by business unit and meter',
      description: 'The bill as GET /v1/billable?group_by=business_unit,meter returns it: events of count meters, the quantity of every meter (events, summed values, active identities) and the amount.',
      w: 12,
      h: 10,
      columns: { amount: { unit: money } },
      sql: `SELECT business_unit, meter, sum(events) AS events, sum(quantity) AS quantity, sum(amount) AS amount
FROM (
  SELECT business_unit, meter, events, quantity, amount FROM ${source}
  UNION ALL
  SELECT business_unit, meter, 0, identities, amount FROM ${rated}
)
GROUP BY business_unit, meter
ORDER BY business_unit, meter
${FINAL_SETTINGS}`,
    },
    {
      kind: 'timeseries',
      title: 'Billable events by identity',
      description: 'Billable events (count meters) per interval for each identity.',
      w: 12,
      h: 9,
      unit: 'short',
      style: { draw: 'line', stack: false },
      seriesLabel: 'nhi_id',
      sql: `SELECT time, nhi_id, sum(events) AS events
FROM ${series}
GROUP BY time, nhi_id
ORDER BY time, nhi_id
${FINAL_SETTINGS}`,
    },
    {
      kind: 'table',
      title: 'Cost by service',
      description: `Billable events and amount per emitting service (service.name).${perUnitNote}`,
      w: 12,
      h: 9,
      columns: { amount: { unit: money } },
      sql: `SELECT service, sum(events) AS events, sum(amount) AS amount
FROM ${source}
GROUP BY service
ORDER BY amount DESC, service
${FINAL_SETTINGS}`,
    },
  ]
  return {
    uid: 'nhi-meter-billing',
    title: 'nhi-meter / Billable activity and cost',
    description: `Billable activity and cost under the policy's rate cards (${cards.map((c) => c.version).join(', ')}), read from the nhi_activity ledger with the API's billable rule.`,
    file: 'billing.json',
    from: 'now-7d',
    variables: variables.map((v) => VARIABLES[v]),
    panels,
  }
}

/**
 * Identities as GET /v1/identities lists them at the end of the dashboard
 * range: declared ones (inventory) with their observed activity, and
 * observed ones that are not declared (`unregistered`). Status rule as in
 * identities/queries.ts `identityStatus`: never_seen without activity,
 * active when the last activity is no older than detection.dormant_after,
 * else dormant.
 */
function inventorySql(policy: Policy, variables: VariableName[]): string {
  const unitFilter = variables.includes('business_unit')
  const identityFilter = variables.includes('identity')
  const observedFilters = ledgerFilters(variables.filter((v) => v !== 'service'))
  const declaredFilters = [...(unitFilter ? [variableFilter('business_unit', 'business_unit')] : []), ...(identityFilter ? [variableFilter('identity', 'id')] : [])]
  return inlineQueryParams(
    `WITH
  observed AS (
    SELECT nhi_id AS observed_id,
      min(event_time) AS first_event, max(event_time) AS last_event,
      toUnixTimestamp64Milli(max(event_time)) AS last_ms,
      count() AS events,
      argMax(${EFFECTIVE_TYPE}, event_time) AS eff_type,
      argMax(${EFFECTIVE_OWNER}, event_time) AS eff_owner,
      argMax(${BUSINESS_UNIT}, event_time) AS eff_business_unit
    FROM nhi_identity_activity FINAL
    ${INVENTORY_JOIN}
    WHERE event_time < $__toTime${AND(observedFilters)}
    GROUP BY nhi_id
  ),
  toInt64(toUnixTimestamp($__toTime)) * 1000 AS at_ms
SELECT id, type, owner, business_unit, declared, first_seen, last_seen, activity_count, status
FROM (
  SELECT d.id AS id, d.type AS type, d.owner AS owner, d.business_unit AS business_unit, true AS declared,
    o.first_event AS first_seen, o.last_event AS last_seen, ifNull(o.events, 0) AS activity_count,
    multiIf(o.last_ms IS NULL, 'never_seen', at_ms - o.last_ms <= {dormant_after_ms:Int64}, 'active', 'dormant') AS status
  FROM (SELECT id, type, owner, business_unit FROM nhi_inventory FINAL WHERE 1${AND(declaredFilters)}) AS d
  LEFT JOIN observed AS o ON o.observed_id = d.id
  UNION ALL
  SELECT observed_id, eff_type, eff_owner, eff_business_unit, false, first_event, last_event, events, 'unregistered'
  FROM observed
  WHERE observed_id NOT IN (SELECT id FROM nhi_inventory FINAL)
)`,
    { dormant_after_ms: policy.detection.dormant_after.ms },
  )
}

const INVENTORY_SETTINGS = 'SETTINGS join_use_nulls = 1, do_not_merge_across_partitions_select_final = 1'

function identitiesDashboard(policy: Policy): DashboardSpec {
  const variables: VariableName[] = ['business_unit', 'identity']
  const inventory = inventorySql(policy, variables)
  const dormant = policy.detection.dormant_after.text
  return {
    uid: 'nhi-meter-identities',
    title: 'nhi-meter / Identity inventory and dormancy',
    description: `Declared and observed identities, their activity and status at the end of the time range (dormant after ${dormant} without activity).`,
    file: 'identities.json',
    from: 'now-30d',
    variables: variables.map((v) => VARIABLES[v]),
    panels: [
      {
        kind: 'barchart',
        title: 'Identities by status',
        description: `Status at the end of the range, as GET /v1/identities?at=<end> decides it: active, dormant (declared, no activity for more than ${dormant}), never_seen (declared, no activity), unregistered (acting, not declared).`,
        w: 8,
        h: 8,
        sql: `SELECT status, count() AS identities
FROM (${inventory})
GROUP BY status
ORDER BY status
${INVENTORY_SETTINGS}`,
      },
      {
        kind: 'timeseries',
        title: 'Active identities by type',
        description: 'Distinct identities with activity in each interval, by effective type.',
        w: 16,
        h: 8,
        unit: 'short',
        style: { draw: 'line', stack: false },
        seriesLabel: 'identity_type',
        sql: `SELECT toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time, ${EFFECTIVE_TYPE} AS identity_type, uniqExact(nhi_id) AS identities
FROM nhi_identity_activity
${INVENTORY_JOIN}
WHERE ${RANGE('event_time')}${AND(ledgerFilters(variables))}
GROUP BY time, identity_type
ORDER BY time, identity_type`,
      },
      {
        kind: 'table',
        title: 'Identity inventory',
        description: 'Every identity: declared (inventory) or only observed, with type, owner and business unit (the inventory wins for declared ones), first and last activity before the end of the range, event count and status.',
        w: 24,
        h: 12,
        columns: { activity_count: { displayName: 'events' } },
        sql: `SELECT * FROM (${inventory})
ORDER BY id
${INVENTORY_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Dormant and never-seen declared identities',
        description: `Declared identities without activity for more than ${dormant} (dormant), or without any (never_seen): candidates for revocation.`,
        w: 24,
        h: 8,
        columns: { idle_days: { decimals: 1, displayName: 'days since last activity' } },
        sql: `SELECT id, type, owner, business_unit, status, last_seen,
  if(last_seen IS NULL, NULL, dateDiff('second', last_seen, $__toTime) / 86400) AS idle_days
FROM (${inventory})
WHERE status IN ('dormant', 'never_seen')
ORDER BY status, id
${INVENTORY_SETTINGS}`,
      },
    ],
  }
}

function findingsDashboard(policy: Policy): DashboardSpec {
  const variables: VariableName[] = ['business_unit', 'identity', 'service']
  const d = policy.detection
  const inventory = inventorySql(policy, ['business_unit', 'identity'])
  const ledger = (extra: string[]) => `FROM nhi_activity FINAL
${INVENTORY_JOIN}
WHERE ${RANGE('event_time')}${AND([...extra, ...ledgerFilters(variables)])}`
  const shared = inlineQueryParams(
    `SELECT credential_id, uniqExact(nhi_id) AS identities, arrayStringConcat(arraySort(groupUniqArray(nhi_id)), ', ') AS used_by,
  count() AS events, min(event_time) AS first_used, max(event_time) AS last_used
${ledger(["credential_id != ''", "nhi_id != ''"])}
GROUP BY credential_id
HAVING identities > {max_identities:UInt32}`,
    { max_identities: d.credential_reuse_max_identities },
  )
  const outside = `SELECT nhi_id, activity_type, activity_name, count() AS events, max(event_time) AS last_seen
${ledger(["inv.id != ''", `NOT ${APPROVED_ACTIVITY}`])}
GROUP BY nhi_id, activity_type, activity_name`
  return {
    uid: 'nhi-meter-findings',
    title: 'nhi-meter / Findings evidence',
    description:
      'The evidence behind findings, read straight from the ledger and the inventory. GET /v1/findings is the authoritative list (severity, windows, controls); see dashboards/README.md for what these panels cover.',
    file: 'findings.json',
    from: 'now-30d',
    variables: variables.map((v) => VARIABLES[v]),
    panels: [
      {
        kind: 'stat',
        title: 'Unregistered',
        description: 'Identities acting before the end of the range that the inventory does not declare (finding kind unregistered).',
        w: 6,
        h: 4,
        thresholds: { base: 'green', steps: [{ color: 'orange', value: 1 }] },
        sql: `SELECT countIf(status = 'unregistered') AS unregistered FROM (${inventory})\n${INVENTORY_SETTINGS}`,
      },
      {
        kind: 'stat',
        title: 'Dormant or never seen',
        description: `Declared identities idle for more than ${d.dormant_after.text}, or never seen (finding kind dormant).`,
        w: 6,
        h: 4,
        thresholds: { base: 'green', steps: [{ color: 'orange', value: 1 }] },
        sql: `SELECT countIf(status IN ('dormant', 'never_seen')) AS dormant FROM (${inventory})\n${INVENTORY_SETTINGS}`,
      },
      {
        kind: 'stat',
        title: 'Shared credentials',
        description: `Credentials (nhi.credential.id) used by more than ${d.credential_reuse_max_identities} identit${d.credential_reuse_max_identities === 1 ? 'y' : 'ies'} in the range (finding kind credential_reuse looks at ${d.credential_reuse_window.text} windows).`,
        w: 6,
        h: 4,
        thresholds: { base: 'green', steps: [{ color: 'red', value: 1 }] },
        sql: `SELECT count() AS shared_credentials FROM (${shared})\n${FINAL_SETTINGS}`,
      },
      {
        kind: 'stat',
        title: 'Events outside approvals',
        description: "Events of declared identities whose activity their approved_activities does not allow (finding kind privilege_drift); the approval rule is the API's.",
        w: 6,
        h: 4,
        thresholds: { base: 'green', steps: [{ color: 'orange', value: 1 }] },
        sql: `SELECT count() AS events ${ledger(["inv.id != ''", `NOT ${APPROVED_ACTIVITY}`])}\n${FINAL_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Unregistered identities',
        description: 'Acting identities missing from the inventory, with what the spans say about them.',
        w: 12,
        h: 9,
        sql: `SELECT id, type, owner, business_unit, first_seen, last_seen, activity_count
FROM (${inventory})
WHERE status = 'unregistered'
ORDER BY activity_count DESC, id
${INVENTORY_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Credentials used by several identities',
        description: 'Each credential fingerprint used by several identities, with who used it and when.',
        w: 12,
        h: 9,
        sql: `${shared}
ORDER BY identities DESC, credential_id
${FINAL_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Activity outside approvals',
        description: 'Per declared identity, the activities it performed that its declaration does not approve.',
        w: 12,
        h: 9,
        sql: `${outside}
ORDER BY events DESC, nhi_id, activity_type, activity_name
${FINAL_SETTINGS}`,
      },
      {
        kind: 'timeseries',
        title: 'Failed token exchanges by identity',
        description: `token_exchange spans with status Error per interval (finding kind auth_failures: at least ${d.auth_failures_min_count} in ${d.auth_failures_window.text}).`,
        w: 12,
        h: 9,
        unit: 'short',
        style: { draw: 'bars', stack: true },
        seriesLabel: 'identity',
        sql: `SELECT toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time, if(nhi_id = '', '(no identity)', nhi_id) AS identity, count() AS failures
${ledger(["activity_type = 'token_exchange'", "status = 'error'"])}
GROUP BY time, identity
ORDER BY time, identity
${FINAL_SETTINGS}`,
      },
      {
        kind: 'table',
        title: `Busiest identities per ${d.overactive_window.text}`,
        description: `Most events by one identity in one ${d.overactive_window.text} interval (finding kind overactive: more than ${d.overactive_max_events}).`,
        w: 24,
        h: 8,
        sql: inlineQueryParams(
          `SELECT nhi_id, max(events) AS peak_events, argMax(window_start, events) AS peak_window, {max_events:UInt64} AS threshold
FROM (
  SELECT nhi_id, toStartOfInterval(event_time, toIntervalSecond({window_s:UInt32})) AS window_start, count() AS events
  ${ledger(["nhi_id != ''"])}
  GROUP BY nhi_id, window_start
)
GROUP BY nhi_id
ORDER BY peak_events DESC, nhi_id
LIMIT 20
${FINAL_SETTINGS}`,
          { max_events: d.overactive_max_events, window_s: Math.round(d.overactive_window.ms / 1000) },
        ),
      },
    ],
  }
}

function telemetryDashboard(policy: Policy): DashboardSpec {
  const variables: VariableName[] = ['service']
  const threshold = policy.billing.completeness_threshold
  const [numerator, denominator] = ratioParts(threshold)
  const activity = `FROM nhi_activity FINAL
${INVENTORY_JOIN}
WHERE ${RANGE('event_time')}${AND(ledgerFilters(variables))}`
  return {
    uid: 'nhi-meter-telemetry',
    title: 'nhi-meter / Telemetry completeness',
    description: `How much activity each service reports with an identity. A service below ${threshold} makes the bills it contributes to incomplete; unidentified activity is never billed.`,
    file: 'telemetry.json',
    from: 'now-7d',
    variables: variables.map((v) => VARIABLES[v]),
    panels: [
      {
        kind: 'stat',
        title: 'Identified share of activity',
        description: `Activity spans tied to an identity, all chosen services together (threshold ${threshold}).`,
        w: 8,
        h: 5,
        unit: 'percentunit',
        decimals: 2,
        thresholds: { base: 'red', steps: [{ color: 'green', value: threshold }] },
        sql: `SELECT if(count() = 0, 1, countIf(nhi_id != '') / count()) AS identified_share
${activity}
${FINAL_SETTINGS}`,
      },
      {
        kind: 'stat',
        title: 'Unidentified activity spans',
        description: 'Use events that no rule could tie to an identity: not billed, counted here.',
        w: 8,
        h: 5,
        thresholds: { base: 'green', steps: [{ color: 'orange', value: 1 }] },
        sql: `SELECT countIf(nhi_id = '') AS unidentified_spans
${activity}
${FINAL_SETTINGS}`,
      },
      {
        kind: 'stat',
        title: 'Services below the threshold',
        description: `Services whose identified share is below ${threshold}.`,
        w: 8,
        h: 5,
        thresholds: { base: 'green', steps: [{ color: 'red', value: 1 }] },
        sql: `SELECT countIf(identified * ${denominator} < spans * ${numerator}) AS services_below
FROM (SELECT service, count() AS spans, countIf(nhi_id != '') AS identified
  ${activity}
  GROUP BY service)
${FINAL_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Completeness per service',
        description:
          'Per service, as GET /v1/telemetry/completeness counts them: activity spans, how many carry an identity, the share and status; then the attribute problems behind it: no identity; an nhi.type outside the vocabulary, or a malformed nhi.activity.type (the checks of that endpoint); and, for identified spans, no business unit, no owner, no nhi.type (typed "other"), identity only on the resource.',
        w: 24,
        h: 9,
        columns: { identified_share: { unit: 'percentunit', decimals: 2 } },
        sql: inlineQueryParams(
          `SELECT service, count() AS activity_spans, countIf(nhi_id != '') AS identified_spans,
  identified_spans / activity_spans AS identified_share,
  if(identified_spans * ${denominator} >= activity_spans * ${numerator}, 'complete', 'incomplete') AS status,
  countIf(nhi_id = '') AS no_identity,
  countIf(nhi_type NOT IN {known_types:Array(String)}) AS unknown_type,
  countIf(NOT match(activity_type, {activity_type_pattern:String})) AS bad_activity_type,
  countIf(nhi_id != '' AND ${BUSINESS_UNIT} = '') AS no_business_unit,
  countIf(nhi_id != '' AND ${EFFECTIVE_OWNER} = '') AS no_owner,
  countIf(nhi_id != '' AND ${EFFECTIVE_TYPE} = 'other') AS untyped,
  countIf(startsWith(identity_source, 'resource:')) AS identity_on_resource
${activity}
GROUP BY service
ORDER BY identified_share, service
${FINAL_SETTINGS}`,
          // Unidentified spans have no type at all; they count as no_identity instead.
          { known_types: [...NHI_TYPES, ''], activity_type_pattern: CUSTOM_ACTIVITY_TYPE_PATTERN },
        ),
      },
      {
        kind: 'timeseries',
        title: 'Identified share by service',
        description: 'Share of activity spans with an identity, per interval and service.',
        w: 12,
        h: 9,
        unit: 'percentunit',
        style: { draw: 'line', stack: false },
        seriesLabel: 'service',
        sql: `SELECT toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time, service, countIf(nhi_id != '') / count() AS identified_share
${activity}
GROUP BY time, service
ORDER BY time, service
${FINAL_SETTINGS}`,
      },
      {
        kind: 'timeseries',
        title: 'Activity spans by service',
        description: `Activity spans per interval and service; a service that goes quiet shows as a gap (finding kind telemetry_gap looks for ${policy.detection.telemetry_gap_silence.text} of silence).`,
        w: 12,
        h: 9,
        unit: 'short',
        style: { draw: 'bars', stack: true },
        seriesLabel: 'service',
        sql: `SELECT toStartOfInterval(event_time, INTERVAL $__interval_s second) AS time, service, count() AS activity_spans
${activity}
GROUP BY time, service
ORDER BY time, service
${FINAL_SETTINGS}`,
      },
      {
        kind: 'table',
        title: 'Spans delivered per service',
        description: 'Raw spans as delivered into otel_traces (duplicates and non-activity spans included) and the last one seen: a service that stopped sending shows an old last span.',
        w: 24,
        h: 8,
        sql: `SELECT ServiceName AS service_name, count() AS spans_delivered, uniqExact(TraceId, SpanId) AS distinct_spans, max(Timestamp) AS last_span
FROM otel_traces
WHERE $__timeFilter(Timestamp)
  AND ${variableFilter('service', 'ServiceName')}
GROUP BY service_name
ORDER BY service_name`,
      },
    ],
  }
}

/** Every dashboard, rendered for a policy: file name → dashboard JSON. */
export function renderDashboards(policy: Policy): Array<{ file: string; json: Record<string, unknown> }> {
  return [billingDashboard(policy), identitiesDashboard(policy), findingsDashboard(policy), telemetryDashboard(policy), serviceDashboard()].map((spec) => ({ file: spec.file, json: dashboardJson(spec) }))
}

/** The text written to a dashboard file. */
export function dashboardFileText(json: Record<string, unknown>): string {
  return `${JSON.stringify(json, null, 2)}\n`
}
