import type { ClickHouseClient } from '@clickhouse/client'
import { describe, expect, it } from 'vitest'
import { registerWriteCounter, settledBefore, tableWriteVersion, trackWrites, writeAround } from './write-tracking.js'

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

  it('holds the settled time at the start of the oldest write under way, and gives it back when every write has ended', async () => {
    const { conn, client, finishAll } = connection()
    const idle = settledBefore(client)!
    expect(Math.abs(idle - Date.now())).toBeLessThan(1_000)
    const first = Date.now()
    const write = conn.insert({ query: 'INSERT INTO otel_traces (TraceId) FORMAT JSONCompactEachRow' })
    await new Promise((resolve) => setTimeout(resolve, 30))
    // A second write, and a read, under way: neither moves the bound past the first write's start.
    const second = conn.command({ query: 'INSERT INTO nhi_activity SELECT * FROM staging' })
    const read = conn.query({ query: 'SELECT count() FROM nhi_activity' })
    await new Promise((resolve) => setTimeout(resolve, 30))
    const during = settledBefore(client)!
    expect(during).toBeGreaterThanOrEqual(first)
    expect(during).toBeLessThan(first + 25)
    finishAll()
    await Promise.all([write, second, read])
    expect(settledBefore(client)!).toBeGreaterThanOrEqual(first + 60)
    // A write that fails ends too; a write made around the client (the bulk-insert path) counts while it runs.
    let release = () => {}
    const around = writeAround(client, 'otel_traces', () => new Promise<void>((resolve) => (release = resolve)))
    const aroundStart = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(settledBefore(client)!).toBeLessThanOrEqual(aroundStart)
    release()
    await around
    await expect(writeAround(client, 'otel_traces', () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full')
    expect(settledBefore(client)!).toBeGreaterThan(aroundStart + 25)
    expect(settledBefore({} as ClickHouseClient)).toBeUndefined()
  })
})
