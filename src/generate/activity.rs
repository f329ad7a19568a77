//! A user at the hub: login (some failing first), activity POSTs with the occasional request
//! beside them (404, 424, CHP 503, home page), when the server is to end, and logout.

use super::*;

impl<W: Write> Sim<W> {
    pub(super) fn on_login(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        if s.failed_logins > 0 {
            s.failed_logins -= 1;
            let msg = format_args!("Failed login for '{name}'");
            let t = sink.hub(Kind::LoginFailed, t, 'W', "base:843", msg);
            let (who, what) = (
                Who("", ip, r.range(2000, 9000)),
                format_args!("POST {LOGIN_PATH}"),
            );
            sink.request(t + r.range(1, 20), 200, who, what);
            let retry = t + r.range(5_000, 40_000);
            if s.failed_logins > 0 || !s.give_up {
                self.push(retry, Ev::Login(u));
            }
            return;
        }
        let mut t = t;
        if !s.cookie {
            let msg = format_args!("User logged in: {name}");
            t = sink.info(Kind::Login, t, "base:837", msg);
            let who = Who(name, ip, r.range(2000, 9000));
            let what = format_args!("POST {LOGIN_PATH} -> /hub/");
            t = sink.request(t + r.range(1, 20), 302, who, what);
            self.last_seen[u] = Some(sink.day_base + t);
            self.seen_today[u] = true;
        }
        let (who, what) = (
            Who(name, ip, r.range(500, 5000)),
            format_args!("GET /hub/home"),
        );
        let t = sink.request(t + r.range(50, 900), 200, who, what);
        let at = t + r.range(2_000, 30_000);
        self.push(at, Ev::Spawn(u));
    }

    pub(super) fn on_activity(&mut self, t: u64, u: usize) {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let who = Who(name, &s.pod, self.rng.range(300, 4000));
        let what = format_args!("POST /hub/api/users/{name}/activity");
        let t = self.sink.request(t, 200, who, what);
        self.mark_seen(t, u);
        self.sessions[u].last_activity = t;
        self.extras(t, u);
        let next = t + self.interval_ms + self.rng.below(2000);
        if next < self.sessions[u].work_end {
            self.push(next, Ev::Activity(u));
        } else {
            self.wind_down(t, u);
        }
    }

    /// The user stopped working at `t`: schedule the server's stop, crash or cull.
    fn wind_down(&mut self, t: u64, u: usize) {
        let (r, crash_cap) = (&mut self.rng, self.interval_ms.clamp(1_001, 600_000));
        let tick = (t + CULL_AFTER_MS - CULL_OFFSET_MS).div_ceil(CULL_EVERY_MS);
        let (at, ev) = match self.sessions[u].end {
            End::Stop => (t + r.range(MIN_MS, 20 * MIN_MS), Ev::Stop(u)),
            End::Exit => (t + r.range(1_000, crash_cap), Ev::Exit(u)),
            End::Cull => (
                CULL_OFFSET_MS + tick * CULL_EVERY_MS + r.range(100, 400),
                Ev::Cull(u),
            ),
        };
        self.push(at, ev);
    }

    /// Occasional requests beside an activity POST: 404, 424, CHP 503, home page.
    fn extras(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip, pod) = (user.name.as_str(), user.ip.as_str(), s.pod.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let force = std::mem::take(&mut s.force_extras);
        let (sl, sv) = s.sl();
        if force || r.chance(1, 150) {
            let (who, what) = (
                Who(name, ip, r.range(200, 2000)),
                format_args!("GET /hub/user/{name}/api/kernels"),
            );
            sink.request(t + r.range(1, 500), 404, who, what);
        }
        if force || r.chance(1, 400) {
            let (who, what) = (
                Who(name, ip, r.range(500, 5000)),
                format_args!("GET /hub/user/{name}/lab"),
            );
            sink.request(t + r.range(1, 500), 424, who, what);
        }
        if force || r.chance(1, 300) {
            let msg = format_args!(
                "503 GET /user/{name}{sl}{sv}/api/kernels connect ECONNREFUSED {pod}:8888"
            );
            sink.chp(Kind::ChpProxyError, t + r.range(1, 500), msg);
        }
        if r.chance(1, 60) {
            let (who, what) = (
                Who(name, ip, r.range(500, 5000)),
                format_args!("GET /hub/home"),
            );
            sink.request(t + r.range(1, 500), 200, who, what);
        }
    }

    pub(super) fn on_logout(&mut self, t: u64, u: usize) {
        let user = &self.users[u];
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let msg = format_args!("User logged out: {name}");
        let t = self.sink.info(Kind::Logout, t, "login:47", msg);
        let (who, what) = (
            Who(name, ip, self.rng.range(300, 3000)),
            format_args!("GET /hub/logout -> /hub/login"),
        );
        let at = t + self.rng.range(1, 10);
        self.sink.request(at, 302, who, what);
    }
}
