/**
 * The parts of Grafana's dashboard JSON model the nhi-meter dashboards use,
 * built from small panel descriptions: every panel queries the provisioned
 * ClickHouse datasource (fixed uid) with raw SQL, panels are laid out in
 * reading order, and nothing an export would add (`__inputs`,
 * `__requires`, numeric ids, iteration stamps) is written.
 */

/** The provisioned datasource (dashboards/provisioning/datasources/clickhouse.yaml). */
export const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'nhi-clickhouse' } as const

/** The provisioned Prometheus that scrapes nhi-meter and the Collector (dashboards/provisioning/datasources/prometheus.yaml). */
export const PROMETHEUS_DATASOURCE = { type: 'prometheus', uid: 'nhi-prometheus' } as const

/** Tag every nhi-meter dashboard carries; dashboards link to each other through it. */
export const DASHBOARD_TAG = 'nhi-meter'

/** Grafana's dashboard schema version these files are written for. */
export const SCHEMA_VERSION = 41

/** A panel as the definitions describe it. */
export interface PanelSpec {
  kind: 'stat' | 'table' | 'timeseries' | 'barchart' | 'text'
  title: string
  description: string
  /** Width in grid columns (24 across) and height in rows. */
  w: number
  h: number
  /** The panel's SQL, with Grafana macros and variables (ClickHouse panels). */
  sql?: string
  /** Prometheus panels: one query per series group, with its legend (`{{label}}`). */
  promql?: Array<{ expr: string; legend: string }>
  /** Markdown, for text panels. */
  content?: string
  unit?: string
  decimals?: number
  /** Threshold steps after the base colour, e.g. [{ color: 'green', value: 0.99 }]. */
  thresholds?: { base: string; steps: Array<{ color: string; value: number }> }
  /** Time series: bars or lines, stacked or not. */
  style?: { draw: 'bars' | 'line'; stack: boolean }
  /** Series name from a label of the long-format result (time series). */
  seriesLabel?: string
  /** Per-column units and display names (tables). */
  columns?: Record<string, { unit?: string; displayName?: string; decimals?: number }>
}

/** A template variable: a multi-value ClickHouse query with All. */
export interface VariableSpec {
  name: string
  label: string
  description: string
  sql: string
}

/** A dashboard as the definitions describe it. */
export interface DashboardSpec {
  uid: string
  title: string
  description: string
  /** File name under dashboards/json/. */
  file: string
  variables: VariableSpec[]
  panels: PanelSpec[]
  /** Default time range, e.g. now-7d. */
  from: string
}

function target(sql: string, kind: PanelSpec['kind']) {
  const timeSeries = kind === 'timeseries'
  return {
    refId: 'A',
    datasource: DATASOURCE,
    editorType: 'sql',
    // The plugin's backend turns a long result (time, label, value) into one series per label in time-series format (0); tables stay as they are (1).
    format: timeSeries ? 0 : 1,
    queryType: timeSeries ? 'timeseries' : 'table',
    rawSql: sql,
  }
}

function thresholds(spec: PanelSpec) {
  const t = spec.thresholds ?? { base: 'green', steps: [] }
  return { mode: 'absolute', steps: [{ color: t.base, value: null }, ...t.steps] }
}

