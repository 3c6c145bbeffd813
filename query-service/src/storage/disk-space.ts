/**
 * Recognises "the data directory is out of disk space" among storage
 * failures, so the receiver and the query API can say so (503 with
 * Retry-After and a message naming disk space) instead of a generic error.
 */

/** What operators are told while the disk is full. */
export const DISK_FULL_MESSAGE = 'storage is out of disk space; free space in the data directory (or on the ClickHouse server) and retry'

/**
 * How the API and the receiver answer a storage failure, so both say the
 * same: 503 with a code, a message and how long to wait (10 s for a full
 * disk, which takes a person to fix; 5 s otherwise).
 */
export function storageRefusal(diskFull: boolean): { status: 503; code: 'storage_full' | 'storage_unavailable'; message: string; retryAfterSeconds: number } {
  return diskFull
    ? { status: 503, code: 'storage_full', message: DISK_FULL_MESSAGE, retryAfterSeconds: 10 }
    : { status: 503, code: 'storage_unavailable', message: 'storage is unavailable; retry later', retryAfterSeconds: 5 }
}

// ClickHouse: NOT_ENOUGH_SPACE (243) when it cannot reserve space for a part;
// write errors carry the OS's ENOSPC text; the client's server errors carry the code and type.
const DISK_FULL_TEXT = /NOT_ENOUGH_SPACE|not enough space|No space left on device|ENOSPC|Code: 243\b/i

/** True when the error (or its cause) says the disk is full. */
export function isDiskFull(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, type, message } = e as { code?: unknown; type?: unknown; message?: unknown }
    if (code === 'ENOSPC' || code === '243' || code === 243 || type === 'NOT_ENOUGH_SPACE') return true
    if (typeof message === 'string' && DISK_FULL_TEXT.test(message)) return true
  }
  return false
}
