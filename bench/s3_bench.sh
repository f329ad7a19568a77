#!/usr/bin/env bash
# Issue 8 benchmarks, on an S3-compatible store started here (moto in server mode on loopback,
# tests/support/s3_setup.sh installs it) and on a local directory, with the same inputs:
#
#  1. ingest throughput: `hubpulse ingest` of one log into a directory vs into s3://…
#  2. query time over 10 hubs × 3 months (generated): one month of every hub, filtered on the
#     partition key `dt` and on `ts` (pruned: 10 × 31 of 910 partitions listed and read) vs on `ts` only
#     (every partition listed, every file's footer read, row groups pruned by `ts` statistics).
#
# usage: HUBPULSE_BIN=target/release/hubpulse bash bench/s3_bench.sh [WORK_DIR]
# env:   PART=2 (only the query part), INPUT (default /tmp/hpbench/h2m.log, 2 M lines; see BENCHMARKS.md), USERS (per hub, 200),
#        RUNS (3)
set -euo pipefail
BIN="$(realpath "${HUBPULSE_BIN:-target/release/hubpulse}")"
WORK="${1:-/tmp/hp-s3bench}"
MOTO="${HUBPULSE_MOTO:-${HUBPULSE_S3_DIR:-$HOME/.cache/hubpulse-s3}/venv/bin/moto_server}"
INPUT="${INPUT:-/tmp/hpbench/h2m.log}"
USERS="${USERS:-200}"
RUNS="${RUNS:-3}"
mkdir -p "$WORK"

"$MOTO" -H 127.0.0.1 -p 0 2>"$WORK/moto.log" &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  ADDR="$(grep -o 'Running on http://[0-9.:]*' "$WORK/moto.log" | head -1 | sed 's#Running on http://##' || true)"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "moto did not start: $WORK/moto.log" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://$ADDR"
curl -sf -X PUT "$AWS_ENDPOINT_URL/bench" >/dev/null
echo "moto $(${MOTO%/moto_server}/python -c 'import moto; print(moto.__version__)') at $AWS_ENDPOINT_URL"

t() { # label, command...: wall and CPU seconds, peak RSS
  local label="$1"; shift
  /usr/bin/time -f "$label: %e s wall, %U+%S s CPU, %M KiB max RSS" "$@" >/dev/null
}

if [ "${PART:-all}" != 2 ]; then
echo "== 1. ingest $(wc -l <"$INPUT") lines, $(du -h "$INPUT" | cut -f1) ($INPUT)"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/local-ingest"
  t "local dir  run $i" "$BIN" ingest --no-progress --hub h --lake "$WORK/local-ingest" "$INPUT"
  t "s3 (moto)  run $i" "$BIN" ingest --no-progress --hub h --lake "s3://bench/ingest-$i" "$INPUT"
done
"$BIN" query --lake "s3://bench/ingest-1" "SELECT count(*) AS rows_in_s3 FROM events"
"$BIN" query --lake "$WORK/local-ingest" "SELECT count(*) AS rows_local FROM events"
fi

echo "== 2. 10 hubs x 3 months (2026-09..11), $USERS users each"
if [ ! -f "$WORK/logs/done" ]; then
  mkdir -p "$WORK/logs"
  for h in $(seq -w 0 9); do
    "$BIN" generate --users "$USERS" --days 91 --start 2026-09-01 --seed "1$h" --out "$WORK/logs/hub$h.log" >/dev/null
  done
  touch "$WORK/logs/done"
fi
# (idempotent: a second run finds every file already in both lakes)
for h in $(seq -w 0 9); do
  "$BIN" ingest --no-progress --hub "hub$h" --lake "$WORK/local-10" "$WORK/logs/hub$h.log" >/dev/null
  "$BIN" ingest --no-progress --hub "hub$h" --lake "s3://bench/ten" "$WORK/logs/hub$h.log" >/dev/null
done
PRUNED="SELECT hub, count(*) AS events, count(DISTINCT \"user\") AS users FROM events WHERE dt >= '2026-10-01' AND dt < '2026-11-01' AND ts >= '2026-10-01T00:00:00Z' AND ts < '2026-11-01T00:00:00Z' GROUP BY hub ORDER BY hub"
UNPRUNED="SELECT hub, count(*) AS events, count(DISTINCT \"user\") AS users FROM events WHERE ts >= '2026-10-01T00:00:00Z' AND ts < '2026-11-01T00:00:00Z' GROUP BY hub ORDER BY hub"
"$BIN" query --lake "s3://bench/ten" "SELECT count(*) AS events, count(DISTINCT hub) AS hubs, count(DISTINCT hub || dt) AS partitions FROM events"
for lake in "$WORK/local-10" "s3://bench/ten"; do
  a="$("$BIN" query --format csv --lake "$lake" "$PRUNED" | md5sum)"
  b="$("$BIN" query --format csv --lake "$lake" "$UNPRUNED" | md5sum)"
  [ "$a" = "$b" ] || { echo "pruned and unpruned answers differ on $lake" >&2; exit 1; }
  for i in $(seq 1 "$RUNS"); do
    t "$lake  WHERE dt (pruned)   run $i" "$BIN" query --format csv --lake "$lake" "$PRUNED"
    t "$lake  WHERE ts (unpruned) run $i" "$BIN" query --format csv --lake "$lake" "$UNPRUNED"
  done
done
