import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshStorage } from '../test-support/storage.js'
import { tableWriteVersion } from '../storage/write-tracking.js'
import { declarationSnapshot } from './declaration-snapshot.js'
import { retireDeclarations, upsertInventory, validateInventory } from './inventory.js'

let client: ClickHouseClient

beforeAll(async () => {
  client = await freshStorage()
})

afterAll(async () => {
  await client?.close()
})

const declare = (items: Array<Record<string, unknown>>) => upsertInventory(client, validateInventory(items.map((item) => ({ type: 'service_account', ...item }))))

describe('declaration snapshot (embedded storage)', () => {
  it('holds the declarations and serves them again without reading while nothing is written', async () => {
    await declare([{ id: 'a', business_unit: 'finance', approved_activities: ['api_call'] }])
    const first = await declarationSnapshot(client)
    expect(first?.get('a')).toEqual({ business_unit: 'finance', approved_activities: ['api_call'] })
    expect(await declarationSnapshot(client)).toBe(first)
  })

  it('sees every kind of write at once: upsert, retirement, a direct insert, INSERT ... SELECT', async () => {
    await declare([{ id: 'b', business_unit: 'sales' }])
    expect((await declarationSnapshot(client))?.get('b')?.business_unit).toBe('sales')
    await declare([{ id: 'b', business_unit: 'finance', approved_activities: ['workflow_execution'] }])
    expect((await declarationSnapshot(client))?.get('b')).toEqual({ business_unit: 'finance', approved_activities: ['workflow_execution'] })
    await retireDeclarations(client, ['b'], null)
    expect((await declarationSnapshot(client))?.has('b')).toBe(false)

    await client.insert({
      table: 'nhi_inventory',
      values: [{ id: 'c', type: 'bot', owner: '', business_unit: 'ops', tier: '', approved_activities: [], updated_at: '2026-11-01 00:00:00.000' }],
      format: 'JSONEachRow',
    })
    expect((await declarationSnapshot(client))?.get('c')?.business_unit).toBe('ops')
    await client.command({
      query: `INSERT INTO nhi_inventory (id, type, owner, business_unit, tier, approved_activities, updated_at)
              SELECT 'd', 'bot', '', 'ops', '', ['api_call'], toDateTime64('2026-11-01 00:00:00', 3)`,
    })
    expect((await declarationSnapshot(client))?.get('d')?.approved_activities).toEqual(['api_call'])
  })

  it('serves a read that overlapped a write to no later request', async () => {
    // A write first, so the read below really goes to storage rather than returning the held snapshot.
    await declare([{ id: 'e0', business_unit: 'hr' }])
    const held = await declarationSnapshot(client)
    await declare([{ id: 'e1', business_unit: 'hr' }])
    const version = tableWriteVersion(client, 'nhi_inventory')
    const reading = declarationSnapshot(client)
    // Counted as a write the moment it is called, while the read above is still running.
    const writing = client.insert({
      table: 'nhi_inventory',
      values: [{ id: 'e2', type: 'bot', owner: '', business_unit: 'hr', tier: '', approved_activities: [], updated_at: '2026-11-01 00:00:00.000' }],
      format: 'JSONEachRow',
    })
    expect(tableWriteVersion(client, 'nhi_inventory')).not.toBe(version)
    const [overlapped] = await Promise.all([reading, writing])
    expect(overlapped).not.toBe(held)
    expect(overlapped?.has('e1')).toBe(true)
    const next = await declarationSnapshot(client)
    expect(next).not.toBe(overlapped)
    expect(next?.get('e2')?.business_unit).toBe('hr')
  })

  it('answers undefined for an inventory over the limit, and for storage other processes may write', async () => {
    expect(await declarationSnapshot(client, 1)).toBeUndefined()
    // Found too large: after a write, callers read for themselves for a while instead of counting again.
    await declare([{ id: 'f', business_unit: 'hr' }])
    const query = client.query.bind(client)
    let reads = 0
    client.query = ((params: Parameters<typeof query>[0]) => {
      reads++
      return query(params)
    }) as typeof client.query
    try {
      expect(await declarationSnapshot(client, 1)).toBeUndefined()
      expect(reads).toBe(0)
    } finally {
      client.query = query
    }
    // A server client: never read, because its writes cannot all be seen.
    const server = createClient({ url: 'http://127.0.0.1:1' })
    expect(await declarationSnapshot(server)).toBeUndefined()
    await server.close()
  })
})
