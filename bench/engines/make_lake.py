"""Build a small synthetic hubpulse lake of format 3: 2 hubs x 3 days x 5 tables, plus _hubpulse decoys.

Per hub and day: `events` stored rows (even rows: a request line its columns rebuild, `text`
null; odd rows: `text` kept), one `lifecycle` row, and in `activity` two folded heartbeats of
user0 (with `offsets`; times in ms, durations in hundredths of a ms) and one listed time only
(`offsets` null: its row is an `events` row; a time finer than a ms, exact in `first`/`last`).
"""
import datetime as d, json, os, shutil, sys
import pyarrow as pa, pyarrow.parquet as pq

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/engines-lake"
shutil.rmtree(root, ignore_errors=True)
UTC = pa.timestamp("us", tz="UTC")
UTC_MS = pa.timestamp("ms", tz="UTC")
HUBS = {"prod-hub": 5, "dev-hub": 3}          # stored events rows per day per hub
DAYS = ["2026-11-26", "2026-11-27", "2026-11-28"]

def s(n, null=True): return pa.field(n, pa.string(), null)
def f(n): return pa.field(n, pa.float64(), True)
def lst(n, t): return pa.field(n, pa.list_(pa.field("item", t, False)), True)
STORED = pa.schema([pa.field("ts", UTC), s("source", False), s("level"), s("logger"),
    s("module"), s("kind", False), s("user"), s("actor"), s("server_name"), s("method"),
    pa.field("status", pa.int32()), s("route"), s("path"), s("target"), s("client_ip"), s("service"),
    f("duration_ms"), pa.field("exit_code", pa.int32()), pa.field("count", pa.int64()), s("attrs"),
    s("text"), pa.field("lines", pa.int32(), False), s("flags"), s("source_file", False),
    s("source_fp", False), pa.field("source_offset", pa.int64(), False)])
ACTIVITY = pa.schema([s("user", False), pa.field("first", UTC, False), pa.field("last", UTC, False),
    pa.field("count", pa.int64(), False), pa.field("times", pa.list_(pa.field("item", UTC_MS, False)), False),
    s("logger"), s("module"), s("source_file"), s("source_fp"), lst("statuses", pa.int32()),
    lst("client_ips", pa.string()), lst("durations_cs", pa.int32()), lst("offsets", pa.int64())])
DECISIONS = pa.schema([pa.field("ts", UTC), s("hub", False), s("component", False), s("pass", False),
    s("action", False), s("reason", False), s("user", False), s("server_name"), s("profile"),
    pa.field("last_activity", UTC), s("activity_source"), pa.field("started", UTC), f("limit_s"),
    f("idle_s"), pa.field("deadline", UTC), f("lateness_s"), pa.field("dry_run", pa.bool_(), False),
    s("outcome"), s("message")])
PODS = pa.schema([pa.field("ts", UTC, False), s("hub", False), s("change", False), s("namespace", False),
    s("pod", False), s("user"), s("server_name"), s("node"), s("phase"), f("cpu_request"), f("cpu_limit"),
    f("memory_request"), f("memory_limit"), f("gpus"), s("unschedulable"),
    pa.field("oom_killed", pa.bool_(), False)])

def ts(day, i, us=123456):  # microsecond-precision timestamps (…123456 µs) to check precision
    return d.datetime.fromisoformat(day).replace(hour=10, minute=i % 60, second=i // 60, microsecond=us, tzinfo=d.timezone.utc)

def table(schema, n, hub, day):
    cols = {}
    for fld in schema:
        t = fld.type
        if pa.types.is_timestamp(t): v = [ts(day, i) for i in range(n)]
        elif fld.name == "hub": v = [hub] * n
        elif fld.name == "user": v = [f"user{i % 2}" for i in range(n)]
        elif fld.name in ("kind", "change", "action"): v = ["spawn_succeeded" if i % 2 else "request" for i in range(n)]
        elif fld.name == "text": v = [f"text-{i}" if i % 2 else None for i in range(n)]
        elif fld.name == "target": v = [f"/hub/t{i}" if i % 4 == 2 else None for i in range(n)]
        elif pa.types.is_string(t): v = [f"{fld.name}-{i}" for i in range(n)]
        elif pa.types.is_boolean(t): v = [i % 2 == 0 for i in range(n)]
        elif pa.types.is_floating(t): v = [i * 1.5 for i in range(n)]
        else: v = list(range(n))
        cols[fld.name] = pa.array(v, t)
    return pa.table(cols, schema=schema)

def activity(day):
    t = [ts(day, 40, 123000), ts(day, 41, 123000)]  # folded heartbeats: whole milliseconds
    bare = ts(day, 42)  # a time finer than a ms: its row's first and last hold it exactly
    rows = [  # two folded heartbeats, then the time of one kept as an events row
        dict(user="user0", first=t[0], last=t[1], count=2, times=t, logger="JupyterHub",
             module="log:192", source_file="hub.log", source_fp="fp0", statuses=[200, 200],
             client_ips=["10.0.0.1", "10.0.0.1"], durations_cs=[123, 4567], offsets=[100, 200]),
        dict(user="user0", first=bare, last=bare, count=1, times=[ts(day, 42, 123000)], logger=None,
             module=None, source_file=None, source_fp=None, statuses=None, client_ips=None,
             durations_cs=None, offsets=None)]
    return pa.Table.from_pylist(rows, schema=ACTIVITY)

seq = 0
for hub, n in HUBS.items():
    for day in DAYS:
        for name, make, fname in [
            ("events", lambda: table(STORED, n, hub, day), lambda: f"part-{seq:020d}-0.parquet"),
            ("lifecycle", lambda: table(STORED, 1, hub, day), lambda: f"part-{seq:020d}-0.parquet"),
            ("activity", lambda: activity(day), lambda: f"part-{seq:020d}-0.parquet"),
            ("decisions", lambda: table(DECISIONS, 2, hub, day), lambda: f"part-1764325810123-{4242}-0.parquet"),
            ("pods", lambda: table(PODS, 1, hub, day), lambda: f"part-1764325810123-{4242}-0.parquet")]:
            seq += 1
            p = os.path.join(root, name, f"hub={hub}", f"dt={day}")
            os.makedirs(p, exist_ok=True)
            pq.write_table(make(), os.path.join(p, fname()), compression="zstd")

# decoys that engines must never read
os.makedirs(f"{root}/_hubpulse/manifest", exist_ok=True)
json.dump({"version": 3}, open(f"{root}/_hubpulse/format.json", "w"))
json.dump({"commit": 1}, open(f"{root}/_hubpulse/manifest/x.json", "w"))
os.makedirs(f"{root}/_hubpulse/hubs/a/staging", exist_ok=True)
pq.write_table(table(STORED, 1000, "DECOY", DAYS[0]), f"{root}/_hubpulse/hubs/a/staging/y.parquet", compression="zstd")
print("lake at", root, "events rows:", (sum(HUBS.values()) + 2 * len(HUBS)) * len(DAYS), "(+1000 decoy rows in _hubpulse)")
