/**
 * What billing takes from the policy: the rate cards in effective order,
 * their currency and the completeness threshold.
 */
import type { Policy, RateCard } from '../policy/index.js'

/** Billing's view of the current policy. */
export interface Pricing {
  /** Sorted by effective_from, earliest first. */
  cards: readonly RateCard[]
  currency: string
  completenessThreshold: number
}

/** Derives billing's view from a validated policy. */
export function pricingOf(policy: Policy): Pricing {
  const cards = [...policy.rate_cards].sort((a, b) => a.effective_from.ms - b.effective_from.ms)
  return { cards, currency: cards[0]?.currency ?? 'USD', completenessThreshold: policy.billing.completeness_threshold }
}
