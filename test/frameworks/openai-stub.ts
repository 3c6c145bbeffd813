/**
 * A loopback stand-in for the OpenAI API, so agent frameworks run their real
 * code paths (tool loops, handoffs, streaming) in tests with no network and
 * no vendor account. A test scripts what "the model" answers; the stub speaks
 * the wire formats the SDKs parse: Chat Completions and Responses, plain JSON
 * and server-sent events, always with token usage so model-call spans carry
 * `gen_ai.usage.*`.
 *
 * Run it on its own (for tests in other languages) with
 * `node --import tsx test/frameworks/openai-stub.ts plan.json`: it prints
 * `{"baseURL": ...}` as one JSON line on stdout, serves the plan (a JSON
 * `AgentPlan[]`), exposes what it was asked at `GET /stub/requests`, and stops
 * on SIGTERM, or when its stdin is a pipe that closes.
 */
import { fstatSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'

/** One function call the scripted model asks for. */
export interface StubToolCall { name: string; arguments: Record<string, unknown> }

/** What the scripted model answers on one turn: function calls, or final text. */
export type StubReply = { toolCalls: StubToolCall[]; text?: undefined } | { text: string; toolCalls?: undefined }

/**
 * A model request reduced to what scripts decide on. `messages` is the chat
 * history in the shape the client sent (Responses API input items are kept
 * as they are, with its `instructions` first as a system message).
 */
export interface StubRequest { model: string; messages: Array<Record<string, unknown>>; tools: string[] /* names offered */ }

/** Decides the scripted model's reply to one request; a throw becomes a 400 the SDK surfaces. */
export type StubScript = (request: StubRequest) => StubReply

/** A running stub. */
export interface OpenAiStub { baseURL: string /* e.g. http://127.0.0.1:PORT/v1 */; requests: StubRequest[]; close(): Promise<void> }

/** The model ids `GET /v1/models` lists; any other id is accepted too, since the script decides. */
export const STUB_MODELS = ['stub-model'] as const

/** Starts the stub on an ephemeral loopback port. */
export async function startOpenAiStub(script: StubScript): Promise<OpenAiStub> {
  const requests: StubRequest[] = []
  const ids = { call: 0, response: 0, item: 0 }
  const nextId = (kind: keyof typeof ids, prefix: string) => `${prefix}_${++ids[kind]}`

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => sendJson(res, 500, { error: { message: String(error), type: 'stub_error' } }))
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://stub').pathname
    if (req.method === 'GET' && path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: STUB_MODELS.map((id) => ({ id, object: 'model', created: 0, owned_by: 'nhi-meter-stub' })) })
      return
    }
    if (req.method === 'GET' && path === '/stub/requests') {
      sendJson(res, 200, { requests })
      return
    }
    const isChat = req.method === 'POST' && path === '/v1/chat/completions'
    const isResponses = req.method === 'POST' && path === '/v1/responses'
    if (!isChat && !isResponses) {
      sendJson(res, 404, { error: { message: `the stub does not serve ${req.method} ${path}`, type: 'invalid_request_error' } })
      return
    }
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>
    const request = isChat ? chatRequest(body) : responsesRequest(body)
    requests.push(request)
    let reply: StubReply
    try {
      reply = script(request)
    } catch (error) {
      // 400, not 5xx: SDKs retry server errors, which would hide a script mistake behind retries.
      sendJson(res, 400, { error: { message: `stub script: ${error instanceof Error ? error.message : String(error)}`, type: 'invalid_request_error' } })
      return
    }
    const calls = (reply.toolCalls ?? []).map((call) => ({ id: nextId('call', 'call'), name: call.name, arguments: JSON.stringify(call.arguments) }))
    const usage = tokenUsage(body, reply)
    const stream = body.stream === true
    if (isChat) {
      const id = nextId('response', 'chatcmpl')
      if (stream) streamChat(res, { id, model: request.model, text: reply.text, calls, usage, includeUsage: (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true })
      else sendJson(res, 200, chatCompletion({ id, model: request.model, text: reply.text, calls, usage }))
    } else {
      const response = responsesObject({
        id: nextId('response', 'resp'),
        model: request.model,
        usage,
        output: reply.text !== undefined
          ? [{ type: 'message', id: nextId('item', 'msg'), role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: reply.text, annotations: [], logprobs: [] }] }]
          : calls.map((call) => ({ type: 'function_call', id: nextId('item', 'fc'), call_id: call.id, name: call.name, arguments: call.arguments, status: 'completed' })),
      })
      if (stream) streamResponses(res, response)
      else sendJson(res, 200, response)
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** One agent's part in a scripted conversation: how to recognise its requests, and its replies in order. */
export interface AgentPlan {
  /** A substring of the agent's system prompt (instructions), which is how requests are told apart. */
  systemIncludes: string
  /** The reply to this agent's first request, second request, ...; a request past the end fails the run. */
  turns: StubReply[]
}

