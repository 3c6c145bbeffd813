import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QUANTITY_UNIT } from '../money/quantity.js'
import { freshStorage } from '../test-support/storage.js'
import { queryRowBinary, RowBinaryReader, sumQuantity, sumValue } from './row-binary.js'

// A decimal string with up to nine decimals as its exact count of 10^-9 units: the reference the reader is held to.
function exact(text: string): bigint {
  const [whole, fraction = ''] = text.split('.')
  return BigInt(whole!) * QUANTITY_UNIT + BigInt(fraction.padEnd(9, '0'))
}

describe('RowBinaryWithNamesAndTypes results', () => {
  let client: ClickHouseClient
  beforeAll(async () => {
    client = await freshStorage()
  })
  afterAll(async () => {
    await client.close()
  })

  it('reads every Decimal(38, 9) exactly, whole safe units as numbers and the rest as quantities', async () => {
    const edges = [
      '0',
      '1',
      '0.5',
      '0.000000001',
      '123.000000001',
      '9007199254.740991', // 2^53 - 1 nano-units
      '9007199254.740992',
      '9007199254740991', // 2^53 - 1 units
      '9007199254740992',
      '18446744073.709551615', // 2^64 - 1 nano-units: the last value of the low 64 bits
      '18446744073.709551616',
      '18446744073709551616', // 2^64 units
      '99999999999999999999999999999.999999999', // the largest Decimal(38, 9)
    ]
    // Random values of every length: each digit count from 1 to 29, with and without decimals.
    let seed = 7
    const digit = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return String(seed % 10)
    }
    const random = Array.from({ length: 300 }, (_, i) => {
      const whole = `${Math.max(1, Number(digit()))}${Array.from({ length: i % 29 }, digit).join('')}`
      return i % 3 === 0 ? whole : `${whole}.${Array.from({ length: 1 + (i % 9) }, digit).join('')}`
    })
    const values = [...edges, ...random]
    const reader = await queryRowBinary(client, {
      query: "SELECT CAST(v AS Decimal(38, 9)), [CAST(v AS Decimal(38, 9)), toDecimal128(0, 9)] FROM (SELECT arrayJoin({v:Array(String)}) AS v, rowNumberInAllBlocks() AS i) ORDER BY i",
      params: { v: values },
      types: ['Decimal(38, 9)', 'Array(Decimal(38, 9))'],
    })
    for (const text of values) {
      const value = reader.decimal9()
      expect(sumQuantity(value), text).toBe(exact(text))
      const wholeSafe = exact(text) % QUANTITY_UNIT === 0n && exact(text) / QUANTITY_UNIT <= BigInt(Number.MAX_SAFE_INTEGER)
      expect(typeof value, text).toBe(wholeSafe ? 'number' : 'bigint')
      expect(reader.decimals9().map(sumQuantity)).toEqual([exact(text), 0n])
    }
    expect(reader.done).toBe(true)
  })

  it('gives a quantity back as the value it was read as', () => {
    for (const text of ['0', '7', '0.5', '9007199254740992', '18446744073.709551616']) expect(sumValue(sumQuantity(sumValue(exact(text) as never)))).toEqual(sumValue(exact(text) as never))
  })

  it('reads counts up to 2^53 - 1, and refuses one a number would round', async () => {
    const reader = await queryRowBinary(client, {
      query: "SELECT toUInt64('9007199254740991'), [toUInt64(0), toUInt64(1), toUInt64('4294967296')]",
      types: ['UInt64', 'Array(UInt64)'],
    })
    expect(reader.count()).toBe(Number.MAX_SAFE_INTEGER)
    expect(reader.counts()).toEqual([0, 1, 4_294_967_296])
    const over = await queryRowBinary(client, { query: "SELECT toUInt64('9007199254740992')", types: ['UInt64'] })
    expect(() => over.count()).toThrow(/exceeds 9007199254740991/)
  })

  it('reads strings as UTF-8, small integers with their sign, and refuses a negative sum', async () => {
    const reader = await queryRowBinary(client, {
      query: "SELECT '', 'agent-é-😀', toUInt8(200), toInt16(-1), toDecimal128('-0.5', 9)",
      types: ['String', 'String', 'UInt8', 'Int16', 'Decimal(38, 9)'],
    })
    expect([reader.string(), reader.string(), reader.uint8(), reader.int16()]).toEqual(['', 'agent-é-😀', 200, -1])
    expect(() => reader.decimal9()).toThrow(/negative/)
  })

  it('refuses columns of other types than expected, naming both', async () => {
    await expect(queryRowBinary(client, { query: 'SELECT toUInt32(1)', types: ['UInt64'] })).rejects.toThrow(/got \[UInt32\], expected \[UInt64\]/)
    await expect(queryRowBinary(client, { query: 'SELECT 1, 2', types: ['UInt8'] })).rejects.toThrow(/unexpected result types/)
  })

  it('refuses a body that ends inside a value', () => {
    // One column "n" of type UInt64, then a row cut short after three of its eight bytes.
    const header = Buffer.from([1, 1, 0x6e, 6, ...Buffer.from('UInt64')])
    const reader = new RowBinaryReader(Buffer.concat([header, Buffer.from([1, 2, 3])]))
    expect(() => reader.count()).toThrow(/ends inside a value/)
    expect(() => new RowBinaryReader(Buffer.from([2, 1]))).toThrow(/ends inside a value/)
  })
})
