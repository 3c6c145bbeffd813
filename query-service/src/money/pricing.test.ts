import { describe, expect, it } from 'vitest'
import { formatMoney, multiplyMoney, parseMoney, ZERO_MONEY, type Money } from './decimal.js'
import { allocate, priceOf, rateGroup, type MeterPrice, type PriceModel, type Tier } from './pricing.js'
import { referenceAllocate, referencePriceOf, referenceRateGroup } from '../test-support/pricing-reference.js'
import { parseQuantity, quantityFromCount, QUANTITY_UNIT, ZERO_QUANTITY, type Quantity } from './quantity.js'

const m = (text: string): Money => parseMoney(text)
const q = (text: string): Quantity => parseQuantity(text)
const tier = (upTo: string | null, unitPrice: string, flatPrice = '0'): Tier => ({ upTo: upTo === null ? null : q(upTo), unitPrice: m(unitPrice), flatPrice: m(flatPrice) })
const price = (model: PriceModel, quantity: string): string => formatMoney(priceOf(model, q(quantity)))

describe('a unit price', () => {
  it('charges the quantity times the price', () => {
    expect(price({ kind: 'unit', unitPrice: m('0.002') }, '1500')).toBe('3.00')
  })

  it('rounds a decimal quantity times a decimal price once, half up, to nine decimals', () => {
    // 0.000000001 × 0.5 = 0.0000000005 → 0.000000001 (half up); × 0.4 → 0.
    expect(priceOf({ kind: 'unit', unitPrice: m('0.000000001') }, q('0.5'))).toBe(1n)
    expect(priceOf({ kind: 'unit', unitPrice: m('0.000000001') }, q('0.4'))).toBe(0n)
    // 0.333333333 × 0.5 = 0.1666666665 → 0.166666667.
    expect(price({ kind: 'unit', unitPrice: m('0.333333333') }, '0.5')).toBe('0.166666667')
  })

  it('never rounds a whole quantity, whatever the price', () => {
    const unitPrice = m('0.000000123')
    expect(priceOf({ kind: 'unit', unitPrice }, quantityFromCount(987_654_321))).toBe(multiplyMoney(unitPrice, 987_654_321))
  })
})

describe('graduated tiers', () => {
  const model: PriceModel = { kind: 'graduated', tiers: [tier('1000', '0'), tier('10000', '0.002', '1'), tier(null, '0.001')] }

  it('prices each part of the usage at the price of the tier it falls in', () => {
    // 1000 free, 9000 at 0.002 plus the tier's flat 1, 2500 at 0.001.
    expect(price(model, '12500')).toBe('21.50')
  })

  it('adds a tier flat price once any part of the usage reaches the tier', () => {
    expect(price(model, '1000')).toBe('0.00')
    expect(price(model, '1000.000000001')).toBe('1.00')
    expect(price(model, '1001')).toBe('1.002')
  })

  it('charges nothing for no usage, even with flat prices', () => {
    expect(price({ kind: 'graduated', tiers: [tier(null, '1', '5')] }, '0')).toBe('0.00')
  })
})

describe('volume tiers', () => {
  const model: PriceModel = { kind: 'volume', tiers: [tier('1000', '0.003'), tier('10000', '0.002', '5'), tier(null, '0.001', '10')] }

  it('prices the whole usage at the price of the tier it ends in, plus that tier flat price', () => {
    expect(price(model, '12500')).toBe('22.50')
    expect(price(model, '5000')).toBe('15.00')
  })

  it('keeps a usage equal to a tier bound in that tier', () => {
    expect(price(model, '1000')).toBe('3.00')
    expect(price(model, '1000.5')).toBe('7.001')
    expect(price(model, '10000')).toBe('25.00')
  })

  it('charges nothing for no usage', () => {
    expect(price({ kind: 'volume', tiers: [tier(null, '1', '5')] }, '0')).toBe('0.00')
  })
})

describe('packages', () => {
  const model: PriceModel = { kind: 'package', size: q('1000'), price: m('1.50') }

  it('charges every started package in full', () => {
    expect(price(model, '1')).toBe('1.50')
    expect(price(model, '1000')).toBe('1.50')
    expect(price(model, '1000.000000001')).toBe('3.00')
    expect(price(model, '2500')).toBe('4.50')
  })

  it('charges nothing for no usage', () => {
    expect(price(model, '0')).toBe('0.00')
  })
})

