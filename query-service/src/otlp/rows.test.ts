import { describe, expect, it } from 'vitest'
import { spanRow } from '../test-support/spans.js'
import { decodeJson } from './decode-json.js'
import { encodeExport, OTEL_TRACE_COLUMNS, type OtelTraceRow } from './rows.js'
import { formatUnixNano, secretVerdictCacheCharacters } from './stored-span.js'
import { encodeCompactRows, toOtelTraceRows } from '../test-support/otel-trace-rows.js'

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

describe('timestamps', () => {
  it.each([
    [0n, '1970-01-01 00:00:00.000000000'],
    [999n, '1970-01-01 00:00:00.000000999'],
    [1_000_000_000n, '1970-01-01 00:00:01.000000000'],
    [1_793_491_200_123_456_789n, '2026-11-01 00:00:00.123456789'],
    [1_793_491_199_999_999_999n, '2026-10-31 23:59:59.999999999'],
    [9_214_646_399_999_999_999n, '2261-12-31 23:59:59.999999999'],
  ])('formats %s ns as %s', (ns, text) => {
    expect(formatUnixNano(ns)).toBe(text)
  })
})

describe('the receiver’s one-pass encoding', () => {
  // Keys and values chosen to reach every branch: keys a plain object reorders or drops, repeated keys,
  // secret keys and values, escapes, non-ASCII, a lone surrogate, and every attribute value type.
  const keys = ['nhi.id', 'gen_ai.tool.name', 'password', 'api_key', '7', '0', '__proto__', 'constructor', 'k"q', 'ключ', 'a\nb', '']
  const values: unknown[] = [
    { stringValue: 'plain' },
    { stringValue: 'ghp_0123456789abcdefghijklmnopqrstuvwxyzAB' },
    { stringValue: 'line\nbreak "quoted" \\ \u2028 ✓' },
    { stringValue: '\ud800' },
    { stringValue: '' },
    { intValue: '-9007199254740993' },
    { doubleValue: 0.1 },
    { boolValue: true },
    { bytesValue: 'AQID' },
    { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '2' }, { stringValue: 'AKIAIOSFODNN7EXAMPLE' }] } },
    { kvlistValue: { values: [{ key: 'z', value: { stringValue: '1' } }, { key: 'a', value: { boolValue: false } }] } },
    {},
  ]
  // xorshift32: every bit of the state varies, so every key and value is drawn (checked below).
  let seed = 2463534242
  const drawn = new Set<unknown>()
  const pick = <T>(list: readonly T[]): T => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    const item = list[(seed >>> 0) % list.length]!
    drawn.add(item)
    return item
  }
  const attributes = (n: number) => Array.from({ length: n }, () => ({ key: pick(keys), value: pick(values) }))
  const hexId = (bytes: number, n: number) => (n + 1).toString(16).padStart(bytes * 2, '0')

  function randomExport(i: number): unknown {
    return {
      resourceSpans: [0, 1].map((r) => ({
        resource: { attributes: r === 0 ? [{ key: 'service.name', value: { stringValue: `svc-${i}` } }, ...attributes(i % 4)] : attributes(2) },
        scopeSpans: [
          {
            scope: { name: pick(['', 'scope "x"', 'лог']), version: '1.0' },
            spans: Array.from({ length: 6 }, (_, k) => ({
              traceId: k === 5 && i % 3 === 0 ? '00000000000000000000000000000000' : hexId(16, i * 10 + k),
              spanId: hexId(8, i * 10 + k),
              parentSpanId: k % 2 ? hexId(8, k) : '',
              traceState: k === 1 ? 'vendor=1' : '',
              name: pick(['execute_tool', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789', 'naïve "span"']),
              kind: k % 6,
              startTimeUnixNano: String(1793491200000000000n + BigInt(i * 1000 + k)),
              endTimeUnixNano: String(1793491200000000000n + BigInt(i * 1000 + k * 7)),
              // Now and then more attributes than the direct path writes.
              attributes: attributes(k === 0 && i % 25 === 0 ? 70 : k + (i % 5)),
              events: k === 2 ? [{ timeUnixNano: '1793491200000000500', name: 'retry', attributes: attributes(2) }] : [],
              links: k === 3 ? [{ traceId: hexId(16, 99), spanId: hexId(8, 99), traceState: 's', attributes: attributes(1) }] : [],
              status: { code: k % 3, message: k === 4 ? 'password=hunter2hunter2' : '' },
            })),
          },
        ],
      })),
    }
  }

  it('writes byte for byte what converting to rows and encoding them writes, across 300 varied exports', () => {
    for (let i = 0; i < 300; i++) {
      const request = decodeJson(Buffer.from(JSON.stringify(randomExport(i))))
      const converted = toOtelTraceRows(request)
      const encoded = encodeExport(request)
      expect(encoded.body.toString('utf8'), `export ${i}`).toBe(encodeCompactRows(converted.rows).toString('utf8'))
      expect(encoded.rows).toBe(converted.rows.length)
      expect({ rejected: encoded.rejectedSpans, reasons: encoded.rejectionReasons }).toEqual({ rejected: converted.rejectedSpans, reasons: converted.rejectionReasons })
    }
    expect(keys.filter((key) => !drawn.has(key))).toEqual([])
    expect(values.filter((value) => !drawn.has(value))).toEqual([])
  })

  it('writes nothing for an export with no storable span', () => {
    const encoded = encodeExport({ resourceSpans: [] })
    expect(encoded).toEqual({ body: Buffer.alloc(0), rows: 0, rejectedSpans: 0, rejectionReasons: [] })
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
