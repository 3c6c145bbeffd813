import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { freshStorage } from '../test-support/storage.js'
import { clientForJobs } from './client.js'
import { afterRequests, RequestFirst } from './request-first.js'
import { tableWriteVersion } from './write-tracking.js'

/** A statement that ends when told to, noting its start and end in `log`. */
function held(log: string[], name: string) {
  let end!: () => void
  const ended = new Promise<void>((resolve) => (end = resolve))
  return {
    end,
    run: async () => {
      log.push(`${name} starts`)
      await ended
      log.push(`${name} ends`)
      return name
    },
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('RequestFirst', () => {
  it("starts a job's statement only once no request's statement is under way, even one asked after it", async () => {
    const order = new RequestFirst()
    const log: string[] = []
    const first = held(log, 'request 1')
    const second = held(log, 'request 2')
    const job = held(log, 'job')
    const running = [order.request(first.run), order.job(job.run, 60_000)]
    await tick()
    running.push(order.request(second.run))
    await tick()
    first.end()
    await tick()
    second.end()
    await tick()
    job.end()
    expect(await Promise.all(running)).toEqual(['request 1', 'job', 'request 2'])
    expect(log).toEqual(['request 1 starts', 'request 2 starts', 'request 1 ends', 'request 2 ends', 'job starts', 'job ends'])
  })

  it("starts a job's statement at once when no request's is under way, and after its longest wait when requests never stop", async () => {
    const order = new RequestFirst()
    const log: string[] = []
    const job = held(log, 'job')
    job.end()
    expect(await order.job(job.run)).toBe('job')
    const endless = held(log, 'request')
    const request = order.request(endless.run)
    const starved = held(log, 'waited job')
    starved.end()
    expect(await order.job(starved.run, 10)).toBe('waited job')
    expect(log.slice(-3)).toEqual(['request starts', 'waited job starts', 'waited job ends'])
    endless.end()
    await request
  })

  it('lets a failed request release the jobs waiting for it', async () => {
    const order = new RequestFirst()
    await expect(order.request(() => Promise.reject(new Error('refused')))).rejects.toThrow('refused')
    const log: string[] = []
    const job = held(log, 'job')
    job.end()
    expect(await order.job(job.run, 60_000)).toBe('job')
  })
})

describe('afterRequests', () => {
  it('holds background work while a request of any client is under way, but never the request itself', async () => {
    const log: string[] = []
    const request = held(log, 'request')
    const answered = new RequestFirst().request(async () => {
      // Work done inside the request (its own folds) does not wait for it.
      await afterRequests()
      log.push('inside the request, on')
      return request.run()
    })
    const background = afterRequests().then(() => log.push('background resumes'))
    await tick()
    await tick()
    expect(log).toEqual(['inside the request, on', 'request starts'])
    request.end()
    await answered
    await background
    expect(log).toEqual(['inside the request, on', 'request starts', 'request ends', 'background resumes'])
  })

  it('resumes after its longest wait when requests never stop', async () => {
    vi.useFakeTimers()
    try {
      const request = held([], 'request')
      const answered = new RequestFirst().request(request.run)
      let resumed = false
      void afterRequests(50).then(() => (resumed = true))
      await vi.advanceTimersByTimeAsync(49)
      expect(resumed).toBe(false)
      await vi.advanceTimersByTimeAsync(1)
      expect(resumed).toBe(true)
      request.end()
      await answered
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('the jobs client of the embedded engine', () => {
  let client: ClickHouseClient
  beforeAll(async () => {
    client = await freshStorage()
  })
  afterAll(async () => {
    await client?.close()
  })

  it("reads and writes the same data as the requests' client, counted by the same write tracking, its statements after theirs", async () => {
    const jobs = clientForJobs(client)
    expect(jobs).not.toBe(client)
    await client.command({ query: 'CREATE TABLE request_first_t (n UInt32) ENGINE = MergeTree ORDER BY n' })
    const before = tableWriteVersion(client, 'request_first_t')
    await jobs.insert({ table: 'request_first_t', values: [{ n: 1 }, { n: 2 }], format: 'JSONEachRow' })
    expect(tableWriteVersion(client, 'request_first_t')).not.toBe(before)
    const sum = async (on: ClickHouseClient) => (await (await on.query({ query: 'SELECT sum(n) AS s FROM request_first_t', format: 'JSONEachRow' })).json<{ s: string }>())[0]!.s
    expect(await sum(client)).toBe('3')
    expect(await sum(jobs)).toBe('3')

    // A request under way, a job's statement, then a second request: the job's statement runs last.
    const done: string[] = []
    const slow = (on: ClickHouseClient, name: string) =>
      on.query({ query: 'SELECT sleep(0.2) + {n:UInt8} AS x', query_params: { n: 1 }, format: 'JSONEachRow' }).then(async (r) => {
        await r.json()
        done.push(name)
      })
    const first = slow(client, 'request 1')
    await new Promise((resolve) => setTimeout(resolve, 20))
    const job = slow(jobs, 'job')
    await new Promise((resolve) => setTimeout(resolve, 20))
    const second = slow(client, 'request 2')
    await Promise.all([first, job, second])
    expect(done).toEqual(['request 1', 'request 2', 'job'])
  })

  it('is the client itself on a ClickHouse server', () => {
    const server = {} as ClickHouseClient
    expect(clientForJobs(server)).toBe(server)
  })
})
