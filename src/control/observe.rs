//! Hub observations: what the hub's own API says of each running server, kept in the lake table
//! `observations` (`DIR/observations/hub=<hub>/dt=YYYY-MM-DD/part-….parquet`) and in the shared
//! [`ActivityView`] behind the active-user gauges.
//!
//! Observations are made by the loops that already read the hub: the culler's full listings
//! (`GET /users?state=active`, paginated, every `reconcile_every`) and its single-user reads
//! (deadlines, spawns it was told of); without a culler, by [`observe_loop`] every
//! `hub.observe_every`. No request is made for observing alone when a culler runs.
//!
//! Rows (`kind`):
//! - `server`: a server's state as the hub reported it (`started`, `last_activity`, the user's
//!   `last_activity`, `pending`, `ready`, `profile`), written when any of it changed since the
//!   server was last observed (so an idle server costs one row, not one per listing);
//! - `gone`: a server observed before is no longer among its user's active servers (stopped);
//!   `ts` is when that was first seen, so the stop lies between the previous observation and it
//!   (`via = 'stop'`: the hub accepted the culler's stop at `ts`, answering "stopped" or
//!   "stopping"; a server that survives its stop is listed again as `server`);
//! - `listing`: a complete listing finished at `ts`, `servers` running: the lake's coverage,
//!   so a reader knows which hours the hub was watched. A recorder's first listing has
//!   `via = 'first'` and a `server` row for every server running then (so a server seen before
//!   and missing from it ended while no recorder watched).
//!
//! # Guarantees
//! - Rows are buffered and published at most every `FLUSH_EVERY` and at shutdown ([`Observations::flush`]),
//!   each part whole or not at all (see `decisions.rs`).
//! - Memory is bounded by the servers running now.
//! - No token is ever a column; `user`/`server_name` are data, never metric labels.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Utc};

use crate::hub::activity::{ActivityView, user_activity};
use crate::hub::{HubClient, Pending, Server, User, UserState};
use crate::lake::tables::SideRoot;
use crate::lake::tables::observations::{OBSERVATIONS, schema};

const FLUSH_EVERY: Duration = Duration::from_secs(60);
const FLUSH_ROWS: usize = 50_000;

/// What was last observed of one server.
#[derive(Debug, Clone, PartialEq)]
struct ServerState {
    started: Option<DateTime<Utc>>,
    last_activity: Option<DateTime<Utc>>,
    user_last_activity: Option<DateTime<Utc>>,
    pending: Option<String>,
    ready: bool,
    profile: Option<String>,
}

