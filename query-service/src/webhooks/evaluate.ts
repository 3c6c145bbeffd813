/**
 * The webhook evaluator (README, "Webhooks"): each run computes, for every
 * destination, what it covers now (the findings of the last 30 days as
 * GET /v1/findings computes them for a key limited to the destination's
 * business units, and the completeness of the periods settled since the
 * last run), compares it with what the previous run saw (state.ts), and
 * queues an event for each change: finding.opened, finding.resolved,
 * completeness.below_threshold. The events go into the outbox (fsync)
 * before the new state is written, so a crash between the two repeats
 * events (same ids) and never loses one.
 *
 * Runs are aligned to the interval (`to` is the last multiple of it), so
 * processes that run in the same interval see the same windows and make
 * the same ids.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { computeFindings } from '../findings/evaluate.js'
import { SEVERITIES, type Finding, type FindingKind } from '../findings/kinds.js'
import { DEFAULT_FINDINGS_DAYS } from '../findings/routes.js'
import { completenessStatus, identifiedRatio, type Policy } from '../policy/index.js'
import { pendingSpans, serviceCounts } from '../telemetry/queries.js'
import { completenessEvent, eventId, findingEvent, findingKey, type PeriodCompleteness, type WebhookEvent } from './events.js'
import type { NewDelivery, Outbox } from './outbox.js'
import type { WebhookDestination } from './schema.js'
import { emptyDestinationState, loadState, saveState, type DestinationState, type EvaluatorState, type OpenFinding } from './state.js'

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/** Periods whose completeness is judged, and how many missed ones a run catches up on after a pause. */
export const COMPLETENESS_PERIODS = [
  { granularity: 'hour', ms: HOUR_MS, catchUp: 24 },
  { granularity: 'day', ms: DAY_MS, catchUp: 7 },
] as const

/** What the evaluator works with. */
export interface EvaluatorOptions {
  client: ClickHouseClient
  policy: () => Policy
  destinations: readonly WebhookDestination[]
  outbox: Outbox
  /** Where state.json lives. */
  dir: string
  /** Runs are aligned to this (ms). */
  intervalMs: number
  /** A period is judged once it ended this long ago (the rollup grace: rows may still be arriving until then). */
  settleMs: number
  /** Findings look-back (default 30 days, as GET /v1/findings). */
  lookbackMs?: number
}

/** What a run did. */
export interface EvaluationResult {
  queued: number
  /** Deliveries the outbox refused (their destination's queue is full). */
  refused: number
}

/** Computes changes and queues their events; one run at a time. */
export class WebhookEvaluator {
  private state: EvaluatorState

  constructor(private readonly options: EvaluatorOptions) {
    this.state = loadState(options.dir)
  }

  /** One evaluation as of `nowMs`. */
  async run(nowMs: number = Date.now()): Promise<EvaluationResult> {
    const { options } = this
    const at = new Date(nowMs)
    const to = Math.floor(nowMs / options.intervalMs) * options.intervalMs
    const lookback = options.lookbackMs ?? DEFAULT_FINDINGS_DAYS * DAY_MS
    const policy = options.policy()
    const next: EvaluatorState = { version: 1, destinations: {} }
    const deliveries: NewDelivery[] = []
    const queue = (destination: string, event: WebhookEvent) => deliveries.push({ destination: destination, id: event.id, type: event.type, body: JSON.stringify(event) })

    // Findings: one computation per distinct set of business units (and the kinds its destinations want).
    const findingsOf = new Map<string, Promise<Finding[]>>()
    const findingsFor = (destination: WebhookDestination): Promise<Finding[]> => {
      const scope = scopeKey(destination.business_units)
      let found = findingsOf.get(scope)
      if (!found) {
        const kinds = new Set<FindingKind>(options.destinations.filter((d) => scopeKey(d.business_units) === scope && wantsFindings(d)).flatMap((d) => d.kinds))
        found = computeFindings(options.client, {
          from: new Date(to - lookback),
          to: new Date(to),
          detection: policy.detection,
          scope: destination.business_units,
          includeServices: destination.business_units === null,
          kinds,
          rollupGraceSeconds: options.settleMs / 1000,
        })
        findingsOf.set(scope, found)
      }
      return found
    }
    const completenessOf = new Map<string, Promise<PeriodCompleteness>>()
    const completenessFor = (units: readonly string[] | null, granularity: 'hour' | 'day', from: number, ms: number) => {
      const key = `${scopeKey(units)}|${granularity}|${from}`
      let found = completenessOf.get(key)
      if (!found) {
        found = periodCompleteness(options.client, { from: new Date(from), to: new Date(from + ms) }, units, policy.billing.completeness_threshold, options.settleMs / 1000).then((c) => ({ ...c, granularity, businessUnits: units }))
        completenessOf.set(key, found)
      }
      return found
    }

    for (const destination of options.destinations) {
      const before = this.state.destinations[destination.name] ?? emptyDestinationState()
      const after: DestinationState = { findings: {}, resolved: {}, completeness: {} }
      if (wantsFindings(destination)) {
        const wanted = new Set(destination.kinds)
        const current = (await findingsFor(destination)).filter((f) => wanted.has(f.kind))
        diffFindings(destination, before, after, current, { at, to, lookback }, queue)
      }
      if (destination.events.includes('completeness.below_threshold')) {
        for (const period of COMPLETENESS_PERIODS) {
          // The latest period that ended at least settleMs ago.
          const latest = Math.floor((nowMs - options.settleMs) / period.ms) * period.ms - period.ms
          const last = before.completeness[period.granularity]
          const first = last === undefined ? latest : Math.max(last + period.ms, latest - (period.catchUp - 1) * period.ms)
          for (let start = first; start <= latest; start += period.ms) {
            const c = await completenessFor(destination.business_units, period.granularity, start, period.ms)
            if (completenessStatus(c.spans, c.identifiedSpans, c.threshold) === 'incomplete') queue(destination.name, completenessEvent(c, at))
          }
          after.completeness[period.granularity] = Math.max(latest, last ?? latest)
        }
      }
      next.destinations[destination.name] = after
    }

    const refused = await options.outbox.add(deliveries)
    // A destination whose queue refused events (it is full) keeps its earlier state, so the next run finds the same
    // changes and queues them again: at least once, never silently dropped. Events this run did queue for it may go
    // out twice, under the same id.
    for (const name of new Set(refused.map((d) => d.destination))) {
      const before = this.state.destinations[name]
      if (before) next.destinations[name] = before
      else delete next.destinations[name]
    }
    saveState(options.dir, next)
    this.state = next
    return { queued: deliveries.length - refused.length, refused: refused.length }
  }
}

