/**
 * The secrets rule (README "Redaction"), defined once. The instrumentation,
 * the built-in OTLP receiver and the generated Collector processors all use
 * these patterns, so a secret that one path drops is dropped by every path.
 *
 * Patterns are written in the subset shared by JavaScript and Go's RE2
 * (no look-around, no back-references) because the Collector evaluates them
 * in Go.
 */

/** Attribute keys whose values are secrets: the attribute is removed. Matched case-insensitively. */
export const SECRET_KEY_PATTERNS: readonly string[] = [
  // HTTP headers that carry credentials, as the HTTP semantic conventions name them.
  '^http\\.(request|response)\\.header\\.(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token)$',
  // `*.token`, `*.api_key`, `*.password`, `*.secret` and close relatives.
  '(^|[._-])(token|access_token|refresh_token|id_token|api_key|apikey|password|passwd|secret|client_secret|private_key|secret_key)$',
]

/**
 * Attribute values that look like credentials: the value is replaced by
 * {@link REDACTED_VALUE}. Matched case-sensitively unless the pattern opts in.
 */
export const SECRET_VALUE_PATTERNS: readonly string[] = [
  // Authorization header values.
  '(?i)(bearer|basic)\\s+[A-Za-z0-9._~+/=-]{8,}',
  // JSON Web Tokens: two base64url JSON segments and a signature.
  'eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]*',
  // Well-known API key formats (OpenAI/Anthropic/Stripe-style, GitHub, GitLab, Slack, AWS, Google, nhi-meter's own).
  // The prefix starts a word, so names such as "support-desk-<16 more>" or "task-..." are not taken for keys.
  '\\b(sk|rk|pk)[-_](live[-_]|test[-_]|proj[-_]|ant[-_])?[A-Za-z0-9_-]{16,}',
  '(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}',
  'github_pat_[A-Za-z0-9_]{30,}',
  'glpat-[A-Za-z0-9_-]{20,}',
  'xox[abposr]-[A-Za-z0-9-]{10,}',
  'AKIA[0-9A-Z]{16}',
  'AIza[0-9A-Za-z_-]{35}',
  'nhim_[A-Za-z0-9_-]{20,}',
  // Credentials in URL query strings.
  '(?i)[?&](access_token|refresh_token|id_token|api_key|apikey|token|password|secret|client_secret)=[^&#\\s]+',
  // Credentials in URL userinfo (`scheme://user:password@host`), e.g. database connection strings.
  '://[^/\\s:@]*:[^/\\s@]+@',
  // PEM-encoded private keys.
  '-----BEGIN [A-Z ]*PRIVATE KEY-----',
]

/** What a secret-looking value is replaced with. */
export const REDACTED_VALUE = '[REDACTED]'

/** Converts an RE2-style pattern (with an optional leading `(?i)`) to a JavaScript RegExp. */
export function toRegExp(pattern: string, caseInsensitive = false): RegExp {
  const inline = pattern.startsWith('(?i)')
  return new RegExp(inline ? pattern.slice(4) : pattern, inline || caseInsensitive ? 'i' : '')
}

/**
 * Joins patterns into one alternation per case mode: "any pattern matches" is
 * then one regex test instead of one per pattern, which matters on the span
 * export path. Same answers as testing each pattern (a test checks that).
 */
function anyOf(patterns: readonly string[], caseInsensitive: boolean): RegExp[] {
  const strip = (p: string) => (p.startsWith('(?i)') ? p.slice(4) : p)
  const insensitive = patterns.filter((p) => caseInsensitive || p.startsWith('(?i)'))
  const sensitive = patterns.filter((p) => !insensitive.includes(p))
  const joined: RegExp[] = []
  if (sensitive.length > 0) joined.push(new RegExp(sensitive.map((p) => `(?:${p})`).join('|')))
  if (insensitive.length > 0) joined.push(new RegExp(insensitive.map((p) => `(?:${strip(p)})`).join('|'), 'i'))
  return joined
}

const secretKeyRegExps = anyOf(SECRET_KEY_PATTERNS, true)
const secretValueRegExps = anyOf(SECRET_VALUE_PATTERNS, false)

/** True when an attribute with this key must never be stored or exported. */
export function isSecretKey(key: string): boolean {
  for (const re of secretKeyRegExps) if (re.test(key)) return true
  return false
}

/** True when a string value looks like a credential. */
export function looksLikeSecret(value: string): boolean {
  for (const re of secretValueRegExps) if (re.test(value)) return true
  return false
}

/**
 * Applies the rule to one attribute: `undefined` means drop it, otherwise
 * the (possibly replaced) value to keep. Only string values (and strings
 * inside arrays) can carry a credential.
 */
export function redactAttribute<T>(key: string, value: T): T | string | undefined {
  if (isSecretKey(key)) return undefined
  if (typeof value === 'string') return looksLikeSecret(value) ? REDACTED_VALUE : value
  if (Array.isArray(value) && value.some((v) => typeof v === 'string' && looksLikeSecret(v))) {
    return value.map((v) => (typeof v === 'string' && looksLikeSecret(v) ? REDACTED_VALUE : v)) as T
  }
  return value
}
