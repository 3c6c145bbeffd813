import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toolCall } from '../src/activities.js'
import { fingerprintCredential } from '../src/fingerprint.js'
import { withIdentity } from '../src/identity.js'
import { apiKeyResolver, withRequestIdentity } from '../src/resolvers.js'
import { startTestTracing, testTracer, type TestTracing } from './helpers.js'

const IDENTITIES = 40
const REQUESTS = 600
const CONCURRENCY = 120

const keys = Array.from({ length: IDENTITIES }, (_, i) => `sk_test_concurrency_key_${String(i).padStart(4, '0')}`)
const identities = Object.fromEntries(keys.map((key, i) => [fingerprintCredential(key), { id: `agent-${i}`, type: 'ai_agent' as const }]))
const resolvers = [apiKeyResolver({ identities })]

const pause = () => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 4))

let tracing: TestTracing
let server: Server
let port: number

beforeAll(async () => {
  tracing = startTestTracing()
  server = createServer((req, res) => {
    const n = Number(req.headers['x-request-n'])
    testTracer().startActiveSpan('server', { attributes: { 'test.request': n } }, (serverSpan) =>
      withRequestIdentity(
        req,
        async () => {
          await pause()
          await toolCall('lookup', async (span) => {
            span.setAttribute('test.request', n)
            await pause()
            testTracer().startSpan('db', { attributes: { 'test.request': n } }).end()
          })
          await pause()
          res.end('ok')
          serverSpan.end()
        },
        { resolvers },
      ),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await tracing.stop()
})

function send(n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', path: '/', headers: { 'x-api-key': keys[n % IDENTITIES], 'x-request-n': String(n) } }, (res) => {
      res.resume()
      res.on('end', resolve)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('identity under concurrent load', () => {
  it('concurrent requests never swap identities, on any of their spans', async () => {
    let next = 0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) await send(next++)
      }),
    )
    const spans = tracing.spans()
    expect(spans).toHaveLength(REQUESTS * 3)
    const wrong = spans.filter((s) => s.attributes['nhi.id'] !== `agent-${Number(s.attributes['test.request']) % IDENTITIES}`)
    expect(wrong.map((s) => `${s.name} #${s.attributes['test.request']} as ${s.attributes['nhi.id']}`)).toEqual([])
  })

  it('interleaved withIdentity scopes never leak into each other', async () => {
    tracing.exporter.reset()
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        withIdentity({ id: `task-${i}` }, async () => {
          await pause()
          testTracer().startSpan('step', { attributes: { 'test.task': i } }).end()
          await pause()
          await withIdentity({ id: `task-${i}-sub` }, async () => {
            await pause()
            testTracer().startSpan('sub', { attributes: { 'test.task': i } }).end()
          })
          testTracer().startSpan('after', { attributes: { 'test.task': i } }).end()
        }),
      ),
    )
    const spans = tracing.spans()
    expect(spans).toHaveLength(3000)
    const expected = (name: string, i: number) => (name === 'sub' ? `task-${i}-sub` : `task-${i}`)
    expect(spans.filter((s) => s.attributes['nhi.id'] !== expected(s.name, Number(s.attributes['test.task'])))).toEqual([])
  })
})
