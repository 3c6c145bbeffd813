/**
 * Trace-aware identity: given the spans of one trace, decides for each
 * pending use event who acted (its own identity, or its nearest ancestor's)
 * and which spans record the same tool call. Pure: no I/O, bounded work
 * (every span is visited a constant number of times however deep or cyclic
 * the parent links are). The rules are the README's "Identity precedence"
 * and "Agent frameworks"; the job (./job.ts) feeds this from ClickHouse.
 */

/** Identity attributes found at one level (span or resource) of a span. */
export interface IdentityAttributes {
  /** `nhi.id` */
  nhiId: string
  /** `gen_ai.agent.id` */
  agentId: string
  /** `gen_ai.agent.name` */
  agentName: string
  /** `nhi.type` */
  type: string
  /** `nhi.owner` */
  owner: string
  /** `nhi.business_unit` */
  businessUnit: string
  /** The principal: `nhi.on_behalf_of`, `user.id`, ... (see the migration 0022 precedence) */
  principal: string
  /** Which attribute gave `agentName` (`gen_ai.agent.name`, `agent.name`, `graph.node.id`, `ai.telemetry.functionId`). */
  agentNameKey: string
}

/** What the resolution needs to know about one span of a trace. */
export interface TraceSpan {
  spanId: string
  parentSpanId: string
  service: string
  kind: string
  /** Start, for ordering spans that record the same tool call. */
  startNs: bigint
  /** End, for finding the tool span an MCP server's span ran within. */
  endNs: bigint
  span: IdentityAttributes
  resource: IdentityAttributes
  /** The span is a tool call (any of the tool markers). */
  isTool: boolean
  /** `mcp.method.name` is `tools/call`. */
  isMcpToolCall: boolean
  /** `gen_ai.tool.call.id` */
  toolCallId: string
  /** `jsonrpc.request.id` */
  jsonrpcRequestId: string
  /** The tool's name, for pairing MCP client and server spans. */
  toolName: string
}

/** Which `gen_ai.agent.*` values are not identities (from the policy's `identity` section). */
export interface PlaceholderRule {
  /** Values compared case-insensitively. */
  agentIds: ReadonlySet<string>
  /** UUID-shaped agent ids are per-run ids, not identities. */
  uuidAgentIds: boolean
}

/** A resolved identity, with the attributes that came with it. */
export interface ResolvedIdentity {
  nhiId: string
  type: string
  owner: string
  businessUnit: string
  /** Where it came from, e.g. `span:gen_ai.agent.name` or `ancestor:resource:nhi.id`. */
  source: string
}

/** Why a use event has no identity. */
export type UnresolvedReason =
  | 'no_identity'
  | 'placeholder_identity'
  | 'ancestor_missing'
  | 'parent_cycle'
  | 'trace_too_large'
  | 'mcp_caller_unknown'

/** The decision for one pending use event. */
export type Resolution =
  | { outcome: 'resolved'; identity: ResolvedIdentity; onBehalfOf: string }
  | { outcome: 'unresolved'; reason: UnresolvedReason; onBehalfOf: string }
  | { outcome: 'same_tool_call'; primarySpanId: string }
  /** An ancestor has not arrived yet; ask again later (the job settles it after its wait). */
  | { outcome: 'waiting'; reason: 'ancestor_missing' }

/** Framework tool spans of one name an unpaired MCP server span is compared with by running time, at most. */
const MAX_RUNNING_CANDIDATES = 1000

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i

/** Whether a `gen_ai.agent.id` / `gen_ai.agent.name` value is a placeholder rather than an identity. */
export function isPlaceholder(value: string, rule: PlaceholderRule): boolean {
  return rule.agentIds.has(value.toLowerCase()) || (rule.uuidAgentIds && UUID.test(value))
}

/** The identity id an agent known only by name gets: names are unique only within a service. */
export function agentNameIdentity(service: string, agentName: string): string {
  return `agent:${service}/${agentName}`
}

type Own = { identity: ResolvedIdentity } | { placeholder: true } | null

/** The identity one level of a span names, if any. */
function levelIdentity(level: 'span' | 'resource', a: IdentityAttributes, service: string, rule: PlaceholderRule): Own {
  const base = { owner: a.owner, businessUnit: a.businessUnit }
  if (a.nhiId !== '') return { identity: { nhiId: a.nhiId, type: a.type || 'other', ...base, source: `${level}:nhi.id` } }
  let placeholder = false
  if (a.agentId !== '') {
    if (!isPlaceholder(a.agentId, rule)) return { identity: { nhiId: a.agentId, type: a.type || 'ai_agent', ...base, source: `${level}:gen_ai.agent.id` } }
    placeholder = true
  }
  if (a.agentName !== '') {
    if (!isPlaceholder(a.agentName, rule)) {
      return { identity: { nhiId: agentNameIdentity(service, a.agentName), type: a.type || 'ai_agent', ...base, source: `${level}:${a.agentNameKey || 'gen_ai.agent.name'}` } }
    }
    placeholder = true
  }
  return placeholder ? { placeholder: true } : null
}

