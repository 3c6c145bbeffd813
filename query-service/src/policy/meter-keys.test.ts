import { describe, expect, it } from 'vitest'
import { formatMoney } from '../money/decimal.js'
import { formatQuantity } from '../money/quantity.js'
import { PolicyError, type PolicyIssue } from './issues.js'
import { parsePolicy } from './load.js'
import type { Meter } from './schema.js'

// One card; each test writes the meter list.
function card(meters: string): string {
  return `rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
${meters
  .trim()
  .split('\n')
  .map((line) => `      ${line}`)
  .join('\n')}
`
}

function meters(text: string): readonly Meter[] {
  return parsePolicy(card(text)).policy.rate_cards[0]?.meters ?? []
}

/** The problems as "path: message", without positions. */
function problems(text: string): string[] {
  try {
    parsePolicy(card(text))
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map((issue: PolicyIssue) => `${issue.path}: ${issue.message}`)
    throw error
  }
  throw new Error('expected the policy to be refused')
}

const M = 'rate_cards[0].meters[0]'

describe('meters that measure more than a count', () => {
  it('count events by default, at one price per event', () => {
    const [meter] = meters('- { name: calls, activity_type: api_call, unit_price: "0.002" }')
    expect(meter).toMatchObject({ aggregation: 'count', value: null, min_events: 1 })
    expect(meter?.price).toEqual({ model: { kind: 'unit', unitPrice: 2_000_000n }, included: null, minimumCharge: 0n })
  })

  it('sum a token attribute of model calls, per model glob', () => {
    const [meter] = meters(`
- name: gpt4o_input_tokens
  activity_type: model_call
  activity_name: "gpt-4o*"
  aggregation: sum
  value: gen_ai.usage.input_tokens
  unit_price: "0.0000025"`)
    expect(meter).toMatchObject({ aggregation: 'sum', value: 'gen_ai.usage.input_tokens', activity_name: 'gpt-4o*' })
    expect(formatMoney(meter?.unit_price ?? 0n as never)).toBe('0.0000025')
  })

  it('sum span durations', () => {
    expect(meters('- { name: workflow_ms, activity_type: workflow_execution, aggregation: sum, value: duration_ms, unit_price: "0.00001" }')[0]?.value).toBe('duration_ms')
  })

  it('count active identities that reach min_events', () => {
    const [meter] = meters(`
- name: active_agents
  activity_type: tool_invocation
  aggregation: active_identities
  min_events: 10
  unit_price: "5.00"
  included: { quantity: 3, per: business_unit }`)
    expect(meter).toMatchObject({ aggregation: 'active_identities', min_events: 10 })
    expect(meter?.price.included).toEqual({ quantity: 3_000_000_000n, per: 'business_unit' })
  })

  it('read tiers, tier_mode, packages, allowances and minimums into the price', () => {
    const [graduated, volume, pack] = meters(`
- name: calls
  activity_type: api_call
  tiers:
    - { up_to: "1000" }
    - { up_to: "10000", unit_price: "0.002", flat_price: "1" }
    - { unit_price: "0.001" }
  included: { quantity: "100", per: identity }
  minimum_charge: "25.00"
- name: tokens
  activity_type: model_call
  aggregation: sum
  value: gen_ai.usage.output_tokens
  tier_mode: volume
  tiers: [{ up_to: "1000000", unit_price: "0.00001" }, { unit_price: "0.000008" }]
- name: exports
  activity_type: workflow_execution
  aggregation: sum
  value: http.response.body.size
  package: { size: "1000000000", price: "0.10" }`)
    expect(graduated?.unit_price).toBeNull()
    expect(graduated?.price.model).toEqual({
      kind: 'graduated',
      tiers: [
        { upTo: 1000_000_000_000n, unitPrice: 0n, flatPrice: 0n },
        { upTo: 10_000_000_000_000n, unitPrice: 2_000_000n, flatPrice: 1_000_000_000n },
        { upTo: null, unitPrice: 1_000_000n, flatPrice: 0n },
      ],
    })
    expect(graduated?.price.included).toEqual({ quantity: 100_000_000_000n, per: 'identity' })
    expect(formatMoney(graduated?.price.minimumCharge ?? (0n as never))).toBe('25.00')
    expect(volume?.price.model.kind).toBe('volume')
    expect(pack?.price.model).toEqual({ kind: 'package', size: 1_000_000_000n * 1_000_000_000n, price: 100_000_000n })
    if (pack?.price.model.kind === 'package') expect(formatQuantity(pack.price.model.size)).toBe('1000000000')
  })

  it('let a count, a token sum and an active-identity meter each see the same spans', () => {
    const list = meters(`
- { name: model_calls, activity_type: model_call, unit_price: "0.001" }
- { name: input_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.000002" }
- { name: output_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.output_tokens, unit_price: "0.000008" }
- { name: active_models_users, activity_type: model_call, aggregation: active_identities, unit_price: "5" }`)
    expect(list.map((m) => m.name)).toEqual(['model_calls', 'input_tokens', 'output_tokens', 'active_models_users'])
  })
})

