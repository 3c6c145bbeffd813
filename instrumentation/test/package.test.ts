import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { VERSION } from '../src/version.js'

const packageDir = fileURLToPath(new URL('../', import.meta.url))
const manifest = JSON.parse(readFileSync(`${packageDir}package.json`, 'utf8')) as {
  version: string
  exports: Record<string, Record<string, string>>
  peerDependencies: Record<string, string>
  dependencies: Record<string, string>
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
    expect(manifest.dependencies['@opentelemetry/api']).toBeUndefined()
  })
})
