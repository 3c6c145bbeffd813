#!/usr/bin/env bash
# The supported Node.js LTS lines besides the machine's own: runs the
# instrumentation tests, the end-to-end single-node test and the demo on
# Node 22 and Node 24 (binaries from the npm registry, scripts/node-lts.sh).
# The whole suite runs on the machine's Node with `npm test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for line in 22 24; do
  node_bin=$(bash scripts/node-lts.sh "$line")
  printf '\n=== Node %s (%s) ===\n' "$line" "$("$node_bin" --version)"
  "$node_bin" node_modules/vitest/vitest.mjs run instrumentation test/e2e-single-node.test.ts test/demo.test.ts
done
