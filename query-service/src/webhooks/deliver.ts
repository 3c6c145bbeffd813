/**
 * Delivers the outbox: per destination, one delivery at a time, oldest
 * first, so a later event never arrives before an earlier one. A delivery
 * is POSTed with its signature; a 2xx answer settles it. Anything else (an
 * error status, a redirect, a refused connection, no answer within the
 * per-attempt timeout) is tried again after an exponential backoff with
 * jitter, and the deliveries behind it wait. A delivery still failing
 * `maxRetryMs` after its first attempt is given up (reported, then the
 * queue moves on). Closing stops between attempts; what is pending stays in
 * the outbox for the next start.
 */
import type { OutboxEntry, Outbox, Settlement } from './outbox.js'
import type { SigningDestination } from './secrets.js'
import { SIGNATURE_HEADER, signatureHeader } from './signature.js'

/** Delivery timing; defaults in {@link DELIVERY_DEFAULTS}. */
export interface DeliveryOptions {
  /** Longest wait for an answer to one attempt. */
  timeoutMs?: number
  /** A delivery is given up once this long has passed since its first attempt. */
  maxRetryMs?: number
  /** Wait after the first failure; doubled after each further one. */
  initialBackoffMs?: number
  /** Longest wait between two attempts. */
  maxBackoffMs?: number
  /** Clock (epoch ms) and randomness, injectable for tests. */
  now?: () => number
  random?: () => number
  /** Told of every delivery that leaves the outbox without a 2xx, and of failed attempts (never with the secret or the URL). */
  onGiveUp?: (entry: OutboxEntry, reason: string) => void
  onAttemptFailed?: (entry: OutboxEntry, attempt: number, reason: string) => void
  /** Told when the outbox cannot be written. */
  onOutboxError?: (error: unknown) => void
}

type Callbacks = 'onGiveUp' | 'onAttemptFailed' | 'onOutboxError'

/** Defaults of the delivery timing (README, "Webhooks"). */
export const DELIVERY_DEFAULTS = { timeoutMs: 10_000, maxRetryMs: 24 * 3_600_000, initialBackoffMs: 1_000, maxBackoffMs: 600_000 } as const

/** The wait before attempt `failures + 1`: initial × 2^(failures − 1), capped, then scaled by a jitter in [0.5, 1). */
export function backoffMs(failures: number, options: { initialBackoffMs: number; maxBackoffMs: number }, random: number): number {
  const base = Math.min(options.maxBackoffMs, options.initialBackoffMs * 2 ** Math.min(failures - 1, 40))
  return Math.round(base * (0.5 + random / 2))
}

/** Runs one delivery loop per destination with pending deliveries. */
export class WebhookDelivery {
  private readonly options: Required<Omit<DeliveryOptions, Callbacks>> & Pick<DeliveryOptions, Callbacks>
  private readonly byName: Map<string, SigningDestination>
  private readonly loops = new Map<string, Promise<void>>()
  // Destinations whose loop runs; kept in step with the queue check, so a delivery queued as a loop ends starts a new one.
  private readonly running = new Set<string>()
  private readonly wakers = new Map<string, () => void>()
  private readonly inFlight = new Set<AbortController>()
  private readonly unsubscribe: () => void
  private closed = false

  constructor(
    private readonly outbox: Outbox,
    destinations: readonly SigningDestination[],
    options: DeliveryOptions = {},
  ) {
    this.options = { ...DELIVERY_DEFAULTS, now: Date.now, random: Math.random, ...stripUndefined(options) }
    this.byName = new Map(destinations.map((d) => [d.name, d]))
    this.unsubscribe = outbox.onAdded((destination) => this.wake(destination))
  }

  /**
   * Gives up deliveries to destinations no longer in the policy, then
   * starts a loop for every destination with deliveries pending.
   */
  async start(): Promise<void> {
    for (const entry of this.outbox.pending()) {
      if (this.byName.has(entry.destination)) continue
      await this.outbox.settle(entry, 'dropped')
      this.options.onGiveUp?.(entry, `destination ${entry.destination} is no longer in the policy`)
    }
    for (const destination of this.outbox.destinations()) this.wake(destination)
  }

