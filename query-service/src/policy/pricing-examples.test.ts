import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { formatMoney } from '../money/decimal.js'
import { rateGroup } from '../money/pricing.js'
import { formatQuantity, parseQuantity } from '../money/quantity.js'
import { parsePolicy } from './load.js'
import type { Meter } from './schema.js'

// POLICY.md, "Worked examples": YAML blocks headed `# worked example: <name>`,
// and a table of `| <name> | usage per identity | billable | amount | why |`.
const doc = readFileSync(new URL('./POLICY.md', import.meta.url), 'utf8')

const blocks = new Map(
  [...doc.matchAll(/```yaml\n# worked example: ([a-z0-9_]+)\n([\s\S]*?)```/g)].map((m) => [m[1] as string, m[2] as string]),
)
const rows = [...doc.matchAll(/^\| ([a-z0-9_]+) \| ([0-9., ]+) \| ([0-9.]+) \| ([0-9.]+) \| (.+) \|$/gm)].map((m) => ({
  example: m[1] as string,
  usage: (m[2] as string).split(',').map((x) => x.trim()),
  billable: m[3] as string,
  amount: m[4] as string,
}))

function meterOf(block: string): Meter {
  const indented = block
    .trimEnd()
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n')
  const text = `rate_cards:\n  - version: "1"\n    effective_from: "2026-11-01T00:00:00Z"\n    currency: USD\n    meters:\n${indented}\n`
  const meter = parsePolicy(text).policy.rate_cards[0]?.meters[0]
  if (!meter) throw new Error('expected a meter')
  return meter
}

describe('the worked examples in POLICY.md', () => {
  it('are all there, each with at least one figure, and every figure names an example', () => {
    expect(blocks.size).toBeGreaterThanOrEqual(8)
    expect(rows.length).toBeGreaterThanOrEqual(blocks.size)
    for (const name of blocks.keys()) expect(rows.some((r) => r.example === name), name).toBe(true)
    for (const row of rows) expect(blocks.has(row.example), row.example).toBe(true)
  })

  it('cover every price model, both allowances, a minimum, active identities and a token sum per model glob', () => {
    const meters = [...blocks.values()].map(meterOf)
    expect(new Set(meters.map((m) => m.price.model.kind))).toEqual(new Set(['unit', 'graduated', 'volume', 'package']))
    expect(new Set(meters.map((m) => m.price.included?.per))).toEqual(new Set([undefined, 'identity', 'business_unit']))
    expect(meters.some((m) => m.price.minimumCharge > 0n)).toBe(true)
    expect(meters.some((m) => m.aggregation === 'active_identities')).toBe(true)
    expect(meters.some((m) => m.aggregation === 'sum' && m.value === 'gen_ai.usage.input_tokens' && m.activity_name === 'gpt-4o*')).toBe(true)
  })

  it.each(rows.map((r) => [r.example, r.usage.join(', '), r] as const))('%s with usage %s comes to the amount the doc states', (name, _, row) => {
    const meter = meterOf(blocks.get(name) ?? '')
    const rated = rateGroup(meter.price, row.usage.map(parseQuantity))
    expect({ billable: formatQuantity(rated.billable), amount: formatMoney(rated.amount) }).toEqual({ billable: row.billable, amount: row.amount })
  })
})
