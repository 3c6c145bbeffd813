/** Times as ClickHouse takes them. */

/** Formats a Date as a ClickHouse DateTime64 parameter value (UTC, millisecond precision, no zone suffix). */
export function toClickHouseTime(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '')
}
