#!/usr/bin/env bash
# Runs every test. Installs, idempotently, what the tests start or read with:
#   a real JupyterHub 6.1.1 + configurable-http-proxy 5.3.0 (pip + npm, tests/support/harness/setup.sh)
#   DuckDB + pyarrow, the independent lake readers (pip, bench/setup.sh)
#   jsonschema + PyYAML + zstandard for the Datadog test intake (pip, tests/support/dd_intake_setup.sh)
#   moto (an S3-compatible server) + s3fs for the object-storage lake (pip, tests/support/s3_setup.sh)
#   Java 17 + pyspark for the Spark statements of docs/ENGINES.md (apt + pip, tests/support/spark_setup.sh)
#   Debian's chromium + playwright-core for the HTML report check (apt + npm, tests/support/browser_setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export HUBPULSE_JH_DIR="${HUBPULSE_JH_DIR:-$HOME/.cache/hubpulse-jh}"
export HUBPULSE_BENCH_DIR="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}"
bash tests/support/harness/setup.sh >/dev/null
bash bench/setup.sh >/dev/null
bash tests/support/dd_intake_setup.sh >/dev/null
export HUBPULSE_S3_DIR="${HUBPULSE_S3_DIR:-$HOME/.cache/hubpulse-s3}"
bash tests/support/s3_setup.sh >/dev/null
export HUBPULSE_MOTO="$HUBPULSE_S3_DIR/venv/bin/moto_server"
export HUBPULSE_SPARK_DIR="${HUBPULSE_SPARK_DIR:-$HOME/.cache/hubpulse-spark}"
bash tests/support/spark_setup.sh >/dev/null
export HUBPULSE_SPARK_PYTHON="$HUBPULSE_SPARK_DIR/venv/bin/python"
export HUBPULSE_BROWSER_DIR="${HUBPULSE_BROWSER_DIR:-$HOME/.cache/hubpulse-browser}"
bash tests/support/browser_setup.sh >/dev/null
export HUBPULSE_PYTHON="$HUBPULSE_BENCH_DIR/venv/bin/python"
cargo test "$@"
