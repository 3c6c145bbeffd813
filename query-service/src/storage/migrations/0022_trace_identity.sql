-- Trace-aware identity (README, "Identity precedence" and "Agent
-- frameworks"). Agent frameworks put the acting agent on an ancestor span
-- (`invoke_agent`, a root span), and exporters send children before their
-- parents, so a span's identity cannot always be known when the span is
-- inserted. From this migration on, derivation from a raw span happens once,
-- into a Null table (nothing is stored there), and two views split its rows:
-- - settled rows, whose identity the span itself decides, go to the ledger
--   (nhi_activity) as before;
-- - rows that need the rest of their trace go to nhi_trace_pending, where
--   the trace resolution job (src/traces/job.ts) reads them, walks their
--   ancestors in nhi_trace_spans, and writes the final ledger row: the
--   identity it resolved, or none with the reason;
-- and a third keeps every span's place in its trace (parent, service, the
-- identity attributes it names, whether it is a tool call) in
-- nhi_trace_spans, ordered by trace, so the job reads a trace in one short
-- range instead of searching otel_traces, whose rows are ordered by service
-- and span name.
-- Both ingest paths (Collector and built-in receiver) insert into
-- otel_traces, so both pass through the same views and the same job.
--
-- A row needs its trace when any of these holds:
-- - it is an MCP `tools/call` span, or a tool span with a
--   `gen_ai.tool.call.id`: the same call may be recorded by several spans,
--   and only the trace shows which one is billed;
-- - its identity would come from `gen_ai.agent.id` or `gen_ai.agent.name`:
--   the policy decides which values are placeholders, not identities;
-- - it is an agent activity (tool, model or workflow) without an identity
--   on the span itself, under a parent: the agent is on an ancestor;
-- - it has no identity at all and has a parent.
-- Everything else (our instrumentation's spans, services with a resource
-- identity serving API calls, roots without identity) settles at once,
-- exactly as migration 0002 derived it.
CREATE TABLE IF NOT EXISTS nhi_span_derivation (
    trace_id String,
    span_id String,
    parent_span_id String,
    event_time DateTime64(9),
    service LowCardinality(String),
    span_name LowCardinality(String),
    span_kind LowCardinality(String),
    nhi_id String,
    nhi_type LowCardinality(String),
    identity_source LowCardinality(String),
    owner String,
    business_unit LowCardinality(String),
    credential_id String,
    on_behalf_of String,
    activity_type LowCardinality(String),
    activity_name String,
    status LowCardinality(String),
    duration_ns UInt64,
    needs_trace UInt8,
    facts String
) ENGINE = Null;

-- Every span's place in its trace, for the job: kept 8 days (a day longer
-- than a pending event, whose ancestors it holds). `facts` packs, joined by
-- the unit separator (0x1F), what the job reads of the span:
--   span level: nhi.id, gen_ai.agent.id, agent name, the attribute that
--     gave the agent name, nhi.type, nhi.owner, nhi.business_unit, principal;
--   resource level: nhi.id, gen_ai.agent.id, gen_ai.agent.name, nhi.type,
--     nhi.owner, nhi.business_unit, nhi.on_behalf_of;
--   is a tool call (0/1), is an MCP tools/call (0/1), tool name,
--     gen_ai.tool.call.id, jsonrpc.request.id.
-- One string instead of twenty columns, and the default (LZ4) compression:
-- every span of every trace is written here, so its cost is ingest's cost
-- (bench/ingest), and its ids are random hex that ZSTD would spend CPU on
-- without gain. A span delivered twice is two rows; the job reads one.
CREATE TABLE IF NOT EXISTS nhi_trace_spans (
    trace_id String,
    span_id String,
    parent_span_id String,
    start_time DateTime64(9),
    duration_ns UInt64,
    service LowCardinality(String),
    span_kind LowCardinality(String),
    facts String,
    ingested_at DateTime DEFAULT now()
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ingested_at)
ORDER BY (trace_id, span_id)
TTL ingested_at + INTERVAL 8 DAY
SETTINGS ttl_only_drop_parts = 1;

