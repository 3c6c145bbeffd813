-- The usage summary of the open hour (billing/rollup.ts): ten-second slices
-- of the last two hours, each deduplicated on its own (copies of a span share
-- its start time, so they fall in one slice), and per hour a running prefix
-- (`hour_to`, whose period is the END of the slices it adds up, exclusive).
-- Both are only of use near now: kept three hours, where hours are kept
-- three days.
ALTER TABLE nhi_usage_summary MODIFY TTL addSeconds(period, if(level IN ('slice', 'hour_to'), 10800, 259200)) DELETE WHERE level IN ('hour', 'slice', 'hour_to');

ALTER TABLE nhi_usage_summary_periods MODIFY TTL addSeconds(period, if(level IN ('slice', 'hour_to'), 10800, 259200)) DELETE WHERE level IN ('hour', 'slice', 'hour_to');

-- What a run saw: every ledger row ingested before `settled_before` (the
-- start of the oldest insert still under way on the embedded engine, the
-- watermark minus the grace period on a server). Runs recorded before this
-- migration ran with the default grace of 120 seconds.
ALTER TABLE nhi_usage_summary_runs ADD COLUMN IF NOT EXISTS settled_before DateTime64(3) DEFAULT watermark - toIntervalSecond(120) AFTER watermark;
