/**
 * A bill's rows as columns: per group-by key an array of values, and per
 * row its quantity, amount and events without a value. A month grouped by
 * identity and meter is tens of thousands of rows; an object, a key array
 * and two bigints each made that many objects for the collector to copy
 * and promote, which cost more than building the rows. Here a quantity is
 * held as its whole units and an amount as nano-units, both plain numbers,
 * whenever they are safe integers (almost every row), and as exact bigints
 * otherwise: nothing is rounded either way.
 */
import type { Money } from '../money/decimal.js'
import { QUANTITY_UNIT, type Quantity } from '../money/quantity.js'

/** One row of a bill, as an object: the values of the group-by keys (in group-by order), the quantity and the exact amount. */
export interface BillRow {
  values: string[]
  quantity: Quantity
  amount: Money
  /** Events of sum meters in the row that carried no value (they add 0). */
  eventsWithoutValue: number
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const MAX_SAFE_BIG = BigInt(MAX_SAFE)
const MAX_SAFE_UNITS_SCALED = MAX_SAFE_BIG * QUANTITY_UNIT

/** Rows of a bill, column by column. */
export class BillRows {
  length = 0
  /** Per group-by key, each row's value (the arrays may be longer than `length`: room for rows to come). */
  readonly keys: string[][]
  /** Per row, the quantity's whole units (a safe integer), or -1 when the quantity is held exactly in `exactQuantities`. */
  units: Float64Array
  /** Per row, the amount in nano-units (a safe integer), or -1 when it is held exactly in `exactAmounts`. */
  nanos: Float64Array
  /** Per row, events of sum meters that carried no value. */
  without: Float64Array
  private exactQuantities = new Map<number, Quantity>()
  private exactAmounts = new Map<number, Money>()

  /** `capacity`: the rows expected (they may be more). */
  constructor(keyCount: number, capacity = 16) {
    this.keys = Array.from({ length: keyCount }, () => new Array<string>(capacity))
    this.units = new Float64Array(Math.max(capacity, 16))
    this.nanos = new Float64Array(Math.max(capacity, 16))
    this.without = new Float64Array(Math.max(capacity, 16))
  }

  /** Appends a row with these key values and nothing in it yet; returns its index. */
  append(values: readonly string[]): number {
    const r = this.pushEmpty()
    for (let k = 0; k < this.keys.length; k++) this.keys[k]![r] = values[k]!
    return r
  }

  /** Appends a row with nothing in it yet; the caller sets its key values in `keys`. */
  pushEmpty(): number {
    if (this.length === this.units.length) {
      const grow = (from: Float64Array) => {
        const to = new Float64Array(from.length * 2)
        to.set(from)
        return to
      }
      this.units = grow(this.units)
      this.nanos = grow(this.nanos)
      this.without = grow(this.without)
    }
    // Typed arrays start at zero: an appended row holds nothing yet.
    return this.length++
  }

  /** Row r's key values. */
  values(r: number): string[] {
    return this.keys.map((column) => column[r]!)
  }

  quantity(r: number): Quantity {
    const units = this.units[r]!
    return units >= 0 ? ((BigInt(units) * QUANTITY_UNIT) as Quantity) : this.exactQuantities.get(r)!
  }

  amount(r: number): Money {
    const nanos = this.nanos[r]!
    return nanos >= 0 ? (BigInt(nanos) as Money) : this.exactAmounts.get(r)!
  }

  /** Adds whole units (a safe integer) to row r's quantity. */
  addUnits(r: number, units: number): void {
    const held = this.units[r]!
    if (held >= 0 && held + units <= MAX_SAFE) this.units[r] = held + units
    else this.setQuantity(r, (this.quantity(r) + BigInt(units) * QUANTITY_UNIT) as Quantity)
  }

  /** Adds nano-units (a safe integer) to row r's amount. */
  addNanos(r: number, nanos: number): void {
    const held = this.nanos[r]!
    if (held >= 0 && held + nanos <= MAX_SAFE) this.nanos[r] = held + nanos
    else this.setAmount(r, (this.amount(r) + BigInt(nanos)) as Money)
  }

