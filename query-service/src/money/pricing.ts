/**
 * The pricing arithmetic of a meter (POLICY.md, "Pricing"): what a quantity
 * costs under a price model, how a rating group's allowance and minimum
 * apply, and how an amount is split over rows exactly. Pure functions over
 * exact decimals; nothing here reads storage or the policy file.
 *
 * Rounding happens in one place only: a price with nine decimals times a
 * quantity with nine decimals has eighteen, and {@link priceOf} rounds its
 * result to nine (half-up) once per call, after adding every tier. A whole
 * quantity never rounds, so a bill of counts is exact to the nano-unit.
 */
import { MoneyError, type Money } from './decimal.js'
import { QUANTITY_UNIT, subtractQuantityToZero, sumQuantity, ZERO_QUANTITY, type Quantity } from './quantity.js'

/** One tier of a graduated or volume price: up to `upTo` (inclusive), at `unitPrice` each, plus `flatPrice` once. */
export interface Tier {
  /** Upper bound of the tier, inclusive; `null` is unbounded, allowed (and required) on the last tier only. */
  readonly upTo: Quantity | null
  /** Price per unit of quantity in the tier. */
  readonly unitPrice: Money
  /** Price added once when the tier is reached (graduated) or is the one the quantity falls in (volume). */
  readonly flatPrice: Money
}

/** How a quantity becomes an amount. */
export type PriceModel =
  | { readonly kind: 'unit'; readonly unitPrice: Money }
  | { readonly kind: 'graduated'; readonly tiers: readonly Tier[] }
  | { readonly kind: 'volume'; readonly tiers: readonly Tier[] }
  | { readonly kind: 'package'; readonly size: Quantity; readonly price: Money }

/** A free quantity in each rating group: per identity in it, or for the business unit as a whole. */
export interface Allowance {
  /** How much is free. */
  readonly quantity: Quantity
  /** `identity`: each identity's usage is reduced by it; `business_unit`: the group's total is. */
  readonly per: 'identity' | 'business_unit'
}

/** Everything a meter says about price: the model, an optional allowance, and a minimum per rating group. */
export interface MeterPrice {
  readonly model: PriceModel
  /** Free quantity per rating group; `null` for none. */
  readonly included: Allowance | null
  /** Least amount of a rating group that has any matching event; {@link ZERO_MONEY} for none. */
  readonly minimumCharge: Money
}

/** What {@link rateGroup} makes of one rating group. */
export interface RatedGroup {
  /** All the group's usage: the sum of its identities' quantities. */
  readonly quantity: Quantity
  /** The usage left after the allowance, which the model prices. */
  readonly billable: Quantity
  /** The group's amount: the model's price of `billable`, raised to the minimum charge. */
  readonly amount: Money
}

/**
 * What a quantity costs under a model, rounded half-up to nine decimals
 * once (whole quantities never round):
 * - unit: quantity × unit price;
 * - graduated: each tier prices the part of the quantity inside
 *   (previous up_to, up_to] at its unit price, plus its flat price once if
 *   any part falls in it;
 * - volume: the whole quantity at the unit price of the tier it falls in
 *   (a quantity equal to an up_to belongs to that tier), plus that tier's
 *   flat price; zero costs nothing;
 * - package: ⌈quantity / size⌉ × price; zero costs nothing.
 * Throws {@link MoneyError} for a model the policy loader would refuse
 * (tiers not strictly increasing, no unbounded last tier, a zero package).
 */
export function priceOf(model: PriceModel, quantity: Quantity): Money {
  if (quantity < 0n) throw new MoneyError(`quantity must not be negative, got ${quantity.toString()}`)
  switch (model.kind) {
    case 'unit':
      return roundScaled(model.unitPrice * quantity)
    case 'graduated': {
      checkTiers(model.tiers)
      // Sum at 18 decimals: price (9) × quantity (9), flat prices lifted to the same scale.
      let total = 0n
      let lower = 0n
      for (const tier of model.tiers) {
        if (quantity <= lower) break
        const upper = tier.upTo === null || quantity < tier.upTo ? quantity : tier.upTo
        total += tier.unitPrice * (upper - lower) + tier.flatPrice * QUANTITY_UNIT
        if (tier.upTo === null) break
        lower = tier.upTo
      }
      return roundScaled(total)
    }
    case 'volume': {
      checkTiers(model.tiers)
      if (quantity === 0n) return 0n as Money
      const tier = model.tiers.find((t) => t.upTo === null || quantity <= t.upTo) as Tier
      return roundScaled(tier.unitPrice * quantity + tier.flatPrice * QUANTITY_UNIT)
    }
    case 'package': {
      if (model.size <= 0n) throw new MoneyError(`package size must be greater than 0, got ${model.size.toString()}`)
      const packages = (quantity + model.size - 1n) / model.size
      return (packages * model.price) as Money
    }
  }
}

