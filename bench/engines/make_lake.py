"""Build a small synthetic hubpulse lake: 2 hubs x 3 days x 3 tables, plus _hubpulse decoys."""
import datetime as d, json, os, shutil, sys
import pyarrow as pa, pyarrow.parquet as pq

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/engines-lake"
shutil.rmtree(root, ignore_errors=True)
UTC = pa.timestamp("us", tz="UTC")
HUBS = {"prod-hub": 5, "dev-hub": 3}          # rows per day per hub (events)
DAYS = ["2026-11-26", "2026-11-27", "2026-11-28"]

def s(n, null=True): return pa.field(n, pa.string(), null)
def f(n): return pa.field(n, pa.float64(), True)
EVENTS = pa.schema([pa.field("ts", UTC), s("hub", False), s("source", False), s("level"), s("logger"),
    s("module"), s("kind", False), s("user"), s("actor"), s("server_name"), s("method"),
    pa.field("status", pa.int32()), s("route"), s("path"), s("target"), s("client_ip"), s("service"),
    f("duration_ms"), pa.field("exit_code", pa.int32()), pa.field("count", pa.int64()), s("attrs"),
    s("message", False), pa.field("lines", pa.int32(), False), s("flags"), s("source_file", False),
    s("source_fp", False), pa.field("source_offset", pa.int64(), False)])
DECISIONS = pa.schema([pa.field("ts", UTC), s("hub", False), s("component", False), s("pass", False),
    s("action", False), s("reason", False), s("user", False), s("server_name"), s("profile"),
    pa.field("last_activity", UTC), s("activity_source"), pa.field("started", UTC), f("limit_s"),
    f("idle_s"), pa.field("deadline", UTC), f("lateness_s"), pa.field("dry_run", pa.bool_(), False),
    s("outcome"), s("message")])
PODS = pa.schema([pa.field("ts", UTC, False), s("hub", False), s("change", False), s("namespace", False),
    s("pod", False), s("user"), s("server_name"), s("node"), s("phase"), f("cpu_request"), f("cpu_limit"),
    f("memory_request"), f("memory_limit"), f("gpus"), s("unschedulable"),
    pa.field("oom_killed", pa.bool_(), False)])

def ts(day, i):  # microsecond-precision timestamps (…123456 µs) to check precision
    return d.datetime.fromisoformat(day).replace(hour=10, minute=i % 60, second=i // 60, microsecond=123456, tzinfo=d.timezone.utc)

def table(schema, n, hub, day):
    cols = {}
    for fld in schema:
        t = fld.type
        if pa.types.is_timestamp(t): v = [ts(day, i) for i in range(n)]
        elif fld.name == "hub": v = [hub] * n
        elif fld.name == "user": v = [f"user{i % 2}" for i in range(n)]
        elif fld.name in ("kind", "change", "action"): v = ["spawn_succeeded" if i % 2 else "request" for i in range(n)]
        elif pa.types.is_string(t): v = [f"{fld.name}-{i}" for i in range(n)]
        elif pa.types.is_boolean(t): v = [i % 2 == 0 for i in range(n)]
        elif pa.types.is_floating(t): v = [i * 1.5 for i in range(n)]
        else: v = list(range(n))
        cols[fld.name] = pa.array(v, t)
    return pa.table(cols, schema=schema)

seq = 0
for hub, n in HUBS.items():
    for day in DAYS:
        for name, schema, rows, fname in [
            ("events", EVENTS, n, lambda: f"part-{seq:020d}-0.parquet"),
            ("decisions", DECISIONS, 2, lambda: f"part-1764325810123-{4242}-0.parquet"),
            ("pods", PODS, 1, lambda: f"part-1764325810123-{4242}-0.parquet")]:
            seq += 1
            p = os.path.join(root, name, f"hub={hub}", f"dt={day}")
            os.makedirs(p, exist_ok=True)
            pq.write_table(table(schema, rows, hub, day), os.path.join(p, fname()), compression="zstd")

# decoys that engines must never read
os.makedirs(f"{root}/_hubpulse/manifest", exist_ok=True)
json.dump({"commit": 1}, open(f"{root}/_hubpulse/manifest/x.json", "w"))
os.makedirs(f"{root}/_hubpulse/hubs/a/staging", exist_ok=True)
pq.write_table(table(EVENTS, 1000, "DECOY", DAYS[0]), f"{root}/_hubpulse/hubs/a/staging/y.parquet", compression="zstd")
print("lake at", root, "events rows:", sum(HUBS.values()) * len(DAYS), "(+1000 decoy rows in _hubpulse)")
