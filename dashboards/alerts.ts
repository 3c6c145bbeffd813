/**
 * Grafana alert rules for nhi-meter, file-provisioned
 * (dashboards/provisioning/alerting/nhi-meter.yaml, written by generate.ts
 * for a policy, like the dashboards):
 *
 * - completeness below the policy's threshold, per service: ClickHouse, the
 *   identified share the telemetry dashboard and GET /v1/telemetry/completeness
 *   compute (checked against the API on the demo data in test/dashboards.test.ts);
 * - ingest refusals above a rate, background job lag, and new high-severity
 *   findings: Prometheus, from the service's own metrics (checked against a
 *   real scrape and run on a real Prometheus in test/metrics/scrape.test.ts).
 *
 * Findings are computed in TypeScript (query-service/src/findings), not in
 * SQL, so the findings rule reads the service's findings metrics rather than
 * restating the rules in SQL.
 */
import { stringify } from 'yaml'
import type { Policy } from '../query-service/src/policy/index.js'
import { DATASOURCE, PROMETHEUS_DATASOURCE } from './model.js'
import { SERVICE_JOB } from './service.js'

/** Where Grafana's file provisioning reads the rules (docker-compose mounts the folder). */
export const ALERT_RULES_FILE = 'provisioning/alerting/nhi-meter.yaml'

/** Thresholds of the Prometheus rules (README, Alert rules). */
export const ALERT_THRESHOLDS = {
  /** Refused spans per second, over 5 minutes. */
  refusedSpansPerSecond: 1,
  /** Export requests answered 429 or 503 per second, over 5 minutes. */
  refusedExportsPerSecond: 0.1,
  /** Seconds since a periodic job last succeeded. */
  jobLagSeconds: 900,
} as const

/** One query or expression of a rule, as Grafana's provisioning file holds it. */
export interface AlertQuery {
  refId: string
  relativeTimeRange?: { from: number; to: number }
  datasourceUid: string
  model: Record<string, unknown>
}

/** One rule. */
export interface AlertRule {
  uid: string
  title: string
  condition: string
  data: AlertQuery[]
  noDataState: 'OK' | 'NoData' | 'Alerting'
  execErrState: 'OK' | 'Error' | 'Alerting'
  for: string
  annotations: Record<string, string>
  labels: Record<string, string>
  isPaused: boolean
}

/** The provisioning file's content. */
export interface AlertRulesFile {
  apiVersion: 1
  groups: Array<{ orgId: number; name: string; folder: string; interval: string; rules: AlertRule[] }>
}

const EXPRESSION = { type: '__expr__', uid: '__expr__' } as const

function prometheusQuery(refId: string, expr: string, seconds = 600): AlertQuery {
  return { refId, relativeTimeRange: { from: seconds, to: 0 }, datasourceUid: PROMETHEUS_DATASOURCE.uid, model: { refId, datasource: PROMETHEUS_DATASOURCE, expr, instant: true, range: false } }
}

function threshold(refId: string, input: string, type: 'gt' | 'lt', value: number): AlertQuery {
  return { refId, datasourceUid: EXPRESSION.uid, model: { refId, datasource: EXPRESSION, type: 'threshold', expression: input, conditions: [{ evaluator: { type, params: [value] } }] } }
}

/** The identified share per service over the rule's range (the telemetry dashboard's measure). */
export function completenessSql(): string {
  return `SELECT service, countIf(nhi_id != '') / count() AS identified_share
FROM nhi_activity FINAL
WHERE event_time >= $__fromTime AND event_time < $__toTime
GROUP BY service
SETTINGS do_not_merge_across_partitions_select_final = 1`
}

