/**
 * A bill as JSON: the body of GET /v1/billable, written fast, and the
 * JSON form of quantities and per-meter figures that statements share.
 */
import { formatMoney } from '../money/decimal.js'
import { formatQuantity, isWholeQuantity, QUANTITY_UNIT, type Quantity } from '../money/quantity.js'
import type { Bill, MeterTotal } from './bill.js'
import type { GroupByKey } from './queries.js'

/**
 * The JSON body of a bill, as UTF-8 bytes: `head` (everything before the
 * rows), then `rows` (each an object of the group-by keys, quantity and
 * amount) and `total`. Written row by row into one buffer rather than
 * through a JSON.stringify of row objects: a month grouped by identity is
 * tens of thousands of rows, and an object per row, or one string grown
 * over all of them, costs more than the query (measured: about half the
 * time, and a fraction of the garbage). The bytes are those of the
 * JSON.stringify of the same document (tested).
 */
export function billJson(groupBy: readonly GroupByKey[], bill: Pick<Bill, 'rows' | 'totalQuantity' | 'totalAmount'>, head: Record<string, unknown>): Buffer<ArrayBuffer> {
  // What precedes each key's value, closing the previous value's quote: '{"nhi.id":"', '","meter":"'.
  const prefixes = groupBy.map((k, i) => `${i === 0 ? '{' : '",'}${JSON.stringify(k)}:"`)
  const quantityPrefix = prefixes.length === 0 ? '{"quantity":' : '","quantity":'
  const start = JSON.stringify(head)
  const out = new ByteWriter(64 * 1024 + bill.rows.length * 96)
  out.write(`${start.slice(0, -1)}${start === '{}' ? '' : ','}"rows":[`)
  // Rows are written in chunks of about 32 KiB: one buffer write per row costs more than the row's text.
  let text = ''
  for (let r = 0; r < bill.rows.length; r++) {
    const row = bill.rows[r]!
    if (r > 0) text += ','
    for (let i = 0; i < prefixes.length; i++) {
      const value = row.values[i]!
      text += prefixes[i]
      // Most keys need no escaping; the rest are escaped by JSON.stringify (its quotes dropped).
      text += NEEDS_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value
    }
    text += quantityPrefix
    text += quantityJson(row.quantity)
    text += ',"amount":"'
    text += formatMoney(row.amount)
    text += '"}'
    if (text.length > 32_768) {
      out.write(text)
      text = ''
    }
  }
  out.write(text)
  out.write(`],"total":{"quantity":${quantityJson(bill.totalQuantity)},"amount":"${formatMoney(bill.totalAmount)}"}}`)
  return out.bytes()
}

/**
 * A quantity in JSON: a number when it is whole (counts, identities,
 * milliseconds, tokens), else its exact decimal as a string, which no JSON
 * parser can round.
 */
export function quantityJson(quantity: Quantity): string {
  const text = formatQuantity(quantity)
  return isWholeQuantity(quantity) && quantity <= MAX_EXACT_JSON_QUANTITY ? text : `"${text}"`
}

/** The per-meter figures beside a bill's rows, as JSON. */
export function meterJson(total: MeterTotal): Record<string, unknown> {
  return {
    meter: total.meter,
    aggregation: total.aggregation,
    ...(total.value === null ? {} : { value: total.value }),
    quantity: JSON.parse(quantityJson(total.quantity)) as unknown,
    events: total.events,
    ...(total.aggregation === 'sum' ? { events_without_value: total.eventsWithoutValue } : {}),
    amount: formatMoney(total.amount),
  }
}

// Whole quantities above 2^53 - 1 would lose digits in a JSON number read as a double: they are sent as strings.
const MAX_EXACT_JSON_QUANTITY = BigInt(Number.MAX_SAFE_INTEGER) * QUANTITY_UNIT

/** UTF-8 text written into a buffer that grows by doubling. */
class ByteWriter {
  private buffer: Buffer<ArrayBuffer>
  private length = 0

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity)
  }

  write(text: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    const needed = this.length + text.length * 3
    if (needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, needed))
      this.buffer.copy(grown, 0, 0, this.length)
      this.buffer = grown
    }
    this.length += this.buffer.write(text, this.length, 'utf8')
  }

  bytes(): Buffer<ArrayBuffer> {
    return this.buffer.subarray(0, this.length)
  }
}

// Characters JSON.stringify escapes in a string: quote, backslash, controls and lone surrogates (any surrogate is
// sent to JSON.stringify, which keeps well-formed pairs as they are).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/