describe('price models the loader would refuse', () => {
  it.each<[string, PriceModel]>([
    ['no tiers', { kind: 'graduated', tiers: [] }],
    ['a bounded last tier', { kind: 'graduated', tiers: [tier('10', '1')] }],
    ['an unbounded tier before the last', { kind: 'volume', tiers: [tier(null, '1'), tier(null, '2')] }],
    ['bounds out of order', { kind: 'graduated', tiers: [tier('10', '1'), tier('5', '1'), tier(null, '1')] }],
    ['a zero package', { kind: 'package', size: ZERO_QUANTITY, price: m('1') }],
  ])('are refused rather than priced: %s', (_, model) => {
    expect(() => priceOf(model, q('3'))).toThrow()
  })
})

describe('rating a group', () => {
  const unit: PriceModel = { kind: 'unit', unitPrice: m('0.01') }

  it('takes an allowance per identity off each identity usage, never below zero', () => {
    const rated = rateGroup({ model: unit, included: { quantity: q('100'), per: 'identity' }, minimumCharge: ZERO_MONEY }, [q('250'), q('40'), q('100')])
    expect(rated).toEqual({ quantity: q('390'), billable: q('150'), amount: m('1.5') })
  })

  it('takes an allowance per business unit off the group total', () => {
    const rated = rateGroup({ model: unit, included: { quantity: q('100'), per: 'business_unit' }, minimumCharge: ZERO_MONEY }, [q('250'), q('40'), q('100')])
    expect(rated).toEqual({ quantity: q('390'), billable: q('290'), amount: m('2.9') })
  })

  it('raises a group amount to the minimum charge, even when everything was included', () => {
    const withMinimum: MeterPrice = { model: unit, included: { quantity: q('1000'), per: 'business_unit' }, minimumCharge: m('5') }
    expect(rateGroup(withMinimum, [q('10')]).amount).toBe(m('5'))
    expect(rateGroup(withMinimum, [q('2000')]).amount).toBe(m('10'))
  })

  it('refuses a group with no identity in it', () => {
    expect(() => rateGroup({ model: unit, included: null, minimumCharge: ZERO_MONEY }, [])).toThrow(RangeError)
  })
})

describe('allocating an amount over rows', () => {
  it('splits in proportion and gives leftover nano-units to the largest remainders', () => {
    expect(allocate(10n as Money, [1n, 1n, 1n])).toEqual([4n, 3n, 3n])
    expect(allocate(m('1'), [1n, 3n])).toEqual([m('0.25'), m('0.75')])
    expect(allocate(7n as Money, [2n, 5n, 3n])).toEqual([1n, 4n, 2n])
  })

  it('splits equally when every weight is zero', () => {
    expect(allocate(5n as Money, [0n, 0n])).toEqual([3n, 2n])
  })

  it('gives nothing to a row of weight zero when others weigh something', () => {
    expect(allocate(5n as Money, [0n, 1n])).toEqual([0n, 5n])
  })

  it('splits nothing over no rows, and refuses to lose an amount that way', () => {
    expect(allocate(ZERO_MONEY, [])).toEqual([])
    expect(() => allocate(1n as Money, [])).toThrow(RangeError)
    expect(() => allocate(1n as Money, [-1n, 2n])).toThrow(RangeError)
  })
})

// ---- properties over seeded random usage

// xorshift32: small, fast and reproducible; a failing case is found again from its seed.
function random(seed: number): () => number {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state / 0x1_0000_0000
  }
}

