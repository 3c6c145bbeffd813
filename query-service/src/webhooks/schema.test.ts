import { describe, expect, it } from 'vitest'
import { parsePolicy, PolicyError } from '../policy/index.js'
import { withSecrets } from './secrets.js'

const CARD = `rate_cards:
  - version: "2026-11"
    effective_from: "2026-11-01T00:00:00Z"
    currency: USD
    meters:
      - { name: tool_calls, activity_type: tool_invocation, unit_price: "0.002" }
`

function problems(webhooks: string): string[] {
  try {
    parsePolicy(`${CARD}webhooks:\n${webhooks}`, { source: 'policy.yaml', format: 'yaml' })
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map((i) => `${i.path}: ${i.message}`)
    throw error
  }
  return []
}

describe('the webhooks section of the policy', () => {
  it('fills in min_severity low, every kind and every business unit when a destination leaves them out', () => {
    const { policy } = parsePolicy(`${CARD}webhooks:\n  - { name: secops, url: "https://hooks.example.com/nhi", secret_env: NHI_METER_WEBHOOK_SECOPS, events: [finding.opened] }\n`, { format: 'yaml' })
    expect(policy.webhooks).toEqual([
      expect.objectContaining({ name: 'secops', url: 'https://hooks.example.com/nhi', secret_env: 'NHI_METER_WEBHOOK_SECOPS', events: ['finding.opened'], min_severity: 'low', business_units: null }),
    ])
    expect(policy.webhooks[0]!.kinds).toContain('telemetry_gap')
  })

  it('has no destinations when the section is absent or empty', () => {
    expect(parsePolicy(CARD, { format: 'yaml' }).policy.webhooks).toEqual([])
    expect(parsePolicy(`${CARD}webhooks:\n`, { format: 'yaml' }).policy.webhooks).toEqual([])
  })

  it('refuses a URL that is not http(s), naming the key', () => {
    expect(problems('  - { name: a, url: "ftp://hooks.example.com/x", secret_env: S, events: [statement.closed] }\n')).toEqual([
      'webhooks[0].url: must be an http:// or https:// URL, got the scheme "ftp"',
    ])
    expect(problems('  - { name: a, url: "not a url", secret_env: S, events: [statement.closed] }\n')).toEqual(['webhooks[0].url: must be an http:// or https:// URL, got "not a url"'])
  })

  it('refuses an unknown event name, kind or severity, naming the key and suggesting the near one', () => {
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [finding.opened, finding.closed] }\n')).toEqual([
      'webhooks[0].events[1]: unknown event "finding.closed"; expected one of finding.opened, finding.resolved, completeness.below_threshold, statement.closed',
    ])
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [finding.opend] }\n')[0]).toContain('did you mean "finding.opened"?')
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [finding.opened], kinds: [dormant, dormnat, hacking] }\n')).toEqual([
      expect.stringMatching(/^webhooks\[0\]\.kinds\[1\]: unknown finding kind "dormnat"; did you mean "dormant"\?/),
      expect.stringMatching(/^webhooks\[0\]\.kinds\[2\]: unknown finding kind "hacking"; expected one of dormant, /),
    ])
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [finding.opened], min_severity: critical }\n')).toEqual([
      'webhooks[0].min_severity: unknown severity "critical"; expected one of high, medium, low',
    ])
  })

  it('refuses unknown keys, duplicate names, empty lists and a secret written into the policy', () => {
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [statement.closed], secret: hunter2 }\n')).toEqual(['webhooks[0].secret: unknown key; expected one of name, url, secret_env, events, min_severity, kinds, business_units'])
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [statement.closed] }\n  - { name: a, url: "https://h.example/y", secret_env: S, events: [statement.closed] }\n')).toEqual([
      'webhooks[1].name: "a" is already the name of webhooks[0]; names must be unique',
    ])
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: S, events: [] }\n')[0]).toMatch(/^webhooks\[0\]\.events: must list at least one/)
    expect(problems('  - { name: a, url: "https://h.example/x", secret_env: "s3cr3t value", events: [statement.closed] }\n')[0]).toMatch(/^webhooks\[0\]\.secret_env: must be the name of an environment variable/)
    expect(problems('  - { name: a, url: "https://user:pw@h.example/x", secret_env: S, events: [statement.closed] }\n')[0]).toMatch(/^webhooks\[0\]\.url: must not carry a user name or password/)
  })

  it('stops start-up when the secret_env variable is unset or empty, naming the key and not the value', () => {
    const { policy } = parsePolicy(
      `${CARD}webhooks:\n  - { name: a, url: "https://h.example/x", secret_env: HOOK_A, events: [statement.closed] }\n  - { name: b, url: "https://h.example/y", secret_env: HOOK_B, events: [statement.closed] }\n`,
      { format: 'yaml' },
    )
    expect(() => withSecrets(policy.webhooks, { HOOK_A: 'sekret-a' }, 'policy.yaml')).toThrow(/webhooks\[1\]\.secret_env: names "HOOK_B", which is not set in the environment/)
    expect(() => withSecrets(policy.webhooks, { HOOK_A: 'sekret-a', HOOK_B: '' }, 'policy.yaml')).toThrow(/webhooks\[1\]\.secret_env: names "HOOK_B", which is empty/)
    const signing = withSecrets(policy.webhooks, { HOOK_A: 'sekret-a', HOOK_B: 'sekret-b' }, 'policy.yaml')
    expect(signing.map((d) => d.secret)).toEqual(['sekret-a', 'sekret-b'])
    try {
      withSecrets(policy.webhooks, { HOOK_A: 'sekret-a' }, 'policy.yaml')
    } catch (error) {
      expect(String(error)).not.toContain('sekret-a')
    }
  })
})
