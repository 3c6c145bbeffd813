/**
 * Test only: the pricing rules of POLICY.md written as plainly as possible,
 * with a different representation (exact fractions of whole units) and
 * different loops from money/pricing.ts, so the property tests compare two
 * independent readings of the same rules. Slow on purpose; never import it
 * from service code.
 */
import type { Money } from '../money/decimal.js'
import type { MeterPrice, PriceModel, Tier } from '../money/pricing.js'
import type { Quantity } from '../money/quantity.js'

const NANO = 1_000_000_000n

/** A non-negative fraction n / d. */
interface Fraction {
  n: bigint
  d: bigint
}

const fromNano = (scaled: bigint): Fraction => ({ n: scaled, d: NANO })
// Same denominators add directly, so a long walk of nano-unit prices keeps its numbers small.
const plus = (a: Fraction, b: Fraction): Fraction => (a.d === b.d ? { n: a.n + b.n, d: a.d } : { n: a.n * b.d + b.n * a.d, d: a.d * b.d })
const times = (a: Fraction, b: Fraction): Fraction => ({ n: a.n * b.n, d: a.d * b.d })
const ZERO: Fraction = { n: 0n, d: 1n }

// Nearest nano-unit, halves up: floor(x × 10^9 + 1/2).
function toMoney(x: Fraction): Money {
  return ((2n * x.n * NANO + x.d) / (2n * x.d)) as Money
}

/** Reference price of a quantity under a model. */
export function referencePriceOf(model: PriceModel, quantity: Quantity): Money {
  const q = fromNano(quantity)
  if (model.kind === 'unit') return toMoney(times(q, fromNano(model.unitPrice)))
  if (model.kind === 'package') {
    // Count the packages one at a time.
    let packages = 0n
    let covered = 0n
    while (covered < quantity) {
      covered += model.size
      packages += 1n
    }
    return toMoney(times({ n: packages, d: 1n }, fromNano(model.price)))
  }
  if (model.kind === 'volume') {
    if (quantity === 0n) return 0n as Money
    for (const tier of model.tiers) {
      if (tier.upTo === null || quantity <= tier.upTo) {
        return toMoney(plus(times(q, fromNano(tier.unitPrice)), fromNano(tier.flatPrice)))
      }
    }
    throw new Error('no tier holds the quantity')
  }
  if (isWholeAndSmall(model.tiers, quantity)) return toMoney(graduatedUnitByUnit(model.tiers, quantity / NANO))
  return toMoney(graduatedTierByTier(model.tiers, quantity))
}

/** Reference rating of a group: allowance, model, minimum, written out step by step. */
export function referenceRateGroup(price: MeterPrice, quantities: readonly Quantity[]): { quantity: Quantity; billable: Quantity; amount: Money } {
  let total = 0n
  for (const q of quantities) total += q
  let billable = 0n
  if (price.included === null) {
    billable = total
  } else if (price.included.per === 'identity') {
    for (const q of quantities) {
      if (q > price.included.quantity) billable += q - price.included.quantity
    }
  } else if (total > price.included.quantity) {
    billable = total - price.included.quantity
  }
  let amount: bigint = referencePriceOf(price.model, billable as Quantity)
  if (amount < price.minimumCharge) amount = price.minimumCharge
  return { quantity: total as Quantity, billable: billable as Quantity, amount: amount as Money }
}

/** Reference split: exact shares floored, then one nano-unit at a time to the largest remainder left. */
export function referenceAllocate(amount: Money, weights: readonly bigint[]): Money[] {
  const w = weights.every((x) => x === 0n) ? weights.map(() => 1n) : [...weights]
  let total = 0n
  for (const x of w) total += x
  const parts = w.map((x) => (amount * x) / total)
  const remainders = w.map((x) => (amount * x) % total)
  let given = 0n
  for (const p of parts) given += p
  const taken = w.map(() => false)
  while (given < amount) {
    let best = -1
    for (let i = 0; i < w.length; i++) {
      if (taken[i]) continue
      if (best === -1 || (remainders[i] as bigint) > (remainders[best] as bigint)) best = i
    }
    taken[best] = true
    parts[best] = (parts[best] as bigint) + 1n
    given += 1n
  }
  return parts as Money[]
}

function isWholeAndSmall(tiers: readonly Tier[], quantity: Quantity): boolean {
  return quantity % NANO === 0n && quantity / NANO <= 500n && tiers.every((t) => t.upTo === null || t.upTo % NANO === 0n)
}

// Unit k (1..units) lies in the first tier whose up_to is at least k; each unit pays that tier's price,
// and each tier that received a unit pays its flat price once.
function graduatedUnitByUnit(tiers: readonly Tier[], units: bigint): Fraction {
  let total = ZERO
  const reached = new Set<number>()
  for (let k = 1n; k <= units; k++) {
    const index = tiers.findIndex((t) => t.upTo === null || k * NANO <= t.upTo)
    const tier = tiers[index] as Tier
    total = plus(total, fromNano(tier.unitPrice))
    reached.add(index)
  }
  for (const index of reached) total = plus(total, fromNano((tiers[index] as Tier).flatPrice))
  return total
}

// Tier i covers (lower_i, upper_i]; the quantity's overlap with it is priced, and the flat price added if it is not empty.
function graduatedTierByTier(tiers: readonly Tier[], quantity: Quantity): Fraction {
  let total = ZERO
  tiers.forEach((tier, i) => {
    const lower = i === 0 ? 0n : ((tiers[i - 1] as Tier).upTo as bigint)
    const upper = tier.upTo ?? quantity
    const top = quantity < upper ? quantity : upper
    const overlap = top - lower
    if (overlap > 0n) total = plus(plus(total, times(fromNano(overlap), fromNano(tier.unitPrice))), fromNano(tier.flatPrice))
  })
  return total
}
