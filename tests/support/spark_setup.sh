#!/usr/bin/env bash
# tests/support/spark_setup.sh — Apache Spark (pyspark, local mode) for the test that runs the
# Spark statements of docs/ENGINES.md (tests/it/readers.rs).
#
#   a Java runtime (Spark 4 needs 17+): Debian's openjdk-17-jre-headless when `java` is missing
#   pyspark 4.3.0 in its own venv: ${HUBPULSE_SPARK_DIR:-$HOME/.cache/hubpulse-spark}/venv
#     (a 456 MB download once; ~520 MB installed)
#
# Idempotent. Tests find that interpreter through HUBPULSE_SPARK_PYTHON (scripts/test.sh sets it).
set -euo pipefail

PYSPARK_VERSION=4.3.0
PYTHON="${PYTHON:-python3}"

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

DIR="${HUBPULSE_SPARK_DIR:-$HOME/.cache/hubpulse-spark}"
mkdir -p "$DIR"
[ -x "$DIR/venv/bin/python" ] || "$PYTHON" -m venv "$DIR/venv"
have="$("$DIR/venv/bin/python" -c 'from importlib.metadata import version; print(version("pyspark"))' 2>/dev/null || true)"
if [ "$have" != "$PYSPARK_VERSION" ]; then
    "$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
fi
echo "spark ready: java $(java_major), pyspark $PYSPARK_VERSION in $DIR/venv"
