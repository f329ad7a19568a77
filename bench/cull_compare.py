#!/usr/bin/env python3
"""hubpulse's culler vs jupyterhub-idle-culler 2.0 on the same scenario against a real hub.

Run with the harness venv's python (fixtures/harness/setup.sh installs jupyterhub 6.1.1,
configurable-http-proxy 5.3.0 and jupyterhub-idle-culler 2.0.0):

    ~/.cache/hubpulse-jh/venv/bin/python bench/cull_compare.py [--extra-users 2000] \
        [--timeout 30] [--duration 150] [--idle 6] [--active 4] [--hubpulse PATH]

For each tool, a fresh hub (fixtures/harness/api_hub.py: loopback, fast stand-in single-user
servers); `--extra-users` users without servers; `--idle` servers left idle and `--active`
servers whose activity is reported every 10 s (as jupyterhub-singleuser does, with a short
interval). Idle server i is used once `5 + i * --stagger` s after the tool starts, so the idle
limits fall at different phases of a polling culler's cycle. The tool runs with idle limit `--timeout` (idle-culler: its default
`--cull-every = timeout // 2`; hubpulse: `reconcile_every = 5m`) and the same service token
(the culler's documented scopes). hubpulse's mass-cull guard is relaxed
(`--max-cull-fraction 1.0`, see below) since the other tool has none. Measured:
  * per idle server, how late after its limit it was stopped (the hub API polled every 0.25 s:
    stop seen minus (its last `last_activity` + limit));
  * hub API requests the tool made (request lines in the hub log naming its service), per hour.
Prints a Markdown table. Everything it starts is stopped at exit.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVICE = "hubpulse-culler"


def iso(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Hub:
    def __init__(self, workdir):
        self.admin = "bench-admin-" + os.urandom(8).hex()
        self.culler = "bench-culler-" + os.urandom(8).hex()
        self.log = os.path.join(workdir, "hub.log")
        env = dict(os.environ, HUBPULSE_HUB_ADMIN_TOKEN=self.admin, HUBPULSE_HUB_CULLER_TOKEN=self.culler)
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "fixtures/harness/api_hub.py"),
                                      "--log", self.log], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise SystemExit(f"hub did not start: {line!r}")
        self.api = line.split(" ", 1)[1]
        self.s = requests.Session()
        self.s.headers["Authorization"] = "token " + self.admin

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)

    def user(self, name):
        r = self.s.get(f"{self.api}/users/{name}")
        r.raise_for_status()
        return r.json()

    def spawn(self, name):
        self.s.post(f"{self.api}/users/{name}/server").raise_for_status()
        while not (self.user(name).get("servers", {}).get("", {}).get("ready")):
            time.sleep(0.25)

    def activity(self, name):
        now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        self.s.post(f"{self.api}/users/{name}/activity",
                    json={"last_activity": now, "servers": {"": {"last_activity": now}}}).raise_for_status()


def start_hubpulse(binary, hub, workdir, timeout, fraction):
    tok = os.path.join(workdir, "token")
    with open(tok, "w") as f:
        f.write(hub.culler)
    cfg = os.path.join(workdir, "agent.toml")
    with open(cfg, "w") as f:
        f.write(f"""[lake]\npath = {json.dumps(os.path.join(workdir, 'lake'))}\nflush_interval = "5s"\n
