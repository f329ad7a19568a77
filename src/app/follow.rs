//! What `hubpulse run` says about the files it is told to follow, before it starts.
//!
//! The tailer treats every `include` as a glob and re-evaluates it every `glob_interval`, so a
//! pattern that matches nothing just waits, silently. Guarantees, checked once at start:
//! * a plain path (no `*`, `?` or `[`) that does not exist, is a directory or is not a regular
//!   file is refused (exit 2, one line naming it and saying what to give instead): it can only
//!   mean a typo, and waiting for it would look like a hang;
//! * a glob that matches no file yet is accepted, with one warning, once the agent is up (so
//!   that a bad lake is still the only error line), saying that the agent waits for a file to
//!   appear (a hub that has not written its log yet is normal).

use std::path::Path;
use std::sync::Arc;

use crate::agent::config::FileSourceConfig;
use crate::stream::metrics::Metrics;

use super::AppError;

/// `Err` for a plain path that cannot be followed.
pub fn check(files: &[FileSourceConfig]) -> Result<(), AppError> {
    for f in files {
        for pat in &f.include {
            if is_glob(pat) {
                continue;
            }
            let p = Path::new(pat);
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            let example = dir.map_or("*.log".to_string(), |d| format!("{}/*.log", d.display()));
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(AppError::Input(format!(
                        "follow {pat:?}: no such file (to wait for a file that does not exist yet, give a glob that will match it, e.g. {example:?})"
                    )));
                }
                Err(e) => return Err(AppError::Input(format!("follow {pat:?}: {e}"))),
                Ok(m) if m.is_dir() => {
                    return Err(AppError::Input(format!(
                        "follow {pat:?}: is a directory; follow the files in it with a glob, e.g. \"{}/*.log\"",
                        pat.trim_end_matches('/')
                    )));
                }
                Ok(m) if !m.is_file() => {
                    return Err(AppError::Input(format!(
                        "follow {pat:?}: not a regular file (to follow a stream, pipe it: --follow -)"
                    )));
                }
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

/// One warning per glob that matches no file now.
pub fn unmatched(files: &[FileSourceConfig]) -> Vec<String> {
    let mut warnings = Vec::new();
    for f in files {
        for pat in f.include.iter().filter(|p| is_glob(p)) {
            if !matches_a_file(pat) {
                warnings.push(format!(
                    "follow {pat:?}: no file matches yet; waiting for one to appear (looked for every {} ms)",
                    f.glob_interval.as_millis()
                ));
            }
        }
    }
    warnings
}

/// Logs [`unmatched`]'s warnings once the agent is ready (its lake open, its sources attached),
/// on a thread of its own that ends then or when `done` is cancelled (the agent stopped first).
pub fn warn_when_ready(
    metrics: Arc<Metrics>,
    files: Vec<FileSourceConfig>,
    done: tokio_util::sync::CancellationToken,
) {
    if !files.iter().flat_map(|f| &f.include).any(|p| is_glob(p)) {
        return;
    }
    std::thread::spawn(move || {
        while !done.is_cancelled() {
            if metrics.ready() {
                for w in unmatched(&files) {
                    tracing::warn!("{w}");
                }
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

/// Whether `pat` has glob syntax (`glob::Pattern`'s metacharacters).
fn is_glob(pat: &str) -> bool {
    pat.contains(['*', '?', '['])
}

fn matches_a_file(pat: &str) -> bool {
    glob::glob(pat).is_ok_and(|paths| paths.flatten().any(|p| p.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(include: &[&str]) -> Vec<FileSourceConfig> {
        vec![FileSourceConfig {
            include: include.iter().map(|s| s.to_string()).collect(),
            ..FileSourceConfig::default()
        }]
    }

    #[test]
    fn plain_paths_must_be_files_and_globs_may_wait() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let file = dir.path().join("hub.log");
        std::fs::write(&file, "x\n").unwrap();
        check(&cfg(&[&file.display().to_string()])).unwrap();
        let e = check(&cfg(&[&format!("{d}/nope.log")])).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        assert!(e.to_string().contains(&format!("{d}/*.log")), "{e}");
        let e = check(&cfg(&[&d])).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        check(&cfg(&[&format!("{d}/*.txt")])).unwrap();
        assert_eq!(unmatched(&cfg(&[&format!("{d}/*.log")])).len(), 0);
        let w = unmatched(&cfg(&[&format!("{d}/*.txt")]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("no file matches yet"), "{w:?}");
    }
}
