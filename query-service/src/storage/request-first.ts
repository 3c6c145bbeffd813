/**
 * Requests before background jobs on the embedded engine. chDB runs the
 * statements of one process one at a time, first come first served (bound
 * parameters are not safe to run side by side), so a bill asked while the
 * summary, trace-resolution or findings job has statements queued waits for
 * all of them. Jobs therefore get a client of their own whose statements
 * start only while no request is under way: no API request being answered
 * (client.ts, duringRequest) and no statement of the requests' client queued
 * or running (or once they have waited {@link MAX_JOB_WAIT_MS}, so that
 * steady requests cannot starve them). A request then waits for at most
 * the job statements already under way when it came. A ClickHouse server
 * runs statements side by side, and jobs use the service's one client
 * there.
 */

import { AsyncLocalStorage } from 'node:async_hooks'

/** Longest a job's statement waits for requests to finish before it starts anyway. */
export const MAX_JOB_WAIT_MS = 2_000

// Requests under way in the process, whichever client they use, and the background work waiting for none. Work
// done for a request itself (its findings folded while it waits) is inside one and never waits for it.
const insideRequest = new AsyncLocalStorage<true>()
let requestsUnderWay = 0
let idleWaiters: Array<() => void> = []

/**
 * Resolves once no request is under way in the process, or after
 * `maxWaitMs`: background work that runs long stretches of JavaScript (the
 * findings evaluation's folds) waits here between stretches, so a request's
 * own steps are not queued behind them on the event loop.
 */
export async function afterRequests(maxWaitMs = MAX_JOB_WAIT_MS): Promise<void> {
  if (requestsUnderWay === 0 || insideRequest.getStore()) return
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      idleWaiters = idleWaiters.filter((waiter) => waiter !== done)
      resolve()
    }, maxWaitMs)
    idleWaiters.push(done)
  })
}

/** Counts the requests (and their statements) under way, and lets the jobs' statements wait for none. */
export class RequestFirst {
  private requests = 0
  private waiting: Array<() => void> = []

  /** Runs a request, or one of its statements. */
  async request<T>(statement: () => Promise<T>): Promise<T> {
    this.requests++
    requestsUnderWay++
    try {
      return await insideRequest.run(true, statement)
    } finally {
      if (--this.requests === 0) {
        const waiting = this.waiting
        this.waiting = []
        for (const start of waiting) start()
      }
      if (--requestsUnderWay === 0) {
        const waiting = idleWaiters
        idleWaiters = []
        for (const resume of waiting) resume()
      }
    }
  }

  /** Runs a job's statement once no request is under way, or once it has waited `maxWaitMs`. */
  async job<T>(statement: () => Promise<T>, maxWaitMs = MAX_JOB_WAIT_MS): Promise<T> {
    if (this.requests > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiting = this.waiting.filter((start) => start !== started)
          resolve()
        }, maxWaitMs)
        const started = () => {
          clearTimeout(timer)
          resolve()
        }
        this.waiting.push(started)
      })
    }
    return statement()
  }
}

/** The connection methods that run a statement, as @clickhouse/client calls them. */
const STATEMENT_METHODS = ['query', 'exec', 'command', 'insert'] as const

type Connection = Record<(typeof STATEMENT_METHODS)[number], (params: unknown) => Promise<unknown>> & {
  ping(params: unknown): Promise<unknown>
  close(): Promise<void>
}

/**
 * Splits one embedded connection in two: the connection itself, whose
 * statements now count as requests, and the connection jobs use, whose
 * statements wait for requests. Both reach the same session (and whatever
 * wraps its methods already, such as the write tracking); closing the jobs'
 * connection leaves the session open for its owner to close.
 */
export function splitForJobs(connection: Connection, order = new RequestFirst()): Connection {
  const jobs = {
    ping: (params: unknown) => connection.ping(params),
    close: async () => undefined,
  } as Connection
  for (const method of STATEMENT_METHODS) {
    const run = connection[method].bind(connection)
    connection[method] = (params) => order.request(() => run(params))
    jobs[method] = (params) => order.job(() => run(params))
  }
  return jobs
}
