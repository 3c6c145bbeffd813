import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { freePort, REPO_ROOT } from './helpers/service.js'

describe('npm run demo', () => {
  it('starts a throw-away service, drives the workload and prints the bill, completeness and URLs', async () => {
    const [api, otlp] = [await freePort(), await freePort()]
    const run = spawnSync('npm', ['run', '-s', 'demo'], {
      cwd: REPO_ROOT,
      env: { ...process.env, NHI_METER_DEMO_EXIT: '1', NHI_METER_PORT: String(api), NHI_METER_OTLP_PORT: String(otlp) },
      encoding: 'utf8',
      timeout: 120_000,
    })
    expect(run.status, run.stderr).toBe(0)
    const out = run.stdout
    // 55 tool calls of which 4 fail, 2 token exchanges, 6 workflows, 1 rotation, 20 gateway calls: 80 billed.
    expect(out).toMatch(/agent-support-triage\s+tool_calls\s+37\s+0\.074/)
    expect(out).toMatch(/int-crm-sync\s+api_calls\s+10\s+0\.001/)
    expect(out).toMatch(/sa-nightly-etl\s+workflow_runs\s+6\s+0\.06/)
    expect(out).toMatch(/total\s+80\s+0\.165/)
    expect(out).toContain('84 of 87 use events tied to an identity')
    expect(out).toContain('INCOMPLETE')
    expect(out).toContain(`http://127.0.0.1:${api}/v1/billable?group_by=nhi.id,meter`)
    expect(out).not.toContain('demo-partner-key')
  })
})