describe('refusing bad meter keys, naming the key', () => {
  it('refuses a sum over an attribute that is not a number', () => {
    expect(problems('- { name: t, activity_type: model_call, aggregation: sum, value: gen_ai.request.model, unit_price: "1" }')).toEqual([
      `${M}.value: cannot sum "gen_ai.request.model": it is a string (the model's name), not a number; to price tokens per model, match model calls with activity_type: model_call and activity_name: "gpt-4o*", and sum gen_ai.usage.input_tokens`,
    ])
    expect(problems('- { name: t, activity_type: api_call, aggregation: sum, value: http.response.status_code, unit_price: "1" }')[0]).toMatch(
      /^rate_cards\[0\]\.meters\[0\]\.value: cannot sum "http\.response\.status_code": it is a number but not a quantity/,
    )
    expect(problems('- { name: t, activity_type: api_call, aggregation: sum, value: nhi.id, unit_price: "1" }')[0]).toMatch(/^rate_cards\[0\]\.meters\[0\]\.value: cannot sum "nhi.id"/)
  })

  it('needs a value for a sum', () => {
    expect(problems('- { name: t, activity_type: model_call, aggregation: sum, unit_price: "1" }')).toEqual([
      `${M}.value: is required with aggregation: sum (duration_ms, or a numeric span attribute like "gen_ai.usage.input_tokens")`,
    ])
  })

  it('refuses a value on a count or active-identity meter', () => {
    expect(problems('- { name: t, activity_type: model_call, value: gen_ai.usage.input_tokens, unit_price: "1" }')).toEqual([
      `${M}.value: only with aggregation: sum; a count meter counts matching events`,
    ])
    expect(problems('- { name: t, activity_type: model_call, aggregation: active_identities, value: duration_ms, unit_price: "1" }')).toEqual([
      `${M}.value: only with aggregation: sum; an active_identities meter counts active identities`,
    ])
  })

  it('refuses min_events on a meter that does not count active identities, and a min_events below 1', () => {
    expect(problems('- { name: t, activity_type: api_call, min_events: 5, unit_price: "1" }')).toEqual([`${M}.min_events: only with aggregation: active_identities`])
    expect(problems('- { name: t, activity_type: api_call, aggregation: active_identities, min_events: 0, unit_price: "1" }')).toEqual([
      `${M}.min_events: must be a whole number from 1 to 1000000000000 like 10, got 0 (a number)`,
    ])
  })

  it('refuses an unknown aggregation, suggesting a near one', () => {
    expect(problems('- { name: t, activity_type: api_call, aggregation: average, unit_price: "1" }')).toEqual([
      `${M}.aggregation: must be one of count, sum, active_identities, got "average"`,
    ])
    expect(problems('- { name: t, activity_type: api_call, aggregation: active_identity, unit_price: "1" }')).toEqual([
      `${M}.aggregation: must be one of count, sum, active_identities, got "active_identity"; did you mean "active_identities"?`,
    ])
  })

  it('refuses tiers out of order, naming the index', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ up_to: "100" }, { up_to: "50" }, { unit_price: "1" }] }')).toEqual([
      `${M}.tiers[1].up_to: must be greater than tiers[0].up_to ("100"), got "50"; list tiers in increasing order of up_to`,
    ])
  })

  it('refuses overlapping tiers, naming the index', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ up_to: "100" }, { up_to: "100.0" }, { unit_price: "1" }] }')).toEqual([
      `${M}.tiers[1].up_to: is the same as tiers[0].up_to ("100"), so the tiers overlap; each up_to must be greater than the one before`,
    ])
  })

  it('refuses an unbounded tier that is not the last, and a last tier with a bound', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ unit_price: "1" }, { up_to: "100" }] }')).toEqual([
      `${M}.tiers[0].up_to: is required on every tier but the last: only the last tier is unbounded (it prices everything above the tier before it)`,
      `${M}.tiers[1].up_to: must be left out on the last tier, which prices everything above the tier before it; with up_to "100", usage above "100" would have no price`,
    ])
  })

  it('refuses a tier bound or package size of zero, and an empty tier list', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ up_to: 0 }, { unit_price: "1" }] }')).toEqual([`${M}.tiers[0].up_to: must be greater than 0, got 0 (a number)`])
    expect(problems('- { name: t, activity_type: api_call, package: { size: "0", price: "1" } }')).toEqual([`${M}.package.size: must be greater than 0, got "0"`])
    expect(problems('- { name: t, activity_type: api_call, tiers: [] }')).toEqual([`${M}.tiers: must list at least one tier`])
  })

  it('refuses a negative allowance', () => {
    expect(problems('- { name: t, activity_type: api_call, unit_price: "1", included: { quantity: "-100", per: identity } }')).toEqual([
      `${M}.included.quantity: must not be negative, got "-100"`,
    ])
    expect(problems('- { name: t, activity_type: api_call, unit_price: "1", included: { quantity: -100, per: identity } }')).toEqual([
      `${M}.included.quantity: must not be negative, got -100 (a number)`,
    ])
  })

  it('refuses an allowance per identity on an active-identity meter', () => {
    expect(problems('- { name: t, activity_type: api_call, aggregation: active_identities, unit_price: "5", included: { quantity: 1, per: identity } }')[0]).toMatch(
      /^rate_cards\[0\]\.meters\[0\]\.included\.per: cannot be identity on an active_identities meter: .*use per: business_unit$/,
    )
  })

  it('refuses two prices at once', () => {
    expect(problems('- { name: t, activity_type: api_call, unit_price: "1", package: { size: 10, price: "1" } }')).toEqual([
      `${M}.package: cannot be given with unit_price: a meter has one price, unit_price, tiers or package`,
    ])
  })

  it('refuses a meter with no price at all', () => {
    expect(problems('- { name: t, activity_type: api_call, minimum_charge: "10" }')).toEqual([
      `${M}.unit_price: is required: a meter needs a price, one of unit_price (a decimal string like "0.002"), tiers or package`,
    ])
  })

  it('refuses tier_mode without tiers, and an unknown tier_mode', () => {
    expect(problems('- { name: t, activity_type: api_call, unit_price: "1", tier_mode: volume }')).toEqual([
      `${M}.tier_mode: only with tiers (it says how the tiers price the quantity)`,
    ])
    expect(problems('- { name: t, activity_type: api_call, tier_mode: stairs, tiers: [{ unit_price: "1" }] }')).toEqual([
      `${M}.tier_mode: must be one of graduated, volume, got "stairs"`,
    ])
  })

  it('refuses a quantity written as a fractional YAML number, since digits could be lost', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ up_to: 0.1 }, { unit_price: "1" }] }')).toEqual([
      `${M}.tiers[0].up_to: must be a decimal string like "1000", got 0.1 (a number); put it in quotes so no digit is lost`,
    ])
  })

  it('suggests the key a typo in a tier, package or allowance was meant to be', () => {
    expect(problems('- { name: t, activity_type: api_call, tiers: [{ upto: "5" }, { unit_price: "1" }] }')).toEqual([
      `${M}.tiers[0].up_to: is required on every tier but the last: only the last tier is unbounded (it prices everything above the tier before it)`,
      `${M}.tiers[0].upto: unknown key; did you mean "up_to"?`,
    ])
    expect(problems('- { name: t, activity_type: api_call, unit_price: "1", included: { quantity: 1, pre: identity } }')).toEqual([
      `${M}.included.per: is required (one of identity, business_unit)`,
      `${M}.included.pre: unknown key; did you mean "per"?`,
    ])
  })

  it('reports a key that only makes sense with another even when a third key is also wrong', () => {
    expect(problems('- { name: t, activity_type: api_call, unit_price: "abc", value: duration_ms }')).toEqual([
      `${M}.unit_price: must be a decimal string like "0.002", got "abc"`,
      `${M}.value: only with aggregation: sum; a count meter counts matching events`,
    ])
  })
})

