import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { activity, apiCall, secretRotation, tokenExchange, toolCall, workflowRun } from '../src/activities.js'
import { fingerprintCredential } from '../src/fingerprint.js'
import { withIdentity } from '../src/identity.js'
import { startTestTracing, testTracer, type TestTracing } from './helpers.js'

let tracing: TestTracing
beforeAll(() => {
  tracing = startTestTracing()
})
afterAll(async () => {
  await tracing.stop()
})
beforeEach(() => tracing.exporter.reset())

describe('activity helpers', () => {
  it('a tool call carries the NHI activity and the GenAI execute_tool conventions', async () => {
    const result = await toolCall('search_tickets', async () => 'found 3')
    expect(result).toBe('found 3')
    const span = tracing.span('execute_tool search_tickets')
    expect(span.attributes).toMatchObject({
      'nhi.activity.type': 'tool_invocation',
      'nhi.activity.name': 'search_tickets',
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'search_tickets',
    })
    expect(span.status.code).toBe(SpanStatusCode.OK)
  })

  it('each helper records its activity type and name', () => {
    workflowRun('nightly-reconcile', () => {})
    tokenExchange('sts:assume-role', () => {})
    secretRotation('db-password', () => {})
    apiCall('GET /v1/invoices', () => {})
    activity('report_export', 'q3', () => {})
    const types = Object.fromEntries(tracing.spans().map((s) => [s.attributes['nhi.activity.name'], s.attributes['nhi.activity.type']]))
    expect(types).toEqual({
      'nightly-reconcile': 'workflow_execution',
      'sts:assume-role': 'token_exchange',
      'db-password': 'secret_rotation',
      'GET /v1/invoices': 'api_call',
      q3: 'report_export',
    })
    expect(tracing.span('api_call GET /v1/invoices').kind).toBe(SpanKind.CLIENT)
  })

  it('a synchronous failure marks the span ERROR, records the exception and rethrows it unchanged', () => {
    const failure = new Error('tool crashed')
    expect(() => toolCall('flaky', () => { throw failure })).toThrow(failure)
    const span = tracing.span('execute_tool flaky')
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'tool crashed' })
    expect(span.events.map((e) => e.name)).toContain('exception')
  })

  it('a rejected promise marks the span ERROR and rejects with the same error', async () => {
    await expect(workflowRun('etl', async () => { throw new TypeError('bad row') })).rejects.toThrow('bad row')
    expect(tracing.span('workflow_execution etl').status.code).toBe(SpanStatusCode.ERROR)
  })

  it('the span is active inside, so nested work is its child and inherits the identity', async () => {
    await withIdentity({ id: 'agent-7', type: 'ai_agent' }, () =>
      workflowRun('triage', async () => {
        await toolCall('lookup', async () => testTracer().startSpan('http GET').end())
      }),
    )
    const wf = tracing.span('workflow_execution triage')
    const tool = tracing.span('execute_tool lookup')
    const leaf = tracing.span('http GET')
    expect(tool.parentSpanContext?.spanId).toBe(wf.spanContext().spanId)
    expect(leaf.parentSpanContext?.spanId).toBe(tool.spanContext().spanId)
    for (const s of [wf, tool, leaf]) expect(s.attributes['nhi.id']).toBe('agent-7')
  })

  it('an identity option scopes the activity, and a credential is recorded only as its fingerprint', () => {
    const token = 'ghs_' + 'x1Y2z3'.repeat(6)
    tokenExchange('github-app-installation', () => {}, { identity: { id: 'deploy-bot', type: 'bot' }, credential: token, onBehalfOf: 'release-team' })
    const span = tracing.span('token_exchange github-app-installation')
    expect(span.attributes).toMatchObject({ 'nhi.id': 'deploy-bot', 'nhi.credential.id': fingerprintCredential(token), 'nhi.on_behalf_of': 'release-team' })
    expect(JSON.stringify(span.attributes)).not.toContain(token)
  })

  it('a custom activity type that is not one lowercase word is recorded as other', () => {
    activity('Bulk Export!', 'x', () => {})
    expect(tracing.spans()[0]?.attributes['nhi.activity.type']).toBe('other')
  })

  it('passes the span to the function so it can add attributes', () => {
    apiCall('POST /charge', (span) => span.setAttribute('http.response.status_code', 201))
    expect(tracing.span('api_call POST /charge').attributes['http.response.status_code']).toBe(201)
  })
})
