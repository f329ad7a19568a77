//! A server going away: stopped by its user, culled by the idle culler, or exited on its own;
//! the route removal and pod deletion each brings, and the server time added to the truth.

use super::*;

impl<W: Write> Sim<W> {
    /// Removes the route from hub proxy and CHP, deletes the pod; returns the first stamp.
    fn remove_route(&mut self, t: u64, u: usize) -> u64 {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let ((sl, sv), r, sink) = (s.sl(), &mut self.rng, &mut self.sink);
        let msg = format_args!("Removing user {name} from proxy (/user/{name}{sl}{sv}/)");
        let t0 = sink.info(Kind::ProxyRouteRemoved, t, "proxy:356", msg);
        let msg = format_args!("Removing route /user/{name}{sl}{sv}");
        let t = sink.chp(Kind::ChpRouteRemoved, t0 + r.range(1, 8), msg);
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Deleting pod jhub/{pod_name}");
        sink.info(Kind::PodDelete, t + r.range(5, 40), "spawner:3395", msg);
        t0
    }

    /// Route removal, pod deletion and stop, all within a second, then the 204 DELETE.
    fn stop_sequence(&mut self, t: u64, u: usize, by_culler: bool) {
        let t0 = self.remove_route(t, u);
        let took = self.rng.range(120, 900);
        let name = self.users[u].name.as_str();
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name} server took {secs}.{frac:03} seconds to stop");
        let t = self
            .sink
            .info(Kind::StopSucceeded, t0 + took, "base:1382", msg);
        self.ended(u, t);
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (actor, ip) = if by_culler {
            (CULLER, LOCALHOST)
        } else {
            (name, ip)
        };
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let (who, api) = (Who(actor, ip, took * 100 + r.below(100)), s.api(name));
        sink.request(t + r.range(1, 10), 204, who, format_args!("DELETE {api}"));
    }

    /// The server of user `u` stopped at `t` (ms of day): add its run to the truth.
    fn ended(&mut self, u: usize, t: u64) {
        let month = self.sink.date[..7].to_string();
        let profile = profile_of(u, self.sessions[u].server).unwrap_or("");
        let ms = t.saturating_sub(self.sessions[u].ready_at);
        let by_user = self.server_ms.entry(month.clone()).or_default();
        let by_profile = by_user.entry(self.users[u].name.clone()).or_default();
        *by_profile.entry(profile.to_string()).or_default() += ms;
        *self.server_runs.entry(month).or_default() += 1;
    }

    pub(super) fn on_stop(&mut self, t: u64, u: usize) {
        self.stop_sequence(t, u, false);
        if self.sessions[u].logout {
            let at = self.sink.last - self.sink.day_base + self.rng.range(5_000, 90_000);
            self.push(at, Ev::Logout(u));
        }
    }

    pub(super) fn on_exit(&mut self, t: u64, u: usize) {
        let name = self.users[u].name.as_str();
        let msg = format_args!("User {name} server stopped, with exit code: 137");
        let t = self.sink.hub(Kind::ServerExited, t, 'W', "base:1448", msg);
        self.ended(u, t);
        let gap = self.rng.range(5, 50);
        self.remove_route(t + gap, u);
    }

    pub(super) fn on_cull(&mut self, t: u64, u: usize) {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let (sl, sv) = s.sl();
        let t0 = self.sink.stamp_second(t);
        let idle = t0.saturating_sub(s.last_activity) / 1000;
        let (h, m, sec) = (idle / 3600, idle / 60 % 60, idle % 60);
        let msg =
            format_args!("Culling server {name}{sl}{sv} (inactive for {h:02}:{m:02}:{sec:02})");
        let t0 = self.sink.culler(t0, msg);
        let gap = self.rng.range(20, 80);
        self.stop_sequence(t0 + gap, u, true);
    }
}
