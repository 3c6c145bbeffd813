/**
 * Prints the schema DDL: `npm run schema` for a single node,
 * `npm run schema -- --cluster NAME` for the scale-out form (ON CLUSTER,
 * Replicated and Distributed tables), to review or apply by hand.
 */
import { schemaStatements } from './migrations.js'

const args = process.argv.slice(2)
const clusterAt = args.indexOf('--cluster')
const cluster = clusterAt >= 0 ? args[clusterAt + 1] : undefined
if (clusterAt >= 0 && !cluster) {
  console.error('usage: npm run schema [-- --cluster NAME]')
  process.exit(2)
}
try {
  process.stdout.on('error', () => process.exit(0))
  process.stdout.write(schemaStatements(cluster ? { cluster } : undefined).map((s) => `${s};\n`).join('\n'))
} catch (error) {
  console.error((error as Error).message)
  process.exit(2)
}
