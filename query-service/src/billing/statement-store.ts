/**
 * Statements in nhi_statements: reading them back checked against their
 * hash, and inserting one in its place in the chain.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { z } from 'zod'
import { ApiError } from '../http/errors.js'
import { readRows } from '../storage/read.js'
import type { Statement } from './statement.js'
import { hashContent } from './statement-hash.js'

const storedRow = z.object({ period: z.string(), content: z.string(), content_hash: z.string() })

/** Every stored statement, oldest first, each checked against its hash. */
export async function loadStatements(client: ClickHouseClient): Promise<Array<{ statement: Statement; contentHash: string }>> {
  const rows = await readRows(client, { query: 'SELECT period, content, content_hash FROM nhi_statements ORDER BY period', row: storedRow })
  return rows.map((row) => {
    if (hashContent(row.content) !== row.content_hash) {
      throw new ApiError('statement_tampered', `statement ${row.period} does not match its content hash; it was changed after it was closed`)
    }
    return { statement: JSON.parse(row.content) as Statement, contentHash: row.content_hash }
  })
}

/**
 * Inserts a statement whose canonical JSON is `content`. Of two inserts that
 * follow the same predecessor, ClickHouse keeps the first (the caller reads
 * back to learn which).
 */
export async function insertStatement(client: ClickHouseClient, statement: Statement, content: string, contentHash: string): Promise<void> {
  // One statement per place in the chain (migration 0025): the token names the statement this one follows, so of two
  // services closing at the same moment ClickHouse keeps the first insert and drops the other.
  const place = `nhi-statement-after:${statement.previous?.content_hash ?? 'start'}`
  await client.insert({
    table: 'nhi_statements',
    values: [{ period: statement.period, closed_at: statement.closed_at.replace('T', ' ').replace('Z', ''), content, content_hash: contentHash }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplicate: 1, insert_deduplication_token: place },
  })
}