/**
 * Builds a script from per-agent plans, so a scenario reads as "agent X:
 * first call these tools, then answer". Turns are counted per agent as its
 * requests arrive, so a script holds state: make a fresh one for every run.
 */
export function scriptFromPlan(plans: AgentPlan[]): StubScript {
  const served = new Map<AgentPlan, number>()
  return (request) => {
    const system = systemPrompt(request)
    const plan = plans.find((candidate) => system.includes(candidate.systemIncludes))
    if (!plan) throw new Error(`no plan for an agent whose system prompt is ${JSON.stringify(system.slice(0, 200))}`)
    const turn = served.get(plan) ?? 0
    const reply = plan.turns[turn]
    if (!reply) throw new Error(`the agent matching ${JSON.stringify(plan.systemIncludes)} made request ${turn + 1}, but its plan has ${plan.turns.length} turns`)
    for (const call of reply.toolCalls ?? []) {
      if (!request.tools.includes(call.name)) throw new Error(`the plan calls ${call.name}, which the agent matching ${JSON.stringify(plan.systemIncludes)} was not offered (offered: ${request.tools.join(', ')})`)
    }
    served.set(plan, turn + 1)
    return reply
  }
}

/** A turn that calls these tools (in parallel, in one model response). */
export function callTools(...calls: StubToolCall[]): StubReply {
  return { toolCalls: calls }
}

/** A turn that answers with final text. */
export function answer(text: string): StubReply {
  return { text }
}

/** The system/developer text of a request, joined, whatever the content shape. */
export function systemPrompt(request: StubRequest): string {
  return request.messages
    .filter((message) => message.role === 'system' || message.role === 'developer')
    .map((message) => contentText(message.content))
    .join('\n')
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((part) => (part && typeof part === 'object' && 'text' in part ? String((part as { text: unknown }).text) : '')).join('')
  return ''
}

function chatRequest(body: Record<string, unknown>): StubRequest {
  const tools = Array.isArray(body.tools) ? (body.tools as Array<{ function?: { name?: string } }>).map((tool) => tool.function?.name ?? '') : []
  return { model: String(body.model ?? ''), messages: Array.isArray(body.messages) ? (body.messages as Array<Record<string, unknown>>) : [], tools }
}

function responsesRequest(body: Record<string, unknown>): StubRequest {
  const messages: Array<Record<string, unknown>> = []
  if (typeof body.instructions === 'string' && body.instructions) messages.push({ role: 'system', content: body.instructions })
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input })
  else if (Array.isArray(body.input)) messages.push(...(body.input as Array<Record<string, unknown>>))
  const tools = Array.isArray(body.tools) ? (body.tools as Array<{ name?: string; type?: string }>).map((tool) => tool.name ?? tool.type ?? '') : []
  return { model: String(body.model ?? ''), messages, tools }
}

interface Usage { input: number; output: number }

// Roughly four characters a token: deterministic, and never zero, so a test can tell usage was reported.
function tokenUsage(body: Record<string, unknown>, reply: StubReply): Usage {
  const input = Math.max(1, Math.ceil(JSON.stringify([body.instructions, body.messages ?? body.input]).length / 4))
  const output = Math.max(1, Math.ceil(JSON.stringify(reply.text ?? reply.toolCalls).length / 4))
  return { input, output }
}

interface Call { id: string; name: string; arguments: string }
interface ChatAnswer { id: string; model: string; text: string | undefined; calls: Call[]; usage: Usage }

const created = () => Math.floor(Date.now() / 1000)
const chatUsage = (usage: Usage) => ({ prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output })

function chatCompletion({ id, model, text, calls, usage }: ChatAnswer): Record<string, unknown> {
  const message = text !== undefined
    ? { role: 'assistant', content: text }
    : { role: 'assistant', content: null, tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })) }
  return {
    id, object: 'chat.completion', created: created(), model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: text !== undefined ? 'stop' : 'tool_calls' }],
    usage: chatUsage(usage),
  }
}

