/**
 * The metric names a PromQL expression reads, for the tests that check the
 * service dashboard and the alert rules against what the service exposes.
 * A small scanner, not a parser: it drops strings, label matchers, durations
 * and Grafana variables, then takes every identifier that is not a PromQL
 * keyword or function and is not followed by `(`.
 */

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan'])

/** Metric names in `expr`, each once, in order of appearance. */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    // Numbers and durations (0.99, 1e3, 5m after offset).
    .replace(/(?<![A-Za-z0-9_:])\d[\w.]*/g, ' ')
    // by (label, ...) and without (...) list labels, not metrics.
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names: string[] = []
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))/g)) {
    const name = match[0]
    const isCall = /^\s*\(/.test(stripped.slice(match.index! + name.length))
    if (isCall || KEYWORDS.has(name.toLowerCase()) || names.includes(name)) continue
    names.push(name)
  }
  return names
}
