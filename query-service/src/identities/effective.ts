/**
 * The effective identity of a ledger row, defined once: for a declared
 * identity the inventory's type, owner and business unit win over what the
 * spans said; for an undeclared one the span attributes stand. Every query
 * that groups, filters or scopes by business unit, owner or type goes
 * through these fragments, so a business-unit key sees the same rows in
 * billing, identities, entitlements and findings.
 */

/**
 * A join that brings the current declaration (if any) of `nhi_id` in as
 * `inv`. Append it after `FROM <ledger-like source>`; the source must have
 * an `nhi_id` column.
 */
export const INVENTORY_JOIN = `LEFT ANY JOIN (
      SELECT id, type, owner, business_unit, tier, approved_activities
      FROM nhi_inventory FINAL
    ) AS inv ON inv.id = nhi_id`

/** Effective business unit of a row, given INVENTORY_JOIN. */
export const EFFECTIVE_BUSINESS_UNIT = `if(inv.id != '', inv.business_unit, business_unit)`
/** Effective owner of a row, given INVENTORY_JOIN. */
export const EFFECTIVE_OWNER = `if(inv.id != '', inv.owner, owner)`
/** Effective identity type of a row, given INVENTORY_JOIN. */
export const EFFECTIVE_TYPE = `if(inv.id != '', inv.type, nhi_type)`

/**
 * The business-unit restriction of a key, as a condition on the effective
 * business unit with the units bound as `{business_units:Array(String)}`;
 * empty when the key sees every unit.
 */
export function businessUnitCondition(businessUnits: readonly string[] | null): string {
  return businessUnits ? `AND ${EFFECTIVE_BUSINESS_UNIT} IN {business_units:Array(String)}` : ''
}
