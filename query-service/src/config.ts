/**
 * Runtime configuration from the environment (README, "Configuration"), parsed once
 * and validated; a bad value stops start-up with a message naming the
 * variable and the problem.
 */
import { z } from 'zod'

const port = (name: string) =>
  z
    .string()
    .regex(/^\d{1,5}$/, `${name} must be a port number (0-65535)`)
    .transform(Number)
    .refine((n) => n <= 65535, `${name} must be a port number (0-65535)`)

/** A rate (per second, decimals allowed) or `0`/`off` for no limit. */
const rate = (name: string, fallback: number, unit: string) =>
  z
    .string()
    .regex(/^(off|\d{1,7}(\.\d{1,6})?)$/, `${name} must be a number of ${unit} (0 or off disables the limit)`)
    .transform((s) => (s === 'off' ? 0 : Number(s)))
    .default(fallback)

/** A whole count of at least 1. */
const count = (name: string, fallback: number, meaning: string) =>
  z
    .string()
    .regex(/^\d{1,9}$/, `${name} must be a whole number (${meaning})`)
    .transform(Number)
    .refine((n) => n >= 1, `${name} must be at least 1 (${meaning})`)
    .default(fallback)

/** Defaults of the query API's rate limits (README, Configuration). */
export const RATE_LIMIT_DEFAULTS = { perSecond: 200, burst: 400, authFailuresPerMinute: 60 } as const

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/

