//! Sessions: single-user server runs rebuilt from the lake's lifecycle records.
//!
//! A session is one run of one server (`hub`, `user`, `server`): from the record that says it
//! was ready (`User alice:gpu took 12.3 seconds to start`) to the record that says it ended.
//! [`derive`] is a pure function over [`LifeEvent`]s in log order; `load` reads them from the
//! lake. Every way the log can fall short is closed by a stated rule and flagged, never guessed
//! silently. The rules, each with the upstream code that emits the message and the test that
//! pins it, are in `docs/SESSIONS.md`; in short:
//!
//! | situation | rule | flag |
//! |---|---|---|
//! | running before the first line (a stop, `still running` or activity with no spawn seen) | starts at the hub's first record in the data | `started_before_data` |
//! | activity from a pod before its server's "took N seconds to start" line | belongs to that spawn (it is after the spawn began: ready − N s), is no evidence of an older server | — |
//! | `<user> still running` (hub start-up; the user's name only, in every JupyterHub version) | confirms the user's open servers; a line beyond them is a server running since before the data, named by its later stop | `started_before_data` |
//! | still running after the last line | `end` is empty, reason `running`; reports bill it to the hub's last record | — |
//! | a second spawn while one is open (stop line missing, e.g. a gap in the log) | the old one ends at its own last sign of life (activity, `still running`) before the new spawn *began* (ready − N s), else at its start | `missing_stop` |
//! | `appears to have stopped while the Hub was down` | ends at the hub's shutdown before it (or at that line) | `end_estimated` |
//! | hub restart, servers kept (Z2JH) | nothing ends: `still running` lines confirm it | — |
//! | exit or stop line without the server name | the server of the same user's proxy-route removal logged with it (after an exit, before a stop), else the server of the DELETE that follows a stop, else the user's only open server, else the default one | — |
//!
//! End reasons: `user_stop` (the user's own DELETE), `culled` (the culler's log line or a
//! DELETE by a culler service), `admin_stop` (a DELETE by anyone else), `failed` (the server
//! exited on its own), `hub_restart` (lost while the hub was down), `replaced` (stop line
//! missing), `running`.
//!
//! Profiles: the hub logs the chosen profile only at DEBUG (`Applying KubeSpawner override for
//! profile '<display name>'`), before it creates the pod. Each such line is paired with the next
//! `Attempting to create pod <name>` of the same hub, and the pod with the user's next ready
//! server whose KubeSpawner pod name ([`super::podname`], both slug schemes) it is. Servers with
//! no such line get the default profile (`profile_from = default`): KubeSpawner applies the
//! default profile when none is chosen.
//!
//! Where the lake holds the hub's own observations of servers (REST API `started`, listings,
//! `gone`), `super::grounding` corrects a session's start and end after [`derive`] and flags it
//! `hub_corrected`.
//!
//! Times are microseconds since the epoch, UTC, as in the lake.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

/// Hub, user and server names as small integers: the session rules then hash and compare
/// integers (they look names up several times per record), and each record carries three
/// `u32`s instead of three allocated strings. One table for all three kinds of name.
#[derive(Debug, Default, Clone)]
pub struct Names {
    ids: FxHashMap<String, u32>,
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
pub type Activity = FxHashMap<(u32, u32), Vec<i64>>;

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
    /// `Removing user <name> from proxy (<routespec>)`; the route names the server.
    ProxyRemoved,
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
    /// No stop line; the hub's observations say when it no longer ran (`super::grounding`).
    ObservedStop,
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
            EndReason::ObservedStop => "observed_stop",
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
    /// A bound was moved to agree with the hub's observations (`super::grounding`).
    pub hub_corrected: bool,
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
        if self.hub_corrected {
            f.push("hub_corrected");
        }
        f.join(",")
    }

    /// Seconds between the last sign of use (activity, or the start) and `until`.
    pub fn idle_tail_us(&self, until: i64) -> i64 {
        let last = self.last_activity.unwrap_or(self.start).max(self.start);
        (until - last).max(0)
    }
}

/// Activity times per hub and user, µs, each list sorted (looked up by `&str`, no allocation).
pub type ActivityIndex = FxHashMap<String, FxHashMap<String, Vec<i64>>>;

/// Rebuild sessions from lifecycle records in log order. `activity` holds every activity time
/// of every user (merged with any [`Life::Activity`] record in `events`); `first_ts` gives each
/// hub's first record in the data (where sessions already running begin).
///
/// An activity record in `events` matters only for a user with no lifecycle record before it
/// (a server already running when the data begins, unless the activity is its own spawn's
/// first heartbeat); [`load`](super::load) passes each user's first activity so.
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
    let first_ts: FxHashMap<u32, i64> = first_ts
        .iter()
        .filter_map(|(k, v)| Some((names.get(k)?, *v)))
        .collect();
    rules::rebuild(events, names, activity, &first_ts)
}

#[path = "sessions_rules.rs"]
mod rules;

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
