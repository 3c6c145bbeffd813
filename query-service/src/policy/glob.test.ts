import { queryBind } from 'chdb'
import { describe, expect, it } from 'vitest'
import { checkGlob, globMatches, globMatchesEverything, globToRe2, MAX_GLOB_LENGTH } from './glob.js'

// Globs and names chosen to break a naive translation: every regex
// metacharacter, SQL quoting, newlines, NUL, combining marks, emoji.
const GLOBS = [
  '*', '**', '?', '??', '*?', '?*?', 'a*', '*a', 'a?c', 'a**b', 'x*y*z', '*.*', 'file.txt', 'a.c',
  '(x)', '[a-z]', 'a+b', 'a|b', '^x$', '\\', '\\d', '{1,2}', '$1.00', 'GET /v1/users/{id}', 'GET /v1/*',
  'search', 'Search', 'é*', '?😀', '😀', 'e\u0301', "'; DROP TABLE otel_traces; --", '%', '_', '%_*',
  'a\u0000c', 'a\nc', '\t*', 'a\u007fb', '.*', '[\\s\\S]*',
]
const NAMES = [
  '', 'a', 'ab', 'abc', 'a.c', 'abc\n', '\n', 'a\nc', 'file.txt', 'filextxt', '(x)', 'x', '[a-z]', 'b',
  'a+b', 'aab', 'a|b', '^x$', '\\', '\\d', 'd', '{1,2}', '11', '$1.00', '$1x00', 'GET /v1/users/{id}',
  'GET /v1/users/42', 'GET /v1/', 'search', 'Search', 'SEARCH', 'é', 'éa', 'e\u0301', '😀', 'a😀', 'x😀',
  "'; DROP TABLE otel_traces; --", '%', '_', 'a\u0000c', 'a\tb', '\tb', 'a\u007fb', 'xyz', 'x-y-z', 'xzy',
  '.*', 'anything at all', 'a'.repeat(300),
]

describe('glob matching', () => {
  it('matches the whole name, with * for any run and ? for one character', () => {
    expect(globMatches('search_*', 'search_web')).toBe(true)
    expect(globMatches('search_*', 'search_')).toBe(true)
    expect(globMatches('search_*', 'web_search_docs')).toBe(false)
    expect(globMatches('v?', 'v2')).toBe(true)
    expect(globMatches('v?', 'v10')).toBe(false)
    expect(globMatches('*', '')).toBe(true)
    expect(globMatches('GET /v1/*', 'GET /v1/users/{id}')).toBe(true)
  })

  it('is case-sensitive', () => {
    expect(globMatches('search', 'Search')).toBe(false)
  })

  it('treats regex characters in a glob as plain text', () => {
    expect(globMatches('a.c', 'abc')).toBe(false)
    expect(globMatches('a.c', 'a.c')).toBe(true)
    expect(globMatches('[a-z]', 'b')).toBe(false)
    expect(globMatches('(x)', '(x)')).toBe(true)
  })

  it('counts an emoji as one character', () => {
    expect(globMatches('?', '😀')).toBe(true)
    expect(globMatches('??', '😀')).toBe(false)
  })

  it('stays fast on a glob built to make backtracking explode', () => {
    const started = performance.now()
    expect(globMatches('*a'.repeat(40) + 'b', 'a'.repeat(5000))).toBe(false)
    expect(performance.now() - started).toBeLessThan(1000)
  })

  it('recognises globs that match every name', () => {
    expect(globMatchesEverything('*')).toBe(true)
    expect(globMatchesEverything('***')).toBe(true)
    expect(globMatchesEverything('*?')).toBe(false)
  })
})

describe('glob translation to RE2 for ClickHouse', () => {
  it('anchors the pattern and escapes every metacharacter', () => {
    expect(globToRe2('tool.*')).toBe('^tool\\.[\\s\\S]*$')
    expect(globToRe2('a?(b)')).toBe('^a[\\s\\S]\\(b\\)$')
    expect(globToRe2('$1+{2}|[3]^\\')).toBe('^\\$1\\+\\{2\\}\\|\\[3\\]\\^\\\\$')
  })

  it('collapses runs of stars into one', () => {
    expect(globToRe2('a***b')).toBe('^a[\\s\\S]*b$')
  })

  it('writes control characters as hex escapes, never raw NUL bytes', () => {
    expect(globToRe2('a\u0000b\nc')).toBe('^a\\x00b\\x0ac$')
  })

  it('agrees with the TypeScript matcher on every glob and name in the corpus (JS RegExp)', () => {
    for (const glob of GLOBS) {
      const regex = new RegExp(globToRe2(glob), 'u')
      for (const name of NAMES) {
        expect([glob, name, regex.test(name)]).toEqual([glob, name, globMatches(glob, name)])
      }
    }
  })

  it('agrees with the TypeScript matcher inside ClickHouse, with the pattern bound as a parameter', () => {
    const patterns = GLOBS.map(globToRe2)
    const sql = 'SELECT arrayMap(re -> arrayMap(n -> match(n, re), {names:Array(String)}), {patterns:Array(String)}) AS matches'
    const row = JSON.parse(queryBind(sql, { names: NAMES, patterns }, 'JSONEachRow')) as { matches: number[][] }
    const fromClickHouse = GLOBS.flatMap((glob, i) => NAMES.map((name, j) => [glob, name, row.matches[i]?.[j] === 1]))
    const fromTypeScript = GLOBS.flatMap((glob) => NAMES.map((name) => [glob, name, globMatches(glob, name)]))
    expect(fromClickHouse).toEqual(fromTypeScript)
  })
})

describe('checking a glob from a policy', () => {
  it('accepts ordinary globs, unicode included', () => {
    expect(checkGlob('search_*')).toEqual({ ok: true, value: 'search_*' })
    expect(checkGlob('日本語?').ok).toBe(true)
  })

  it('refuses an empty glob and points to "*"', () => {
    expect(checkGlob('')).toEqual({ ok: false, problem: 'must not be empty; use "*" to match any name' })
  })

  it('refuses invisible characters that would make a glob read differently from what it matches', () => {
    const result = checkGlob('admin\u202Etxt.*')
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.problem).toMatch(/only visible characters.*U\+202E at position 5/)
    expect(checkGlob('a\nb').ok).toBe(false)
    expect(checkGlob('a\u0000b').ok).toBe(false)
    expect(checkGlob('\uD800x').ok).toBe(false)
  })

  it('refuses a glob longer than the limit', () => {
    expect(checkGlob('a'.repeat(MAX_GLOB_LENGTH)).ok).toBe(true)
    const result = checkGlob('a'.repeat(MAX_GLOB_LENGTH + 1))
    expect(result.ok).toBe(false)
  })
})
