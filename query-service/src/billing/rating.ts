/**
 * Rating: turning the usage of meters whose price is not simply a unit
 * price times a whole quantity into amounts (README, "Meters and pricing").
 *
 * Such a meter (tiers, packages, an allowance, a minimum charge, an
 * active-identity count, or a sum of an attribute that may hold decimals)
 * is priced per **rating group**: one calendar month, one rate card, one
 * meter, one business unit. Each business unit is rated as an account of its
 * own, so a key limited to some units sees amounts that depend on their
 * usage only. The group's amount (money/pricing.ts `rateGroup`) is then
 * split over the bill's rows in proportion to their quantities, exactly
 * (`allocate`): rows add up to the group's amount to the nano-unit, however
 * the bill is grouped. With an allowance per identity, the amount goes to
 * identities by what they used beyond their allowance first, then to each
 * identity's rows by quantity.
 *
 * An active-identity meter's quantity is the number of identities with at
 * least `min_events` matching events in the group. An active identity
 * counts once, in the row where it became active: the first period (in the
 * bill's granularity) by which its events reach `min_events`, and within
 * it the row holding most of its events (the first in key order on a tie).
 */
import { allocate, rateGroup } from '../money/pricing.js'
import { QUANTITY_UNIT, ZERO_QUANTITY, type Quantity } from '../money/quantity.js'
import type { Money } from '../money/decimal.js'
import type { Meter, RateCard } from '../policy/index.js'
import { DURATION_VALUE } from './meters.js'

/** Usage of one meter in one aggregate row, and the amount rating gives it. */
export interface RatedCell {
  /** Index of the aggregate row. */
  row: number
  card: number
  meter: number
  /** Matching events. */
  events: number
  /** Events of a sum meter that carried no value. */
  missing: number
  /** Events, summed value, or (after rating) active identities counted here. */
  quantity: Quantity
  amount: Money
}

/** Whether a meter is priced per rating group rather than row by row (see the module comment). */
export function ratedByGroup(meter: Meter): boolean {
  const { model, included, minimumCharge } = meter.price
  return (
    model.kind !== 'unit' ||
    included !== null ||
    minimumCharge > 0n ||
    meter.aggregation === 'active_identities' ||
    (meter.aggregation === 'sum' && meter.value !== DURATION_VALUE)
  )
}

/** Whether rating a meter needs usage per identity (an active-identity count, an allowance per identity). */
export function ratedPerIdentity(meter: Meter): boolean {
  return meter.aggregation === 'active_identities' || meter.price.included?.per === 'identity'
}

/** The aggregate rows' keys that rating reads; each is present whenever a rated meter needs it. */
export interface RatingKeys {
  /** Period starts (ISO 8601), monthly or finer. */
  period?: readonly string[]
  businessUnit?: readonly string[]
  nhiId?: readonly string[]
}

/**
 * Rates cells of meters that are {@link ratedByGroup}: sets each cell's
 * amount, and for active-identity meters its quantity (the identities that
 * became active in it).
 */
export function rateCells(cells: RatedCell[], cards: readonly RateCard[], keys: RatingKeys): void {
  const groups = new Map<string, RatedCell[]>()
  for (const cell of cells) {
    const month = keys.period?.[cell.row]?.slice(0, 7) ?? ''
    const unit = keys.businessUnit?.[cell.row] ?? ''
    const key = `${month}\u0000${cell.card}\u0000${cell.meter}\u0000${unit}`
    const group = groups.get(key)
    if (group) group.push(cell)
    else groups.set(key, [cell])
  }
  for (const group of groups.values()) {
    const meter = cards[group[0]!.card]!.meters[group[0]!.meter]!
    if (meter.aggregation === 'active_identities') rateActive(group, meter, keys)
    else if (meter.price.included?.per === 'identity') ratePerIdentity(group, meter, keys)
    else {
      const rated = rateGroup(meter.price, [group.reduce((sum, cell) => (sum + cell.quantity) as Quantity, ZERO_QUANTITY)])
      spread(rated.amount, group)
    }
  }
}

/**
 * Whether a row's usage of a meter can be priced on its own, without its
 * rating group: a unit price with no allowance and no minimum, for a whole
 * quantity that is not an active-identity count. A whole quantity times a
 * price never rounds, so such parts add up to what rating their whole group
 * would give (the group's fractional parts are rated together).
 */
export function pricedAlone(meter: Meter, quantity: Quantity): boolean {
  return meter.aggregation !== 'active_identities' && linear(meter) && quantity % QUANTITY_UNIT === 0n
}

// Splits an amount over cells by quantity, or by events when no cell has any quantity (a minimum charge on zeros).
function spread(amount: Money, cells: RatedCell[]): void {
  const byQuantity = cells.some((cell) => cell.quantity > 0n)
  const parts = allocate(amount, cells.map((cell) => (byQuantity ? cell.quantity : BigInt(cell.events))))
  cells.forEach((cell, i) => (cell.amount = parts[i]!))
}

function byIdentity(cells: RatedCell[], keys: RatingKeys): RatedCell[][] {
  const identities = new Map<string, RatedCell[]>()
  for (const cell of cells) {
    const id = keys.nhiId?.[cell.row] ?? ''
    const list = identities.get(id)
    if (list) list.push(cell)
    else identities.set(id, [cell])
  }
  return [...identities.values()]
}

