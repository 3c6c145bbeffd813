/**
 * Webhooks as a user runs them (`npm start`, README "Webhooks"): bad
 * destinations stop start-up naming the key; a closed month is delivered,
 * signed, to a loopback receiver; a delivery pending when the process is
 * killed is delivered after the next start.
 */
import { createHmac } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestReceiver, type TestReceiver } from '../query-service/src/test-support/webhook-receiver.js'
import { REPO_ROOT, startService, tempDataDir } from './helpers/service.js'

const SECRET = 'whsec-e2e-0123456789abcdef'
let receiver: TestReceiver

function policyWith(webhooks: string): string {
  const file = join(tempDataDir('nhi-meter-policy-'), 'policy.yaml')
  writeFileSync(file, `${readFileSync(join(REPO_ROOT, 'query-service/policy/default-policy.yaml'), 'utf8')}\nwebhooks:\n${webhooks}`)
  return file
}

beforeAll(async () => {
  receiver = await startTestReceiver()
})

afterAll(async () => {
  await receiver.close()
})

describe('webhooks in a running service', () => {
  it('refuses to start on a bad destination, naming the key', async () => {
    const unset = startService({ env: { NHI_METER_POLICY: policyWith(`  - { name: secops, url: "${receiver.url()}", secret_env: NHI_METER_TEST_UNSET_SECRET, events: [statement.closed] }\n`) } })
    await expect(unset).rejects.toThrow(/webhooks\[0\]\.secret_env: names "NHI_METER_TEST_UNSET_SECRET", which is not set in the environment/)
    const ftp = startService({ env: { NHI_METER_POLICY: policyWith('  - { name: secops, url: "ftp://example.com/x", secret_env: HOOK, events: [statement.closed] }\n'), HOOK: SECRET } })
    await expect(ftp).rejects.toThrow(/webhooks\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/)
    const event = startService({ env: { NHI_METER_POLICY: policyWith(`  - { name: secops, url: "${receiver.url()}", secret_env: HOOK, events: [finding.created] }\n`), HOOK: SECRET } })
    await expect(event).rejects.toThrow(/webhooks\[0\]\.events\[0\]: unknown event "finding\.created"/)
  }, 120_000)

  it('delivers statement.closed signed, and after a kill and restart delivers what was still pending', async () => {
    receiver.answer = () => 500
    const env = {
      NHI_METER_POLICY: policyWith(`  - { name: finance, url: "${receiver.url('/finance')}", secret_env: NHI_METER_WEBHOOK_FINANCE, events: [statement.closed] }\n`),
      NHI_METER_WEBHOOK_FINANCE: SECRET,
    }
    let service = await startService({ env, timeoutMs: 60_000 })
    const key = service.adminKey!
    const closed = await fetch(`${service.apiUrl}/v1/statements`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ period: '2026-10' }),
    })
    expect(closed.status).toBe(201)
    const statement = (await closed.json()) as { content_hash: string }
    await receiver.waitFor(1)
    // Killed while the receiver still fails: the delivery is pending in the outbox.
    await service.kill()
    const failed = receiver.received.length

    receiver.answer = () => 200
    service = await startService({ env, dataDir: service.dataDir, timeoutMs: 60_000 })
    try {
      await receiver.waitFor(failed + 1)
      const delivered = receiver.received.at(-1)!
      const body = JSON.parse(delivered.body) as { id: string; type: string; data: { period: string; content_hash: string } }
      expect(body).toMatchObject({ type: 'statement.closed', data: { period: '2026-10', content_hash: statement.content_hash } })
      expect(receiver.received.every((r) => JSON.parse(r.body).id === body.id)).toBe(true)
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(delivered.headers['x-nhi-meter-signature']))!
      expect(createHmac('sha256', SECRET).update(`${t}.${delivered.body}`).digest('hex')).toBe(v1)
      expect(service.output()).not.toContain(SECRET)
      expect(service.output()).not.toContain(receiver.url('/finance'))
    } finally {
      await service.stop()
    }
  }, 180_000)
})
