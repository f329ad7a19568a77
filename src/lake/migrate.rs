//! `hubpulse migrate`: a lake of format 1 or 2 converted to format 3 ([`super::format`]) in
//! place.
//!
//! Format 1 stored every record whole in `events` (activity reports included), and the
//! `lifecycle` and `activity` tables derived from it. So for each hub and each live partition
//! day, that day's format 1 `events` parts are read back, in commit order, and written again
//! through [`PartSet::write`], which derives the three tables of format 3 exactly as an ingest
//! does ([`super::derived::split`]). Format 2 stored `events` and `lifecycle` as format 3 does,
//! and `activity` with times and durations in µs: its `activity` parts are read back and written
//! again in format 3 ([`super::migrate_activity`]; a heartbeat whose time is finer than a
//! millisecond becomes an `events` row, as format 3 keeps it). One commit then replaces every
//! old part of the day by the new ones ([`Manifest::commit_replace`], the machinery of
//! compaction): a day is converted whole or not at all, and a crash is rolled forward or back
//! by the next open like any commit.
//!
//! A part already of format 3 (its file has a `text` column; an `activity` part: neither a
//! `hub` nor a `durations_us` column) is left alone, so a second run after a crash converts
//! only the days left. When every hub is done the lake is marked as format 3
//! ([`super::format::mark`]); until then readers and writers keep refusing it, so none ever sees
//! a lake half converted.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::LakeLocation;
use super::derived::ACTIVITY;
use super::format::{self, Found};
use super::manifest::{LakeError, Manifest, io_err, key_dt, key_table};
use super::migrate_activity::{Converter, FORMAT_2_DURATIONS};
use super::tables::events::{EVENTS, FORMAT_VERSION, HUB_COL, TEXT_COL};
use super::writer::{PartSet, WriterConfig};

/// What a migration did (one hub's, or the whole lake's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Partition days converted.
    pub days: usize,
    /// Partition days found of this format already (by an interrupted run).
    pub current_days: usize,
    /// Parts replaced, and their bytes.
    pub parts_before: usize,
    pub bytes_before: u64,
    /// Parts written, and their bytes.
    pub parts_after: usize,
    pub bytes_after: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.days += o.days;
        self.current_days += o.current_days;
        self.parts_before += o.parts_before;
        self.bytes_before += o.bytes_before;
        self.parts_after += o.parts_after;
        self.bytes_after += o.bytes_after;
    }
}

/// How [`migrate`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing there, or no hub's manifest: not a hubpulse lake (left unmarked).
    NoLake,
    /// The lake is of this format already: nothing was done.
    Current,
    /// A format this hubpulse does not know (a newer one).
    Unknown(u32),
    /// Every hub converted, the lake marked; the totals.
    Migrated(Counts),
}

/// Convert `lake` to this format, hub by hub (`on_hub` is told each hub's counts as it is
/// done), then mark it.
pub fn migrate(
    lake: &LakeLocation,
    cfg: &WriterConfig,
    mut on_hub: impl FnMut(&str, &Counts),
) -> Result<Outcome, LakeError> {
    match format::found(lake)? {
        Found::Empty => return Ok(Outcome::NoLake),
        Found::Version(FORMAT_VERSION) => return Ok(Outcome::Current),
        Found::Version(1 | 2) => {}
        Found::Version(v) => return Ok(Outcome::Unknown(v)),
    }
    let hubs = hubs(lake)?;
    if hubs.is_empty() {
        return Ok(Outcome::NoLake);
    }
    let mut total = Counts::default();
    for hub in &hubs {
        let c = migrate_hub(lake, hub, cfg)?;
        on_hub(hub, &c);
        total.add(&c);
    }
    format::mark(lake)?;
    Ok(Outcome::Migrated(total))
}

/// The hubs with a manifest in `lake` (the directories under `_hubpulse/hubs/`), sorted.
pub fn hubs(lake: &LakeLocation) -> Result<Vec<String>, LakeError> {
    let dir = "_hubpulse/hubs";
    let mut out = match lake {
        LakeLocation::Local(root) => {
            let path = root.join(dir);
            let rd = match std::fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(LakeError::Io { path, source: e }),
            };
            let mut out = Vec::new();
            for e in rd {
                let e = e.map_err(io_err(&path))?;
                if e.path().is_dir() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            out
        }
        LakeLocation::S3(url) => {
            super::store::Remote::open(url)?
                .list_dirs(dir)
                .map_err(|source| LakeError::Store {
                    url: url.to_string(),
                    source,
                })?
        }
    };
    out.sort();
    Ok(out)
}

/// The format of a published part, from its file's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartFormat {
    /// Format 1 (any table): replaced by what the day's format 1 `events` rows make.
    One,
    /// A format 2 `activity` part: rewritten ([`super::migrate_activity`]).
    TwoActivity,
    /// This format (format 2's `events` and `lifecycle` parts are of it too).
    Current,
}

