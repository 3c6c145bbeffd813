import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { DETECTION_DEFAULTS } from '../policy/index.js'
import { CONTROLS, FINDING_KINDS } from './kinds.js'
import { findingsOpenApi } from './openapi.js'

const doc = readFileSync(new URL('./FINDINGS.md', import.meta.url), 'utf8')
const section = (title: string) => doc.slice(doc.indexOf(`## ${title}`), doc.indexOf('\n## ', doc.indexOf(`## ${title}`) + 3))
const rows = (text: string) => [...text.matchAll(/^\| `([a-z_]+)` \| (.+?) \|$/gm)].map((m) => [m[1] as string, (m[2] as string).split(' | ')] as const)

describe('FINDINGS.md', () => {
  it('maps every kind to exactly the controls the API returns', () => {
    const table = rows(section('Controls')).map(([kind, cells]) => [kind, [...(cells[0] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1])])
    expect(Object.fromEntries(table)).toEqual(CONTROLS)
  })

  it('documents the rule of every kind, with each threshold at the default the loader applies', () => {
    const kinds = rows(section('Kinds'))
    expect(kinds.map(([kind]) => kind)).toEqual([...FINDING_KINDS])
    for (const [kind, cells] of kinds) {
      for (const [, key, value] of (cells[1] ?? '').matchAll(/`([a-z_]+)`: `([^`]+)`/g)) {
        const fallback: unknown = DETECTION_DEFAULTS[key as keyof typeof DETECTION_DEFAULTS]
        expect(Array.isArray(fallback) ? `[${fallback.join(', ')}]` : String(fallback), `${kind}: ${key}`).toBe(value)
      }
    }
    expect(rows(section('Evidence')).map(([kind]) => kind)).toEqual([...FINDING_KINDS])
  })

  it('names every detection threshold at least once', () => {
    for (const key of Object.keys(DETECTION_DEFAULTS)) expect(section('Kinds'), key).toContain(`\`${key}\``)
  })
})

describe('the OpenAPI fragment', () => {
  it('describes its route and documents evidence for every kind', () => {
    expect(Object.keys(findingsOpenApi.paths)).toEqual(['/v1/findings'])
    const finding = findingsOpenApi.schemas?.Finding as { oneOf: Array<{ properties: { kind: { const: string } } }> }
    expect(finding.oneOf.map((v) => v.properties.kind.const)).toEqual([...FINDING_KINDS])
  })
})
