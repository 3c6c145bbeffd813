import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { VERSION } from '../src/version.js'

const packageDir = fileURLToPath(new URL('../', import.meta.url))
const manifest = JSON.parse(readFileSync(`${packageDir}package.json`, 'utf8')) as {
  version: string
  exports: Record<string, Record<string, string>>
  peerDependencies: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  dependencies?: Record<string, string>
}

describe('package manifest', () => {
  it('reports the version in package.json as the tracer version', () => {
    expect(VERSION).toBe(manifest.version)
  })

  it('has a source file for every export, and the built file beside it in dist', () => {
    for (const [subpath, conditions] of Object.entries(manifest.exports)) {
      expect(existsSync(`${packageDir}${conditions['nhi-meter-source']}`), subpath).toBe(true)
      expect(conditions.default?.replace('./dist/', './src/').replace(/\.js$/, '.ts'), subpath).toBe(conditions['nhi-meter-source'])
      expect(conditions.types, subpath).toBe(conditions.default?.replace(/\.js$/, '.d.ts'))
    }
    expect(Object.keys(manifest.exports)).toContain('./register')
  })

  it('takes the OpenTelemetry API from the app, not as its own copy', () => {
    expect(manifest.peerDependencies['@opentelemetry/api']).toBeDefined()
    expect(manifest.dependencies?.['@opentelemetry/api']).toBeUndefined()
  })

  it('takes every OpenTelemetry package its code imports from the app, on either SDK line', () => {
    const imported = new Set<string>()
    for (const file of readdirSync(`${packageDir}src`).filter((name) => name.endsWith('.ts'))) {
      for (const [, name] of readFileSync(`${packageDir}src/${file}`, 'utf8').matchAll(/from '(@opentelemetry\/[a-z-]+)'/g)) imported.add(name!)
    }
    expect([...imported]).toEqual(expect.arrayContaining(['@opentelemetry/api', '@opentelemetry/sdk-trace', '@opentelemetry/sdk-node']))
    // sdk-trace-base has no 3.x release; sdk-trace is the same SDK under the name both lines publish.
    expect(imported.has('@opentelemetry/sdk-trace-base')).toBe(false)
    for (const name of imported) {
      expect(manifest.peerDependencies[name], name).toBeDefined()
      expect(manifest.peerDependenciesMeta?.[name]?.optional, name).not.toBe(true)
    }
    expect(Object.keys(manifest.dependencies ?? {}).filter((name) => name.startsWith('@opentelemetry/'))).toEqual([])
    // The 2.x line (API 1.9, Node 20) and the current 3.x line (API 1.10, Node 22.15+).
    for (const name of imported) if (name !== '@opentelemetry/api') expect(manifest.peerDependencies[name], name).toMatch(/^\^(2\.12|0\.223)\.0 \|\| \^(3\.1|0\.301)\.0$/)
  })
})
