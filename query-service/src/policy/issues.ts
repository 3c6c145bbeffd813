/**
 * How policy problems are reported: every problem names the key path as a
 * user would write it (`rate_cards[0].meters[1].unit_price`), says what was
 * expected and what arrived, and, for files, where it is.
 */

/** One problem (or warning) in a policy, tied to the key it is about. */
export interface PolicyIssue {
  /** The key path, e.g. `rate_cards[0].meters[1].unit_price`; `(top level)` for the document itself. */
  readonly path: string
  /** What is wrong, in words, without the path. */
  readonly message: string
  /** 1-based line in the source, when known. */
  readonly line?: number
  /** 1-based column in the source, when known. */
  readonly column?: number
}

/** A key path as segments: keys and list indexes. */
export type PathSegments = readonly (string | number)[]

/** At most this many problems are spelled out in an error message; the rest are counted. */
export const MAX_LISTED_ISSUES = 50

/** A policy that cannot be used; `issues` lists every problem found, `message` spells them out. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError'
  /** Every problem found, in document order where positions are known. */
  readonly issues: readonly PolicyIssue[]
  /** Where the policy came from (a file path, or a label for a string). */
  readonly source: string

  constructor(source: string, issues: readonly PolicyIssue[]) {
    super(describeIssues(source, issues))
    this.source = source
    this.issues = issues
  }
}

/** Renders one issue as a single line: `path: message (line L, column C)`. */
export function formatIssue(issue: PolicyIssue): string {
  const where = issue.line === undefined ? '' : ` (line ${issue.line}, column ${issue.column ?? 1})`
  return `${issue.path}: ${issue.message}${where}`
}

/** Writes key path segments the way a user would: `rate_cards[0].meters[1].unit_price`. */
export function formatPath(segments: PathSegments): string {
  let out = ''
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(segment)) out += out === '' ? segment : `.${segment}`
    else out += `[${quote(segment)}]`
  }
  return out === '' ? '(top level)' : out
}

/**
 * Describes a value for "got ..." in a message: strings quoted (and cut),
 * numbers, booleans and containers named, so "0.002" and 0.002 read
 * differently.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null (an empty value)'
  if (typeof value === 'string') return value === '' ? 'an empty string' : quote(value)
  if (typeof value === 'number') return `${String(value)} (a number)`
  if (typeof value === 'boolean') return `${String(value)} (a boolean)`
  if (typeof value === 'bigint') return `${value.toString()} (a number)`
  if (Array.isArray(value)) return `a list of ${value.length}`
  if (value instanceof Date) return `a date (${value.toISOString()}); quote timestamps`
  if (typeof value === 'object') return 'a mapping'
  return typeof value
}

/**
 * Quotes a string for a message so that nothing in it can mislead a reader
 * or a terminal: control, format (bidi) and separator characters and lone
 * surrogates are escaped, and long strings are cut.
 */
export function quote(text: string, maxLength = 60): string {
  const chars = Array.from(text)
  const cut = chars.length > maxLength ? chars.slice(0, maxLength).join('') : text
  const escaped = JSON.stringify(cut).replace(
    /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/gu,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  return chars.length > maxLength ? `${escaped}… (${chars.length} characters)` : escaped
}

/** Suggests the known word closest to a misspelt one, if any is close enough to be a likely typo. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  // Allow about one edit per three characters, at most 3: "unit_prize" → unit_price, "x" → nothing.
  const allowed = Math.min(3, Math.max(1, Math.floor(word.length / 3)))
  return bestDistance <= allowed ? best : undefined
}

function describeIssues(source: string, issues: readonly PolicyIssue[]): string {
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`
  const lines = issues.slice(0, MAX_LISTED_ISSUES).map((issue) => `  ${formatIssue(issue)}`)
  if (issues.length > MAX_LISTED_ISSUES) lines.push(`  ... and ${issues.length - MAX_LISTED_ISSUES} more`)
  return [`invalid policy ${source}: ${count}`, ...lines].join('\n')
}

// Optimal string alignment distance: insertions, deletions, substitutions and
// swaps of neighbours, the typing mistakes people make in key names.
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity
  const rows: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i]
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j)
        continue
      }
      const prev = rows[i - 1] as number[]
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (rows[i - 2] as number[])[j - 2] as number + 1)
      }
      row.push(best)
    }
    rows.push(row)
  }
  return (rows[a.length] as number[])[b.length] as number
}
