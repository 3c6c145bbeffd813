import { describe, expect, it } from 'vitest'
import { spanRow } from '../test-support.js'
import { decodeJson } from './decode-json.js'
import { encodeCompactRows, OTEL_TRACE_COLUMNS, secretVerdictCacheCharacters, toOtelTraceRows, type OtelTraceRow } from './rows.js'

describe('the compact row encoding', () => {
  it('writes each row as the JSON array of its columns in OTEL_TRACE_COLUMNS order, one per line', () => {
    const shared = { 'service.name': 'svc', 'quote"and\\backslash': 'line\nbreak \u2028 ✓' }
    const plain = { ...spanRow({ start: '2026-11-01T00:00:00Z', attributes: { a: '<&>' } }), ResourceAttributes: shared }
    const full: OtelTraceRow = {
      ...spanRow({ start: '2026-11-01T00:00:01Z' }),
      ResourceAttributes: shared,
      'Events.Timestamp': ['2026-11-01 00:00:01.500000000'],
      'Events.Name': ['retry'],
      'Events.Attributes': [{ attempt: '1' }],
      'Links.TraceId': ['0102030405060708090a0b0c0d0e0f10'],
      'Links.SpanId': ['0102030405060708'],
      'Links.TraceState': [''],
      'Links.Attributes': [{}],
    }
    const rows = [plain, full]
    const lines = encodeCompactRows(rows).toString('utf8').split('\n')
    expect(lines.map((line) => JSON.parse(line))).toEqual(rows.map((row) => OTEL_TRACE_COLUMNS.map((column) => row[column])))
  })
})

describe('the secrets verdict caches', () => {
  it('keep no long value, so unique large attributes and texts cannot pin request bodies in memory', () => {
    const long = (i: number) => `${'x'.repeat(100_000)}-${i}`
    const before = secretVerdictCacheCharacters()
    for (let i = 0; i < 20; i++) {
      const body = {
        resourceSpans: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: '0102030405060708090a0b0c0d0e0f10',
                    spanId: '0102030405060708',
                    name: long(i),
                    startTimeUnixNano: '1793491200000000000',
                    endTimeUnixNano: '1793491200000000001',
                    attributes: [{ key: 'note', value: { stringValue: long(i + 100) } }],
                    status: { message: long(i + 200) },
                  },
                ],
              },
            ],
          },
        ],
      }
      const { rows } = toOtelTraceRows(decodeJson(Buffer.from(JSON.stringify(body))))
      expect(rows[0]!.SpanName).toBe(long(i))
    }
    // 60 values of 100 KB went through; none of them is held.
    expect(secretVerdictCacheCharacters() - before).toBeLessThan(1_000)
  })
})