/**
 * Rates one rating group, which the caller builds: one calendar month, one
 * rate card, one meter, one business unit, with at least one matching
 * event. `quantities` has one entry per identity in the group (its usage;
 * for an active-identity meter, 1 for each active identity). The allowance
 * comes off per identity (Σ max(0, qᵢ − included)) or off the group's total
 * (max(0, Σqᵢ − included)); the model prices what is left; the result is
 * raised to the minimum charge. Throws for an empty group: a group exists
 * only because something in it matched.
 */
export function rateGroup(price: MeterPrice, quantities: readonly Quantity[]): RatedGroup {
  if (quantities.length === 0) throw new RangeError('a rating group has at least one identity with a matching event; got none')
  for (const q of quantities) if (q < 0n) throw new MoneyError(`quantity must not be negative, got ${q.toString()}`)
  const quantity = sumQuantity(quantities)
  const included = price.included
  let billable: Quantity
  if (included === null) billable = quantity
  else if (included.per === 'identity') billable = sumQuantity(quantities.map((q) => subtractQuantityToZero(q, included.quantity)))
  else billable = subtractQuantityToZero(quantity, included.quantity)
  const priced = priceOf(price.model, billable)
  return { quantity, billable, amount: priced < price.minimumCharge ? price.minimumCharge : priced }
}

/**
 * Splits an amount over rows in proportion to non-negative weights,
 * exactly: each row gets the floor of its share, then the nano-units left
 * over go one each to the rows with the largest remainders (ties: the
 * lowest index first). The parts always add up to the amount, each is
 * within one nano-unit of its exact share, and the same input always gives
 * the same split. All-zero weights split equally; no weights can only
 * split nothing (a non-zero amount throws).
 */
export function allocate(amount: Money, weights: readonly bigint[]): Money[] {
  if (amount < 0n) throw new MoneyError(`amount must not be negative, got ${amount.toString()}`)
  if (weights.length === 0) {
    if (amount === 0n) return []
    throw new RangeError(`cannot split ${amount.toString()} nano-units over no rows`)
  }
  let total = 0n
  for (const w of weights) {
    if (w < 0n) throw new RangeError(`weights must not be negative, got ${w.toString()}`)
    total += w
  }
  const used = total === 0n ? weights.map(() => 1n) : weights
  const sum = total === 0n ? BigInt(weights.length) : total
  const parts: bigint[] = []
  const remainders: bigint[] = []
  let given = 0n
  for (const w of used) {
    const product = amount * w
    const part = product / sum
    parts.push(part)
    remainders.push(product % sum)
    given += part
  }
  // Fewer than weights.length nano-units are left: the remainders add up to less than `sum` per row.
  const left = Number(amount - given)
  if (left > 0) {
    const order = remainders.map((_, i) => i).sort((a, b) => {
      const ra = remainders[a] as bigint
      const rb = remainders[b] as bigint
      return ra > rb ? -1 : ra < rb ? 1 : a - b
    })
    for (let k = 0; k < left; k++) {
      const i = order[k] as number
      parts[i] = (parts[i] as bigint) + 1n
    }
  }
  return parts as Money[]
}

// Half-up from 18 decimals to 9 (amounts are never negative).
function roundScaled(scaled18: bigint): Money {
  return ((scaled18 + QUANTITY_UNIT / 2n) / QUANTITY_UNIT) as Money
}

// The loader refuses such tiers with the key named; this guards models built in code.
function checkTiers(tiers: readonly Tier[]): void {
  if (tiers.length === 0) throw new MoneyError('a tiered price needs at least one tier')
  let previous: Quantity = ZERO_QUANTITY
  tiers.forEach((tier, i) => {
    const last = i === tiers.length - 1
    if (tier.upTo === null) {
      if (!last) throw new MoneyError(`tier ${i} is unbounded but not the last`)
      return
    }
    if (last) throw new MoneyError(`the last tier must be unbounded, got an up_to of ${tier.upTo.toString()}`)
    if (tier.upTo <= previous) throw new MoneyError(`tier ${i} must end above the tier before it`)
    previous = tier.upTo
  })
}