function ratePerIdentity(group: RatedCell[], meter: Meter, keys: RatingKeys): void {
  const identities = byIdentity(group, keys)
  const used = identities.map((cells) => cells.reduce((sum, cell) => sum + cell.quantity, 0n) as Quantity)
  const rated = rateGroup(meter.price, used)
  const allowance = meter.price.included!.quantity
  const beyond = used.map((q) => (q > allowance ? q - allowance : 0n))
  const weights = beyond.some((q) => q > 0n) ? beyond : used.some((q) => q > 0n) ? used : identities.map((cells) => BigInt(cells.reduce((n, c) => n + c.events, 0)))
  const shares = allocate(rated.amount, weights)
  identities.forEach((cells, i) => spread(shares[i]!, cells))
}

function rateActive(group: RatedCell[], meter: Meter, keys: RatingKeys): void {
  const active: Quantity[] = []
  for (const cells of byIdentity(group, keys)) {
    for (const cell of cells) cell.quantity = ZERO_QUANTITY
    const crossing = crossingCell(cells, meter.min_events, keys)
    if (!crossing) continue
    crossing.quantity = QUANTITY_UNIT as Quantity
    active.push(crossing.quantity)
  }
  const rated = rateGroup(meter.price, active.length > 0 ? active : [ZERO_QUANTITY])
  spread(rated.amount, group)
}

/** Priced per unit with no allowance and no minimum: an amount is its quantity times the price, wherever it is counted. */
export function linear(meter: Meter): boolean {
  return meter.price.model.kind === 'unit' && meter.price.included === null && meter.price.minimumCharge === 0n
}

// The entry (a cell, or a row and its events) where an identity's events reach minEvents, or undefined when they never do.
function crossingCell<T extends { row: number; events: number }>(cells: T[], minEvents: number, keys: RatingKeys): T | undefined {
  const period = (cell: T) => keys.period?.[cell.row] ?? ''
  const ordered = [...cells].sort((a, b) => {
    const pa = period(a)
    const pb = period(b)
    return pa < pb ? -1 : pa > pb ? 1 : b.events - a.events || a.row - b.row
  })
  let seen = 0
  for (let i = 0; i < ordered.length; ) {
    const first = ordered[i]!
    let j = i
    while (j < ordered.length && period(ordered[j]!) === period(first)) seen += ordered[j++]!.events
    if (seen >= minEvents) return first
    i = j
  }
  return undefined
}

/** Aggregate rows as the fold reads them: whether identified, the card, and events per meter (element m + 1 for meter m). */
export interface UsageRows {
  identified: readonly boolean[]
  cardIndex: readonly number[]
  events: ReadonlyArray<readonly number[]>
}

/**
 * For each active-identity meter priced per unit (linear), the aggregate
 * rows where an identity becomes active, flagged per row (null for other
 * meters): the same rule as rating such a meter's cells, decided before
 * any bill row is made, so that an identity that does not become active
 * makes none. Such a meter's amount is then its active identities times
 * its price, wherever each is counted.
 */
export function activeCrossings(usage: UsageRows, cards: readonly RateCard[], keys: RatingKeys): Array<Array<Uint8Array | null>> {
  const rows = usage.cardIndex.length
  const flags = cards.map((card) => card.meters.map((m) => (m.aggregation === 'active_identities' && linear(m) ? new Uint8Array(rows) : null)))
  const meters = flags.map((perMeter) => perMeter.flatMap((f, m) => (f ? [m] : [])))
  if (meters.every((list) => list.length === 0)) return flags
  // Per card and meter, per identity: its only row, or all its rows when it has several (months, units, periods).
  const byIdentity = flags.map((perMeter) => perMeter.map((f) => (f ? new Map<string, number | number[]>() : null)))
  for (let i = 0; i < rows; i++) {
    const c = usage.cardIndex[i]!
    if (!usage.identified[i] || !meters[c] || meters[c].length === 0) continue
    const events = usage.events[i]!
    const id = keys.nhiId?.[i] ?? ''
    for (const m of meters[c]) {
      if (!events[m + 1]) continue
      const seen = byIdentity[c]![m]!
      const held = seen.get(id)
      if (held === undefined) seen.set(id, i)
      else if (typeof held === 'number') seen.set(id, [held, i])
      else held.push(i)
    }
  }
  byIdentity.forEach((perMeter, c) =>
    perMeter.forEach((seen, m) => {
      if (!seen) return
      const minEvents = cards[c]!.meters[m]!.min_events
      const at = (row: number) => usage.events[row]![m + 1]!
      for (const held of seen.values()) {
        if (typeof held === 'number') {
          if (at(held) >= minEvents) flags[c]![m]![held] = 1
          continue
        }
        // An identity becomes active at most once per month and business unit (a rating group).
        const groups = new Map<string, Array<{ row: number; events: number }>>()
        for (const row of held) {
          const group = `${keys.period?.[row]?.slice(0, 7) ?? ''}\u0000${keys.businessUnit?.[row] ?? ''}`
          const entries = groups.get(group) ?? []
          entries.push({ row, events: at(row) })
          groups.set(group, entries)
        }
        for (const entries of groups.values()) {
          const crossing = crossingCell(entries, minEvents, keys)
          if (crossing) flags[c]![m]![crossing.row] = 1
        }
      }
    }),
  )
  return flags
}
