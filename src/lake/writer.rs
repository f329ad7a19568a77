//! Parquet parts for one commit: one open part per `dt` partition, written to staging.
//!
//! Parts are zstd-compressed, dictionary-encoded for the low-cardinality columns only, with
//! row groups bounded in rows so memory stays bounded whatever the input size. The columns of a
//! batch are encoded on up to four threads (see [`OpenPart`]). A part is
//! `fsync`ed before its commit is written (see `manifest`); nothing here makes a part visible.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use std::sync::Mutex;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::batch::Rows;
use super::derived;
use super::manifest::{LakeError, PartEntry, io_err};
use super::tables::events as schema;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// Activity times held before they are written out as `activity` rows (8 bytes each): a
    /// commit of any size then holds at most this many (a user then has several rows for a
    /// day, which readers fold and compaction regroups).
    pub activity_flush: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            activity_flush: 256 * 1024,
        }
    }
}

/// A column by its dotted path (`times.list.item` is a list's values).
fn column(dotted: &str) -> ColumnPath {
    ColumnPath::new(dotted.split('.').map(str::to_string).collect())
}

/// Columns written in another encoding than PLAIN (see [`writer_properties`]).
const ENCODINGS: &[(&str, Encoding)] = &[
    ("ts", Encoding::DELTA_BINARY_PACKED),
    ("source_offset", Encoding::DELTA_BINARY_PACKED),
    ("offsets.list.item", Encoding::BYTE_STREAM_SPLIT),
    ("durations_cs.list.item", Encoding::BYTE_STREAM_SPLIT),
];

/// `activity` lists compressed at another zstd level than [`WriterConfig::zstd_level`] (the
/// heartbeats' numbers are most of a lake's bytes), measured over the 2 M-line slice
/// (BENCHMARKS.md, round 10; zstd's speeds on 1 MiB pages of the column's values):
/// * `times` (ms, each list one user's sorted reports): PLAIN at zstd 5, 3.45 MB, where level 3
///   gives 3.79 MB and level 9 3.28 MB at 233, 118 and 53 MB/s: level 5 is the knee, about
///   0.25 CPU-s more per GB of log than level 3 for 9 % less (byte-stream split: 3.81 MB at any
///   level up to 3, 3.68 MB at 5; deltas: 4.9 MB).
/// * `offsets` (byte-stream split): zstd 3, 4.18 MB (level 1: 4.25; 5: 4.11 at 340 MB/s).
/// * `durations_cs` (int32 hundredths, byte-stream split) stay at the default level 1: 2.67 MB,
///   the smallest of levels 1 to 9 (plain: 3.5 MB at level 3).
const HEARTBEAT_LISTS_ZSTD: [(&str, i32); 2] = [("times.list.item", 5), ("offsets.list.item", 3)];

pub fn writer_properties(cfg: &WriterConfig) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(cfg.zstd_level).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_created_by(format!("hubpulse {}", env!("CARGO_PKG_VERSION")));
    for c in schema::DICTIONARY_COLUMNS
        .iter()
        .chain(super::heartbeat::DICTIONARY_COLUMNS)
    {
        b = b.set_column_dictionary_enabled(column(c), true);
    }
    // Encodings chosen by measurement over a generated day (BENCHMARKS.md, round 8): deltas for
    // the stream-ordered times and offsets of `events`, byte-stream split for the heartbeats'
    // offsets and durations (each list is one user's, so neighbours share their high bytes).
    for (c, e) in ENCODINGS {
        b = b.set_column_encoding(column(c), *e);
    }
    // Page statistics on the time column let readers prune time ranges inside a part.
    b = b.set_column_statistics_enabled(column("ts"), EnabledStatistics::Page);
    for (c, level) in HEARTBEAT_LISTS_ZSTD {
        b = b.set_column_compression(
            column(c),
            Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default()),
        );
    }
    // Min/max costs a comparison per value; keep it only where it can prune a row group.
    for c in schema::STATISTICS_COLUMNS {
        b = b.set_column_statistics_enabled(column(c), EnabledStatistics::Chunk);
    }
    b.build()
}

