-- Derived tables renamed after what they hold (migrations/README.md,
-- "Derived tables"): nhi_findings_hourly holds no findings but per identity,
-- activity type and hour the event counts and times, so it becomes
-- nhi_identity_hours; nhi_findings_daily (per identity and day, owners and
-- credential fingerprints) becomes nhi_identity_days; nhi_usage_summarized
-- (which periods nhi_usage_summary holds) becomes nhi_usage_summary_periods.
-- Rows stay where they are: a rename moves no data.
--
-- A materialized view keeps the name of its TO table, not the table: after
-- the rename it would still write to the old name, which is gone, and every
-- insert into nhi_activity (hence into otel_traces) would fail. So each view
-- is dropped before its table is renamed and created again, under the new
-- name, with the SELECT of the migration that last defined it (0023 for the
-- hourly view, 0020 for the daily one). Spans inserted between the drop and
-- the create (by a Collector writing to otel_traces; the service applies
-- migrations before its receiver accepts spans) reach the ledger but not
-- these two tables.
--
-- Every statement may run again after a start-up that died half-way:
-- RENAME TABLE IF EXISTS does nothing once the old name is gone.
DROP VIEW IF EXISTS nhi_findings_hourly_mv;

RENAME TABLE IF EXISTS nhi_findings_hourly TO nhi_identity_hours;

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_identity_hours_mv TO nhi_identity_hours AS
SELECT
    nhi_id,
    activity_type,
    toStartOfHour(event_time, 'UTC') AS hour,
    business_unit,
    count() AS delivered,
    countIf(status = 'error') AS failed,
    min(toDateTime64(event_time, 3, 'UTC')) AS first_time,
    max(toDateTime64(event_time, 3, 'UTC')) AS last_time,
    maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok') AS last_ok_time,
    sumMap([toUInt8(intDiv(toMinute(event_time, 'UTC'), 5))], [toUInt64(1)]) AS five_minutes
FROM nhi_activity
WHERE nhi_id != ''
GROUP BY nhi_id, activity_type, hour, business_unit;

DROP VIEW IF EXISTS nhi_findings_daily_mv;

RENAME TABLE IF EXISTS nhi_findings_daily TO nhi_identity_days;

CREATE MATERIALIZED VIEW IF NOT EXISTS nhi_identity_days_mv TO nhi_identity_days AS
SELECT
    nhi_id,
    toDate(event_time, 'UTC') AS day,
    business_unit,
    max(owner) AS owner,
    groupUniqArrayIf(credential_id, credential_id != '') AS credentials
FROM nhi_activity
WHERE nhi_id != ''
GROUP BY nhi_id, day, business_unit;

-- Written by the usage summary job (billing/rollup.ts), no view.
RENAME TABLE IF EXISTS nhi_usage_summarized TO nhi_usage_summary_periods;
