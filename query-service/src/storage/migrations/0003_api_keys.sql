-- API keys the service generated itself (the first-start admin key). Only
-- the SHA-256 of a key is kept; the key is printed once and never stored.
-- Keys from NHI_METER_API_KEYS_FILE are read from that file and not copied here.
CREATE TABLE IF NOT EXISTS nhi_api_keys (
    name String,
    sha256 FixedString(64),
    scopes Array(LowCardinality(String)),
    business_units Array(String),
    created_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY sha256;
