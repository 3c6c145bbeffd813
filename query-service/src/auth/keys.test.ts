import { timingSafeEqual } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { bearerKey, KeyStore, sha256, type HashComparator } from './keys.js'

const names = ['first', 'second', 'third', 'fourth', 'fifth']
const keyOf = (name: string) => `nhim_test-key-of-${name}-0123456789`

/** A store whose comparator counts its calls and records which stored hashes it saw. */
function countingStore() {
  const seen: string[] = []
  const compare: HashComparator = (stored, presented) => {
    seen.push(stored.toString('hex'))
    return timingSafeEqual(stored, presented)
  }
  const store = KeyStore.fromEntries(
    names.map((name) => ({ name, sha256: sha256(keyOf(name)).toString('hex'), scopes: ['billing:read' as const] })),
    compare,
  )
  return { store, seen }
}

describe('KeyStore.authenticate', () => {
  const everyHash = names.map((n) => sha256(keyOf(n)).toString('hex'))

  it.each(names.map((name, i) => [name, i] as const))('compares against every stored hash when the key matches at position %s (%i)', (name) => {
    const { store, seen } = countingStore()
    expect(store.authenticate(keyOf(name))?.name).toBe(name)
    expect(seen).toEqual(everyHash)
  })

  it('compares against every stored hash when no key matches', () => {
    const { store, seen } = countingStore()
    expect(store.authenticate('nhim_not-a-key-anyone-holds-000000')).toBeUndefined()
    expect(seen).toEqual(everyHash)
  })

  it('compares the presented key by its SHA-256, so every comparison is of two equal-length buffers', () => {
    const lengths: number[] = []
    const store = KeyStore.fromEntries([{ name: 'only', sha256: sha256('k').toString('hex'), scopes: ['admin'] }], (a, b) => {
      lengths.push(a.length, b.length)
      return timingSafeEqual(a, b)
    })
    store.authenticate('x'.repeat(500))
    store.authenticate('k')
    expect(lengths).toEqual([32, 32, 32, 32])
  })

  it('uses crypto.timingSafeEqual by default and answers the right principal', () => {
    const store = KeyStore.fromEntries([
      { name: 'a', sha256: sha256('key-a').toString('hex'), scopes: ['admin'] },
      { name: 'b', sha256: sha256('key-b').toString('hex'), scopes: ['billing:read'], business_units: ['unit-b'] },
    ])
    expect(store.authenticate('key-b')).toMatchObject({ name: 'b', businessUnits: ['unit-b'] })
    expect(store.authenticate('key-c')).toBeUndefined()
  })
})

describe('bearerKey', () => {
  it('refuses a missing, empty, non-Bearer, non-ASCII, overlong or two-key header', () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic abc', 'Token abc', 'Bearer k\u00e9y', 'Bearer ' + 'k'.repeat(513), 'Bearer a b', 'Bearer a, Bearer b']) {
      expect('problem' in bearerKey(header), JSON.stringify(header)).toBe(true)
    }
  })

  it('accepts one printable key after Bearer', () => {
    expect(bearerKey('Bearer nhim_abc')).toEqual({ key: 'nhim_abc' })
    expect(bearerKey('bearer nhim_abc')).toEqual({ key: 'nhim_abc' })
  })
})
