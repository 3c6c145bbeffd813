#!/usr/bin/env bash
# Builds otelcol-nhi, the minimal Collector distribution of builder.yaml,
# with the OpenTelemetry Collector Builder fetched from the Go module proxy.
#
#   bash collector-config/build.sh     prints the binary's path as its only stdout line
#
# The binary is cached under ${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter} in a
# directory named after the builder version and a hash of builder.yaml, so an
# unchanged manifest is never rebuilt (CI on the same machine reuses it) and a
# changed one never runs a stale binary. Needs Go (see builder.yaml for versions).
set -euo pipefail

# The builder release must match the core module versions pinned in builder.yaml.
BUILDER_VERSION=v0.161.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="$here/builder.yaml"
cache_root="${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: Go is not installed (https://go.dev/doc/install); it is needed to build the Collector" >&2
  exit 127
fi
# Collector v0.161.0 needs Go 1.26; any Go from 1.21 on fetches that toolchain
# from the module proxy by itself (GOTOOLCHAIN=auto), older ones cannot.
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
if [[ ! "$go_minor" =~ ^[0-9]+$ ]] || (( go_minor < 21 )); then
  echo "build.sh: $(go env GOVERSION) is too old; install Go 1.21 or newer (it downloads Go 1.26 for this build)" >&2
  exit 1
fi

hash="$( (echo "$BUILDER_VERSION"; cat "$manifest") | sha256sum | cut -c1-12)"
target_dir="$cache_root/otelcol-nhi-$BUILDER_VERSION-$hash"
binary="$target_dir/otelcol-nhi"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time: a test run and a CI step may both ask for the binary.
exec 9>"$cache_root/build.lock"
flock 9
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

builder_bin="$cache_root/builder-$BUILDER_VERSION/builder"
if [[ ! -x "$builder_bin" ]]; then
  echo "build.sh: installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
  GOBIN="$cache_root/builder-$BUILDER_VERSION" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
fi

work="$(mktemp -d "$cache_root/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "build.sh: building otelcol-nhi into $target_dir (a cold build takes several minutes)" >&2
start=$SECONDS
# output_path in builder.yaml is relative, so the sources and binary land in $work.
(cd "$work" && "$builder_bin" --config "$manifest") >&2
mkdir -p "$work/final"
cp "$work/build/otelcol-nhi" "$work/final/otelcol-nhi"
# Rename into place only once complete, so a killed build leaves no half binary behind.
rm -rf "$target_dir"
mv "$work/final" "$target_dir"
echo "build.sh: built in $((SECONDS - start))s" >&2
echo "$binary"
