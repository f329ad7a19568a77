//! Wires the stages together for each command and maps failures to exit codes.
//!
//! Exit codes (a contract): 0 success; 1 runtime failure; 2 bad usage or bad input (missing
//! file, bad zone, bad catalogue, unreadable lake, SQL error) — always with one line on stderr
//! naming what and where. A reader that closes stdout early (`| head`) is a success: every
//! command writes through [`out::Out`], and exits 0 quietly (see `out`).
//!
//! One file per command family (`parse`, `lake`, `query`, `report`, `control`, `agent`,
//! `dashboards`, `generate`, `demo`, `check_config`). The process's one tokio runtime is built
//! here, on first use (`Rt`), and handed down as a [`Handle`]; the commands block on it from
//! the main thread (or, for the agent in `demo`, from a thread of their own), never from one
//! of its workers.

mod agent;
mod check_config;
mod control;
mod dashboards;
mod demo;
mod follow;
mod generate;
mod lake;
pub mod out;
mod parse;
mod query;
mod report;

use std::cell::OnceCell;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::agent::config::LogFormat;
use crate::cli::{CapacityCommand, Command, DashboardsCmd, ReportCommand};
use crate::control::capacity::placeholder::Observed;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad usage or bad input: exit 2.
    #[error("{0}")]
    Input(String),
    /// Something failed while working: exit 1.
    #[error("{0}")]
    Runtime(String),
    /// The reader of stdout went away (`| head`): the command stops, and it is a success.
    #[error("stdout closed")]
    StdoutClosed,
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Input(_) => 2,
            AppError::Runtime(_) => 1,
            AppError::StdoutClosed => 0,
        }
    }
}

/// The process's tokio runtime, built when a command first needs it (`parse` and `ingest`
/// need none), and shut down when the command is over.
struct Rt(OnceCell<Runtime>);

impl Rt {
    fn handle(&self) -> Result<&Handle, AppError> {
        if self.0.get().is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| AppError::Runtime(format!("tokio: {e}")))?;
            let _ = self.0.set(rt);
        }
        Ok(self.0.get().expect("built above").handle())
    }

    /// Tasks still running are dropped; blocking work (a DNS lookup, a file read) is given
    /// half a second.
    fn shutdown(self) {
        if let Some(rt) = self.0.into_inner() {
            rt.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

/// Run one command. A closed stdout ends it early and counts as success.
pub fn run(cmd: Command) -> Result<(), AppError> {
    let rt = Rt(OnceCell::new());
    let r = dispatch(&rt, cmd);
    rt.shutdown();
    match r {
        Err(AppError::StdoutClosed) => Ok(()),
        r => r,
    }
}

fn dispatch(rt: &Rt, cmd: Command) -> Result<(), AppError> {
    match cmd {
        Command::Parse {
            opts,
            summary,
            files,
        } => parse::parse_cmd(&opts, summary, &files),
        Command::Kinds { parsers } => parse::kinds(parsers.as_deref()),
        Command::Ingest {
            lake,
            opts,
            no_progress,
            threads,
            files,
        } => lake::ingest_cmd(&lake_at(&lake)?, &opts, !no_progress, threads, &files),
        Command::Retention {
            lake,
            hub,
            events,
            decisions,
            pods,
        } => lake::retention_cmd(&lake_at(&lake)?, &hub, events, decisions, pods),
        Command::Query {
            lake,
            format,
            file,
            name,
            queries,
            sql,
        } => {
            let sql = query::sql_of(sql, file, name, queries.as_deref())?;
            query::query_cmd(rt.handle()?, &lake_at(&lake)?, &sql, format)
        }
        Command::Report {
            report:
                ReportCommand::Monthly {
                    lake,
                    month,
                    pricing,
                    format,
                    out,
                },
        } => report::report_monthly(rt.handle()?, &lake_at(&lake)?, &month, pricing, format, out),
        Command::Run {
            config,
            lake,
            follow,
            http,
            flush_interval,
            tz,
            hub,
            datadog_dry_run,
            datadog_url,
        } => {
            let flags = agent::RunFlags {
                config,
                lake,
                follow,
                http,
                flush_interval,
                tz,
                hub,
                datadog_dry_run,
                datadog_url,
            };
            agent::run_cmd(rt.handle()?, flags)
        }
        Command::Dashboards {
            action: DashboardsCmd::Push { dry_run, dir, url },
        } => dashboards::dashboards_push(rt.handle()?, dir.as_deref(), url, dry_run),
        Command::CheckConfig { file } => check_config::check_config(&file),
        Command::Demo { lake } => demo::demo(rt.handle()?, &lake),
        Command::Cull {
            config, dry_run, ..
        } => control::cull_cmd(rt.handle()?, &config, dry_run),
        Command::Generate {
            users,
            days,
            start,
            seed,
            activity_interval,
            out,
            truth,
        } => {
            let cfg = crate::generate::GenConfig {
                users,
                days,
                start,
                seed,
                activity_interval_secs: activity_interval,
            };
            generate::generate_cmd(&cfg, &out, truth.as_deref())
        }
        Command::Capacity {
            action:
                CapacityCommand::Plan {
                    lake,
                    config,
                    at,
                    replicas,
                    running,
                    pending,
                },
        } => {
            let seen = Observed {
                current: replicas,
                running,
                pending,
            };
            let handle = rt.handle()?;
            control::capacity_plan(
                handle,
                &lake_at(&lake)?,
                config.as_deref(),
                at.as_deref(),
                seen,
            )
        }
    }
}

/// Logging for every command: `HUBPULSE_LOG` (an env-filter) wins over the configured level.
pub fn init_logging_with(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBPULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    // A log line that cannot be written (stderr closed) is dropped: the default reports it
    // with `eprintln!`, which panics on that same closed stderr.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// A `--lake` argument, parsed once: a directory, or a well-formed `s3://bucket/prefix`.
pub(crate) fn lake_at(arg: &std::path::Path) -> Result<crate::lake::LakeLocation, AppError> {
    crate::lake::LakeLocation::from_path(arg).map_err(|e| AppError::Input(e.to_string()))
}
