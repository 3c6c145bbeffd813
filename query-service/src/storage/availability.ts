/**
 * How the service behaves when a ClickHouse server goes away, and comes back.
 *
 * A refused or reset connection fails a request at once, but an unresponsive
 * server (a hung host, a dropped route) would hold every request until the
 * client's 30 s socket timeout: longer than an OTLP exporter waits (10 s by
 * default), so exporters would time out instead of backing off, and the API
 * would hang. So a server client is guarded:
 *
 * - any operation still outstanding after `slowAfterMs` makes the guard ask
 *   the server's `/ping` (answered without running a query, so a busy server
 *   still answers), which must reply within `probeTimeoutMs`;
 * - a failed probe, or a request that fails to connect, marks storage
 *   unavailable: outstanding operations are aborted and new ones refused at
 *   once with `ClickHouseUnavailableError` (503 at the API and the receiver),
 *   instead of each waiting out its own timeout;
 * - while unavailable, `/ping` is probed every `probeIntervalMs`; the first
 *   success makes storage available again, with no restart.
 *
 * The embedded engine runs in this process and cannot go away; it is not
 * guarded.
 */
import type { ClickHouseClient, PingResult } from '@clickhouse/client'
import { setMaxListeners } from 'node:events'

/** Storage cannot be reached now; retry later (the API and the receiver answer 503). */
export class ClickHouseUnavailableError extends Error {
  override readonly name = 'ClickHouseUnavailableError'
}

/** Timings of the guard, in milliseconds; all optional. */
export interface AvailabilityOptions {
  /** An operation outstanding this long makes the guard check the server. Default 2000. */
  slowAfterMs?: number
  /** A probe without an answer this long counts as failed. Default 2500. */
  probeTimeoutMs?: number
  /** Pause between probes while storage is unavailable. Default 1000. */
  probeIntervalMs?: number
  /** Told when storage becomes unavailable or available again (once per change). */
  onChange?: (available: boolean, detail: string) => void
  /**
   * The client that sends /ping, on connections of its own: probing through
   * the guarded client's pool would wait behind slow queries holding every
   * connection, and a busy server would be taken for a gone one. Default:
   * the guarded client itself (tests).
   */
  prober?: ClickHouseClient
}

const DEFAULTS = { slowAfterMs: 2000, probeTimeoutMs: 2500, probeIntervalMs: 1000 }

/** Error codes of Node's sockets that mean the server could not be reached or the connection broke. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED'])

/**
 * ClickHouse error codes that mean "reachable, but cannot serve this now":
 * retrying later can succeed, so they are a 503, not a 500.
 */
const TRANSIENT_CLICKHOUSE_CODES = new Set([
  '202', // TOO_MANY_SIMULTANEOUS_QUERIES
  '203', // NO_FREE_CONNECTION
  '209', // SOCKET_TIMEOUT
  '210', // NETWORK_ERROR
  '225', // NO_ZOOKEEPER
  '241', // MEMORY_LIMIT_EXCEEDED
  '242', // TABLE_IS_READ_ONLY (a replica lost Keeper)
  '252', // TOO_MANY_PARTS
  '279', // ALL_CONNECTION_TRIES_FAILED
  '319', // UNKNOWN_STATUS_OF_INSERT
  '999', // KEEPER_EXCEPTION
])

/** True when the connection itself failed (refused, reset, timed out), as opposed to the server answering with an error. */
function isConnectionFailure(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true
  // @clickhouse/client words its socket timeout and a dropped socket this way, without a code.
  return /^(Timeout error\.|socket hang up)/.test(String((error as Error | undefined)?.message))
}

/** A connection that broke after it was made (as opposed to refused or unanswered). */
function isBrokenSocket(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'ECONNRESET' || code === 'EPIPE' || /^socket hang up/.test(String((error as Error | undefined)?.message))
}

/** True for failures that mean storage is unavailable for now (answer 503 with Retry-After), from either storage mode. */
export function isStorageUnavailable(error: unknown): boolean {
  if (error instanceof ClickHouseUnavailableError || isConnectionFailure(error)) return true
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && TRANSIENT_CLICKHOUSE_CODES.has(code)
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  const message = error instanceof Error ? error.message : String(error)
  return code && !message.includes(code) ? `${code}: ${message}` : message
}

