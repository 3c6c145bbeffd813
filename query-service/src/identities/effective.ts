import { globMatches } from '../policy/index.js'

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

/** Which business units a caller may see: null for all of them. */
export type BusinessUnitScope = readonly string[] | null

/**
 * The business-unit restriction of a key, as a condition on the effective
 * business unit with the units bound as `{business_units:Array(String)}`;
 * empty when the key sees every unit.
 */
export function businessUnitCondition(businessUnits: BusinessUnitScope): string {
  return businessUnits ? `AND ${EFFECTIVE_BUSINESS_UNIT} IN {business_units:Array(String)}` : ''
}

/**
 * INVENTORY_JOIN restricted to the identities bound as
 * `{<idsParam>:Array(String)}`: the same declaration, read only for the
 * identities a query is about, so per-identity questions stay fast with a
 * large inventory. The source must also be restricted to those identities.
 */
export function inventoryJoinFor(idsParam: string): string {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(idsParam)) throw new RangeError(`parameter name must be a lowercase word, got ${JSON.stringify(idsParam)}`)
  return `LEFT ANY JOIN (
      SELECT id, type, owner, business_unit, tier, approved_activities
      FROM nhi_inventory FINAL
      WHERE id IN {${idsParam}:Array(String)}
    ) AS inv ON inv.id = nhi_id`
}

// One approved_activities entry `entry` against the row's activity: `type`
// alone approves every name of that type; `type:glob` approves the names the
// glob matches. The glob becomes the anchored RE2 pattern globToRe2 would
// write (regexpQuoteMeta escapes every metacharacter, including * and ?,
// which then turn into "any run" and "any one character"); a test holds the
// two translations to the same answers inside ClickHouse.
const ENTRY_TYPE = `if(position(entry, ':') = 0, entry, substring(entry, 1, position(entry, ':') - 1))`
const ENTRY_GLOB = `substring(entry, position(entry, ':') + 1)`
const ENTRY_MATCHES =
  `(${ENTRY_TYPE} = activity_type AND (position(entry, ':') = 0 OR ${ENTRY_GLOB} = '*' OR ` +
  String.raw`match(activity_name, concat('^', replaceAll(replaceAll(regexpQuoteMeta(${ENTRY_GLOB}), '\\*', '[\\s\\S]*'), '\\?', '[\\s\\S]'), '$'))))`

/**
 * Whether a row's activity is approved for its identity, given
 * INVENTORY_JOIN (or inventoryJoinFor): the identity is declared, and its
 * `approved_activities` is empty (no restriction declared) or has an entry
 * (`type` or `type:name-glob`) that matches the row's activity type and
 * name. Activity of an undeclared identity is never approved.
 */
export const APPROVED_ACTIVITY = `(inv.id != '' AND (empty(inv.approved_activities) OR arrayExists(entry -> ${ENTRY_MATCHES}, inv.approved_activities)))`

/**
 * TypeScript twin of {@link EFFECTIVE_BUSINESS_UNIT}, for answers computed
 * outside ClickHouse: the declared unit for a declared identity, else the
 * span's. Tests hold the two to the same answers.
 */
export function effectiveBusinessUnit(declaration: { business_unit: string } | undefined, spanBusinessUnit: string): string {
  return declaration ? declaration.business_unit : spanBusinessUnit
}

/**
 * TypeScript twin of {@link APPROVED_ACTIVITY}: declared, and either no
 * approved_activities or an entry (`type`, or `type:name-glob` matched with
 * the policy's glob matcher) that covers the activity. Tests hold the two to
 * the same answers inside ClickHouse.
 */
export function activityApproved(declaration: { approved_activities: readonly string[] } | undefined, activityType: string, activityName: string): boolean {
  if (!declaration) return false
  if (declaration.approved_activities.length === 0) return true
  return declaration.approved_activities.some((entry) => {
    const colon = entry.indexOf(':')
    if (colon < 0) return entry === activityType
    return entry.slice(0, colon) === activityType && globMatches(entry.slice(colon + 1), activityName)
  })
}
