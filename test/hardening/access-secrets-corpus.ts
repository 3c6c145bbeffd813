/**
 * The secrets-at-rest corpus: credentials of every common shape, each
 * placed in every part of a span a sender controls. Each (path, placement,
 * secret) gets its own tag inside the secret's distinctive part, so a leak
 * found in storage names exactly where it came from.
 */

/** Where in an OTLP export a secret is put. */
export const PLACEMENTS = {
  RA: 'resource attribute',
  SA: 'span attribute',
  EA: 'event attribute',
  LA: 'link attribute',
  AR: 'string inside an array attribute',
  MP: 'string inside a map attribute',
  SN: 'span name',
  SM: 'status message',
  EN: 'event name',
} as const
/** A placement code. */
export type Placement = keyof typeof PLACEMENTS

/** One kind of secret: its value and the fragment that must never be stored, for a tag of four uppercase letters or digits. */
interface SecretShape {
  name: string
  /** Set when the attribute key, not the value, makes it a secret (only attribute placements carry these). */
  key?: string
  value(tag: string): string
  fragment(tag: string): string
}

/** Every shape in the corpus. */
export const SHAPES: SecretShape[] = [
  { name: 'bearer token', value: (t) => `Bearer bearer${t}0123456789abcdef`, fragment: (t) => `bearer${t}0123456789` },
  { name: 'AWS access key id', value: (t) => `AKIA${t}ZQ7X3B9K2M5P`, fragment: (t) => `AKIA${t}ZQ7X3B9K2M5P` },
  { name: 'GitHub token', value: (t) => `ghp_${t}GitHubT0kenValue0123456789abcd`, fragment: (t) => `${t}GitHubT0kenValue` },
  { name: 'JWT', value: (t) => `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ${t}In0.sig${t}SignatureXyz`, fragment: (t) => `sig${t}SignatureXyz` },
  { name: 'password in a URL', value: (t) => `https://deploy:pw${t}InUrl@git.internal/repo.git`, fragment: (t) => `pw${t}InUrl` },
  { name: 'api_key in a query string', value: (t) => `https://api.example.com/v2/items?api_key=qs${t}Secret42&page=1`, fragment: (t) => `qs${t}Secret42` },
  { name: 'Slack token', value: (t) => `xoxb-1234567890-slack${t}Token`, fragment: (t) => `slack${t}Token` },
  { name: 'PEM private key', value: (t) => `-----BEGIN PRIVATE KEY-----\nMIIE${t}PemBody\n-----END PRIVATE KEY-----`, fragment: (t) => `MIIE${t}PemBody` },
  { name: 'Authorization header', key: 'http.request.header.authorization', value: (t) => `Digest authz${t}HeaderValue`, fragment: (t) => `authz${t}HeaderValue` },
  { name: 'password attribute', key: 'db.password', value: (t) => `plain${t}Password`, fragment: (t) => `plain${t}Password` },
]

/** One secret as sent: where, which, and what must not be found. */
export interface PlacedSecret {
  placement: Placement
  shape: string
  fragment: string
}

type AnyValue = { stringValue: string } | { arrayValue: { values: AnyValue[] } } | { kvlistValue: { values: KeyValue[] } }
interface KeyValue {
  key: string
  value: AnyValue
}

const str = (value: string): AnyValue => ({ stringValue: value })
const hex = (n: number, bytes: number) => n.toString(16).padStart(bytes * 2, '0')

/**
 * An OTLP/JSON export with every shape in every placement that applies,
 * one resource and span per pair, tags starting with `pathLetter` (one uppercase letter). Spans
 * carry an identity and an activity so they reach the ledger too.
 */
export function corpusExport(pathLetter: string, startMs: number): { body: string; placed: PlacedSecret[] } {
  const placed: PlacedSecret[] = []
  const resourceSpans: unknown[] = []
  let n = 0
  for (const placement of Object.keys(PLACEMENTS) as Placement[]) {
    for (const [i, shape] of SHAPES.entries()) {
      const keyed = shape.key !== undefined
      if (keyed && ['SN', 'SM', 'EN', 'AR', 'MP'].includes(placement)) continue
      // Four characters: the path, the placement, the shape (SHAPES has at most ten).
      const tag = `${pathLetter}${placement}${i}`.toUpperCase()
      const value = shape.value(tag)
      placed.push({ placement, shape: shape.name, fragment: shape.fragment(tag) })
      const attribute: KeyValue = { key: shape.key ?? `corpus.${shape.name.replaceAll(' ', '_')}`, value: str(value) }
      n++
      const start = BigInt(startMs + n) * 1_000_000n
      const span = {
        // Ids differ per path, so rows of the two paths never collapse into one in the ledger.
        traceId: `${pathLetter === 'R' ? 'a' : 'c'}${hex(n, 16).slice(1)}`,
        spanId: `${pathLetter === 'R' ? 'b' : 'd'}${hex(n, 8).slice(1)}`,
        name: placement === 'SN' ? `GET ${value}` : `corpus span ${n}`,
        kind: 2,
        startTimeUnixNano: String(start),
        endTimeUnixNano: String(start + 5_000_000n),
        attributes: [
          { key: 'nhi.id', value: str(`corpus-agent-${pathLetter}`) },
          { key: 'nhi.business_unit', value: str('corpus-unit') },
          { key: 'http.route', value: str('/corpus') },
          ...(placement === 'SA' ? [attribute] : []),
          ...(placement === 'AR' ? [{ key: 'corpus.list', value: { arrayValue: { values: [str('harmless'), str(value)] } } }] : []),
          ...(placement === 'MP' ? [{ key: 'corpus.map', value: { kvlistValue: { values: [{ key: 'inner', value: str(value) }] } } }] : []),
        ],
        events: [
          {
            timeUnixNano: String(start + 1_000_000n),
            name: placement === 'EN' ? `retry with ${value}` : 'corpus event',
            attributes: placement === 'EA' ? [attribute] : [],
          },
        ],
        links: [{ traceId: hex(n + 1000, 16), spanId: hex(n + 1000, 8), attributes: placement === 'LA' ? [attribute] : [] }],
        status: placement === 'SM' ? { code: 2, message: `upstream refused ${value}` } : { code: 1 },
      }
      resourceSpans.push({
        resource: { attributes: [{ key: 'service.name', value: str(`corpus-service-${pathLetter}`) }, ...(placement === 'RA' ? [attribute] : [])] },
        scopeSpans: [{ scope: { name: 'corpus', version: '1' }, spans: [span] }],
      })
    }
  }
  return { body: JSON.stringify({ resourceSpans }), placed }
}