/** The guard's state, shared by every operation of one client. */
class Availability {
  private available = true
  private reason = ''
  private since = 0
  /** Aborted when storage becomes unavailable; replaced when it returns. */
  private outage = new AbortController()
  private probing: Promise<PingResult> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly prober: ClickHouseClient,
    private readonly options: Required<Omit<AvailabilityOptions, 'onChange' | 'prober'>> & Pick<AvailabilityOptions, 'onChange'>,
  ) {
    // Every operation in flight listens for the outage: there can be many.
    setMaxListeners(0, this.outage.signal)
  }

  /** Runs one operation under the guard. */
  async run<T>(operation: (signal: AbortSignal) => Promise<T>, callerSignal: AbortSignal | undefined): Promise<T> {
    if (!this.available) throw new ClickHouseUnavailableError(`ClickHouse is unavailable (${this.reason}); retry later`)
    const outage = this.outage.signal
    const signal = callerSignal ? AbortSignal.any([callerSignal, outage]) : outage
    const watchdog = setTimeout(() => void this.probe(), this.options.slowAfterMs)
    watchdog.unref()
    try {
      return await operation(signal)
    } catch (error) {
      if (outage.aborted) throw new ClickHouseUnavailableError(`ClickHouse became unavailable (${this.reason}); retry later`, { cause: error })
      if (isConnectionFailure(error)) {
        // One broken connection can be a stale keep-alive socket: the probe decides whether the server is gone.
        void this.probe()
        throw new ClickHouseUnavailableError(`ClickHouse could not be reached (${describe(error)}); retry later`, { cause: error })
      }
      throw error
    } finally {
      clearTimeout(watchdog)
    }
  }

  /** Asks the server's /ping (one probe at a time); marks storage available or unavailable by the answer. */
  probe(): Promise<PingResult> {
    const ping = () => this.prober.ping({ select: false, abort_signal: AbortSignal.timeout(this.options.probeTimeoutMs) })
    this.probing ??= ping()
      // A reset on a pooled keep-alive socket says nothing about the server; the second try opens a fresh one.
      .then((result) => (!result.success && isBrokenSocket(result.error) ? ping() : result))
      .then((result) => {
        if (result.success) this.markAvailable()
        else this.markUnavailable(result.error.name === 'TimeoutError' || /aborted/i.test(result.error.message) ? `no answer to /ping within ${this.options.probeTimeoutMs} ms` : describe(result.error))
        return result
      })
      .finally(() => {
        this.probing = undefined
      })
    return this.probing
  }

  /** Readiness: refused at once while unavailable, else a fresh probe. */
  async ping(): Promise<PingResult> {
    if (!this.available) return { success: false, error: new ClickHouseUnavailableError(this.reason) }
    return this.probe()
  }

  close(): void {
    this.closed = true
    clearTimeout(this.retryTimer)
  }

  private markUnavailable(reason: string): void {
    this.reason = reason
    // The next probe is armed before anyone is told, so recovery never depends on a listener.
    if (!this.closed) {
      clearTimeout(this.retryTimer)
      this.retryTimer = setTimeout(() => void this.probe(), this.options.probeIntervalMs)
      this.retryTimer.unref()
    }
    if (this.available) {
      this.available = false
      this.since = Date.now()
      this.outage.abort(new ClickHouseUnavailableError(reason))
      this.tell(false, reason)
    }
  }

  private markAvailable(): void {
    if (this.available) return
    this.available = true
    this.outage = new AbortController()
    setMaxListeners(0, this.outage.signal)
    clearTimeout(this.retryTimer)
    this.tell(true, `after ${((Date.now() - this.since) / 1000).toFixed(1)} s`)
  }

  /** Tells the listener of a change; a listener that throws changes nothing here. */
  private tell(available: boolean, detail: string): void {
    try {
      this.options.onChange?.(available, detail)
    } catch {
      // The state change stands; reporting it is best effort.
    }
  }
}

/** Wraps a server client so that an unreachable server fails requests quickly and recovery needs no restart (see the file comment). */
export function guardServerClient(client: ClickHouseClient, options: AvailabilityOptions = {}): ClickHouseClient {
  const { prober = client, ...rest } = options
  const availability = new Availability(prober, { ...DEFAULTS, ...rest })
  const guarded = {
    query: (params: Parameters<ClickHouseClient['query']>[0]) => availability.run((signal) => client.query({ ...params, abort_signal: signal }), params.abort_signal),
    command: (params: Parameters<ClickHouseClient['command']>[0]) => availability.run((signal) => client.command({ ...params, abort_signal: signal }), params.abort_signal),
    exec: (params: Parameters<ClickHouseClient['exec']>[0]) => availability.run((signal) => client.exec({ ...params, abort_signal: signal }), params.abort_signal),
    insert: (params: Parameters<ClickHouseClient['insert']>[0]) => availability.run((signal) => client.insert({ ...params, abort_signal: signal }), params.abort_signal),
    ping: () => availability.ping(),
    close: async () => {
      availability.close()
      await client.close()
      if (prober !== client) await prober.close()
    },
  }
  return new Proxy(client, {
    get: (target, property, receiver) => (Object.hasOwn(guarded, property) ? guarded[property as keyof typeof guarded] : Reflect.get(target, property, receiver)),
  })
}

/** Logging hooks for `waitUntilReachable`. */
export interface WaitLog {
  info(message: string): void
}

/**
 * Waits at start-up until the server answers `/ping`, retrying with backoff
 * (0.5 s doubling to 10 s) and saying so on every attempt, so a service
 * started before its ClickHouse (or during an outage) comes up by itself
 * once ClickHouse does.
 */
export async function waitUntilReachable(client: ClickHouseClient, where: string, log: WaitLog): Promise<void> {
  let delayMs = 500
  for (let attempt = 1; ; attempt++) {
    const result = await client.ping()
    if (result.success) {
      if (attempt > 1) log.info(`ClickHouse at ${where} is reachable (attempt ${attempt})`)
      return
    }
    log.info(`ClickHouse at ${where} is not reachable (${describe(result.error)}); waiting for it, next attempt in ${(delayMs / 1000).toFixed(1)} s`)
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    delayMs = Math.min(delayMs * 2, 10_000)
  }
}