/// One part being written: the Parquet file, and the column writers of its open row group.
///
/// This is what `ArrowWriter` does (same column writers, same row-group cuts, same bytes), taken
/// apart so that the columns of a batch are encoded and compressed on several threads: zstd over
/// the `message` and `path` columns is most of the writer's time.
struct OpenPart {
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    /// Column writers of the row group in progress (`None` between row groups).
    columns: Option<Vec<ArrowColumnWriter>>,
    buffered_rows: usize,
    row_groups: usize,
    staging: PathBuf,
    entry: PartEntry,
}

impl OpenPart {
    /// Append `batch` to the part, cutting row groups at `max_rows` like `ArrowWriter`.
    fn write(&mut self, batch: &RecordBatch, max_rows: usize) -> Result<(), LakeError> {
        let mut at = 0;
        while at < batch.num_rows() {
            let take = (max_rows - self.buffered_rows).min(batch.num_rows() - at);
            self.encode(&batch.slice(at, take))?;
            self.buffered_rows += take;
            at += take;
            if self.buffered_rows >= max_rows {
                self.close_row_group()?;
            }
        }
        Ok(())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        let columns = match &mut self.columns {
            Some(c) => c,
            none => none.insert(self.factory.create_column_writers(self.row_groups)?),
        };
        // Each leaf with the size of its array, to hand out the biggest columns first.
        let mut leaves = Vec::with_capacity(columns.len());
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let weight = array.get_array_memory_size();
            leaves.extend(
                compute_leaves(field, array)?
                    .into_iter()
                    .map(|l| (weight, l)),
            );
        }
        let mut jobs: Vec<_> = columns.iter_mut().zip(leaves).collect();
        jobs.sort_by_key(|(_, (weight, _))| std::cmp::Reverse(*weight));
        in_parallel(jobs, |(w, (_, leaf))| w.write(&leaf))?;
        Ok(())
    }

    fn close_row_group(&mut self) -> Result<(), LakeError> {
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        let mut chunks: Vec<Option<ArrowColumnChunk>> = Vec::new();
        chunks.resize_with(columns.len(), || None);
        let jobs: Vec<_> = columns.into_iter().zip(chunks.iter_mut()).collect();
        in_parallel(jobs, |(w, slot)| {
            *slot = Some(w.close()?);
            Ok(())
        })?;
        let mut rg = self.file.next_row_group()?;
        for chunk in chunks.into_iter().flatten() {
            chunk.append_to_row_group(&mut rg)?;
        }
        rg.close()?;
        self.row_groups += 1;
        self.buffered_rows = 0;
        Ok(())
    }
}

/// Helper threads encoding columns beside the writer's own: one per core but one, at most three
/// (the biggest column, `message`, is one job: more threads than that would wait on it).
static HELPERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).clamp(1, 3))
});

/// Run `f` over `jobs` on this thread and [`HELPERS`] helpers, each taking the next job in order.
fn in_parallel<J: Send>(
    jobs: Vec<J>,
    f: impl Fn(J) -> Result<(), ParquetError> + Sync,
) -> Result<(), ParquetError> {
    let queue = Mutex::new(jobs.into_iter());
    let work = || -> Result<(), ParquetError> {
        loop {
            let job = match queue.lock() {
                Ok(mut q) => q.next(),
                Err(_) => return Err(ParquetError::General("encoder thread panicked".into())),
            };
            match job {
                Some(j) => f(j)?,
                None => return Ok(()),
            }
        }
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (0..*HELPERS).map(|_| s.spawn(work)).collect();
        let mut result = work();
        for h in helpers {
            let theirs = h
                .join()
                .unwrap_or_else(|_| Err(ParquetError::General("encoder thread panicked".into())));
            result = result.and(theirs);
        }
        result
    })
}

