// nhi-meter overview page: reads the JSON API with the user's key and draws
// the essentials (billable activity by business unit, top identities by
// cost, every meter's usage, open findings, completeness per service).
// "Events" are what count meters count; meters that sum a value (tokens,
// milliseconds) or count active identities show in the meters table and in
// every amount. The key lives in this
// tab's sessionStorage only and travels as an Authorization header, never in
// a URL. Every value from the API is written with textContent.
import uPlot from '/assets/uplot.js'

const KEY_STORAGE = 'nhi-meter.api-key'
const TOP_IDENTITIES = 10
const MAX_FINDINGS = 25
const SCALE = 1_000_000_000n
const COLORS = ['#3b6fd8', '#e67e22', '#27ae60', '#8e44ad', '#c0392b', '#16a085', '#d4ac0d', '#7f8c8d', '#2c3e50', '#e84393']

const $ = (id) => document.getElementById(id)

/** Thrown for an API answer other than 200, with the status kept for the caller. */
class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

// ---- exact money: decimal strings to integers of 1e-9 units and back (the API's format)

function parseAmount(text) {
  const match = /^(\d+)(?:\.(\d{1,9}))?$/.exec(text)
  if (!match) throw new Error(`not an amount: ${text}`)
  return BigInt(match[1]) * SCALE + BigInt((match[2] ?? '').padEnd(9, '0'))
}

function formatAmount(units) {
  const fraction = (units % SCALE).toString().padStart(9, '0').replace(/0+$/, '').padEnd(2, '0')
  return `${(units / SCALE).toString()}.${fraction}`
}

const formatCount = (n) => n.toLocaleString('en-US')

// ---- API

function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE)
}

async function api(path, params) {
  const key = storedKey()
  const url = `${path}?${new URLSearchParams(params).toString()}`
  const response = await fetch(url, { headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' }, cache: 'no-store', credentials: 'omit' })
  if (!response.ok) {
    let message = `${response.status}`
    try {
      message = (await response.json()).error?.message ?? message
    } catch {
      // not JSON: keep the status
    }
    throw new ApiError(response.status, message)
  }
  return response.json()
}

function rangeOf(choice, now = new Date()) {
  const to = new Date(Math.ceil(now.getTime() / 1000) * 1000)
  const hours = { '24h': 24, '7d': 7 * 24, '30d': 30 * 24 }[choice]
  const from = hours ? new Date(to.getTime() - hours * 3_600_000) : new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), 1))
  return { from: from.toISOString().replace('.000Z', 'Z'), to: to.toISOString().replace('.000Z', 'Z'), granularity: hours && hours <= 7 * 24 ? 'hour' : 'day' }
}

// ---- DOM helpers

function cell(text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  return td
}

function row(cells, className) {
  const tr = document.createElement('tr')
  for (const c of cells) tr.append(c)
  if (className) tr.className = className
  return tr
}

function fill(section, rows) {
  section.replaceChildren(...rows)
}

function emptyRow(columns, text) {
  const td = cell(text)
  td.colSpan = columns
  return row([td], 'empty')
}

// ---- sections

/** Names of the bill's count meters: their quantities are events, the others' are tokens, milliseconds or identities. */
function countMeters(bill) {
  return new Set(bill.meters.filter((m) => m.aggregation === 'count').map((m) => m.meter))
}

/** Events of a row: its quantity when its meter counts events, else 0. */
function eventsOf(row, counted) {
  return counted.has(row.meter) ? Number(row.quantity) : 0
}

function renderTotals(bill, currency) {
  const counted = countMeters(bill)
  $('total-events').textContent = formatCount(bill.meters.filter((m) => counted.has(m.meter)).reduce((n, m) => n + Number(m.quantity), 0))
  $('total-amount').textContent = `${bill.total.amount} ${currency}`
  const c = bill.completeness
  const share = $('completeness')
  share.textContent = `${(c.identified_ratio * 100).toFixed(1)}% ${c.status}`
  share.className = `figure ${c.status}`
  $('completeness-detail').textContent = `${formatCount(c.identified_spans)} of ${formatCount(c.spans)} activity spans tied to an identity (threshold ${c.threshold * 100}%)`
  $('identities-billed').textContent = formatCount(new Set(bill.rows.map((r) => r['nhi.id'])).size)
}

function measureOf(meter) {
  if (meter.aggregation === 'sum') return `sum of ${meter.value}`
  if (meter.aggregation === 'active_identities') return 'active identities'
  return 'events'
}

function renderMeters(bill, currency) {
  const body = $('meters-table').tBodies[0]
  fill(
    body,
    bill.meters.length === 0
      ? [emptyRow(5, 'No billable activity in this range.')]
      : bill.meters.map((m) =>
          row([
            cell(m.meter),
            cell(measureOf(m)),
            cell(typeof m.quantity === 'number' ? formatCount(m.quantity) : m.quantity, 'num'),
            cell(m.aggregation === 'sum' ? formatCount(m.events_without_value) : '–', 'num'),
            cell(`${m.amount} ${currency}`, 'num'),
          ]),
        ),
  )
}