/** Owner and business unit fall back to the resource when the span level names the identity without them. */
function withResourceDefaults(identity: ResolvedIdentity, resource: IdentityAttributes): ResolvedIdentity {
  return { ...identity, owner: identity.owner || resource.owner, businessUnit: identity.businessUnit || resource.businessUnit }
}

const isServer = (s: TraceSpan) => s.kind === 'Server' || s.kind === 'SPAN_KIND_SERVER'
const isClient = (s: TraceSpan) => s.kind === 'Client' || s.kind === 'SPAN_KIND_CLIENT'

/** The outcome of walking up from a span: an answer, the root, a gap or a loop. */
type Walk<T> = { found: T } | { end: 'root' | 'missing' | 'cycle' }

/**
 * One trace, indexed, with memoised walks up the parent links. Each walk
 * records its answer on every span it passed, so a chain of any depth is
 * walked once in total; a span met twice within one walk is a cycle.
 */
export class TraceGraph {
  private readonly byId = new Map<string, TraceSpan>()
  private readonly memo = new Map<string, Map<string, Walk<unknown>>>()

  constructor(
    spans: Iterable<TraceSpan>,
    private readonly rule: PlaceholderRule,
    /** The trace had more spans than were read: a parent not found may exist. */
    readonly truncated = false,
  ) {
    for (const span of spans) if (!this.byId.has(span.spanId)) this.byId.set(span.spanId, span)
  }

  /** The span with this id, if it arrived. */
  get(spanId: string): TraceSpan | undefined {
    return this.byId.get(spanId)
  }

  /**
   * Walks from `start`'s parent upwards and returns the first `pick` answer.
   * `stop` ends the walk at a span without looking at it (as the root would).
   */
  private walkUp<T>(name: string, start: TraceSpan, pick: (s: TraceSpan) => T | undefined, stop?: (s: TraceSpan) => boolean): Walk<T> {
    let memo = this.memo.get(name)
    if (!memo) this.memo.set(name, (memo = new Map()))
    const path: string[] = []
    const onPath = new Set<string>([start.spanId])
    let parentId = start.parentSpanId
    let result: Walk<T>
    for (;;) {
      if (parentId === '') {
        result = { end: 'root' }
        break
      }
      const known = memo.get(parentId) as Walk<T> | undefined
      if (known) {
        result = known
        break
      }
      if (onPath.has(parentId)) {
        result = { end: 'cycle' }
        break
      }
      const parent = this.byId.get(parentId)
      if (!parent) {
        result = { end: 'missing' }
        break
      }
      if (stop?.(parent)) {
        result = { end: 'root' }
        break
      }
      const answer = pick(parent)
      if (answer !== undefined) {
        result = { found: answer }
        // The parent's own answer is itself, for walks that start below it.
        break
      }
      onPath.add(parentId)
      path.push(parentId)
      parentId = parent.parentSpanId
    }
    // Every span passed on the way has the same answer above it, except in a
    // cycle, whose members each see the cycle too.
    for (const id of path) memo.set(id, result)
    return result
  }

  /** The nearest ancestor's identity: its span level, else (unless it is an MCP server's span) its resource. */
  nearestAncestorIdentity(span: TraceSpan): Walk<ResolvedIdentity> {
    return this.walkUp('any', span, (a) => {
      const own = this.ownIdentity(a, { resource: !(a.isMcpToolCall && isServer(a)) })
      return own && 'identity' in own ? { ...own.identity, source: `ancestor:${own.identity.source}` } : undefined
    })
  }

  /** The nearest ancestor in the same service whose span itself names an identity (the agent over its tools). */
  nearestAgentInService(span: TraceSpan): Walk<ResolvedIdentity> {
    return this.walkUp(
      `service:${span.service}`,
      span,
      (a) => {
        const own = levelIdentity('span', a.span, a.service, this.rule)
        return own && 'identity' in own ? withResourceDefaults({ ...own.identity, source: `ancestor:${own.identity.source}` }, a.resource) : undefined
      },
      (a) => a.service !== span.service,
    )
  }

  /** Whether every ancestor of the span has arrived (the walk reaches the root, a loop, or a cut-off trace). */
  ancestryComplete(span: TraceSpan): boolean {
    const walk = this.walkUp('complete', span, () => undefined)
    return !('end' in walk) || walk.end !== 'missing' || this.truncated
  }

