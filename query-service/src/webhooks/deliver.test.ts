import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebhookDelivery, backoffMs, type DeliveryOptions } from './deliver.js'
import { Outbox, type NewDelivery, type OutboxEntry } from './outbox.js'
import type { SigningDestination } from './secrets.js'
import { signatureHeader } from './signature.js'
import { startTestReceiver, type TestReceiver } from '../test-support/webhook-receiver.js'
import { testTempDir } from '../test-support/storage.js'

const SECRET = 'whsec-test-0123456789'
// Quick retries: the behaviour is the same as with the defaults, only the waits are short.
const FAST: DeliveryOptions = { initialBackoffMs: 1, maxBackoffMs: 5, timeoutMs: 2_000 }

let receiver: TestReceiver
let dir: string
const open: Array<{ close(): Promise<void> }> = []

beforeEach(async () => {
  receiver = await startTestReceiver()
  dir = testTempDir('nhi-meter-webhooks-')
})

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
  await receiver.close()
})

function destination(name: string, path = `/${name}`): SigningDestination {
  return { name, url: receiver.url(path), secret_env: 'UNUSED', secret: SECRET, events: ['statement.closed'], min_severity: 'low', kinds: [], business_units: null }
}

function event(destinationName: string, n: number): NewDelivery {
  const id = `evt_${destinationName}_${n}`
  return { destination: destinationName, id, type: 'statement.closed', body: JSON.stringify({ id, type: 'statement.closed', created_at: '2026-12-01T00:00:00.000Z', data: { n } }) }
}

async function started(destinations: SigningDestination[], options: DeliveryOptions = FAST): Promise<{ outbox: Outbox; delivery: WebhookDelivery }> {
  const outbox = await Outbox.open({ dir })
  const delivery = new WebhookDelivery(outbox, destinations, options)
  open.push(outbox, delivery)
  await delivery.start()
  return { outbox, delivery }
}

async function drained(outbox: Outbox): Promise<void> {
  while (outbox.pending().length > 0) await new Promise((resolve) => setTimeout(resolve, 5))
}

const ids = (path?: string) => receiver.received.filter((r) => path === undefined || r.path === path).map((r) => JSON.parse(r.body) as { id: string }).map((b) => b.id)

// The verification recipe exactly as the README gives it.
async function readmeVerifier(): Promise<(secret: string, header: string, body: string, toleranceSeconds?: number, nowSeconds?: number) => boolean> {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const snippet = /<!-- webhook-verify:start -->\n```js\n([\s\S]*?)```\n<!-- webhook-verify:end -->/.exec(readme)?.[1]
  if (!snippet) throw new Error('README has no webhook verification snippet between its markers')
  const file = join(dir, 'verify.mjs')
  writeFileSync(file, snippet)
  return ((await import(file)) as { verifyNhiMeterSignature: Awaited<ReturnType<typeof readmeVerifier>> }).verifyNhiMeterSignature
}

