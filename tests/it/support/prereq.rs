//! The external programs the tests start, one function per prerequisite. `scripts/test.sh`
//! installs them all; a plain `cargo test` without them fails here, once per test that needs
//! one, with a message naming what is missing and the command that installs it (never a skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default())
}

/// `$var`, else `$HOME/<default>`.
fn dir_from(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(default))
}

/// Fails the test: `what` is missing, `install` installs it.
fn missing(what: &str, detail: &str, install: &str) -> ! {
    panic!(
        "missing test prerequisite: {what} ({detail}).\n\
         Install it with `{install}`, or run every test through `scripts/test.sh`, which \
         installs all of them."
    )
}

/// `exe` must exist and be executable.
fn require_file(what: &str, exe: &Path, install: &str) {
    if !exe.is_file() {
        missing(what, &format!("{} not found", exe.display()), install);
    }
}

/// `python` must import every module of `modules`; checked once per prerequisite (`cache`).
fn require_modules(
    cache: &OnceLock<Result<(), String>>,
    what: &str,
    python: &Path,
    modules: &[&str],
    install: &str,
) {
    let checked = cache.get_or_init(|| {
        if !python.is_file() {
            return Err(format!("{} not found", python.display()));
        }
        let script = modules
            .iter()
            .map(|m| format!("import {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        let out = Command::new(python)
            .args(["-c", &script])
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "{} cannot import {}: {}",
                python.display(),
                modules.join(", "),
                err.trim().lines().last().unwrap_or("")
            ))
        }
    });
    if let Err(detail) = checked {
        missing(what, detail, install);
    }
}

/// The Python of the real-JupyterHub harness venv (`tests/support/harness/setup.sh`; JupyterHub
/// 6.1.1 + configurable-http-proxy; `HUBPULSE_JH_DIR` moves it).
pub fn harness_python() -> PathBuf {
    const INSTALL: &str = "bash tests/support/harness/setup.sh";
    const WHAT: &str = "the real-JupyterHub harness venv";
    let dir = dir_from("HUBPULSE_JH_DIR", ".cache/hubpulse-jh");
    let py = dir.join("venv/bin/python");
    require_file(WHAT, &py, INSTALL);
    require_file(WHAT, &dir.join("venv/bin/jupyterhub"), INSTALL);
    let proxy = dir.join("node/node_modules/.bin/configurable-http-proxy");
    require_file("configurable-http-proxy (npm)", &proxy, INSTALL);
    py
}

/// The readers' venv (`bench/setup.sh`: DuckDB + pyarrow): `HUBPULSE_PYTHON`, else
/// `$HUBPULSE_BENCH_DIR/venv` (default `~/.cache/hubpulse-bench/venv`).
fn bench_venv_python() -> PathBuf {
    std::env::var_os("HUBPULSE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dir_from("HUBPULSE_BENCH_DIR", ".cache/hubpulse-bench").join("venv/bin/python")
        })
}

/// The Python with DuckDB and pyarrow, the independent lake readers (`bench/setup.sh`).
pub fn python() -> String {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let py = bench_venv_python();
    require_modules(
        &OK,
        "the lake readers' Python venv (DuckDB + pyarrow; HUBPULSE_PYTHON)",
        &py,
        &["duckdb", "pyarrow"],
        "bash bench/setup.sh",
    );
    py.display().to_string()
}

/// [`python`] with jsonschema, PyYAML and zstandard too: the Datadog test intake
/// (`tests/support/dd_intake.py`) and the Z2JH values check.
pub fn dd_intake_python() -> String {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let py = python();
    require_modules(
        &OK,
        "the Datadog test intake's packages (jsonschema, PyYAML, zstandard)",
        Path::new(&py),
        &["jsonschema", "yaml", "zstandard"],
        "bash tests/support/dd_intake_setup.sh",
    );
    py
}

/// [`python`] with s3fs too: the object-storage lake read back by an independent client.
pub fn s3fs_python() -> String {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let py = python();
    require_modules(
        &OK,
        "s3fs in the lake readers' venv",
        Path::new(&py),
        &["s3fs"],
        "bash tests/support/s3_setup.sh",
    );
    py
}

/// moto's S3-compatible server (`tests/support/s3_setup.sh`; `HUBPULSE_MOTO`).
pub fn moto_server() -> PathBuf {
    let exe = std::env::var_os("HUBPULSE_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dir_from("HUBPULSE_S3_DIR", ".cache/hubpulse-s3").join("venv/bin/moto_server")
        });
    require_file("moto's S3 server", &exe, "bash tests/support/s3_setup.sh");
    exe
}

/// The Python with pyspark, and Java for it (`tests/support/spark_setup.sh`;
/// `HUBPULSE_SPARK_PYTHON`).
pub fn spark_python() -> String {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let py = std::env::var_os("HUBPULSE_SPARK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dir_from("HUBPULSE_SPARK_DIR", ".cache/hubpulse-spark").join("venv/bin/python")
        });
    const INSTALL: &str = "bash tests/support/spark_setup.sh";
    require_modules(&OK, "pyspark's venv", &py, &["pyspark"], INSTALL);
    if Command::new("java").arg("-version").output().is_err() {
        missing("Java for Spark", "`java` not on PATH", INSTALL);
    }
    py.display().to_string()
}

/// The directory whose `node_modules` holds playwright-core, with node and Debian's chromium
/// on PATH (`tests/support/browser_setup.sh`; `HUBPULSE_BROWSER_DIR`).
pub fn browser_dir() -> PathBuf {
    const INSTALL: &str = "bash tests/support/browser_setup.sh";
    let dir = dir_from("HUBPULSE_BROWSER_DIR", ".cache/hubpulse-browser");
    for exe in ["node", "chromium"] {
        if Command::new(exe).arg("--version").output().is_err() {
            missing(
                "the HTML report's browser check",
                &format!("`{exe}` not on PATH"),
                INSTALL,
            );
        }
    }
    let pw = dir.join("node_modules/playwright-core/package.json");
    require_file("playwright-core (npm)", &pw, INSTALL);
    dir
}
