/**
 * The statement routes: closing a month (admin) and reading the statements
 * (billing:read, keys for every business unit only).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { z } from 'zod'
import { ApiError } from '../http/errors.js'
import { requireScope, type AppEnv } from '../http/middleware.js'
import { parseJsonBody, readBodyText } from '../http/body.js'
import { rejectUnknown } from '../http/params.js'
import type { Pricing } from './pricing.js'
import { periodRange, type Statement } from './statement.js'
import { closePeriod } from './statement-close.js'
import { loadStatements } from './statement-store.js'

/** Statements cover every business unit, so keys limited to units cannot read them. */
function requireAllUnits(businessUnits: readonly string[] | null): void {
  if (businessUnits) throw new ApiError('forbidden', 'statements cover every business unit; this key is limited to some')
}

const closeBody = z.object({ period: z.string().max(16) }).strict()
const MAX_CLOSE_BODY_BYTES = 1024 * 1024

/** Routes: POST /v1/statements (admin), GET /v1/statements, GET /v1/statements/{period}. */
export function statementRoutes(deps: {
  client: ClickHouseClient
  pricing: () => Pricing
  now?: () => Date
  /** Told of each month closed here, before the answer (webhooks queue statement.closed); must not throw. */
  onClosed?: (statement: Statement & { content_hash: string }) => Promise<void>
}): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.post('/statements', requireScope('admin'), async (c) => {
    rejectUnknown(c.req.query(), [])
    // Capped like every other body (a statement request is a few bytes; hostile ones are answered 400 naming the problem up to the cap).
    const parsed = closeBody.safeParse(parseJsonBody(await readBodyText(c.req.raw, MAX_CLOSE_BODY_BYTES)))
    if (!parsed.success) throw new ApiError('invalid_body', `body: ${parsed.error.issues[0]!.path.join('.') || '(root)'}: ${parsed.error.issues[0]!.message}; expected {"period": "YYYY-MM"}`)
    const statement = await closePeriod(deps.client, deps.pricing(), parsed.data.period, deps.now?.() ?? new Date())
    await deps.onClosed?.(statement)
    return c.json(statement, 201)
  })
  app.get('/statements', requireScope('billing:read'), async (c) => {
    rejectUnknown(c.req.query(), [])
    requireAllUnits(c.get('principal').businessUnits)
    const all = await loadStatements(deps.client)
    return c.json({
      statements: all.map(({ statement, contentHash }) => ({
        period: statement.period,
        closed_at: statement.closed_at,
        total: statement.total,
        adjustments_total: statement.adjustments_total,
        completeness_status: statement.completeness.status,
        content_hash: contentHash,
      })),
    })
  })
  app.get('/statements/:period', requireScope('billing:read'), async (c) => {
    rejectUnknown(c.req.query(), [])
    requireAllUnits(c.get('principal').businessUnits)
    const period = c.req.param('period')
    periodRange(period)
    const found = (await loadStatements(deps.client)).find((s) => s.statement.period === period)
    if (!found) throw new ApiError('not_found', `no statement for ${period}; close it with POST /v1/statements`)
    return c.json({ ...found.statement, content_hash: found.contentHash })
  })
  return app
}
