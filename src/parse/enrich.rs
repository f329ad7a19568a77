//! Enrichment: server names that some hub messages leave out, recovered from the records seen
//! just before them (proxy route removals, spawn requests, OAuth client ids). A [`Parser`]
//! applies it inline; pieces parsed in parallel defer it ([`EnrichOp`]) and apply it in stream
//! order with [`Enrichment`].
//!
//! [`Parser`]: super::Parser

use std::borrow::Cow;
use std::collections::HashMap;

use super::fields::has_control;
use super::prefix;
use super::record::Record;
use super::route;

/// Recovers server names that some hub messages leave out, from records seen just before.
#[derive(Debug, Default)]
pub(super) struct Enricher {
    /// user → routes removed from the proxy whose stop line has not come yet, (time µs, server),
    /// oldest first (stop lines omit the server; two stops of one user can interleave).
    removed: HashMap<String, Vec<(Option<i64>, String)>>,
    /// user → server of the last `Initiating spawn for user:server` (DEBUG logs only).
    spawning: HashMap<String, String>,
    /// The latest OAuth client ids, `jupyterhub-user-<quote(user)>[-<quote(server)>]`: the
    /// first INFO line of every spawn, and the only place a failed spawn names its server.
    clients: std::collections::VecDeque<String>,
}

/// What enrichment needs of a record, owned, for [`Enrichment::apply`].
#[derive(Debug, Clone)]
pub struct EnrichOp {
    kind: &'static str,
    ts: Option<i64>,
    duration_ms: Option<f64>,
    user: Option<String>,
    server: Option<String>,
    client_id: Option<String>,
}

impl EnrichOp {
    pub(super) fn of(rec: &Record<'_>) -> Self {
        EnrichOp {
            kind: rec.kind,
            ts: rec.ts,
            duration_ms: rec.duration_ms,
            user: rec.user.as_deref().map(str::to_string),
            server: rec.server_name.as_deref().map(str::to_string),
            client_id: rec
                .attrs
                .iter()
                .find(|(k, _)| *k == "client_id")
                .map(|(_, v)| v.to_string()),
        }
    }
}

/// Enrichment applied apart from parsing, in stream order, to the records of pieces parsed in
/// parallel: the same rules, fed the same records, as a [`Parser`](super::Parser) applies inline.
#[derive(Debug, Default)]
pub struct Enrichment(Enricher);

impl Enrichment {
    /// The server name enrichment gives a record that had none, if any.
    pub fn apply(&mut self, op: &EnrichOp) -> Option<String> {
        let mut rec = Record::new(op.kind, prefix::Family::Hub, "");
        (rec.ts, rec.duration_ms) = (op.ts, op.duration_ms);
        rec.user = op.user.as_deref().map(Cow::Borrowed);
        rec.server_name = op.server.as_deref().map(Cow::Borrowed);
        if let Some(id) = &op.client_id {
            rec.attrs.push(("client_id", id));
        }
        self.0.apply(&mut rec);
        match (&op.server, rec.server_name) {
            (None, Some(s)) if !has_control(&s) => Some(s.into_owned()),
            _ => None,
        }
    }
}

const ENRICH_CAP: usize = 100_000;
/// How long before its stop line a route removal can be (as `report::sessions_rules`).
const REMOVAL_TO_STOP_US: i64 = 120_000_000;
const CLIENTS_CAP: usize = 256;

impl Enricher {
    /// Whether [`Enricher::apply`] may read or change anything for this record.
    pub(super) fn wants(rec: &Record<'_>) -> bool {
        matches!(
            rec.kind,
            "oauth_client"
                | "proxy_route_removed"
                | "stop_succeeded"
                | "spawn_requested"
                | "spawn_failed"
                | "spawn_timeout"
                | "spawn_cleanup_failed"
                | "spawn_succeeded"
        )
    }

    pub(super) fn apply(&mut self, rec: &mut Record<'_>) {
        if rec.kind == "oauth_client" {
            if let Some((_, id)) = rec.attrs.iter().find(|(k, _)| *k == "client_id") {
                if self.clients.len() == CLIENTS_CAP {
                    self.clients.pop_front();
                }
                self.clients.push_back(id.to_string());
            }
            return;
        }
        let Some(user) = rec.user.as_deref() else {
            return;
        };
        if self.removed.len() > ENRICH_CAP || self.spawning.len() > ENRICH_CAP {
            self.removed.clear();
            self.spawning.clear();
        }
        match rec.kind {
            "proxy_route_removed" => {
                if let Some(s) = rec.server_name.as_deref() {
                    let list = self.removed.entry(user.to_string()).or_default();
                    // Removals a stop can still follow (sessions_rules: 120 s), at most 8.
                    if let Some(t) = rec.ts {
                        list.retain(|(r, _)| r.is_some_and(|r| t - r <= REMOVAL_TO_STOP_US));
                    }
                    if list.len() == 8 {
                        list.remove(0);
                    }
                    list.push((rec.ts, s.to_string()));
                }
            }
            // Only the stop line: it follows its route's removal. An exit line comes *before*
            // its removal, so an entry found then would be a stale one (an earlier exit's).
            // `User x server took N seconds to stop` counts N from just before the removal
            // (handlers/base.py `stop_single_user.stop`: `tic`, then `proxy.delete_user`, whose
            // first statement logs it), so when two stops of the user interleave (the idle
            // culler stops a user's servers at once) the removal nearest `ts - N` is this one's.
            "stop_succeeded" if rec.server_name.is_none() => {
                if let Some(list) = self.removed.get_mut(user) {
                    let began = rec
                        .ts
                        .zip(rec.duration_ms)
                        .map(|(t, d)| t - (d * 1000.0) as i64);
                    let pick = match began {
                        Some(b) => list
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, (r, _))| r.map_or(i64::MAX, |r| (r - b).abs()))
                            .map(|(i, _)| i),
                        None => list.len().checked_sub(1),
                    };
                    if let Some(i) = pick {
                        rec.server_name = Some(Cow::Owned(list.remove(i).1));
                    }
                    if list.is_empty() {
                        self.removed.remove(user);
                    }
                }
            }
            "spawn_requested" => {
                if let Some(s) = rec.server_name.as_deref() {
                    self.spawning.insert(user.to_string(), s.to_string());
                }
            }
            "spawn_failed" | "spawn_timeout" | "spawn_cleanup_failed"
                if rec.server_name.is_none() =>
            {
                let found = self
                    .spawning
                    .get(user)
                    .cloned()
                    .or_else(|| self.client_server(user));
                rec.server_name = found.map(Cow::Owned);
            }
            "spawn_succeeded" => {
                self.spawning.remove(user);
            }
            _ => {}
        }
    }

    /// The server of the newest OAuth client created for `user`.
    fn client_server(&self, user: &str) -> Option<String> {
        let base = format!("jupyterhub-user-{}", py_quote(user));
        self.clients.iter().rev().find_map(|id| {
            let rest = id.strip_prefix(&base)?;
            match rest.strip_prefix('-') {
                _ if rest.is_empty() => Some(String::new()),
                Some(server) => Some(route::percent_decode(server).into_owned()),
                None => None,
            }
        })
    }
}

/// Python's `urllib.parse.quote(s)` (safe `/`), as JupyterHub builds OAuth client ids.
fn py_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
