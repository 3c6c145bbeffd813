/**
 * GET /v1/identities, GET /v1/identities/{id}/activity, POST /v1/inventory
 * and DELETE /v1/inventory/{id} (IDENTITIES.md).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { Hono } from 'hono'
import { ApiError, badParameter } from '../http/errors.js'
import { requireAnyScope, requireScope, type AppEnv } from '../http/middleware.js'
import { parseEnum, parseList, parseRange, rejectUnknown } from '../http/params.js'
import type { Policy } from '../policy/index.js'
import { readBodyText } from '../http/body.js'
import { notFound, parseAt, pathId } from '../http/identity-path.js'
import { describeProblems, inventoryAccessProblem, InventoryValidationError, retireDeclarations, upsertInventory, validateInventory } from './inventory.js'
import { InventorySyntaxError, parseInventoryText, type InventoryFormat } from './inventory-file.js'
import { ACTIVITY_GRANULARITIES, activitySeries, identityVisible, IDENTITY_STATUSES, listIdentities, visibleUnits } from './queries.js'

/** What the identities routes need. */
export interface IdentitiesDeps {
  client: ClickHouseClient
  /** Current validated policy (dormant_after decides `dormant`). */
  policy: () => Policy
}

/** Largest POST /v1/inventory body, in bytes. */
export const MAX_INVENTORY_BODY_BYTES = 10 * 1024 * 1024
/** Default and largest page of GET /v1/identities. */
export const IDENTITIES_PAGE = { default: 10_000, max: 100_000 } as const
const MEDIA_TYPES: Record<string, InventoryFormat> = {
  'application/json': 'json',
  'application/yaml': 'yaml',
  'application/x-yaml': 'yaml',
  'text/yaml': 'yaml',
  'text/csv': 'csv',
}

function parseLimit(value: string | undefined): number {
  if (value === undefined) return IDENTITIES_PAGE.default
  if (!/^[0-9]{1,7}$/.test(value) || Number(value) < 1 || Number(value) > IDENTITIES_PAGE.max) throw badParameter('limit', `must be a whole number from 1 to ${IDENTITIES_PAGE.max}`)
  return Number(value)
}

/** Builds the identities sub-app. */
export function identitiesRoutes(deps: IdentitiesDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()

  app.get('/identities', requireAnyScope('billing:read', 'findings:read'), async (c) => {
    const query = c.req.query()
    rejectUnknown(query, ['business_unit', 'status', 'at', 'limit', 'after'])
    const at = parseAt(query.at)
    const statuses = parseList('status', query.status, IDENTITY_STATUSES, IDENTITY_STATUSES)
    if (query.business_unit === '') throw badParameter('business_unit', 'must not be empty')
    const limit = parseLimit(query.limit)
    const units = visibleUnits(c.get('principal').businessUnits, query.business_unit)
    const all = units !== null && units.length === 0 ? [] : await listIdentities(deps.client, { at, units, dormantAfterMs: deps.policy().detection.dormant_after.ms })
    const after = query.after
    const matching = all.filter((i) => statuses.includes(i.status) && (after === undefined || i.id > after))
    const page = matching.slice(0, limit)
    return c.json({
      at: at.toISOString(),
      identities: page,
      next_after: matching.length > limit ? page[page.length - 1]!.id : null,
    })
  })

  app.get('/identities/:id/activity', requireAnyScope('billing:read', 'findings:read'), async (c) => {
    const id = pathId(c.req.param('id'))
    const query = c.req.query()
    rejectUnknown(query, ['from', 'to', 'granularity'])
    const range = parseRange(query)
    const granularity = parseEnum('granularity', query.granularity, ACTIVITY_GRANULARITIES, 'day')
    if (granularity === 'hour' && range.to.getTime() - range.from.getTime() > 31 * 86_400_000) throw badParameter('granularity', 'hour applies to ranges of at most 31 days')
    const units = c.get('principal').businessUnits
    const [visible, series] = await Promise.all([identityVisible(deps.client, id, units), activitySeries(deps.client, { id, range, granularity, units })])
    if (!visible) throw notFound()
    return c.json({ nhi_id: id, from: range.from.toISOString(), to: range.to.toISOString(), granularity, series })
  })

  app.post('/inventory', requireScope('inventory:write'), async (c) => {
    rejectUnknown(c.req.query(), [])
    const mediaType = (c.req.header('content-type') ?? 'application/json').split(';')[0]!.trim().toLowerCase()
    const format = MEDIA_TYPES[mediaType]
    if (!format) throw new ApiError('unsupported_media_type', `Content-Type must be one of ${Object.keys(MEDIA_TYPES).join(', ')}`)
    const text = await readBodyText(c.req.raw, MAX_INVENTORY_BODY_BYTES)
    if (text.trim() === '') throw new ApiError('invalid_body', 'body: empty; send a list of identities')
    let items
    try {
      items = validateInventory(parseInventoryText(text, format))
    } catch (error) {
      if (error instanceof InventorySyntaxError) throw new ApiError('invalid_body', `body: ${error.message}`)
      if (error instanceof InventoryValidationError) throw new ApiError('invalid_body', error.message)
      throw error
    }
    const refused = await inventoryAccessProblem(deps.client, items, c.get('principal').businessUnits)
    if (refused) throw new ApiError('forbidden', describeProblems([refused]))
    return c.json(await upsertInventory(deps.client, items))
  })

  app.delete('/inventory/:id', requireScope('inventory:write'), async (c) => {
    const id = pathId(c.req.param('id'))
    rejectUnknown(c.req.query(), [])
    if ((await retireDeclarations(deps.client, [id], c.get('principal').businessUnits)).length === 0) throw notFound()
    return c.json({ id, deleted: true })
  })

  return app
}
