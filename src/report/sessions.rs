//! Sessions: single-user server runs rebuilt from the lake's lifecycle records.
//!
//! A session is one run of one server (`hub`, `user`, `server`): from the record that says it
//! was ready (`User alice:gpu took 12.3 seconds to start`) to the record that says it ended.
//! [`derive`] is a pure function over [`LifeEvent`]s in log order; `load` reads them from the
//! lake. Every way the log can fall short is closed by a stated rule and flagged, never guessed
//! silently:
//!
//! | situation | rule | flag |
//! |---|---|---|
//! | running before the first line (a stop, `still running` or activity with no spawn seen) | starts at the hub's first record in the data | `started_before_data` |
//! | still running after the last line | `end` is empty, reason `running`; reports bill it to the hub's last record | — |
//! | a second spawn while one is open (stop line missing) | the old one ends at its last activity (or its start) | `missing_stop` |
//! | `appears to have stopped while the Hub was down` | ends at the hub's shutdown before it (or at that line) | `end_estimated` |
//! | hub restart, servers kept (Z2JH) | nothing ends: `still running` lines confirm it | — |
//! | exit line without the server name | the user's only open server, else the default one | — |
//!
//! End reasons: `user_stop` (the user's own DELETE), `culled` (the culler's log line or a
//! DELETE by a culler service), `admin_stop` (a DELETE by anyone else), `failed` (the server
//! exited on its own), `hub_restart` (lost while the hub was down), `replaced` (stop line
//! missing), `running`.
//!
//! Profiles: the hub logs the chosen profile only at DEBUG (`Applying KubeSpawner override for
//! profile '<display name>'`), before it creates the pod. Each such line is paired with the next
//! `Attempting to create pod <name>` of the same hub, and the pod with the user's next ready
//! server whose pod name matches. Servers with no such line get the default profile
//! (`profile_from = default`): KubeSpawner applies the default profile when none is chosen.
//!
//! Times are microseconds since the epoch, UTC, as in the lake.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

pub use crate::fx::{Fx, FxMap};

/// Hub, user and server names as small integers: the session rules then hash and compare
/// integers (they look names up several times per record), and each record carries three
/// `u32`s instead of three allocated strings. One table for all three kinds of name.
#[derive(Debug, Default, Clone)]
pub struct Names {
    ids: FxMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    /// The id of `name`, given one if new (no allocation when known).
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// A lifecycle record with interned names (see [`LifeEvent`]).
#[derive(Debug, Clone)]
pub struct Ev {
    pub ts: i64,
    pub hub: u32,
    pub user: Option<u32>,
    pub server: Option<u32>,
    pub life: Life,
}

/// Activity times per (hub, user) id.
pub type Activity = FxMap<(u32, u32), Vec<i64>>;

/// What a lifecycle record says, with the fields the session rules need.
#[derive(Debug, Clone, PartialEq)]
pub enum Life {
    /// `Applying KubeSpawner override for profile '<name>'` (DEBUG).
    ProfileOverride(String),
    /// `Attempting to create pod <pod>`.
    PodCreate(String),
    /// Ready; the spawn took this many seconds.
    SpawnSucceeded(Option<f64>),
    StopSucceeded,
    /// Exited on its own (`server stopped, with exit code`).
    Exited,
    /// `appears to have stopped while the Hub was down` / `does not appear to be running`.
    Lost,
    /// `<name> still running` at hub start-up.
    StillRunning,
    /// The idle culler's own line: culling this server or user.
    CullRequested,
    /// `DELETE /hub/api/users/<user>/server[s/<name>]`, and who sent it.
    Delete {
        actor: String,
    },
    /// The hub received a signal and shuts down.
    HubShutdown,
    /// Activity from the user (activity POST): updates the last activity of their servers.
    Activity,
}

/// One lifecycle record. `user` is `None` for hub-wide records.
#[derive(Debug, Clone)]
pub struct LifeEvent {
    pub ts: i64,
    pub hub: String,
    pub user: Option<String>,
    /// Server name when the record names one (`Some("")` = the default server).
    pub server: Option<String>,
    pub life: Life,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    UserStop,
    Culled,
    AdminStop,
    Failed,
    HubRestart,
    Replaced,
    Running,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::UserStop => "user_stop",
            EndReason::Culled => "culled",
            EndReason::AdminStop => "admin_stop",
            EndReason::Failed => "failed",
            EndReason::HubRestart => "hub_restart",
            EndReason::Replaced => "replaced",
            EndReason::Running => "running",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub hub: String,
    pub user: String,
    /// `""` for the default server.
    pub server: String,
    /// The profile's display name from the log, or `None` (the default profile).
    pub profile: Option<String>,
    pub start: i64,
    /// `None` while running at the end of the data.
    pub end: Option<i64>,
    pub end_reason: EndReason,
    pub spawn_seconds: Option<f64>,
    /// Last activity seen while it ran (`None`: none seen).
    pub last_activity: Option<i64>,
    pub started_before_data: bool,
    pub missing_stop: bool,
    pub end_estimated: bool,
}

impl Session {
    /// Comma-separated flags, empty when the session is fully observed.
    pub fn flags(&self) -> String {
        let mut f = Vec::new();
        if self.started_before_data {
            f.push("started_before_data");
        }
        if self.missing_stop {
            f.push("missing_stop");
        }
        if self.end_estimated {
            f.push("end_estimated");
        }
        f.join(",")
    }