function streamChat(res: ServerResponse, answer: ChatAnswer & { includeUsage: boolean }): void {
  startEventStream(res)
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    writeEvent(res, undefined, { id: answer.id, object: 'chat.completion.chunk', created: created(), model: answer.model, choices, ...extra })
  chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
  if (answer.text !== undefined) {
    // Split in two so clients exercise their delta accumulation, not just a single chunk.
    const half = Math.ceil(answer.text.length / 2)
    for (const piece of [answer.text.slice(0, half), answer.text.slice(half)]) {
      if (piece) chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])
    }
  }
  answer.calls.forEach((call, index) => {
    chunk([{ index: 0, delta: { tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }, logprobs: null, finish_reason: null }])
    chunk([{ index: 0, delta: { tool_calls: [{ index, function: { arguments: call.arguments } }] }, logprobs: null, finish_reason: null }])
  })
  chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: answer.text !== undefined ? 'stop' : 'tool_calls' }])
  if (answer.includeUsage) chunk([], { usage: chatUsage(answer.usage) })
  res.end('data: [DONE]\n\n')
}

function responsesObject({ id, model, usage, output }: { id: string; model: string; usage: Usage; output: Array<Record<string, unknown>> }): Record<string, unknown> {
  return {
    id, object: 'response', created_at: created(), status: 'completed', model, output,
    error: null, incomplete_details: null, instructions: null, metadata: {}, parallel_tool_calls: true,
    temperature: null, tool_choice: 'auto', tools: [], top_p: null,
    usage: {
      input_tokens: usage.input, input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output, output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.input + usage.output,
    },
  }
}

// The event sequence of the Responses API: clients build their result from `response.completed`,
// but UIs and instrumentations read the item and delta events, so all of them are sent.
function streamResponses(res: ServerResponse, response: Record<string, unknown>): void {
  startEventStream(res)
  let sequence = 0
  const send = (type: string, data: Record<string, unknown>) => writeEvent(res, type, { type, sequence_number: sequence++, ...data })
  send('response.created', { response: { ...response, status: 'in_progress', output: [], usage: null } })
  send('response.in_progress', { response: { ...response, status: 'in_progress', output: [], usage: null } })
  ;(response.output as Array<Record<string, unknown>>).forEach((item, outputIndex) => {
    if (item.type === 'message') {
      const part = (item.content as Array<{ text: string }>)[0]!
      send('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', content: [] } })
      send('response.content_part.added', { item_id: item.id, output_index: outputIndex, content_index: 0, part: { ...part, text: '' } })
      send('response.output_text.delta', { item_id: item.id, output_index: outputIndex, content_index: 0, delta: part.text, logprobs: [] })
      send('response.output_text.done', { item_id: item.id, output_index: outputIndex, content_index: 0, text: part.text, logprobs: [] })
      send('response.content_part.done', { item_id: item.id, output_index: outputIndex, content_index: 0, part })
    } else {
      send('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', arguments: '' } })
      send('response.function_call_arguments.delta', { item_id: item.id, output_index: outputIndex, delta: item.arguments })
      send('response.function_call_arguments.done', { item_id: item.id, output_index: outputIndex, arguments: item.arguments })
    }
    send('response.output_item.done', { output_index: outputIndex, item })
  })
  send('response.completed', { response })
  res.end()
}

function startEventStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
}

function writeEvent(res: ServerResponse, event: string | undefined, data: unknown): void {
  res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`)
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

// Standalone mode, for test suites in other languages (see the file comment).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const planFile = process.argv[2]
  if (!planFile) {
    process.stderr.write('usage: node --import tsx test/frameworks/openai-stub.ts <plan.json>\n')
    process.exit(2)
  }
  const plans = JSON.parse(readFileSync(planFile, 'utf8')) as AgentPlan[]
  const stub = await startOpenAiStub(scriptFromPlan(plans))
  process.stdout.write(`${JSON.stringify({ baseURL: stub.baseURL })}\n`)
  const stop = () => void stub.close().then(() => process.exit(0))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  // A parent that holds our stdin as a pipe stops us by closing it, even if it dies without signalling.
  if (fstatSync(0).isFIFO()) {
    process.stdin.on('end', stop)
    process.stdin.resume()
  }
}