describe('webhook delivery', () => {
  it('POSTs the JSON body with a signature that the README recipe verifies, and nothing secret', async () => {
    const { outbox } = await started([destination('secops')])
    await outbox.add([event('secops', 1)])
    await receiver.waitFor(1)
    await drained(outbox)
    const [got] = receiver.received
    expect(got!.headers['content-type']).toBe('application/json')
    expect(got!.headers['x-nhi-meter-event-id']).toBe('evt_secops_1')
    expect(got!.headers['x-nhi-meter-event-type']).toBe('statement.closed')
    const header = String(got!.headers['x-nhi-meter-signature'])
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
    expect(JSON.parse(got!.body)).toMatchObject({ id: 'evt_secops_1', type: 'statement.closed' })

    const verify = await readmeVerifier()
    expect(verify(SECRET, header, got!.body)).toBe(true)
    expect(verify('another-secret', header, got!.body)).toBe(false)
    expect(verify(SECRET, header, got!.body.replace('"n":1', '"n":2'))).toBe(false)
    // A signature replayed long after its timestamp is refused.
    const t = Number(/t=(\d+)/.exec(header)![1])
    expect(verify(SECRET, header, got!.body, 300, t + 301)).toBe(false)
    expect(verify(SECRET, signatureHeader(SECRET, t, got!.body), got!.body, 300, t)).toBe(true)

    const everything = JSON.stringify(receiver.received) + readFileSync(join(dir, 'outbox.log'), 'utf8')
    expect(everything).not.toContain(SECRET)
  })

  it('tries again after 500s until the receiver takes it, with the same id and body', async () => {
    let failures = 2
    receiver.answer = () => (failures-- > 0 ? 500 : 200)
    const { outbox } = await started([destination('secops')])
    await outbox.add([event('secops', 1)])
    await receiver.waitFor(3)
    await drained(outbox)
    expect(ids()).toEqual(['evt_secops_1', 'evt_secops_1', 'evt_secops_1'])
    expect(receiver.received.map((r) => r.headers['x-nhi-meter-delivery-attempt'])).toEqual(['1', '2', '3'])
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1)
  })

  it('tries again when an attempt gets no answer within the timeout', async () => {
    let first = true
    receiver.answer = () => (first ? ((first = false), 'hang') : 200)
    const { outbox } = await started([destination('secops')], { ...FAST, timeoutMs: 200 })
    await outbox.add([event('secops', 1)])
    await receiver.waitFor(2)
    await drained(outbox)
    expect(ids()).toEqual(['evt_secops_1', 'evt_secops_1'])
  })

  it('delivers to each destination in order: a later event waits until the earlier one is taken, other destinations do not wait', async () => {
    let failuresOfFirst = 3
    receiver.answer = (r) => (r.path === '/slow' && (JSON.parse(r.body) as { id: string }).id === 'evt_slow_1' && failuresOfFirst-- > 0 ? 500 : 200)
    const { outbox } = await started([destination('slow'), destination('fast')])
    await outbox.add([event('slow', 1), event('fast', 1), event('slow', 2), event('fast', 2), event('slow', 3)])
    await outbox.add([event('slow', 4), event('fast', 3)])
    await receiver.waitFor(4 + 3 + 3)
    await drained(outbox)
    expect(ids('/slow')).toEqual(['evt_slow_1', 'evt_slow_1', 'evt_slow_1', 'evt_slow_1', 'evt_slow_2', 'evt_slow_3', 'evt_slow_4'])
    expect(ids('/fast')).toEqual(['evt_fast_1', 'evt_fast_2', 'evt_fast_3'])
  })

  it('delivers what was pending after a restart, in order, and keeps counting the retry time from the first attempt', async () => {
    receiver.answer = () => 500
    let clock = Date.parse('2026-12-01T00:00:00Z')
    const first = await started([destination('secops')], { ...FAST, now: () => clock })
    await first.outbox.add([event('secops', 1), event('secops', 2)])
    await receiver.waitFor(2)
    await first.delivery.close()
    await first.outbox.close()
    const attempted = receiver.received.length

    receiver.answer = () => 200
    clock += 60_000
    const second = await started([destination('secops')], { ...FAST, now: () => clock })
    await receiver.waitFor(attempted + 2)
    await drained(second.outbox)
    expect(ids().slice(attempted)).toEqual(['evt_secops_1', 'evt_secops_2'])
    expect(second.outbox.pending()).toEqual([])
  })

  it('remembers the first attempt across a restart', async () => {
    receiver.answer = () => 500
    const at = Date.parse('2026-12-01T00:00:00Z')
    const first = await started([destination('secops')], { ...FAST, now: () => at })
    await first.outbox.add([event('secops', 1)])
    await receiver.waitFor(1)
    await first.delivery.close()
    await first.outbox.close()
    const reopened = await Outbox.open({ dir })
    open.push(reopened)
    expect(reopened.pending().map((e: OutboxEntry) => [e.id, e.firstAttemptMs])).toEqual([['evt_secops_1', at]])
  })

  it('gives a delivery up once the retry time has passed since its first attempt, and goes on with the next', async () => {
    let clock = Date.parse('2026-12-01T00:00:00Z')
    // Each attempt at the first event fails and an hour passes; the retry time is two hours.
    receiver.answer = (r) => ((JSON.parse(r.body) as { id: string }).id === 'evt_secops_1' ? ((clock += 3_600_000), 500) : 200)
    const givenUp: string[] = []
    const { outbox } = await started([destination('secops')], { ...FAST, maxRetryMs: 2 * 3_600_000, now: () => clock, onGiveUp: (entry) => givenUp.push(entry.id) })
    await outbox.add([event('secops', 1), event('secops', 2)])
    await receiver.waitFor(3)
    await drained(outbox)
    expect(ids()).toEqual(['evt_secops_1', 'evt_secops_1', 'evt_secops_2'])
    expect(givenUp).toEqual(['evt_secops_1'])
  })

  it('drops at start what is queued for a destination no longer in the policy', async () => {
    const before = await Outbox.open({ dir })
    await before.add([event('gone', 1)])
    await before.close()
    const dropped: string[] = []
    const { outbox } = await started([destination('secops')], { ...FAST, onGiveUp: (entry) => dropped.push(entry.id) })
    expect(dropped).toEqual(['evt_gone_1'])
    expect(outbox.pending()).toEqual([])
  })
})

describe('backoff', () => {
  it('doubles from the initial wait up to the cap, scaled by a jitter between half and all of it', () => {
    const options = { initialBackoffMs: 1_000, maxBackoffMs: 600_000 }
    expect([1, 2, 3, 4, 10, 11, 50].map((n) => backoffMs(n, options, 0.999999))).toEqual([1_000, 2_000, 4_000, 8_000, 512_000, 600_000, 600_000])
    expect(backoffMs(3, options, 0)).toBe(2_000)
  })
})
