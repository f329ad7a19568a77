//! What one record does to the deriver: its counts, distributions and state changes
//! ([`Deriver::apply`]), placed in the bucket of its interval or, for a record with no time at
//! all, in the held bucket (see the parent module's "Records without a time").
//!
//! Which records count as what is decided in [`classify`] (each rule cites the upstream code
//! that logs it) and [`HubState`] (launches, pending spawns, running servers).

use super::{Bucket, Deriver, Held, UNTIMED, st, tags};
use crate::parse::record::Record;
use crate::sinks::datadog::TagValue;
use crate::sinks::datadog::classify;
use crate::sinks::datadog::names as n;
use crate::sinks::datadog::state::{HubState, Running};

impl Deriver {
    /// The bucket of interval `at`, or the held bucket of untimed records ([`UNTIMED`]).
    fn bucket(&mut self, at: i64) -> &mut Bucket {
        if at == UNTIMED {
            &mut self.held.get_or_insert_with(Held::default).bucket
        } else {
            self.open.entry(at).or_default()
        }
    }

    /// `user` acted at `t`; an untimed record's user is marked when its time is known.
    fn mark_active(&mut self, hub: &TagValue, user: &str, t: i64) {
        if t == UNTIMED {
            let h = self.held.get_or_insert_with(Held::default);
            if h.active.len() < 10_000 {
                h.active.push((hub.clone(), user.to_string()));
            }
        } else {
            self.state(hub).active(user, t);
        }
    }

    pub(super) fn count(
        &mut self,
        at: i64,
        metric: &'static str,
        pairs: &[(&'static str, TagValue)],
    ) {
        let b = self.bucket(at);
        *b.counts.entry((metric, tags(pairs))).or_insert(0.0) += 1.0;
    }

    fn dist(&mut self, at: i64, metric: &'static str, pairs: &[(&'static str, TagValue)], v: f64) {
        let b = self.bucket(at);
        b.dists.entry((metric, tags(pairs))).or_default().push(v);
    }

    /// Counts, distributions and state changes of one record.
    pub(super) fn apply(&mut self, rec: &Record<'_>, hub: TagValue, t: i64, at: i64) {
        let h = || ("hub", hub.clone());
        if classify::is_traceback(rec) {
            let logger = match rec.logger {
                Some(l) => self.loggers.get(l),
                None => st(rec.source.as_str()),
            };
            self.count(at, n::TRACEBACKS, &[h(), ("logger", logger)]);
        }
        if let Some(ev) = classify::launch_event(rec)
            && self.state(&hub).launch(ev)
        {
            self.count(at, n::SPAWNS_STARTED, &[h()]);
        }
        let user = rec.user.as_deref();
        match rec.kind {
            "request" => self.request(rec, &hub, t, at),
            "login" => {
                self.count(at, n::LOGINS, &[h(), ("outcome", st("ok"))]);
                if let Some(u) = user {
                    self.mark_active(&hub, u, t);
                }
            }
            // One failed attempt, one count: see [`classify::LOGIN_FAILED_KINDS`].
            kind if classify::LOGIN_FAILED_KINDS.contains(&kind) => {
                self.count(at, n::LOGINS, &[h(), ("outcome", st("failed"))]);
            }
            "activity_recorded" => {
                if let Some(u) = user {
                    self.mark_active(&hub, u, t);
                }
            }
            "spawn_succeeded" => self.spawn_succeeded(rec, &hub, at),
            "spawn_failed" | "spawn_timeout" => {
                if let Some(reason) = classify::spawn_failure_reason(rec) {
                    self.state(&hub).finished();
                    self.count(at, n::SPAWNS_FAILED, &[h(), ("reason", st(reason))]);
                }
            }
            "stop_succeeded" | "server_exited" | "server_lost" => self.stopped(rec, &hub, at),
            "server_still_running" => {
                if let Some(u) = user {
                    let server = rec.server_name.as_deref().unwrap_or("");
                    let r = Running {
                        server_type: classify::server_type(server),
                        profile: None,
                    };
                    self.state(&hub)
                        .running
                        .insert((u.to_string(), server.to_string()), r);
                }
            }
            "hub_starting" => {
                let s = self.state(&hub);
                s.running.clear();
                s.pending = 0;
                s.pods.clear();
                s.profiles.clear();
            }
            "profile_override" => self.profile_override(rec, &hub),
            "service_created" | "service_registered" | "service_starting" => {
                self.service_seen(rec, &hub);
            }
            "active_users" => self.active_users_reported(rec, &hub),
            kind => {
                if let Some(r) = classify::cull_reason(kind) {
                    self.count(at, n::CULLS, &[h(), ("reason", st(r))]);
                } else if let Some(r) = classify::proxy_error_reason(kind) {
                    self.count(at, n::PROXY_ERRORS, &[h(), ("reason", st(r))]);
                } else if let Some(r) = classify::spawn_denied_reason(kind) {
                    self.count(at, n::SPAWNS_DENIED, &[h(), ("reason", st(r))]);
                }
            }
        }
    }

