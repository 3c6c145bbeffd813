-- Closed billing periods. A statement is written once, when its month is
-- closed, and never changed: its content (canonical JSON) and the SHA-256 of
-- that content are stored together, and readers verify the hash. Spans that
-- arrive for a closed month later are reported as adjustments in the next
-- statement, never by rewriting this one.
CREATE TABLE IF NOT EXISTS nhi_statements (
    period String,
    closed_at DateTime64(3),
    content String,
    content_hash FixedString(64)
) ENGINE = MergeTree
ORDER BY period;
