#!/usr/bin/env python3
"""Benchmark peer (a): plain Python `re` + pyarrow, JupyterHub log -> Parquet.

Reads a JupyterHub log in chunks of CHUNK_LINES lines (bounded memory),
keeps only request lines, e.g.
    [I 2026-11-02 09:15:45.192 JupyterHub log:192] 302 GET /hub/ -> /hub/spawn (alice@10.128.0.69) 13.12ms
and writes one Parquet row group (zstd) per chunk with the columns
    ts (timestamp[us, UTC]; the log's naive local time taken as UTC), level (the
    letter: I/W/E/D/C), status (int16), method, path, user (null when anonymous),
    client_ip, duration_ms (float64).
The "(user@ip)" part is split on its LAST '@'; "-> target" redirects are dropped.
Everything else (lifecycle lines, tracebacks, CHP lines) is skipped.

Run (after bash bench/setup.sh):
    ~/.cache/hubpulse-bench/venv/bin/python bench/peer_python.py IN.log OUT.parquet
Prints: lines=N requests=M seconds=S
"""
import itertools
import re
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CHUNK_LINES = 100_000  # ~70k request rows per row group; ~200 MiB peak RSS

# Same pattern as bench/peer_duckdb.py (RE2 and `re` agree on it: leftmost-first, greedy,
# so "(.*)@" splits "(user@ip)" on the last '@').
REQUEST_RE = re.compile(
    r"\[([A-Z]) ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+) [^\]]*\] "
    r"([0-9]{3}) ([A-Z]+) (\S+)(?: -> \S+)? \((.*)@([^@)\s]*)\) ([0-9]+(?:\.[0-9]+)?)ms\s*$",
    re.ASCII,  # \s and \S as in RE2
)

SCHEMA = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")),
    ("level", pa.string()),
    ("status", pa.int16()),
    ("method", pa.string()),
    ("path", pa.string()),
    ("user", pa.string()),
    ("client_ip", pa.string()),
    ("duration_ms", pa.float64()),
])


def to_table(rows):
    level, ts, status, method, path, user, ip, dur = (list(c) for c in zip(*rows))
    return pa.table([
        # naive "YYYY-MM-DD HH:MM:SS.fff" -> naive timestamp -> reinterpreted as UTC
        pc.cast(pa.array(ts), pa.timestamp("us")).cast(SCHEMA.field("ts").type),
        pa.array(level),
        pc.cast(pa.array(status), pa.int16()),
        pa.array(method),
        pa.array(path),
        pa.array([u or None for u in user], pa.string()),
        pa.array(ip),
        pc.cast(pa.array(dur), pa.float64()),
    ], schema=SCHEMA)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    lines = requests = 0
    match = REQUEST_RE.match
    # errors="replace": a stray non-UTF-8 byte must not abort a 1 GB run;
    # newline="\n": split on '\n' only (like wc -l); "\r\n" endings are eaten by \s*$.
    with open(src, encoding="utf-8", errors="replace", newline="\n") as f, \
            pq.ParquetWriter(dst, SCHEMA, compression="zstd") as writer:
        while chunk := list(itertools.islice(f, CHUNK_LINES)):
            lines += len(chunk)
            rows = [m.groups() for m in map(match, chunk) if m]
            if rows:
                requests += len(rows)
                writer.write_table(to_table(rows))
    print(f"lines={lines} requests={requests} seconds={time.perf_counter() - start:.2f}")


if __name__ == "__main__":
    main()
