/**
 * Activity-name globs, the one pattern language of the policy file.
 *
 * `*` matches any run of characters (including none, and including `/`),
 * `?` matches exactly one character, everything else matches itself. The
 * whole name must match (anchored at both ends) and case matters
 * (`Search` is not `search`). A character is a Unicode code point, so `?`
 * matches one emoji. There is no escape character: a literal `*` or `?`
 * in a name is matched by the wildcard itself.
 *
 * The same glob is evaluated in two places: in TypeScript by
 * {@link globMatches}, and inside ClickHouse by `match(activity_name, re)`
 * with the RE2 pattern from {@link globToRe2}, bound as a query parameter.
 * Tests hold the two to the same answers.
 */
import { quote } from './issues.js'
import type { ParseResult } from './time.js'

/** Longest glob accepted, in characters; activity names are tool names and route templates, not documents. */
export const MAX_GLOB_LENGTH = 512

// A matcher for any code point that works the same in RE2 and in a JS
// RegExp with the `u` flag: `.` would skip newlines in both without a
// dotall flag, and the inline `(?s)` flag is RE2-only.
const ANY_CHAR = '[\\s\\S]'
// Characters with a meaning in RE2 (and JS) patterns outside a class.
const REGEX_SYNTAX = new Set(['\\', '^', '$', '.', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}'])
// Control, format (e.g. bidi overrides), line/paragraph separators, lone surrogates.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/u

/**
 * Checks that a glob from a policy is usable: not empty, not too long, and
 * free of characters that cannot be seen (so a glob never looks like it
 * says something it does not).
 */
export function checkGlob(glob: string): ParseResult<string> {
  if (glob === '') return { ok: false, problem: 'must not be empty; use "*" to match any name' }
  const length = Array.from(glob).length
  if (length > MAX_GLOB_LENGTH) {
    return { ok: false, problem: `must be at most ${MAX_GLOB_LENGTH} characters, got ${length}` }
  }
  const hidden = UNPRINTABLE.exec(glob)
  if (hidden) {
    const code = (hidden[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')
    return {
      ok: false,
      problem: `must contain only visible characters, got ${quote(glob)} with U+${code} at position ${hidden.index}`,
    }
  }
  return { ok: true, value: glob }
}

/** True when the whole name matches the glob (`*` any run, `?` one code point, case-sensitive). */
export function globMatches(glob: string, name: string): boolean {
  if (glob === '*') return true
  const pattern = Array.from(glob)
  const text = Array.from(name)
  let p = 0
  let t = 0
  // Where the last `*` was seen, and how much of the text it has swallowed:
  // on a mismatch the star takes one more character and matching resumes.
  // Linear in practice, O(pattern × text) at worst, never exponential.
  let star = -1
  let resume = 0
  while (t < text.length) {
    const token = pattern[p]
    if (token === '*') {
      star = p++
      resume = t
    } else if (token !== undefined && (token === '?' || token === text[t])) {
      p++
      t++
    } else if (star >= 0) {
      p = star + 1
      t = ++resume
    } else {
      return false
    }
  }
  while (pattern[p] === '*') p++
  return p === pattern.length
}

/**
 * Translates a glob into an anchored RE2 pattern for ClickHouse
 * `match(activity_name, {re:String})`. Bind the result as a parameter;
 * never splice it into SQL text. Every regex metacharacter in the glob is
 * escaped, control characters become `\xHH`, and runs of `*` collapse to
 * one. The pattern is also valid for `new RegExp(pattern, 'u')` with the
 * same meaning.
 */
export function globToRe2(glob: string): string {
  let out = '^'
  let previousWasStar = false
  for (const ch of glob) {
    if (ch === '*') {
      if (!previousWasStar) out += `${ANY_CHAR}*`
      previousWasStar = true
      continue
    }
    previousWasStar = false
    if (ch === '?') out += ANY_CHAR
    else if (REGEX_SYNTAX.has(ch)) out += `\\${ch}`
    else if (ch.length === 1 && (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) {
      out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`
    } else out += ch
  }
  return `${out}$`
}

/** True when the glob matches every name (it is only stars), so a meter with it shadows later ones. */
export function globMatchesEverything(glob: string): boolean {
  return glob !== '' && /^\*+$/.test(glob)
}
