/**
 * What the webhook evaluator remembers between runs, per destination: the
 * findings it saw open (and whether the destination was told), findings
 * resolved lately (so a reopening gets a new id), and the last period whose
 * completeness it judged. Kept in `<dir>/state.json`, replaced atomically
 * after the run's events are in the outbox.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Finding } from '../findings/kinds.js'
import { writeAtomically } from './outbox.js'

/** A finding seen open by a destination's evaluation. */
export interface OpenFinding {
  /** The id of its finding.opened event (finding.resolved is derived from it). */
  opened_id: string
  /** The destination was told (it met min_severity while open); only then is it told of the resolution. */
  announced: boolean
  /** As last seen: the body of a later finding.resolved. */
  finding: Finding
}

/** One destination's memory. */
export interface DestinationState {
  findings: Record<string, OpenFinding>
  /** Finding keys resolved within the look-back: the id of their last opening, and when it was resolved (epoch ms). */
  resolved: Record<string, { opened_id: string; at: number }>
  /** Start (epoch ms) of the last period judged, per granularity. */
  completeness: { hour?: number; day?: number }
}

/** The evaluator's memory: per destination name. */
export interface EvaluatorState {
  version: 1
  destinations: Record<string, DestinationState>
}

const FILE = 'state.json'

/** An empty memory for a destination. */
export function emptyDestinationState(): DestinationState {
  return { findings: {}, resolved: {}, completeness: {} }
}

/** Reads the state (empty when there is none yet). */
export function loadState(dir: string): EvaluatorState {
  let text: string
  try {
    text = readFileSync(join(dir, FILE), 'utf8')
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return { version: 1, destinations: {} }
    throw error
  }
  const parsed = JSON.parse(text) as EvaluatorState
  if (parsed.version !== 1 || typeof parsed.destinations !== 'object') throw new Error(`${join(dir, FILE)} is not a webhook evaluator state this version reads`)
  return parsed
}

/** Replaces the state on disk. */
export function saveState(dir: string, state: EvaluatorState): void {
  writeAtomically(join(dir, FILE), JSON.stringify(state))
}
