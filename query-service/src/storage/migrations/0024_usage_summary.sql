-- Usage summaries keyed by what a bill needs (issue 16), replacing the
-- usage rollup of migration 0005.
--
-- The rollup kept one row per period and (identity, span business unit,
-- service, activity type, activity NAME, status). On long-tailed data
-- (10,000 identities with Zipf-like popularity, hundreds of routes) that
-- barely compresses: measured, its hour level held more rows than the
-- ledger. A bill needs the meter, not the name: nhi_usage_summary keeps,
-- per period, (identity, span business unit, service, activity type, rate
-- card, meter) with the card and meter decided per event exactly as billing
-- decides them (first match of the card in force at the event). Rows carry
-- the `policy_key` of the rate cards they were matched with (versions,
-- start times and meters, not prices); when the cards change, rows of the
-- old key are ignored and the summary job rebuilds for the new one (billing
-- reads the ledger meanwhile, exact and slower). Group-bys the summary
-- cannot answer (activity.name, on_behalf_of) read the ledger.
--
-- Levels: `day` and `month` for every closed period, built from
-- nhi_activity FINAL (days) and from the days (months); `hour` only for the
-- last days, for the month to date (TTL below; billing reads hours older
-- than two days from days or the ledger). A newer computation of a period
-- replaces the older (ReplacingMergeTree on computed_at); readers use FINAL.
CREATE TABLE IF NOT EXISTS nhi_usage_summary (
    level LowCardinality(String),
    policy_key LowCardinality(String),
    period DateTime('UTC'),
    nhi_id String,
    business_unit LowCardinality(String),
    service LowCardinality(String),
    activity_type LowCardinality(String),
    card_idx Int16,
    meter_idx Int16,
    events UInt64,
    computed_at DateTime64(3)
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(period)
ORDER BY (level, policy_key, period, nhi_id, business_unit, service, activity_type, card_idx, meter_idx)
TTL period + INTERVAL 3 DAY DELETE WHERE level = 'hour';

-- Which periods the summary holds, per level and policy key.
CREATE TABLE IF NOT EXISTS nhi_usage_summarized (
    level LowCardinality(String),
    policy_key LowCardinality(String),
    period DateTime('UTC'),
    summarized_at DateTime64(3)
) ENGINE = ReplacingMergeTree(summarized_at)
ORDER BY (level, policy_key, period)
TTL period + INTERVAL 3 DAY DELETE WHERE level = 'hour';

-- One row per summary run, per policy key: every ledger row ingested at or
-- before `watermark` is reflected in that key's summary (readers subtract a
-- grace period for inserts still in flight).
CREATE TABLE IF NOT EXISTS nhi_usage_summary_runs (
    run_at DateTime64(3),
    policy_key LowCardinality(String),
    watermark DateTime64(3),
    periods_rebuilt UInt32
) ENGINE = MergeTree
ORDER BY (policy_key, run_at);

DROP TABLE IF EXISTS nhi_usage_rollup;

DROP TABLE IF EXISTS nhi_usage_rolled;

DROP TABLE IF EXISTS nhi_usage_rollup_runs;
