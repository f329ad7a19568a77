#!/usr/bin/env python3
"""hubpulse's culler vs jupyterhub-idle-culler 2.0 on the same scenario against a real hub.

Run with the harness venv's python (tests/support/harness/setup.sh installs jupyterhub 6.1.1,
jupyter-server 2.21.1, configurable-http-proxy 5.3.0 and jupyterhub-idle-culler 2.0.0):

    ~/.cache/hubpulse-jh/venv/bin/python bench/cull_compare.py [--tools hubpulse,culler-30,culler-600] \
        [--timeout 60] [--duration 780] [--idle 4] [--busy 2] [--hubpulse PATH]

For each tool, a fresh hub (tests/support/harness/api_hub.py --real-singleuser: loopback, **real
jupyterhub-singleuser servers** posting their activity every `--activity-interval` s, changed
or not, the hub folding in the proxy's route activity every `--last-activity-interval` s).
`--idle` servers are used once (a real request through the proxy) `5 + i * --stagger` s after
the tool starts, then left idle while they keep posting heartbeats; `--busy` servers get a real
request every 5 s. The tools: hubpulse (`reconcile_every = 5m`, mass-cull guard relaxed with
`max_cull_fraction = 1.0` since the other tool has none), and jupyterhub-idle-culler with
`--cull-every 30` and `--cull-every 600` (Z2JH's default), all with idle limit `--timeout` and
the same service token (the culler's documented scopes). Measured:
  * per idle server, how late after the hub's `last_activity` + limit it was stopped (the hub
    API polled every 0.25 s: stopping or gone seen, minus (its last `last_activity` + limit));
  * wrongful culls: busy servers stopped;
  * hub API requests the tool made (request lines in the hub log naming its service), in all
    and per hour.
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
    def __init__(self, workdir, args):
        self.admin = "bench-admin-" + os.urandom(8).hex()
        self.culler = "bench-culler-" + os.urandom(8).hex()
        self.log = os.path.join(workdir, "hub.log")
        env = dict(os.environ, HUBPULSE_HUB_ADMIN_TOKEN=self.admin, HUBPULSE_HUB_CULLER_TOKEN=self.culler)
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/harness/api_hub.py"),
                                      "--log", self.log, "--real-singleuser",
                                      "--activity-interval", str(args.activity_interval),
                                      "--last-activity-interval", str(args.last_activity_interval)],
                                     env=env, stdin=subprocess.PIPE,
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

    def use(self, name):
        """A real request to the user's server through the proxy (jupyter-server and CHP both
        record it as activity)."""
        public = self.api[: -len("/hub/api")]
        self.s.get(f"{public}/user/{name}/api/contents").raise_for_status()

    def stopping_or_gone(self, name):
        srv = self.user(name).get("servers", {}).get("")
        return srv is None or srv.get("pending") == "stop", srv


def start_hubpulse(binary, hub, workdir, timeout, fraction, reconcile="5m"):
    tok = os.path.join(workdir, "token")
    with open(tok, "w") as f:
        f.write(hub.culler)
    cfg = os.path.join(workdir, "agent.toml")
    with open(cfg, "w") as f:
        f.write(f"""[lake]\npath = {json.dumps(os.path.join(workdir, 'lake'))}\nflush_interval = "5s"\n
