/**
 * A ClickHouse HTTP interface served by the real ClickHouse engine (chDB),
 * run as its own process by `clickhouse-http.ts`.
 *
 * Why it exists: no ClickHouse server can be obtained on the machine this
 * project is built and tested on (no Docker; the distribution ships 18.16,
 * and neither PyPI, npm nor the Go proxy carries a server binary), yet the
 * `CLICKHOUSE_URL` path of query-service must be exercised for real. The SQL
 * engine behind this endpoint is ClickHouse itself (libchdb, the same engine
 * the embedded mode uses): parsing, query parameters, settings, formats,
 * table engines, materialized views and error codes are ClickHouse's own.
 * Only the HTTP layer is ours, and only the subset `@clickhouse/client` uses:
 *
 * - `GET|HEAD /ping` answers `Ok.`; `GET|POST /` runs a query.
 * - The query is the `query` URL parameter, then a newline, then the body
 *   (so an INSERT's data follows its `INSERT ... FORMAT x` line), as the
 *   server does.
 * - `param_<name>` values are bound by the engine exactly as sent: each
 *   becomes `SET param_<name> = '<value>'`, which ClickHouse parses with the
 *   same escaped-text rules as the HTTP parameter, and the bound map is
 *   replaced on every request, so nothing leaks between requests.
 * - `database` selects the database (`USE`); every other unknown URL
 *   parameter is a setting (`SET name = 'value'`, unknown names are refused
 *   by the engine); settings of the previous request are reset to DEFAULT.
 * - `default_format` is the output format when the query has no FORMAT
 *   clause (TabSeparated otherwise).
 * - Success: 200 with `X-ClickHouse-Query-Id`, `X-ClickHouse-Summary`
 *   (read rows/bytes and elapsed time; chDB reports no written counts) and
 *   gzip when `enable_http_compression=1` and the client accepts it. No
 *   `X-ClickHouse-Format`: the client does not read it, and the format a
 *   FORMAT clause chose is not known here.
 * - Failure: 500 with ClickHouse's own `Code: N. DB::Exception: ...` text
 *   and `X-ClickHouse-Exception-Code`, which is how the client detects it.
 *
 * Differences from a server, on purpose: one query at a time (requests
 * queue; `/ping` does not), no authentication (credentials are ignored), no
 * sessions (`session_id`), no multipart parameters, every error is a 500
 * (a server picks 400/404/... by code; the client treats them alike), and
 * multi-statement queries are not refused as a server would.
 *
 * Usage: `node --conditions=nhi-meter-source --import tsx clickhouse-http-server.ts <dataDir> [port]`;
 * prints `listening <port>` once it accepts connections, stops on SIGTERM.
 */
import { Session } from 'chdb'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { randomUUID } from 'node:crypto'

const [dataDir, portArg] = process.argv.slice(2)
if (!dataDir) {
  console.error('usage: clickhouse-http-server.ts <dataDir> [port]')
  process.exit(2)
}

const session = new Session(dataDir)

/** URL parameters that are part of the protocol, not settings. */
const PROTOCOL_PARAMS = new Set(['query', 'database', 'default_format', 'query_id', 'session_id', 'role', 'user', 'password', 'compress', 'decompress'])
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/** A single-quoted ClickHouse string literal holding exactly `value`. */
function literal(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

/** Thrown for requests this endpoint refuses before the engine sees them; worded as the server words it. */
class ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`Code: ${code}. DB::Exception: ${message}`)
  }
}

let previousSettings = new Set<string>()

