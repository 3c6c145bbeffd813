-- Usage rollups for fast billing over long ranges (issue 5).
--
-- nhi_usage_rollup holds deduplicated counts of ledger rows per period and
-- (identity, span business unit, service, activity, status), at three
-- levels: closed hours (rebuilt from nhi_activity FINAL), closed days (from
-- the hours) and closed months (from the days). The rollup job
-- (src/billing/rollup.ts) rebuilds exactly the periods whose ledger rows
-- changed since its last run, so every level is exact by construction; a
-- newer computation of a period replaces the older (ReplacingMergeTree on
-- computed_at). Spans that arrive late, or again, after their period was
-- rolled up make it "dirty": billing reads dirty periods from the ledger
-- itself until the next run (README, "Billing: rollups and lateness").
CREATE TABLE IF NOT EXISTS nhi_usage_rollup (
    level LowCardinality(String),
    period DateTime('UTC'),
    nhi_id String,
    business_unit LowCardinality(String),
    service LowCardinality(String),
    activity_type LowCardinality(String),
    activity_name String,
    status LowCardinality(String),
    events UInt64,
    computed_at DateTime64(3)
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(period)
ORDER BY (level, period, nhi_id, business_unit, service, activity_type, activity_name, status);

-- Which periods the rollup holds, per level, and when they were last rebuilt.
CREATE TABLE IF NOT EXISTS nhi_usage_rolled (
    level LowCardinality(String),
    period DateTime('UTC'),
    rolled_at DateTime64(3)
) ENGINE = ReplacingMergeTree(rolled_at)
ORDER BY (level, period);

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
