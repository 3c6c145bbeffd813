/**
 * A statement's content hash: SHA-256 of its canonical JSON, stored beside
 * it, checked on every read and named by the next statement, so the chain
 * shows any rewrite.
 */
import { createHash } from 'node:crypto'

/** SHA-256 hex of a statement's canonical JSON. */
export function hashContent(content: string): string {
  return createHash('sha256').update(content, 'utf8').digest('hex')
}
