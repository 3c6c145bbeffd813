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
  // What precedes each key's value, closing the previous value's quote ('{"nhi.id":"', '","meter":"'), and what
  // follows it: nothing, or after the last key what precedes the quantity.
  const keyCount = groupBy.length
  const prefixes = groupBy.map((k, i) => Buffer.from(`${i === 0 ? '{' : '",'}${JSON.stringify(k)}:"`))
  const quantityPrefix = Buffer.from(keyCount === 0 ? '{"quantity":' : '","quantity":')
  const suffixes = groupBy.map((_, i) => (i === keyCount - 1 ? quantityPrefix : Buffer.alloc(0)))
  // Each key's value with its prefix and suffix, encoded once for values that repeat across the bill (meter names,
  // units, periods: the first few thousand values of each key are kept); a value repeated on the next row (an
  // identity's meters) is copied from where it was last written.
  const last: Array<string | undefined> = groupBy.map(() => undefined)
  const lastStart = groupBy.map(() => 0)
  const lastEnd = groupBy.map(() => 0)
  const encoded = groupBy.map(() => new Map<string, Buffer>())
  const start = JSON.stringify(head)
  const out = new JsonBytes(64 * 1024 + bill.rows.length * 96)
  out.text(`${start.slice(0, -1)}${start === '{}' ? '' : ','}"rows":[`)
  const writeKey = (i: number, value: string): void => {
    if (value === last[i]) return out.again(lastStart[i]!, lastEnd[i]!)
    last[i] = value
    lastStart[i] = out.length
    const bytes = encoded[i]!.get(value)
    if (bytes !== undefined) {
      out.raw(bytes)
    } else {
      // Most keys need no escaping; the rest are escaped by JSON.stringify (its quotes dropped).
      const text = NEEDS_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value
      if (encoded[i]!.size < MAX_ENCODED_VALUES) {
        const made = Buffer.concat([prefixes[i]!, Buffer.from(text), suffixes[i]!])
        encoded[i]!.set(value, made)
        out.raw(made)
      } else {
        out.raw(prefixes[i]!)
        out.text(text)
        out.raw(suffixes[i]!)
      }
    }
    lastEnd[i] = out.length
  }
  const { rows } = bill
  for (let r = 0; r < rows.length; r++) {
    for (let i = 0; i < keyCount; i++) writeKey(i, rows.keys[i]![r]!)
    if (keyCount === 0) out.raw(quantityPrefix)
    const units = rows.units[r]!
    if (units >= 0) out.digits(units)
    else out.text(quantityJson(rows.quantity(r)))
    out.amountOpen()
    const nanos = rows.nanos[r]!
    if (nanos >= 0) out.nanos(nanos)
    else out.text(formatMoney(rows.amount(r)))
    out.rowClose()
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
  /** Bytes written so far. */
  length = 0

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

  /** The bytes already written from `start` to `end`, again. */
  again(start: number, end: number): void {
    this.reserve(end - start)
    this.buffer.copyWithin(this.length, start, end)
    this.length += end - start
  }

  /** Takes back the last `count` bytes. */
  drop(count: number): void {
    this.length -= count
  }

  /** `,"amount":"`, byte by byte: a constant written on every row costs less this way than copied (measured). */
  amountOpen(): void {
    this.reserve(11)
    const b = this.buffer
    const at = this.length
    b[at] = 44 // ,
    b[at + 1] = 34 // "
    b[at + 2] = 97 // a
    b[at + 3] = 109 // m
    b[at + 4] = 111 // o
    b[at + 5] = 117 // u
    b[at + 6] = 110 // n
    b[at + 7] = 116 // t
    b[at + 8] = 34 // "
    b[at + 9] = 58 // :
    b[at + 10] = 34 // "
    this.length = at + 11
  }

  /** `"},`: the end of a row and the comma before the next. */
  rowClose(): void {
    this.reserve(3)
    const b = this.buffer
    const at = this.length
    b[at] = 34 // "
    b[at + 1] = 125 // }
    b[at + 2] = 44 // ,
    this.length = at + 3
  }

  /** A non-negative safe integer's digits, two at a time. */
  digits(n: number): void {
    let count = 1
    // A safe integer has at most 16 digits.
    for (let bound = 10; count < 16 && n >= bound; bound *= 10) count++
    this.reserve(count)
    const b = this.buffer
    let at = this.length + count
    this.length = at
    let rest = n
    while (rest >= 100) {
      const q = Math.floor(rest / 100)
      const pair = (rest - q * 100) * 2
      b[--at] = DIGIT_PAIRS[pair + 1]!
      b[--at] = DIGIT_PAIRS[pair]!
      rest = q
    }
    if (rest >= 10) {
      b[--at] = DIGIT_PAIRS[rest * 2 + 1]!
      b[--at] = DIGIT_PAIRS[rest * 2]!
    } else {
      b[--at] = 48 + rest
    }
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


// "00" to "99" as ASCII bytes, two per number.
const DIGIT_PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 48 + (i % 2 === 0 ? Math.floor(i / 20) : (i >> 1) % 10))

// Distinct values per key whose encoding is kept for the rest of the bill (a key of identities may have many more).
const MAX_ENCODED_VALUES = 4096

// Characters JSON.stringify escapes in a string: quote, backslash, controls and lone surrogates (any surrogate is
// sent to JSON.stringify, which keeps well-formed pairs as they are).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/