/// The parts of one commit in progress.
pub struct PartSet {
    root: PathBuf,
    names: super::manifest::Names,
    seq: u64,
    props: WriterProperties,
    row_group_rows: usize,
    activity_flush: usize,
    /// (table, dt) -> its open part.
    open: BTreeMap<(&'static str, String), OpenPart>,
    /// dt -> user -> activity reports, written as `activity` rows when they reach
    /// `activity_flush` times, and at `finish`.
    activity: BTreeMap<String, super::activity::Activity>,
    /// Activity times held in `activity`.
    activity_times: usize,
    /// The latest `dt` written to so far.
    latest_dt: Option<String>,
    /// The days written to most recently, the latest last: at most [`OPEN_DAYS`] of them keep
    /// row groups open (see [`PartSet::touch`]).
    recent: std::collections::VecDeque<String>,
    counter: usize,
}

/// Days whose parts may each hold a row group open (its column writers and encoded pages in
/// memory) at once. One file runs forward in time ([`PartSet::advance`] closes the days behind
/// it), but a commit covering several files that span the same days goes back to the first
/// day with each file: without a limit every day of the commit would keep its row groups open,
/// and memory would grow with the number of days rather than stay bounded.
const OPEN_DAYS: usize = 4;

impl PartSet {
    /// Parts for commit `seq`, written under `root` (the lake, or the scratch directory of a
    /// lake in an object store) and named by the hub's writer.
    pub fn new(root: PathBuf, names: super::manifest::Names, seq: u64, cfg: &WriterConfig) -> Self {
        PartSet {
            root,
            names,
            seq,
            props: writer_properties(cfg),
            row_group_rows: cfg.row_group_rows.max(1),
            activity_flush: cfg.activity_flush.max(1),
            open: BTreeMap::new(),
            activity: BTreeMap::new(),
            activity_times: 0,
            latest_dt: None,
            recent: std::collections::VecDeque::new(),
            counter: 0,
        }
    }

    /// Append an `events` batch of the readers' schema ([`schema::events`]) whose rows all
    /// belong to partition `dt` (`YYYY-MM-DD`), split as the lake stores it (`derived::split`).
    pub fn write(&mut self, dt: &str, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.write_rows(dt, derived::split(batch)?)
    }

    /// Append rows of partition `dt` as built ([`Rows`]): the heartbeats go to `activity`, the
    /// stored rows to `events`, and their lifecycle rows to `lifecycle` too (see `derived`).
    pub fn write_rows(&mut self, dt: &str, rows: Rows) -> Result<(), LakeError> {
        if rows.stored.num_rows() == 0 && rows.beats.is_empty() {
            return Ok(());
        }
        self.advance(dt)?;
        self.touch(dt)?;
        let activity = self.activity.entry(dt.to_string()).or_default();
        activity.absorb(&rows.beats);
        let scan = derived::scan(&rows.stored, activity)?;
        self.activity_times += rows.beats.len() + scan.activity_times;
        self.write_to(schema::EVENTS, dt, &rows.stored)?;
        if let Some(mask) = scan.lifecycle {
            let life = arrow::compute::filter_record_batch(&rows.stored, &mask)?;
            self.write_to(derived::LIFECYCLE, dt, &life)?;
        }
        if self.activity_times >= self.activity_flush {
            self.flush_activity()?;
        }
        Ok(())
    }

