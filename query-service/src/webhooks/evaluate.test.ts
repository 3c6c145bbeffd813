import type { ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { declare, use } from '../test-support/findings.js'
import { TEST_POLICY } from '../test-support/policy.js'
import { insertSpans, spanRow } from '../test-support/spans.js'
import { freshStorage, testTempDir } from '../test-support/storage.js'
import { WebhookDelivery } from './deliver.js'
import { WebhookEvaluator } from './evaluate.js'
import { Outbox } from './outbox.js'
import type { SigningDestination } from './secrets.js'
import { startTestReceiver, type TestReceiver } from '../test-support/webhook-receiver.js'

const SECRET = 'whsec-evaluate-test'
const HOUR = 3_600_000
// Runs at 12:00:30: the latest settled hour (grace 120 s) is 10:00-11:00, the latest settled day 2026-11-19.
const NOW = Date.parse('2026-11-20T12:00:30Z')

let client: ClickHouseClient
let receiver: TestReceiver
let dir: string
let outbox: Outbox
let delivery: WebhookDelivery

interface Body {
  id: string
  type: string
  data: { finding_key?: string; finding?: { kind: string; nhi_id: string }; business_units?: string[] | null; period?: { granularity: string; from: string } }
}

function destination(name: string, options: Partial<SigningDestination> = {}): SigningDestination {
  return {
    name,
    url: receiver.url(`/${name}`),
    secret_env: 'UNUSED',
    secret: SECRET,
    events: ['finding.opened', 'finding.resolved', 'completeness.below_threshold'],
    min_severity: 'low',
    kinds: ['unregistered'],
    business_units: null,
    ...options,
  }
}

let destinations: SigningDestination[]
const evaluator = () => new WebhookEvaluator({ client, policy: () => TEST_POLICY, destinations, outbox, dir, intervalMs: 60_000, settleMs: 120_000 })
const bodies = (name: string) => receiver.received.filter((r) => r.path === `/${name}`).map((r) => JSON.parse(r.body) as Body)
const summary = (b: Body) => (b.data.finding ? `${b.type} ${b.data.finding.kind} ${b.data.finding.nhi_id}` : `${b.type} ${b.data.period?.granularity} ${b.data.period?.from} ${JSON.stringify(b.data.business_units)}`)

async function delivered(count: number): Promise<void> {
  await receiver.waitFor(count)
  while (outbox.pending().length > 0) await new Promise((resolve) => setTimeout(resolve, 5))
}

beforeAll(async () => {
  client = await freshStorage()
  receiver = await startTestReceiver()
  dir = testTempDir('nhi-meter-webhook-eval-')
  destinations = [
    destination('everything'),
    destination('payments', { business_units: ['payments'] }),
    destination('high-only', { min_severity: 'high', events: ['finding.opened', 'finding.resolved'] }),
    destination('statements-only', { events: ['statement.closed'] }),
  ]
  outbox = await Outbox.open({ dir })
  delivery = new WebhookDelivery(outbox, destinations, { initialBackoffMs: 1, maxBackoffMs: 5 })
  await delivery.start()
  await insertSpans(client, [
    // Two undeclared identities in two business units, active on the 19th and in the 10:00 hour of the 20th.
    use('pay-bot', '2026-11-19T09:00:00Z', { bu: 'payments' }),
    use('pay-bot', '2026-11-20T10:20:00Z', { bu: 'payments' }),
    use('ops-bot', '2026-11-19T09:30:00Z', { bu: 'ops' }),
    use('ops-bot', '2026-11-20T10:30:00Z', { bu: 'ops' }),
    // Spans of the ops unit in the 10:00 hour that name no identity: the hour is incomplete for ops (and overall).
    ...[0, 1, 2].map((i) => spanRow({ start: `2026-11-20T10:1${i}:00Z`, service: 'svc-main', attributes: { 'nhi.activity.type': 'api_call', 'nhi.business_unit': 'ops' } })),
  ])
}, 60_000)

afterAll(async () => {
  await delivery?.close()
  await outbox?.close()
  await receiver?.close()
  await client?.close()
})

describe('the webhook evaluator', () => {
  it('opens findings and reports an incomplete hour, each destination only what its business units, kinds and severity cover', async () => {
    const result = await evaluator().run(NOW)
    expect(result).toEqual({ queued: 4, refused: 0 })
    await delivered(4)
    expect(bodies('everything').map(summary).sort()).toEqual([
      'completeness.below_threshold hour 2026-11-20T10:00:00.000Z null',
      'finding.opened unregistered ops-bot',
      'finding.opened unregistered pay-bot',
    ])
    // Limited to payments: nothing about ops-bot, and the hour is complete as far as payments' spans go.
    expect(bodies('payments').map(summary)).toEqual(['finding.opened unregistered pay-bot'])
    expect(bodies('high-only')).toEqual([])
    expect(bodies('statements-only')).toEqual([])
    // The same finding has the same id for every destination that hears of it.
    const payOpened = (name: string) => bodies(name).find((b) => b.data.finding?.nhi_id === 'pay-bot')!.id
    expect(payOpened('payments')).toBe(payOpened('everything'))
  })

  it('sends nothing again while nothing changes, also after a restart of the evaluator', async () => {
    const before = receiver.received.length
    expect(await evaluator().run(NOW + 60_000)).toEqual({ queued: 0, refused: 0 })
    expect(await evaluator().run(NOW + 90_000)).toEqual({ queued: 0, refused: 0 })
    expect(receiver.received.length).toBe(before)
  })

  it('resolves a finding once it is no longer reported, to the destinations that were told of it', async () => {
    const before = receiver.received.length
    await declare(client, [{ id: 'pay-bot', business_unit: 'payments', updated_at: '2026-11-20T11:00:00.000Z' }])
    expect(await evaluator().run(NOW + 2 * 60_000)).toEqual({ queued: 2, refused: 0 })
    await delivered(before + 2)
    const resolved = (name: string) => bodies(name).filter((b) => b.type === 'finding.resolved')
    expect(resolved('everything').map(summary)).toEqual(['finding.resolved unregistered pay-bot'])
    expect(resolved('payments').map(summary)).toEqual(['finding.resolved unregistered pay-bot'])
    const opened = bodies('everything').find((b) => b.type === 'finding.opened' && b.data.finding?.nhi_id === 'pay-bot')!
    expect(resolved('everything')[0]!.data.finding_key).toBe(opened.data.finding_key)
    expect(resolved('everything')[0]!.id).not.toBe(opened.id)
  })

  it('judges the next settled hour when it settles, and catches up on hours missed', async () => {
    const before = receiver.received.length
    await insertSpans(client, [
      spanRow({ start: '2026-11-20T12:05:00Z', service: 'svc-main', attributes: { 'nhi.activity.type': 'api_call', 'nhi.business_unit': 'payments' } }),
      spanRow({ start: '2026-11-20T13:05:00Z', service: 'svc-main', attributes: { 'nhi.activity.type': 'api_call', 'nhi.business_unit': 'payments' } }),
    ])
    // 11:00 was judged (complete) by the run at 12:02. Three hours later 12:00 and 13:00 have settled, both incomplete for payments and overall.
    await evaluator().run(NOW + 3 * HOUR)
    const completeness = (name: string) =>
      bodies(name)
        .filter((b) => b.type === 'completeness.below_threshold')
        .map(summary)
    await delivered(before + 4)
    expect(completeness('everything')).toEqual([
      'completeness.below_threshold hour 2026-11-20T10:00:00.000Z null',
      'completeness.below_threshold hour 2026-11-20T12:00:00.000Z null',
      'completeness.below_threshold hour 2026-11-20T13:00:00.000Z null',
    ])
    expect(completeness('payments')).toEqual([
      'completeness.below_threshold hour 2026-11-20T12:00:00.000Z ["payments"]',
      'completeness.below_threshold hour 2026-11-20T13:00:00.000Z ["payments"]',
    ])
  })
})
