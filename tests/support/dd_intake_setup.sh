#!/usr/bin/env bash
# tests/support/dd_intake_setup.sh — prepares the Python side of the Datadog test intake
# (tests/support/dd_intake.py): jsonschema validates every body it receives against the request
# schema in Datadog's published OpenAPI spec (fixtures/datadog/spec/openapi-v{1,2}.yaml, read with PyYAML).
#
# Idempotent. Installs pinned jsonschema + PyYAML + zstandard (to decode `zstd1` bodies) into the same venv as bench/setup.sh:
#   ${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}/venv
# Tests find that interpreter through HUBPULSE_PYTHON (scripts/test.sh sets it).
#
# Usage: bash tests/support/dd_intake_setup.sh
set -euo pipefail

JSONSCHEMA_VERSION=4.26.0
PYYAML_VERSION=6.0.3
ZSTANDARD_VERSION=0.25.0

BENCH_DIR="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}"
VENV="$BENCH_DIR/venv"
PYTHON="${PYTHON:-python3}"

mkdir -p "$BENCH_DIR"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

want="jsonschema==$JSONSCHEMA_VERSION PyYAML==$PYYAML_VERSION zstandard==$ZSTANDARD_VERSION"
have="$("$VENV/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(f"jsonschema=={version('jsonschema')} PyYAML=={version('PyYAML')} zstandard=={version('zstandard')}")
PY
)"
if [ "$have" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want
fi
"$VENV/bin/python" -c 'import sys, jsonschema, yaml, zstandard; from importlib.metadata import version; print("dd intake venv ready:", sys.prefix, "jsonschema", version("jsonschema"), "PyYAML", yaml.__version__)'
