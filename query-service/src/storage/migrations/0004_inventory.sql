-- Declared identities (POST /v1/inventory, or an inventory file at start).
-- For a declared identity, the inventory's type, owner and business unit win
-- over span attributes everywhere (billing, scoping, findings): readers join
-- through the effective-identity SQL in src/identities/effective.ts.
-- One row per id; a newer updated_at replaces an older one, and is_deleted
-- retires a declaration without losing its history until a merge.
CREATE TABLE IF NOT EXISTS nhi_inventory (
    id String,
    type LowCardinality(String),
    owner String,
    business_unit LowCardinality(String),
    tier LowCardinality(String),
    approved_activities Array(String),
    updated_at DateTime64(3),
    is_deleted UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY id;
