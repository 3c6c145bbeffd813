/**
 * GET /v1/billable/evidence: the spans behind any row of GET /v1/billable.
 * Give the range and the row's keys as filters (each group_by key is a
 * parameter of the same name, e.g. `nhi.id=agent-1&meter=tool_calls`); the
 * answer counts the billable spans that match (equal to the row's quantity)
 * and lists sample trace ids an auditor can open in a tracing tool.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { z } from 'zod'
import { businessUnitCondition, INVENTORY_JOIN } from '../identities/effective.js'
import { badParameter } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseEnum, parseRange, parseTime, rejectUnknown } from '../http/params.js'
import { toClickHouseTime } from '../storage/time.js'
import { count64, readOne } from '../storage/read.js'
import type { Pricing } from './pricing.js'
import { meterMatchSql, meterNameSql } from './meters.js'
import { COLUMN_OF, GRANULARITIES, GROUP_BY_KEYS, PERIOD_OF } from './queries.js'

// A row of GET /v1/billable is named by its group-by keys: each is a filter here.
const FILTERS = GROUP_BY_KEYS
const PARAMS = ['from', 'to', 'granularity', 'limit', ...FILTERS] as const
const evidenceRow = z.object({ matched: count64, trace_ids: z.array(z.string()) })

/** Builds the evidence route. */
export function evidenceRoutes(deps: { client: ClickHouseClient; pricing: () => Pricing }): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.get('/billable/evidence', requireScope('billing:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, PARAMS)
    const range = parseRange(query)
    const granularity = parseEnum('granularity', query.granularity, GRANULARITIES, 'day')
    const limit = query.limit === undefined ? 20 : Number(query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badParameter('limit', 'must be a whole number from 1 to 1000')
    const { cards } = deps.pricing()
    const match = meterMatchSql(cards)
    const params: Record<string, unknown> = { ...match.params, from: toClickHouseTime(range.from), to: toClickHouseTime(range.to), limit }
    // Each filter compares a column the inner query computes (the same SQL as the billing rows).
    const columns: string[] = []
    const conditions: string[] = []
    for (const key of FILTERS) {
      const value = query[key]
      if (value === undefined) continue
      const name = `f_${key.replace('.', '_')}`
      if (key === 'meter') {
        conditions.push(`meter_name = {${name}:String}`)
        params[name] = value
      } else if (key === 'period') {
        columns.push(`${PERIOD_OF[granularity]} AS ${name}_column`)
        conditions.push(`${name}_column = {${name}:DateTime64(9)}`)
        params[name] = toClickHouseTime(parseTime('period', value))
      } else {
        columns.push(`${COLUMN_OF[key]} AS ${name}_column`)
        conditions.push(`${name}_column = {${name}:String}`)
        params[name] = value
      }
    }
    const businessUnits = c.get('principal').businessUnits
    if (businessUnits) params.business_units = businessUnits
    const row = await readOne(deps.client, {
      query: `
        -- Each span once, even when several meters (one per meter class) count it and no meter filter picks one.
        SELECT uniqExact(trace_id, span_id) AS matched, arraySlice(arrayDistinct(groupArray(trace_id)), 1, {limit:UInt32}) AS trace_ids
        FROM (
          -- One row per meter that counts the span (one per meter class); spans no meter counts drop out here.
          SELECT *, toInt32(m) - 1 AS meter_idx, ${meterNameSql(cards)} AS meter_name
          FROM (
            SELECT *, ${match.matched} AS matched
            FROM (
              SELECT trace_id, span_id, event_time, activity_type, activity_name, status, ${columns.map((col) => `${col}, `).join('')}
                     ${match.cardIndex} AS card_idx
              FROM nhi_activity FINAL
              ${INVENTORY_JOIN}
              WHERE event_time >= {from:DateTime64(9)} AND event_time < {to:DateTime64(9)}
                AND nhi_id != ''
                ${businessUnitCondition(businessUnits)}))
          ARRAY JOIN matched AS m
          ORDER BY event_time, trace_id
        )
        WHERE 1 ${conditions.map((cond) => `AND ${cond}`).join(' ')}`,
      params,
      row: evidenceRow,
      final: true,
    })
    return c.json({
      from: range.from.toISOString(),
      to: range.to.toISOString(),
      filters: Object.fromEntries(FILTERS.filter((k) => query[k] !== undefined).map((k) => [k, query[k]])),
      count: row.matched,
      sample_trace_ids: row.trace_ids,
    })
  })
  return app
}