    /// A request line: its count and duration by route group, and its user's activity.
    fn request(&mut self, rec: &Record<'_>, hub: &TagValue, t: i64, at: i64) {
        let h = || ("hub", hub.clone());
        let group = st(rec.route.map_or("other", classify::route_group));
        let class = st(rec.status.map_or("other", classify::status_class));
        self.count(
            at,
            n::REQUESTS,
            &[h(), ("route_group", group.clone()), ("status_class", class)],
        );
        if let Some(ms) = rec.duration_ms {
            self.dist(
                at,
                n::REQUEST_DURATION,
                &[h(), ("route_group", group)],
                ms / 1000.0,
            );
        }
        // A single-user server reports its heartbeat with its user's token: the
        // activity POST's line names the user as actor, but is no activity.
        let heartbeat = rec.route == Some("/hub/api/users/{user}/activity");
        if let (Some(a), Some(u)) = (rec.actor, rec.user.as_deref())
            && a == u
            && !heartbeat
        {
            self.mark_active(hub, u, t);
        }
    }

    /// A server is ready: it runs (with the profile its spawn applied), counted with its
    /// spawn's duration.
    fn spawn_succeeded(&mut self, rec: &Record<'_>, hub: &TagValue, at: i64) {
        let s = self.state(hub);
        s.finished();
        let profile = s.profiles.pop_front();
        let server = rec.server_name.as_deref().unwrap_or("");
        let ty = classify::server_type(server);
        if let Some(u) = rec.user.as_deref() {
            let r = Running {
                server_type: ty,
                profile: profile.clone(),
            };
            s.running.insert((u.to_string(), server.to_string()), r);
        }
        let mut pairs = vec![("hub", hub.clone()), ("server_type", st(ty))];
        pairs.extend(profile.map(|p| ("profile", p)));
        self.count(at, n::SPAWNS_SUCCEEDED, &pairs);
        if let Some(ms) = rec.duration_ms {
            self.dist(at, n::SPAWN_DURATION, &pairs, ms / 1000.0);
        }
    }

    /// A server stopped (on request), exited or was lost: counted by reason and server type,
    /// with the stop's duration when requested.
    fn stopped(&mut self, rec: &Record<'_>, hub: &TagValue, at: i64) {
        let h = || ("hub", hub.clone());
        let reason = match rec.kind {
            "stop_succeeded" => "requested",
            "server_exited" => "exited",
            _ => "lost",
        };
        let (user, server) = (rec.user.as_deref(), rec.server_name.as_deref());
        let ty = self.state(hub).stopped(user, server);
        self.count(
            at,
            n::STOPS,
            &[h(), ("reason", st(reason)), ("server_type", st(ty))],
        );
        if let (true, Some(ms)) = (rec.kind == "stop_succeeded", rec.duration_ms) {
            self.dist(
                at,
                n::STOP_DURATION,
                &[h(), ("server_type", st(ty))],
                ms / 1000.0,
            );
        }
    }

    /// The profile the next spawn of this hub runs with (at most 64 waiting).
    fn profile_override(&mut self, rec: &Record<'_>, hub: &TagValue) {
        if let Some((_, p)) = rec.attrs.iter().find(|(k, _)| *k == "profile") {
            let p = self.profiles.get(p);
            let s = self.state(hub);
            if s.profiles.len() == 64 {
                s.profiles.pop_front();
            }
            s.profiles.push_back(p);
        }
    }

    /// A service the hub created, registered or started (at most 10,000 names).
    fn service_seen(&mut self, rec: &Record<'_>, hub: &TagValue) {
        let name = rec.service.or_else(|| {
            rec.attrs
                .iter()
                .find(|(k, _)| matches!(*k, "service" | "token_service" | "quoted_service"))
                .map(|(_, v)| *v)
        });
        if let Some(name) = name {
            let s = self.state(hub);
            if s.services.len() < 10_000 {
                s.services.insert(name.to_string());
            }
        }
    }

    /// The hub's own count of active users over a period (24h, 7d, 30d).
    fn active_users_reported(&mut self, rec: &Record<'_>, hub: &TagValue) {
        let period = rec
            .attrs
            .iter()
            .find(|(k, _)| *k == "period")
            .map(|(_, v)| *v);
        let period = match period {
            Some("twenty_four_hours") => Some("24h"),
            Some("seven_days") => Some("7d"),
            Some("thirty_days") => Some("30d"),
            _ => None,
        };
        if let (Some(p), Some(c)) = (period, rec.count) {
            self.state(hub).reported.insert(p, c as f64);
        }
    }

    pub(super) fn state(&mut self, hub: &TagValue) -> &mut HubState {
        self.hubs.entry(hub.clone()).or_default()
    }
}