    /// Seconds between the last sign of use (activity, or the start) and `until`.
    pub fn idle_tail_us(&self, until: i64) -> i64 {
        let last = self.last_activity.unwrap_or(self.start).max(self.start);
        (until - last).max(0)
    }
}

/// How long after a stop a DELETE request still belongs to it (the request line is written
/// when the request completes, after the stop line).
const DELETE_AFTER_STOP_US: i64 = 60_000_000;
/// How long before its pod's creation a profile override line can be.
const PROFILE_TO_POD_US: i64 = 60_000_000;
/// How long before a stop a culler's line still explains it.
const CULL_BEFORE_STOP_US: i64 = 15 * 60_000_000;

/// (hub, user, server) ids.
type Key = (u32, u32, u32);

struct State<'a> {
    names: &'a Names,
    open: FxMap<Key, Session>,
    /// The servers in `open`, per (hub, user) (kept by `open_insert` and `open_remove`, the
    /// only writers of `open`).
    open_servers: FxMap<(u32, u32), Vec<u32>>,
    done: Vec<(Key, Session)>,
    /// Closed sessions awaiting their DELETE line: key -> index in `done`.
    just_stopped: FxMap<Key, usize>,
    cull_at: FxMap<Key, i64>,
    /// Per hub: profiles logged (with their time) and not yet paired with a pod.
    pending_profiles: FxMap<u32, VecDeque<(i64, String)>>,
    /// Per hub: pod (normalised name) -> profile.
    pod_profiles: FxMap<u32, FxMap<String, String>>,
    /// (hub, user) seen in any lifecycle record: activity from others opens a session.
    known: std::collections::HashSet<(u32, u32), BuildHasherDefault<Fx>>,
    last_shutdown: FxMap<u32, i64>,
    activity: Activity,
    /// Names normalised as in pod names (see `take_profile`), by id.
    normalised: FxMap<u32, String>,
}

/// Activity times per hub and user, µs, each list sorted (looked up by `&str`, no allocation).
pub type ActivityIndex = FxMap<String, FxMap<String, Vec<i64>>>;

/// Rebuild sessions from lifecycle records in log order. `activity` holds every activity time
/// of every user (merged with any [`Life::Activity`] record in `events`); `first_ts` gives each
/// hub's first record in the data (where sessions already running begin).
///
/// An activity record in `events` matters only for a user with no lifecycle record before it
/// (it opens a session that was already running); [`load`](super::load) passes each user's
/// first activity so.
pub fn derive(
    events: &[LifeEvent],
    activity: ActivityIndex,
    first_ts: &HashMap<String, i64>,
) -> Vec<Session> {
    let mut names = Names::default();
    names.id("");
    let evs: Vec<Ev> = events
        .iter()
        .map(|e| Ev {
            ts: e.ts,
            hub: names.id(&e.hub),
            user: e.user.as_deref().map(|u| names.id(u)),
            server: e.server.as_deref().map(|s| names.id(s)),
            life: e.life.clone(),
        })
        .collect();
    let activity = intern_activity(activity, &mut names);
    derive_interned(&evs, &names, activity, first_ts)
}

/// [`ActivityIndex`] keyed by interned ids.
pub fn intern_activity(activity: ActivityIndex, names: &mut Names) -> Activity {
    let mut out = Activity::default();
    for (h, users) in activity {
        let h = names.id(&h);
        for (u, v) in users {
            out.insert((h, names.id(&u)), v);
        }
    }
    out
}

