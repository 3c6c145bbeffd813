/**
 * The price arithmetic of money/pricing.ts as ClickHouse SQL, for the
 * dashboards: Grafana cannot call the API, so a meter priced per rating
 * group (tiers, packages, allowances, minimum charges, active identities;
 * README "Meters and pricing") is rated in SQL over the same groups (month,
 * rate card, meter, business unit). Every figure is a Decimal literal of
 * the policy's exact value; a product is rounded half-up to nine decimals
 * once, as `priceOf` rounds it. test/dashboards.test.ts holds the results
 * to GET /v1/billable.
 */
import { formatMoney, type Money } from '../query-service/src/money/decimal.js'
import type { MeterPrice, PriceModel } from '../query-service/src/money/pricing.js'
import { formatQuantity, type Quantity } from '../query-service/src/money/quantity.js'

/** A Decimal128(9) literal of an exact amount or quantity. */
export function decimalLiteral(value: Money | Quantity): string {
  const text = typeof value === 'bigint' && (value as bigint) >= 0n ? formatMoney(value as Money, { fixed: true }) : '0'
  return `toDecimal128('${text}', 9)`
}

function quantityLiteral(value: Quantity): string {
  return `toDecimal128('${formatQuantity(value)}', 9)`
}

// Rounds a Decimal product of two 9-decimal figures (18 decimals) to 9, half-up (the figures are never negative).
const round9 = (expression: string) => `toDecimal128(round(${expression}, 9), 9)`

/** SQL for what the model charges for `billable` (a Decimal128(9) expression), as money/pricing.ts `priceOf`. */
export function modelPriceSql(model: PriceModel, billable: string): string {
  switch (model.kind) {
    case 'unit':
      return round9(`${billable} * ${decimalLiteral(model.unitPrice)}`)
    case 'graduated': {
      let lower = '0'
      const parts = model.tiers.map((tier) => {
        const low = lower === '0' ? 'toDecimal128(0, 9)' : lower
        const upper = tier.upTo === null ? billable : `least(${billable}, ${quantityLiteral(tier.upTo)})`
        if (tier.upTo !== null) lower = quantityLiteral(tier.upTo)
        return `if(${billable} > ${low}, ${decimalLiteral(tier.unitPrice)} * (${upper} - ${low}) + ${decimalLiteral(tier.flatPrice)}, toDecimal128(0, 18))`
      })
      return round9(parts.join(' + '))
    }
    case 'volume': {
      const branches = model.tiers.map((tier) => {
        const price = `${decimalLiteral(tier.unitPrice)} * ${billable} + ${decimalLiteral(tier.flatPrice)}`
        return tier.upTo === null ? price : `${billable} <= ${quantityLiteral(tier.upTo)}, ${price}`
      })
      return `if(${billable} = 0, toDecimal128(0, 9), ${round9(`multiIf(${branches.join(', ')})`)})`
    }
    case 'package': {
      // ⌈billable / size⌉ in integers of 10^-9 units, so no decimal division truncates.
      const units = (expression: string) => `toInt128(${expression} * toDecimal128(1000000000, 0))`
      const size = units(quantityLiteral(model.size))
      return `toDecimal128(intDiv(${units(billable)} + ${size} - 1, ${size}), 0) * ${decimalLiteral(model.price)}`
    }
  }
}

/** The columns a rating group's row offers the price SQL (all Decimal128(9)). */
export interface GroupColumns {
  /** The group's quantity: events, summed value, or active identities. */
  quantity: string
  /** The sum over identities of what each used beyond `included.quantity` (for an allowance per identity). */
  beyondPerIdentity: string
}

/** SQL for a rating group's amount under a meter's price: allowance, model, minimum (money/pricing.ts `rateGroup`). */
export function groupAmountSql(price: MeterPrice, columns: GroupColumns): string {
  const included = price.included
  const billable =
    included === null
      ? columns.quantity
      : included.per === 'identity'
        ? columns.beyondPerIdentity
        : `greatest(${columns.quantity} - ${quantityLiteral(included.quantity)}, toDecimal128(0, 9))`
  const amount = modelPriceSql(price.model, billable)
  return price.minimumCharge > 0n ? `greatest(${amount}, ${decimalLiteral(price.minimumCharge)})` : amount
}
