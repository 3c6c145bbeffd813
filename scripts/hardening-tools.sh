#!/usr/bin/env bash
# Installs the foreign clients the hardening tests drive nhi-meter with:
#   - a Python virtualenv with test/hardening/requirements.txt (schemathesis,
#     the OpenTelemetry Python SDK and its OTLP/HTTP exporter), from PyPI;
#   - telemetrygen, the Collector project's load generator, from the Go module proxy.
#
#   bash scripts/hardening-tools.sh     prints two lines: python=<path> and telemetrygen=<path>
#
# Both are cached under ${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}, keyed by
# the requirements file's hash and telemetrygen's version, so reruns are instant.
set -euo pipefail

TELEMETRYGEN_VERSION=v0.161.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/test/hardening/requirements.txt"
cache_root="${NHI_METER_CACHE_DIR:-$HOME/.cache/nhi-meter}"
mkdir -p "$cache_root"
exec 9>"$cache_root/hardening-tools.lock"
flock 9

python_bin="${PYTHON:-python3}"
if ! command -v "$python_bin" >/dev/null 2>&1; then
  echo "hardening-tools.sh: Python 3 is not installed; it runs schemathesis and the OpenTelemetry Python SDK" >&2
  exit 127
fi
venv="$cache_root/venv-$(sha256sum "$requirements" | cut -c1-12)"
# .complete is written only after every requirement installed, so a run cut
# short is redone rather than trusted.
if [[ ! -f "$venv/.complete" ]]; then
  echo "hardening-tools.sh: creating $venv" >&2
  rm -rf "$venv"
  "$python_bin" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$venv/.complete"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "hardening-tools.sh: Go is not installed; it builds telemetrygen" >&2
  exit 127
fi
telemetrygen_dir="$cache_root/telemetrygen-$TELEMETRYGEN_VERSION"
if [[ ! -x "$telemetrygen_dir/telemetrygen" ]]; then
  echo "hardening-tools.sh: installing telemetrygen@$TELEMETRYGEN_VERSION" >&2
  GOBIN="$telemetrygen_dir" go install "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$TELEMETRYGEN_VERSION" >&2
fi

echo "python=$venv/bin/python"
echo "telemetrygen=$telemetrygen_dir/telemetrygen"
