import { SpanStatusCode, type Attributes } from '@opentelemetry/api'
import type { Span } from '@opentelemetry/sdk-trace-base'
import { afterEach, describe, expect, it } from 'vitest'
import { fingerprintCredential } from '../src/fingerprint.js'
import { isSecretKey, looksLikeSecret, REDACTED_VALUE, SECRET_KEY_PATTERNS, SECRET_VALUE_PATTERNS, toRegExp } from '../src/redaction.js'
import { SpanRedactor } from '../src/redacting-span-exporter.js'
import { exportedStrings, startTestTracing, testTracer, type TestTracing } from './helpers.js'

/** Secret-looking values, each with a distinctive body that must not survive export. */
const SECRET_VALUES: Record<string, string> = {
  bearer: 'Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5',
  basic: 'basic dXNlcjpwYXNzd29yZDEyMzQ1',
  jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIiwiYWRtaW4iOnRydWV9.c2lnbmF0dXJlMTIzNDU2',
  openai: 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWx',
  anthropic: 'sk-ant-api03-AbCdEfGhIjKlMnOpQrSt',
  stripe: 'sk_live_51HabcdefghijklmnopQRSTUV',
  stripeRestricted: 'rk_test_51HabcdefghijklmnopQRSTUV',
  github: 'ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789',
  githubPat: 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstu',
  gitlab: 'glpat-AbCdEfGhIjKlMnOpQrSt',
  slack: 'xoxb-123456789012-abcdefghijkl',
  aws: 'AKIAIOSFODNN7EXAMPLE',
  google: 'AIzaSyA-abcdefghijklmnopqrstuvwxyz12345',
  nhiMeter: 'nhim_live_AbCdEfGhIjKlMnOpQrSt',
  urlQuery: 'https://api.example.com/v1/items?limit=10&access_token=q1w2e3r4t5y6u7i8',
  urlCredentials: 'postgres://billing:Pa55w0rd-xyz@db.internal:5432/ledger',
  pemKey: '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAxyz\n-----END RSA PRIVATE KEY-----',
}

/** The part of each secret that must never be exported. */
const secretBodies = [
  ...Object.entries(SECRET_VALUES)
    .filter(([name]) => !['urlQuery', 'urlCredentials', 'pemKey'].includes(name))
    .map(([, v]) => v.replace(/^(bearer|basic)\s+/i, '').slice(-12)),
  'q1w2e3r4t5y6u7i8',
  'Pa55w0rd-xyz',
  'MIIEowIBAAKCAQEAxyz',
]

/** Attribute keys that name secrets: dropped whatever their value. */
const SECRET_KEYS = [
  'http.request.header.authorization',
  'http.request.header.cookie',
  'http.request.header.x-api-key',
  'http.response.header.set-cookie',
  'db.password',
  'app.api_key',
  'APP.API_KEY',
  'aws.secret',
  'oauth.client_secret',
  'user.token',
  'refresh_token',
  'github-token',
  'service.private_key',
]

/** Ordinary attributes that must survive untouched. */
const ORDINARY: Attributes = {
  'http.route': '/v1/tokens/{id}',
  'gen_ai.usage.input_tokens': 120,
  'token.count': 5,
  'nhi.credential.id': fingerprintCredential('whatever'),
  'url.full': 'https://api.example.com/v1/items?limit=10',
  'db.query.text': 'SELECT * FROM secrets_inventory WHERE owner = $1',
  'http.request.header.accept': 'application/json',
  'tags': ['alpha', 'beta'],
  // Names that merely contain "sk-"/"pk_" inside a word are not API keys.
  'enduser.id': 'support-desk-genai-oauth-client',
  'task.name': 'nightly-task-reconciliation-batch',
}

let tracing: TestTracing
afterEach(async () => {
  await tracing?.stop()
})

function spanWithEverySecret(): void {
  const attributes: Attributes = { ...ORDINARY }
  for (const [name, value] of Object.entries(SECRET_VALUES)) attributes[`app.${name}`] = value
  for (const key of SECRET_KEYS) attributes[key] = 'plain-looking-value-123'
  attributes['app.list'] = ['ok', SECRET_VALUES.github!, 'fine']
  testTracer().startActiveSpan(`GET /callback ${SECRET_VALUES.jwt}`, { attributes }, (span) => {
    span.addEvent('exception', { 'exception.message': `401 for ${SECRET_VALUES.bearer}`, 'exception.type': 'AuthError' })
    span.addEvent(`retry with ${SECRET_VALUES.openai}`)
    span.addLink({ context: span.spanContext(), attributes: { 'link.token': 'abc', 'link.note': SECRET_VALUES.slack } })
    span.setStatus({ code: SpanStatusCode.ERROR, message: `rejected ${SECRET_VALUES.stripe}` })
    span.end()
  })
}