function generators(next: () => number) {
  const int = (max: number): number => Math.floor(next() * (max + 1))
  const pick = <T,>(items: readonly T[]): T => items[int(items.length - 1)] as T
  const moneyValue = (): Money => {
    const form = int(3)
    if (form === 0) return 0n as Money
    if (form === 1) return BigInt(int(20)) * QUANTITY_UNIT as Money
    // Up to nine decimals, including the awkward last digit.
    const decimals = 1 + int(8)
    return (BigInt(int(10 ** Math.min(decimals, 6))) * 10n ** BigInt(9 - Math.min(decimals, 6)) + BigInt(int(9))) as Money
  }
  const step = (whole: boolean): bigint => (whole ? BigInt(1 + int(60)) * QUANTITY_UNIT : BigInt(1 + int(60)) * QUANTITY_UNIT + BigInt(int(999_999_999)))
  const tiers = (): Tier[] => {
    const whole = next() < 0.6
    const count = 1 + int(4)
    const list: Tier[] = []
    let bound = 0n
    for (let i = 0; i < count; i++) {
      const last = i === count - 1
      if (!last) bound += step(whole)
      list.push({ upTo: last ? null : (bound as Quantity), unitPrice: moneyValue(), flatPrice: next() < 0.5 ? ZERO_MONEY : moneyValue() })
    }
    return list
  }
  const model = (): PriceModel => {
    const kind = pick(['unit', 'graduated', 'volume', 'package'] as const)
    if (kind === 'unit') return { kind, unitPrice: moneyValue() }
    if (kind === 'package') return { kind, size: step(next() < 0.6) as Quantity, price: moneyValue() }
    return { kind, tiers: tiers() }
  }
  // Every boundary the model has, and the quantities exactly on, just below and just above each (by one unit and one nano-unit).
  const quantitiesAround = (model: PriceModel): Quantity[] => {
    const bounds: bigint[] = [0n]
    if (model.kind === 'graduated' || model.kind === 'volume') for (const t of model.tiers) if (t.upTo !== null) bounds.push(t.upTo)
    if (model.kind === 'package') bounds.push(model.size, 2n * model.size, 3n * model.size)
    const out = new Set<bigint>()
    for (const b of bounds) for (const d of [0n, 1n, -1n, QUANTITY_UNIT, -QUANTITY_UNIT]) if (b + d >= 0n) out.add(b + d)
    out.add(BigInt(int(400)) * QUANTITY_UNIT)
    out.add(BigInt(int(400)) * QUANTITY_UNIT + BigInt(int(999_999_999)))
    return [...out] as Quantity[]
  }
  return { int, pick, moneyValue, model, quantitiesAround }
}

describe('pricing matches the plain reference on random usage', () => {
  it('prices every quantity on, below and above every boundary as the reference does', () => {
    const g = generators(random(20_261_101))
    let cases = 0
    for (let i = 0; i < 600; i++) {
      const model = g.model()
      for (const quantity of g.quantitiesAround(model)) {
        const got = priceOf(model, quantity)
        const want = referencePriceOf(model, quantity)
        if (got !== want) expect({ case: i, model, quantity, got }).toEqual({ case: i, model, quantity, got: want })
        cases++
      }
    }
    expect(cases).toBeGreaterThan(5000)
  })

  it('charges more, never less, for more usage under graduated and package prices', () => {
    const g = generators(random(7))
    for (let i = 0; i < 300; i++) {
      const model = g.model()
      if (model.kind === 'volume') continue // volume prices may fall as usage crosses into a cheaper tier
      const quantities = g.quantitiesAround(model).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      const amounts = quantities.map((x) => priceOf(model, x))
      for (let k = 1; k < amounts.length; k++) expect(amounts[k]! >= amounts[k - 1]!).toBe(true)
    }
  })

  it('rates groups with allowances per identity and per business unit and minimums as the reference does', () => {
    const g = generators(random(42))
    let cases = 0
    for (let i = 0; i < 1500; i++) {
      const model = g.model()
      const around = g.quantitiesAround(model)
      const identities = 1 + g.int(5)
      const quantities = Array.from({ length: identities }, () => g.pick(around))
      const per = g.pick(['identity', 'business_unit', null] as const)
      // Allowances on the usage itself, so "exactly used up" and "one over" both occur.
      const included = per === null ? null : { quantity: g.pick([...quantities, ZERO_QUANTITY, quantities[0]! + 1n]) as Quantity, per }
      const minimumCharge = g.pick([ZERO_MONEY, g.moneyValue(), priceOf(model, quantities[0]!)])
      const meterPrice: MeterPrice = { model, included, minimumCharge }
      expect(rateGroup(meterPrice, quantities)).toEqual(referenceRateGroup(meterPrice, quantities))
      cases++
    }
    expect(cases).toBe(1500)
  })

  it('allocates exactly, within one nano-unit of each share, the same way every time', () => {
    const g = generators(random(99))
    for (let i = 0; i < 2000; i++) {
      const amount = BigInt(g.int(1_000_000)) * BigInt(1 + g.int(1_000_000)) as Money
      const weights = Array.from({ length: 1 + g.int(7) }, () => (g.int(3) === 0 ? 0n : BigInt(g.int(1_000_000))))
      const parts = allocate(amount, weights)
      expect(parts.reduce((a, b) => a + b, 0n)).toBe(amount)
      const total = weights.reduce((a, b) => a + b, 0n)
      const effective = total === 0n ? weights.map(() => 1n) : weights
      const sum = total === 0n ? BigInt(weights.length) : total
      parts.forEach((part, k) => {
        const error = part * sum - amount * effective[k]!
        expect(error > -sum && error < sum).toBe(true)
      })
      expect(allocate(amount, weights)).toEqual(parts)
      expect(parts).toEqual(referenceAllocate(amount, weights))
    }
  })
})
