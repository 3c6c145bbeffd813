import { defineConfig } from 'vitest/config'

// Every test file runs in its own forked process: the embedded ClickHouse
// engine (chdb) allows one data directory per process, so files must not share one.
export default defineConfig({
  resolve: { conditions: ['nhi-meter-source'] },
  ssr: { resolve: { conditions: ['nhi-meter-source'] } },
  test: {
    include: ['instrumentation/test/**/*.test.ts', 'query-service/src/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
    // Temporary data directories go after each file (test/helpers/temp-dirs.ts).
    setupFiles: ['test/helpers/temp-dirs.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
})
