import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { formatMoney } from '../money/decimal.js'
import { DEFAULT_POLICY_PATH, loadDefaultPolicy } from './load.js'
import { cardInForce, matchMeter } from './rate-card.js'
import { BILLING_DEFAULTS, DETECTION_DEFAULTS, IDENTITY_DEFAULTS, POLICY_KEYS } from './schema.js'

const POLICY_DOC = new URL('./POLICY.md', import.meta.url)

describe('the shipped default policy', () => {
  it('loads without errors or warnings', async () => {
    const { policy, warnings } = await loadDefaultPolicy()
    expect(warnings).toEqual([])
    expect(policy.rate_cards.length).toBeGreaterThan(0)
  })

  it('prices every named activity type', async () => {
    const { policy } = await loadDefaultPolicy()
    const card = cardInForce(policy.rate_cards, Date.parse('2027-01-01T00:00:00Z'))
    if (!card) throw new Error('expected a card in force')
    const prices = ['tool_invocation', 'workflow_execution', 'api_call', 'token_exchange', 'secret_rotation'].map((activityType) => {
      const meter = matchMeter(card, { activityType, activityName: 'anything', status: 'Unset' })
      return [activityType, meter?.unit_price != null ? formatMoney(meter.unit_price) : null]
    })
    expect(prices.every(([, price]) => price !== null)).toBe(true)
  })

  it('grants high_capacity_processing and premium_automation by observed use', async () => {
    const { policy } = await loadDefaultPolicy()
    const byFeature = Object.fromEntries(policy.entitlements.map((e) => [e.feature, e]))
    expect(byFeature.high_capacity_processing).toMatchObject({ activity_type: 'workflow_execution', status: 'ok', min_count: 100, window: { text: '7d' } })
    expect(byFeature.premium_automation).toMatchObject({ activity_type: 'secret_rotation', status: 'ok', min_count: 1, window: { text: '30d' } })
  })

  it('writes out every detection and billing key with exactly its default', () => {
    const raw = parse(readFileSync(DEFAULT_POLICY_PATH, 'utf8')) as { detection: unknown; billing: unknown; identity: unknown }
    expect(raw.detection).toEqual(DETECTION_DEFAULTS)
    expect(raw.billing).toEqual(BILLING_DEFAULTS)
    expect(raw.identity).toEqual(IDENTITY_DEFAULTS)
  })
})

describe('POLICY.md', () => {
  const doc = readFileSync(POLICY_DOC, 'utf8')
  // Table rows: | `key` | type | default | example | meaning |
  const rows = new Map(
    [...doc.matchAll(/^\| `([a-z_.[\]]+)` \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$/gm)].map((m) => [m[1] as string, { type: m[2], fallback: m[3] }]),
  )
  const documentedKeys = Object.entries(POLICY_KEYS).flatMap(([parent, keys]) =>
    keys.map((key) => (parent === '' ? key : `${parent}.${key}`)),
  )

  it('has a row for every key the loader accepts, and none for keys it does not', () => {
    // The billing, detection and identity sections are described in prose; their keys each have a row.
    const expected = documentedKeys.filter((key) => key !== 'billing' && key !== 'detection' && key !== 'identity')
    expect([...rows.keys()].sort()).toEqual(expected.sort())
  })

  it('states the default of every detection key as the loader applies it', () => {
    for (const [key, value] of Object.entries(DETECTION_DEFAULTS)) {
      expect(rows.get(`detection.${key}`)?.fallback, key).toBe(`\`${Array.isArray(value) ? `[${value.join(', ')}]` : String(value)}\``)
    }
    expect(rows.get('billing.completeness_threshold')?.fallback).toBe(`\`${BILLING_DEFAULTS.completeness_threshold}\``)
  })
})
