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
  // Each key's prefix and value, encoded once per value: a value repeats row after row (an identity's meters), or
  // across the bill (meter names, units); the rows are then a few copies of bytes each.
  const last: Array<string | undefined> = groupBy.map(() => undefined)
  const lastBytes: Buffer[] = groupBy.map(() => Buffer.alloc(0))
  const encoded = groupBy.map(() => new Map<string, Buffer>())
  const segment = (i: number, value: string): Buffer => {
    if (value === last[i]) return lastBytes[i]!
    let bytes = encoded[i]!.get(value)
    if (bytes === undefined) {
      // Most keys need no escaping; the rest are escaped by JSON.stringify (its quotes dropped).
      bytes = Buffer.from(prefixes[i]! + (NEEDS_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value))
      if (encoded[i]!.size < MAX_ENCODED_VALUES) encoded[i]!.set(value, bytes)
    }
    last[i] = value
    lastBytes[i] = bytes
    return bytes
  }
  const quantityPrefix = Buffer.from(prefixes.length === 0 ? '{"quantity":' : '","quantity":')
  const amountPrefix = Buffer.from(',"amount":"')
  const rowEnd = Buffer.from('"},')
  const start = JSON.stringify(head)
  const out = new JsonBytes(64 * 1024 + bill.rows.length * 96)
  out.text(`${start.slice(0, -1)}${start === '{}' ? '' : ','}"rows":[`)
  const { rows } = bill
  for (let r = 0; r < rows.length; r++) {
    for (let i = 0; i < prefixes.length; i++) out.raw(segment(i, rows.keys[i]![r]!))
    out.raw(quantityPrefix)
    const units = rows.units[r]!
    if (units >= 0) out.digits(units)
    else out.text(quantityJson(rows.quantity(r)))
    out.raw(amountPrefix)
    const nanos = rows.nanos[r]!
    if (nanos >= 0) out.nanos(nanos)
    else out.text(formatMoney(rows.amount(r)))
    out.raw(rowEnd)
  }
  // The last row's comma goes.
  if (rows.length > 0) out.drop(1)
  out.text(`],"total":{"quantity":${quantityJson(bill.totalQuantity)},"amount":"${formatMoney(bill.totalAmount)}"}}`)
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

/**
 * JSON written byte by byte into a buffer that grows by doubling. A bill's
 * row is a dozen short pieces: copying ASCII and digits in a loop costs less
 * than a call into the encoder per piece, or than strings concatenated first
 * (every piece an object to collect).
 */
class JsonBytes {
  private buffer: Buffer<ArrayBuffer>
  private length = 0

  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity)
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes))
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }

  /** Any text, as UTF-8. */
  text(text: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    this.reserve(text.length * 3)
    this.length += this.buffer.write(text, this.length, 'utf8')
  }

  /** Bytes already encoded. */
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length)
    this.buffer.set(bytes, this.length)
    this.length += bytes.length
  }

  /** Takes back the last `count` bytes. */
  drop(count: number): void {
    this.length -= count
  }

  /** A non-negative safe integer's digits. */
  digits(n: number): void {
    if (n < 10) {
      this.reserve(1)
      this.buffer[this.length++] = 48 + n
      return
    }
    let count = 1
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++
    this.reserve(count)
    const buffer = this.buffer
    let at = this.length + count
    this.length = at
    for (let rest = n; count > 0; count--, rest = Math.floor(rest / 10)) buffer[--at] = 48 + (rest % 10)
  }

  /** An amount of nano-units (a non-negative safe integer) as formatMoney writes it: nine decimals less trailing zeros beyond two. */
  nanos(n: number): void {
    const whole = Math.floor(n / 1e9)
    // Below 10^9: a small integer, so the digit arithmetic below stays in integers.
    let fraction = (n - whole * 1e9) | 0
    this.digits(whole)
    let kept = 9
    while (kept > 2 && fraction % 10 === 0) {
      fraction = (fraction / 10) | 0
      kept--
    }
    this.reserve(kept + 1)
    const buffer = this.buffer
    buffer[this.length] = 46
    let at = this.length + kept
    this.length = at + 1
    for (; kept > 0; kept--, fraction = (fraction / 10) | 0) buffer[at--] = 48 + (fraction % 10)
  }

  bytes(): Buffer<ArrayBuffer> {
    return this.buffer.subarray(0, this.length)
  }
}


// Distinct values per key whose encoding is kept for the rest of the bill (a key of identities may have many more).
const MAX_ENCODED_VALUES = 4096

// Characters JSON.stringify escapes in a string: quote, backslash, controls and lone surrogates (any surrogate is
// sent to JSON.stringify, which keeps well-formed pairs as they are).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/
