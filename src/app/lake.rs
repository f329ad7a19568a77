//! `hubpulse ingest` (files into the lake, resumable) and `hubpulse retention` (drop old
//! partitions).

use std::io::{self, Write};
use std::path::PathBuf;

use crate::cli::ParseArgs;
use crate::ingest::{IngestOptions, ingest};
use crate::lake::manifest::LakeError;

use super::AppError;
use super::out::Out;

pub(super) fn retention_cmd(
    lake: &crate::lake::LakeLocation,
    hub: &str,
    events: Option<u32>,
    decisions: Option<u32>,
    pods: Option<u32>,
) -> Result<(), AppError> {
    let r = crate::lake::retention::Retention {
        events,
        decisions,
        pods,
    };
    if r.is_off() {
        return Err(AppError::Input(
            "retention: give --events, --decisions and/or --pods (months to keep)".into(),
        ));
    }
    let mut m = crate::lake::Manifest::open(lake, hub).map_err(|e| match e {
        LakeError::Locked { .. } => AppError::Input(format!(
            "{e} (a running agent applies [lake.retention] itself)"
        )),
        LakeError::Io { .. } | LakeError::Store { .. } => AppError::Runtime(e.to_string()),
        e => AppError::Input(e.to_string()),
    })?;
    let today = chrono::Utc::now().date_naive();
    let dropped = crate::lake::retention::apply(&mut m, &r, today)
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let mut out = Out::stdout();
    for (table, dt) in &dropped.partitions {
        out.line(format_args!("dropped {table}/hub={hub}/dt={dt}"))?;
    }
    out.flush_now()?;
    let _ = writeln!(
        io::stderr(),
        "retention: {} partitions dropped",
        dropped.partitions.len()
    );
    Ok(())
}

pub(super) fn ingest_cmd(
    lake: &crate::lake::LakeLocation,
    opts: &ParseArgs,
    progress: bool,
    threads: Option<u16>,
    files: &[PathBuf],
) -> Result<(), AppError> {
    let s = super::parse::setup(opts)?;
    if files.iter().any(|f| f.as_os_str() == "-") {
        return Err(AppError::Input(
            "-: ingest reads files (it resumes them by offset); pipe streams to `hubpulse parse -` instead".into(),
        ));
    }
    super::parse::check_inputs(files, false)?;
    if let Some(dir) = lake.as_local() {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::Input(format!("{}: cannot create lake: {e}", dir.display())))?;
    }
    let iopts = IngestOptions {
        // One parsing thread per core, two at most. Since the lake's format 2 the writer has
        // little left to encode (heartbeats are a few numbers, rebuilt messages are not
        // stored), so on two cores two parsing threads beat one parsing on the reading thread
        // with the encoder on the other core (BENCHMARKS.md, round 8: 10.3 s against 14.6 s
        // on the 1.18 GB file). Beyond two the writer thread bounds the rate, and each parsing
        // thread adds about 20 MiB of pieces in flight and allocator arena.
        workers: match threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get().min(2)),
            usize::from,
        ) {
            0 | 1 => 0,
            n => n,
        },
        progress,
        ..IngestOptions::new(lake, s.zone, &opts.hub, s.catalogue, s.reader)
    };
    let summary = ingest(&iopts, files).map_err(|e| match e {
        LakeError::Locked { .. }
        | LakeError::Corrupt { .. }
        | LakeError::Conflict { .. }
        | LakeError::Config(_)
        | LakeError::Legacy { .. }
        | LakeError::Format { .. } => AppError::Input(e.to_string()),
        LakeError::Io { ref path, .. } if !lake.as_local().is_some_and(|d| path.starts_with(d)) => {
            AppError::Input(e.to_string())
        }
        e => AppError::Runtime(e.to_string()),
    })?;
    for f in &summary.by_file {
        super::parse::warn_if_unparsed(&f.path.display().to_string(), f.records, f.unparsed);
    }
    let mut out = Out::stdout();
    out.line(&summary)?;
    out.flush_now()
}
