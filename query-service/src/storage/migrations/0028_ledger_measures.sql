-- Meter values in the ledger (README, "Meters"): a meter may sum a numeric
-- span attribute (model tokens, bytes) or the span's duration, so each
-- ledger row keeps its span's numeric attributes in `measures`, as the
-- decimal strings the span carried (summed exactly as Decimal128(9) when a
-- bill reads them). Rows written before this migration have none: a sum
-- meter counts them as events without a value.
--
-- The columns come first, then the views: ALTER ... MODIFY QUERY swaps a
-- view's SELECT in one step, so no span passes through half-changed views.
-- Derivation is stated whole again, as 0022 wrote it, with `measures` added.
ALTER TABLE nhi_activity ADD COLUMN IF NOT EXISTS measures Map(LowCardinality(String), String) CODEC(ZSTD(1));

ALTER TABLE nhi_span_derivation ADD COLUMN IF NOT EXISTS measures Map(LowCardinality(String), String);

ALTER TABLE nhi_trace_pending ADD COLUMN IF NOT EXISTS measures Map(LowCardinality(String), String);

ALTER TABLE nhi_span_derivation_mv MODIFY QUERY
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
    measures,
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
        -- The numeric span attributes, for meters that sum a value (README,
        -- "Meters"): plain non-negative decimals only, without the numbers
        -- that are not quantities (ports, status codes, line numbers, thread
        -- ids), identifiers that happen to be numeric (`*.id`, `*.pid`, the
        -- nhi.* attributes) and anything named like a secret. The GenAI token
        -- counts are kept under the current convention's names whichever
        -- convention the span used.
        -- The cheap test first (a value starting with a digit), so the
        -- patterns run on the few numeric attributes only; the token aliases
        -- are filtered apart and laid under the span's own, so no copy of
        -- every attribute is made.
        mapUpdate(
            mapFilter(
                (k, v) -> v >= '0' AND v < ':' AND match(v, '^[0-9]{1,20}(\\.[0-9]{1,9})?$'),
                map('gen_ai.usage.input_tokens', multiIf(
                        SpanAttributes['gen_ai.usage.prompt_tokens'] != '', SpanAttributes['gen_ai.usage.prompt_tokens'],
                        SpanAttributes['llm.token_count.prompt'] != '', SpanAttributes['llm.token_count.prompt'],
                        SpanAttributes['ai.usage.inputTokens'] != '', SpanAttributes['ai.usage.inputTokens'],
                        SpanAttributes['ai.usage.promptTokens']),
                    'gen_ai.usage.output_tokens', multiIf(
                        SpanAttributes['gen_ai.usage.completion_tokens'] != '', SpanAttributes['gen_ai.usage.completion_tokens'],
                        SpanAttributes['llm.token_count.completion'] != '', SpanAttributes['llm.token_count.completion'],
                        SpanAttributes['ai.usage.outputTokens'] != '', SpanAttributes['ai.usage.outputTokens'],
                        SpanAttributes['ai.usage.completionTokens']))),
            mapFilter(
                (k, v) -> v >= '0' AND v < ':' AND match(v, '^[0-9]{1,20}(\\.[0-9]{1,9})?$')
                    AND k NOT IN ('http.response.status_code', 'http.status_code', 'rpc.grpc.status_code',
                                  'server.port', 'client.port', 'url.port', 'network.peer.port', 'network.local.port',
                                  'net.peer.port', 'net.host.port', 'code.lineno', 'code.line.number', 'thread.id')
                    AND NOT match(lower(k), '(^|[._])(token|api_key|apikey|password|passwd|secret)$|authorization')
                    AND NOT match(lower(k), '(^|[._])(id|pid|uid|gid)$')
                    AND NOT startsWith(k, 'nhi.'),
                SpanAttributes)) AS measures,
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

ALTER TABLE nhi_ledger_settled_mv MODIFY QUERY
SELECT
    trace_id, span_id, event_time, service, span_name, span_kind,
    nhi_id, nhi_type, identity_source, owner, business_unit, credential_id, on_behalf_of,
    activity_type, activity_name, status, duration_ns, measures
FROM nhi_span_derivation
WHERE activity_type != '' AND needs_trace = 0;

ALTER TABLE nhi_trace_pending_mv MODIFY QUERY
SELECT
    trace_id, span_id, parent_span_id, event_time, service, span_name, span_kind,
    business_unit, credential_id, activity_type, activity_name, status, duration_ns, measures
FROM nhi_span_derivation
WHERE needs_trace = 1;
