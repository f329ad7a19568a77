"""The monthly report's core numbers computed by DuckDB over the same Parquet lake.

usage: python bench/report_year.py LAKE YYYY-MM

Reads the same partitions hubpulse's report reads (the month, the month before and 31 days
either side) with read_parquet(hive_partitioning), rebuilds server runs the simple way (each
`spawn_succeeded` to the next stop/exit of the same hub, user and server, LEAD over the
lifecycle records), clips them to the month and sums server-seconds and runs per user. It does
not pair profiles, price, or apply hubpulse's gap rules: it is the heavy part of the report
(scan, filter, sort, window, aggregate) for a like-for-like timing. Prints seconds and totals.
"""
import sys
import time
from datetime import date, timedelta

import duckdb

lake, month = sys.argv[1], sys.argv[2]
first = date.fromisoformat(month + "-01")
nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
prev = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
lo, hi = prev - timedelta(days=31), nxt + timedelta(days=30)

sql = f"""
WITH life AS (
  SELECT hub, "user", COALESCE(server_name, '') AS server, kind, ts,
         LEAD(ts) OVER w AS next_ts
  FROM read_parquet('{lake}/events/*/*/*.parquet', hive_partitioning = true)
  WHERE dt >= '{lo}' AND dt <= '{hi}'
    AND kind IN ('spawn_succeeded', 'stop_succeeded', 'server_exited') AND "user" IS NOT NULL
  WINDOW w AS (PARTITION BY hub, "user", COALESCE(server_name, '') ORDER BY ts, source_offset)
),
runs AS (
  SELECT "user", greatest(ts, TIMESTAMPTZ '{first} 00:00:00+00') AS a,
         least(COALESCE(next_ts, ts), TIMESTAMPTZ '{nxt} 00:00:00+00') AS b
  FROM life WHERE kind = 'spawn_succeeded'
)
SELECT "user", sum(epoch(b) - epoch(a)) AS server_seconds, count(*) AS runs
FROM runs WHERE b > a GROUP BY "user"
"""
con = duckdb.connect()
con.execute("SET threads = 2")
t0 = time.perf_counter()
rows = con.execute(sql).fetchall()
dt = time.perf_counter() - t0
print(f"duckdb seconds={dt:.3f} users={len(rows)} server_hours={sum(r[1] for r in rows) / 3600:.2f} runs={sum(r[2] for r in rows)}")
