import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { formatMoney } from '../money/decimal.js'
import { formatIssue, PolicyError } from './issues.js'
import { loadPolicyFile, MAX_POLICY_BYTES, parsePolicy, validatePolicy, type ParsePolicyOptions } from './load.js'
import { DETECTION_DEFAULTS } from './schema.js'

// The example policy the product was specified with, verbatim (comments included).
const SPEC_EXAMPLE = `rate_cards:                      # priced by the card in force at the event's time
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - name: tool_calls
        activity_type: tool_invocation
        activity_name: "*"       # glob, optional
        status: ok               # ok | error | any; default ok
        unit_price: "0.002"      # decimal string, per event
entitlements:
  - feature: high_capacity_processing
    activity_type: workflow_execution
    status: ok
    min_count: 100
    window: 7d                   # rolling window ending at the decision time
detection:                       # thresholds for findings; every key optional
  dormant_after: 30d
`

// A small valid policy to break one key at a time.
const CARD = `rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - name: tool_calls
        activity_type: tool_invocation
        unit_price: "0.002"
`

const scratch = mkdtempSync(join(tmpdir(), 'nhi-policy-test-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** The error lines a policy produces, as a user reads them. */
function problems(text: string, options?: ParsePolicyOptions): string[] {
  try {
    parsePolicy(text, options)
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map(formatIssue)
    throw error
  }
  throw new Error('expected the policy to be refused')
}

function problemsOfValue(value: unknown): string[] {
  try {
    validatePolicy(value)
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map(formatIssue)
    throw error
  }
  throw new Error('expected the policy to be refused')
}

describe('loading a valid policy', () => {
  it('accepts the original example policy verbatim and fills in every default', () => {
    const { policy, warnings } = parsePolicy(SPEC_EXAMPLE)
    expect(warnings).toEqual([])
    const card = policy.rate_cards[0]
    expect(card?.version).toBe('2026-11')
    expect(card?.effective_from).toEqual({ text: '2026-11-01T00:00:00Z', ms: Date.UTC(2026, 10, 1) })
    expect(card?.currency).toBe('USD')
    const meter = card?.meters[0]
    expect(meter && { ...meter, unit_price: meter.unit_price === null ? null : formatMoney(meter.unit_price) }).toEqual({
      name: 'tool_calls',
      activity_type: 'tool_invocation',
      activity_name: '*',
      status: 'ok',
      aggregation: 'count',
      value: null,
      min_events: 1,
      price: { model: { kind: 'unit', unitPrice: 2_000_000n }, included: null, minimumCharge: 0n },
      unit_price: '0.002',
    })
    expect(policy.entitlements).toEqual([
      {
        feature: 'high_capacity_processing',
        activity_type: 'workflow_execution',
        activity_name: '*',
        status: 'ok',
        min_count: 100,
        window: { text: '7d', ms: 7 * 86_400_000 },
      },
    ])
    expect(policy.billing.completeness_threshold).toBe(0.99)
    expect(policy.detection.dormant_after).toEqual({ text: '30d', ms: 30 * 86_400_000 })
    expect(policy.detection.rotation_max_age.text).toBe(DETECTION_DEFAULTS.rotation_max_age)
    expect(policy.detection.burst_factor).toBe(DETECTION_DEFAULTS.burst_factor)
  })

  it('reads the same policy written as JSON, by content or by being told', () => {
    const json = JSON.stringify({
      rate_cards: [{ version: '2026-11', effective_from: '2026-11-01T00:00:00Z', currency: 'USD', meters: [{ name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' }] }],
    })
    expect(parsePolicy(json).format).toBe('json')
    expect(parsePolicy(json, { format: 'json' }).policy).toEqual(parsePolicy(CARD).policy)
  })

  it('loads YAML and JSON files by extension, and sniffs files without one', async () => {
    writeFileSync(join(scratch, 'policy.yaml'), SPEC_EXAMPLE)
    writeFileSync(join(scratch, 'policy.json'), JSON.stringify({ rate_cards: [{ version: 'v1', effective_from: '2026-01-01T00:00:00Z', currency: 'EUR', meters: [{ name: 'calls', activity_type: 'api_call', unit_price: '1' }] }] }))
    writeFileSync(join(scratch, 'policy'), CARD)
    expect((await loadPolicyFile(join(scratch, 'policy.yaml'))).format).toBe('yaml')
    expect((await loadPolicyFile(join(scratch, 'policy.json'))).policy.rate_cards[0]?.currency).toBe('EUR')
    expect((await loadPolicyFile(join(scratch, 'policy'))).format).toBe('yaml')
  })

  it('treats a section with nothing under it as all defaults', () => {
    const { policy } = parsePolicy(`${CARD}entitlements:\nbilling:\ndetection:\n  # dormant_after: 14d\n`)
    expect(policy.entitlements).toEqual([])
    expect(policy.billing.completeness_threshold).toBe(0.99)
    expect(policy.detection.dormant_after.text).toBe('30d')
  })

  it('lets anchors and aliases share a meter list between cards', () => {
    const { policy } = parsePolicy(`rate_cards:
  - version: a
    effective_from: "2026-01-01T00:00:00Z"
    currency: USD
    meters: &meters
      - { name: calls, activity_type: api_call, unit_price: "0.1" }
  - version: b
    effective_from: "2026-02-01T00:00:00Z"
    currency: USD
    meters: *meters
`)
    expect(policy.rate_cards[1]?.meters[0]?.name).toBe('calls')
  })

  it('hands back a frozen policy, so no caller can change prices for everyone', () => {
    const { policy } = parsePolicy(CARD)
    expect(Object.isFrozen(policy)).toBe(true)
    expect(Object.isFrozen(policy.rate_cards[0]?.meters[0])).toBe(true)
    expect(Object.isFrozen(policy.detection.dormant_after)).toBe(true)
  })

  it('warns about an activity type one letter off a named one, but still loads (custom types are allowed)', () => {
    const { warnings } = parsePolicy(CARD.replace('activity_type: tool_invocation', 'activity_type: tool_invocations'))
    expect(warnings.map(formatIssue)).toEqual([
      'rate_cards[0].meters[0].activity_type: "tool_invocations" is not a named activity type; did you mean "tool_invocation"? (custom types are allowed, so this is only a warning) (line 7, column 9)',
    ])
    expect(parsePolicy(CARD.replace('activity_type: tool_invocation', 'activity_type: model_inference')).warnings).toEqual([])
  })
})

describe('refusing a policy with wrong types', () => {
  it('names the key, the expectation and the value, with its line', () => {
    expect(problems(CARD.replace('unit_price: "0.002"', 'unit_price: 0.002'))).toEqual([
      'rate_cards[0].meters[0].unit_price: must be a decimal string like "0.002", got 0.002 (a number); put it in quotes so no digit is lost (line 8, column 9)',
    ])
  })

  it.each([
    ['rate_cards: {}', 'rate_cards: must be a list of rate cards, got a mapping (line 1, column 1)'],
    ['rate_cards: "yes"', 'rate_cards: must be a list of rate cards, got "yes" (line 1, column 1)'],
    ['rate_cards: [5]', 'rate_cards[0]: must be a rate card mapping with version, effective_from, currency, meters, got 5 (a number) (line 1, column 14)'],
  ])('refuses %j', (text, problem) => {
    expect(problems(text)).toEqual([problem])
  })

  it('reports every wrong key in one go, top to bottom', () => {
    const text = `rate_cards:
  - version: 2026
    effective_from: "2026-11-01T00:00:00Z"
    currency: usd
    meters: tool_calls
entitlements:
  - feature: fast
    activity_type: workflow_execution
    status: true
    min_count: "100"
    window: 7
`
    expect(problems(text)).toEqual([
      'rate_cards[0].version: must be a version label like "2026-11", got 2026 (a number); put it in quotes (line 2, column 5)',
      'rate_cards[0].currency: must be an ISO 4217 currency code in capitals, e.g. "USD", got "usd" (line 4, column 5)',
      'rate_cards[0].meters: must be a list of meters, got "tool_calls" (line 5, column 5)',
      'entitlements[0].status: must be one of ok, error, any, got true (a boolean) (line 9, column 5)',
      'entitlements[0].min_count: must be a whole number from 1 to 1000000000000 like 100, got "100" (line 10, column 5)',
      'entitlements[0].window: must be a duration like "7d", got 7 (a number) (line 11, column 5)',
    ])
  })

  it('refuses a policy that is a list or a bare value at the top', () => {
    expect(problems('- a\n- b\n')).toEqual([
      '(top level): must be a mapping with rate_cards, and optionally entitlements, billing, detection, identity and webhooks, got a list of 2 (line 1, column 1)',
    ])
    expect(problemsOfValue('rate_cards')[0]).toMatch(/^\(top level\): must be a mapping/)
  })
})

describe('refusing a policy with missing keys', () => {
  it('names each missing key at the mapping that lacks it', () => {
    expect(problems(`rate_cards:\n  - version: "1"\n    meters:\n      - name: x\n`)).toEqual([
      'rate_cards[0].effective_from: is required (an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z") (line 2, column 5)',
      'rate_cards[0].currency: is required (an ISO 4217 currency code like "USD") (line 2, column 5)',
      'rate_cards[0].meters[0].activity_type: is required (an activity type (api_call, token_exchange, workflow_execution, tool_invocation, secret_rotation) or a custom lowercase word) (line 4, column 9)',
      'rate_cards[0].meters[0].unit_price: is required: a meter needs a price, one of unit_price (a decimal string like "0.002"), tiers or package (line 4, column 9)',
    ])
  })

  it('needs at least one rate card and one meter per card', () => {
    expect(problems('detection:\n  dormant_after: 30d\n')).toEqual(['rate_cards: is required (a list of rate cards) (line 1, column 1)'])
    expect(problems('rate_cards: []')).toEqual([
      'rate_cards: must list at least one rate card (bills need a price list and a currency) (line 1, column 1)',
    ])
    expect(problems(CARD.replace(/meters:[\s\S]*$/, 'meters: []\n'))).toEqual(['rate_cards[0].meters: must list at least one meter (line 5, column 5)'])
  })
})

describe('refusing unknown keys', () => {
  it('suggests the key a typo was meant to be', () => {
    expect(problems(CARD.replace('unit_price', 'unit_prize'))).toEqual([
      'rate_cards[0].meters[0].unit_price: is required: a meter needs a price, one of unit_price (a decimal string like "0.002"), tiers or package (line 6, column 9)',
      'rate_cards[0].meters[0].unit_prize: unknown key; did you mean "unit_price"? (line 8, column 9)',
    ])
    expect(problems(`${CARD}detection:\n  dormant_afer: 14d\n`)).toEqual(['detection.dormant_afer: unknown key; did you mean "dormant_after"? (line 10, column 3)'])
    expect(problems(`${CARD}Detection:\n  dormant_after: 14d\n`)).toEqual(['Detection: unknown key; did you mean "detection"? (line 9, column 1)'])
  })

  it('lists the known keys when nothing is close', () => {
    expect(problems(`${CARD}colour: blue\n`)).toEqual(['colour: unknown key; expected one of rate_cards, entitlements, billing, detection, identity, webhooks (line 9, column 1)'])
  })

  it('explains that YAML merge keys are not read', () => {
    expect(problems(`${CARD}detection:\n  <<: {dormant_after: 14d}\n`)).toEqual([
      'detection["<<"]: merge keys ("<<") are not supported; repeat the keys, or alias the whole value (line 10, column 3)',
    ])
  })

  it('refuses a __proto__ key instead of letting it change the object', () => {
    expect(problems(`${CARD}__proto__:\n  polluted: true\n`)).toEqual([
      '__proto__: unknown key; expected one of rate_cards, entitlements, billing, detection, identity, webhooks (line 9, column 1)',
    ])
    const json = `{"rate_cards": [], "__proto__": {"detection": 1}}`
    expect(problems(json)).toContain('__proto__: unknown key; expected one of rate_cards, entitlements, billing, detection, identity, webhooks (line 1, column 20)')
    expect(({} as Record<string, unknown>).detection).toBeUndefined()
  })
})

describe('refusing hostile strings', () => {
  it('refuses SQL and shell metacharacters in names, quoting them harmlessly', () => {
    expect(problems(CARD.replace('name: tool_calls', `name: "x'); DROP TABLE otel_traces; --"`))).toEqual([
      `rate_cards[0].meters[0].name: must be a lowercase word like "tool_calls" (a–z, 0–9 and _, starting with a letter, at most 63 characters), got "x'); DROP TABLE otel_traces; --" (line 6, column 9)`,
    ])
  })

  it('escapes terminal control sequences and bidi overrides in messages', () => {
    const [line] = problems(`${CARD}"\\e[2J\\u202Eevil": 1\n`)
    expect(line).toContain('["\\u001b[2J\\u202eevil"]: unknown key')
    expect(line).not.toMatch(/[\u001b\u202e]/)
  })

  it('refuses a glob with invisible characters', () => {
    expect(problems(CARD.replace('activity_type: tool_invocation', 'activity_type: tool_invocation\n        activity_name: "adm\\u202Ein*"'))[0]).toMatch(
      /^rate_cards\[0\]\.meters\[0\]\.activity_name: must contain only visible characters, got "adm\\u202ein\*" with U\+202E at position 3/,
    )
  })

  it('cuts a very long key name short in the message', () => {
    const [line] = problems(`${CARD}${'k'.repeat(1000)}: 1\n`)
    expect(line?.length).toBeLessThan(300)
    expect(line).toContain('(1000 characters)')
  })
})

describe('refusing values that cannot be used', () => {
  it('refuses duplicate versions, start instants, meter names and features', () => {
    const text = `rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - { name: calls, activity_type: api_call, activity_name: "GET *", unit_price: "0.1" }
      - { name: calls, activity_type: api_call, activity_name: "POST *", unit_price: "0.2" }
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00.000Z"
    currency: USD
    meters:
      - { name: calls, activity_type: api_call, unit_price: "0.1" }
entitlements:
  - { feature: fast, activity_type: api_call, min_count: 1, window: 1d }
  - { feature: fast, activity_type: api_call, min_count: 2, window: 1d }
`
    expect(problems(text)).toEqual([
      'rate_cards[0].meters[1].name: "calls" is already the name of rate_cards[0].meters[0]; meter names must be unique within a card (line 7, column 11)',
      'rate_cards[1].version: "2026-11" is already the version of rate_cards[0]; versions must be unique (line 8, column 5)',
      'rate_cards[1].effective_from: is the same instant as rate_cards[0].effective_from; two cards cannot take effect at once (line 9, column 5)',
      'entitlements[1].feature: "fast" is already defined by entitlements[0]; each feature has one rule (line 15, column 7)',
    ])
  })

  it('refuses a second currency', () => {
    const second = CARD.replace('rate_cards:\n', '').replace('"2026-11"', '"2026-12"').replace('2026-11-01', '2026-12-01').replace('USD', 'EUR')
    expect(problems(CARD + second)).toEqual([
      'rate_cards[1].currency: must be USD like rate_cards[0], got "EUR"; every card shares one currency so bills can be totalled (line 11, column 5)',
    ])
  })

  it('refuses a currency that is not ISO 4217', () => {
    expect(problems(CARD.replace('USD', 'USX'))).toEqual(['rate_cards[0].currency: is not an ISO 4217 currency code: "USX" (line 4, column 5)'])
    expect(problems(CARD.replace('USD', 'US$'))[0]).toMatch(/three capital letters/)
  })

  it('refuses a meter that an earlier meter always wins over', () => {
    const text = CARD + `      - name: searches
        activity_type: tool_invocation
        activity_name: "search_*"
        unit_price: "0.001"
`
    expect(problems(text)).toEqual([
      'rate_cards[0].meters[1]: can never match: rate_cards[0].meters[0] (tool_calls) comes first and matches every span it would (first match wins); move it up or narrow the earlier meter (line 9, column 9)',
    ])
  })

  it('accepts a later meter that catches what earlier ones leave', () => {
    const text = CARD.replace('unit_price: "0.002"', 'status: error\n        unit_price: "0"') + `      - { name: all_tools, activity_type: tool_invocation, status: any, unit_price: "0.002" }\n`
    expect(parsePolicy(text).policy.rate_cards[0]?.meters).toHaveLength(2)
  })

  it.each([
    ['"2026-11-01T00:00:00+01:00"', 'must be in UTC, written with "Z" (e.g. "2026-11-01T00:00:00Z"), got "2026-11-01T00:00:00+01:00"'],
    ['"2026-11-01"', 'must be an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z": add the time, got "2026-11-01"'],
    ['2026-11-01T00:00:00Z', null],
    ['"2026-13-01T00:00:00Z"', 'is not a real date and time, got "2026-13-01T00:00:00Z"'],
    ['"soon"', 'must be an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z", got "soon"'],
    ['1793491200', 'must be an RFC 3339 UTC timestamp like "2026-11-01T00:00:00Z", got 1793491200 (a number)'],
  ])('checks effective_from %s', (value, problem) => {
    const text = CARD.replace('"2026-11-01T00:00:00Z"', value)
    if (problem === null) expect(parsePolicy(text).policy.rate_cards[0]?.effective_from.ms).toBe(Date.UTC(2026, 10, 1))
    else expect(problems(text)).toEqual([`rate_cards[0].effective_from: ${problem} (line 3, column 5)`])
  })

  it.each([
    ['"abc"', 'must be a decimal string like "0.002", got "abc"'],
    ['"-0.5"', 'must not be negative, got "-0.5"'],
    ['"0.0000000001"', 'has 10 digits after the decimal point, more than the 9 kept; nhi-meter does not round prices (got "0.0000000001")'],
    ['"1e400"', 'must be a decimal string like "0.002" in plain notation, not an exponent, got "1e400"'],
    ['"10000000000000000"', 'is too large: at most 15 digits before the decimal point, got 17 ("10000000000000000")'],
    ['1e400', 'must be a decimal string like "0.002", got Infinity (a number); put it in quotes so no digit is lost'],
    ['.nan', 'must be a decimal string like "0.002", got NaN (a number); put it in quotes so no digit is lost'],
    ['null', 'must be a decimal string like "0.002", got null (an empty value)'],
    ['["0.1"]', 'must be a decimal string like "0.002", got a list of 1'],
  ])('checks unit_price %s', (value, problem) => {
    expect(problems(CARD.replace('"0.002"', value))).toEqual([`rate_cards[0].meters[0].unit_price: ${problem} (line 8, column 9)`])
  })

  it.each([
    ['1e400', 'must be a whole number from 1 to 1000000000000 like 100, got Infinity (a number)'],
    ['99999999999999999999', 'must be a whole number from 1 to 1000000000000 like 100, got 100000000000000000000 (a number)'],
    ['0', 'must be a whole number from 1 to 1000000000000 like 100, got 0 (a number)'],
    ['-5', 'must be a whole number from 1 to 1000000000000 like 100, got -5 (a number)'],
  ])('checks min_count %s', (value, problem) => {
    const text = `${CARD}entitlements:\n  - { feature: f, activity_type: api_call, min_count: ${value}, window: 1d }\n`
    expect(problems(text)).toEqual([`entitlements[0].min_count: ${problem} (line 10, column 44)`])
  })

  it('checks ratios, factors and windows in billing and detection', () => {
    const text = `${CARD}billing:
  completeness_threshold: 1.5
detection:
  telemetry_gap_min_ratio: 0.1234567
  burst_factor: 1
  burst_windows: [7m, 90m]
  burst_baseline: 36h
  sustained_growth_periods: 1
  burst_false_alarms: 0
`
    expect(problems(text)).toEqual([
      'billing.completeness_threshold: must be a number from 0 to 1 like 0.99, got 1.5 (a number) (line 10, column 3)',
      'detection.telemetry_gap_min_ratio: must have at most 6 decimal places, got 0.1234567 (a number) (line 12, column 3)',
      'detection.burst_factor: must be a number greater than 1 and at most 1000000 like 3, got 1 (a number) (line 13, column 3)',
      'detection.sustained_growth_periods: must be a whole number from 2 to 1000000000000 like 3, got 1 (a number) (line 16, column 3)',
      'detection.burst_false_alarms: must be a number greater than 0 and less than 1 like 0.01, got 0 (a number) (line 17, column 3)',
    ])
    expect(problems(`${CARD}detection:\n  burst_windows: [7m, 90m, 2d]\n  burst_baseline: 36h\n  dormant_early_after: 40d\n`)).toEqual([
      'detection.burst_windows[0]: must be a whole number of minutes that divides an hour, or a whole number of hours, got "7m"; windows are aligned to the clock (line 10, column 19)',
      'detection.burst_windows[1]: must be a whole number of minutes that divides an hour, or a whole number of hours, got "90m"; windows are aligned to the clock (line 10, column 23)',
      'detection.burst_windows[2]: must be at most detection.sustained_growth_period (1d), got "2d"; a longer excursion is a level shift, not a burst (line 10, column 28)',
      'detection.burst_baseline: must be a whole number of days, at least 3d, got "36h"; the expected count of a window is learnt from the same window on earlier days (line 11, column 3)',
      'detection.dormant_early_after: must be at most detection.dormant_after (30d), got "40d" (line 12, column 3)',
    ])
    // The key this replaced is named, with the one to use.
    expect(problems(`${CARD}detection:\n  burst_window: 5m\n`)[0]).toMatch(/^detection\.burst_window: .*burst_windows/)
  })
})

describe('refusing files that are not a policy', () => {
  it('refuses an empty file, and one with only comments', () => {
    const empty = ['(top level): is empty; a policy needs at least rate_cards (see query-service/src/policy/POLICY.md)']
    expect(problems('')).toEqual(empty)
    expect(problems('# nothing yet\n\n')).toEqual(empty)
    expect(problems('null', { format: 'json' })).toEqual(empty)
  })

  it('refuses broken YAML and JSON with the line of the break', () => {
    expect(problems('rate_cards: [\n  {version: "1"\n')[0]).toMatch(/is not valid YAML: .*\(line \d+, column \d+\)$/)
    expect(problems('{"rate_cards": [}', { format: 'json' })[0]).toMatch(/^\(top level\): is not valid JSON: /)
  })

  it('refuses keys given twice, in YAML and in JSON', () => {
    expect(problems(`${CARD}detection: {}\ndetection: {}\n`)).toEqual(['detection: appears twice in the same mapping; each key may appear once (line 10, column 1)'])
    expect(problems('{"rate_cards": [], "rate_cards": []}', { format: 'json' })).toEqual([
      'rate_cards: appears twice in the same mapping; each key may appear once (line 1, column 20)',
    ])
  })

  it('refuses YAML tags and multiple documents', () => {
    expect(problems(`${CARD}detection: !!js/function "function () {}"\n`)[0]).toMatch(/^detection: uses a YAML tag nhi-meter does not read .*remove the tag \(line 9, column 12\)$/)
    expect(problems(`${CARD}---\n${CARD}`)[0]).toMatch(/holds more than one YAML document/)
  })

  it('refuses a YAML alias bomb quickly instead of expanding it', () => {
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
      'h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
      'rate_cards: [*h,*h,*h,*h,*h,*h,*h,*h,*h]',
    ].join('\n')
    const started = performance.now()
    expect(problems(bomb)).toEqual(['(top level): uses aliases that expand to more than 100 nodes; a policy never needs that many (YAML alias bomb?)'])
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('refuses a policy over 1 MiB before parsing it', () => {
    const huge = `${CARD}# ${'x'.repeat(MAX_POLICY_BYTES)}\n`
    expect(problems(huge)).toEqual(['(file): is 1.0 MiB; a policy may be at most 1 MiB'])
  })

  it('refuses a huge file on disk without reading it all', async () => {
    const path = join(scratch, 'huge.yaml')
    writeFileSync(path, `${CARD}# ${'x'.repeat(20 * 1024 * 1024)}\n`)
    await expect(loadPolicyFile(path)).rejects.toThrow('(file): is 20.0 MiB; a policy may be at most 1 MiB')
  })

  it('refuses a file that is missing, a directory, or not UTF-8', async () => {
    await expect(loadPolicyFile(join(scratch, 'nope.yaml'))).rejects.toThrow(/nope\.yaml: 1 problem\n {2}\(file\): cannot be read: no such file/)
    mkdirSync(join(scratch, 'dir.yaml'), { recursive: true })
    await expect(loadPolicyFile(join(scratch, 'dir.yaml'))).rejects.toThrow(/\(file\): (is not a regular file|cannot be read: it is a directory)/)
    writeFileSync(join(scratch, 'latin1.yaml'), Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a]))
    await expect(loadPolicyFile(join(scratch, 'latin1.yaml'))).rejects.toThrow('(file): is not valid UTF-8 text')
  })

  it('says where the policy came from and how many problems it has', () => {
    try {
      parsePolicy('rate_cards: 1', { source: '/etc/nhi/policy.yaml' })
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(PolicyError)
      expect((error as Error).message).toBe(
        'invalid policy /etc/nhi/policy.yaml: 1 problem\n  rate_cards: must be a list of rate cards, got 1 (a number) (line 1, column 1)',
      )
    }
  })

  it('lists at most 50 problems and counts the rest', () => {
    const meters = Array.from({ length: 60 }, (_, i) => `      - { name: m${i}, activity_type: api_call, unit_price: "x" }`).join('\n')
    try {
      parsePolicy(`${CARD.replace(/ {6}- name[\s\S]*$/, '')}${meters}\n`)
      expect.unreachable()
    } catch (error) {
      const message = (error as PolicyError).message
      expect(message).toMatch(/^invalid policy \(string\): 60 problems\n/)
      expect(message).toMatch(/\n {2}\.\.\. and 10 more$/)
    }
  })
})
