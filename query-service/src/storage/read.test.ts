import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { testTempDir } from '../test-support/storage.js'
import { openStorage } from './client.js'
import { count64, readFirst, readOne, readRows, readSettings } from './read.js'

describe('reading rows', () => {
  let client: ClickHouseClient
  beforeAll(async () => {
    client = await openStorage({ kind: 'embedded', dataDir: testTempDir('nhi-meter-read-') })
  })
  afterAll(async () => {
    await client.close()
  })

  it('returns the largest exact 64-bit count as the integer it is', async () => {
    const row = await readFirst(client, { query: 'SELECT toUInt64({n:UInt64}) AS n', params: { n: '9007199254740991' }, row: z.object({ n: count64 }) })
    expect(row).toEqual({ n: 9_007_199_254_740_991 })
  })

  it('refuses a count a JavaScript number would round', async () => {
    await expect(readRows(client, { query: "SELECT toUInt64('9007199254740993') AS n", row: z.object({ n: count64 }) })).rejects.toThrow(/count out of range/)
  })

  it('refuses a row that does not match its schema', async () => {
    await expect(readRows(client, { query: "SELECT 'seven' AS n", row: z.object({ n: z.number() }) })).rejects.toThrow()
  })

  it('reads positional rows in column order', async () => {
    const rows = await readRows(client, { query: "SELECT 'a', 1 UNION ALL SELECT 'b', 2 ORDER BY 1", row: z.tuple([z.string(), z.number()]), positional: true })
    expect(rows).toEqual([['a', 1], ['b', 2]])
  })

  it('refuses a read meant to return one row that returned none', async () => {
    await expect(readOne(client, { query: 'SELECT 1 AS n WHERE 0', row: z.object({ n: z.number() }) })).rejects.toThrow(/expected one row/)
  })

  it('returns nothing for a read without rows', async () => {
    expect(await readFirst(client, { query: 'SELECT 1 AS n WHERE 0', row: z.object({ n: z.number() }) })).toBeUndefined()
  })
})

describe('read settings', () => {
  it('keeps FINAL merges within each partition only when the read asks for FINAL', () => {
    expect(readSettings({})).toBeUndefined()
    expect(readSettings({ final: true })).toEqual({ do_not_merge_across_partitions_select_final: 1 })
    expect(readSettings({ final: true, subcolumns: true })).toEqual({ do_not_merge_across_partitions_select_final: 1, optimize_functions_to_subcolumns: 1 })
  })
})