  /** Makes sure the destination's loop runs (or notices new deliveries). */
  wake(destination: string): void {
    if (this.closed || !this.byName.has(destination)) return
    const waker = this.wakers.get(destination)
    if (waker) {
      waker()
      return
    }
    if (this.running.has(destination)) return
    this.running.add(destination)
    const loop: Promise<void> = this.run(destination)
      // The outbox could not be written (a full disk): the loop stops; the next queued delivery or start retries.
      .catch((error: unknown) => this.options.onOutboxError?.(error))
      .finally(() => {
        if (this.loops.get(destination) !== loop) return
        this.loops.delete(destination)
        this.running.delete(destination)
      })
    this.loops.set(destination, loop)
  }

  /** Stops every loop (an attempt under way is cut off and stays pending) and waits for them. */
  async close(): Promise<void> {
    this.closed = true
    this.unsubscribe()
    for (const controller of this.inFlight) controller.abort()
    for (const waker of this.wakers.values()) waker()
    await Promise.all(this.loops.values())
  }

  private async run(name: string): Promise<void> {
    const destination = this.byName.get(name)!
    let failures = 0
    while (!this.closed) {
      let entry = this.outbox.head(name)
      if (!entry) {
        this.running.delete(name)
        return
      }
      if (entry.firstAttemptMs === null) entry = await this.outbox.markTried(entry, this.options.now())
      const outcome = await this.attempt(destination, entry, failures + 1)
      if (this.closed) return
      if (outcome === undefined) {
        failures = 0
        await this.settle(entry, 'delivered')
        continue
      }
      failures++
      this.options.onAttemptFailed?.(entry, failures, outcome)
      const deadline = (entry.firstAttemptMs ?? this.options.now()) + this.options.maxRetryMs
      const now = this.options.now()
      if (now >= deadline) {
        failures = 0
        await this.settle(entry, 'expired')
        this.options.onGiveUp?.(entry, `no 2xx answer within ${Math.round(this.options.maxRetryMs / 1000)} s of the first attempt; last: ${outcome}`)
        continue
      }
      // The last attempt is made at the deadline, not skipped because a full backoff would pass it.
      await this.sleep(name, Math.min(backoffMs(failures, this.options, this.options.random()), deadline - now))
    }
  }

  private async settle(entry: OutboxEntry, as: Settlement): Promise<void> {
    await this.outbox.settle(entry, as)
  }

  // Undefined on a 2xx, else what went wrong (no URL, no secret: it may be logged).
  private async attempt(destination: SigningDestination, entry: OutboxEntry, attempt: number): Promise<string | undefined> {
    const controller = new AbortController()
    this.inFlight.add(controller)
    const timer = setTimeout(() => controller.abort(new Error('timeout')), this.options.timeoutMs)
    try {
      const timestamp = Math.floor(this.options.now() / 1000)
      const response = await fetch(destination.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'nhi-meter-webhooks',
          [SIGNATURE_HEADER]: signatureHeader(destination.secret, timestamp, entry.body),
          'X-NHI-Meter-Event-Id': entry.id,
          'X-NHI-Meter-Event-Type': entry.type,
          'X-NHI-Meter-Delivery-Attempt': String(attempt),
        },
        body: entry.body,
        // A redirect could carry the signed body somewhere else: it counts as a failure.
        redirect: 'manual',
        signal: controller.signal,
      })
      await response.body?.cancel().catch(() => undefined)
      return response.status >= 200 && response.status < 300 ? undefined : `HTTP ${response.status}`
    } catch (error) {
      if (controller.signal.aborted) return this.closed ? 'shutting down' : `no answer within ${this.options.timeoutMs} ms`
      const cause = (error as { cause?: { code?: string } }).cause?.code
      return cause ? `connection failed (${cause})` : 'connection failed'
    } finally {
      clearTimeout(timer)
      this.inFlight.delete(controller)
    }
  }

  private sleep(destination: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wakers.delete(destination)
        resolve()
      }
      // New deliveries do not cut a backoff short (the head is still failing); closing does.
      const timer = setTimeout(done, ms)
      this.wakers.set(destination, () => {
        if (this.closed) done()
      })
    })
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
