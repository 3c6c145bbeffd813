/**
 * Example service: an "agent gateway" that AI agents and integrations call.
 * It has no OpenTelemetry set-up of its own: start it with the zero-code entry,
 *
 *   node --import @nhi-meter/instrumentation/register examples/agent-gateway/server.ts
 *
 * and configure it with the environment (OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_SERVICE_NAME, NHI_ID, NHI_API_KEY_IDENTITIES_FILE, ...). The code only
 * says who acts (withRequestIdentity) and what they do (the activity helpers).
 * It prints `listening <port>` when ready and stops on SIGTERM or SIGINT.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { apiCall, secretRotation, tokenExchange, toolCall, withRequestIdentity, workflowRun } from '@nhi-meter/instrumentation'

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Reads a small JSON body. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body = ''
  for await (const chunk of req) body += String(chunk)
  if (!body) return {}
  try {
    return JSON.parse(body) as Record<string, unknown>
  } catch {
    return {}
  }
}

/** An agent run: a workflow of tool calls, one of which can fail. */
async function runAgent(task: string, failTool: boolean): Promise<string> {
  return workflowRun('ticket-triage', async () => {
    const tickets = await toolCall('search_tickets', async (span) => {
      span.setAttribute('app.query', task)
      await pause(2)
      return 3
    })
    await apiCall('GET /crm/accounts/{id}', async (span) => {
      // A careless attribute: redaction keeps the key out of the exported span.
      span.setAttribute('crm.api_key', 'never-exported')
      await pause(1)
    })
    await toolCall('summarise', async () => {
      await pause(1)
      if (failTool) throw new Error('summariser unavailable')
    })
    return `triaged ${tickets} tickets`
  })
}

async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req)
  if (req.method === 'POST' && req.url === '/v1/agent/run') {
    try {
      const summary = await runAgent(String(body.task ?? 'inbox'), body.fail === true)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ summary }))
    } catch (error) {
      res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (error as Error).message }))
    }
    return
  }
  if (req.method === 'POST' && req.url === '/v1/tokens/exchange') {
    await tokenExchange('crm-api', () => pause(1))
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token_type":"bearer"}')
    return
  }
  if (req.method === 'POST' && req.url === '/v1/secrets/rotate') {
    await secretRotation('crm-api-key', () => pause(1))
    res.writeHead(204).end()
    return
  }
  res.writeHead(404).end()
}

const server = createServer((req, res) => {
  // Everything the handler starts is attributed to the caller the resolvers find.
  withRequestIdentity(req, () => route(req, res)).catch(() => {
    if (!res.headersSent) res.writeHead(500)
    res.end()
  })
})

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening ${(server.address() as AddressInfo).port}`)
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  // Close and let the process end by itself, so the instrumentation flushes on exit.
  process.once(signal, () => server.close())
}
