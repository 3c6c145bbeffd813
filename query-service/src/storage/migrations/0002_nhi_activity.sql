-- The NHI activity ledger: one row per use event (a span that is an
-- activity), with the acting identity resolved. This view is the one place
-- where identity and activity are derived from raw spans; spans from the
-- Collector and from the built-in receiver both land in otel_traces and
-- pass through it, so the two ingest paths cannot disagree.
--
-- Exactly once: ReplacingMergeTree keyed on the span's start hour, TraceId
-- and SpanId. A span delivered twice produces two identical rows that share
-- the key; readers use FINAL (or aggregate states that merge exactly), so it
-- counts once whether or not a background merge has run yet.
CREATE TABLE IF NOT EXISTS nhi_activity (
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    event_time DateTime64(9) CODEC(Delta, ZSTD(1)),
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
    duration_ns UInt64 CODEC(ZSTD(1)),
    ingested_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfHour(event_time), trace_id, span_id)
SETTINGS index_granularity = 8192;

-- Kind and status are read in both spellings the clickhouseexporter has
-- written (pdata String(): 'Server', 'Error'; older releases: 'SPAN_KIND_SERVER',
-- 'STATUS_CODE_ERROR'), so tables filled by older Collectors bill correctly.
--
-- Precedence (documented in the README, "Identity precedence"):
--   identity: span nhi.id > span gen_ai.agent.id > resource nhi.id > resource gen_ai.agent.id
--   type:     nhi.type at the level that supplied the identity (span, then resource),
--             else ai_agent when the identity came from gen_ai.agent.id, else other
--   owner, business unit, credential, on-behalf-of: span attribute > resource attribute
--   activity type: span nhi.activity.type > gen_ai.operation.name execute_tool (tool_invocation)
--             / invoke_workflow (workflow_execution) > SERVER span (api_call); other spans are
--             not use events and are not recorded here
--   activity name: span nhi.activity.name > gen_ai.tool.name (tool invocations) > http.route > span name
CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_activity_mv TO nhi_activity AS
SELECT
    trace_id, span_id, event_time, service, span_name, span_kind,
    nhi_id, nhi_type, identity_source, owner, business_unit, credential_id, on_behalf_of,
    activity_type, activity_name, status, duration_ns
FROM (
    SELECT
        TraceId AS trace_id,
        SpanId AS span_id,
        Timestamp AS event_time,
        ServiceName AS service,
        SpanName AS span_name,
        SpanKind AS span_kind,
        SpanAttributes['nhi.id'] AS s_id,
        SpanAttributes['gen_ai.agent.id'] AS s_agent,
        ResourceAttributes['nhi.id'] AS r_id,
        ResourceAttributes['gen_ai.agent.id'] AS r_agent,
        multiIf(s_id != '', 'span:nhi.id', s_agent != '', 'span:gen_ai.agent.id',
                r_id != '', 'resource:nhi.id', r_agent != '', 'resource:gen_ai.agent.id', '') AS identity_source,
        multiIf(s_id != '', s_id, s_agent != '', s_agent, r_id != '', r_id, r_agent) AS nhi_id,
        multiIf(
            identity_source = '', '',
            SpanAttributes['nhi.type'] != '', SpanAttributes['nhi.type'],
            startsWith(identity_source, 'resource:') AND ResourceAttributes['nhi.type'] != '', ResourceAttributes['nhi.type'],
            identity_source = 'span:nhi.id' AND ResourceAttributes['nhi.type'] != '' AND r_id IN ('', s_id), ResourceAttributes['nhi.type'],
            endsWith(identity_source, 'gen_ai.agent.id'), 'ai_agent',
            'other') AS nhi_type,
        if(SpanAttributes['nhi.owner'] != '', SpanAttributes['nhi.owner'], ResourceAttributes['nhi.owner']) AS owner,
        if(SpanAttributes['nhi.business_unit'] != '', SpanAttributes['nhi.business_unit'], ResourceAttributes['nhi.business_unit']) AS business_unit,
        if(SpanAttributes['nhi.credential.id'] != '', SpanAttributes['nhi.credential.id'], ResourceAttributes['nhi.credential.id']) AS credential_id,
        if(SpanAttributes['nhi.on_behalf_of'] != '', SpanAttributes['nhi.on_behalf_of'], ResourceAttributes['nhi.on_behalf_of']) AS on_behalf_of,
        SpanAttributes['gen_ai.operation.name'] AS gen_ai_op,
        multiIf(
            SpanAttributes['nhi.activity.type'] != '', SpanAttributes['nhi.activity.type'],
            gen_ai_op = 'execute_tool', 'tool_invocation',
            gen_ai_op = 'invoke_workflow', 'workflow_execution',
            SpanKind IN ('Server', 'SPAN_KIND_SERVER'), 'api_call',
            '') AS activity_type,
        multiIf(
            SpanAttributes['nhi.activity.name'] != '', SpanAttributes['nhi.activity.name'],
            activity_type = 'tool_invocation' AND SpanAttributes['gen_ai.tool.name'] != '', SpanAttributes['gen_ai.tool.name'],
            SpanAttributes['http.route'] != '', SpanAttributes['http.route'],
            SpanName) AS activity_name,
        if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'error', 'ok') AS status,
        Duration AS duration_ns
    FROM otel_traces
)
WHERE activity_type != '';
