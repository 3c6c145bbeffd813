/**
 * The delivery signature (README, "Webhooks"): HMAC-SHA256 with the
 * destination's secret over `<unix seconds>.<body>`, sent as
 * `X-NHI-Meter-Signature: t=<unix seconds>,v1=<hex digest>`. The README's
 * verification recipe is tested against this.
 */
import { createHmac } from 'node:crypto'

/** The header a delivery's signature is sent in. */
export const SIGNATURE_HEADER = 'X-NHI-Meter-Signature'

/** The signature header's value for a body signed at `timestampSeconds`. */
export function signatureHeader(secret: string, timestampSeconds: number, body: string): string {
  const digest = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest('hex')
  return `t=${timestampSeconds},v1=${digest}`
}
