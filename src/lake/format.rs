//! The lake's format version, in `_hubpulse/format.json` at its root.
//!
//! Format 1 (hubpulse before issue 21) stored every record's `message` and every activity
//! report as an `events` row; format 2 stores each fact once (see [`super::derived`]); format 3
//! is format 2 with `activity`'s times in milliseconds and its durations in hundredths of a
//! millisecond (`durations_cs`, see [`super::heartbeat`]). Their files read differently
//! (`text`, not `message`; heartbeats in `activity`; its lists' types), so a lake of another
//! format is refused by writers and readers alike, with one line naming the command that
//! converts it: `hubpulse migrate --lake <lake>`.
//!
//! A lake without the file is a new one (the file is written) or a format 1 lake: one with a
//! table directory (`events/`, `lifecycle/`, `activity/`; a format 1 writer makes `events/` as
//! it opens). `_hubpulse/hubs/` alone says nothing: the Datadog spool lives there, and may be
//! made before the lake's first commit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::LakeLocation;
use super::manifest::LakeError;
use super::store::Remote;
use super::tables::events::FORMAT_VERSION;

/// Relative to the lake root.
pub const MARKER: &str = "_hubpulse/format.json";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    version: u32,
}

/// What a lake's root says of its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing written yet.
    Empty,
    Version(u32),
}

fn parse(lake: &str, body: &[u8]) -> Result<u32, LakeError> {
    serde_json::from_slice::<Marker>(body)
        .map(|m| m.version)
        .map_err(|source| LakeError::Corrupt {
            path: format!("{lake}/{MARKER}").into(),
            source,
        })
}

fn body() -> Vec<u8> {
    let m = Marker {
        version: FORMAT_VERSION,
    };
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Whether a directory of a lake's root is a table of format 1 (when there is no marker).
fn is_table_dir(name: &str) -> bool {
    super::tables::ALL.contains(&name)
}

/// The format a lake is in.
pub fn found(lake: &LakeLocation) -> Result<Found, LakeError> {
    match lake {
        LakeLocation::Local(root) => found_local(root),
        LakeLocation::S3(url) => found_remote(&Remote::open(url)?, &url.to_string()),
    }
}

fn found_local(root: &Path) -> Result<Found, LakeError> {
    let marker = root.join(MARKER);
    match std::fs::read(&marker) {
        Ok(b) => return Ok(Found::Version(parse(&root.display().to_string(), &b)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(LakeError::Io {
                path: marker,
                source,
            });
        }
    }
    let v1 = super::tables::ALL.iter().any(|t| root.join(t).is_dir());
    Ok(if v1 { Found::Version(1) } else { Found::Empty })
}

fn found_remote(r: &Remote, url: &str) -> Result<Found, LakeError> {
    let store = |source| LakeError::Store {
        url: url.to_string(),
        source,
    };
    if let Some(b) = r.read_opt(MARKER).map_err(store)? {
        return Ok(Found::Version(parse(url, &b)?));
    }
    let dirs = r.list_dirs("").map_err(store)?;
    Ok(if dirs.iter().any(|d| is_table_dir(d)) {
        Found::Version(1)
    } else {
        Found::Empty
    })
}

/// [`check`] from what a reader listed: the marker's bytes, and whether a table has data.
pub fn judge(lake: &LakeLocation, marker: Option<&[u8]>, has_data: bool) -> Result<(), LakeError> {
    match marker {
        Some(b) => refuse_other(lake, parse(&lake.to_string(), b)?),
        None if has_data => refuse_other(lake, 1),
        None => Ok(()),
    }
}

/// Refuse a lake of another format (readers): one line naming `hubpulse migrate`.
pub fn check(lake: &LakeLocation) -> Result<(), LakeError> {
    match found(lake)? {
        Found::Empty => Ok(()),
        Found::Version(v) => refuse_other(lake, v),
    }
}

fn refuse_other(lake: &LakeLocation, v: u32) -> Result<(), LakeError> {
    if v == FORMAT_VERSION {
        return Ok(());
    }
    Err(LakeError::Format {
        lake: lake.to_string(),
        found: v,
    })
}

/// Refuse a lake of another format, and mark a new one as this format (writers).
pub fn ensure(lake: &LakeLocation) -> Result<(), LakeError> {
    match found(lake)? {
        Found::Version(v) => refuse_other(lake, v),
        Found::Empty => mark(lake),
    }
}

/// Write the marker: this lake is of this format (a new lake, or a finished migration).
pub fn mark(lake: &LakeLocation) -> Result<(), LakeError> {
    match lake {
        LakeLocation::Local(root) => {
            let dir = root.join("_hubpulse");
            std::fs::create_dir_all(&dir).map_err(super::manifest::io_err(&dir))?;
            super::manifest::write_durable(&dir, "format.json", &body())
        }
        LakeLocation::S3(url) => {
            Remote::open(url)?
                .put(MARKER, body())
                .map_err(|source| LakeError::Store {
                    url: url.to_string(),
                    source,
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lake_is_marked_and_a_format_1_lake_refused_naming_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = LakeLocation::Local(dir.path().join("new"));
        assert_eq!(found(&fresh).unwrap(), Found::Empty);
        ensure(&fresh).unwrap();
        assert_eq!(found(&fresh).unwrap(), Found::Version(FORMAT_VERSION));
        check(&fresh).unwrap();

        let spool = LakeLocation::Local(dir.path().join("spool"));
        std::fs::create_dir_all(dir.path().join("spool/_hubpulse/hubs/h/datadog-spool")).unwrap();
        ensure(&spool).unwrap();

        let old = dir.path().join("old");
        std::fs::create_dir_all(old.join("events/hub=h/dt=2026-11-02")).unwrap();
        let old = LakeLocation::Local(old);
        let e = ensure(&old).unwrap_err().to_string();
        assert!(
            e.contains("format 1") && e.contains("hubpulse migrate --lake"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(check(&old).is_err());
    }
}
