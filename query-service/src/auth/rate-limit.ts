/**
 * Token buckets keyed by a name (an API key's name, or a client address for
 * failed authentication attempts). Each bucket holds up to `burst` tokens
 * and refills at `perSecond`; a request takes one token, and when none is
 * left the caller is told how long until one will be.
 */

/** How a set of buckets behaves. */
export interface RateLimitOptions {
  /** Tokens added per second, > 0. */
  perSecond: number
  /** Most tokens a bucket holds (the largest burst), >= 1. */
  burst: number
  /** Milliseconds clock; defaults to a monotonic one. */
  now?: () => number
  /** Most buckets kept; beyond it the least recently used are forgotten (a forgotten bucket starts full). */
  maxBuckets?: number
}

/** The answer to one attempt to take a token. */
export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number }

interface Bucket {
  tokens: number
  at: number
}

const DEFAULT_MAX_BUCKETS = 10_000

/** Per-name token buckets. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number
  private readonly now: () => number
  private readonly maxBuckets: number

  constructor(private readonly options: RateLimitOptions) {
    if (!(options.perSecond > 0) || !Number.isFinite(options.perSecond)) throw new RangeError(`perSecond must be a positive number, got ${options.perSecond}`)
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) throw new RangeError(`burst must be at least 1, got ${options.burst}`)
    this.perMs = options.perSecond / 1000
    this.now = options.now ?? (() => performance.now())
    this.maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS
  }

  /** Takes one token from `name`'s bucket if it has one. */
  take(name: string): RateDecision {
    const bucket = this.refilled(name)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return { allowed: true }
    }
    return { allowed: false, retryAfterSeconds: this.secondsUntilToken(bucket) }
  }

  /** Whether `name`'s bucket is empty, without taking anything; when it is, how long until it is not. */
  peek(name: string): RateDecision {
    const bucket = this.buckets.get(name)
    if (!bucket) return { allowed: true }
    const refilled = this.refilled(name)
    return refilled.tokens >= 1 ? { allowed: true } : { allowed: false, retryAfterSeconds: this.secondsUntilToken(refilled) }
  }

  /** Number of buckets held (for tests of the bound). */
  get size(): number {
    return this.buckets.size
  }

  private refilled(name: string): Bucket {
    const now = this.now()
    let bucket = this.buckets.get(name)
    if (bucket) {
      bucket.tokens = Math.min(this.options.burst, bucket.tokens + (now - bucket.at) * this.perMs)
      bucket.at = now
      // Re-insert so Map order is least recently used first.
      this.buckets.delete(name)
    } else {
      bucket = { tokens: this.options.burst, at: now }
      if (this.buckets.size >= this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!)
    }
    this.buckets.set(name, bucket)
    return bucket
  }

  /** Whole seconds (at least 1, as Retry-After needs) until the bucket holds a token. */
  private secondsUntilToken(bucket: Bucket): number {
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000))
  }
}
