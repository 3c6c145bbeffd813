import { context, trace } from '@opentelemetry/api'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { getIdentity, setIdentity, withIdentity } from '../src/identity.js'
import { withRequestIdentity, apiKeyResolver } from '../src/resolvers.js'
import { fingerprintCredential } from '../src/fingerprint.js'
import { startTestTracing, testTracer, type TestTracing } from './helpers.js'

let tracing: TestTracing
beforeEach(() => {
  tracing = startTestTracing()
})
afterEach(async () => {
  await tracing.stop()
})

const agent = { id: 'agent-billing', type: 'ai_agent', owner: 'team-fin', businessUnit: 'finance' } as const

describe('scoped identity (withIdentity)', () => {
  it('attributes every span started inside it, including nested and awaited ones', async () => {
    await withIdentity(agent, async () => {
      testTracer().startActiveSpan('outer', async (outer) => {
        await new Promise((r) => setTimeout(r, 5))
        testTracer().startSpan('inner').end()
        outer.end()
      })
      await new Promise((r) => setTimeout(r, 20))
    })
    for (const name of ['outer', 'inner']) {
      expect(tracing.span(name).attributes).toMatchObject({
        'nhi.id': 'agent-billing',
        'nhi.type': 'ai_agent',
        'nhi.owner': 'team-fin',
        'nhi.business_unit': 'finance',
      })
    }
  })

  it('leaves spans outside it without identity', () => {
    withIdentity(agent, () => testTracer().startSpan('inside').end())
    testTracer().startSpan('outside').end()
    expect(tracing.span('outside').attributes['nhi.id']).toBeUndefined()
  })

  it('lets the innermost scope win', () => {
    withIdentity(agent, () => withIdentity({ id: 'sub-agent' }, () => testTracer().startSpan('nested').end()))
    expect(tracing.span('nested').attributes['nhi.id']).toBe('sub-agent')
    expect(tracing.span('nested').attributes['nhi.owner']).toBeUndefined()
  })

  it('loses to an nhi.id the app set on the span, without mixing in the scope’s other fields', () => {
    withIdentity(agent, () => testTracer().startSpan('explicit', { attributes: { 'nhi.id': 'payments-svc' } }).end())
    const attributes = tracing.span('explicit').attributes
    expect(attributes['nhi.id']).toBe('payments-svc')
    expect(attributes['nhi.owner']).toBeUndefined()
  })

  it('is readable with getIdentity and settable on a context with setIdentity', () => {
    const ctx = setIdentity(context.active(), agent)
    expect(getIdentity(ctx)?.id).toBe('agent-billing')
    expect(getIdentity()).toBeUndefined()
    context.with(ctx, () => testTracer().startSpan('via-context').end())
    expect(tracing.span('via-context').attributes['nhi.id']).toBe('agent-billing')
  })

  it('records an unknown nhi.type as other', () => {
    withIdentity({ id: 'x', type: 'robot' }, () => testTracer().startSpan('odd-type').end())
    expect(tracing.span('odd-type').attributes['nhi.type']).toBe('other')
  })

  it('is ignored when it has no id', () => {
    withIdentity({ id: '' }, () => testTracer().startSpan('no-id').end())
    expect(tracing.span('no-id').attributes['nhi.id']).toBeUndefined()
  })

  it('fingerprints a raw credential passed as credentialId instead of recording it', () => {
    const raw = 'ghp_' + 'a1B2c3D4e5'.repeat(4)
    withIdentity({ id: 'ci-bot', credentialId: raw }, () => testTracer().startSpan('raw-cred').end())
    expect(tracing.span('raw-cred').attributes['nhi.credential.id']).toBe(fingerprintCredential(raw))
  })
})

describe('request identity (withRequestIdentity)', () => {
  const key = 'sk_live_' + 'Zx9'.repeat(8)
  const resolvers = [apiKeyResolver({ identities: { [fingerprintCredential(key)]: { id: 'partner-acme', owner: 'partners' } } })]

  it('attributes the active server span and every span inside the handler', () => {
    testTracer().startActiveSpan('GET /orders', (server) => {
      withRequestIdentity({ headers: { 'x-api-key': key } }, () => testTracer().startSpan('db query').end(), { resolvers })
      server.end()
    })
    for (const name of ['GET /orders', 'db query']) {
      expect(tracing.span(name).attributes).toMatchObject({ 'nhi.id': 'partner-acme', 'nhi.type': 'api_key', 'nhi.credential.id': fingerprintCredential(key) })
    }
  })

  it('loses to a scoped identity inside the handler', () => {
    withRequestIdentity({ headers: { 'x-api-key': key } }, () => withIdentity(agent, () => testTracer().startSpan('delegated').end()), { resolvers })
    expect(tracing.span('delegated').attributes['nhi.id']).toBe('agent-billing')
  })

  it('loses to a scoped identity around it too', () => {
    withIdentity(agent, () => withRequestIdentity({ headers: { 'x-api-key': key } }, () => testTracer().startSpan('outer-scope').end(), { resolvers }))
    expect(tracing.span('outer-scope').attributes['nhi.id']).toBe('agent-billing')
  })

  it('runs the handler unchanged and returns its value when no resolver knows the caller', () => {
    const result = withRequestIdentity({ headers: { 'x-api-key': 'unknown' } }, () => {
      testTracer().startSpan('anonymous').end()
      return 42
    }, { resolvers })
    expect(result).toBe(42)
    expect(tracing.span('anonymous').attributes['nhi.id']).toBeUndefined()
  })

  it('does not overwrite a server span that already carries an identity', () => {
    testTracer().startActiveSpan('pinned', { attributes: { 'nhi.id': 'gateway' } }, (server) => {
      withRequestIdentity({ headers: { 'x-api-key': key } }, () => {}, { resolvers })
      server.end()
    })
    expect(tracing.span('pinned').attributes['nhi.id']).toBe('gateway')
    expect(trace.getActiveSpan()).toBeUndefined()
  })
})