  /** The nearest principal: the span's own, else its nearest ancestor's. */
  principal(span: TraceSpan): string {
    const own = span.span.principal || span.resource.principal
    if (own !== '') return own
    const walk = this.walkUp('principal', span, (a) => (a.span.principal || a.resource.principal) || undefined)
    return 'found' in walk ? walk.found : ''
  }

  /** The identity a span names itself (span level, then its resource unless told not to). */
  ownIdentity(span: TraceSpan, options: { resource: boolean }): Own {
    const fromSpan = levelIdentity('span', span.span, span.service, this.rule)
    if (fromSpan && 'identity' in fromSpan) return { identity: withResourceDefaults(fromSpan.identity, span.resource) }
    if (options.resource) {
      const fromResource = levelIdentity('resource', span.resource, span.service, this.rule)
      if (fromResource) return fromResource
    }
    return fromSpan
  }

  /**
   * Who performed a use event:
   * 1. the span's own span-level identity;
   * 2. for an agent activity (`agentActivity`: a tool call, a model call or
   *    a workflow), the nearest ancestor in the same service whose
   *    span names an identity (the agent a framework put on `invoke_agent`);
   * 3. the span's resource identity, except on an MCP server's tool span
   *    (the server's identity is not the caller's);
   * 4. the nearest ancestor's identity, across services;
   * else none, with the reason. Without `settle` it answers `waiting`
   * until every ancestor has arrived; with it (the job's wait is over) a
   * parent that has not arrived ends the walks.
   */
  identityOf(span: TraceSpan, options: { settle?: boolean; agentActivity?: boolean } = {}): Resolution {
    const decided = this.decide(span, options)
    // An identity is not its own principal (an MCP server names its caller as both nhi.id and enduser.id).
    if (decided.outcome === 'resolved' && decided.onBehalfOf === decided.identity.nhiId) return { ...decided, onBehalfOf: '' }
    return decided
  }

  private decide(span: TraceSpan, options: { settle?: boolean; agentActivity?: boolean }): Resolution {
    // Decided only once every ancestor has arrived (the principal, too, may
    // sit on one), unless the wait is over.
    if (!options.settle && !this.ancestryComplete(span)) return { outcome: 'waiting', reason: 'ancestor_missing' }
    const onBehalfOf = this.principal(span)
    const own = levelIdentity('span', span.span, span.service, this.rule)
    if (own && 'identity' in own) return { outcome: 'resolved', identity: withResourceDefaults(own.identity, span.resource), onBehalfOf }
    let placeholder = own !== null
    if (options.agentActivity) {
      // A loop, a cut-off trace or a gap ends this walk; the rules below still apply.
      const agent = this.nearestAgentInService(span)
      if ('found' in agent) return { outcome: 'resolved', identity: agent.found, onBehalfOf }
    }
    const mcpServer = span.isMcpToolCall && isServer(span)
    if (!mcpServer) {
      const fromResource = levelIdentity('resource', span.resource, span.service, this.rule)
      // The span's own owner and business unit win over its resource's, as for every other attribute.
      if (fromResource && 'identity' in fromResource) {
        const identity = { ...fromResource.identity, owner: span.span.owner || fromResource.identity.owner, businessUnit: span.span.businessUnit || fromResource.identity.businessUnit }
        return { outcome: 'resolved', identity, onBehalfOf }
      }
      placeholder ||= fromResource !== null
    }
    const ancestor = this.nearestAncestorIdentity(span)
    if ('found' in ancestor) return { outcome: 'resolved', identity: ancestor.found, onBehalfOf }
    const reason =
      ancestor.end === 'cycle'
        ? 'parent_cycle'
        : ancestor.end === 'missing'
          ? this.truncated
            ? 'trace_too_large'
            : 'ancestor_missing'
          : mcpServer
            ? 'mcp_caller_unknown'
            : placeholder
              ? 'placeholder_identity'
              : 'no_identity'
    return { outcome: 'unresolved', reason, onBehalfOf }
  }

  private readonly depths = new Map<string, number>()

  /** Distance from the trace's root (or from the nearest gap or loop), for choosing the outermost of several spans. */
  private depth(span: TraceSpan): number {
    const path: TraceSpan[] = []
    const onPath = new Set<string>()
    let cursor: TraceSpan | undefined = span
    let base = -1
    while (cursor && !onPath.has(cursor.spanId)) {
      const known = this.depths.get(cursor.spanId)
      if (known !== undefined) {
        base = known
        break
      }
      onPath.add(cursor.spanId)
      path.push(cursor)
      cursor = this.byId.get(cursor.parentSpanId)
    }
    for (let i = path.length - 1; i >= 0; i--) this.depths.set(path[i]!.spanId, ++base)
    return this.depths.get(span.spanId)!
  }

