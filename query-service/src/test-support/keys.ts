/** API keys for tests, each with a key text derived from its name. */
import { KeyStore, sha256, type Scope } from '../auth/keys.js'

/** Test keys: the key text is its name prefixed with `nhim_test_`. */
export function testKeys(entries: Array<{ name: string; scopes: Scope[]; business_units?: string[] }>): { store: KeyStore; key: (name: string) => string } {
  const key = (name: string) => `nhim_test_${name}_0123456789abcdef`
  return { store: KeyStore.fromEntries(entries.map((e) => ({ ...e, sha256: sha256(key(e.name)).toString('hex') }))), key }
}
