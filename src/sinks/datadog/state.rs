//! What one hub is doing, as far as its logs have said: running servers, pending spawns, who
//! was active when. Pure state behind the gauges of [`crate::sinks::datadog::derive`]; user names live here in
//! memory only (to count distinct users) and never leave as tags.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::sinks::datadog::classify;
use crate::sinks::datadog::derive::ACTIVE_WINDOWS;
use crate::sinks::datadog::names as n;
use crate::sinks::datadog::{Point, Tag, TagValue, Value};

const US: i64 = 1_000_000;

fn st(s: &'static str) -> TagValue {
    TagValue::Static(s)
}

/// A set of at most `cap` strings, each shared; past the cap every new value is `other`.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    cap: usize,
    set: HashMap<String, Arc<str>>,
    /// The last raw value asked for and its answer (the hub name repeats on every record).
    last: Option<(String, TagValue)>,
}

impl Interner {
    pub(crate) fn new(cap: usize) -> Self {
        Interner {
            cap,
            set: HashMap::new(),
            last: None,
        }
    }

    pub(crate) fn get(&mut self, raw: &str) -> TagValue {
        if let Some((r, v)) = &self.last
            && r == raw
        {
            return v.clone();
        }
        let v = self.lookup(raw);
        self.last = Some((raw.to_string(), v.clone()));
        v
    }

    fn lookup(&mut self, raw: &str) -> TagValue {
        let s = classify::sanitize(raw);
        if let Some(v) = self.set.get(&s) {
            return TagValue::Shared(v.clone());
        }
        if self.set.len() >= self.cap {
            return TagValue::Static("other");
        }
        let v: Arc<str> = Arc::from(s.as_str());
        self.set.insert(s, v.clone());
        TagValue::Shared(v)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) server_type: &'static str,
    pub(crate) profile: Option<TagValue>,
}

/// What one hub is doing, as far as its logs have said.
#[derive(Debug, Default)]
pub(crate) struct HubState {
    pub(crate) running: HashMap<(String, String), Running>,
    /// (server_type, profile) groups ever reported, so a group that empties reports 0.
    pub(crate) groups: BTreeSet<(&'static str, Option<TagValue>)>,
    /// Launches not yet followed by an outcome (`spawns.pending`).
    pub(crate) pending: u64,
    /// KubeSpawner pods whose launch was counted, by pod name; `true` while a 409 conflict is
    /// being cleared (its `Deleting pod` is part of the retry, not the end of the launch).
    pub(crate) pods: HashMap<String, bool>,
    pub(crate) last_active: HashMap<String, i64>,
    pub(crate) services: HashSet<String>,
    pub(crate) profiles: VecDeque<TagValue>,
    pub(crate) reported: BTreeMap<&'static str, f64>,
}

impl HubState {
    pub(crate) fn active(&mut self, user: &str, t: i64) {
        if self.services.contains(user) {
            return;
        }
        match self.last_active.get_mut(user) {
            Some(last) => *last = (*last).max(t),
            None => {
                self.last_active.insert(user.to_string(), t);
            }
        }
    }

    /// A launch line ([`classify::launch_event`]); `true` when it is a new launch to count.
    ///
    /// KubeSpawner (`spawner.py`, 1.x–7.x) logs `Attempting to create pod P, with timeout N` in
    /// `_make_create_pod_request`, which `_start` runs under `exponential_backoff`: a request
    /// that times out is simply tried again (another `Attempting` line), and a 409 logs `Found
    /// existing pod P, attempting to kill`, stops the old pod (`Deleting pod NS/P` from
    /// `_make_delete_pod_request`) and tries again. So pod P's launch runs from its first
    /// `Attempting` line until P is deleted outside such a conflict: JupyterHub stops the
    /// spawner after every failed or timed-out spawn (`user.py` `spawn`, `handlers/base.py`) and
    /// at every stop, so a new launch of P always follows a `Deleting pod NS/P`.
    pub(crate) fn launch(&mut self, ev: classify::Launch<'_>) -> bool {
        use classify::Launch;
        match ev {
            Launch::Process => {
                self.pending += 1;
                true
            }
            Launch::PodCreate(pod) => {
                if let Some(conflict) = self.pods.get_mut(pod) {
                    *conflict = false;
                    return false;
                }
                if self.pods.len() < 100_000 {
                    self.pods.insert(pod.to_string(), false);
                }
                self.pending += 1;
                true
            }
            Launch::PodConflict(pod) => {
                if let Some(conflict) = self.pods.get_mut(pod) {
                    *conflict = true;
                }
                false
            }
            Launch::PodDeleted(pod) => {
                if self.pods.get(pod) == Some(&false) {
                    self.pods.remove(pod);
                }
                false
            }
        }
    }

