-- Running prefixes of the day and of the month (billing/rollup.ts), like an
-- hour's (0031): `day_to`, the sum of a day's summarised hours from its
-- start, and `month_to`, the sum of a month's summarised days from its
-- start, each stored at its END (exclusive). A bill of the month to date then
-- reads one row per identity for the closed days, one for today's closed
-- hours, one for the open hour's slices, and the last seconds from the
-- ledger, instead of every day's and hour's rows. A prefix is of use only
-- near now: a day's is kept three days, like hours, and a month's 62 days.
ALTER TABLE nhi_usage_summary MODIFY TTL addSeconds(period, multiIf(level IN ('slice', 'hour_to'), 10800, level = 'month_to', 5356800, 259200)) DELETE WHERE level IN ('hour', 'slice', 'hour_to', 'day_to', 'month_to');

ALTER TABLE nhi_usage_summary_periods MODIFY TTL addSeconds(period, multiIf(level IN ('slice', 'hour_to'), 10800, level = 'month_to', 5356800, 259200)) DELETE WHERE level IN ('hour', 'slice', 'hour_to', 'day_to', 'month_to');
