/**
 * An MCP tool server for end-to-end tests, run the way a team would run one
 * in production: Streamable HTTP on loopback behind bearer-token auth, its
 * own OpenTelemetry pipeline exporting to nhi-meter's receiver, and its tool
 * calls traced by `instrumentMcpServer`, so each call's span names the OAuth
 * client that made it.
 *
 * The server has an identity of its own (`nhi.id` on its resource). It
 * serves calls; it does not make them, so it must never be billed for them.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { instrumentMcpServer, nhiSpanProcessors } from '@nhi-meter/instrumentation'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { z } from 'zod'

/**
 * The tools, in the order `tools` lists them. Names are chosen not to clash
 * with the local tools of the framework scenarios (`lookup_order`,
 * `issue_refund`, `search_docs`, ...): an agent given both would see two
 * tools of one name. Answers are deterministic, whatever the arguments.
 */
function registerTools(server: McpServer): void {
  server.registerTool(
    'get_weather',
    { description: 'Current weather for a city.', inputSchema: { city: z.string() } },
    ({ city }) => ({ content: [{ type: 'text', text: `${city}: 18°C, clear` }] }),
  )
  server.registerTool(
    'convert_currency',
    { description: 'Converts an amount between currencies at a fixed rate.', inputSchema: { amount: z.number(), from: z.string(), to: z.string() } },
    ({ amount, from, to }) => ({ content: [{ type: 'text', text: `${amount} ${from} = ${(amount * 1.25).toFixed(2)} ${to}` }] }),
  )
  server.registerTool(
    'lookup_invoice',
    { description: 'Looks an invoice up by id.', inputSchema: { invoice_id: z.string() } },
    ({ invoice_id }) => ({ content: [{ type: 'text', text: `invoice ${invoice_id}: paid` }] }),
  )
}

const TOOL_NAMES = ['get_weather', 'convert_currency', 'lookup_invoice']

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
}

/**
 * Starts the server on 127.0.0.1 (a free port). With `callers`, every
 * request needs `Authorization: Bearer <token>` with a token listed there,
 * which becomes the request's `authInfo.clientId`; any other request is
 * answered 401. Without `callers`, requests are anonymous.
 * `close()` exports every span, shuts the tracer provider down, then stops
 * the server.
 */
export function startMcpToolServer(options: {
  otlpUrl: string
  otlpKey: string
  serviceName?: string
  nhiId?: string
  callers?: Record<string, string> /* bearer token -> OAuth client id */
}): Promise<{ url: string /* http://127.0.0.1:PORT/mcp */; tools: string[]; close(): Promise<void> }> {
  // Its own provider, never registered globally: the test process has others (the agent's) beside it.
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName ?? 'mcp-tools',
      'nhi.id': options.nhiId ?? 'mcp-tools-server',
      'nhi.type': 'workload',
    }),
    spanProcessors: nhiSpanProcessors({
      exporters: [new OTLPTraceExporter({ url: options.otlpUrl, headers: { Authorization: `Bearer ${options.otlpKey}` } })],
    }),
  })
  const callers = options.callers

  async function handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
    if (new URL(req.url ?? '/', 'http://127.0.0.1').pathname !== '/mcp') return sendJson(res, 404, { error: 'not found' })
    if (callers) {
      const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1]
      const clientId = token !== undefined && Object.hasOwn(callers, token) ? callers[token] : undefined
      if (token === undefined || clientId === undefined) {
        return sendJson(res, 401, { error: 'invalid_token', error_description: 'unknown or missing bearer token' }, { 'www-authenticate': 'Bearer error="invalid_token"' })
      }
      // What the SDK's requireBearerAuth sets; the transport hands it to handlers as extra.authInfo.
      req.auth = { token, clientId, scopes: [] }
    }
    // Stateless: no sessions, so no server-to-client stream (GET) and nothing to end (DELETE).
    if (req.method !== 'POST') {
      return sendJson(res, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }, { allow: 'POST' })
    }
    // The SDK's stateless pattern: a server and a transport per request.
    const server = new McpServer({ name: options.serviceName ?? 'mcp-tools', version: '1.0.0' })
    registerTools(server)
    instrumentMcpServer(server, { tracerProvider: provider })
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
    res.on('close', () => {
      void transport.close()
      void server.close()
    })
    await server.connect(transport)
    await transport.handleRequest(req, res)
  }

  const http = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { jsonrpc: '2.0', error: { code: -32603, message: String(error) }, id: null })
      else res.end()
    })
  })

  return new Promise((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', () => {
      const { port } = http.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/mcp`,
        tools: [...TOOL_NAMES],
        close: async () => {
          await provider.forceFlush()
          await provider.shutdown()
          http.closeAllConnections()
          await new Promise<void>((done) => http.close(() => done()))
        },
      })
    })
  })
}
