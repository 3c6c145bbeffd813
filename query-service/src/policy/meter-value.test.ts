import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { checkMeterValue, isQuantityAttribute, NON_QUANTITY_ATTRIBUTES, NUMERIC_NON_QUANTITY_ATTRIBUTES, IDENTIFIER_LIKE_ATTRIBUTE, SECRET_LIKE_ATTRIBUTE } from './meter-value.js'

const MIGRATION = readFileSync(new URL('../storage/migrations/0028_ledger_measures.sql', import.meta.url), 'utf8')

function problemOf(text: string): string {
  const result = checkMeterValue(text)
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`)
  return result.problem
}

describe('what a sum meter may add up', () => {
  it('accepts span durations and numeric attributes', () => {
    for (const value of ['duration_ms', 'gen_ai.usage.input_tokens', 'gen_ai.usage.output_tokens', 'http.request.body.size', 'app.rows_exported']) {
      expect(checkMeterValue(value)).toEqual({ ok: true, value })
    }
  })

  it('refuses every nhi.* attribute: they name identities, not amounts', () => {
    expect(problemOf('nhi.id')).toMatch(/^cannot sum "nhi.id": nhi\.\* attributes name identities/)
    expect(problemOf('nhi.some.future_count')).toMatch(/nhi\.\* attributes/)
  })

  it('points someone summing the model name at the model glob instead', () => {
    expect(problemOf('gen_ai.request.model')).toMatch(/string \(the model's name\).*activity_type: model_call and activity_name: "gpt-4o\*"/)
  })

  it.each(['gen_ai.operation.name', 'gen_ai.system', 'gen_ai.provider.name', 'gen_ai.agent.id', 'gen_ai.agent.name', 'gen_ai.tool.name', 'gen_ai.tool.call.id', 'http.route', 'http.request.method', 'url.full', 'url.path', 'server.address', 'service.name'])(
    'refuses the string attribute %s',
    (name) => {
      expect(problemOf(name)).toMatch(/conventions define it as a string, not a number/)
    },
  )

  it.each(['http.response.status_code', 'server.port', 'client.port', 'network.peer.port', 'url.port', 'code.lineno', 'code.line.number', 'thread.id', 'rpc.grpc.status_code'])(
    'refuses the number %s, which is not a quantity',
    (name) => {
      expect(problemOf(name)).toMatch(/is a number but not a quantity/)
    },
  )

  it('refuses names the ledger drops as secrets', () => {
    expect(problemOf('llm.api_key')).toMatch(/looks like a secret/)
    expect(problemOf('oauth.access_token')).toMatch(/looks like a secret/)
  })

  it('refuses names that are not dotted lowercase', () => {
    expect(problemOf('Gen_AI.Usage')).toMatch(/^must be duration_ms or a span attribute name in dotted lowercase/)
    expect(problemOf('tokens..input')).toMatch(/dotted lowercase/)
    expect(problemOf('a'.repeat(300)).length).toBeLessThan(300)
  })
})

describe('the ledger and the meters agree on what is a quantity', () => {
  it('drops from the ledger exactly the numbers the policy refuses to sum', () => {
    const denied = /k NOT IN \(([^)]*)\)/.exec(MIGRATION)?.[1]
    expect(denied).toBeDefined()
    const names = [...(denied ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1])
    expect(names.sort()).toEqual([...NUMERIC_NON_QUANTITY_ATTRIBUTES].sort())
  })

  it('drops secret-like names with the same pattern the policy uses', () => {
    const pattern = /NOT match\(lower\(k\), '([^']+)'\)/.exec(MIGRATION)?.[1]
    expect(pattern).toBe(SECRET_LIKE_ATTRIBUTE.source)
  })

  it('drops numeric identifiers and nhi.* attributes with the pattern the policy uses', () => {
    const pattern = /NOT match\(lower\(k\), '(\(\^\|\[\._\]\)\(id[^']*)'\)/.exec(MIGRATION)?.[1]
    expect(pattern).toBe(IDENTIFIER_LIKE_ATTRIBUTE.source)
    expect(MIGRATION).toContain("NOT startsWith(k, 'nhi.')")
    for (const name of ['user.id', 'jsonrpc.request.id', 'process.pid', 'nhi.id']) expect(isQuantityAttribute(name)).toBe(false)
  })

  it('lists every refused attribute once', () => {
    expect(new Set(NON_QUANTITY_ATTRIBUTES).size).toBe(NON_QUANTITY_ATTRIBUTES.length)
    expect(NON_QUANTITY_ATTRIBUTES.every((name) => !isQuantityAttribute(name))).toBe(true)
    expect(isQuantityAttribute('gen_ai.usage.input_tokens')).toBe(true)
  })
})