[http]\nlisten = "off"\n[[files]]\ninclude = [{json.dumps(hub.log)}]\nstart_at = "end"\n
[hub]\napi_url = {json.dumps(hub.api)}\ntoken_file = {json.dumps(tok)}\n
[culler]\ntimeout = "{timeout}s"\nreconcile_every = "{reconcile}"\nmax_cull_fraction = {fraction}\n""")
    return subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(workdir, "agent.log"), "w"))


def start_idle_culler(hub, workdir, timeout, every):
    exe = os.path.join(os.path.dirname(sys.executable), "jupyterhub-idle-culler")
    env = dict(os.environ, JUPYTERHUB_API_TOKEN=hub.culler)
    return subprocess.Popen([exe, f"--url={hub.api}", f"--timeout={timeout}", f"--cull-every={every}"], env=env,
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
    hub = Hub(work, args)
    proc = None
    stop = threading.Event()
    try:
        idle = [f"idle-{i}" for i in range(args.idle)]
        busy = [f"busy-{i}" for i in range(args.busy)]
        names = idle + busy
        hub.s.post(f"{hub.api}/users", json={"usernames": names}).raise_for_status()
        for n in idle + busy:
            hub.spawn(n)

        def keep_busy():
            while not stop.wait(5):
                for n in busy:
                    hub.use(n)

        threading.Thread(target=keep_busy, daemon=True).start()
        start_bytes = os.path.getsize(hub.log)
        t0 = time.monotonic()
        if tool == "hubpulse":
            proc = start_hubpulse(args.hubpulse, hub, work, args.timeout, args.max_cull_fraction,
                                  args.reconcile_every)
        else:
            proc = start_idle_culler(hub, work, args.timeout, int(tool.split("-")[1]))
        last, gone, touched = {}, {}, set()
        while time.monotonic() - t0 < args.duration and len(gone) < len(idle):
            # Idle server i is used once, 5 + i * stagger s after the tool started, then left
            # idle: limits fall at different phases of a polling culler's cycle.
            for i, n in enumerate(idle):
                if n not in touched and time.monotonic() - t0 >= 5 + i * args.stagger:
                    hub.use(n)
                    touched.add(n)
            for n in idle:
                if n in gone:
                    continue
                now = dt.datetime.now(dt.timezone.utc)
                done, srv = hub.stopping_or_gone(n)
                if not done:
                    last[n] = iso(srv["last_activity"])
                elif n in last:
                    gone[n] = (now - last[n]).total_seconds() - args.timeout
            time.sleep(0.25)
        # Steady state: the busy servers alone, one more minute (requests counted from here).
        steady_bytes = os.path.getsize(hub.log)
        t1 = time.monotonic()
        stop.wait(args.steady)
        steady = count_requests(hub.log, steady_bytes)
        steady_s = time.monotonic() - t1
        elapsed = time.monotonic() - t0
        kept = sum(1 for n in busy if not hub.stopping_or_gone(n)[0])
        reqs = count_requests(hub.log, start_bytes)
        heartbeats = sum(1 for line in open(hub.log, "rb") if b"POST /hub/api/users/idle-" in line)
        return {"tool": tool, "late": [gone.get(n) for n in idle], "kept": kept,
                "requests": reqs, "seconds": elapsed, "steady": steady,
                "steady_per_hour": steady * 3600 / steady_s, "heartbeats": heartbeats}
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        hub.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", default="hubpulse,culler-30,culler-600",
                    help="comma-separated: hubpulse, culler-N (jupyterhub-idle-culler --cull-every N)")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--duration", type=float, default=780,
                    help="at most this long per tool for the idle servers to be culled")
    ap.add_argument("--steady", type=float, default=120,
                    help="then this long with only busy servers, to count steady-state requests")
    ap.add_argument("--idle", type=int, default=4)
    ap.add_argument("--busy", type=int, default=2)
    ap.add_argument("--stagger", type=float, default=7.3)
    ap.add_argument("--reconcile-every", default="5m", help="hubpulse's reconcile_every")
    ap.add_argument("--activity-interval", type=int, default=10)
    ap.add_argument("--last-activity-interval", type=int, default=5)
    # jupyterhub-idle-culler has no mass-cull guard; hubpulse's default (0.5) would refuse the
    # scenario's culls of most servers within 5 minutes. 1.0 compares lateness alone.
    ap.add_argument("--max-cull-fraction", type=float, default=1.0)
    ap.add_argument("--hubpulse", default=os.environ.get("HUBPULSE_BIN", os.path.join(ROOT, "target/release/hubpulse")))
    args = ap.parse_args()
    results = [run(t, args) for t in args.tools.split(",")]
    print(f"\n{args.idle} idle and {args.busy} busy real servers, idle limit {args.timeout} s, "
          f"activity interval {args.activity_interval} s, proxy activity every {args.last_activity_interval} s\n")
    print("| tool | late after the hub's last_activity + limit, per idle server (s) | max | busy kept "
          "| idle heartbeats in the log | API requests (run) | steady-state requests per hour |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        late = [x for x in r["late"] if x is not None]
        cells = ", ".join("not culled" if x is None else f"{x:.1f}" for x in r["late"])
        mx = f"{max(late):.1f}" if late else "-"
        print(f"| {r['tool']} ({r['seconds']:.0f} s) | {cells} | {mx} | {r['kept']}/{args.busy} | {r['heartbeats']} "
              f"| {r['requests']} | {r['steady_per_hour']:.0f} |")


if __name__ == "__main__":
    main()
