import { context, trace } from '@opentelemetry/api'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadAutoInstrumentations, reportAutoInstrumentations } from '../src/auto-instrumentations.js'
import { fingerprintCredential } from '../src/fingerprint.js'
import { nhiHttpRequestHook } from '../src/http-request-hook.js'
import { apiKeyResolver } from '../src/resolvers.js'
import { captureDiag, startTestTracing, testTracer, type CapturedDiag, type TestTracing } from './helpers.js'

let diag: CapturedDiag
beforeEach(() => {
  diag = captureDiag()
})
afterEach(() => diag.stop())

describe('optional auto-instrumentations', () => {
  it('are reported absent when the package is not installed (as in this repository), and nothing breaks', async () => {
    const result = await loadAutoInstrumentations()
    expect(result).toEqual({ instrumentations: [], status: 'absent' })
    reportAutoInstrumentations(result)
    expect(diag.infos.join('\n')).toContain('@opentelemetry/auto-instrumentations-node is not installed')
  })

  it('when installed, are created with the identity request hook for HTTP servers and the ESM hook registered', async () => {
    const configs: Array<Record<string, { requestHook?: unknown }>> = []
    let esmHooks = 0
    const fakeInstrumentation = { instrumentationName: 'fake' }
    const result = await loadAutoInstrumentations({
      importModule: async (name) => {
        expect(name).toBe('@opentelemetry/auto-instrumentations-node')
        return {
          getNodeAutoInstrumentations: (config: Record<string, { requestHook?: unknown }>) => {
            configs.push(config)
            return [fakeInstrumentation]
          },
        }
      },
      registerEsmHook: () => void esmHooks++,
    })
    expect(result.status).toBe('loaded')
    expect(result.instrumentations).toEqual([[fakeInstrumentation]])
    expect(typeof configs[0]?.['@opentelemetry/instrumentation-http']?.requestHook).toBe('function')
    expect(esmHooks).toBe(1)
  })

  it('that fail to load are reported through diag as errors, and the start goes on without them', async () => {
    const result = await loadAutoInstrumentations({
      importModule: async () => {
        throw new SyntaxError('broken package')
      },
    })
    expect(result.status).toBe('failed')
    expect(result.instrumentations).toEqual([])
    reportAutoInstrumentations(result)
    expect(diag.errors.join('\n')).toContain('broken package')
  })
})

describe('HTTP server request hook', () => {
  let tracing: TestTracing
  beforeEach(() => {
    tracing = startTestTracing()
  })
  afterEach(() => tracing.stop())

  const key = 'sk_live_' + 'H00k'.repeat(6)
  const hook = nhiHttpRequestHook([apiKeyResolver({ identities: { [fingerprintCredential(key)]: { id: 'hooked-partner' } } })])

  it('stamps the server span and every span started under it, down the tree', () => {
    const server = testTracer().startSpan('GET /items')
    hook(server, { headers: { 'x-api-key': key } })
    const underServer = trace.setSpan(context.active(), server)
    const child = testTracer().startSpan('handler', {}, underServer)
    testTracer().startSpan('db', {}, trace.setSpan(underServer, child)).end()
    child.end()
    server.end()
    for (const name of ['GET /items', 'handler', 'db']) expect(tracing.span(name).attributes['nhi.id']).toBe('hooked-partner')
  })

  it('leaves outgoing client requests alone', () => {
    const client = testTracer().startSpan('GET upstream')
    hook(client, { headers: { 'x-api-key': key }, getHeader: () => undefined })
    client.end()
    expect(tracing.span('GET upstream').attributes['nhi.id']).toBeUndefined()
  })

  it('never throws, whatever it is handed', () => {
    const span = testTracer().startSpan('odd')
    expect(() => hook(span, null)).not.toThrow()
    expect(() => hook(span, { get headers(): never { throw new Error('nope') } })).not.toThrow()
    span.end()
  })
})