[http]\nlisten = "off"\n[[files]]\ninclude = [{json.dumps(hub.log)}]\nstart_at = "end"\n
[hub]\napi_url = {json.dumps(hub.api)}\ntoken_file = {json.dumps(tok)}\n
[culler]\ntimeout = "{timeout}s"\nreconcile_every = "5m"\nmax_cull_fraction = {fraction}\n""")
    return subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(workdir, "agent.log"), "w"))


def start_idle_culler(hub, workdir, timeout):
    exe = os.path.join(os.path.dirname(sys.executable), "jupyterhub-idle-culler")
    env = dict(os.environ, JUPYTERHUB_API_TOKEN=hub.culler)
    return subprocess.Popen([exe, f"--url={hub.api}", f"--timeout={timeout}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "culler.log"), "w"))


def count_requests(log, since_bytes):
    n = 0
    with open(log, "rb") as f:
        f.seek(since_bytes)
        for line in f:
            if f"({SERVICE}@".encode() in line:
                n += 1
    return n


def run(tool, args):
    work = tempfile.mkdtemp(prefix=f"hubpulse-cullbench-{tool}-")
    hub = Hub(work)
    proc = None
    stop = threading.Event()
    try:
        idle = [f"idle-{i}" for i in range(args.idle)]
        active = [f"active-{i}" for i in range(args.active)]
        extra = [f"bulk-{i:05d}" for i in range(args.extra_users)]
        names = idle + active + extra
        for i in range(0, len(names), 200):
            hub.s.post(f"{hub.api}/users", json={"usernames": names[i:i + 200]}).raise_for_status()
        for n in idle + active:
            hub.spawn(n)

        def keep_active():
            while not stop.wait(10):
                for n in active:
                    hub.activity(n)

        threading.Thread(target=keep_active, daemon=True).start()
        start_bytes = os.path.getsize(hub.log)
        t0 = time.monotonic()
        proc = (start_hubpulse(args.hubpulse, hub, work, args.timeout, args.max_cull_fraction) if tool == "hubpulse"
                else start_idle_culler(hub, work, args.timeout))
        last, gone, touched = {}, {}, set()
        while time.monotonic() - t0 < args.duration:
            # Idle server i is used once, 5 + i * stagger s after the tool started, then left
            # idle: limits fall at different phases of a polling culler's cycle.
            for i, n in enumerate(idle):
                if n not in touched and time.monotonic() - t0 >= 5 + i * args.stagger:
                    hub.activity(n)
                    touched.add(n)
            for n in idle:
                if n in gone:
                    continue
                srv = hub.user(n).get("servers", {}).get("")
                now = dt.datetime.now(dt.timezone.utc)
                if srv:
                    last[n] = iso(srv["last_activity"])
                else:
                    gone[n] = (now - last[n]).total_seconds() - args.timeout
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        kept = sum(1 for n in active if hub.user(n).get("servers", {}).get(""))
        reqs = count_requests(hub.log, start_bytes)
        return {"tool": tool, "late": [gone.get(n) for n in idle], "kept": kept,
                "requests": reqs, "per_hour": reqs * 3600 / elapsed, "seconds": elapsed}
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        hub.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=int, default=30)
    ap.add_argument("--duration", type=float, default=150)
    ap.add_argument("--idle", type=int, default=6)
    ap.add_argument("--active", type=int, default=4)
    ap.add_argument("--extra-users", type=int, default=0)
    ap.add_argument("--stagger", type=float, default=2.3)
    # jupyterhub-idle-culler has no mass-cull guard; hubpulse's default (0.5) would refuse the
    # scenario's 6th cull of 10 servers within 5 minutes. 1.0 compares lateness alone.
    ap.add_argument("--max-cull-fraction", type=float, default=1.0)
    ap.add_argument("--hubpulse", default=os.environ.get("HUBPULSE_BIN", os.path.join(ROOT, "target/release/hubpulse")))
    args = ap.parse_args()
    results = [run("hubpulse", args), run("jupyterhub-idle-culler", args)]
    print(f"\nusers: {args.idle + args.active + args.extra_users} ({args.idle} idle servers, "
          f"{args.active} active), idle limit {args.timeout} s, {args.duration:.0f} s per tool\n")
    print("| tool | late after limit, per idle server (s) | max | active kept | API requests | per hour |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        late = [x for x in r["late"] if x is not None]
        cells = ", ".join("not culled" if x is None else f"{x:.1f}" for x in r["late"])
        mx = f"{max(late):.1f}" if late else "-"
        print(f"| {r['tool']} | {cells} | {mx} | {r['kept']}/{args.active} | {r['requests']} | {r['per_hour']:.0f} |")


if __name__ == "__main__":
    main()
