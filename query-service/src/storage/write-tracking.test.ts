import type { ClickHouseClient } from '@clickhouse/client'
import { describe, expect, it } from 'vitest'
import { registerWriteCounter, tableWriteVersion, trackWrites } from './write-tracking.js'

/** A connection whose methods resolve when told to, recording nothing else. */
function connection() {
  const pending: Array<() => void> = []
  const method = () => (_params: { query: string }) => new Promise<unknown>((resolve) => pending.push(() => resolve({})))
  const conn = { insert: method(), exec: method(), command: method(), query: method() }
  const client = {} as ClickHouseClient
  registerWriteCounter(client, trackWrites(conn))
  return { conn, client, finishAll: () => pending.splice(0).forEach((finish) => finish()) }
}

describe('write tracking', () => {
  it('moves a table’s version when a write to it starts and again when it ends', async () => {
    const { conn, client, finishAll } = connection()
    const before = tableWriteVersion(client, 'nhi_inventory')
    const write = conn.insert({ query: 'INSERT INTO nhi_inventory (id) FORMAT JSONEachRow' })
    const during = tableWriteVersion(client, 'nhi_inventory')
    expect(during).not.toBe(before)
    finishAll()
    await write
    const after = tableWriteVersion(client, 'nhi_inventory')
    expect(after).not.toBe(during)
    expect(after).not.toBe(before)
  })

  it.each([
    ['command', 'INSERT INTO nhi_inventory SELECT * FROM staging', true],
    ['command', 'ALTER TABLE nhi_inventory DROP PARTITION tuple()', true],
    ['command', 'TRUNCATE TABLE nhi_inventory', true],
    ['exec', '-- a comment first\nOPTIMIZE TABLE default.nhi_inventory FINAL', true],
    ['exec', '/* a block comment */ INSERT INTO nhi_inventory SELECT * FROM staging', true],
    ['command', 'SET max_threads = 1; INSERT INTO nhi_inventory SELECT * FROM staging', true],
    ['command', 'UNDROP TABLE nhi_inventory', true],
    ['query', 'insert into `nhi_inventory` values', true],
    ['query', 'SELECT * FROM nhi_identity_activity LEFT ANY JOIN (SELECT id FROM nhi_inventory FINAL) AS inv ON inv.id = nhi_id', false],
    ['command', 'INSERT INTO nhi_inventory_archive SELECT * FROM nhi_activity', false],
    ['insert', 'INSERT INTO otel_traces (TraceId) FORMAT JSONCompactEachRow', false],
    ['query', '/* INSERT INTO nhi_inventory */ SELECT count() FROM nhi_inventory', false],
  ] as const)('%s %j: a write to nhi_inventory? %s', async (method, sql, counts) => {
    const { conn, client, finishAll } = connection()
    const before = tableWriteVersion(client, 'nhi_inventory')
    const call = conn[method]({ query: sql })
    finishAll()
    await call
    expect(tableWriteVersion(client, 'nhi_inventory') !== before).toBe(counts)
  })

  it('counts a write that fails, and knows nothing of clients it was not given', async () => {
    const failing = { insert: async (_params: { query: string }) => Promise.reject(new Error('disk full')), exec: async () => ({}), command: async () => ({}), query: async () => ({}) }
    const client = {} as ClickHouseClient
    registerWriteCounter(client, trackWrites(failing))
    const before = tableWriteVersion(client, 'nhi_inventory')
    await expect(failing.insert({ query: 'INSERT INTO nhi_inventory FORMAT JSONEachRow' })).rejects.toThrow('disk full')
    expect(tableWriteVersion(client, 'nhi_inventory')).not.toBe(before)
    expect(tableWriteVersion({} as ClickHouseClient, 'nhi_inventory')).toBeUndefined()
  })
})
