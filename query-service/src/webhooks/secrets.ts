/**
 * Signing secrets of the webhook destinations, read from the environment
 * once at start-up. A destination whose variable is unset or empty stops
 * start-up with an error naming its `secret_env` key. The secrets live only
 * in memory, in the map this returns; nothing here logs or stores them.
 */
import { PolicyError, quote, type PolicyIssue } from '../policy/index.js'
import type { WebhookDestination } from './schema.js'

/** A destination with its signing secret. */
export interface SigningDestination extends WebhookDestination {
  /** The secret read from `secret_env`; used only to sign. */
  readonly secret: string
}

/**
 * Pairs each destination with the secret its `secret_env` names; throws a
 * {@link PolicyError} (source: the policy's) listing every destination whose
 * variable is unset or empty.
 */
export function withSecrets(destinations: readonly WebhookDestination[], env: Readonly<Record<string, string | undefined>>, policySource: string): SigningDestination[] {
  const issues: PolicyIssue[] = []
  const signing = destinations.map((destination, i) => {
    const secret = env[destination.secret_env] ?? ''
    if (secret.trim() === '') {
      issues.push({
        path: `webhooks[${i}].secret_env`,
        message: `names ${quote(destination.secret_env)}, which is ${env[destination.secret_env] === undefined ? 'not set' : 'empty'} in the environment; set it to destination ${quote(destination.name)}'s signing secret`,
      })
    }
    return { ...destination, secret }
  })
  if (issues.length > 0) throw new PolicyError(policySource, issues)
  return signing
}
