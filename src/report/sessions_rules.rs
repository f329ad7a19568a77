//! The session rules of [`super`] as one pass over the lifecycle records (see the table in
//! `sessions.rs` and `docs/SESSIONS.md`, which cites the upstream code behind each rule).

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Activity, EndReason, Ev, Life, Names, Session};
use crate::report::podname;

/// How long after a stop a DELETE request still belongs to it (the request line is written
/// when the request completes, after the stop line).
const DELETE_AFTER_STOP_US: i64 = 60_000_000;
/// How long before its pod's creation a profile override line can be.
const PROFILE_TO_POD_US: i64 = 60_000_000;
/// How long after a pod's first `Attempting to create pod` line a line for the same pod can be
/// a retry of the same spawn: KubeSpawner retries the create request (timeouts, and after
/// deleting a conflicting pod on 409) within `k8s_api_request_retry_timeout`, 30 s by default
/// (`spawner.py` `_start` → `exponential_backoff(_make_create_pod_request)`, 6.x – 7.1).
const POD_RETRY_US: i64 = 60_000_000;
/// How long before a stop a culler's line still explains it.
const CULL_BEFORE_STOP_US: i64 = 15 * 60_000_000;
/// How long after an exit line its proxy-route removal can be logged. JupyterHub logs the
/// removal as the next step of the same coroutine (`handlers/base.py` `user_stopped`, and
/// `app.py` `init_spawners.user_stopped`: the warning, then `proxy.delete_user`, whose first
/// statement is the log line), so milliseconds apart; a stalled event loop gets some seconds.
const EXIT_TO_ROUTE_US: i64 = 5_000_000;
/// How long before a stop line its proxy-route removal can be: the stop line is logged when
/// `user.stop` returns (`handlers/base.py` `stop_single_user.stop`), after the removal; a
/// KubeSpawner pod deletion can take up to its `delete_grace_period` and the API timeout.
const ROUTE_TO_STOP_US: i64 = 120_000_000;
/// Clock slack when comparing an activity time with a spawn's start (both are log stamps).
const SLACK_US: i64 = 1_000_000;
/// `still running` lines of one hub start-up come within this of each other
/// (`app.py` `init_spawners` checks every spawner at once with `asyncio.gather`).
const STARTUP_GAP_US: i64 = 5 * 60_000_000;

/// (hub, user, server) ids.
type Key = (u32, u32, u32);

/// A server known to run (activity, or a `still running` line) whose name no record gave yet.
#[derive(Debug, Clone)]
struct Unnamed {
    /// When it was seen running.
    at: i64,
    /// Seen through activity (which a spawning pod also sends), not the hub's `still running`.
    from_activity: bool,
    /// The first spawn of the user after it was seen: (server, when that spawn began).
    next_spawn: Option<(u32, i64)>,
}

/// `still running` lines of the current start-up of a hub.
#[derive(Debug, Default)]
struct Startup {
    epoch: u64,
    last_line: Option<i64>,
}

struct State<'a> {
    names: &'a Names,
    first_ts: &'a FxHashMap<u32, i64>,
    open: FxHashMap<Key, Session>,
    /// The servers in `open`, per (hub, user) (kept by `open_insert` and `open_remove`, the
    /// only writers of `open`).
    open_servers: FxHashMap<(u32, u32), Vec<u32>>,
    done: Vec<(Key, Session)>,
    /// Closed sessions awaiting their DELETE line: key -> index in `done`.
    just_stopped: FxHashMap<Key, usize>,
    cull_at: FxHashMap<Key, i64>,
    /// Per hub: profiles logged (with their time) and not yet paired with a pod.
    pending_profiles: FxHashMap<u32, VecDeque<(i64, String)>>,
    /// Per hub: pod name (namespace stripped) -> profile.
    pod_profiles: FxHashMap<u32, FxHashMap<String, String>>,
    /// (hub, pod name) -> the first create line of its current spawn.
    pod_first_create: FxHashMap<(u32, String), i64>,
    /// (hub, user) seen in any lifecycle record: activity from others is a server of theirs.
    known: FxHashSet<(u32, u32)>,
    last_shutdown: FxHashMap<u32, i64>,
    activity: Activity,
    /// Per (hub, user): servers seen running whose name is not known yet, oldest first.
    unnamed: FxHashMap<(u32, u32), Vec<Unnamed>>,
    /// Latest `still running` confirmation of an open session.
    alive: FxHashMap<Key, i64>,
    startup: FxHashMap<u32, Startup>,
    /// Per (hub, user): `still running` lines counted in a start-up (epoch, count).
    still_counts: FxHashMap<(u32, u32), (u64, usize)>,
    /// Server names of exit and stop lines that have none, from the records around them.
    named_ends: FxHashMap<usize, u32>,
}

