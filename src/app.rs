//! Wires the stages together for each command and maps failures to exit codes.
//!
//! Exit codes (a contract): 0 success; 1 runtime failure; 2 bad usage or bad input (missing
//! file, bad zone, bad catalogue, unreadable lake, SQL error) — always with one line on stderr
//! naming what and where. A reader that closes stdout early (`| head`) is a success: every
//! command writes through [`out::Out`], and exits 0 quietly (see `out`).
//!
//! One file per command family (`parse`, `lake`, `migrate`, `query`, `report`, `control`,
//! `agent`, `dashboards`, `generate`, `demo`, `check_config`). The process's one tokio runtime
//! is built here, on first use (`Rt`), and handed down as a [`Handle`]; the commands block on
//! it from the main thread (or, for the agent in `demo`, from a thread of their own), never
//! from one of its workers.

mod agent;
mod check_config;
mod control;
mod dashboards;
mod demo;
mod follow;
mod generate;
mod lake;
mod migrate;
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

/// Why a command failed: its `Display` is the one line on stderr, [`AppError::exit_code`] the
/// process's status. The layers' errors are kept whole (with their `source` chains); each says
/// whether its kind is the input's fault (`is_input`).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad usage or bad input: exit 2.
    #[error("{0}")]
    Input(String),
    /// Something failed while working: exit 1.
    #[error("{0}")]
    Runtime(String),
    /// The agent (`run`, `demo`) or its configuration file.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// The control loops (`cull`, `capacity plan`).
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// The Datadog sink, or `dashboards push`.
    #[error(transparent)]
    Sink(#[from] crate::sinks::SinkError),
    /// `query`, and the report's reads of the lake.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// `report monthly`: the month or the pricing file.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// The reader of stdout went away (`| head`): the command stops, and it is a success.
    #[error("stdout closed")]
    StdoutClosed,
}

impl AppError {
    /// 2 for bad usage or input (the configuration, a file, the environment), 1 for a failure
    /// while working, 0 for a closed stdout.
    pub fn exit_code(&self) -> i32 {
        let input = match self {
            AppError::Input(_) => true,
            AppError::Runtime(_) => false,
            AppError::Agent(e) => e.is_input(),
            AppError::Control(e) => e.is_input(),
            AppError::Sink(e) => e.is_input(),
            // The SQL, the lake it names or a named query: the input. Writing the result: not.
            AppError::Query(e) => !matches!(e, crate::query::QueryError::Output(_)),
            // A month or a pricing file: the input.
            AppError::Report(_) => true,
            AppError::StdoutClosed => return 0,
        };
        if input { 2 } else { 1 }
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
        Command::Migrate { lake } => migrate::migrate_cmd(&lake_at(&lake)?),
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
        Command::Run(flags) => agent::run_cmd(rt.handle()?, flags),
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::path::PathBuf;

    use super::AppError;
    use crate::agent::AgentError;
    use crate::agent::config::AgentConfig;
    use crate::control::ControlError;
    use crate::lake::manifest::LakeError;
    use crate::sinks::SinkError;

    #[test]
    fn an_unreadable_config_is_exit_2_with_its_io_error_as_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml");
        let e = AppError::from(AgentConfig::load(&path).unwrap_err());
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().starts_with(&format!("{}: ", path.display())),
            "{e}"
        );
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_locked_lake_is_the_input_s_fault_and_a_failed_write_is_not() {
        let locked = AgentError::Lake(LakeError::Locked {
            path: PathBuf::from("/lake"),
        });
        assert_eq!(AppError::from(locked).exit_code(), 2);
        assert_eq!(
            AppError::from(AgentError::Lake(LakeError::WriterGone)).exit_code(),
            1
        );
        assert_eq!(AppError::from(AgentError::PipelinePanicked).exit_code(), 1);
    }

    #[test]
    fn dashboards_a_missing_directory_is_exit_2_a_refused_push_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let e =
            crate::sinks::datadog::dashboards::load(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(e, SinkError::DashboardsRead { .. }), "{e:?}");
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        assert_eq!(AppError::from(e).exit_code(), 2);
        let refused = SinkError::Push {
            file: "a.json".into(),
            title: "A".into(),
            source: Box::new(SinkError::Refused {
                method: reqwest::Method::PUT,
                path: "/api/v1/dashboard/x".into(),
                status: reqwest::StatusCode::FORBIDDEN,
                body: "no".into(),
            }),
        };
        assert_eq!(
            refused.to_string(),
            "a.json (A): PUT /api/v1/dashboard/x: 403 Forbidden: no"
        );
        assert_eq!(AppError::from(refused).exit_code(), 1);
    }

    #[test]
    fn a_missing_token_is_exit_2_and_names_the_variable_only() {
        let var = "HUBPULSE_TEST_TOKEN_NEVER_SET";
        let e = crate::control::config::read_token("hub token", None, var).unwrap_err();
        assert_eq!(e.to_string(), format!("hub token: {var} is not set"));
        assert_eq!(AppError::from(e).exit_code(), 2);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "  \n").unwrap();
        let e = crate::control::config::read_token("admission token", Some(&f), var).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("admission token: {}: empty token", f.display())
        );
        let api = ControlError::HubApi(crate::hub::HubError::Config("x".into()));
        assert_eq!(AppError::from(api).exit_code(), 1);
        assert_eq!(AppError::StdoutClosed.exit_code(), 0);
    }
}
