-- Inserts into otel_traces are deduplicated (issue 17): the receiver's
-- ingest log moves exports into ClickHouse in batches, and on a ClickHouse
-- server an insert can succeed while its answer is lost (a cut connection);
-- the retry carries the same insert_deduplication_token, so ClickHouse drops
-- it instead of storing the rows twice. The window is counted in inserts.
-- Identical blocks inserted without a token are dropped the same way (they
-- are the same rows). The ledger and every table filled from otel_traces
-- deduplicated already; this keeps the raw table exact too.
ALTER TABLE otel_traces MODIFY SETTING non_replicated_deduplication_window = 1000;
