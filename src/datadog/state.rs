//! What one hub is doing, as far as its logs have said: running servers, pending spawns, who
//! was active when. Pure state behind the gauges of [`super::derive`]; user names live here in
//! memory only (to count distinct users) and never leave as tags.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::datadog::classify;
use crate::datadog::derive::ACTIVE_WINDOWS;
use crate::datadog::names as n;
use crate::datadog::{Point, Tag, TagValue, Value};

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
    pub(crate) started: u64,
    pub(crate) finished: u64,
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
        let pending = self.started.saturating_sub(self.finished) as f64;
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
