import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { globMatches } from '../policy/index.js'
import { freshStorage } from '../test-support/storage.js'
import { activityApproved, APPROVED_ACTIVITY, inventoryJoinFor } from './effective.js'

let client: ClickHouseClient

beforeAll(async () => {
  client = await freshStorage()
})

afterAll(async () => {
  await client?.close()
})

// The reference meaning of an approved_activities entry, straight from the policy's glob matcher.
function approvedByEntry(entry: string, type: string, name: string): boolean {
  const colon = entry.indexOf(':')
  if (colon < 0) return entry === type
  return entry.slice(0, colon) === type && globMatches(entry.slice(colon + 1), name)
}

const NAMES = ['search_web', 'search_', 'Search_web', 'a.b', 'axb', 'a+b', 'aab', '(x)', '[ab]', 'a', 'a\\b', '/v1/orders/{id}', '/v1/orders/42', 'x🙂y', 'xy', 'x\ny', '^$', '', 'a:b', 'nightly_rollup']
const GLOBS = ['search_*', '*', '?', 'a.b', 'a+b', '(x)', '[ab]', 'a\\b', '/v1/orders/{id}', '/v1/orders/*', 'x?y', 'x*y', '^$', 'a**b', 'a:b', '*_rollup', '?*?']

// APPROVED_ACTIVITY for one row of `type`/`name`, joined as INVENTORY_JOIN joins a declaration (none when `entries` is null).
async function approved(entries: string[] | null, type: string, name: string): Promise<boolean> {
  const rows = await (
    await client.query({
      query: `
        SELECT ${APPROVED_ACTIVITY} AS approved
        FROM (SELECT 'agent' AS nhi_id, {type:String} AS activity_type, {name:String} AS activity_name) AS row
        LEFT ANY JOIN (SELECT 'agent' AS id, {entries:Array(String)} AS approved_activities WHERE {declared:UInt8} = 1) AS inv ON inv.id = nhi_id`,
      format: 'JSONEachRow',
      query_params: { type, name, entries: entries ?? [], declared: entries === null ? 0 : 1 },
    })
  ).json<{ approved: number }>()
  return Number(rows[0]!.approved) === 1
}

describe('APPROVED_ACTIVITY', () => {
  it('matches type:glob entries inside ClickHouse exactly as the policy glob matcher does', async () => {
    const mismatches: string[] = []
    for (const glob of GLOBS) {
      for (const name of NAMES) {
        const entry = `tool_invocation:${glob}`
        const inClickHouse = await approved([entry], 'tool_invocation', name)
        const expected = approvedByEntry(entry, 'tool_invocation', name)
        if (inClickHouse !== expected) mismatches.push(`${entry} ~ ${JSON.stringify(name)}: ClickHouse says ${inClickHouse}`)
        if (activityApproved({ approved_activities: [entry] }, 'tool_invocation', name) !== expected) mismatches.push(`${entry} ~ ${JSON.stringify(name)}: activityApproved disagrees`)
      }
    }
    expect(mismatches).toEqual([])
  })

  it.each([
    [['api_call'], 'api_call', '/anything', true],
    [['api_call'], 'tool_invocation', 'search', false],
    [['api_call:/v1/*', 'tool_invocation:search'], 'tool_invocation', 'search', true],
    [['tool_invocation:search'], 'api_call', 'search', false],
    [[], 'secret_rotation', 'db', true],
    [null, 'api_call', '/v1/x', false],
  ] as const)('approves %j for %s %s: %s, in ClickHouse and in TypeScript alike', async (entries, type, name, expected) => {
    expect(await approved(entries === null ? null : [...entries], type, name)).toBe(expected)
    expect(activityApproved(entries === null ? undefined : { approved_activities: entries }, type, name)).toBe(expected)
  })
})

describe('inventoryJoinFor', () => {
  it('refuses a parameter name that is not a plain word', () => {
    expect(() => inventoryJoinFor('ids:String} OR 1=1 --')).toThrow(RangeError)
  })
})