  /**
   * Groups the spans that record one tool call, and returns, for every span
   * that is not the one billed, the span that is. One tool call means:
   * - the same `gen_ai.tool.call.id`;
   * - an MCP server's `tools/call` span and the MCP client span it answers
   *   (its parent, or the only client span of the trace with the same
   *   `jsonrpc.request.id` and tool name);
   * - an MCP span (client or server) directly under a framework's tool
   *   span for the same tool (or one whose tool is not named);
   * - an MCP server's span paired with nothing above, and the only
   *   framework tool span of the trace for the same tool that was running
   *   when it started (instrumentations that never make their tool span
   *   current, such as OpenInference's for the OpenAI Agents SDK in JS,
   *   leave no other evidence).
   * The billed span is the caller's: a framework's span before an MCP
   * client's before an MCP server's; then the outermost (nearest the root),
   * then the earliest.
   */
  sameToolCalls(): Map<string, string> {
    const parentOf = new Map<string, string>()
    const find = (id: string): string => {
      let root = id
      while (parentOf.has(root)) root = parentOf.get(root)!
      // Path compression keeps later finds short.
      let cursor = id
      while (cursor !== root) {
        const next = parentOf.get(cursor)!
        parentOf.set(cursor, root)
        cursor = next
      }
      return root
    }
    const union = (a: string, b: string) => {
      const [ra, rb] = [find(a), find(b)]
      if (ra !== rb) parentOf.set(ra, rb)
    }
    const tools = [...this.byId.values()].filter((s) => s.isTool)
    if (tools.length < 2) return new Map()
    const byCallId = new Map<string, string>()
    const clientsByRequest = new Map<string, string[]>()
    for (const s of tools) {
      if (s.toolCallId !== '') {
        const first = byCallId.get(s.toolCallId)
        if (first) union(first, s.spanId)
        else byCallId.set(s.toolCallId, s.spanId)
      }
      if (s.isMcpToolCall && isClient(s) && s.jsonrpcRequestId !== '') {
        const key = `${s.jsonrpcRequestId}\u0000${s.toolName}`
        const list = clientsByRequest.get(key)
        if (list) list.push(s.spanId)
        else clientsByRequest.set(key, [s.spanId])
      }
    }
    const sameTool = (a: TraceSpan, b: TraceSpan) => a.toolName === '' || b.toolName === '' || a.toolName === b.toolName
    // Framework tool spans by tool name, for the running-time pairing below.
    const frameworkToolsByName = new Map<string, TraceSpan[]>()
    for (const t of tools) {
      if (t.isMcpToolCall || t.toolName === '') continue
      const list = frameworkToolsByName.get(t.toolName)
      if (list) list.push(t)
      else frameworkToolsByName.set(t.toolName, [t])
    }
    for (const s of tools) {
      if (!s.isMcpToolCall) continue
      const parent = this.byId.get(s.parentSpanId)
      if (parent?.isTool && !parent.isMcpToolCall && sameTool(s, parent)) {
        union(s.spanId, parent.spanId)
        continue
      }
      if (!isServer(s)) continue
      if (parent && parent.isMcpToolCall && isClient(parent)) {
        union(s.spanId, parent.spanId)
        continue
      }
      const clients = s.jsonrpcRequestId !== '' ? clientsByRequest.get(`${s.jsonrpcRequestId}\u0000${s.toolName}`) : undefined
      if (clients?.length === 1) {
        union(s.spanId, clients[0]!)
        continue
      }
      // Bounded: with more candidates than this the pairing could not be unique anyway in practice.
      const sameName = frameworkToolsByName.get(s.toolName) ?? []
      if (sameName.length > MAX_RUNNING_CANDIDATES) continue
      const running = sameName.filter((t) => t.startNs <= s.startNs && s.startNs <= t.endNs)
      if (running.length === 1) union(s.spanId, running[0]!.spanId)
    }
    const groups = new Map<string, TraceSpan[]>()
    for (const s of tools) {
      const root = find(s.spanId)
      const members = groups.get(root)
      if (members) members.push(s)
      else groups.set(root, [s])
    }
    const secondary = new Map<string, string>()
    for (const members of groups.values()) {
      if (members.length < 2) continue
      // The caller's side first: a framework's span, then an MCP client's, an MCP server's last.
      const side = (s: TraceSpan) => (!s.isMcpToolCall ? 0 : isClient(s) ? 1 : 2)
      const ranked = members
        .map((s) => ({ s, side: side(s), depth: this.depth(s) }))
        .sort(
          (a, b) =>
            a.side - b.side || a.depth - b.depth || (a.s.startNs < b.s.startNs ? -1 : a.s.startNs > b.s.startNs ? 1 : 0) || (a.s.spanId < b.s.spanId ? -1 : 1),
        )
      const primary = ranked[0]!.s.spanId
      for (const { s } of ranked.slice(1)) secondary.set(s.spanId, primary)
    }
    return secondary
  }
}
