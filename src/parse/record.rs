//! The record every stage shares: one parsed log record, borrowing from the text it came from.
//!
//! Field names are the lake's column names (see `lake::schema`), and [`Record::to_json`] writes
//! them in the same order with `null` for absent values, so `hubpulse parse` output and the
//! lake agree by construction.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::parse::prefix::{Family, Level};
use crate::parse::text::Flags;
use crate::parse::time::rfc3339;

#[derive(Debug, Clone, PartialEq)]
pub struct Record<'r> {
    /// UTC micros since the epoch; `None` when the record carries no time (un-prefixed output).
    pub ts: Option<i64>,
    /// Best known time for partitioning when `ts` is `None`: the last stamp seen before it.
    pub ts_hint: Option<i64>,
    pub source: Family,
    pub level: Option<Level>,
    pub logger: Option<&'r str>,
    pub module: Option<&'r str>,
    pub kind: &'static str,
    pub user: Option<Cow<'r, str>>,
    pub actor: Option<&'r str>,
    pub server_name: Option<Cow<'r, str>>,
    pub method: Option<&'r str>,
    pub status: Option<u16>,
    pub route: Option<&'static str>,
    pub path: Option<&'r str>,
    pub target: Option<&'r str>,
    pub client_ip: Option<&'r str>,
    pub service: Option<&'r str>,
    pub duration_ms: Option<f64>,
    pub exit_code: Option<i32>,
    pub count: Option<i64>,
    pub attrs: Vec<(&'static str, &'r str)>,
    pub message: &'r str,
    pub lines: u32,
    pub flags: Flags,
    pub offset: u64,
    pub length: u64,
}

impl<'r> Record<'r> {
    pub fn new(kind: &'static str, source: Family, message: &'r str) -> Self {
        Record {
            ts: None,
            ts_hint: None,
            source,
            level: None,
            logger: None,
            module: None,
            kind,
            user: None,
            actor: None,
            server_name: None,
            method: None,
            status: None,
            route: None,
            path: None,
            target: None,
            client_ip: None,
            service: None,
            duration_ms: None,
            exit_code: None,
            count: None,
            attrs: Vec::new(),
            message,
            lines: 1,
            flags: Flags::default(),
            offset: 0,
            length: 0,
        }
    }

    /// `attrs` as a JSON object string, `None` when empty.
    pub fn attrs_json(&self) -> Option<String> {
        if self.attrs.is_empty() {
            return None;
        }
        let m: Map<String, Value> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        Some(Value::Object(m).to_string())
    }

    /// One JSON object with the lake's columns, in schema order.
    pub fn to_json(&self, hub: &str, source_file: &str, source_fp: &str) -> Value {
        fn s<T: AsRef<str>>(v: Option<T>) -> Value {
            v.map_or(Value::Null, |x| Value::String(x.as_ref().to_string()))
        }
        let mut m = Map::new();
        m.insert("ts".into(), s(self.ts.map(rfc3339)));
        m.insert("hub".into(), Value::String(hub.into()));
        m.insert("source".into(), Value::String(self.source.as_str().into()));
        m.insert("level".into(), s(self.level.map(Level::as_str)));
        m.insert("logger".into(), s(self.logger));
        m.insert("module".into(), s(self.module));
        m.insert("kind".into(), Value::String(self.kind.into()));
        m.insert("user".into(), s(self.user.as_deref()));
        m.insert("actor".into(), s(self.actor));
        m.insert("server_name".into(), s(self.server_name.as_deref()));
        m.insert("method".into(), s(self.method));
        m.insert(
            "status".into(),
            self.status.map_or(Value::Null, Value::from),
        );
        m.insert("route".into(), s(self.route));
        m.insert("path".into(), s(self.path));
        m.insert("target".into(), s(self.target));
        m.insert("client_ip".into(), s(self.client_ip));
        m.insert("service".into(), s(self.service));
        m.insert(
            "duration_ms".into(),
            self.duration_ms.map_or(Value::Null, Value::from),
        );
        m.insert(
            "exit_code".into(),
            self.exit_code.map_or(Value::Null, Value::from),
        );
        m.insert("count".into(), self.count.map_or(Value::Null, Value::from));
        m.insert("attrs".into(), s(self.attrs_json()));
        m.insert("message".into(), Value::String(self.message.into()));
        m.insert("lines".into(), Value::from(self.lines));
        m.insert("flags".into(), s(self.flags.names()));
        m.insert("source_file".into(), Value::String(source_file.into()));
        m.insert("source_fp".into(), Value::String(source_fp.into()));
        m.insert("source_offset".into(), Value::from(self.offset));
        Value::Object(m)
    }
}