describe('redaction before export', () => {
  it('no secret value from the corpus reaches an exported span, in any place', () => {
    tracing = startTestTracing({ resourceAttributes: { 'deployment.token': 'resource-secret-123', 'service.note': SECRET_VALUES.aws! } })
    spanWithEverySecret()
    const [span] = tracing.spans()
    const strings = exportedStrings(span!).join('\n')
    for (const body of [...secretBodies, 'plain-looking-value-123', 'resource-secret-123']) expect(strings).not.toContain(body)
    for (const key of [...SECRET_KEYS, 'deployment.token', 'link.token']) {
      expect(span!.attributes[key]).toBeUndefined()
    }
    expect(span!.resource.attributes['deployment.token']).toBeUndefined()
    expect(span!.attributes['app.github']).toBe(REDACTED_VALUE)
    expect(span!.attributes['app.list']).toEqual(['ok', REDACTED_VALUE, 'fine'])
  })

  it('keeps ordinary attributes exactly as they were', () => {
    tracing = startTestTracing()
    spanWithEverySecret()
    expect(tracing.spans()[0]!.attributes).toMatchObject(ORDINARY)
    expect(tracing.spans()[0]!.resource.attributes['service.name']).toBe('test-service')
  })

  it('exports a span with nothing to redact as the very same object', () => {
    tracing = startTestTracing()
    let live: Span | undefined
    tracing.stop()
    tracing = startTestTracing({ onSpanStart: (span) => (live = span) })
    testTracer().startSpan('clean', { attributes: ORDINARY }).end()
    expect(tracing.spans()[0]).toBe(live)
  })

  it('never changes the live span: other processors and the app still see it as it was', () => {
    let live: Span | undefined
    tracing = startTestTracing({ onSpanStart: (span) => (live = span) })
    testTracer().startSpan('live', { attributes: { 'db.password': 'hunter2-hunter2' } }).end()
    expect(tracing.spans()[0]!.attributes['db.password']).toBeUndefined()
    expect(live!.attributes['db.password']).toBe('hunter2-hunter2')
  })

  it('can replace secret values with their fingerprint instead of [REDACTED]', () => {
    tracing = startTestTracing({ redaction: { secretValues: 'fingerprint', fingerprintKey: 'k' } })
    testTracer().startSpan('fp', { attributes: { 'app.key': SECRET_VALUES.github, 'db.password': 'x' } }).end()
    const attributes = tracing.spans()[0]!.attributes
    expect(attributes['app.key']).toBe(fingerprintCredential(SECRET_VALUES.github!, 'k'))
    expect(attributes['db.password']).toBeUndefined()
  })

  it('can be turned off, and then exports what it was given', () => {
    tracing = startTestTracing({ redaction: { enabled: false } })
    testTracer().startSpan('off', { attributes: { 'db.password': 'x' } }).end()
    expect(tracing.spans()[0]!.attributes['db.password']).toBe('x')
  })
})

describe('what the redactor remembers', () => {
  it('never lets a secret through after many safe values under the same key, unique or repeated', () => {
    const redactor = new SpanRedactor()
    for (let i = 0; i < 5000; i++) redactor.redactAttributes({ 'url.full': `https://api.example.com/items/${i}`, 'http.request.method': 'GET' })
    expect(redactor.redactAttributes({ 'url.full': SECRET_VALUES.urlQuery!, 'http.request.method': SECRET_VALUES.jwt! })).toEqual({
      'url.full': REDACTED_VALUE,
      'http.request.method': REDACTED_VALUE,
    })
  })

  it('drops a secret key wherever it appears in the attribute order', () => {
    const redactor = new SpanRedactor()
    redactor.redactAttributes({ a: '1', b: '2', c: '3' })
    expect(redactor.redactAttributes({ a: '1', 'db.password': 'x', c: '3' })).toEqual({ a: '1', c: '3' })
    expect(redactor.redactAttributes({ 'db.password': 'x', a: '1' })).toEqual({ a: '1' })
  })
})

describe('the shared secrets rule', () => {
  it('gives the same answers as testing each shared pattern on its own', () => {
    const samples = [...Object.values(SECRET_VALUES), ...Object.values(ORDINARY).filter((v) => typeof v === 'string'), ...SECRET_KEYS, ...Object.keys(ORDINARY)]
    for (let i = 0; i < 500; i++) samples.push(Array.from({ length: 1 + (i % 60) }, (_, j) => 'aB9_-.:/?&=@ eyJskghpAKIA'[(i * 31 + j * 7) % 25]).join(''))
    for (const sample of samples as string[]) {
      expect(looksLikeSecret(sample), sample).toBe(SECRET_VALUE_PATTERNS.some((p) => toRegExp(p).test(sample)))
      expect(isSecretKey(sample), sample).toBe(SECRET_KEY_PATTERNS.some((p) => toRegExp(p, true).test(sample)))
    }
  })

  it('recognises every value of the corpus and no ordinary value', () => {
    for (const [name, value] of Object.entries(SECRET_VALUES)) expect(looksLikeSecret(value), name).toBe(true)
    for (const value of Object.values(ORDINARY)) if (typeof value === 'string') expect(looksLikeSecret(value), value).toBe(false)
  })

  it('recognises every secret key and no ordinary key', () => {
    for (const key of SECRET_KEYS) expect(isSecretKey(key), key).toBe(true)
    for (const key of Object.keys(ORDINARY)) expect(isSecretKey(key), key).toBe(false)
  })
})
