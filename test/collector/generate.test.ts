import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { REDACTED_VALUE, SECRET_KEY_PATTERNS, SECRET_VALUE_PATTERNS } from '@nhi-meter/instrumentation/redaction'
import {
  BEGIN_MARKER,
  END_MARKER,
  OTELCOL_CONFIG_PATH,
  collectorYamlString,
  redactionStatementGroups,
  regenerate,
  secretValueRegexp,
  toGoPattern,
} from '../../collector-config/generate.js'
import { parse } from 'yaml'

const committed = readFileSync(OTELCOL_CONFIG_PATH, 'utf8')

describe('the Collector redaction statements generated from the secrets rule', () => {
  it('are up to date in the committed otelcol.yaml (run collector-config/generate.ts after changing redaction.ts)', () => {
    expect(regenerate(committed)).toBe(committed)
  })

  it('sit in the transform processor that runs right after memory_limiter in the traces pipeline', () => {
    const config = parse(committed) as {
      processors: Record<string, { error_mode: string; trace_statements: { context: string; statements: string[] }[] }>
      service: { pipelines: { traces: { processors: string[] } } }
    }
    expect(config.service.pipelines.traces.processors).toEqual(['memory_limiter', 'transform/redact_secrets'])
    const transform = config.processors['transform/redact_secrets']!
    expect(transform.error_mode).toBe('propagate')
    // YAML parsing undoes the quoting; the Collector then turns `$$` into `$`.
    const statements = transform.trace_statements.map((g) => ({ ...g, statements: g.statements.map((s) => s.replaceAll('$$', '$')) }))
    expect(statements).toEqual(redactionStatementGroups())
  })

  it('cover resource, span and span-event attributes: delete secret keys, then replace secret-looking values whole', () => {
    const groups = redactionStatementGroups()
    expect(groups.map((g) => g.context)).toEqual(['resource', 'span', 'spanevent'])
    for (const { context, statements } of groups) {
      expect(statements[0]).toMatch(new RegExp(`^delete_matching_keys\\(${context}\\.attributes, "\\(\\?i\\)`))
      expect(statements[1]).toBe(`stringify_all(${context}.attributes)`)
      expect(statements[2]).toMatch(new RegExp(`^replace_all_patterns\\(${context}\\.attributes, "value", "\\^`))
      expect(statements[2]).toContain(`, ${JSON.stringify(REDACTED_VALUE)})`)
    }
  })

  it('carry every key and value pattern of redaction.ts', () => {
    const [deleteKeys, , replaceValues] = redactionStatementGroups()[0]!.statements
    for (const pattern of SECRET_KEY_PATTERNS) expect(deleteKeys).toContain(JSON.stringify(toGoPattern(pattern).body).slice(1, -1))
    for (const pattern of SECRET_VALUE_PATTERNS) expect(replaceValues).toContain(JSON.stringify(toGoPattern(pattern).body).slice(1, -1))
  })

  it('keep the generated section between its markers', () => {
    expect(committed.indexOf(BEGIN_MARKER)).toBeGreaterThan(0)
    expect(committed.indexOf(END_MARKER)).toBeGreaterThan(committed.indexOf(BEGIN_MARKER))
    expect(() => regenerate('processors: {}\n')).toThrow(/no "# BEGIN GENERATED/)
  })
})

describe('translating a secrets pattern for Go', () => {
  it('spells out \\s and . with the characters JavaScript gives them, inside and outside classes', () => {
    const { body } = toGoPattern('a\\s+b[^&\\s]c.d')
    expect(body).toContain('a[\\t\\n\\x0B\\f\\r \\x{A0}')
    expect(body).toContain('[^&\\t\\n\\x0B')
    expect(body).toContain('c[^\\n\\r\\x{2028}\\x{2029}]d')
  })

  it('turns a leading (?i) into a scoped flag so it cannot leak into the other alternatives', () => {
    expect(toGoPattern('(?i)bearer').caseInsensitive).toBe(true)
    expect(secretValueRegexp(['(?i)x', 'Y'])).toBe('^(?s:.*)(?:(?i:x)|(?:Y))(?s:.*)$')
  })

  it('keeps escaped characters and refuses constructs that read differently in RE2', () => {
    expect(toGoPattern('eyJ\\.x\\-').body).toBe('eyJ\\.x\\-')
    expect(() => toGoPattern('(?=x)')).toThrow(/portable/)
    expect(() => toGoPattern('[]a]')).toThrow(/class starting with ]/)
  })

  it('matches in JavaScript what the pattern it came from matches', () => {
    // The Go form is plain ECMAScript too once \x{..} becomes \u{..}; run both over sample text.
    const samples = ['Bearer\u00a0abcdefgh1234', 'x?token=a\u2028b', 'postgres://u:p@h', 'plain text', 'basic\tQWxhZGRpbjpvcGVu']
    for (const pattern of SECRET_VALUE_PATTERNS) {
      const { body, caseInsensitive } = toGoPattern(pattern)
      const asJs = new RegExp(body.replace(/\\x\{([0-9A-F]+)\}/g, '\\u{$1}').replace(/\\x0B/g, '\\v'), caseInsensitive ? 'iu' : 'u')
      const original = new RegExp(pattern.replace(/^\(\?i\)/, ''), pattern.startsWith('(?i)') ? 'i' : '')
      for (const sample of samples) expect(asJs.test(sample), `${pattern} on ${JSON.stringify(sample)}`).toBe(original.test(sample))
    }
  })

  it('writes YAML strings the Collector reads back verbatim: quotes doubled, $ escaped from ${env:} expansion', () => {
    expect(collectorYamlString(`it's $x`)).toBe(`'it''s $$x'`)
  })
})
