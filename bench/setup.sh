#!/usr/bin/env bash
# bench/setup.sh — prepares the peer benchmarks (bench/compare.sh).
#
# Idempotent. Creates a Python venv at
#   ${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}/venv
# with pinned duckdb + pyarrow from PyPI, and installs GNU time
# (/usr/bin/time, Debian package `time`) via apt only if it is missing.
#
# Usage: bash bench/setup.sh
set -euo pipefail

DUCKDB_VERSION=2.0.0
PYARROW_VERSION=26.0.1

BENCH_DIR="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}"
VENV="$BENCH_DIR/venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x /usr/bin/time ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq time
fi

mkdir -p "$BENCH_DIR"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

want="duckdb==$DUCKDB_VERSION pyarrow==$PYARROW_VERSION"
have="$("$VENV/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(f"duckdb=={version('duckdb')} pyarrow=={version('pyarrow')}")
PY
)"
if [ "$have" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want
fi
"$VENV/bin/python" -c 'import sys, duckdb, pyarrow; print("bench venv ready:", sys.prefix, "duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__)'