/** Whether a destination asked for any finding event. */
function wantsFindings(destination: WebhookDestination): boolean {
  return destination.events.includes('finding.opened') || destination.events.includes('finding.resolved')
}

function scopeKey(units: readonly string[] | null): string {
  return units === null ? '*' : units.join('\u0000')
}

/** Severity at or above the destination's minimum. */
function meetsSeverity(finding: Finding, destination: WebhookDestination): boolean {
  return SEVERITIES.indexOf(finding.severity) <= SEVERITIES.indexOf(destination.min_severity)
}

// Compares the findings open now with those open at the last run, filling `after` and queuing the events.
function diffFindings(
  destination: WebhookDestination,
  before: DestinationState,
  after: DestinationState,
  current: readonly Finding[],
  time: { at: Date; to: number; lookback: number },
  queue: (destination: string, event: WebhookEvent) => void,
): void {
  const opens = destination.events.includes('finding.opened')
  const resolves = destination.events.includes('finding.resolved')
  for (const [key, resolved] of Object.entries(before.resolved)) if (resolved.at >= time.to - time.lookback) after.resolved[key] = resolved
  for (const finding of current) {
    const key = findingKey(finding)
    if (after.findings[key]) continue
    const seen = before.findings[key]
    const entry: OpenFinding = seen ? { ...seen, finding } : { opened_id: openedId(key, finding, after.resolved[key]?.opened_id, time.to), announced: false, finding }
    if (!entry.announced && meetsSeverity(finding, destination)) {
      entry.announced = true
      if (opens) queue(destination.name, findingEvent('finding.opened', entry.opened_id, key, finding, time.at))
    }
    after.findings[key] = entry
    delete after.resolved[key]
  }
  for (const [key, seen] of Object.entries(before.findings)) {
    if (after.findings[key]) continue
    if (seen.announced && resolves) queue(destination.name, findingEvent('finding.resolved', eventId('finding.resolved', seen.opened_id), key, seen.finding, time.at))
    after.resolved[key] = { opened_id: seen.opened_id, at: time.to }
  }
}

// The opening's id: from the finding's key and window start; a reopening that would repeat the last opening's id
// (a finding whose window start did not move) also names the run, so a receiver does not drop it as a duplicate.
function openedId(key: string, finding: Finding, lastOpenedId: string | undefined, to: number): string {
  const id = eventId('finding.opened', key, finding.window.from)
  return id === lastOpenedId ? eventId('finding.opened', key, finding.window.from, new Date(to).toISOString()) : id
}

// Identified and all activity spans of a period, as /v1/telemetry/completeness counts them for these units.
async function periodCompleteness(
  client: ClickHouseClient,
  range: { from: Date; to: Date },
  units: readonly string[] | null,
  threshold: number,
  graceSeconds: number,
): Promise<Omit<PeriodCompleteness, 'granularity' | 'businessUnits'>> {
  const [counts, pending] = await Promise.all([serviceCounts(client, range, units, graceSeconds), pendingSpans(client, range, units)])
  const waiting = [...pending.values()].reduce((a, b) => a + b, 0)
  const spans = counts.reduce((n, c) => n + c.spans, 0) + waiting
  const identifiedSpans = counts.reduce((n, c) => n + c.identifiedSpans, 0)
  return { from: range.from, to: range.to, spans, identifiedSpans, identifiedRatio: identifiedRatio(spans, identifiedSpans), threshold, pendingSpans: waiting }
}