  addQuantity(r: number, quantity: Quantity): void {
    if (quantity === 0n) return
    if (quantity > 0n && quantity <= MAX_SAFE_BIG) {
      const scaled = Number(quantity)
      if (scaled % 1e9 === 0) return this.addUnits(r, scaled / 1e9)
    }
    this.setQuantity(r, (this.quantity(r) + quantity) as Quantity)
  }

  addAmount(r: number, amount: Money): void {
    if (amount === 0n) return
    if (amount >= 0n && amount <= MAX_SAFE_BIG) return this.addNanos(r, Number(amount))
    this.setAmount(r, (this.amount(r) + amount) as Money)
  }

  /** Adds row s of `from` (whose keys are row r's) to row r. */
  absorb(r: number, from: BillRows, s: number): void {
    const units = from.units[s]!
    if (units >= 0) this.addUnits(r, units)
    else this.addQuantity(r, from.quantity(s))
    const nanos = from.nanos[s]!
    if (nanos >= 0) this.addNanos(r, nanos)
    else this.addAmount(r, from.amount(s))
    this.without[r]! += from.without[s]!
  }

  /** Whether row r has the key values of row s of `other`. */
  sameKeys(r: number, other: BillRows, s: number): boolean {
    for (let k = 0; k < this.keys.length; k++) if (this.keys[k]![r] !== other.keys[k]![s]) return false
    return true
  }

  /** Compares row r's keys with row s's of `other`, key by key (UTF-16 order, as the rows' sort). */
  compare(r: number, other: BillRows, s: number): number {
    for (let k = 0; k < this.keys.length; k++) {
      const x = this.keys[k]![r]!
      const y = other.keys[k]![s]!
      if (x !== y) return x < y ? -1 : 1
    }
    return 0
  }

  /** Removes the given rows, keeping the rest in their order. */
  drop(gone: ReadonlySet<number>): void {
    const quantities = new Map<number, Quantity>()
    const amounts = new Map<number, Money>()
    let to = 0
    for (let r = 0; r < this.length; r++) {
      if (gone.has(r)) continue
      for (const column of this.keys) column[to] = column[r]!
      this.units[to] = this.units[r]!
      this.nanos[to] = this.nanos[r]!
      this.without[to] = this.without[r]!
      if (this.units[r]! < 0) quantities.set(to, this.exactQuantities.get(r)!)
      if (this.nanos[r]! < 0) amounts.set(to, this.exactAmounts.get(r)!)
      to++
    }
    // Appended rows start empty.
    this.units.fill(0, to, this.length)
    this.nanos.fill(0, to, this.length)
    this.without.fill(0, to, this.length)
    this.exactQuantities = quantities
    this.exactAmounts = amounts
    this.length = to
  }

  /** The rows in key order (stable), rows with equal keys added into one. */
  inOrder(): BillRows {
    const order = Array.from({ length: this.length }, (_, r) => r)
    order.sort((x, y) => this.compare(x, this, y) || x - y)
    const out = new BillRows(this.keys.length, this.length)
    for (const s of order) {
      const last = out.length - 1
      if (last >= 0 && out.sameKeys(last, this, s)) {
        out.absorb(last, this, s)
        continue
      }
      const r = out.pushEmpty()
      for (let k = 0; k < out.keys.length; k++) out.keys[k]![r] = this.keys[k]![s]!
      out.absorb(r, this, s)
    }
    return out
  }

  /** The rows as objects (CSV, statements, tests: callers that take each row anyway). */
  toArray(): BillRow[] {
    const rows: BillRow[] = []
    for (let r = 0; r < this.length; r++) rows.push({ values: this.values(r), quantity: this.quantity(r), amount: this.amount(r), eventsWithoutValue: this.without[r]! })
    return rows
  }

  private setQuantity(r: number, quantity: Quantity): void {
    if (quantity >= 0n && quantity <= MAX_SAFE_UNITS_SCALED && quantity % QUANTITY_UNIT === 0n) {
      this.units[r] = Number(quantity / QUANTITY_UNIT)
      this.exactQuantities.delete(r)
    } else {
      this.units[r] = -1
      this.exactQuantities.set(r, quantity)
    }
  }

  private setAmount(r: number, amount: Money): void {
    if (amount >= 0n && amount <= MAX_SAFE_BIG) {
      this.nanos[r] = Number(amount)
      this.exactAmounts.delete(r)
    } else {
      this.nanos[r] = -1
      this.exactAmounts.set(r, amount)
    }
  }
}
