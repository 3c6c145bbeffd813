/**
 * Setup file of every test file (vitest.config.ts): the temporary data
 * directories its tests made and did not remove (services restarted on one,
 * storage left open) go once the file has run, not at the end of the day.
 */
import { afterAll } from 'vitest'
import { removeLeftOverTempDirs } from '../../query-service/src/test-support/storage.js'

afterAll(() => {
  removeLeftOverTempDirs()
})
