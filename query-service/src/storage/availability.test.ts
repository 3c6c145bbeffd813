import { ClickHouseError, ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startClickHouseHttp, type ClickHouseHttp } from '../../../test/helpers/clickhouse-http.js'
import { startTcpProxy, type TcpProxy } from '../../../test/helpers/tcp-proxy.js'
import { ClickHouseUnavailableError, guardServerClient, isStorageUnavailable } from './availability.js'

// The real ClickHouse engine behind its HTTP interface (no server is obtainable here), through a proxy the tests break.
let clickhouse: ClickHouseHttp
let proxy: TcpProxy
let client: ClickHouseClient
let changes: Array<[boolean, string]>

const TIMINGS = { slowAfterMs: 300, probeTimeoutMs: 400, probeIntervalMs: 100 }

async function until(check: () => boolean, limitMs = 5_000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function one(sql: string): Promise<unknown> {
  return (await (await client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>())[0]
}

beforeAll(async () => {
  clickhouse = await startClickHouseHttp()
  proxy = await startTcpProxy({ port: clickhouse.port })
  client = guardServerClient(createClient({ url: `http://127.0.0.1:${proxy.port}`, log: { level: ClickHouseLogLevel.OFF } }), {
    ...TIMINGS,
    onChange: (available, detail) => changes.push([available, detail]),
  })
})

afterAll(async () => {
  await client?.close()
  await proxy?.close()
  await clickhouse?.stop()
})

beforeEach(async () => {
  await proxy.up()
  await until(() => changes === undefined || changes.at(-1)?.[0] !== false)
  changes = []
  expect(await one('SELECT 1 AS ok')).toEqual({ ok: 1 })
})

describe('guarded server client', () => {
  it('refuses at once while the port is closed, says so once, and lets operations through again once /ping answers', async () => {
    await proxy.down()
    await expect(one('SELECT 1')).rejects.toBeInstanceOf(ClickHouseUnavailableError)
    await until(() => changes.length === 1)
    expect(changes[0]).toEqual([false, expect.stringContaining('ECONNREFUSED')])

    const started = Date.now()
    const refused = await one('SELECT 1').catch((error: unknown) => error)
    expect(Date.now() - started).toBeLessThan(50)
    expect(isStorageUnavailable(refused)).toBe(true)
    expect((await client.ping()).success).toBe(false)

    await proxy.up()
    await until(() => changes.length === 2)
    expect(changes[1]).toEqual([true, expect.stringMatching(/^after \d+\.\d s$/)])
    expect(await one('SELECT 2 AS ok')).toEqual({ ok: 2 })
  })

  it('aborts an operation the server never answers as soon as /ping goes unanswered too, far before the socket timeout', async () => {
    await proxy.blackhole()
    const started = Date.now()
    const error = await one('SELECT 1').catch((e: unknown) => e)
    const took = Date.now() - started
    expect(error).toBeInstanceOf(ClickHouseUnavailableError)
    expect((error as Error).message).toContain('no answer to /ping within 400 ms')
    expect(took).toBeGreaterThanOrEqual(TIMINGS.slowAfterMs)
    expect(took).toBeLessThan(TIMINGS.slowAfterMs + TIMINGS.probeTimeoutMs + 1_000)
  })

  it('lets a slow query finish while the server still answers /ping', async () => {
    expect(await one('SELECT sleep(1) + 7 AS slept')).toEqual({ slept: 7 })
    expect(changes).toEqual([])
  })

  it('takes a busy server for a busy one, not a gone one: /ping does not queue behind slow queries holding every connection', async () => {
    const url = `http://127.0.0.1:${proxy.port}`
    // The test server runs one query at a time: three one-second queries hold both connections of the pool for 2 s or more.
    const busy = async (prober?: ClickHouseClient) => {
      const seen: boolean[] = []
      const guarded = guardServerClient(createClient({ url, max_open_connections: 2, log: { level: ClickHouseLogLevel.OFF } }), {
        ...TIMINGS,
        prober,
        onChange: (available) => seen.push(available),
      })
      try {
        const queries = Array.from({ length: 3 }, () => guarded.query({ query: 'SELECT sleep(1) AS s', format: 'JSONEachRow' }).then((r) => r.json()))
        return { seen, statuses: (await Promise.allSettled(queries)).map((r) => r.status) }
      } finally {
        await guarded.close()
      }
    }
    const own = await busy(createClient({ url, max_open_connections: 1, log: { level: ClickHouseLogLevel.OFF } }))
    expect(own.statuses).toEqual(['fulfilled', 'fulfilled', 'fulfilled'])
    expect(own.seen).toEqual([])
    // Probing through the saturated pool instead waits past its timeout and calls a healthy server gone.
    const shared = await busy()
    expect(shared.statuses).toContain('rejected')
    expect(shared.seen[0]).toBe(false)
  })

  it("passes the server's own errors through unchanged and stays available", async () => {
    const error = await one('SELECT * FROM no_such_table').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ClickHouseError)
    expect((error as ClickHouseError).code).toBe('60')
    expect(isStorageUnavailable(error)).toBe(false)
    expect(changes).toEqual([])
  })
})

describe('isStorageUnavailable', () => {
  it('answers 503 for refused or broken connections and for ClickHouse errors that a retry can outlive, not for the rest', () => {
    expect(isStorageUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }))).toBe(true)
    expect(isStorageUnavailable(new Error('Timeout error.'))).toBe(true)
    expect(isStorageUnavailable(new ClickHouseError({ message: 'Too many parts', code: '252', type: 'TOO_MANY_PARTS' }))).toBe(true)
    expect(isStorageUnavailable(new ClickHouseError({ message: 'Syntax error', code: '62', type: 'SYNTAX_ERROR' }))).toBe(false)
    expect(isStorageUnavailable(new Error('something else'))).toBe(false)
  })
})
