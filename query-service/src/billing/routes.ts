/**
 * GET /v1/billable: billable activity over a range, grouped as asked,
 * priced by the rate card in force at each event's start, with the
 * completeness of the evidence stated in every format.
 */
import { Hono } from 'hono'
import { badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseEnum, parseList, parseRange, rejectUnknown } from '../http/params.js'
import { csvResponse, responseFormat } from '../http/format.js'
import { formatMoney } from '../money/decimal.js'
import { computeBill } from './bill.js'
import { billJson, meterJson } from './bill-json.js'
import { formatQuantity } from '../money/quantity.js'
import type { Pricing } from './pricing.js'
import { GRANULARITIES, GROUP_BY_KEYS, type GroupByKey } from './queries.js'
import type { ClickHouseClient } from '@clickhouse/client'

/** What the billing routes need. */
export interface BillingDeps {
  client: ClickHouseClient
  /** Rate cards in effective order, currency and completeness threshold from the current policy. */
  pricing: () => Pricing
  /** Seconds of ingest before the last rollup run still treated as in flight (default ROLLUP_GRACE_SECONDS). */
  rollupGraceSeconds?: number
}

const PARAMS = ['from', 'to', 'group_by', 'granularity', 'format'] as const
const DEFAULT_GROUP_BY: GroupByKey[] = ['nhi.id', 'meter']


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
    const format = responseFormat(c, query.format)
    const businessUnits = c.get('principal').businessUnits
    const pricing = deps.pricing()
    const { currency } = pricing
    const bill = await computeBill(deps.client, { range, groupBy, granularity, businessUnits, pricing, rollupGraceSeconds: deps.rollupGraceSeconds })
    const { completeness, rows: sorted } = bill
    c.header('X-NHI-Meter-Completeness', completeness.status)

    if (format === 'csv') {
      // With a meter that sums a value, each row says how many of its events carried none (they added 0).
      const valued = pricing.cards.some((card) => card.meters.some((m) => m.aggregation === 'sum'))
      const header = [...groupBy, 'quantity', 'amount', 'currency', 'completeness', ...(valued ? ['events_without_value'] : [])]
      return csvResponse(
        c,
        'billable.csv',
        header,
        sorted.toArray().map((row) => [
          ...row.values,
          formatQuantity(row.quantity),
          formatMoney(row.amount),
          currency,
          completeness.status,
          ...(valued ? [row.eventsWithoutValue] : []),
        ]),
      )
    }
    c.header('Content-Type', 'application/json')
    return c.body(
      billJson(groupBy, bill, {
        from: range.from.toISOString(),
        to: range.to.toISOString(),
        currency,
        rate_card_versions: bill.rateCardVersions,
        completeness,
        meters: bill.meters.map(meterJson),
      }),
    )
  })
  return app
}
