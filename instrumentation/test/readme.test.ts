import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { FINGERPRINT_KEY_ENV } from '../src/fingerprint.js'
import { IDENTITY_ENV, IDENTITY_PRECEDENCE } from '../src/identity.js'
import { API_KEY_HEADER_ENV, API_KEY_IDENTITIES_FILE_ENV } from '../src/resolvers.js'
import * as semconv from '../src/semconv.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('states the identity precedence exactly as the code defines it', () => {
    const block = /<!-- precedence:start -->\n([\s\S]*?)\n<!-- precedence:end -->/.exec(readme)?.[1]
    const expected = IDENTITY_PRECEDENCE.map((p, i) => `${i + 1}. **${p.source}** — ${p.rule}`).join('\n')
    expect(block).toBe(expected)
  })

  it('documents every attribute the package emits', () => {
    const names = Object.entries(semconv)
      .filter(([name]) => name.startsWith('ATTR_') && name !== 'ATTR_GEN_AI_AGENT_ID')
      .map(([, value]) => value as string)
    for (const name of names) expect(readme, name).toContain(`| \`${name}\` |`)
  })

  it('documents every NHI environment variable the package reads', () => {
    for (const name of [...Object.values(IDENTITY_ENV), FINGERPRINT_KEY_ENV, API_KEY_IDENTITIES_FILE_ENV, API_KEY_HEADER_ENV]) {
      expect(readme, name).toContain(`\`${name}\``)
    }
  })

  it('states every peer dependency with the range package.json gives it, and whether it is optional', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      peerDependencies: Record<string, string>
      peerDependenciesMeta?: Record<string, { optional?: boolean }>
    }
    const table = /<!-- peers:start -->\n([\s\S]*?)\n<!-- peers:end -->/.exec(readme)?.[1] ?? ''
    const rows = [...table.matchAll(/^\| `([^`]+)`( \(optional\))? \| `(.+?)` \|/gm)].map(([, name, optional, range]) => [name, range!.replaceAll('\\|', '|'), Boolean(optional)])
    const expected = Object.entries(manifest.peerDependencies).map(([name, range]) => [name, range, manifest.peerDependenciesMeta?.[name]?.optional === true])
    expect(rows.sort()).toEqual(expected.sort())
  })

  it('keeps the usual section order of OpenTelemetry packages', () => {
    const order = ['## Install', '## Zero-code', '## Programmatic', '## Options', '## Attributes', '## Identity precedence', '## Compatibility']
    const positions = order.map((heading) => readme.indexOf(`\n${heading}\n`))
    expect(positions.every((p) => p > 0)).toBe(true)
    expect([...positions].sort((a, b) => a - b)).toEqual(positions)
  })
})
