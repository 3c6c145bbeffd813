/** Version of this package, reported as the tracer version. Kept in step with package.json by a test. */
export const VERSION = '0.1.0'
