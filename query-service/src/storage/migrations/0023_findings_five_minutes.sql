-- Five-minute counts in the findings digest (issue 15). A burst may last
-- five minutes; the hourly digest alone cannot rule out that an hour's
-- events fell in one five-minute window, so every busy series would have to
-- be read again from the ledger. `five_minutes` maps the five-minute slot of
-- the hour (0-11) to the events delivered in it; sumMap merges it like the
-- other columns. Readers add up each row's busiest slot over the rows of an
-- hour (an upper bound of the hour's busiest slot that needs no map merged,
-- several times cheaper). Delivered counts, so an upper bound, like
-- `delivered`.
--
-- The view is recreated with the new column (migrations run before the
-- receiver accepts spans). Ledger rows that predate this migration get their
-- slots once from backfillFindingsDigest (src/findings/digest.ts), as rows
-- with zero counts and their own first/last times, which change nothing else.
ALTER TABLE nhi_findings_hourly ADD COLUMN IF NOT EXISTS five_minutes SimpleAggregateFunction(sumMap, Tuple(Array(UInt8), Array(UInt64)));

DROP VIEW IF EXISTS nhi_findings_hourly_mv;

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
    maxIf(toDateTime64(event_time, 3, 'UTC'), status = 'ok') AS last_ok_time,
    sumMap([toUInt8(intDiv(toMinute(event_time, 'UTC'), 5))], [toUInt64(1)]) AS five_minutes
FROM nhi_activity
WHERE nhi_id != ''
GROUP BY nhi_id, activity_type, hour, business_unit;
