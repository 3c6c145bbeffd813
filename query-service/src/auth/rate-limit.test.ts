import { describe, expect, it } from 'vitest'
import { TokenBuckets } from './rate-limit.js'

function clock() {
  let ms = 1_000
  return { now: () => ms, advance: (by: number) => (ms += by) }
}

describe('TokenBuckets', () => {
  it('allows a burst, then refuses with the seconds until the next token', () => {
    const time = clock()
    const buckets = new TokenBuckets({ perSecond: 0.5, burst: 3, now: time.now })
    expect([1, 2, 3].map(() => buckets.take('k').allowed)).toEqual([true, true, true])
    expect(buckets.take('k')).toEqual({ allowed: false, retryAfterSeconds: 2 })
    time.advance(1_000)
    expect(buckets.take('k')).toEqual({ allowed: false, retryAfterSeconds: 1 })
    time.advance(1_000)
    expect(buckets.take('k').allowed).toBe(true)
    expect(buckets.take('k').allowed).toBe(false)
  })

  it('refills at the configured rate and never above the burst', () => {
    const time = clock()
    const buckets = new TokenBuckets({ perSecond: 10, burst: 5, now: time.now })
    for (let i = 0; i < 5; i++) buckets.take('k')
    time.advance(60_000)
    const allowed = Array.from({ length: 8 }, () => buckets.take('k').allowed).filter(Boolean).length
    expect(allowed).toBe(5)
  })

  it('keeps one bucket per name, so one key exhausting its bucket leaves another alone', () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1, now: clock().now })
    expect(buckets.take('a').allowed).toBe(true)
    expect(buckets.take('a').allowed).toBe(false)
    expect(buckets.take('b').allowed).toBe(true)
  })

  it('peeks without taking a token', () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2, now: clock().now })
    expect(buckets.peek('a').allowed).toBe(true)
    expect(buckets.size).toBe(0)
    buckets.take('a')
    expect(buckets.peek('a').allowed).toBe(true)
    buckets.take('a')
    expect(buckets.peek('a')).toEqual({ allowed: false, retryAfterSeconds: 1 })
  })

  it('holds at most maxBuckets, forgetting the least recently used', () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1, now: clock().now, maxBuckets: 2 })
    buckets.take('a')
    buckets.take('b')
    buckets.take('a')
    buckets.take('c')
    expect(buckets.size).toBe(2)
    // 'a' was used after 'b', so 'b' was forgotten: 'a' is still empty, 'b' starts full again.
    expect(buckets.take('a').allowed).toBe(false)
    expect(buckets.take('b').allowed).toBe(true)
  })

  it('refuses impossible settings', () => {
    expect(() => new TokenBuckets({ perSecond: 0, burst: 1 })).toThrow(/perSecond/)
    expect(() => new TokenBuckets({ perSecond: 1, burst: 0 })).toThrow(/burst/)
  })
})
