//! Spawning a server: the OAuth client, profile override and pod creation lines, then the
//! attempt's outcome (ready, error with a traceback, or timeout) and the retry. Also how
//! KubeSpawner names pods and which profile a server runs with.

use super::*;

/// The profile a user's server runs with: the display name the hub logs at DEBUG, or `None`
/// for the default profile (no override line). A function of the user and server only, so the
/// random sequence (and every other figure) is unchanged by it.
pub(super) fn profile_of(u: usize, server: Option<&str>) -> Option<&'static str> {
    match (server, u % 5) {
        (Some("gpu"), _) => Some("GPU (large)"),
        (_, 0) => Some("Medium (4 CPU)"),
        _ => None,
    }
}

/// The pod KubeSpawner names for a server: `pod_name_template` `jupyter-{username}--{servername}`
/// (trailing `-` dropped for the default server) over the `escape` slug scheme, KubeSpawner ≤ 6
/// and 7 with `slug_scheme = "escape"` (`kubespawner/spawner.py` `_expand_user_properties`,
/// `slugs.py` `escape_slug`): every character outside `[a-z0-9]` becomes `-` and the hex of its
/// UTF-8 bytes, so `ana.lopez@example.org` is `jupyter-ana-2elopez-40example-2eorg`.
pub(super) fn pod_name(user: &str, server: Option<&str>) -> String {
    fn escape(name: &str, out: &mut String) {
        for c in name.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    let _ = write!(out, "-{byte:x}");
                }
            }
        }
    }
    let mut out = String::from("jupyter-");
    escape(user, &mut out);
    if let Some(s) = server {
        out.push_str("--");
        escape(s, &mut out);
    }
    out
}

impl<W: Write> Sim<W> {
    pub(super) fn on_spawn(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        s.pod = r.ip();
        let (sl, sv) = s.sl();
        let dash = if s.server.is_some() { "-" } else { "" };
        let msg = format_args!("Creating oauth client jupyterhub-user-{name}{dash}{sv}");
        let t0 = sink.info(Kind::OauthClient, t, "provider:661", msg);
        s.spawn_started = t0;
        if let Some(p) = profile_of(u, s.server) {
            let msg = format_args!("Applying KubeSpawner override for profile '{p}'");
            sink.hub(Kind::ProfileOverride, t0 + 1, 'D', "spawner:1988", msg);
        }
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Attempting to create pod {pod_name}, with timeout 3");
        let t = sink.info(Kind::PodCreate, t0 + r.range(5, 40), "spawner:2469", msg);
        let what =
            format_args!("GET /hub/spawn/{name}{sl}{sv} -> /hub/spawn-pending/{name}{sl}{sv}");
        let who = Who(name, ip, r.range(3000, 30_000));
        sink.request(t + r.range(20, 200), 302, who, what);
        let delay = match s.fault() {
            Fault::None => r.range(3_000, 45_000),
            Fault::Error => r.range(2_000, 10_000),
            Fault::Timeout => r.range(30_000, 30_500),
        };
        self.push(t0 + delay, Ev::SpawnDone(u));
    }

    pub(super) fn on_spawn_done(&mut self, t: u64, u: usize) {
        let fault = self.sessions[u].fault();
        self.sessions[u].attempt += 1;
        match fault {
            Fault::None => return self.spawn_ok(t, u),
            Fault::Error => self.spawn_error(t, u),
            Fault::Timeout => self.spawn_timeout(t, u),
        }
        if self.sessions[u].attempt < SPAWN_ATTEMPTS {
            let retry = self.sink.last - self.sink.day_base + self.rng.range(20_000, 120_000);
            self.push(retry, Ev::Spawn(u));
        }
    }

    fn spawn_ok(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip, pod) = (user.name.as_str(), user.ip.as_str(), s.pod.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let (sl, sv) = s.sl();
        let colon = if s.server.is_some() { ":" } else { "" };
        let took = t.saturating_sub(s.spawn_started);
        // The single-user server posts its first activity as it starts, before the hub has
        // seen it respond (`singleuser/extension.py` `keep_activity_updated` posts, then
        // sleeps): a heartbeat just before the ready line.
        let early = t.saturating_sub(r.range(50, took.clamp(51, 2_000)));
        let who = Who(name, pod, r.range(300, 4000));
        let what = format_args!("POST /hub/api/users/{name}/activity");
        let early = sink.request(early, 200, who, what);
        s.last_activity = early;
        let t = t.max(early);
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name}{colon}{sv} took {secs}.{frac:03} seconds to start");
        let t = sink.info(Kind::SpawnSucceeded, t, "base:1124", msg);
        s.ready_at = t;
        let route = format!("/user/{name}{sl}{sv}");
        let msg = format_args!("Adding user {name} to proxy {route}/ => http://{pod}:8888");
        let t = sink.info(Kind::ProxyRouteAdded, t + r.range(1, 10), "proxy:331", msg);
        let msg = format_args!("Adding route {route} -> http://{pod}:8888");
        let t = sink.chp(Kind::ChpRouteAdded, t + r.range(1, 10), msg);
        let who = Who(name, ip, took * 100 + r.below(100));
        let what = format_args!("GET {}/progress", s.api(name));
        let t = sink.request(t + r.range(5, 50), 200, who, what);
        s.work_end = t + s.work_ms;
        let first = t + r.range(1_000, self.interval_ms.clamp(1_001, 30_000));
        self.spawns_today += 1;
        self.mark_seen(t, u);
        self.push(first, Ev::Activity(u));
    }

    fn spawn_error(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let msg =
            format_args!("Unhandled error starting {name}'s server: ValueError: image pull failed");
        let t = sink.hub(Kind::SpawnFailed, t, 'E', "user:1004", msg);
        sink.cont("    Traceback (most recent call last):");
        sink.cont(concat!(
            "      File \"/usr/local/lib/python3.12/site-packages/jupyterhub/user.py\", ",
            "line 998, in spawn"
        ));
        sink.cont("        await spawner.start()");
        sink.cont("    ValueError: image pull failed");
        sink.cont("    ");
        sink.tracebacks += 1;
        let (who, api) = (Who(name, ip, r.range(1000, 20_000)), s.api(name));
        let t = sink.request(t + r.range(1, 10), 500, who, format_args!("POST {api}"));
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Deleting pod jhub/{pod_name}");
        sink.info(Kind::PodDelete, t + r.range(10, 300), "spawner:3395", msg);
    }

    fn spawn_timeout(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, pod) = (user.name.as_str(), s.pod.as_str());
        let ((sl, sv), sink) = (s.sl(), &mut self.sink);
        let msg = format_args!(
            "{name}'s server never showed up at http://{pod}:8888/user/{name}{sl}{sv}/ \
             after 30 seconds. Giving up."
        );
        let t = sink.hub(Kind::SpawnTimeout, t, 'W', "user:1063", msg);
        sink.cont("    ");
        sink.cont("    Common causes of this timeout, and debugging tips:");
        sink.cont("    ");
        sink.cont("    1. The server didn't finish starting,");
        sink.cont("       or it crashed due to a configuration issue.");
        let pod_name = pod_name(name, s.server);
        let (msg, gap) = (
            format_args!("Deleting pod jhub/{pod_name}"),
            self.rng.range(10, 300),
        );
        sink.info(Kind::PodDelete, t + gap, "spawner:3395", msg);
    }
}
