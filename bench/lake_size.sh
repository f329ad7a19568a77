#!/usr/bin/env bash
# bench/lake_size.sh — the lake's bytes against `zstd -3` of the same log (issue 21's size target).
# Ingests FILE... into a fresh lake and prints each table's Parquet bytes, the raw and the
# `zstd -3` sizes of the files' concatenation, and lake / zstd.
#
# usage: HUBPULSE_BIN=target/release/hubpulse bash bench/lake_size.sh FILE...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
BIN="${HUBPULSE_BIN:-target/release/hubpulse}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/hubpulse-size.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
raw=$(cat "$@" | wc -c)
zst=$(cat "$@" | zstd -3 -q -c | wc -c)
"$BIN" ingest --no-progress --lake "$TMP/lake" "$@" >&2
total=0
for t in events lifecycle activity; do
  b=$(find "$TMP/lake/$t" -name '*.parquet' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}')
  echo "$t $b"
  total=$((total + b))
done
echo "raw $raw"
echo "zstd-3 $zst"
echo "lake $total"
awk -v l="$total" -v z="$zst" 'BEGIN {printf "lake/zstd-3 %.3f\n", l / z}'
