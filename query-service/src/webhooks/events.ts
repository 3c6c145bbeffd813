/**
 * Webhook events: their ids and bodies (README, "Webhooks"). An id is a
 * hash of what the event is about, never of when or where it was noticed,
 * so two processes that notice the same change send the same id and a
 * receiver can drop the second.
 */
import { createHash } from 'node:crypto'
import type { Finding } from '../findings/kinds.js'
import type { Statement } from '../billing/statement.js'
import type { WebhookEventType } from './schema.js'

/** The body of every delivery. */
export interface WebhookEvent<T extends WebhookEventType = WebhookEventType> {
  /** Stable id: the same change gives the same id in every process; deduplicate on it. */
  id: string
  type: T
  /** When this process made the event (RFC 3339); differs between processes, unlike the id. */
  created_at: string
  data: Record<string, unknown>
}

/** A deterministic event id from the event type and what it is about. */
export function eventId(type: WebhookEventType, ...parts: string[]): string {
  const hash = createHash('sha256').update([type, ...parts].join('\u001f'), 'utf8').digest('hex')
  return `evt_${hash.slice(0, 32)}`
}

// Kinds whose window starts at a fact of the data (the last activity, the episode's first window, the last rotation):
// a new start is a new occurrence. The others' windows start where the look-back does and move with it.
const ANCHORED_KINDS: ReadonlySet<Finding['kind']> = new Set(['dormant', 'burst', 'overactive', 'auth_failures', 'stale_credential'])

/**
 * What makes a finding the same finding from one evaluation to the next:
 * its kind, identity, the thing it is about (the service of a
 * telemetry_gap, the credential of a credential_reuse, the activity type of
 * a burst or a sustained_growth, the reason of a privilege_drift), and, for
 * kinds whose window starts at a fact of the data, that start.
 */
export function findingKey(finding: Finding): string {
  const evidence = finding.evidence
  const about =
    finding.kind === 'telemetry_gap'
      ? evidence.service
      : finding.kind === 'credential_reuse'
        ? evidence.credential_id
        : finding.kind === 'burst' || finding.kind === 'sustained_growth'
          ? evidence.activity_type
          : finding.kind === 'privilege_drift'
            ? evidence.reason
            : ''
  const parts = [finding.kind, finding.nhi_id ?? '', typeof about === 'string' ? about : '']
  if (ANCHORED_KINDS.has(finding.kind)) parts.push(finding.window.from)
  return parts.join('|')
}

/** A finding.opened or finding.resolved event. */
export function findingEvent(type: 'finding.opened' | 'finding.resolved', id: string, key: string, finding: Finding, at: Date): WebhookEvent {
  return { id, type, created_at: at.toISOString(), data: { finding_key: key, ...(type === 'finding.resolved' ? { resolved_at: at.toISOString() } : {}), finding } }
}

/** The completeness of one settled period, as a completeness.below_threshold event states it. */
export interface PeriodCompleteness {
  granularity: 'hour' | 'day'
  from: Date
  to: Date
  /** The business units judged; null for the whole deployment. */
  businessUnits: readonly string[] | null
  spans: number
  identifiedSpans: number
  identifiedRatio: number
  threshold: number
  pendingSpans: number
}

/** A completeness.below_threshold event; its id names the period and the business units judged. */
export function completenessEvent(c: PeriodCompleteness, at: Date): WebhookEvent {
  const scope = c.businessUnits === null ? '*' : c.businessUnits.join(',')
  return {
    id: eventId('completeness.below_threshold', c.granularity, c.from.toISOString(), scope),
    type: 'completeness.below_threshold',
    created_at: at.toISOString(),
    data: {
      period: { granularity: c.granularity, from: c.from.toISOString(), to: c.to.toISOString() },
      business_units: c.businessUnits,
      spans: c.spans,
      identified_spans: c.identifiedSpans,
      identified_ratio: c.identifiedRatio,
      threshold: c.threshold,
      status: 'incomplete',
      pending_spans: c.pendingSpans,
    },
  }
}

/** A statement.closed event: the statement's summary and hash (the lines are read with GET /v1/statements/{period}). */
export function statementEvent(statement: Statement & { content_hash: string }, at: Date): WebhookEvent {
  return {
    id: eventId('statement.closed', statement.period, statement.content_hash),
    type: 'statement.closed',
    created_at: at.toISOString(),
    data: {
      period: statement.period,
      from: statement.from,
      to: statement.to,
      closed_at: statement.closed_at,
      currency: statement.currency,
      rate_card_versions: statement.rate_card_versions,
      total: statement.total,
      adjustments_total: statement.adjustments_total,
      completeness_status: statement.completeness.status,
      content_hash: statement.content_hash,
      previous: statement.previous,
    },
  }
}