/** Builds the statement list the engine runs for one request. */
function preamble(url: URL): string[] {
  const statements: string[] = []
  const database = url.searchParams.get('database') ?? 'default'
  if (!IDENTIFIER.test(database)) throw new ProtocolError(81, `Database ${database} does not exist. (UNKNOWN_DATABASE)`)
  statements.push(`USE ${database}`)
  const settings = new Set<string>()
  for (const [name, value] of url.searchParams) {
    if (PROTOCOL_PARAMS.has(name)) continue
    if (!IDENTIFIER.test(name)) throw new ProtocolError(115, `Unknown setting '${name}'. (UNKNOWN_SETTING)`)
    // A parameter or a setting: both are SET, the engine parses the value by the setting's or placeholder's type.
    statements.push(`SET ${name} = ${literal(value)}`)
    if (!name.startsWith('param_')) settings.add(name)
  }
  for (const name of previousSettings) if (!settings.has(name)) statements.unshift(`SET ${name} = DEFAULT`)
  previousSettings = settings
  return statements
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Requests run one at a time: session settings and parameters are per request. */
let queue: Promise<unknown> = Promise.resolve()

async function runQuery(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const body = req.method === 'POST' ? (await readBody(req)).toString('utf8') : ''
  if (String(req.headers['content-type'] ?? '').startsWith('multipart/')) throw new ProtocolError(1, 'multipart parameters are not supported by this test endpoint (NOT_IMPLEMENTED)')
  const urlQuery = url.searchParams.get('query') ?? ''
  const query = urlQuery && body ? `${urlQuery}\n${body}` : urlQuery || body
  if (!query.trim()) throw new ProtocolError(62, 'Empty query. (SYNTAX_ERROR)')
  const queryId = url.searchParams.get('query_id') || randomUUID()
  const format = url.searchParams.get('default_format') ?? 'TabSeparated'
  const run = queue.then(() => {
    const statements = [...preamble(url), query]
    // A non-empty bound map makes the engine replace the previous request's parameters; the SETs then add this request's.
    return session.queryBindAsync(statements.join(';\n'), { nhi_meter_fixture: '' }, { format })
  })
  queue = run.catch(() => undefined)
  const result = await run
  let bytes = Buffer.from(result.bytes())
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=UTF-8',
    'x-clickhouse-query-id': queryId,
    'x-clickhouse-summary': JSON.stringify({
      read_rows: String(result.rowsRead),
      read_bytes: String(result.bytesRead),
      elapsed_ns: String(Math.round(result.elapsed * 1e9)),
    }),
  }
  if (url.searchParams.get('enable_http_compression') === '1' && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    bytes = gzipSync(bytes)
    headers['content-encoding'] = 'gzip'
  }
  headers['content-length'] = bytes.length
  res.writeHead(200, headers)
  res.end(bytes)
}

function sendError(res: ServerResponse, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error)
  const code = error instanceof ProtocolError ? error.code : ((error as { clickhouseCode?: number }).clickhouseCode ?? /^Code: (\d+)\./.exec(message)?.[1] ?? 1001)
  const text = /^Code: \d+\./.test(message) ? message : `Code: ${code}. DB::Exception: ${message}`
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.writeHead(500, { 'content-type': 'text/plain; charset=UTF-8', 'x-clickhouse-exception-code': String(code) })
  res.end(`${text.trimEnd()}\n`)
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://clickhouse')
  if (url.pathname === '/ping') {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' })
    res.end(req.method === 'HEAD' ? undefined : 'Ok.\n')
    return
  }
  if (url.pathname !== '/' || (req.method !== 'GET' && req.method !== 'POST')) {
    req.resume()
    sendError(res, new ProtocolError(1, `There is no handle ${url.pathname} (NOT_IMPLEMENTED)`))
    return
  }
  runQuery(req, res, url).catch((error: unknown) => sendError(res, error))
})
server.keepAliveTimeout = 10_000

server.listen(portArg ? Number(portArg) : 0, '127.0.0.1', () => {
  console.log(`listening ${(server.address() as AddressInfo).port}`)
})

process.on('SIGTERM', () => {
  server.close()
  server.closeAllConnections()
  queue.finally(() => {
    session.close()
    process.exit(0)
  })
})
