-- Hourly usage rollup for fast billing over long ranges (issue 5).
--
-- nhi_usage_hourly holds, per closed hour, the deduplicated count of ledger
-- rows per (identity, span business unit, service, activity, status). It is
-- rebuilt hour by hour from nhi_activity FINAL by the rollup job
-- (src/billing/rollup.ts), so it is exact by construction; a newer
-- computation of an hour replaces the older one (ReplacingMergeTree on
-- computed_at). Spans that arrive late, or twice, after their hour was rolled
-- up make that hour "dirty": billing reads dirty hours from the ledger itself
-- until the next run recomputes them (see README, "Billing: lateness").
CREATE TABLE IF NOT EXISTS nhi_usage_hourly (
    hour DateTime('UTC'),
    nhi_id String,
    business_unit LowCardinality(String),
    service LowCardinality(String),
    activity_type LowCardinality(String),
    activity_name String,
    status LowCardinality(String),
    events UInt64,
    computed_at DateTime64(3)
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, nhi_id, business_unit, service, activity_type, activity_name, status);

-- Which hours the rollup holds.
CREATE TABLE IF NOT EXISTS nhi_usage_rolled_hours (
    hour DateTime('UTC'),
    rolled_at DateTime64(3)
) ENGINE = ReplacingMergeTree(rolled_at)
ORDER BY hour;

-- One row per rollup run. Every ledger row ingested at or before
-- `watermark` is reflected in the rollup (readers subtract a grace period
-- for inserts that were still in flight).
CREATE TABLE IF NOT EXISTS nhi_usage_rollup_runs (
    run_at DateTime64(3),
    watermark DateTime64(3),
    hours_recomputed UInt32
) ENGINE = MergeTree
ORDER BY run_at;

-- Lets billing find late rows (ingested after the last run) without reading
-- the whole ledger: ingestion order follows time, so min/max per granule prune well.
ALTER TABLE nhi_activity ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;
