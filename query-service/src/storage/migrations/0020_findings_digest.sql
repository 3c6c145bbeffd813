-- The findings digest (issue 7): what GET /v1/findings needs to know about
-- every identity, summarised so that judging a month reads a few rows per
-- identity and hour instead of every use event.
--
-- nhi_findings_hourly: per identity, activity type, span business unit and
-- hour, how many events were delivered (a span delivered twice counts
-- twice: an upper bound, used only to choose which series a rule reads
-- again exactly from nhi_identity_activity with FINAL), how many failed,
-- and the first, last and last successful event time (duplicates cannot
-- change those). nhi_findings_daily: per identity, business unit and day,
-- an owner the spans named and the credential fingerprints used.
--
-- Filled by materialized views on nhi_activity (inserts into the ledger
-- cascade here); rows of the ledger that predate this migration are added
-- once by backfillFindingsDigest (src/findings/digest.ts), recorded in
-- nhi_backfills. Both tables aggregate on merge; readers GROUP BY.
CREATE TABLE IF NOT EXISTS nhi_findings_hourly (
    nhi_id String,
    activity_type LowCardinality(String),
    hour DateTime('UTC'),
    business_unit LowCardinality(String),
    delivered SimpleAggregateFunction(sum, UInt64),
    failed SimpleAggregateFunction(sum, UInt64),
    first_time SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_time SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    last_ok_time SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (nhi_id, activity_type, hour, business_unit);

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_findings_hourly_mv TO nhi_findings_hourly AS
SELECT
    nhi_id,
    activity_type,
    toStartOfHour(event_time, 'UTC') AS hour,
    business_unit,
    count() AS delivered,
    countIf(status = 'error') AS failed,
    min(toDateTime64(event_time, 3, 'UTC')) AS first_time,
    max(toDateTime64(event_time, 3, 'UTC')) AS last_time,
    maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok') AS last_ok_time
FROM nhi_activity
WHERE nhi_id != ''
GROUP BY nhi_id, activity_type, hour, business_unit;

CREATE TABLE IF NOT EXISTS nhi_findings_daily (
    nhi_id String,
    day Date,
    business_unit LowCardinality(String),
    owner SimpleAggregateFunction(max, String),
    credentials SimpleAggregateFunction(groupUniqArrayArray, Array(String))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (nhi_id, day, business_unit);

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_findings_daily_mv TO nhi_findings_daily AS
SELECT
    nhi_id,
    toDate(event_time, 'UTC') AS day,
    business_unit,
    max(owner) AS owner,
    groupUniqArrayIf(credential_id, credential_id != '') AS credentials
FROM nhi_activity
WHERE nhi_id != ''
GROUP BY nhi_id, day, business_unit;