/// [`derive`] over records whose names are interned in `names`.
pub fn derive_interned(
    events: &[Ev],
    names: &Names,
    mut activity: Activity,
    first_ts: &HashMap<String, i64>,
) -> Vec<Session> {
    for ev in events {
        if let (Life::Activity, Some(u)) = (&ev.life, ev.user) {
            activity.entry((ev.hub, u)).or_default().push(ev.ts);
        }
    }
    for v in activity.values_mut() {
        v.sort_unstable();
    }
    let mut st = State {
        names,
        open: FxMap::default(),
        open_servers: FxMap::default(),
        done: Vec::new(),
        just_stopped: FxMap::default(),
        cull_at: FxMap::default(),
        pending_profiles: FxMap::default(),
        pod_profiles: FxMap::default(),
        known: Default::default(),
        last_shutdown: FxMap::default(),
        activity,
        normalised: FxMap::default(),
    };
    let first_ts: FxMap<u32, i64> = first_ts
        .iter()
        .filter_map(|(k, v)| Some((names.get(k)?, *v)))
        .collect();
    for ev in events {
        st.apply(ev, &first_ts);
    }
    let mut out = std::mem::take(&mut st.done);
    out.extend(std::mem::take(&mut st.open));
    for (k, s) in &mut out {
        s.last_activity = st.last_activity(k.0, k.1, s.start, s.end.unwrap_or(i64::MAX));
    }
    let mut out: Vec<Session> = out.into_iter().map(|(_, s)| s).collect();
    out.sort_by(|a, b| {
        (a.start, &a.hub, &a.user, &a.server).cmp(&(b.start, &b.hub, &b.user, &b.server))
    });
    out
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect()
}

