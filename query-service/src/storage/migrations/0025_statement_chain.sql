-- One statement per place in the chain (issue 16): several query services
-- may share one ClickHouse, and two of them may close a month at the same
-- moment. Each statement is inserted with a deduplication token naming the
-- statement it follows (its `previous` hash, or the chain's start), so
-- ClickHouse keeps the first insert for that place and drops any other
-- (block deduplication, atomic in the server; a Replicated table
-- deduplicates through Keeper the same way). The chain cannot fork, and a
-- month cannot be closed twice.
ALTER TABLE nhi_statements MODIFY SETTING non_replicated_deduplication_window = 10000;
