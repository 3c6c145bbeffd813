/**
 * GET /v1/billable: billable activity over a range, grouped as asked,
 * priced by the rate card in force at each event's start, with the
 * completeness of the evidence stated in every format.
 */
import { Hono } from 'hono'
import { badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseEnum, parseList, parseRange, rejectUnknown } from '../http/params.js'
import { addMoney, formatMoney, multiplyMoney, ZERO_MONEY, type Money } from '../money/decimal.js'
import { loadPlanFacts, planUsage } from './plan.js'
import { billableAggregates, completenessCounts, GRANULARITIES, GROUP_BY_KEYS, type GroupByKey } from './queries.js'
import { completenessStatus } from '../policy/index.js'
import type { Pricing } from './pricing.js'
import type { ClickHouseClient } from '@clickhouse/client'

/** What the billing routes need. */
export interface BillingDeps {
  client: ClickHouseClient
  /** Rate cards in effective order, currency and completeness threshold from the current policy. */
  pricing: () => Pricing
  /** Seconds of ingest before the last rollup run still treated as in flight (default ROLLUP_GRACE_SECONDS). */
  rollupGraceSeconds?: number
}

/** The completeness block of a billing answer. */
export interface Completeness {
  spans: number
  identified_spans: number
  identified_ratio: number
  status: 'complete' | 'incomplete'
  threshold: number
}

const PARAMS = ['from', 'to', 'group_by', 'granularity', 'format'] as const
const DEFAULT_GROUP_BY: GroupByKey[] = ['nhi.id', 'meter']

function csvField(value: string | number): string {
  const s = String(value)
  // Quote fields with separators, and neutralise leading formula characters for spreadsheet users.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d/.test(s) ? `'${s}` : s
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}

/** Builds the billing sub-app. */
export function billingRoutes(deps: BillingDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.get('/billable', requireScope('billing:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, PARAMS)
    const range = parseRange(query)
    const groupBy = parseList('group_by', query.group_by, GROUP_BY_KEYS, DEFAULT_GROUP_BY)
    const granularity = parseEnum('granularity', query.granularity, GRANULARITIES, 'day')
    if (query.granularity !== undefined && !groupBy.includes('period')) throw badParameter('granularity', 'applies only when group_by includes period')
    const accept = c.req.header('accept') ?? ''
    const format = parseEnum('format', query.format, ['json', 'csv'] as const, /\btext\/csv\b/.test(accept) ? 'csv' : 'json')
    const businessUnits = c.get('principal').businessUnits
    const { cards, currency, completenessThreshold } = deps.pricing()

    const facts = await loadPlanFacts(deps.client, range, deps.rollupGraceSeconds)
    const plan = planUsage(range, facts, cards, groupBy.includes('period') ? granularity : 'month')
    const [aggregates, counts] = await Promise.all([
      billableAggregates(deps.client, { groupBy, granularity, cards, businessUnits, plan }),
      completenessCounts(deps.client, plan, businessUnits),
    ])

    // Fold (keys, card, meter) aggregates into the requested rows, pricing each part exactly.
    const rows = new Map<string, { keys: Record<string, string>; quantity: number; amount: Money }>()
    const versions = new Set<string>()
    for (const agg of aggregates) {
      const card = cards[agg.cardIndex]!
      const meter = card.meters[agg.meterIndex]!
      versions.add(card.version)
      const keys = Object.fromEntries(groupBy.map((k) => [k, k === 'meter' ? meter.name : (agg.keys[k] ?? '')]))
      const id = JSON.stringify(groupBy.map((k) => keys[k]))
      const row = rows.get(id) ?? { keys, quantity: 0, amount: ZERO_MONEY }
      row.quantity += agg.quantity
      row.amount = addMoney(row.amount, multiplyMoney(meter.unit_price, agg.quantity))
      rows.set(id, row)
    }
    const sorted = [...rows.values()].sort((a, b) => {
      for (const k of groupBy) {
        const cmp = (a.keys[k] ?? '').localeCompare(b.keys[k] ?? '')
        if (cmp !== 0) return cmp
      }
      return 0
    })
    let totalQuantity = 0
    let totalAmount = ZERO_MONEY
    for (const row of sorted) {
      totalQuantity += row.quantity
      totalAmount = addMoney(totalAmount, row.amount)
    }
    const ratio = counts.spans === 0 ? 1 : counts.identifiedSpans / counts.spans
    const completeness: Completeness = {
      spans: counts.spans,
      identified_spans: counts.identifiedSpans,
      identified_ratio: Math.floor(ratio * 1e6) / 1e6,
      status: completenessStatus(counts.spans, counts.identifiedSpans, completenessThreshold),
      threshold: completenessThreshold,
    }
    c.header('X-NHI-Meter-Completeness', completeness.status)

    if (format === 'csv') {
      const header = [...groupBy, 'quantity', 'amount', 'currency', 'completeness']
      const lines = [header.join(',')]
      for (const row of sorted) {
        lines.push([...groupBy.map((k) => row.keys[k] ?? ''), row.quantity, formatMoney(row.amount), currency, completeness.status].map(csvField).join(','))
      }
      c.header('Content-Type', 'text/csv; charset=utf-8')
      c.header('Content-Disposition', 'attachment; filename="billable.csv"')
      return c.body(`${lines.join('\n')}\n`)
    }
    return c.json({
      from: range.from.toISOString(),
      to: range.to.toISOString(),
      currency,
      rate_card_versions: [...versions].sort(),
      completeness,
      rows: sorted.map((row) => ({ ...row.keys, quantity: row.quantity, amount: formatMoney(row.amount) })),
      total: { quantity: totalQuantity, amount: formatMoney(totalAmount) },
    })
  })
  return app
}
