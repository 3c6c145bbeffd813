#!/usr/bin/env bash
# Builds Prometheus, the scraper the metrics tests (test/metrics/) run
# against nhi-meter's GET /metrics, from the Go module proxy.
#
#   bash scripts/prometheus.sh     prints the binary's path as its only stdout line
#
# The module github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0
# (Prometheus tags its Go module v0.<major><minor>.<patch>); docker-compose.yml
# runs the same release (prom/prometheus:v3.16.0), which test/metrics/scrape.test.ts
# checks. A build without the `builtinassets` tag serves no web UI, which the
# tests do not need; the HTTP API and the scraper are the same.
#
# Cached under ${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}/prometheus-<version>;
# a cold build takes about five minutes on two cores. Needs Go 1.21 or newer
# (it fetches the toolchain the module asks for, like collector-config/build.sh).
set -euo pipefail

PROMETHEUS_MODULE_VERSION=v0.316.0

cache_root="${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}"
target_dir="$cache_root/prometheus-$PROMETHEUS_MODULE_VERSION"
binary="$target_dir/prometheus"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "prometheus.sh: Go is not installed (https://go.dev/doc/install); it is needed to build Prometheus" >&2
  exit 127
fi

mkdir -p "$cache_root"
# One build at a time: parallel test files and a CI step may all ask for it.
exec 9>"$cache_root/prometheus.lock"
flock 9
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
work="$(mktemp -d "$cache_root/prometheus-work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "prometheus.sh: building github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION (a cold build takes several minutes)" >&2
start=$SECONDS
GOBIN="$work" go install "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" >&2
# Moved into place only once complete, so a killed build leaves no half binary behind.
rm -rf "$target_dir"
mv "$work" "$target_dir"
trap - EXIT
echo "prometheus.sh: built in $((SECONDS - start))s" >&2
echo "$binary"