describe('meters that can never match', () => {
  it('are found only among meters that measure the same thing', () => {
    expect(problems(`
- { name: calls, activity_type: api_call, unit_price: "0.001" }
- { name: more_calls, activity_type: api_call, activity_name: "GET *", unit_price: "0.002" }`)).toEqual([
      `rate_cards[0].meters[1]: can never match: rate_cards[0].meters[0] (calls) comes first and matches every span it would (first match wins); move it up or narrow the earlier meter`,
    ])
    expect(
      meters(`
- { name: calls, activity_type: api_call, unit_price: "0.001" }
- { name: bytes, activity_type: api_call, aggregation: sum, value: http.request.body.size, unit_price: "0.000001" }
- { name: active_callers, activity_type: api_call, aggregation: active_identities, unit_price: "1" }`),
    ).toHaveLength(3)
  })

  it('include a sum meter behind another sum of the same value', () => {
    expect(
      problems(`
- { name: tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.000002" }
- { name: gpt_tokens, activity_type: model_call, activity_name: "gpt-*", aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.000003" }`),
    ).toHaveLength(1)
    expect(
      meters(`
- { name: in_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.000002" }
- { name: out_tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.output_tokens, unit_price: "0.000008" }`),
    ).toHaveLength(2)
  })
})

describe('meter names across rate cards', () => {
  it('refuses a name that measures something else on a later card, naming the key', () => {
    const text = `rate_cards:
  - version: "1"
    effective_from: "2026-10-01T00:00:00Z"
    currency: USD
    meters: [{ name: usage, activity_type: model_call, unit_price: "0.01" }]
  - version: "2"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters: [{ name: usage, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.00001" }]
`
    let messages: string[] = []
    try {
      parsePolicy(text)
    } catch (error) {
      if (error instanceof PolicyError) messages = error.issues.map((issue: PolicyIssue) => `${issue.path}: ${issue.message}`)
    }
    expect(messages).toEqual([
      'rate_cards[1].meters[0].aggregation: "usage" measures the sum of gen_ai.usage.input_tokens here but events in rate_cards[0]; a meter name means one quantity on every card (give this one another name)',
    ])
  })

  it('accepts a name that measures the same thing at a new price', () => {
    const text = `rate_cards:
  - version: "1"
    effective_from: "2026-10-01T00:00:00Z"
    currency: USD
    meters: [{ name: tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, unit_price: "0.00002" }]
  - version: "2"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters: [{ name: tokens, activity_type: model_call, aggregation: sum, value: gen_ai.usage.input_tokens, tiers: [{ up_to: 1000 }, { unit_price: "0.00001" }] }]
`
    expect(parsePolicy(text).policy.rate_cards).toHaveLength(2)
  })
})