    /// A spawn ended (started, failed or timed out): one launch fewer pending, never below 0
    /// (a spawn can fail before its launch line, e.g. KubeSpawner's unknown profile).
    pub(crate) fn finished(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }

    /// Forget a stopped server; returns its server type. A record that names no server means
    /// the user's only running server, else the default one.
    pub(crate) fn stopped(&mut self, user: Option<&str>, server: Option<&str>) -> &'static str {
        let Some(u) = user else {
            return classify::server_type(server.unwrap_or(""));
        };
        let key = match server {
            Some(s) => (u.to_string(), s.to_string()),
            None => {
                let mine: Vec<&(String, String)> =
                    self.running.keys().filter(|(ru, _)| ru == u).collect();
                match mine.as_slice() {
                    [only] => (*only).clone(),
                    _ => (u.to_string(), String::new()),
                }
            }
        };
        let ty = classify::server_type(&key.1);
        self.running.remove(&key);
        ty
    }

    /// Gauges at the end `end` (µs) of an interval. `observed`: the active-user counts per
    /// window from the hub's own `last_activity` (the observations), which win over the
    /// log-derived ones when there are any (see ARCHITECTURE.md, "The activity model").
    pub(crate) fn gauges(
        &mut self,
        hub: &TagValue,
        end: i64,
        observed: Option<[usize; 3]>,
    ) -> Vec<Point> {
        let hub_tag = || Tag {
            key: "hub",
            value: hub.clone(),
        };
        let mut out = Vec::new();
        let mut by_group: BTreeMap<(&'static str, Option<TagValue>), f64> = BTreeMap::new();
        for ty in ["default", "named"] {
            self.groups.insert((ty, None));
        }
        for r in self.running.values() {
            self.groups.insert((r.server_type, r.profile.clone()));
            *by_group
                .entry((r.server_type, r.profile.clone()))
                .or_insert(0.0) += 1.0;
        }
        for g in &self.groups {
            let mut t = vec![
                hub_tag(),
                Tag {
                    key: "server_type",
                    value: st(g.0),
                },
            ];
            t.extend(g.1.clone().map(|p| Tag {
                key: "profile",
                value: p,
            }));
            t.sort();
            let v = by_group.get(g).copied().unwrap_or(0.0);
            out.push(Point {
                metric: n::SERVERS_RUNNING,
                tags: t,
                value: Value::Gauge(v),
            });
        }
        let pending = self.pending as f64;
        out.push(Point {
            metric: n::SPAWNS_PENDING,
            tags: vec![hub_tag()],
            value: Value::Gauge(pending),
        });
        // One pass: forget users idle for longer than the widest window, count the others
        // into every window they fall in (this runs once per interval for every known user).
        let from: [i64; 3] = ACTIVE_WINDOWS.map(|(_, secs)| end - secs * US);
        let oldest = from.iter().copied().min().unwrap_or(end);
        let mut counts = [0usize; 3];
        self.last_active.retain(|_, t| {
            if *t < oldest {
                return false;
            }
            if *t < end {
                for (c, f) in counts.iter_mut().zip(from) {
                    *c += usize::from(*t >= f);
                }
            }
            true
        });
        let counts = observed.unwrap_or(counts);
        for ((w, _), c) in ACTIVE_WINDOWS.into_iter().zip(counts) {
            let mut t = vec![
                hub_tag(),
                Tag {
                    key: "window",
                    value: st(w),
                },
            ];
            t.sort();
            out.push(Point {
                metric: n::USERS_ACTIVE,
                tags: t,
                value: Value::Gauge(c as f64),
            });
        }
        for (p, v) in &self.reported {
            let mut t = vec![
                hub_tag(),
                Tag {
                    key: "period",
                    value: st(p),
                },
            ];
            t.sort();
            out.push(Point {
                metric: n::USERS_ACTIVE_REPORTED,
                tags: t,
                value: Value::Gauge(*v),
            });
        }
        out
    }
}
