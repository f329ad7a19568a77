#!/usr/bin/env bash
# tests/support/s3_setup.sh — the S3-compatible store the object-storage tests start, and the
# independent reader they check the remote lake with.
#
#   moto 5.2.5 in server mode (`moto_server`), in its own venv (its boto3 pin conflicts with s3fs'):
#       ${HUBPULSE_S3_DIR:-$HOME/.cache/hubpulse-s3}/venv
#   s3fs (fsspec), so that DuckDB's read_parquet reads s3:// through a registered filesystem
#   (DuckDB's own httpfs extension is downloaded at runtime, which this machine cannot do),
#   into the readers' venv of bench/setup.sh: ${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}/venv
#
# Idempotent. Tests find moto_server through HUBPULSE_MOTO (scripts/test.sh sets it).
set -euo pipefail

MOTO_VERSION=5.2.5
S3FS_VERSION=2026.9.0
PYTHON="${PYTHON:-python3}"

S3_DIR="${HUBPULSE_S3_DIR:-$HOME/.cache/hubpulse-s3}"
mkdir -p "$S3_DIR"
[ -x "$S3_DIR/venv/bin/python" ] || "$PYTHON" -m venv "$S3_DIR/venv"
have="$("$S3_DIR/venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"), version("flask"))' 2>/dev/null || true)"
case "$have" in
    "$MOTO_VERSION "*) ;;
    *) "$S3_DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ;;
esac

BENCH_DIR="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}"
VENV="$BENCH_DIR/venv"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
have="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("s3fs"))' 2>/dev/null || true)"
if [ "$have" != "$S3FS_VERSION" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "s3fs==$S3FS_VERSION"
fi
echo "s3 test tools ready: $S3_DIR/venv/bin/moto_server (moto $MOTO_VERSION), s3fs $S3FS_VERSION in $VENV"
