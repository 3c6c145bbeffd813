import { describe, expect, it } from 'vitest'
import { freshStorage } from '../test-support/storage.js'
import { loadGeneratedKeys } from './keys.js'

describe('generated keys', () => {
  it('creates one admin key at first start and accepts it again on the next start without creating another', async () => {
    const client = await freshStorage()
    try {
      const first = await loadGeneratedKeys(client)
      expect(first.newKey).toBeDefined()
      const second = await loadGeneratedKeys(client)
      expect(second.newKey).toBeUndefined()
      expect(second.store.size).toBe(1)
      const principal = second.store.authenticate(first.newKey!)
      expect(principal?.scopes.has('admin')).toBe(true)
      expect(principal?.businessUnits).toBeNull()
    } finally {
      await client.close()
    }
  })
})
