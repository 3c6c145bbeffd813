import { queryBind } from 'chdb'
import { describe, expect, it } from 'vitest'
import { formatMoney } from '../money/decimal.js'
import { parsePolicy } from './load.js'
import {
  activityRuleMatches,
  activityRuleSql,
  activityRuleSqlParams,
  cardInForce,
  cardPeriods,
  chargeFor,
  completenessStatus,
  identifiedRatio,
  isErrorStatus,
  matchMeter,
  matchMeters,
  meterClasses,
  meterIndexSql,
  meterSqlParams,
  type BillableSpan,
} from './rate-card.js'

const { policy } = parsePolicy(`
rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - { name: failed_searches, activity_type: tool_invocation, activity_name: "search_*", status: error, unit_price: "0" }
      - { name: searches, activity_type: tool_invocation, activity_name: "search_*", unit_price: "0.001" }
      - { name: tool_calls, activity_type: tool_invocation, unit_price: "0.002" }
      - { name: any_workflow, activity_type: workflow_execution, status: any, unit_price: "0.05" }
      - { name: odd_names, activity_type: api_call, activity_name: "GET /v1/(x)?[y]*", unit_price: "0.0001" }
  - version: "2027-01"
    effective_from: "2027-01-01T00:00:00Z"
    currency: USD
    meters:
      - { name: tool_calls, activity_type: tool_invocation, unit_price: "0.003" }
  - version: "2026-12"
    effective_from: "2026-12-01T00:00:00Z"
    currency: USD
    meters:
      - { name: tool_calls, activity_type: tool_invocation, unit_price: "0.0025" }
`)
const [november, january, december] = policy.rate_cards as [typeof policy.rate_cards[0], typeof policy.rate_cards[0], typeof policy.rate_cards[0]]

