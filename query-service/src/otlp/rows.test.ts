import { describe, expect, it } from 'vitest'
import { spanRow } from '../test-support.js'
import { encodeCompactRows, OTEL_TRACE_COLUMNS, type OtelTraceRow } from './rows.js'

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