function panelJson(spec: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }): Record<string, unknown> {
  const base = { id, type: spec.kind, title: spec.title, description: spec.description, gridPos }
  if (spec.kind === 'text') {
    return { ...base, options: { mode: 'markdown', content: spec.content ?? '' } }
  }
  const defaults: Record<string, unknown> = {
    ...(spec.unit ? { unit: spec.unit } : {}),
    ...(spec.decimals !== undefined ? { decimals: spec.decimals } : {}),
    thresholds: thresholds(spec),
    color: { mode: spec.kind === 'stat' ? 'thresholds' : 'palette-classic' },
  }
  if (spec.seriesLabel) defaults.displayName = `\${__field.labels.${spec.seriesLabel}}`
  const overrides = Object.entries(spec.columns ?? {}).map(([column, c]) => ({
    matcher: { id: 'byName', options: column },
    properties: [
      ...(c.unit ? [{ id: 'unit', value: c.unit }] : []),
      ...(c.displayName ? [{ id: 'displayName', value: c.displayName }] : []),
      ...(c.decimals !== undefined ? [{ id: 'decimals', value: c.decimals }] : []),
    ],
  }))
  let options: Record<string, unknown>
  if (spec.kind === 'stat') {
    options = { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', justifyMode: 'auto', textMode: 'auto', orientation: 'auto' }
  } else if (spec.kind === 'table') {
    defaults.custom = { align: 'auto', filterable: true }
    options = { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } }
  } else if (spec.kind === 'barchart') {
    options = { orientation: 'horizontal', showValue: 'auto', stacking: 'none', legend: { showLegend: false, displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'single', sort: 'none' } }
  } else {
    const style = spec.style ?? { draw: 'line', stack: false }
    defaults.custom = {
      drawStyle: style.draw,
      lineWidth: 1,
      fillOpacity: style.draw === 'bars' ? 80 : 10,
      barAlignment: -1,
      showPoints: 'never',
      stacking: { mode: style.stack ? 'normal' : 'none', group: 'A' },
      spanNulls: false,
    }
    // Summed events for the SQL panels' counts; rates and gauges from Prometheus read better as mean and max.
    options = { legend: { showLegend: true, displayMode: 'table', placement: 'right', calcs: spec.promql ? ['mean', 'max'] : ['sum'] }, tooltip: { mode: 'multi', sort: 'desc' } }
  }
  if (spec.promql) {
    // A stat shows the latest value (instant query); graphs a range.
    const targets = spec.promql.map((q, i) => ({ refId: String.fromCharCode(65 + i), datasource: PROMETHEUS_DATASOURCE, editorMode: 'code', expr: q.expr, legendFormat: q.legend, range: spec.kind !== 'stat', instant: spec.kind === 'stat' }))
    return { ...base, datasource: PROMETHEUS_DATASOURCE, targets, fieldConfig: { defaults, overrides }, options }
  }
  return { ...base, datasource: DATASOURCE, targets: [target(spec.sql ?? '', spec.kind)], fieldConfig: { defaults, overrides }, options }
}

function variableJson(spec: VariableSpec): Record<string, unknown> {
  return {
    name: spec.name,
    label: spec.label,
    description: spec.description,
    type: 'query',
    datasource: DATASOURCE,
    query: spec.sql,
    definition: spec.sql,
    multi: true,
    includeAll: true,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    // Options follow the time range: refresh on time range change.
    refresh: 2,
    sort: 1,
    hide: 0,
    options: [],
  }
}

/** Lays panels out left to right, top to bottom, and renders the dashboard JSON. */
export function dashboardJson(spec: DashboardSpec): Record<string, unknown> {
  let x = 0
  let y = 0
  let rowHeight = 0
  const panels = spec.panels.map((panel, i) => {
    if (x + panel.w > 24) {
      x = 0
      y += rowHeight
      rowHeight = 0
    }
    const gridPos = { x, y, w: panel.w, h: panel.h }
    x += panel.w
    rowHeight = Math.max(rowHeight, panel.h)
    return panelJson(panel, i + 1, gridPos)
  })
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: [DASHBOARD_TAG],
    timezone: 'utc',
    editable: false,
    graphTooltip: 1,
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    time: { from: spec.from, to: 'now' },
    refresh: '1m',
    links: [{ title: 'nhi-meter dashboards', type: 'dashboards', tags: [DASHBOARD_TAG], asDropdown: true, includeVars: true, keepTime: true, icon: 'external link', targetBlank: false }],
    annotations: { list: [] },
    templating: { list: spec.variables.map(variableJson) },
    panels,
  }
}
