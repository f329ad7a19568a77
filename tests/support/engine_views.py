"""Run docs/ENGINES.md's statements for one engine over a lake, then compare the `events` and
`lifecycle` views, row by row and column by column, with what `hubpulse query` returned.

usage: engine_views.py duckdb|spark SCRIPT.sql WANT_DIR
  SCRIPT.sql   the engine's statements (engines.rs `script`), the lake's path in place
  WANT_DIR     events.jsonl, lifecycle.jsonl (hubpulse query --format json, ordered by
               source_fp, source_offset) and types.csv (view,column,DataFusion type)
Prints `<view> rows=N` per view, and the first differences if any (then exits 1).
"""
import csv, datetime as dt, json, os, sys

engine, script, want_dir = sys.argv[1], sys.argv[2], sys.argv[3]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
TYPES = {  # DataFusion type -> (DuckDB, Spark)
    'Timestamp(µs, "UTC")': ("TIMESTAMP WITH TIME ZONE", "timestamp"),
    "Utf8": ("VARCHAR", "string"), "Utf8View": ("VARCHAR", "string"),
    "Int32": ("INTEGER", "int"), "Int64": ("BIGINT", "bigint"), "Float64": ("DOUBLE", "double"),
}
statements = [s.strip() for s in open(script).read().split(";\n") if s.strip()]

if engine == "duckdb":
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for s in statements:
        con.execute(s)

    def read(view):
        r = con.sql(f"SELECT * FROM {view}")
        cols, types = r.columns, [str(t) for t in r.types]
        # `ts` as epoch µs (a zoned timestamp would need pytz in Python).
        r = con.sql(f"SELECT * REPLACE (epoch_us(ts) AS ts) FROM {view} "
                    "ORDER BY source_fp, source_offset")
        return cols, types, [dict(zip(cols, v)) for v in r.fetchall()]
    pick = 0
else:
    import shutil, tempfile
    from pyspark.sql import SparkSession, functions as F
    wh = tempfile.mkdtemp(prefix="spark-warehouse-")
    shutil.rmtree(wh, ignore_errors=True)
    spark = (SparkSession.builder.master("local[1]").appName("engine-views")
             .config("spark.sql.warehouse.dir", wh).config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    for s in statements:
        spark.sql(s)

    def read(view):
        df = spark.sql(f"SELECT * FROM hubpulse.{view} ORDER BY source_fp, source_offset")
        cols = df.columns
        types = [f.dataType.simpleString() for f in df.schema]
        rows = [r.asDict() for r in df.withColumn("ts", F.unix_micros("ts")).collect()]
        return cols, types, rows
    pick = 1

def hub_rows(view):
    out = []
    for line in open(os.path.join(want_dir, f"{view}.jsonl")):
        row = json.loads(line)
        if "ts" in row:
            t = dt.datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
            row["ts"] = (t - EPOCH) // dt.timedelta(microseconds=1)
        out.append(row)
    return out

want_types = {}
for view, col, ty in csv.reader(open(os.path.join(want_dir, "types.csv"))):
    want_types.setdefault(view, []).append((col, TYPES[ty][pick]))

failed = False
for view in ("events", "lifecycle"):
    cols, types, rows = read(view)
    if list(zip(cols, types)) != want_types[view]:
        print(f"{view}: columns differ:\n  {engine}: {list(zip(cols, types))}\n  hubpulse: {want_types[view]}")
        failed = True
    want = hub_rows(view)
    got = [{k: v for k, v in r.items() if v is not None} for r in rows]
    if len(got) != len(want):
        print(f"{view}: {engine} has {len(got)} rows, hubpulse query {len(want)}")
        failed = True
    diffs = [(g, w) for g, w in zip(got, want) if g != w]
    for g, w in diffs[:5]:
        keys = sorted(set(g) | set(w))
        print(f"{view} row differs at {w.get('source_fp')}:{w.get('source_offset')}:",
              {k: (g.get(k), w.get(k)) for k in keys if g.get(k) != w.get(k)})
    failed |= bool(diffs)
    print(f"{view} rows={len(got)}")
sys.exit(1 if failed else 0)