impl ServerState {
    fn of(u: &User, s: &Server) -> Self {
        ServerState {
            started: s.started,
            last_activity: s.last_activity,
            user_last_activity: user_activity(u),
            pending: s.pending.as_ref().map(|p| match p {
                Pending::Spawn => "spawn".to_string(),
                Pending::Stop => "stop".to_string(),
                Pending::Other(o) => o.clone(),
            }),
            ready: s.ready,
            profile: s.profile().map(str::to_string),
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    ts: DateTime<Utc>,
    kind: &'static str,
    via: &'static str,
    user: Option<String>,
    server: Option<String>,
    state: Option<ServerState>,
    servers: Option<i64>,
}

/// The observation recorder (see the module docs).
pub struct Observations {
    root: Option<SideRoot>,
    hub: String,
    seq: u64,
    last: HashMap<(String, String), ServerState>,
    /// Whether a complete listing was recorded (the first is marked `via = 'first'`).
    listed: bool,
    rows: Vec<Row>,
    flushed_at: Instant,
    view: Arc<ActivityView>,
    stats: Arc<crate::control::metrics::ControlStats>,
}

impl Observations {
    /// `lake`: `None` keeps observations in memory only (`hubpulse cull --once`, tests).
    pub fn new(
        lake: Option<&crate::lake::LakeLocation>,
        hub: &str,
        view: Arc<ActivityView>,
        stats: Arc<crate::control::metrics::ControlStats>,
    ) -> Self {
        Observations {
            root: lake.map(|l| SideRoot::new(l, OBSERVATIONS, hub)),
            hub: hub.to_string(),
            seq: 0,
            last: HashMap::new(),
            listed: false,
            rows: Vec::new(),
            flushed_at: Instant::now(),
            view,
            stats,
        }
    }

    fn push(&mut self, row: Row) {
        self.stats.observation(row.kind);
        self.rows.push(row);
    }

    fn server_rows(&mut self, at: DateTime<Utc>, via: &'static str, u: &User) {
        for s in u.active_servers() {
            let st = ServerState::of(u, s);
            let key = (u.name.clone(), s.name.clone());
            if self.last.get(&key) != Some(&st) {
                self.push(Row {
                    ts: at,
                    kind: "server",
                    via,
                    user: Some(u.name.clone()),
                    server: Some(s.name.clone()),
                    state: Some(st.clone()),
                    servers: None,
                });
                self.last.insert(key, st);
            }
        }
    }

    fn gone(&mut self, at: DateTime<Utc>, via: &'static str, key: (String, String)) {
        if self.last.remove(&key).is_some() {
            self.push(Row {
                ts: at,
                kind: "gone",
                via,
                user: Some(key.0),
                server: Some(key.1),
                state: None,
                servers: None,
            });
        }
    }

    /// A complete listing of the users with active servers, finished at `at`.
    ///
    /// The recorder's first listing (`via = 'first'`) writes a row for every running server,
    /// whatever was read before it: a reader then knows that a server it saw before and that
    /// is not in it ended while no recorder watched (`report::grounding`).
    pub fn listing(&mut self, at: DateTime<Utc>, users: &[User]) {
        let first = !self.listed;
        if first {
            // Servers read before the first listing and gone now are closed by the reader.
            self.last.clear();
            self.listed = true;
        }
        self.view.observe(at, users);
        for u in users {
            self.server_rows(at, "list", u);
        }
        let live: std::collections::HashSet<(&str, &str)> = users
            .iter()
            .flat_map(|u| {
                u.active_servers()
                    .map(|s| (u.name.as_str(), s.name.as_str()))
            })
            .collect();
        let gone: Vec<(String, String)> = self
            .last
            .keys()
            .filter(|(u, s)| !live.contains(&(u.as_str(), s.as_str())))
            .cloned()
            .collect();
        for k in gone {
            self.gone(at, "list", k);
        }
        let running = live.len() as i64;
        self.push(Row {
            ts: at,
            kind: "listing",
            via: if first { "first" } else { "list" },
            user: None,
            server: None,
            state: None,
            servers: Some(running),
        });
    }

    /// One user read at `at` (`None`: the hub has no such user).
    pub fn read(&mut self, at: DateTime<Utc>, name: &str, user: Option<&User>) {
        if let Some(u) = user {
            self.view.observe(at, std::slice::from_ref(u));
            self.server_rows(at, "read", u);
        }
        let gone: Vec<(String, String)> = self
            .last
            .keys()
            .filter(|(u, s)| u == name && user.and_then(|x| x.server(s)).is_none())
            .cloned()
            .collect();
        for k in gone {
            self.gone(at, "read", k);
        }
    }

    /// The hub answered a stop of this server with "stopped", "stopping" or "no such server".
    pub fn stopped(&mut self, at: DateTime<Utc>, user: &str, server: &str) {
        self.gone(at, "stop", (user.to_string(), server.to_string()));
    }

    /// Publishes buffered rows if `FLUSH_EVERY` passed (or the buffer is large, or `force`).
    ///
    /// # Errors
    /// I/O or store errors, with the path; the rows are kept for the next try.
    pub fn flush(&mut self, force: bool) -> Result<(), String> {
        if self.rows.is_empty()
            || !(force || self.flushed_at.elapsed() >= FLUSH_EVERY || self.rows.len() >= FLUSH_ROWS)
        {
            return Ok(());
        }
        let Some(root) = &self.root else {
            self.rows.clear();
            return Ok(());
        };
        let mut by_day: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for r in &self.rows {
            by_day
                .entry(r.ts.format("%Y-%m-%d").to_string())
                .or_default()
                .push(r);
        }
        for (dt, rows) in by_day {
            let batch = batch(&self.hub, &rows).map_err(|e| format!("observations batch: {e}"))?;
            root.publish(&dt, self.seq, &batch)
                .map_err(|e| e.to_string())?;
            self.seq += 1;
        }
        self.rows.clear();
        self.flushed_at = Instant::now();
        Ok(())
    }
}

fn micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

fn batch(hub: &str, rows: &[&Row]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    let tsb = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut ts, mut started, mut last, mut ulast) = (tsb(), tsb(), tsb(), tsb());
    let sb = || StringBuilder::with_capacity(n, n * 8);
    let (mut hubc, mut kind, mut via, mut user, mut server) = (sb(), sb(), sb(), sb(), sb());
    let (mut pending, mut profile) = (sb(), sb());
    let mut ready = BooleanBuilder::with_capacity(n);
    let mut servers = Int64Builder::with_capacity(n);
    for r in rows {
        ts.append_value(r.ts.timestamp_micros());
        hubc.append_value(hub);
        kind.append_value(r.kind);
        via.append_value(r.via);
        user.append_option(r.user.as_deref());
        server.append_option(r.server.as_deref());
        let st = r.state.as_ref();
        started.append_option(st.and_then(|s| micros(s.started)));
        last.append_option(st.and_then(|s| micros(s.last_activity)));
        ulast.append_option(st.and_then(|s| micros(s.user_last_activity)));
        pending.append_option(st.and_then(|s| s.pending.as_deref()));
        ready.append_option(st.map(|s| s.ready));
        profile.append_option(st.and_then(|s| s.profile.as_deref()));
        servers.append_option(r.servers);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(hubc.finish()),
        Arc::new(kind.finish()),
        Arc::new(via.finish()),
        Arc::new(user.finish()),
        Arc::new(server.finish()),
        Arc::new(started.finish()),
        Arc::new(last.finish()),
        Arc::new(ulast.finish()),
        Arc::new(pending.finish()),
        Arc::new(ready.finish()),
        Arc::new(profile.finish()),
        Arc::new(servers.finish()),
    ];
    RecordBatch::try_new(schema(), cols)
}

/// Observes the hub without a culler: a full listing every `every` (and at start), rows
/// flushed as they come, until `stop`.
pub async fn observe_loop(
    client: HubClient,
    every: Duration,
    mut obs: Observations,
    stats: Arc<crate::control::metrics::ControlStats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        match client.users(Some(UserState::Active)).await {
            Ok(users) => {
                obs.listing(Utc::now(), &users);
                next = tokio::time::Instant::now() + every;
            }
            Err(e) => {
                tracing::warn!(error = %e, "observations: cannot list the hub's users; retrying");
                stats.api_error(e.metric_label());
                next = tokio::time::Instant::now() + every.min(Duration::from_secs(10));
            }
        }
        if let Err(e) = obs.flush(false) {
            tracing::error!(error = %e, "observations: cannot write to the lake");
        }
    }
    if let Err(e) = obs.flush(true) {
        tracing::error!(error = %e, "observations: cannot write to the lake at shutdown");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn user(name: &str, servers: &[(&str, i64)]) -> User {
        let servers = servers
            .iter()
            .map(|(n, last)| {
                let s = Server {
                    name: n.to_string(),
                    ready: true,
                    pending: None,
                    stopped: false,
                    started: Some(t(0)),
                    last_activity: Some(t(*last)),
                    url: None,
                    user_options: None,
                };
                (n.to_string(), s)
            })
            .collect();
        User {
            name: name.into(),
            admin: false,
            groups: None,
            roles: None,
            last_activity: servers_max(&servers),
            created: None,
            pending: None,
            servers: Some(servers),
        }
    }

    fn servers_max(s: &BTreeMap<String, Server>) -> Option<DateTime<Utc>> {
        s.values().filter_map(|s| s.last_activity).max()
    }

    fn kinds(o: &Observations) -> Vec<(String, Option<String>, Option<String>)> {
        o.rows
            .iter()
            .map(|r| (r.kind.to_string(), r.user.clone(), r.server.clone()))
            .collect()
    }

    #[test]
    fn a_row_per_change_a_gone_row_per_stop_and_a_listing_row_per_listing() {
        let stats = Arc::new(super::super::metrics::ControlStats::default());
        let mut o = Observations::new(None, "h", Arc::new(ActivityView::default()), stats.clone());
        o.listing(t(10), &[user("a", &[("", 5), ("nb", 5)])]);
        o.listing(t(20), &[user("a", &[("", 5), ("nb", 15)])]);
        o.read(t(25), "a", Some(&user("a", &[("nb", 15)])));
        let s = |k: &str, sv: &str| (k.to_string(), Some("a".to_string()), Some(sv.to_string()));
        let l = ("listing".to_string(), None, None);
        assert_eq!(
            kinds(&o),
            vec![
                s("server", ""),
                s("server", "nb"),
                l.clone(),
                // The user's time moved with `nb`'s: both servers' rows carry it.
                s("server", ""),
                s("server", "nb"),
                l,
                s("gone", ""),
            ]
        );
        // Unchanged: nothing more.
        o.listing(t(30), &[user("a", &[("nb", 15)])]);
        assert_eq!(o.rows.len(), 8);
        assert_eq!(stats.observations.lock().unwrap().get("gone"), Some(&1));
        let b = batch("h", &o.rows.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(b.num_rows(), 8);
        assert_eq!(b.schema(), schema());
    }
}
