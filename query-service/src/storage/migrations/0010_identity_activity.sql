-- The ledger re-sorted for identity questions (issue 6). nhi_activity is
-- ordered by (hour, trace, span), so a question about one identity (an
-- entitlement decision, its activity series, when it was last seen) would
-- read the whole ledger. This table holds the same use events ordered by
-- activity type, identity, time, in small granules (256 rows):
-- - one identity's events of one type in a window are one short range, so
--   a single decision reads a few granules;
-- - an entitlement rule's window for a thousand identities is a thousand
--   short ranges inside one activity type's block, so a batch of decisions
--   reads little more than the events it counts.
--
-- Filled by a materialized view on nhi_activity (inserts into the ledger,
-- which its own view fills from otel_traces, cascade here). Events without
-- an identity are not copied: nothing here is asked about them.
--
-- Exactly once, as in the ledger: a span delivered twice produces two
-- identical rows with the same key (activity type, identity, start time,
-- and span_key, a 64-bit hash of TraceId and SpanId that keeps FINAL from
-- reading both strings); readers use FINAL, so it counts once whether or not
-- a merge has run. Two different spans of one identity and activity type
-- that start in the same nanosecond would also need equal hashes to be
-- taken for one. Rows of the ledger that predate this table are copied once
-- by backfillIdentityActivity (src/identities/backfill.ts), recorded in
-- nhi_backfills.
CREATE TABLE IF NOT EXISTS nhi_identity_activity (
    nhi_id String,
    activity_type LowCardinality(String),
    event_time DateTime64(9) CODEC(Delta, ZSTD(1)),
    span_key UInt64 MATERIALIZED cityHash64(trace_id, span_id),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    activity_name String CODEC(ZSTD(1)),
    status LowCardinality(String),
    nhi_type LowCardinality(String),
    owner String CODEC(ZSTD(1)),
    business_unit LowCardinality(String)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
PRIMARY KEY (activity_type, nhi_id, event_time)
ORDER BY (activity_type, nhi_id, event_time, span_key)
SETTINGS index_granularity = 256;

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
