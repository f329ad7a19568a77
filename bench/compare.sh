#!/usr/bin/env bash
# bench/compare.sh — whole-process comparison of `hubpulse ingest` with two peers
# on the same JupyterHub log:
#   hubpulse  `$HUBPULSE_BIN ingest --lake <tmpdir> FILE` (default target/release/hubpulse;
#             skipped with a note when the binary does not exist)
#   python    bench/peer_python.py  (re + pyarrow, streaming)
#   duckdb    bench/peer_duckdb.py  (DuckDB read_csv + regexp_extract -> COPY parquet)
# Each runs once under /usr/bin/time -v (wall time, peak RSS) after the file has
# been read once to warm the page cache. Prints the file's size and line count and
# a Markdown table (lines/s and MB/s are over the whole file and wall time; MB = 1e6
# bytes; CPU s > wall s means more than one core was busy); temporary outputs are
# removed at exit.
#
# Usage: bash bench/setup.sh   # once (venv with pinned duckdb/pyarrow, GNU time)
#        bash bench/compare.sh FILE
# Env:   HUBPULSE_BIN (default target/release/hubpulse), HUBPULSE_BENCH_DIR (venv location)
set -euo pipefail

[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 FILE" >&2; exit 2; }
FILE="$(realpath "$1")"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
BIN="${HUBPULSE_BIN:-$ROOT/target/release/hubpulse}"
PY="${HUBPULSE_BENCH_DIR:-$HOME/.cache/hubpulse-bench}/venv/bin/python"
[ -x "$PY" ] && [ -x /usr/bin/time ] || bash "$HERE/setup.sh" >&2

TMP="$(mktemp -d "${TMPDIR:-/tmp}/hubpulse-bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

BYTES=$(stat -c %s "$FILE")
echo "counting lines (also warms the page cache) ..." >&2
LINES=$(wc -l < "$FILE")

# Sum of Parquet rows under a path (file or directory); for a hubpulse lake, the rows of
# its `events` view: the stored `events` rows and the heartbeats folded into `activity`
# (format 2; not the `lifecycle` copies); for another directory, only files whose path
# mentions "request" when there are any.
parquet_rows() {
    "$PY" - "$1" <<'PY'
import pathlib, sys, pyarrow.compute as pc, pyarrow.parquet as pq
p = pathlib.Path(sys.argv[1])
if (p / "events").is_dir():
    beats = 0
    for f in sorted((p / "activity").rglob("*.parquet")):
        t = pq.read_table(f, columns=["count", "offsets"])
        beats += pc.sum(pc.if_else(pc.is_valid(t["offsets"]), t["count"], 0)).as_py() or 0
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in (p / "events").rglob("*.parquet"))
    print(rows + beats)
    sys.exit(0)
files = [p] if p.is_file() else sorted(p.rglob("*.parquet"))
req = [f for f in files if "request" in str(f.relative_to(p) if p.is_dir() else f.name).lower()]
print(sum(pq.ParquetFile(f).metadata.num_rows for f in (req or files)))
PY
}

ROWS=()
# run NAME OUTPUT CMD...  — runs CMD under /usr/bin/time -v, appends a table row.
run() {
    local name=$1 out=$2; shift 2
    echo "running $name ..." >&2
    local rc=0
    /usr/bin/time -v -o "$TMP/$name.time" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "$name failed (exit $rc):" >&2; tail -n 20 "$TMP/$name.err" >&2
        ROWS+=("| $name | failed (exit $rc) | | | | | |"); return
    fi
    local wall cpu rss rows
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0
            for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$TMP/$name.time")
    cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$TMP/$name.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/$name.time")
    rows=$(parquet_rows "$out")
    ROWS+=("$(awk -v n="$name" -v w="$wall" -v c="$cpu" -v l="$LINES" -v b="$BYTES" -v r="$rss" -v o="$rows" 'BEGIN {
        printf "| %s | %.2f | %.2f | %.0f | %.1f | %.0f | %d |", n, w, c, l / w, b / 1e6 / w, r / 1024, o }')")
    echo "  $name: $(tail -n 1 "$TMP/$name.out")" >&2
    rm -rf "$out"
}

if [ -x "$BIN" ]; then
    mkdir -p "$TMP/lake"
    run hubpulse "$TMP/lake" "$BIN" ingest --lake "$TMP/lake" "$FILE"
else
    echo "note: $BIN not found (build with: cargo build --release); skipping hubpulse" >&2
    ROWS+=("| hubpulse | skipped: $BIN not built | | | | | |")
fi
run python "$TMP/python.parquet" "$PY" "$HERE/peer_python.py" "$FILE" "$TMP/python.parquet"
run duckdb "$TMP/duckdb.parquet" "$PY" "$HERE/peer_duckdb.py" "$FILE" "$TMP/duckdb.parquet"

echo
echo "File: \`$FILE\` — $(awk -v b="$BYTES" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'), $LINES lines"
echo "Machine: $(nproc) cores; $("$PY" -c 'import duckdb, pyarrow, sys; print(f"python {sys.version.split()[0]}, duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}")')"
echo
echo "| tool | wall s | CPU s (user+sys) | lines/s | MB/s | peak RSS MiB | output rows |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