const envSchema = z
  .object({
    NHI_METER_PORT: port('NHI_METER_PORT').default(8080),
    NHI_METER_OTLP_PORT: z.union([z.literal('off'), port('NHI_METER_OTLP_PORT')]).default(4318),
    NHI_METER_METRICS_PORT: z.union([z.literal('off'), port('NHI_METER_METRICS_PORT')], { error: 'NHI_METER_METRICS_PORT must be a port number (0-65535) or off' }).default(9464),
    NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS: z
      .string()
      .regex(/^\d{1,6}$/, 'NHI_METER_FINDINGS_METRICS_INTERVAL_SECONDS must be a whole number of seconds (0 disables the evaluation)')
      .transform(Number)
      .default(300),
    NHI_METER_HOST: z.string().min(1).max(255).default('127.0.0.1'),
    NHI_METER_DATA_DIR: z.string().min(1).default('./data'),
    CLICKHOUSE_URL: z.url({ protocol: /^https?$/, error: 'CLICKHOUSE_URL must be an http:// or https:// URL' }).optional(),
    CLICKHOUSE_USER: z.string().optional(),
    CLICKHOUSE_PASSWORD: z.string().optional(),
    CLICKHOUSE_DATABASE: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'CLICKHOUSE_DATABASE must be a plain identifier')
      .optional(),
    NHI_METER_CLICKHOUSE_CLUSTER: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,64}$/, 'NHI_METER_CLICKHOUSE_CLUSTER must be a plain cluster name')
      .optional(),
    NHI_METER_POLICY: z.string().min(1).optional(),
    NHI_METER_API_KEYS_FILE: z.string().min(1).optional(),
    NHI_METER_INVENTORY_FILE: z.string().min(1).optional(),
    NHI_METER_OTLP_AUTH: z.enum(['key', 'none'], { error: 'NHI_METER_OTLP_AUTH must be key or none' }).default('key'),
    NHI_METER_ROLLUP_INTERVAL_SECONDS: z
      .string()
      .regex(/^\d{1,6}$/, 'NHI_METER_ROLLUP_INTERVAL_SECONDS must be a whole number of seconds (0 disables the job)')
      .transform(Number)
      .default(60),
    NHI_METER_ROLLUP_GRACE_SECONDS: z
      .string()
      .regex(/^\d{1,4}$/, 'NHI_METER_ROLLUP_GRACE_SECONDS must be a whole number of seconds from 0 to 3600')
      .transform(Number)
      .refine((n) => n <= 3600, 'NHI_METER_ROLLUP_GRACE_SECONDS must be a whole number of seconds from 0 to 3600')
      .default(120),
    NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS: z
      .string()
      .regex(/^\d{1,6}$/, 'NHI_METER_TRACE_RESOLUTION_INTERVAL_SECONDS must be a whole number of seconds (0 disables the job)')
      .transform(Number)
      .default(5),
    NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS: z
      .string()
      .regex(/^\d{1,6}$/, 'NHI_METER_TRACE_RESOLUTION_WAIT_SECONDS must be a whole number of seconds')
      .transform(Number)
      .default(300),
    NHI_METER_WEBHOOK_INTERVAL_SECONDS: z
      .string()
      .regex(/^\d{1,6}$/, 'NHI_METER_WEBHOOK_INTERVAL_SECONDS must be a whole number of seconds (0 disables the webhook evaluator in this process)')
      .transform(Number)
      .default(60),
    NHI_METER_WEBHOOK_TIMEOUT_SECONDS: count('NHI_METER_WEBHOOK_TIMEOUT_SECONDS', 10, 'seconds a webhook receiver has to answer one attempt'),
    NHI_METER_WEBHOOK_MAX_RETRY_SECONDS: count('NHI_METER_WEBHOOK_MAX_RETRY_SECONDS', 86_400, 'seconds after its first attempt a failing webhook delivery is given up'),
    NHI_METER_OTLP_MAX_BODY_BYTES: z
      .string()
      .regex(/^\d{1,12}$/, 'NHI_METER_OTLP_MAX_BODY_BYTES must be a byte count')
      .transform(Number)
      .refine((n) => n >= 1024, 'NHI_METER_OTLP_MAX_BODY_BYTES must be at least 1024')
      .default(20 * 1024 * 1024),
    NHI_METER_OTLP_MAX_QUEUED_SPANS: count('NHI_METER_OTLP_MAX_QUEUED_SPANS', 5_000_000, 'spans in the ingest log not yet in ClickHouse before the receiver answers 429'),
    NHI_METER_INGEST_LOG_DIR: z.string().min(1).optional(),
    NHI_METER_INGEST_LOG_MAX_BYTES: count('NHI_METER_INGEST_LOG_MAX_BYTES', 1024 * 1024 * 1024, 'bytes of exports in the ingest log not yet in ClickHouse before the receiver answers 429'),
    NHI_METER_RATE_LIMIT_PER_SECOND: rate('NHI_METER_RATE_LIMIT_PER_SECOND', RATE_LIMIT_DEFAULTS.perSecond, 'requests per second per API key'),
    NHI_METER_RATE_LIMIT_BURST: count('NHI_METER_RATE_LIMIT_BURST', RATE_LIMIT_DEFAULTS.burst, 'the most requests one API key may make at once'),
    NHI_METER_AUTH_FAILURES_PER_MINUTE: rate('NHI_METER_AUTH_FAILURES_PER_MINUTE', RATE_LIMIT_DEFAULTS.authFailuresPerMinute, 'refused keys per minute per client address'),
  })
  .superRefine((env, ctx) => {
    // Port 0 picks a free port, so only fixed ports can collide.
    const metricsPort = env.NHI_METER_METRICS_PORT
    if (metricsPort !== 'off' && metricsPort !== 0) {
      for (const [key, other] of [['NHI_METER_PORT', env.NHI_METER_PORT], ['NHI_METER_OTLP_PORT', env.NHI_METER_OTLP_PORT]] as const) {
        if (other === metricsPort) {
          ctx.addIssue({ code: 'custom', path: ['NHI_METER_METRICS_PORT'], message: `NHI_METER_METRICS_PORT must differ from ${key} (both are ${metricsPort}): the metrics have a listener of their own` })
        }
      }
    }
    if (env.NHI_METER_OTLP_AUTH === 'none' && env.NHI_METER_OTLP_PORT !== 'off' && !LOOPBACK.test(env.NHI_METER_HOST)) {
      ctx.addIssue({
        code: 'custom',
        path: ['NHI_METER_OTLP_AUTH'],
        message: `NHI_METER_OTLP_AUTH=none is accepted only while the receiver listens on loopback, but NHI_METER_HOST is ${env.NHI_METER_HOST}`,
      })
    }
  })

/** Every variable the service reads (the README's Configuration table documents each). */
export const CONFIG_KEYS: readonly string[] = Object.keys(envSchema.shape)

/** Validated configuration. */
export type Config = z.infer<typeof envSchema>

/** Thrown for invalid configuration; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Parses the environment; empty strings count as unset. */
export function parseConfig(env: NodeJS.ProcessEnv): Config {
  const relevant = Object.fromEntries(
    Object.keys(envSchema.shape)
      .map((key) => [key, env[key]])
      .filter(([, value]) => value !== undefined && value !== ''),
  )
  const result = envSchema.safeParse(relevant)
  if (!result.success) {
    throw new ConfigError(
      result.error.issues
        .map((issue) => {
          const key = String(issue.path[0] ?? '')
          return issue.message.includes(key) ? issue.message : `${key}: ${issue.message}`
        })
        .join('; '),
    )
  }
  return result.data
}