-- The use events waiting for their trace. Kept a week (TTL): the job
-- settles every row within NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS of its
-- arrival, and its record in nhi_trace_resolutions says what became of it.
-- Ordered by the hour the span started, so the job reads a backlog an hour
-- of spans at a time.
CREATE TABLE IF NOT EXISTS nhi_trace_pending (
    trace_id String,
    span_id String,
    parent_span_id String,
    event_time DateTime64(9),
    service LowCardinality(String),
    span_name LowCardinality(String),
    span_kind LowCardinality(String),
    business_unit LowCardinality(String),
    credential_id String,
    activity_type LowCardinality(String),
    activity_name String,
    status LowCardinality(String),
    duration_ns UInt64,
    ingested_at DateTime64(3) DEFAULT now64(3),
    INDEX idx_ingested_at ingested_at TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ingested_at)
ORDER BY (toStartOfHour(event_time), trace_id, span_id)
TTL toDateTime(ingested_at) + INTERVAL 7 DAY
SETTINGS ttl_only_drop_parts = 1;

-- What the job decided for each pending use event: `resolved` (a ledger row
-- with an identity was written), `unresolved` (a ledger row without one,
-- `reason` says why), or `same_tool_call` (another span of the trace records
-- the same tool call and is the one billed; `reason` names it). A newer
-- decision replaces an older one.
CREATE TABLE IF NOT EXISTS nhi_trace_resolutions (
    trace_id String,
    span_id String,
    outcome LowCardinality(String),
    nhi_id String,
    reason String,
    resolved_at DateTime64(3),
    INDEX idx_resolved_at resolved_at TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(resolved_at)
PARTITION BY toYYYYMMDD(resolved_at)
ORDER BY (trace_id, span_id)
TTL toDateTime(resolved_at) + INTERVAL 8 DAY
SETTINGS ttl_only_drop_parts = 1;

-- One row per job run that decided or saw something: every pending row
-- ingested before `settled_before` has its decision (readers and the next
-- run start from the latest run's, less a grace period for inserts that
-- were in flight). Kept 8 days, like the rows it speaks of.
CREATE TABLE IF NOT EXISTS nhi_trace_resolution_runs (
    run_at DateTime64(3),
    settled_before DateTime64(3),
    resolved UInt32,
    unresolved UInt32,
    same_tool_call UInt32,
    waiting UInt32
) ENGINE = MergeTree
ORDER BY run_at
TTL toDateTime(run_at) + INTERVAL 8 DAY;

-- Derivation from one span. Precedence (README, "Identity precedence"):
--   identity settled here: span nhi.id; else resource nhi.id for a span that
--     is not an agent activity or has no parent; everything involving
--     gen_ai.agent.* or an ancestor is the job's
--   activity type: span nhi.activity.type > a tool marker (tool_invocation):
--     gen_ai.operation.name execute_tool, openinference.span.kind TOOL with
--     a tool.name (not a handoff), traceloop.span.kind tool, the Vercel AI
--     SDK's ai.toolCall span, MCP mcp.method.name tools/call >
--     gen_ai.operation.name invoke_workflow (workflow_execution) > a model
--     request, gen_ai.operation.name chat, text_completion, generate_content
--     or embeddings (model_call) > a SERVER span without a
--     gen_ai.operation.name (api_call; an agent framework's invoke_agent root
--     is not one); other spans are not use events
--   activity name: span nhi.activity.name > for tools gen_ai.tool.name,
--     tool.name, traceloop.entity.name, ai.toolCall.name, the tool in an MCP
--     span name ("... tools/call <tool>") > for model calls
--     gen_ai.response.model, gen_ai.request.model > http.route > span name
--   agent names (for the job): gen_ai.agent.name, OpenInference AGENT spans'
--     agent.name or graph.node.id, the Vercel AI SDK's ai.telemetry.functionId
--   on-behalf-of: span nhi.on_behalf_of > user.id > enduser.id >
--     traceloop.association.properties.user_id > ai.telemetry.metadata.userId
--     > ai.telemetry.metadata.user_id > resource nhi.on_behalf_of
CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_span_derivation_mv TO nhi_span_derivation AS
SELECT
    trace_id, span_id, parent_span_id, event_time, service, span_name, span_kind,
    settles_with AS nhi_id,
    multiIf(
        identity_source = '', '',
        SpanAttributes['nhi.type'] != '', SpanAttributes['nhi.type'],
        identity_source = 'resource:nhi.id' AND ResourceAttributes['nhi.type'] != '', ResourceAttributes['nhi.type'],
        identity_source = 'span:nhi.id' AND ResourceAttributes['nhi.type'] != '' AND r_id IN ('', s_id), ResourceAttributes['nhi.type'],
        'other') AS nhi_type,
    identity_source,
    if(SpanAttributes['nhi.owner'] != '', SpanAttributes['nhi.owner'], ResourceAttributes['nhi.owner']) AS owner,
    if(SpanAttributes['nhi.business_unit'] != '', SpanAttributes['nhi.business_unit'], ResourceAttributes['nhi.business_unit']) AS business_unit,
    if(SpanAttributes['nhi.credential.id'] != '', SpanAttributes['nhi.credential.id'], ResourceAttributes['nhi.credential.id']) AS credential_id,
    -- An identity is not its own principal.
    if(principal = settles_with, '', principal) AS on_behalf_of,
    activity_type, activity_name, status, duration_ns,
    needs_trace,
    -- nhi_trace_spans.facts, in the order documented there.
    arrayStringConcat([
        s_id, SpanAttributes['gen_ai.agent.id'], s_agent_name, s_agent_name_key, SpanAttributes['nhi.type'],
        SpanAttributes['nhi.owner'], SpanAttributes['nhi.business_unit'], s_principal,
        r_id, ResourceAttributes['gen_ai.agent.id'], ResourceAttributes['gen_ai.agent.name'], ResourceAttributes['nhi.type'],
        ResourceAttributes['nhi.owner'], ResourceAttributes['nhi.business_unit'], ResourceAttributes['nhi.on_behalf_of'],
        if(activity_type = 'tool_invocation', '1', '0'), if(is_mcp_tool_call, '1', '0'), tool_name,
        SpanAttributes['gen_ai.tool.call.id'], SpanAttributes['jsonrpc.request.id']], '\x1f') AS facts
FROM (
    SELECT
        multiIf(
        SpanAttributes['nhi.on_behalf_of'] != '', SpanAttributes['nhi.on_behalf_of'],
        SpanAttributes['user.id'] != '', SpanAttributes['user.id'],
        SpanAttributes['enduser.id'] != '', SpanAttributes['enduser.id'],
        SpanAttributes['traceloop.association.properties.user_id'] != '', SpanAttributes['traceloop.association.properties.user_id'],
        SpanAttributes['ai.telemetry.metadata.userId'] != '', SpanAttributes['ai.telemetry.metadata.userId'],
        SpanAttributes['ai.telemetry.metadata.user_id']) AS s_principal,
        if(s_principal != '', s_principal, ResourceAttributes['nhi.on_behalf_of']) AS principal,
        multiIf(
            SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'],
            SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['agent.name'] != '', SpanAttributes['agent.name'],
            SpanAttributes['openinference.span.kind'] = 'AGENT', SpanAttributes['graph.node.id'],
            SpanAttributes['ai.telemetry.functionId']) AS s_agent_name,
        multiIf(
            SpanAttributes['gen_ai.agent.name'] != '', 'gen_ai.agent.name',
            SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['agent.name'] != '', 'agent.name',
            SpanAttributes['openinference.span.kind'] = 'AGENT' AND SpanAttributes['graph.node.id'] != '', 'graph.node.id',
            SpanAttributes['ai.telemetry.functionId'] != '', 'ai.telemetry.functionId', '') AS s_agent_name_key,
        TraceId AS trace_id,
        SpanId AS span_id,
        ParentSpanId AS parent_span_id,
        Timestamp AS event_time,
        ServiceName AS service,
        SpanName AS span_name,
        SpanKind AS span_kind,
        SpanAttributes,
        ResourceAttributes,
        SpanAttributes['nhi.id'] AS s_id,
        ResourceAttributes['nhi.id'] AS r_id,
        SpanAttributes['gen_ai.operation.name'] AS gen_ai_op,
        SpanAttributes['mcp.method.name'] = 'tools/call' AS is_mcp_tool_call,
        is_mcp_tool_call
            OR gen_ai_op = 'execute_tool'
            OR (SpanAttributes['openinference.span.kind'] = 'TOOL' AND SpanAttributes['tool.name'] != '' AND NOT startsWith(SpanName, 'handoff'))
            OR SpanAttributes['traceloop.span.kind'] = 'tool'
            OR SpanName = 'ai.toolCall' AS has_tool_marker,
        multiIf(
            SpanAttributes['gen_ai.tool.name'] != '', SpanAttributes['gen_ai.tool.name'],
            SpanAttributes['tool.name'] != '', SpanAttributes['tool.name'],
            SpanAttributes['ai.toolCall.name'] != '', SpanAttributes['ai.toolCall.name'],
            SpanAttributes['traceloop.span.kind'] = 'tool', SpanAttributes['traceloop.entity.name'],
            is_mcp_tool_call AND position(SpanName, 'tools/call ') > 0, substring(SpanName, position(SpanName, 'tools/call ') + 11),
            '') AS tool_name,
        gen_ai_op IN ('chat', 'text_completion', 'generate_content', 'embeddings') AS is_model_call,
        multiIf(
            SpanAttributes['nhi.activity.type'] != '', SpanAttributes['nhi.activity.type'],
            has_tool_marker, 'tool_invocation',
            gen_ai_op = 'invoke_workflow', 'workflow_execution',
            is_model_call, 'model_call',
            SpanKind IN ('Server', 'SPAN_KIND_SERVER') AND gen_ai_op = '', 'api_call',
            '') AS activity_type,
        multiIf(
            SpanAttributes['nhi.activity.name'] != '', SpanAttributes['nhi.activity.name'],
            activity_type = 'tool_invocation' AND tool_name != '', tool_name,
            activity_type = 'model_call' AND SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'],
            activity_type = 'model_call' AND SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
            SpanAttributes['http.route'] != '', SpanAttributes['http.route'],
            SpanName) AS activity_name,
        if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'error', 'ok') AS status,
        Duration AS duration_ns,
        SpanAttributes['gen_ai.agent.id'] != '' OR s_agent_name != '' AS s_agent,
        ResourceAttributes['gen_ai.agent.id'] != '' OR ResourceAttributes['gen_ai.agent.name'] != '' AS r_agent,
        activity_type IN ('tool_invocation', 'model_call', 'workflow_execution') AS is_agent_activity,
        ParentSpanId != '' AS has_parent,
        is_mcp_tool_call OR (activity_type = 'tool_invocation' AND SpanAttributes['gen_ai.tool.call.id'] != '') AS may_repeat,
        multiIf(
            may_repeat, '',
            s_id != '', s_id,
            s_agent, '',
            has_parent AND is_agent_activity, '',
            r_agent, '',
            r_id != '', r_id,
            '') AS settles_with,
        multiIf(settles_with = '', '', settles_with = s_id, 'span:nhi.id', 'resource:nhi.id') AS identity_source,
        activity_type != '' AND settles_with = '' AND (may_repeat OR s_agent OR r_agent OR has_parent) AS needs_trace
    FROM otel_traces
);

-- Settled rows: the ledger, as before.
CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_ledger_settled_mv TO nhi_activity AS
SELECT
    trace_id, span_id, event_time, service, span_name, span_kind,
    nhi_id, nhi_type, identity_source, owner, business_unit, credential_id, on_behalf_of,
    activity_type, activity_name, status, duration_ns
FROM nhi_span_derivation
WHERE activity_type != '' AND needs_trace = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_trace_pending_mv TO nhi_trace_pending AS
SELECT
    trace_id, span_id, parent_span_id, event_time, service, span_name, span_kind,
    business_unit, credential_id, activity_type, activity_name, status, duration_ns
FROM nhi_span_derivation
WHERE needs_trace = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_trace_spans_mv TO nhi_trace_spans AS
SELECT
    trace_id, span_id, parent_span_id, event_time AS start_time, duration_ns, service, span_kind, facts
FROM nhi_span_derivation;

-- The derivation of migration 0002 is replaced by the views above (created
-- first, so no insert in between goes underived; one that lands in both is
-- the same ledger row twice, which the ledger's key counts once).
DROP VIEW IF EXISTS nhi_activity_mv;