fn part_format(table: &str, file: &Path) -> Result<PartFormat, LakeError> {
    let f = File::open(file).map_err(io_err(file))?;
    let schema = ParquetRecordBatchReaderBuilder::try_new(f)?
        .schema()
        .clone();
    let has = |c: &str| schema.column_with_name(c).is_some();
    Ok(match (table == ACTIVITY, has(HUB_COL), has(TEXT_COL)) {
        (true, true, _) | (false, _, false) => PartFormat::One,
        (true, false, _) if has(FORMAT_2_DURATIONS) => PartFormat::TwoActivity,
        _ => PartFormat::Current,
    })
}

/// Convert one hub's partitions, one commit per day.
pub fn migrate_hub(
    lake: &LakeLocation,
    hub: &str,
    cfg: &WriterConfig,
) -> Result<Counts, LakeError> {
    let mut m = Manifest::open_any_format(lake, hub)?;
    let mut days: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (key, parts) in m.live_parts() {
        let table = key_table(key);
        if super::tables::ALL.contains(&table) {
            let day = days.entry(key_dt(key).to_string()).or_default();
            day.extend(parts.iter().map(|p| (table.to_string(), p.clone())));
        }
    }
    let mut counts = Counts::default();
    for (dt, parts) in days {
        migrate_day(&mut m, &dt, &parts, cfg, &mut counts)?;
    }
    Ok(counts)
}

/// A day's old parts: all are replaced, the format 1 `events` ones and format 2 `activity`
/// ones are read.
#[derive(Default)]
struct Old {
    rels: Vec<String>,
    bytes: u64,
    /// Whether a format 1 part is among them.
    format_1: bool,
    /// The format 1 `events` parts as local files (in an object store: copies in the scratch
    /// directory).
    events: Vec<PathBuf>,
    /// The format 2 `activity` parts, likewise.
    activity: Vec<PathBuf>,
}

/// Copies of parts fetched from an object store, removed when the day is done.
struct Fetched(Vec<PathBuf>);

impl Drop for Fetched {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn read(file: &Path) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, LakeError> {
    let f = File::open(file).map_err(io_err(file))?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(f)?
        .with_batch_size(64 * 1024)
        .build()?)
}

/// Convert one day: its format 1 parts replaced, in one commit, by what their `events` rows
/// make in format 3, and its format 2 `activity` parts by their rows in format 3.
fn migrate_day(
    m: &mut Manifest,
    dt: &str,
    parts: &[(String, String)],
    cfg: &WriterConfig,
    counts: &mut Counts,
) -> Result<(), LakeError> {
    let mut old = Old::default();
    let mut fetched = Fetched(Vec::new());
    for (table, rel) in parts {
        let file = m.part_file(rel)?;
        if m.is_remote() {
            fetched.0.push(file.clone());
        }
        let format = part_format(table, &file)?;
        if format == PartFormat::Current {
            continue;
        }
        old.bytes += std::fs::metadata(&file).map_err(io_err(&file))?.len();
        old.rels.push(rel.clone());
        match format {
            PartFormat::One => {
                old.format_1 = true;
                if table == EVENTS {
                    old.events.push(file);
                }
            }
            _ => old.activity.push(file),
        }
    }
    if old.rels.is_empty() {
        counts.current_days += 1;
        return Ok(());
    }
    if old.format_1 && old.events.is_empty() {
        // `lifecycle` and `activity` are derived from `events` rows: without them nothing
        // can rebuild these parts, so they are not replaced by nothing.
        return Err(LakeError::Io {
            path: format!("hub={}/dt={dt}", m.hub()).into(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "format 1 lifecycle or activity parts without the events parts they derive from",
            ),
        });
    }
    let mut set = PartSet::new(m.root().to_path_buf(), m.names(), m.next_seq(), cfg);
    for file in &old.events {
        for b in read(file)? {
            set.write(dt, &b?)?;
        }
    }
    let mut two = Converter::new(m.hub());
    for file in &old.activity {
        for b in read(file)? {
            two.add(&b?)?;
        }
    }
    let two = two.finish()?;
    for rows in two.rows {
        set.write_rows(dt, rows)?;
    }
    if !two.activity.is_empty() {
        set.write_to(ACTIVITY, dt, &two.activity.to_batch()?)?;
    }
    let parts = set.finish()?;
    let after = Counts {
        days: 1,
        current_days: 0,
        parts_before: old.rels.len(),
        bytes_before: old.bytes,
        parts_after: parts.len(),
        bytes_after: parts.iter().map(|p| p.bytes).sum(),
    };
    m.commit_replace(old.rels, parts)?;
    counts.add(&after);
    Ok(())
}