/// The pass over `events` (log order): every session, sorted by start.
pub(super) fn rebuild(
    events: &[Ev],
    names: &Names,
    activity: Activity,
    first_ts: &FxHashMap<u32, i64>,
) -> Vec<Session> {
    let mut st = State {
        names,
        first_ts,
        open: FxHashMap::default(),
        open_servers: FxHashMap::default(),
        done: Vec::new(),
        just_stopped: FxHashMap::default(),
        cull_at: FxHashMap::default(),
        pending_profiles: FxHashMap::default(),
        pod_profiles: FxHashMap::default(),
        pod_first_create: FxHashMap::default(),
        known: Default::default(),
        last_shutdown: FxHashMap::default(),
        activity,
        unnamed: FxHashMap::default(),
        alive: FxHashMap::default(),
        startup: FxHashMap::default(),
        still_counts: FxHashMap::default(),
        named_ends: name_unnamed_ends(events),
    };
    for (i, ev) in events.iter().enumerate() {
        st.apply(i, ev);
    }
    st.settle_unnamed();
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

/// The server each exit or stop line without a server name ended (index -> server id): the
/// same user's proxy-route removal logged just after an exit line or just before a stop line
/// (JupyterHub removes the route first on a stop, and right after the warning on an exit), else
/// for a stop the server of the DELETE request that follows it. Each removal names one end.
fn name_unnamed_ends(events: &[Ev]) -> FxHashMap<usize, u32> {
    let mut out = FxHashMap::default();
    let mut used = FxHashSet::<usize>::default();
    let same = |a: &Ev, b: &Ev| a.hub == b.hub && a.user == b.user;
    for (i, ev) in events.iter().enumerate() {
        if ev.server.is_some() || ev.user.is_none() {
            continue;
        }
        let removal = |j: usize| {
            let e = &events[j];
            (e.life == Life::ProxyRemoved
                && same(e, ev)
                && e.server.is_some()
                && !used.contains(&j))
            .then_some(j)
        };
        let found = match ev.life {
            Life::Exited => (i + 1..events.len())
                .take_while(|&j| events[j].ts - ev.ts <= EXIT_TO_ROUTE_US)
                .find_map(removal),
            Life::StopSucceeded => (0..i)
                .rev()
                .take_while(|&j| ev.ts - events[j].ts <= ROUTE_TO_STOP_US)
                .find_map(removal)
                .or_else(|| {
                    (i + 1..events.len())
                        .take_while(|&j| events[j].ts - ev.ts <= DELETE_AFTER_STOP_US)
                        .find(|&j| {
                            matches!(events[j].life, Life::Delete { .. })
                                && same(&events[j], ev)
                                && events[j].server.is_some()
                        })
                }),
            _ => None,
        };
        if let Some(j) = found {
            if events[j].life == Life::ProxyRemoved {
                used.insert(j);
            }
            if let Some(s) = events[j].server {
                out.insert(i, s);
            }
        }
    }
    out
}

impl State<'_> {
    fn data_start(&self, hub: u32, ts: i64) -> i64 {
        self.first_ts.get(&hub).copied().unwrap_or(ts).min(ts)
    }

    fn apply(&mut self, i: usize, ev: &Ev) {
        let hub = ev.hub;
        match &ev.life {
            Life::ProfileOverride(p) => {
                let q = self.pending_profiles.entry(hub).or_default();
                q.push_back((ev.ts, p.clone()));
                return;
            }
            Life::PodCreate(pod) => return self.pod_created(hub, ev.ts, pod),
            Life::HubShutdown => {
                self.last_shutdown.insert(hub, ev.ts);
                return;
            }
            // Read by `name_unnamed_ends` only.
            Life::ProxyRemoved => return,
            _ => {}
        }
        let Some(user) = ev.user else { return };
        if ev.life == Life::Activity {
            return self.first_activity(hub, user, ev.ts);
        }
        self.known.insert((hub, user));
        let named = ev.server.filter(|&s| s != self.default_server());
        if ev.life == Life::StillRunning && named.is_none() {
            return self.still_running(hub, user, ev.ts);
        }
        let server = match (&ev.life, ev.server) {
            (Life::Exited | Life::StopSucceeded, None) => match self.named_ends.get(&i) {
                Some(&s) => s,
                None => self.only_open_server(hub, user),
            },
            (_, Some(s)) => s,
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
                let i = self.close(key, ev.ts, reason);
                self.just_stopped.insert(key, i);
            }
            Life::Exited => {
                self.close(key, ev.ts, EndReason::Failed);
            }
            Life::Lost => {
                let at = self
                    .last_shutdown
                    .get(&hub)
                    .copied()
                    .filter(|&s| s <= ev.ts)
                    .unwrap_or(ev.ts);
                let i = self.close(key, at, EndReason::HubRestart);
                self.done[i].1.end_estimated = true;
            }
            Life::StillRunning if !self.open.contains_key(&key) => {
                let start = self.data_start(hub, ev.ts);
                let s = self.before_data(key, start);
                self.alive.insert(key, ev.ts);
                self.open_insert(key, s);
            }
            Life::StillRunning => {
                self.alive.insert(key, ev.ts);
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

    /// A user's first activity. From a user no lifecycle record named yet, with no server
    /// open, it shows a server running whose start the data does not show, or the first
    /// heartbeat of a pod being spawned (told apart at the spawn, see `started`).
    fn first_activity(&mut self, hub: u32, user: u32, ts: i64) {
        // `known` first: it is a lookup, the rest a scan of the user's open servers.
        if self.known.contains(&(hub, user)) || self.any_open(hub, user) {
            return;
        }
        self.known.insert((hub, user));
        self.unnamed.entry((hub, user)).or_default().push(Unnamed {
            at: ts,
            from_activity: true,
            next_spawn: None,
        });
    }

    fn any_open(&self, hub: u32, user: u32) -> bool {
        self.open_servers
            .get(&(hub, user))
            .is_some_and(|v| !v.is_empty())
    }

    /// `<user> still running`: JupyterHub logs the user's name only (`app.py`
    /// `init_spawners.check_spawner`), once per running server. The first lines of a start-up
    /// confirm the user's open servers; a line beyond them is a server running since before the
    /// data, whose name a later record gives.
    fn still_running(&mut self, hub: u32, user: u32, ts: i64) {
        let shutdown = self.last_shutdown.get(&hub).copied();
        let su = self.startup.entry(hub).or_default();
        let new_startup = su
            .last_line
            .is_none_or(|last| ts - last > STARTUP_GAP_US || shutdown.is_some_and(|s| s > last));
        if new_startup {
            su.epoch += 1;
        }
        su.last_line = Some(ts);
        let epoch = su.epoch;
        let open: Vec<u32> = self
            .open_servers
            .get(&(hub, user))
            .cloned()
            .unwrap_or_default();
        let c = self.still_counts.entry((hub, user)).or_insert((epoch, 0));
        if c.0 != epoch {
            *c = (epoch, 0);
        }
        c.1 += 1;
        let n = c.1;
        if n <= open.len() {
            for s in open {
                self.alive.insert((hub, user, s), ts);
            }
            return;
        }
        // Servers already seen running unnamed (an earlier start-up) are counted next.
        let unnamed = self.unnamed.entry((hub, user)).or_default();
        match unnamed.get_mut(n - open.len() - 1) {
            Some(u) => {
                u.at = u.at.max(ts);
                u.from_activity = false;
            }
            None => unnamed.push(Unnamed {
                at: ts,
                from_activity: false,
                next_spawn: None,
            }),
        }
    }

    /// The user's last activity in `[from, to]`.
    fn last_activity(&self, hub: u32, user: u32, from: i64, to: i64) -> Option<i64> {
        let v = self.activity.get(&(hub, user))?;
        let i = v.partition_point(|&t| t <= to);
        (i > 0 && v[i - 1] >= from).then(|| v[i - 1])
    }

    /// The last sign of life of `key`'s run from `from` before `before`: activity, or a
    /// `still running` confirmation; `from` when there is none.
    fn last_sign(&self, key: Key, from: i64, before: i64, alive: Option<i64>) -> i64 {
        let act = self.last_activity(key.0, key.1, from, before - 1);
        let alive = alive.filter(|&a| a < before);
        act.into_iter().chain(alive).max().unwrap_or(from).max(from)
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

    /// A session ready at `start`, with the profile of its pod.
    fn new_session(&mut self, key: Key, start: i64, spawn: Option<f64>) -> Session {
        let profile = self.take_profile(key);
        Session {
            profile,
            spawn_seconds: spawn,
            started_before_data: false,
            ..self.before_data(key, start)
        }
    }

    /// A session already running when the data began (flagged so). Its pod was created
    /// before the data, so no profile line in the data is its own: any pod left unpaired
    /// belongs to another (failed or later) spawn.
    fn before_data(&self, key: Key, start: i64) -> Session {
        Session {
            hub: self.name(key.0).to_string(),
            user: self.name(key.1).to_string(),
            server: self.name(key.2).to_string(),
            profile: None,
            start,
            end: None,
            end_reason: EndReason::Running,
            spawn_seconds: None,
            last_activity: None,
            started_before_data: true,
            missing_stop: false,
            end_estimated: false,
            hub_corrected: false,
        }
    }

    /// `Attempting to create pod <pod>`: pairs the oldest recent profile line with the pod.
    fn pod_created(&mut self, hub: u32, ts: i64, pod: &str) {
        let name = pod.rsplit('/').next().unwrap_or(pod).to_string();
        // A retry of the create request keeps the profile its first line took (and takes no
        // other spawn's): a line for the same pod soon after, with no profile line logged
        // since (a new spawn of the server, after a quick failure, logs its own first).
        let first = self.pod_first_create.get(&(hub, name.clone())).copied();
        let newer_profile =
            |q: &VecDeque<(i64, String)>, since: i64| q.iter().any(|(t, _)| *t > since);
        if let Some(first) = first
            && ts - first <= POD_RETRY_US
            && !self
                .pending_profiles
                .get(&hub)
                .is_some_and(|q| newer_profile(q, first))
        {
            return;
        }
        self.pod_first_create.insert((hub, name.clone()), ts);
        // Overrides are logged just before their pod is created; one older than that belongs
        // to a spawn that failed before creating a pod.
        let q = self.pending_profiles.entry(hub).or_default();
        while q.front().is_some_and(|(t, _)| ts - t > PROFILE_TO_POD_US) {
            q.pop_front();
        }
        let profile = q.pop_front().map(|(_, p)| p);
        // Each new pod of that name replaces what an earlier (maybe failed) one left.
        let pods = self.pod_profiles.entry(hub).or_default();
        match profile {
            Some(profile) => pods.insert(name, profile),
            None => pods.remove(&name),
        };
    }

    /// The profile logged for this server's pod: its KubeSpawner pod name under either slug
    /// scheme ([`podname::pod_names`]).
    fn take_profile(&mut self, key: Key) -> Option<String> {
        if self.pod_profiles.get(&key.0).is_none_or(|p| p.is_empty()) {
            return None;
        }
        let names = podname::pod_names(self.name(key.1), self.name(key.2));
        let pods = self.pod_profiles.get_mut(&key.0)?;
        names.iter().find_map(|n| pods.remove(n))
    }

    fn started(&mut self, key: Key, ts: i64, spawn: Option<f64>) {
        // JupyterHub's "took N seconds to start" counts from the spawn's start
        // (`handlers/base.py` `spawn_single_user`): the pod exists only after it.
        let spawn_us = spawn.map_or(0, |x| (x.max(0.0) * 1e6) as i64);
        let began = ts - spawn_us;
        let (hub, user) = (key.0, key.1);
        if let Some(v) = self.unnamed.get_mut(&(hub, user)) {
            // Activity from after this spawn began is its pod's first heartbeat.
            v.retain(|u| !(u.from_activity && u.at >= began - SLACK_US));
            for u in v.iter_mut() {
                u.next_spawn.get_or_insert((key.2, began));
            }
        }
        if let Some(mut old) = self.open_remove(key) {
            // The stop line is missing (a gap in the log): the old run ends at its own last
            // sign of life before this spawn began, not at this pod's first heartbeat.
            let alive = self.alive.remove(&key);
            old.end = Some(self.last_sign(key, old.start, began, alive));
            old.end_reason = EndReason::Replaced;
            old.missing_stop = true;
            self.done.push((key, old));
        }
        self.alive.remove(&key);
        self.cull_at.remove(&key);
        self.just_stopped.remove(&key);
        let s = self.new_session(key, ts, spawn);
        self.open_insert(key, s);
    }

    /// Ends the open session of `key` (or records one that ran from before the data, which
    /// names one of the user's unnamed running servers) and returns its index in `done`.
    fn close(&mut self, key: Key, at: i64, reason: EndReason) -> usize {
        self.alive.remove(&key);
        let mut s = match self.open_remove(key) {
            Some(s) => s,
            None => {
                if let Some(v) = self.unnamed.get_mut(&(key.0, key.1))
                    && !v.is_empty()
                {
                    v.remove(0);
                }
                let start = self.data_start(key.0, at);
                self.before_data(key, start)
            }
        };
        s.end = Some(at.max(s.start));
        s.end_reason = reason;
        self.done.push((key, s));
        self.done.len() - 1
    }

    /// Servers seen running that no record named by the end of the data: one the user
    /// spawned a server after is taken to be that server, its stop line missing (it ends at
    /// its last sign of life before that spawn); any other runs on as the default server.
    fn settle_unnamed(&mut self) {
        let mut all: Vec<((u32, u32), Vec<Unnamed>)> = self.unnamed.drain().collect();
        all.sort_by_key(|(k, _)| *k);
        for ((hub, user), list) in all {
            for u in list {
                let start = self.data_start(hub, u.at);
                match u.next_spawn {
                    Some((server, began)) => {
                        let key = (hub, user, server);
                        let mut s = self.before_data(key, start);
                        let last = self.last_sign(key, start, began, Some(u.at));
                        s.end = Some(last);
                        s.end_reason = EndReason::Replaced;
                        s.missing_stop = true;
                        self.done.push((key, s));
                    }
                    None => {
                        let key = (hub, user, self.default_server());
                        let s = self.before_data(key, start);
                        if self.open.contains_key(&key) {
                            // The default server is open too (a `still running` line beyond
                            // the user's open servers): this is a named server no record
                            // named. It is billed all the same, under the default name.
                            self.done.push((key, s));
                        } else {
                            self.open_insert(key, s);
                        }
                    }
                }
            }
        }
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
