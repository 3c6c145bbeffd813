import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { freePorts, REPO_ROOT } from './helpers/service.js'

describe('npm run demo', () => {
  it('starts a throw-away service, drives the workload and prints the bill, completeness and URLs', async () => {
    const [api, otlp, metrics] = await freePorts(3)
    const run = spawnSync('npm', ['run', '-s', 'demo'], {
      cwd: REPO_ROOT,
      env: { ...process.env, NHI_METER_DEMO_EXIT: '1', NHI_METER_PORT: String(api), NHI_METER_OTLP_PORT: String(otlp), NHI_METER_METRICS_PORT: String(metrics) },
      encoding: 'utf8',
      timeout: 120_000,
    })
    expect(run.status, run.stderr).toBe(0)
    const out = run.stdout
    // The scripted services bill 80 events (55 tool calls of which 4 fail, 2 token exchanges,
    // 6 workflows, 1 rotation, 20 gateway calls); the example agent gateway adds 74 more.
    expect(out).toMatch(/int-crm-sync\s+api_calls\s+10\s+0\.001/)
    expect(out).toMatch(/sa-nightly-etl\s+workflow_runs\s+6\s+0\.06/)
    expect(out).toMatch(/partner-acme\s+tool_calls\s+9\s+0\.018/)
    expect(out).toMatch(/total\s+154\s+0\.3995/)
    expect(out).toContain('166 of 169 use events tied to an identity')
    expect(out).toContain('22 requests from 4 callers')
    expect(out).toMatch(/never_seen\s+sa-legacy-batch/)
    expect(out).toMatch(/unregistered\s+int-billing-export/)
    expect(out).toContain('INCOMPLETE')
    // Every finding the demo shows is one it planted, and it says why; nothing on its normal identities.
    expect(out).toMatch(/high\s+privilege_drift crm-sync: .*\n\s+planted: the example inventory approves crm-sync/)
    expect(out).toMatch(/medium\s+unregistered int-billing-export: .*\n\s+planted: /)
    expect(out).not.toContain('NOT PLANTED')
    expect(out).toContain(`http://127.0.0.1:${api}/v1/billable?group_by=nhi.id,meter`)
    expect(out).not.toContain('demo-partner-key')
  })
})