/** The alert rules for a policy (its completeness threshold). */
export function renderAlertRules(policy: Policy): AlertRulesFile {
  const completeness = policy.billing.completeness_threshold
  const t = ALERT_THRESHOLDS
  const rules: AlertRule[] = [
    {
      uid: 'nhi-meter-completeness',
      title: 'Telemetry completeness below the threshold',
      condition: 'C',
      data: [
        { refId: 'A', relativeTimeRange: { from: 3600, to: 0 }, datasourceUid: DATASOURCE.uid, model: { refId: 'A', datasource: DATASOURCE, editorType: 'sql', format: 1, queryType: 'table', rawSql: completenessSql() } },
        threshold('C', 'A', 'lt', completeness),
      ],
      // No activity in the hour is not incompleteness.
      noDataState: 'OK',
      execErrState: 'Error',
      for: '15m',
      annotations: {
        summary: 'Service {{ $labels.service }}: identified share {{ humanizePercentage $values.A.Value }} over the last hour, below the policy threshold ' + String(completeness),
        description: 'Bills that include this service are incomplete (billing.completeness_threshold). GET /v1/telemetry/completeness lists the reasons per service; the telemetry dashboard shows them.',
      },
      labels: { severity: 'warning', component: 'nhi-meter' },
      isPaused: false,
    },
    {
      uid: 'nhi-meter-ingest-refusals',
      title: 'Ingest refusals above the rate',
      condition: 'C',
      data: [
        prometheusQuery('A', `sum(rate(nhi_meter_otlp_spans_refused_total{${SERVICE_JOB}}[5m]))`),
        prometheusQuery('B', `sum(rate(nhi_meter_otlp_export_requests_total{${SERVICE_JOB},http_response_status_code=~"429|503"}[5m]))`),
        { refId: 'C', datasourceUid: EXPRESSION.uid, model: { refId: 'C', datasource: EXPRESSION, type: 'math', expression: `$A > ${t.refusedSpansPerSecond} || $B > ${t.refusedExportsPerSecond}` } },
      ],
      noDataState: 'NoData',
      execErrState: 'Error',
      for: '5m',
      annotations: {
        summary: `The receiver refuses spans (over ${t.refusedSpansPerSecond}/s) or whole exports with 429/503 (over ${t.refusedExportsPerSecond}/s)`,
        description: 'A full ingest log (ClickHouse slow or away), a failing disk or invalid spans. The service dashboard shows refusals by reason and the ingest log against its limits.',
      },
      labels: { severity: 'critical', component: 'nhi-meter' },
      isPaused: false,
    },
    {
      uid: 'nhi-meter-job-lag',
      title: 'Background job lagging',
      condition: 'C',
      data: [prometheusQuery('A', `max by (nhi_meter_job) (nhi_meter_job_lag_seconds{${SERVICE_JOB}})`), threshold('C', 'A', 'gt', t.jobLagSeconds)],
      noDataState: 'NoData',
      execErrState: 'Error',
      for: '5m',
      annotations: {
        summary: `Job {{ $labels.nhi_meter_job }} has not completed a run for {{ humanizeDuration $values.A.Value }} (threshold ${t.jobLagSeconds} s)`,
        description: 'Its runs fail or take too long; the service log says why. Billing stays exact while the usage summary lags (it reads the ledger), only slower; events waiting for trace resolution count as unidentified.',
      },
      labels: { severity: 'warning', component: 'nhi-meter' },
      isPaused: false,
    },
    {
      uid: 'nhi-meter-new-high-findings',
      title: 'New high-severity findings',
      condition: 'C',
      data: [
        prometheusQuery('A', `sum by (nhi_meter_finding_kind) (increase(nhi_meter_findings_opened_total{${SERVICE_JOB},nhi_meter_finding_severity="high"}[15m]))`, 900),
        threshold('C', 'A', 'gt', 0),
      ],
      noDataState: 'NoData',
      execErrState: 'Error',
      for: '0s',
      annotations: {
        summary: 'New high-severity {{ $labels.nhi_meter_finding_kind }} finding(s) in the last 15 minutes',
        description: 'GET /v1/findings?kind={{ $labels.nhi_meter_finding_kind }} lists them with their evidence and controls.',
      },
      labels: { severity: 'critical', component: 'nhi-meter' },
      isPaused: false,
    },
  ]
  return { apiVersion: 1, groups: [{ orgId: 1, name: 'nhi-meter', folder: 'nhi-meter', interval: '1m', rules }] }
}

/**
 * Grafana expands environment variables in every string of a provisioning
 * file and reads `$$` as a literal `$`
 * (https://grafana.com/docs/grafana/latest/administration/provisioning/#using-environment-variables),
 * so the `$` of macros (`$__fromTime`), expressions (`$A`) and templates
 * (`$labels`) is written doubled.
 */
function escapeDollars<T>(value: T): T {
  if (typeof value === 'string') return value.replaceAll('$', '$$$$') as T
  if (Array.isArray(value)) return value.map(escapeDollars) as T
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeDollars(v)])) as T
  return value
}

/** What Grafana reads from a provisioning file's string: `$$` is a literal `$` (tests use it to run the queries). */
export function provisionedString(text: string): string {
  return text.replaceAll('$$', '$')
}

/** The text written to the provisioning file. */
export function alertRulesFileText(rules: AlertRulesFile): string {
  return `# Grafana alert rules for nhi-meter, GENERATED by dashboards/generate.ts from
# dashboards/alerts.ts for a policy (do not edit by hand: npm run dashboards).
# Grafana loads this folder as alerting provisioning (docker-compose.yml mounts
# it at /etc/grafana/provisioning/alerting). Datasources by uid: nhi-clickhouse,
# nhi-prometheus (dashboards/provisioning/datasources/). Every $ is written $$,
# since Grafana expands environment variables in provisioning files.
${stringify(escapeDollars(rules), { lineWidth: 0, aliasDuplicateObjects: false })}`
}
