//! `hubpulse generate`: a synthetic hub log (and its ground truth) for benchmarks and tests.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::AppError;
use super::out::Out;

pub(super) fn generate_cmd(
    cfg: &crate::generate::GenConfig,
    out: &Path,
    truth: Option<&Path>,
) -> Result<(), AppError> {
    let f = File::create(out).map_err(|e| AppError::Input(format!("{}: {e}", out.display())))?;
    let t = crate::generate::generate(cfg, BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| AppError::Runtime(format!("{}: {e}", out.display())))?;
    let json = serde_json::to_string_pretty(&t).map_err(|e| AppError::Runtime(e.to_string()))?;
    match truth {
        Some(p) => {
            std::fs::write(p, json).map_err(|e| AppError::Input(format!("{}: {e}", p.display())))?
        }
        None => {
            let _ = writeln!(io::stderr(), "{json}");
        }
    }
    let mut o = Out::stdout();
    o.line(format_args!(
        "lines={} records={} bytes={}",
        t.lines, t.records, t.bytes
    ))?;
    o.flush_now()
}
