//! What the hub last said of its users' activity: each user's `last_activity` as the latest
//! observation (a `GET /users` listing or a `GET /users/{name}` read) reported it. Shared,
//! read-mostly state between the observation loop (the culler's reconcile, or the standalone
//! observer) and the metrics that count active users (`jupyterhub.users.active`).
//!
//! This is *the user's activity*, not liveness: the hub's `last_activity` moves only when a
//! single-user server reports a newer time, the proxy saw traffic on the user's route, or the
//! user called the hub (see ARCHITECTURE.md, "The activity model"). The hub also sets it when it
//! stops a server (`User.stop` in `jupyterhub/user.py`); a value observed *after* a server was
//! stopped is therefore not taken as activity, so a cull never makes its user "active".
//!
//! # Guarantees
//! - Memory is bounded by the users seen in the last 24 h (older ones are forgotten).
//! - Before the first observation, [`ActivityView::active_counts`] is `None`: callers fall back
//!   to (and say they use) the log-derived figure.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::User;

const DAY_US: i64 = 86_400_000_000;

#[derive(Debug, Default)]
struct Inner {
    /// user → last activity (UTC µs) as last observed.
    users: HashMap<String, i64>,
    /// When the latest observation was made.
    observed_at: Option<i64>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct ActivityView {
    inner: Mutex<Inner>,
}

/// A user's activity as the hub reports it: the user's `last_activity` (the hub keeps it at
/// least as recent as any of their servers'), else the newest of their servers'.
pub fn user_activity(u: &User) -> Option<DateTime<Utc>> {
    u.last_activity
        .or_else(|| u.active_servers().filter_map(|s| s.last_activity).max())
}

impl ActivityView {
    /// Folds in users the hub reported at `at`. Only users with a running (or pending) server
    /// are taken: a server-less user's `last_activity` may be the stop of their last server.
    pub fn observe<'a>(&self, at: DateTime<Utc>, users: impl IntoIterator<Item = &'a User>) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let at_us = at.timestamp_micros();
        for u in users {
            if u.active_servers().next().is_none() {
                continue;
            }
            let Some(t) = user_activity(u) else { continue };
            let t = t.timestamp_micros();
            match g.users.get_mut(&u.name) {
                Some(v) => *v = (*v).max(t),
                None => {
                    g.users.insert(u.name.clone(), t);
                }
            }
        }
        g.observed_at = Some(g.observed_at.map_or(at_us, |o| o.max(at_us)));
        g.users.retain(|_, t| *t >= at_us - DAY_US);
    }

    /// Users whose activity lies in `[end - w, end)` for each window `w` (µs), or `None` before
    /// the first observation.
    pub fn active_counts(&self, end_us: i64, windows_us: &[i64]) -> Option<Vec<usize>> {
        let g = self.inner.lock().ok()?;
        g.observed_at?;
        let mut out = vec![0usize; windows_us.len()];
        for t in g.users.values() {
            if *t >= end_us {
                continue;
            }
            for (c, w) in out.iter_mut().zip(windows_us) {
                *c += usize::from(*t >= end_us - w);
            }
        }
        Some(out)
    }

    /// When the latest observation was made (UTC µs).
    pub fn observed_at(&self) -> Option<i64> {
        self.inner.lock().ok()?.observed_at
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hub::Server;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn user(name: &str, last: Option<i64>, running: bool) -> User {
        let servers = running.then(|| {
            let s = Server {
                name: String::new(),
                ready: true,
                pending: None,
                stopped: false,
                started: Some(t(0)),
                last_activity: last.map(t),
                url: None,
                user_options: None,
            };
            [(String::new(), s)].into_iter().collect()
        });
        User {
            name: name.into(),
            admin: false,
            groups: None,
            roles: None,
            last_activity: last.map(t),
            created: None,
            pending: None,
            servers,
        }
    }

    #[test]
    fn counts_follow_the_hubs_times_per_window_and_none_before_any_observation() {
        let v = ActivityView::default();
        assert_eq!(v.active_counts(t(1000).timestamp_micros(), &[1]), None);
        v.observe(
            t(1000),
            &[
                user("busy", Some(990), true),
                user("idle", Some(100), true),
                user("gone", Some(999), false),
            ],
        );
        let w = |s: i64| s * 1_000_000;
        let end = t(1000).timestamp_micros();
        assert_eq!(
            v.active_counts(end, &[w(60), w(3600)]),
            Some(vec![1, 2]),
            "the server-less user's time is its stop, not activity"
        );
        // An older observation never moves a user back.
        v.observe(t(1001), &[user("busy", Some(10), true)]);
        assert_eq!(v.active_counts(end, &[w(60)]), Some(vec![1]));
    }
}
