import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import protobuf from 'protobufjs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { at, makeSpans, SpanKind, SpanStatusCode } from '../../../test/helpers/otel.js'
import { decodeProtobuf } from './decode-protobuf.js'
import { decodeProtobufReflection } from '../test-support/protobuf-reference.js'
import { MalformedPayloadError } from './model.js'

const root = protobuf.loadSync(fileURLToPath(new URL('./trace-service.proto', import.meta.url)))
const Request = root.lookupType('nhimeter.otlp.ExportTraceServiceRequest')

function encode(object: Record<string, unknown>): Buffer {
  return Buffer.from(Request.encode(Request.fromObject(object)).finish())
}

describe('the protobuf decoder', () => {
  it('decodes what the OpenTelemetry SDK serializes exactly as protobufjs reflection does', async () => {
    const spans = await makeSpans({ 'service.name': 'corpus', 'host.cores': 2, 'deployment.ratio': 0.25 }, (tracer) => {
      const parent = tracer.startSpan('parent', { kind: SpanKind.SERVER, startTime: at('2026-11-02T00:00:00Z'), attributes: { 'http.route': '/a', big: 9007199254740993, neg: -5, flag: false, list: ['x', 'y'], nums: [1, 2.5] } })
      parent.addEvent('e', { k: 'v' }, at('2026-11-02T00:00:00.1Z'))
      parent.addLink({ context: { traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', traceFlags: 1 }, attributes: { why: 'follows' } })
      parent.setStatus({ code: SpanStatusCode.ERROR, message: 'ünïcödé ✓' })
      parent.end(at('2026-11-02T00:00:01Z'))
    })
    const body = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!)
    expect(decodeProtobuf(body)).toEqual(decodeProtobufReflection(body))
  })

  it('keeps 64-bit integers, bytes, nested arrays and maps exact, and skips unknown fields', () => {
    const body = encode({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'a', value: { intValue: '-9223372036854775808' } }] },
          scopeSpans: [
            {
              scope: { name: 's', version: '1' },
              spans: [
                {
                  traceId: Buffer.alloc(16, 7),
                  spanId: Buffer.alloc(8, 9),
                  name: 'n',
                  startTimeUnixNano: '18446744073709551615',
                  endTimeUnixNano: '1',
                  flags: 257,
                  attributes: [
                    { key: 'max', value: { intValue: '9223372036854775807' } },
                    { key: 'bytes', value: { bytesValue: Buffer.from([0, 255, 1]) } },
                    { key: 'nested', value: { arrayValue: { values: [{ kvlistValue: { values: [{ key: 'k', value: { doubleValue: 1.5 } }] } }, {}] } } },
                  ],
                  droppedAttributesCount: 3,
                },
              ],
            },
          ],
        },
      ],
    })
    const decoded = decodeProtobuf(body)
    expect(decoded).toEqual(decodeProtobufReflection(body))
    const span = decoded.resourceSpans[0]!.scopeSpans[0]!.spans[0]!
    expect(span.startTimeUnixNano).toBe(18446744073709551615n)
    expect(span.attributes[0]!.value).toEqual({ kind: 'int', value: 9223372036854775807n })
    expect(decoded.resourceSpans[0]!.resourceAttributes[0]!.value).toEqual({ kind: 'int', value: -9223372036854775808n })
  })

  it.each([
    ['a truncated body', (b: Uint8Array) => b.subarray(0, b.length - 3)],
    ['a wrong wire type', () => Uint8Array.from([0x08, 0x01])],
    ['a length past the end', () => Uint8Array.from([0x0a, 0x7f, 0x00])],
    ['random bytes', () => Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
  ])('refuses %s as malformed', (_name, mutate) => {
    const good = encode({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 1), name: 'x' }] }] }] })
    expect(() => decodeProtobuf(mutate(good))).toThrow(MalformedPayloadError)
  })
})
