/**
 * Runs schemathesis (the foreign OpenAPI fuzzer, from the hardening
 * virtualenv) against a running service and reads its JUnit report into a
 * list of failures a test can print and assert on.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The checks every response is held to. */
export const FUZZ_CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_schema_conformance',
  'response_headers_conformance',
  'negative_data_rejection',
  'unsupported_method',
] as const

/**
 * Statuses that count as refusing schema-violating input. Besides
 * schemathesis' defaults: 413 (body over the limit) and 431 (a query string
 * over the HTTP server's header limit), both answered with the envelope.
 */
const REJECTION_STATUSES = ['400', '401', '403', '404', '405', '406', '409', '413', '415', '422', '428', '429', '431']

/** One failing operation from the report. */
export interface FuzzFailure {
  /** "METHOD /path", or "Stateful tests". */
  operation: string
  /** Failure codes, e.g. "ST101, ST103". */
  codes: string
  /** The report's text: which check, the response, and a curl line that reproduces it. */
  detail: string
}

/** What one run found. */
export interface FuzzResult {
  exitCode: number | null
  /** Test cases (one per operation, plus the stateful phase) in the report. */
  testCases: string[]
  failures: FuzzFailure[]
  /** Requests schemathesis generated, from its summary line. */
  generated: number | undefined
  output: string
  seconds: number
}

function unescapeXml(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&')
}

/** Reads a schemathesis JUnit report: every testcase, and each one's failure or error. */
export function parseJunitReport(xml: string): { testCases: string[]; failures: FuzzFailure[] } {
  if (!/<testsuites?\b/.test(xml)) throw new Error(`not a JUnit report: ${xml.slice(0, 200)}`)
  const testCases: string[] = []
  const failures: FuzzFailure[] = []
  for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = unescapeXml(/\bname="([^"]*)"/.exec(match[1]!)?.[1] ?? '(unnamed)')
    testCases.push(name)
    for (const problem of (match[3] ?? '').matchAll(/<(failure|error)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/\1>)/g)) {
      const codes = unescapeXml(/\bmessage="([^"]*)"/.exec(problem[2]!)?.[1] ?? problem[1]!)
      failures.push({ operation: name, codes, detail: unescapeXml(problem[3] ?? '').trim() })
    }
  }
  return { testCases, failures }
}

/** Options of one run. */
export interface FuzzRun {
  schemathesis: string
  /** URL of the OpenAPI document (the service's own /openapi.json, or a file with `baseUrl`). */
  schema: string
  baseUrl?: string
  headers: Record<string, string>
  seed: number
  maxExamples: number
  /** Extra arguments, e.g. operation filters. */
  args?: string[]
  timeoutMs: number
}

/** Runs schemathesis once and reads its report; never throws for failures it found. */
export async function runSchemathesis(run: FuzzRun): Promise<FuzzResult> {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-fuzz-'))
  const config = join(dir, 'schemathesis.toml')
  writeFileSync(config, `[checks.negative_data_rejection]\nexpected-statuses = [${REJECTION_STATUSES.map((s) => `"${s}"`).join(', ')}]\n`)
  const args = [
    '--config-file', config, '--no-color',
    'run', run.schema,
    ...(run.baseUrl ? ['--url', run.baseUrl] : []),
    ...Object.entries(run.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
    '--checks', FUZZ_CHECKS.join(','),
    '--seed', String(run.seed),
    '--max-examples', String(run.maxExamples),
    '--workers', '1',
    '--request-timeout', '30',
    '--generation-database', 'none',
    '--report', 'junit',
    '--report-dir', dir,
    ...(run.args ?? []),
  ] // prettier-ignore
  const started = Date.now()
  const { exitCode, output } = await new Promise<{ exitCode: number | null; output: string }>((resolve, reject) => {
    const child = spawn(run.schemathesis, args, { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (d: Buffer) => (text += d.toString()))
    child.stderr.on('data', (d: Buffer) => (text += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), run.timeoutMs)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ exitCode: code, output: text })
    })
  })
  const seconds = (Date.now() - started) / 1000
  const report = readdirSync(dir).find((f) => f.startsWith('junit') && f.endsWith('.xml'))
  if (!report) throw new Error(`schemathesis wrote no JUnit report (exit ${exitCode}):\n${output.slice(-4000)}`)
  const { testCases, failures } = parseJunitReport(readFileSync(join(dir, report), 'utf8'))
  const generated = /(\d+) generated/.exec(output)?.[1]
  // A non-zero exit without a reported failure is still a failure (a crash, an unreachable schema).
  if (exitCode !== 0 && failures.length === 0) failures.push({ operation: '(run)', codes: `exit ${exitCode}`, detail: output.slice(-4000) })
  return { exitCode, testCases, failures, generated: generated === undefined ? undefined : Number(generated), output, seconds }
}

/** A readable list of failures for an assertion message. */
export function describeFailures(failures: FuzzFailure[]): string {
  return failures.map((f) => `${f.operation} [${f.codes}]\n${f.detail.slice(0, 3000)}`).join('\n\n')
}