    /// Logs run forward in time: when `dt` is a day later than any written so far, the parts of
    /// the days before it close their row groups, so a commit spanning many days holds one
    /// day's row groups in memory rather than one per day. A part written to again (lines out
    /// of order) opens a new row group.
    fn advance(&mut self, dt: &str) -> Result<(), LakeError> {
        if self.latest_dt.as_deref().is_some_and(|l| l >= dt) {
            return Ok(());
        }
        self.latest_dt = Some(dt.to_string());
        for ((_, d), p) in self.open.iter_mut() {
            if d.as_str() < dt {
                p.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Make `dt` the most recent day; the row groups of a day that falls out of the
    /// [`OPEN_DAYS`] most recent are closed (a later write to it opens a new one).
    fn touch(&mut self, dt: &str) -> Result<(), LakeError> {
        if self.recent.back().is_some_and(|d| d == dt) {
            return Ok(());
        }
        self.recent.retain(|d| d != dt);
        self.recent.push_back(dt.to_string());
        if self.recent.len() > OPEN_DAYS {
            self.recent.pop_front();
            self.close_stale()?;
        }
        Ok(())
    }

    /// Close the open row groups of the days not among the most recent.
    fn close_stale(&mut self) -> Result<(), LakeError> {
        for ((_, d), p) in self.open.iter_mut() {
            if p.columns.is_some() && !self.recent.contains(d) {
                p.close_row_group()?;
            }
        }
        Ok(())
    }

    /// Parts holding a row group open (what [`OPEN_DAYS`] bounds).
    #[cfg(test)]
    fn open_row_groups(&self) -> usize {
        self.open.values().filter(|p| p.columns.is_some()).count()
    }

    /// Write the activity times held so far as `activity` rows, and free them.
    fn flush_activity(&mut self) -> Result<(), LakeError> {
        for (dt, users) in std::mem::take(&mut self.activity) {
            if !users.is_empty() {
                let b = users.to_batch()?;
                self.write_to(derived::ACTIVITY, &dt, &b)?;
            }
        }
        self.activity_times = 0;
        // Days held in `activity` need not be recent ones.
        self.close_stale()
    }

    /// Append a batch of `table`'s rows to its part for `dt`.
    pub fn write_to(
        &mut self,
        table: &'static str,
        dt: &str,
        batch: &RecordBatch,
    ) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let key = (table, dt.to_string());
        if !self.open.contains_key(&key) {
            let part = self.create(table, dt, batch.schema())?;
            self.open.insert(key.clone(), part);
        }
        if let Some(p) = self.open.get_mut(&key) {
            p.write(batch, self.row_group_rows)?;
            p.entry.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn create(
        &mut self,
        table: &str,
        dt: &str,
        file_schema: arrow::datatypes::SchemaRef,
    ) -> Result<OpenPart, LakeError> {
        let stem = format!("{:020}-{}", self.seq, self.counter);
        self.counter += 1;
        let staging_rel = self.names.staging_rel(&stem);
        let final_rel = self.names.part_rel(table, dt, &format!("{stem}.parquet"));
        let staging = self.root.join(&staging_rel);
        let file = File::create(&staging).map_err(io_err(&staging))?;
        // `ArrowWriter` sets the file up (Parquet schema, the Arrow schema in the footer's
        // metadata); the row groups are then written by hand.
        let (file, factory) = ArrowWriter::try_new(file, file_schema, Some(self.props.clone()))?
            .into_serialized_writer()?;
        let entry = PartEntry {
            path: final_rel,
            staging: staging_rel,
            rows: 0,
            bytes: 0,
        };
        Ok(OpenPart {
            file,
            factory,
            columns: None,
            buffered_rows: 0,
            row_groups: 0,
            staging,
            entry,
        })
    }

    /// Close every part and make it durable in staging; returns the entries for the commit.
    pub fn finish(mut self) -> Result<Vec<PartEntry>, LakeError> {
        self.flush_activity()?;
        let mut out = Vec::with_capacity(self.open.len());
        for (_, mut p) in self.open {
            p.close_row_group()?;
            let file = p.file.into_inner()?;
            file.sync_all().map_err(io_err(&p.staging))?;
            p.entry.bytes = file.metadata().map_err(io_err(&p.staging))?.len();
            out.push(p.entry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::batch::{EventsBuilder, SourceInfo};
    use crate::parse::prefix::Family;
    use crate::parse::record::Record;

    fn rows(day: i64, n: usize) -> Rows {
        let src = std::sync::Arc::new(SourceInfo {
            hub: "h".into(),
            file: "f".into(),
            fp: "0".into(),
        });
        let mut b = EventsBuilder::new(src);
        for i in 0..n {
            let mut rec = Record::new("message", Family::Hub, "a message kept whole");
            rec.ts = Some(day * 86_400_000_000 + i as i64);
            b.append(&rec);
        }
        b.finish().expect("rows")
    }

    /// Files of one commit that each span the same 12 days go back to the first day with each
    /// file: the row groups held open stay at [`OPEN_DAYS`] days' worth, and every row is
    /// still written.
    #[test]
    fn a_commit_going_back_in_time_holds_few_row_groups_open() {
        let dir = tempfile::tempdir().unwrap();
        let lake = crate::lake::LakeLocation::Local(dir.path().to_path_buf());
        let manifest = crate::lake::manifest::Manifest::open(&lake, "h").unwrap();
        let names = manifest.names();
        let mut set = PartSet::new(
            manifest.root().to_path_buf(),
            names,
            1,
            &WriterConfig::default(),
        );
        let (days, files) = (12i64, 3);
        let mut most = 0;
        for _ in 0..files {
            for day in 20_000..20_000 + days {
                let dt = format!("d{day}");
                set.write_rows(&dt, rows(day, 5)).unwrap();
                most = most.max(set.open_row_groups());
            }
        }
        assert_eq!(
            most, OPEN_DAYS,
            "events parts with an open row group, at most"
        );
        let parts = set.finish().unwrap();
        assert_eq!(parts.len() as i64, days, "one events part per day");
        let written: u64 = parts.iter().map(|p| p.rows).sum();
        assert_eq!(written, (days * files * 5) as u64);
    }
}