let chart = null

function renderActivity(byPeriod, range, currency) {
  const counted = countMeters(byPeriod)
  const periods = [...new Set(byPeriod.rows.map((r) => r.period))].sort()
  const units = [...new Set(byPeriod.rows.map((r) => r.business_unit))].sort()
  const index = new Map(periods.map((p, i) => [p, i]))
  const series = units.map(() => periods.map(() => 0))
  const totals = new Map(units.map((u) => [u, { events: 0, amount: 0n }]))
  for (const r of byPeriod.rows) {
    const u = units.indexOf(r.business_unit)
    series[u][index.get(r.period)] += eventsOf(r, counted)
    const t = totals.get(r.business_unit)
    t.events += eventsOf(r, counted)
    t.amount += parseAmount(r.amount)
  }
  const label = (u) => (u === '' ? '(no business unit)' : u)

  const container = $('activity-chart')
  chart?.destroy()
  chart = null
  container.replaceChildren()
  if (periods.length === 0) {
    const none = document.createElement('p')
    none.className = 'subtle'
    none.textContent = 'No billable activity in this range.'
    container.append(none)
  } else {
    const width = Math.max(container.clientWidth - 16, 320)
    chart = new uPlot(
      {
        width,
        height: 300,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        // The whole chosen range, so a quiet stretch shows as quiet and a single period does not fill the width.
        scales: { x: { time: true, range: [Date.parse(range.from) / 1000, Date.parse(range.to) / 1000] } },
        axes: [{}, { label: `billable events per ${byPeriod.granularity}` }],
        series: [
          { label: `${byPeriod.granularity} (UTC)` },
          ...units.map((u, i) => ({
            label: label(u),
            stroke: COLORS[i % COLORS.length],
            fill: `${COLORS[i % COLORS.length]}22`,
            width: 2,
            points: { show: true, size: 7 },
          })),
        ],
      },
      [periods.map((p) => Date.parse(p) / 1000), ...series],
      container,
    )
  }

  const body = $('activity-table').tBodies[0]
  fill(
    body,
    units.length === 0
      ? [emptyRow(3, 'No billable activity in this range.')]
      : units.map((u) => row([cell(label(u)), cell(formatCount(totals.get(u).events), 'num'), cell(`${formatAmount(totals.get(u).amount)} ${currency}`, 'num')])),
  )
  let events = 0
  let amount = 0n
  for (const t of totals.values()) {
    events += t.events
    amount += t.amount
  }
  fill($('activity-table').tFoot, [row([cell('Total'), cell(formatCount(events), 'num'), cell(`${formatAmount(amount)} ${currency}`, 'num')])])
}

function renderIdentities(bill, currency) {
  const counted = countMeters(bill)
  const byId = new Map()
  for (const r of bill.rows) {
    const entry = byId.get(r['nhi.id']) ?? { id: r['nhi.id'], events: 0, amount: 0n }
    entry.events += eventsOf(r, counted)
    entry.amount += parseAmount(r.amount)
    byId.set(entry.id, entry)
  }
  const rows = [...byId.values()]
  rows.sort((a, b) => (a.amount === b.amount ? b.events - a.events || a.id.localeCompare(b.id) : a.amount > b.amount ? -1 : 1))
  const top = rows.slice(0, TOP_IDENTITIES)
  const max = top[0]?.amount ?? 0n
  const body = $('identities-table').tBodies[0]
  fill(
    body,
    top.length === 0
      ? [emptyRow(4, 'No billable activity in this range.')]
      : top.map((r) => {
          const bar = document.createElement('div')
          bar.className = 'bar'
          bar.style.width = max === 0n ? '0%' : `${Number((r.amount * 1000n) / max) / 10}%`
          const share = document.createElement('td')
          share.className = 'bar-cell'
          share.append(bar)
          return row([cell(r.id), cell(formatCount(r.events), 'num'), cell(`${formatAmount(r.amount)} ${currency}`, 'num'), share])
        }),
  )
  const rest = rows.length - top.length
  fill($('identities-table').tFoot, [
    row([
      cell(rest > 0 ? `All ${rows.length} identities (${rest} more not shown)` : `All ${rows.length} identities`),
      cell(formatCount(rows.reduce((n, r) => n + r.events, 0)), 'num'),
      cell(`${bill.total.amount} ${currency}`, 'num'),
      cell(''),
    ]),
  ])
}

const SEVERITY_ORDER = { high: 0, medium: 1, low: 2 }

