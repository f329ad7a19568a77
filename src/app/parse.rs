//! `hubpulse parse` and `hubpulse kinds`, and what the commands that read logs share: the
//! catalogue, the zone, the reader's limits, the check of the input files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::ParseArgs;
use crate::lake::manifest::{FP_BYTES, hash_prefix};
use crate::parse::Parser;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::Zone;

use super::AppError;
use super::out::Out;

pub(super) fn load_catalogue(dir: Option<&Path>) -> Result<Catalogue, AppError> {
    let r = match dir {
        Some(d) => Catalogue::from_dir(d),
        None => Catalogue::embedded(),
    };
    r.map_err(|e| AppError::Input(format!("catalogue: {e}")))
}

pub(super) struct Setup {
    pub catalogue: Arc<Catalogue>,
    pub zone: Zone,
    pub reader: ReaderConfig,
}

pub(super) fn setup(opts: &ParseArgs) -> Result<Setup, AppError> {
    let zone = Zone::parse(&opts.tz).map_err(|e| AppError::Input(format!("--tz: {e}")))?;
    let catalogue = Arc::new(load_catalogue(opts.parsers.as_deref())?);
    if opts.max_line_bytes < 256 {
        return Err(AppError::Input(
            "--max-line-bytes: must be at least 256".into(),
        ));
    }
    let reader = ReaderConfig {
        max_line_bytes: opts.max_line_bytes,
        ..ReaderConfig::default()
    };
    Ok(Setup {
        catalogue,
        zone,
        reader,
    })
}

pub(super) fn check_inputs(files: &[PathBuf], allow_stdin: bool) -> Result<(), AppError> {
    for f in files {
        if allow_stdin && f.as_os_str() == "-" {
            continue;
        }
        if let Err(e) = File::open(f) {
            return Err(AppError::Input(format!("{}: {e}", f.display())));
        }
        if f.is_dir() {
            return Err(AppError::Input(format!(
                "{}: is a directory, not a log file",
                f.display()
            )));
        }
    }
    Ok(())
}

pub(super) fn parse_cmd(
    opts: &ParseArgs,
    summary: bool,
    files: &[PathBuf],
) -> Result<(), AppError> {
    let s = setup(opts)?;
    check_inputs(files, true)?;
    let mut out = Out::stdout();
    for f in files {
        let (input, name, fp): (Box<dyn Read>, String, String) = if f.as_os_str() == "-" {
            (Box::new(io::stdin().lock()), "-".into(), "stdin".into())
        } else {
            let fp = hash_prefix(f, FP_BYTES).map(|(h, _)| h).unwrap_or_default();
            let file =
                File::open(f).map_err(|e| AppError::Input(format!("{}: {e}", f.display())))?;
            (Box::new(file), f.display().to_string(), fp)
        };
        // As `ingest` dates them: from the file's modification date (stdin: today).
        let today = chrono::Utc::now().date_naive();
        let default_date = if f.as_os_str() == "-" {
            today
        } else {
            crate::ingest::mtime_date(f).unwrap_or(today)
        };
        let mut parser = Parser::new(s.catalogue.clone(), s.zone.clone(), Some(default_date));
        let mut reader = RecordReader::new(input, 0, s.reader);
        let mut write_err: Option<io::Error> = None;
        let started = std::time::Instant::now();
        let r = reader.run(AtEof::Finish, |raw| {
            if summary {
                parser.parse(&raw, |rec| std::hint::black_box(rec.kind));
                return;
            }
            if write_err.is_some() {
                return;
            }
            let v = parser.parse(&raw, |rec| rec.to_json(&opts.hub, &name, &fp));
            if let Err(e) = serde_json::to_writer(&mut out, &v)
                .map_err(io::Error::from)
                .and_then(|_| out.write_all(b"\n"))
            {
                write_err = Some(e);
            }
        });
        if let Some(e) = write_err {
            return Err(out.error(e));
        }
        r.map_err(|e| AppError::Runtime(format!("{name}: {e}")))?;
        warn_if_unparsed(&name, parser.stats.records, parser.stats.unparsed);
        if summary {
            let (st, secs) = (&parser.stats, started.elapsed().as_secs_f64());
            let line = format!(
                "file={name} records={} lines={} unparsed={} truncated={} bytes={} seconds={secs:.3} lines_per_sec={:.0}\n",
                st.records,
                st.lines,
                st.unparsed,
                st.truncated,
                st.bytes,
                st.lines as f64 / secs.max(1e-9)
            );
            out.text(&line)?;
        }
    }
    out.flush_now()
}

/// An input none of whose records hubpulse recognised (binary data, another program's log, a
/// compressed file) is kept, but said: one warning naming it.
pub(super) fn warn_if_unparsed(name: &str, records: u64, unparsed: u64) {
    if records > 0 && unparsed == records {
        super::out::warn(format_args!(
            "{name}: none of its {records} records is a log line hubpulse knows (100 % unparsed; kept as kind 'unparsed'); is it a JupyterHub, proxy or culler log?"
        ));
    }
}

/// `hubpulse kinds`: every record kind of the catalogue, with the file that defines it.
pub(super) fn kinds(parsers: Option<&Path>) -> Result<(), AppError> {
    let cat = load_catalogue(parsers)?;
    let mut out = Out::stdout();
    for (file, kind) in &cat.entries {
        out.line(format_args!("{kind}\t{file}"))?;
    }
    out.flush_now()
}
