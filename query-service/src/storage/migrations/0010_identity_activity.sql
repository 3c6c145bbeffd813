-- The ledger re-sorted for identity questions (issue 6). nhi_activity is
-- ordered by (hour, trace, span), so a question about one identity (an
-- entitlement decision, its activity series, when it was last seen) would
-- read the whole ledger. This table holds the same use events ordered by
-- activity type, day, identity, time:
-- - an entitlement rule's window for a thousand identities (one activity
--   type, the last N days) is one contiguous block, read once;
-- - one identity's events of a type on a day are a granule or two (small
--   granules: 1024 rows), so a single decision reads a few thousand rows;
-- - a part written now holds recent days only, so FINAL has to merge
--   overlapping parts only over recent days; older days read as stored.
--
-- Filled by a materialized view on nhi_activity (inserts into the ledger,
-- which its own view fills from otel_traces, cascade here). Events without
-- an identity are not copied: nothing here is asked about them.
--
-- Exactly once, as in the ledger: a span delivered twice produces two
-- identical rows with the same key (activity type, identity, start time,
-- TraceId, SpanId); readers use FINAL, so it counts once whether or not a
-- merge has run. Rows of the ledger that predate this table are copied once
-- by backfillIdentityActivity (src/identities/backfill.ts), recorded in
-- nhi_backfills.
CREATE TABLE IF NOT EXISTS nhi_identity_activity (
    nhi_id String,
    activity_type LowCardinality(String),
    event_time DateTime64(9) CODEC(Delta, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    activity_name String CODEC(ZSTD(1)),
    status LowCardinality(String),
    nhi_type LowCardinality(String),
    owner String CODEC(ZSTD(1)),
    business_unit LowCardinality(String)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
PRIMARY KEY (activity_type, toDate(event_time), nhi_id, event_time)
ORDER BY (activity_type, toDate(event_time), nhi_id, event_time, trace_id, span_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_identity_activity_mv TO nhi_identity_activity AS
SELECT nhi_id, activity_type, event_time, trace_id, span_id, activity_name, status, nhi_type, owner, business_unit
FROM nhi_activity
WHERE nhi_id != '';

-- One-off data jobs that have completed (name, when), so start-up runs each once.
CREATE TABLE IF NOT EXISTS nhi_backfills (
    name String,
    rows UInt64,
    done_at DateTime64(3)
) ENGINE = ReplacingMergeTree(done_at)
ORDER BY name;
