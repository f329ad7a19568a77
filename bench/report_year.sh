#!/usr/bin/env bash
# The monthly report over a generated year of a 5,000-user hub (~100 M events), against DuckDB
# computing the report's core numbers on the same Parquet files (bench/report_year.py).
#
# usage: HUBPULSE_BIN=target/release/hubpulse bash bench/report_year.sh [LAKE_DIR]
# The year is generated and ingested month by month (each month's log is deleted once in the
# lake: a year of log is ~11 GB, its lake ~2.5 GB). Needs bench/setup.sh (duckdb).
set -euo pipefail
BIN="${HUBPULSE_BIN:-target/release/hubpulse}"
LAKE="${1:-/tmp/hp-year/lake}"
PY="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}/venv/bin/python"
USERS="${USERS:-5000}"
mkdir -p "$(dirname "$LAKE")"
if [ ! -d "$LAKE/events" ]; then
  for m in $(seq 1 12); do
    start=$(printf "2025-%02d-01" "$m")
    days=$(python3 -c "import calendar; print(calendar.monthrange(2025, $m)[1])")
    log="$(dirname "$LAKE")/month-$m.log"
    "$BIN" generate --users "$USERS" --days "$days" --start "$start" --seed "$m" --out "$log" >/dev/null
    "$BIN" ingest --no-progress --lake "$LAKE" "$log"
    rm -f "$log"
  done
fi
"$BIN" query --lake "$LAKE" "SELECT count(*) AS events FROM events"
for i in 1 2 3; do
  /usr/bin/time -f "hubpulse report: %e s wall, %U+%S s CPU, %M KiB" \
    "$BIN" report monthly --lake "$LAKE" --month 2025-10 --format csv --out "$(dirname "$LAKE")/report.csv"
  /usr/bin/time -f "duckdb: %e s wall, %U+%S s CPU, %M KiB" "$PY" bench/report_year.py "$LAKE" 2025-10
done
head -3 "$(dirname "$LAKE")/report.csv"
