//! Parquet parts for one commit: one open part per `dt` partition, written to staging.
//!
//! Parts are zstd-compressed, dictionary-encoded for the low-cardinality columns only, with
//! row groups bounded in rows so memory stays bounded whatever the input size. A part is
//! `fsync`ed before its commit is written (see `manifest`); nothing here makes a part visible.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::manifest::{LakeError, PartEntry, io_err};
use super::schema;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            row_group_rows: 256 * 1024,
            zstd_level: 3,
        }
    }
}

pub fn writer_properties(cfg: &WriterConfig) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(cfg.zstd_level).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("hubpulse {}", env!("CARGO_PKG_VERSION")));
    for c in schema::DICTIONARY_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), true);
    }
    // Page statistics on the time column let readers prune time ranges inside a part.
    b = b.set_column_statistics_enabled(ColumnPath::from("ts"), EnabledStatistics::Page);
    b.build()
}

struct OpenPart {
    writer: ArrowWriter<File>,
    staging: PathBuf,
    entry: PartEntry,
}

/// The parts of one commit in progress.
pub struct PartSet {
    root: PathBuf,
    seq: u64,
    props: WriterProperties,
    open: BTreeMap<String, OpenPart>,
    counter: usize,
}

impl PartSet {
    pub fn new(root: PathBuf, seq: u64, cfg: &WriterConfig) -> Self {
        PartSet {
            root,
            seq,
            props: writer_properties(cfg),
            open: BTreeMap::new(),
            counter: 0,
        }
    }

    /// Append a batch whose rows all belong to partition `dt` (`YYYY-MM-DD`).
    pub fn write(&mut self, dt: &str, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.open.contains_key(dt) {
            let part = self.create(dt)?;
            self.open.insert(dt.to_string(), part);
        }
        if let Some(p) = self.open.get_mut(dt) {
            p.writer.write(batch)?;
            p.entry.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn create(&mut self, dt: &str) -> Result<OpenPart, LakeError> {
        let name = format!("{:020}-{}.parquet", self.seq, self.counter);
        self.counter += 1;
        let staging_rel = format!("_hubpulse/staging/{name}");
        let final_rel = format!(
            "{}/{}={dt}/part-{name}",
            schema::EVENTS,
            schema::PARTITION_COL
        );
        let staging = self.root.join(&staging_rel);
        let file = File::create(&staging).map_err(io_err(&staging))?;
        let writer = ArrowWriter::try_new(file, schema::events(), Some(self.props.clone()))?;
        let entry = PartEntry {
            path: final_rel,
            staging: staging_rel,
            rows: 0,
            bytes: 0,
        };
        Ok(OpenPart {
            writer,
            staging,
            entry,
        })
    }

    /// Close every part and make it durable in staging; returns the entries for the commit.
    pub fn finish(self) -> Result<Vec<PartEntry>, LakeError> {
        let mut out = Vec::with_capacity(self.open.len());
        for (_, mut p) in self.open {
            let file = p.writer.into_inner()?;
            file.sync_all().map_err(io_err(&p.staging))?;
            p.entry.bytes = file.metadata().map_err(io_err(&p.staging))?.len();
            out.push(p.entry);
        }
        Ok(out)
    }
}
