-- Summed values per meter in the usage summary (README, "Meters"): meters
-- may sum a numeric span attribute or the span's duration, so a summary row
-- keeps, beside its event counts per meter, `sums` (element i + 2: the
-- exact sum for sum meter i of the row's card) and `missing` (element
-- i + 2: events of that meter that carried no value). Aligned with
-- `events`, trailing zeros left out, summed element-wise. Rows summarised
-- before have both empty, which is exact for them: their cards' meters
-- only counted (a policy with a sum meter has another policy key, so its
-- periods are summarised afresh).
ALTER TABLE nhi_usage_summary ADD COLUMN IF NOT EXISTS sums Array(Decimal128(9)) AFTER events;

ALTER TABLE nhi_usage_summary ADD COLUMN IF NOT EXISTS missing Array(UInt64) AFTER sums;

-- How many events a row stands for. With several meter classes one event
-- may count for several meters, so the counts in `events` no longer add up
-- to the events; older rows (one class) default to their sum, which is exact.
ALTER TABLE nhi_usage_summary ADD COLUMN IF NOT EXISTS spans UInt64 DEFAULT arraySum(events) AFTER missing;