function renderFindings(result) {
  const body = $('findings-table').tBodies[0]
  const note = $('findings-note')
  if (result.unavailable) {
    note.textContent = result.unavailable
    fill(body, [emptyRow(4, 'Findings not available.')])
    return
  }
  const findings = [...result.findings].sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3) || a.kind.localeCompare(b.kind) || String(a.nhi_id).localeCompare(String(b.nhi_id)))
  const bySeverity = (s) => findings.filter((f) => f.severity === s).length
  note.textContent = `${findings.length} finding${findings.length === 1 ? '' : 's'}: ${bySeverity('high')} high, ${bySeverity('medium')} medium, ${bySeverity('low')} low${findings.length > MAX_FINDINGS ? ` (first ${MAX_FINDINGS} shown)` : ''}.`
  fill(
    body,
    findings.length === 0
      ? [emptyRow(4, 'No findings in this range.')]
      : findings.slice(0, MAX_FINDINGS).map((f) => row([cell(f.severity, `severity-${f.severity}`), cell(f.kind), cell(f.nhi_id ?? '(service)'), cell(f.summary)])),
  )
}

function renderServices(result) {
  const body = $('services-table').tBodies[0]
  const note = $('services-note')
  if (result.unavailable) {
    note.textContent = result.unavailable
    fill(body, [emptyRow(6, 'Per-service completeness not available.')])
    return
  }
  note.textContent = `Threshold ${result.threshold * 100}%: a service below it makes the bills it contributes to incomplete.`
  fill(
    body,
    result.services.length === 0
      ? [emptyRow(6, 'No activity spans in this range.')]
      : result.services.map((s) => {
          const problems = (s.attribute_problems ?? []).map((p) => `${p.attribute}=${JSON.stringify(p.value)} (${formatCount(p.spans)})`).join(', ')
          const unidentified = s.spans - s.identified_spans
          return row([
            cell(s.service),
            cell(formatCount(s.spans), 'num'),
            cell(formatCount(s.identified_spans), 'num'),
            cell(`${(s.identified_ratio * 100).toFixed(1)}%`, 'num'),
            cell(s.status, s.status),
            cell([unidentified > 0 ? `${formatCount(unidentified)} without identity` : '', problems].filter(Boolean).join('; ') || 'none'),
          ])
        }),
  )
}

/** An optional section's data, or why it is not shown. */
async function optional(path, params) {
  try {
    return await api(path, params)
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return { unavailable: `Not available on this server (${path} is not served).` }
    if (error instanceof ApiError && error.status === 403) return { unavailable: `This key may not read ${path}: ${error.message}` }
    if (error instanceof ApiError && error.status === 401) throw error
    return { unavailable: `${path} failed: ${error.message}` }
  }
}

// ---- page flow

function showKeyForm(problem = '') {
  $('overview').hidden = true
  $('forget-key').hidden = true
  $('key-section').hidden = false
  $('key-problem').textContent = problem
  $('api-key').focus()
}

let loading = 0

async function load() {
  if (!storedKey()) return showKeyForm()
  const ticket = ++loading
  const range = rangeOf($('range').value)
  const base = { from: range.from, to: range.to }
  $('status').textContent = 'Loading…'
  try {
    const [byIdentity, byPeriod, findings, services] = await Promise.all([
      api('/v1/billable', { ...base, group_by: 'nhi.id,meter' }),
      api('/v1/billable', { ...base, group_by: 'period,business_unit,meter', granularity: range.granularity }),
      optional('/v1/findings', base),
      optional('/v1/telemetry/completeness', base),
    ])
    if (ticket !== loading) return
    $('key-section').hidden = true
    $('overview').hidden = false
    $('forget-key').hidden = false
    $('range-label').textContent = `${range.from} to ${range.to} (UTC, end excluded), ${byIdentity.currency}, rate cards ${byIdentity.rate_card_versions.join(', ') || 'none in force'}`
    renderTotals(byIdentity, byIdentity.currency)
    renderActivity({ ...byPeriod, granularity: range.granularity }, range, byIdentity.currency)
    renderIdentities(byIdentity, byIdentity.currency)
    renderMeters(byIdentity, byIdentity.currency)
    renderFindings(findings)
    renderServices(services)
    $('status').textContent = `Updated ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC.`
    document.body.dataset.loaded = 'true'
  } catch (error) {
    if (ticket !== loading) return
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(KEY_STORAGE)
      showKeyForm('The server did not accept this key.')
    } else if (error instanceof ApiError && error.status === 403) {
      showKeyForm(`This key may not read billing: ${error.message}`)
    } else {
      $('status').textContent = `Could not load the overview: ${error.message}`
    }
  }
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const key = $('api-key').value.trim()
  if (!key) return
  sessionStorage.setItem(KEY_STORAGE, key)
  $('api-key').value = ''
  load()
})
$('forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE)
  delete document.body.dataset.loaded
  showKeyForm()
})
$('range').addEventListener('change', () => load())
$('refresh').addEventListener('click', () => load())
let resizeTimer
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer)
  resizeTimer = setTimeout(() => chart?.setSize({ width: Math.max($('activity-chart').clientWidth - 16, 320), height: 300 }), 200)
})

load()
