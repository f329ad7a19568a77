#!/usr/bin/env python3
"""Benchmark peer (b): DuckDB (PyPI) regexp_extract, JupyterHub log -> Parquet.

DuckDB reads the log line by line with its parallel, streaming CSV reader (one
VARCHAR column, a 4-byte control-char delimiter, no quoting/escaping, strict_mode
off; ignore_errors drops lines that are not valid UTF-8), extracts the fields of
request lines with ONE regexp_extract (RE2; list-of-names form -> struct), drops
every other line, and COPYs the result to Parquet (zstd). Same pattern and output
schema as bench/peer_python.py:
    ts (timestamp[us, UTC]; naive log time taken as UTC), level, status (int16),
    method, path, user (null when anonymous), client_ip, duration_ms (float64).
DuckDB uses its default threads (= cores) and default settings, so rows stay in
log order (preserve_insertion_order); HUBPULSE_BENCH_DUCKDB_UNORDERED=1 turns that
off, which keeps peak RSS flat on big files (see bench/README.md).

Run (after bash bench/setup.sh):
    ~/.cache/hubpulse-bench/venv/bin/python bench/peer_duckdb.py IN.log OUT.parquet
Prints: lines=N requests=M seconds=S   (N is counted with a byte scan for newlines)
"""
import os
import sys
import time

import duckdb

# Identical to REQUEST_RE in bench/peer_python.py (anchored here with ^).
REQUEST_RE = (
    r"^\[([A-Z]) ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+) [^\]]*\] "
    r"([0-9]{3}) ([A-Z]+) (\S+)(?: -> \S+)? \((.*)@([^@)\s]*)\) ([0-9]+(?:\.[0-9]+)?)ms\s*$"
)
# A 4-byte delimiter that no log line contains, so every line is one VARCHAR
# (a 1-byte '\x01' would truncate a line that happens to contain it).
DELIM = "\x01\x02\x03\x04"
GROUPS = ["level", "ts", "status", "method", "path", "user", "client_ip", "duration_ms"]


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def count_lines(path):
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")  # a last line without '\n' still counts


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if os.environ.get("HUBPULSE_BENCH_DUCKDB_UNORDERED") == "1":
        con.execute("SET preserve_insertion_order = false")
    groups = "[" + ", ".join(sql_str(g) for g in GROUPS) + "]"
    lines_sql = f"""read_csv({sql_str(src)}, columns = {{'line': 'VARCHAR'}}, delim = {sql_str(DELIM)},
        quote = '', escape = '', header = false, auto_detect = false,
        max_line_size = 16777216, strict_mode = false, ignore_errors = true)"""
    requests = con.execute(f"""
        COPY (
            SELECT CAST(r.ts AS TIMESTAMP)::TIMESTAMPTZ AS ts,
                   r.level,
                   CAST(r.status AS SMALLINT) AS status,
                   r.method,
                   r.path,
                   NULLIF(r.user, '') AS "user",
                   r.client_ip,
                   CAST(r.duration_ms AS DOUBLE) AS duration_ms
            FROM (SELECT regexp_extract(line, {sql_str(REQUEST_RE)}, {groups}) AS r FROM {lines_sql})
            WHERE r.status <> ''
        ) TO {sql_str(dst)} (FORMAT parquet, COMPRESSION zstd)
    """).fetchone()[0]
    lines = count_lines(src)
    print(f"lines={lines} requests={requests} seconds={time.perf_counter() - start:.2f}")


if __name__ == "__main__":
    main()