impl State<'_> {
    fn apply(&mut self, ev: &Ev, first_ts: &FxMap<u32, i64>) {
        let hub = ev.hub;
        let data_start = first_ts.get(&hub).copied().unwrap_or(ev.ts);
        match &ev.life {
            Life::ProfileOverride(p) => {
                let q = self.pending_profiles.entry(hub).or_default();
                q.push_back((ev.ts, p.clone()));
                return;
            }
            Life::PodCreate(pod) => {
                // Overrides are logged just before their pod is created; one older than that
                // belongs to a spawn that failed before creating a pod.
                let q = self.pending_profiles.entry(hub).or_default();
                while q
                    .front()
                    .is_some_and(|(t, _)| ev.ts - t > PROFILE_TO_POD_US)
                {
                    q.pop_front();
                }
                let profile = q.pop_front().map(|(_, p)| p);
                let pod = norm(pod.rsplit('/').next().unwrap_or(pod));
                // Each new pod of that name replaces what an earlier (maybe failed) one left.
                let pods = self.pod_profiles.entry(hub).or_default();
                match profile {
                    Some(profile) => pods.insert(pod, profile),
                    None => pods.remove(&pod),
                };
                return;
            }
            Life::HubShutdown => {
                self.last_shutdown.insert(hub, ev.ts);
                return;
            }
            _ => {}
        }
        let Some(user) = ev.user else { return };
        if ev.life == Life::Activity {
            self.activity(hub, user, ev.ts, data_start);
            return;
        }
        self.known.insert((hub, user));
        let server = match (&ev.life, ev.server) {
            (_, Some(s)) => s,
            (Life::Exited, None) => self.only_open_server(hub, user),
            _ => self.default_server(),
        };
        let key = (hub, user, server);
        match &ev.life {
            Life::SpawnSucceeded(secs) => self.started(key, ev.ts, *secs),
            Life::StopSucceeded => {
                let reason = match self.cull_at.get(&key) {
                    Some(&c) if ev.ts - c <= CULL_BEFORE_STOP_US => EndReason::Culled,
                    _ => EndReason::UserStop,
                };
                let i = self.close(key, ev.ts, reason, data_start);
                self.just_stopped.insert(key, i);
            }
            Life::Exited => {
                self.close(key, ev.ts, EndReason::Failed, data_start);
            }
            Life::Lost => {
                let at = self
                    .last_shutdown
                    .get(&hub)
                    .copied()
                    .filter(|&s| s <= ev.ts)
                    .unwrap_or(ev.ts);
                let i = self.close(key, at, EndReason::HubRestart, data_start);
                self.done[i].1.end_estimated = true;
            }
            Life::StillRunning if !self.open.contains_key(&key) => {
                let s = self.new_session(key, data_start, None);
                self.open_insert(
                    key,
                    Session {
                        started_before_data: true,
                        ..s
                    },
                );
            }
            Life::CullRequested => {
                self.cull_at.insert(key, ev.ts);
            }
            Life::Delete { actor } => self.delete(key, actor, ev.ts),
            _ => {}
        }
    }

    /// The id of the default server's name, `""` (`u32::MAX` if `names` lacks it: see `name`).
    fn default_server(&self) -> u32 {
        self.names.get("").unwrap_or(u32::MAX)
    }

    fn activity(&mut self, hub: u32, user: u32, ts: i64, data_start: i64) {
        // `known` first: it is a lookup, `any_open` a scan of the open sessions.
        let known = self.known.contains(&(hub, user));
        let any_open = || {
            self.open_servers
                .get(&(hub, user))
                .is_some_and(|v| !v.is_empty())
        };
        if !known && !any_open() {
            // Activity from a server whose start the data does not show: it was already running.
            let key = (hub, user, self.default_server());
            let mut s = self.new_session(key, data_start.min(ts), None);
            s.started_before_data = true;
            self.known.insert((hub, user));
            self.open_insert(key, s);
        }
    }

    /// The user's last activity in `[from, to]`.
    fn last_activity(&self, hub: u32, user: u32, from: i64, to: i64) -> Option<i64> {
        let v = self.activity.get(&(hub, user))?;
        let i = v.partition_point(|&t| t <= to);
        (i > 0 && v[i - 1] >= from).then(|| v[i - 1])
    }

    fn only_open_server(&self, hub: u32, user: u32) -> u32 {
        match self.open_servers.get(&(hub, user)) {
            Some(v) if v.len() == 1 => v[0],
            _ => self.default_server(),
        }
    }

    fn open_insert(&mut self, key: Key, s: Session) {
        let v = self.open_servers.entry((key.0, key.1)).or_default();
        if !v.contains(&key.2) {
            v.push(key.2);
        }
        self.open.insert(key, s);
    }

    fn open_remove(&mut self, key: Key) -> Option<Session> {
        let s = self.open.remove(&key)?;
        if let Some(v) = self.open_servers.get_mut(&(key.0, key.1)) {
            v.retain(|&x| x != key.2);
        }
        Some(s)
    }

    /// A name by id; `""` for the default server's id when no record interned `""`.
    fn name(&self, id: u32) -> &str {
        if id == u32::MAX {
            ""
        } else {
            self.names.name(id)
        }
    }

    fn new_session(&mut self, key: Key, start: i64, spawn: Option<f64>) -> Session {
        Session {
            hub: self.name(key.0).to_string(),
            user: self.name(key.1).to_string(),
            server: self.name(key.2).to_string(),
            profile: self.take_profile(key),
            start,
            end: None,
            end_reason: EndReason::Running,
            spawn_seconds: spawn,
            last_activity: None,
            started_before_data: false,
            missing_stop: false,
            end_estimated: false,
        }
    }

    /// `name` of `id` normalised as in pod names, computed once per name.
    fn normalised(&mut self, id: u32) -> String {
        if let Some(n) = self.normalised.get(&id) {
            return n.clone();
        }
        let n = norm(self.name(id));
        self.normalised.insert(id, n.clone());
        n
    }

    /// The profile logged for this server's pod: `jupyter-<user>[-[-]<server>]`, compared on
    /// letters and digits only (KubeSpawner escapes names).
    fn take_profile(&mut self, key: Key) -> Option<String> {
        if self.pod_profiles.get(&key.0).is_none_or(|p| p.is_empty()) {
            return None;
        }
        let user = self.normalised(key.1);
        let server = self.normalised(key.2);
        let pods = self.pod_profiles.get_mut(&key.0)?;
        let bare = format!("jupyter{user}");
        let exact = format!("{bare}{server}");
        pods.remove(&exact).or_else(|| pods.remove(&bare))
    }

    fn started(&mut self, key: Key, ts: i64, spawn: Option<f64>) {
        if let Some(mut old) = self.open_remove(key) {
            let last = self.last_activity(key.0, key.1, old.start, ts);
            old.end = Some(last.unwrap_or(old.start).max(old.start));
            old.end_reason = EndReason::Replaced;
            old.missing_stop = true;
            self.done.push((key, old));
        }
        self.cull_at.remove(&key);
        self.just_stopped.remove(&key);
        let s = self.new_session(key, ts, spawn);
        self.open_insert(key, s);
    }

    /// Ends the open session of `key` (or records one that ran from before the data) and
    /// returns its index in `done`.
    fn close(&mut self, key: Key, at: i64, reason: EndReason, data_start: i64) -> usize {
        let mut s = match self.open_remove(key) {
            Some(s) => s,
            None => {
                let mut s = self.new_session(key, data_start.min(at), None);
                s.started_before_data = true;
                s
            }
        };
        s.end = Some(at.max(s.start));
        s.end_reason = reason;
        self.done.push((key, s));
        self.done.len() - 1
    }

    fn delete(&mut self, key: Key, actor: &str, ts: i64) {
        let Some(&i) = self.just_stopped.get(&key) else {
            return;
        };
        let s = &mut self.done[i].1;
        if s.end.is_some_and(|e| ts - e > DELETE_AFTER_STOP_US) {
            return;
        }
        if s.end_reason == EndReason::UserStop {
            s.end_reason = if actor == self.names.name(key.1) {
                EndReason::UserStop
            } else if actor.contains("cull") {
                EndReason::Culled
            } else {
                EndReason::AdminStop
            };
        }
        self.just_stopped.remove(&key);
    }
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
