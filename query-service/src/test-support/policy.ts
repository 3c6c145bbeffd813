/** The policy most query-service tests price with. */
import { validatePolicy, type Policy } from '../policy/index.js'

/** A policy priced in USD: tool calls 0.002, workflows 0.05 (ok only), API calls 0.0001 (any status); default entitlements and detection. */
export const TEST_POLICY: Policy = validatePolicy({
  rate_cards: [
    {
      version: '2026-11',
      effective_from: '2026-11-01T00:00:00Z',
      currency: 'USD',
      meters: [
        { name: 'tool_calls', activity_type: 'tool_invocation', unit_price: '0.002' },
        { name: 'workflows', activity_type: 'workflow_execution', status: 'ok', unit_price: '0.05' },
        { name: 'api_calls', activity_type: 'api_call', status: 'any', unit_price: '0.0001' },
      ],
    },
  ],
}).policy