describe('the rate card in force', () => {
  it('is the card with the latest start at or before the event, whatever the file order', () => {
    expect(cardInForce(policy.rate_cards, new Date('2026-11-15T00:00:00Z'))?.version).toBe('2026-11')
    expect(cardInForce(policy.rate_cards, new Date('2026-12-31T23:59:59.999Z'))?.version).toBe('2026-12')
    expect(cardInForce(policy.rate_cards, Date.parse('2027-06-01T00:00:00Z'))?.version).toBe('2027-01')
  })

  it('takes over exactly at its effective_from instant', () => {
    expect(cardInForce(policy.rate_cards, Date.parse('2026-12-01T00:00:00Z'))).toBe(december)
    expect(cardInForce(policy.rate_cards, Date.parse('2026-12-01T00:00:00Z') - 1)).toBe(november)
  })

  it('does not exist before the first card, so such events are not billable', () => {
    expect(cardInForce(policy.rate_cards, Date.parse('2026-10-31T23:59:59.999Z'))).toBeUndefined()
    expect(cardInForce([], Date.now())).toBeUndefined()
  })

  it('splits a billing range into the stretches each card prices', () => {
    const periods = cardPeriods(policy.rate_cards, Date.parse('2026-10-01T00:00:00Z'), Date.parse('2027-02-01T00:00:00Z'))
    expect(periods.map((p) => [p.card.version, new Date(p.from).toISOString(), new Date(p.to).toISOString()])).toEqual([
      ['2026-11', '2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z'],
      ['2026-12', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ['2027-01', '2027-01-01T00:00:00.000Z', '2027-02-01T00:00:00.000Z'],
    ])
    expect(cardPeriods(policy.rate_cards, Date.parse('2026-11-05T00:00:00Z'), Date.parse('2026-11-06T00:00:00Z'))).toHaveLength(1)
    expect(cardPeriods(policy.rate_cards, Date.parse('2020-01-01T00:00:00Z'), Date.parse('2021-01-01T00:00:00Z'))).toEqual([])
  })
})

describe('matching a span to a meter', () => {
  const span = (activityType: string | undefined, activityName: string | undefined, status: string | undefined): BillableSpan => ({
    activityType,
    activityName,
    status,
  })

  it('uses the first meter that matches, in the order the card lists them', () => {
    expect(matchMeter(november, span('tool_invocation', 'search_web', 'Error'))?.name).toBe('failed_searches')
    expect(matchMeter(november, span('tool_invocation', 'search_web', 'Ok'))?.name).toBe('searches')
    expect(matchMeter(november, span('tool_invocation', 'fetch_page', 'Unset'))?.name).toBe('tool_calls')
  })

  it('counts Unset and a missing status as ok, and only Error as error', () => {
    expect(matchMeter(november, span('tool_invocation', 'search_web', 'Unset'))?.name).toBe('searches')
    expect(matchMeter(november, span('tool_invocation', 'search_web', undefined))?.name).toBe('searches')
    expect(isErrorStatus('Error')).toBe(true)
    expect(isErrorStatus('STATUS_CODE_ERROR')).toBe(true)
    expect(isErrorStatus('error')).toBe(true)
    expect(isErrorStatus('Ok')).toBe(false)
    expect(isErrorStatus('')).toBe(false)
  })

  it('lets a status "ok" meter skip failed spans, so failures are not billed', () => {
    expect(matchMeter(january, span('tool_invocation', 'fetch_page', 'Error'))).toBeUndefined()
  })

  it('bills any status on a status "any" meter', () => {
    expect(matchMeter(november, span('workflow_execution', 'nightly', 'Error'))?.name).toBe('any_workflow')
    expect(matchMeter(november, span('workflow_execution', 'nightly', 'Ok'))?.name).toBe('any_workflow')
  })

  it('matches no meter for a span without an activity type or of an unpriced type', () => {
    expect(matchMeter(november, span(undefined, 'search_web', 'Ok'))).toBeUndefined()
    expect(matchMeter(november, span('token_exchange', 'oauth', 'Ok'))).toBeUndefined()
  })

  it('treats a missing activity name as empty, which "*" matches', () => {
    expect(matchMeter(november, span('tool_invocation', undefined, 'Ok'))?.name).toBe('tool_calls')
  })

  it('prices events exactly', () => {
    const meter = matchMeter(november, span('tool_invocation', 'x', 'Ok'))
    if (!meter) throw new Error('expected a meter')
    expect(formatMoney(chargeFor(meter, 1_234_567))).toBe('2469.134')
  })

  it('prices a count under a tiered meter by its tiers, and writes no per-event price for SQL', () => {
    const { policy: tiered } = parsePolicy(`
rate_cards:
  - version: "1"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - { name: calls, activity_type: api_call, tiers: [{ up_to: 1000 }, { unit_price: "0.001" }] }
`)
    const card = tiered.rate_cards[0]
    if (!card) throw new Error('expected a card')
    expect(formatMoney(chargeFor(card.meters[0]!, '1500'))).toBe('0.50')
    expect(meterSqlParams(card).meter_prices).toEqual(['0.000000000'])
  })
})

describe('completeness of a billing period', () => {
  it('is complete at exactly the threshold, decided without float rounding', () => {
    expect(completenessStatus(100, 99, 0.99)).toBe('complete')
    expect(completenessStatus(1_000_000, 989_999, 0.99)).toBe('incomplete')
    // 0.29 * 100 is 28.999999999999996 in floats; the comparison must not care.
    expect(completenessStatus(100, 29, 0.29)).toBe('complete')
    expect(completenessStatus(100n, 28n, 0.29)).toBe('incomplete')
  })

  it('is complete when there were no spans at all', () => {
    expect(completenessStatus(0, 0, 0.99)).toBe('complete')
  })

  it('honours the extremes 0 and 1', () => {
    expect(completenessStatus(10, 0, 0)).toBe('complete')
    expect(completenessStatus(10, 9, 1)).toBe('incomplete')
    expect(completenessStatus(10, 10, 1)).toBe('complete')
  })
})

describe('the billable match in ClickHouse SQL', () => {
  const NAMES = ['search_web', 'search_', 'Search_web', 'fetch', '', "x'); DROP TABLE t; --", 'search_\n', 'search_😀', 'GET /v1/(x)a[y]', 'GET /v1/(x)[y]', 'GET /v1/xa[y]zz', '\\']
  const STATUSES = ['ok', 'error']
  const TYPES = ['tool_invocation', 'workflow_execution', 'api_call', 'token_exchange', "api_call' OR 1=1"]
  const rows = TYPES.flatMap((activity_type) => NAMES.flatMap((activity_name) => STATUSES.map((status) => ({ activity_type, activity_name, status }))))
  /** Runs `select` over every row (columns activity_type, activity_name, status) with `params` bound; one JSON line per output row. */
  const overRows = (select: string, params: Record<string, unknown>): string[] =>
    queryBind(
      `SELECT ${select} FROM (SELECT arrayJoin(arrayZip({row_types:Array(String)}, {row_names:Array(String)}, {row_statuses:Array(String)})) AS r, ` +
        `r.1 AS activity_type, r.2 AS activity_name, r.3 AS status)`,
      { ...params, row_types: rows.map((r) => r.activity_type), row_names: rows.map((r) => r.activity_name), row_statuses: rows.map((r) => r.status) },
      'JSONEachRow',
    )
      .trim()
      .split('\n')

  it('picks the same meter as matchMeter for every row, with the policy bound as parameters', () => {
    const fromClickHouse = overRows(`${meterIndexSql(november, 'm')} AS idx`, meterSqlParams(november, 'm')).map(
      (line) => november.meters[(JSON.parse(line) as { idx: number }).idx - 1]?.name ?? null,
    )
    const fromTypeScript = rows.map(
      (r) => matchMeter(november, { activityType: r.activity_type, activityName: r.activity_name, status: r.status })?.name ?? null,
    )
    expect(fromClickHouse).toEqual(fromTypeScript)
    expect(fromTypeScript.filter((name) => name !== null).length).toBeGreaterThan(10)
  })

  it('picks, class by class, the same meters as matchMeters for every row', () => {
    const { policy: agents } = parsePolicy(`
rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - { name: failed_searches, activity_type: tool_invocation, activity_name: "search_*", status: error, unit_price: "0" }
      - { name: search_time, activity_type: tool_invocation, activity_name: "search_*", aggregation: sum, value: duration_ms, unit_price: "0.0001" }
      - { name: tool_calls, activity_type: tool_invocation, status: any, unit_price: "0.002" }
      - { name: tool_time, activity_type: tool_invocation, aggregation: sum, value: duration_ms, unit_price: "0.00001" }
      - { name: active_tools, activity_type: tool_invocation, aggregation: active_identities, unit_price: "1" }
`)
    const card = agents.rate_cards[0]!
    const classes = [...new Set(meterClasses(card))]
    const fromClickHouse = overRows(`[${classes.map((k) => meterIndexSql(card, 'm', k)).join(', ')}] AS idx`, meterSqlParams(card, 'm')).map((line) =>
      (JSON.parse(line) as { idx: number[] }).idx
        .filter((i) => i > 0)
        .sort((a, b) => a - b)
        .map((i) => card.meters[i - 1]!.name),
    )
    const fromTypeScript = rows.map((r) => matchMeters(card, { activityType: r.activity_type, activityName: r.activity_name, status: r.status }).map((m) => m.name))
    expect(classes.length).toBe(3)
    expect(fromClickHouse).toEqual(fromTypeScript)
    expect(fromTypeScript.filter((names) => names.length > 1).length).toBeGreaterThan(5)
  })

  it('counts the same rows as an entitlement rule in TypeScript', () => {
    const rule = { activity_type: 'tool_invocation', activity_name: 'search_?*', status: 'any' as const }
    const [output] = overRows(`countIf(${activityRuleSql('ent')}) AS n`, activityRuleSqlParams(rule, 'ent'))
    const expected = rows.filter((r) => activityRuleMatches(rule, { activityType: r.activity_type, activityName: r.activity_name, status: r.status })).length
    expect(Number((JSON.parse(output!) as { n: string | number }).n)).toBe(expected)
    expect(expected).toBeGreaterThan(0)
  })

  it('hands prices over as fixed nine-decimal strings', () => {
    expect(meterSqlParams(november).meter_prices).toEqual(['0.000000000', '0.001000000', '0.002000000', '0.050000000', '0.000100000'])
  })

  it('refuses a parameter prefix that would change the SQL text', () => {
    expect(() => meterIndexSql(november, 'm:String}) OR 1=1 --')).toThrow(/parameter prefix/)
    expect(() => activityRuleSql('Rule')).toThrow(/parameter prefix/)
  })
})

describe('identifiedRatio', () => {
  it('rounds down to 6 decimals, so a ratio just under a threshold never reads as equal to it, and is 1 with no spans', () => {
    expect(identifiedRatio(0, 0)).toBe(1)
    expect(identifiedRatio(3, 2)).toBe(0.666666)
    expect(identifiedRatio(1_000_000_000, 999_999_999)).toBe(0.999999)
    expect(identifiedRatio(10, 10)).toBe(1)
  })
})
