//! Wires the stages together for each command and maps failures to exit codes.
//!
//! Exit codes (a contract): 0 success; 1 runtime failure; 2 bad usage or bad input (missing
//! file, bad zone, bad catalogue, unreadable lake, SQL error) — always with one line on stderr
//! naming what and where. A reader that closes stdout early (`| head`) is a success: every
//! command writes through [`out::Out`], and exits 0 quietly (see `out`).

mod check_config;
mod demo;
mod follow;
pub mod out;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agent::AgentError;
use crate::agent::config::{AgentConfig, LogFormat};
use crate::cli::{Command, DashboardsCmd, ParseArgs};
use crate::ingest::{IngestOptions, ingest};
use crate::lake::LakeLocation;
use crate::lake::manifest::{FP_BYTES, LakeError, hash_prefix};
use crate::parse::Parser;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::Zone;
use crate::query::{self, Format, QueryError};
use out::Out;

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

/// Run one command. A closed stdout ends it early and counts as success.
pub fn run(cmd: Command) -> Result<(), AppError> {
    match dispatch(cmd) {
        Err(AppError::StdoutClosed) => Ok(()),
        r => r,
    }
}

fn dispatch(cmd: Command) -> Result<(), AppError> {
    match cmd {
        Command::Parse {
            opts,
            summary,
            files,
        } => parse_cmd(&opts, summary, &files),
        Command::Ingest {
            lake,
            opts,
            no_progress,
            threads,
            files,
        } => ingest_cmd(&lake_at(&lake)?, &opts, !no_progress, threads, &files),
        Command::Retention {
            lake,
            hub,
            events,
            decisions,
            pods,
        } => retention_cmd(
            &lake_at(&lake)?,
            &hub,
            crate::lake::retention::Retention {
                events,
                decisions,
                pods,
            },
        ),
        Command::Query {
            lake,
            format,
            file,
            name,
            queries,
            sql,
        } => {
            let sql = match (sql, file, name) {
                (Some(s), _, _) => s,
                (_, Some(f), _) => std::fs::read_to_string(&f)
                    .map_err(|e| AppError::Input(format!("{}: {e}", f.display())))?,
                (_, _, Some(n)) => query::named(&n, queries.as_deref()).map_err(AppError::Input)?,
                _ => return Err(AppError::Input("no SQL given".into())),
            };
            query_cmd(&lake_at(&lake)?, &sql, format)
        }
        Command::Report {
            report:
                crate::cli::ReportCommand::Monthly {
                    lake,
                    month,
                    pricing,
                    format,
                    out,
                },
        } => report_monthly(
            &lake_at(&lake)?,
            &month,
            pricing.as_deref(),
            format,
            out.as_deref(),
        ),
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
            let mut cfg = match (config, lake) {
                (Some(path), _) => AgentConfig::load(&path).map_err(AppError::Input)?,
                (None, Some(lake)) => {
                    let mut c =
                        AgentConfig::zero(lake_at(&lake)?, &follow).map_err(AppError::Input)?;
                    if let Some(h) = http {
                        c.http = match h.as_str() {
                            "off" => None,
                            a => Some(a.parse().map_err(|e| {
                                AppError::Input(format!("--http {a:?}: {e} (use ADDR:PORT or off)"))
                            })?),
                        };
                    }
                    if let Some(d) = flush_interval {
                        c.lake.flush_interval = crate::agent::config::parse_duration(&d)
                            .map_err(|e| AppError::Input(format!("--flush-interval: {e}")))?;
                    }
                    if let Some(z) = tz {
                        c.tz = Zone::parse_tz(&z)
                            .map_err(|e| AppError::Input(format!("--tz: {e}")))?;
                    }
                    if let Some(h) = hub {
                        c.hub = h;
                    }
                    c
                }
                (None, None) => {
                    return Err(AppError::Input(
                        "run: give --config FILE, or --lake DIR --follow PATH_OR_GLOB...".into(),
                    ));
                }
            };
            if let Some(u) = datadog_url {
                reqwest::Url::parse(&u)
                    .map_err(|e| AppError::Input(format!("--datadog-url {u:?}: {e}")))?;
                cfg.datadog.url = Some(u);
            }
            cfg.datadog.dry_run = datadog_dry_run;
            follow::check(&cfg.files)?;
            init_logging(&cfg);
            run_agent(cfg)
        }
        Command::Dashboards {
            action: DashboardsCmd::Push { dry_run, dir, url },
        } => dashboards_push(dir.as_deref(), url, dry_run),
        Command::CheckConfig { file } => {
            let cfg = AgentConfig::load(&file).map_err(AppError::Input)?;
            check_config::print(&file, &cfg)
        }
        Command::Demo { lake } => demo::demo(&lake),
        Command::Cull {
            config, dry_run, ..
        } => cull_cmd(&config, dry_run),
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
            generate_cmd(&cfg, &out, truth.as_deref())
        }
        Command::Capacity {
            action:
                crate::cli::CapacityCommand::Plan {
                    lake,
                    config,
                    at,
                    replicas,
                    running,
                    pending,
                },
        } => {
            let seen = crate::capacity::placeholder::Observed {
                current: replicas,
                running,
                pending,
            };
            capacity_plan(&lake_at(&lake)?, config.as_deref(), at.as_deref(), seen)
        }
        Command::Kinds { parsers } => {
            let cat = load_catalogue(parsers.as_deref())?;
            let mut out = Out::stdout();
            for (file, kind) in &cat.entries {
                out.line(format_args!("{kind}\t{file}"))?;
            }
            out.flush_now()
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

fn init_logging(cfg: &AgentConfig) {
    init_logging_with(&cfg.log_level, cfg.log_format);
}

fn load_catalogue(dir: Option<&Path>) -> Result<Catalogue, AppError> {
    let r = match dir {
        Some(d) => Catalogue::from_dir(d),
        None => Catalogue::embedded(),
    };
    r.map_err(|e| AppError::Input(format!("catalogue: {e}")))
}

struct Setup {
    catalogue: Arc<Catalogue>,
    zone: Zone,
    reader: ReaderConfig,
}

fn setup(opts: &ParseArgs) -> Result<Setup, AppError> {
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

fn check_inputs(files: &[PathBuf], allow_stdin: bool) -> Result<(), AppError> {
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

fn parse_cmd(opts: &ParseArgs, summary: bool, files: &[PathBuf]) -> Result<(), AppError> {
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
fn warn_if_unparsed(name: &str, records: u64, unparsed: u64) {
    if records > 0 && unparsed == records {
        out::warn(format_args!(
            "{name}: none of its {records} records is a log line hubpulse knows (100 % unparsed; kept as kind 'unparsed'); is it a JupyterHub, proxy or culler log?"
        ));
    }
}

/// The `--lake` argument, parsed once: a directory, or a well-formed `s3://bucket/prefix`.
fn lake_at(arg: &Path) -> Result<LakeLocation, AppError> {
    LakeLocation::from_path(arg).map_err(AppError::Input)
}

fn retention_cmd(
    lake: &LakeLocation,
    hub: &str,
    r: crate::lake::retention::Retention,
) -> Result<(), AppError> {
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

fn ingest_cmd(
    lake: &LakeLocation,
    opts: &ParseArgs,
    progress: bool,
    threads: Option<u16>,
    files: &[PathBuf],
) -> Result<(), AppError> {
    let s = setup(opts)?;
    if files.iter().any(|f| f.as_os_str() == "-") {
        return Err(AppError::Input(
            "-: ingest reads files (it resumes them by offset); pipe streams to `hubpulse parse -` instead".into(),
        ));
    }
    check_inputs(files, false)?;
    if let Some(dir) = lake.as_local() {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::Input(format!("{}: cannot create lake: {e}", dir.display())))?;
    }
    let iopts = IngestOptions {
        // `--threads 1` (the default on two cores) parses on the reading thread: a thread of
        // its own would only add hand-offs there, the encoder keeping the other core busy.
        // Beyond two, the writer thread bounds the rate, and each parsing thread adds about
        // 20 MiB of pieces in flight and allocator arena: two at most by default.
        workers: match threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).min(2)),
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
        | LakeError::Legacy { .. } => AppError::Input(e.to_string()),
        LakeError::Io { ref path, .. } if !lake.as_local().is_some_and(|d| path.starts_with(d)) => {
            AppError::Input(e.to_string())
        }
        e => AppError::Runtime(e.to_string()),
    })?;
    for f in &summary.by_file {
        warn_if_unparsed(&f.path.display().to_string(), f.records, f.unparsed);
    }
    let mut out = Out::stdout();
    out.line(&summary)?;
    out.flush_now()
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(format!("tokio: {e}")))
}

fn query_err(e: QueryError) -> AppError {
    match e {
        QueryError::Output(m) => AppError::Runtime(m),
        e => AppError::Input(e.to_string()),
    }
}

/// Whether the SQL may read the derived `sessions` table (built only when asked for: it
/// reads every lifecycle record of the lake).
fn mentions_sessions(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("sessions")
}

fn query_cmd(lake: &LakeLocation, sql: &str, format: Format) -> Result<(), AppError> {
    let batches = run_sql(lake, sql)?;
    let mut out = Out::stdout();
    query::render(&batches, format, &mut out).map_err(|e| out.error(e))?;
    out.flush_now()
}

/// One statement over the lake, collected.
fn run_sql(lake: &LakeLocation, sql: &str) -> Result<Vec<arrow::array::RecordBatch>, AppError> {
    let batches = runtime()?.block_on(async {
        let ctx = query::session(lake).await?;
        if mentions_sessions(sql) {
            crate::report::register_sessions(&ctx).await?;
        }
        query::run(&ctx, sql).await
    });
    batches.map_err(query_err)
}

/// `hubpulse capacity plan`: the forecast from the lake and the decision, printed; a dry run.
fn capacity_plan(
    lake: &LakeLocation,
    config: Option<&Path>,
    at: Option<&str>,
    seen: crate::capacity::placeholder::Observed,
) -> Result<(), AppError> {
    use crate::capacity::{forecast::ForecastPolicy, placeholder, plan, runner};
    let (fp, sets, default_profile) = match config {
        Some(path) => {
            let cfg = AgentConfig::load(path).map_err(AppError::Input)?;
            match cfg.capacity {
                Some(c) => (
                    c.forecast,
                    c.sets
                        .into_iter()
                        .map(|s| (s.target.name, s.policy))
                        .collect(),
                    c.default_profile,
                ),
                None => {
                    return Err(AppError::Input(format!(
                        "{}: no [capacity] section (or enabled = false)",
                        path.display()
                    )));
                }
            }
        }
        None => (
            ForecastPolicy::default(),
            vec![(
                "user-placeholder".to_string(),
                placeholder::PlaceholderPolicy::default(),
            )],
            "default".to_string(),
        ),
    };
    let now = match at {
        None => chrono::Utc::now(),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| AppError::Input(format!("--at {s:?}: {e} (use RFC 3339)")))?
            .with_timezone(&chrono::Utc),
    };
    let f = runtime()?
        .block_on(runner::forecast_from_lake(lake, &fp, &default_profile, now))
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let decisions: Vec<(String, placeholder::Decision)> = sets
        .into_iter()
        .map(|(name, mut pp)| {
            pp.dry_run = true;
            (name, placeholder::decide(now, &f, seen, &pp, None))
        })
        .collect();
    let Some((_, d)) = decisions.first() else {
        return Err(AppError::Input("no placeholder set".into()));
    };
    let mut text = plan::render(&f, fp.quantile, d);
    if decisions.len() > 1 {
        // one line per set (each with its profile's series, bounds and the same --replicas)
        text = plan::render_sets(&text, &decisions);
    }
    let mut out = Out::stdout();
    out.text(&text)?;
    out.flush_now()
}

fn report_monthly(
    lake: &LakeLocation,
    month: &str,
    pricing: Option<&Path>,
    format: crate::report::ReportFormat,
    out: Option<&Path>,
) -> Result<(), AppError> {
    use crate::report::{self, pricing::Pricing};
    let first = report::parse_month(month).map_err(AppError::Input)?;
    let pricing = match pricing {
        Some(p) => Pricing::load(p).map_err(AppError::Input)?,
        None => Pricing::default(),
    };
    let m = runtime()?
        .block_on(async {
            let ctx = query::session(lake).await?;
            report::monthly(&ctx, first, &pricing).await
        })
        .map_err(query_err)?;
    let text = report::render(&m, format);
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| AppError::Runtime(format!("{}: {e}", path.display()))),
        None => {
            let mut w = Out::stdout();
            w.text(&text)?;
            w.flush_now()
        }
    }
}

fn generate_cmd(
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

fn agent_err(e: AgentError) -> AppError {
    match e {
        AgentError::Config(m) => AppError::Input(m),
        AgentError::Runtime(m) => AppError::Runtime(m),
    }
}

/// `hubpulse run`: the agent with the Datadog sink as an observer; the sink finishes (sends
/// or spools what is left) after the pipeline has stopped.
fn run_agent(cfg: AgentConfig) -> Result<(), AppError> {
    let metrics = Arc::new(crate::agent::metrics::Metrics::default());
    let grace = (cfg.shutdown_deadline / 2).min(std::time::Duration::from_secs(5));
    let (obs, sink) = crate::datadog::sink::start(
        &cfg.datadog,
        &cfg.lake.path.state_dir(&cfg.hub),
        &metrics,
        grace,
    )
    .map_err(AppError::Input)?;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    follow::warn_when_ready(metrics.clone(), cfg.files.clone(), done.clone());
    let r = crate::agent::run_with(cfg, vec![obs], metrics, None);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sink.finish();
    r.map_err(agent_err)
}

/// `hubpulse dashboards push [--dry-run]`: one line per dashboard on stdout.
fn dashboards_push(dir: Option<&Path>, url: Option<String>, dry_run: bool) -> Result<(), AppError> {
    use crate::datadog::config::{ApiKey, DatadogConfig, api_base};
    use crate::datadog::dashboards::{Action, Client, load};
    let boards = load(dir).map_err(AppError::Input)?;
    let cfg = DatadogConfig {
        url,
        ..DatadogConfig::default()
    };
    let base = api_base(&cfg).map_err(AppError::Input)?;
    let keys = (
        ApiKey::from_env("DD_API_KEY"),
        ApiKey::from_env("DD_APP_KEY"),
    );
    let mut w = Out::stdout();
    let (Some(api), Some(app)) = keys else {
        if dry_run {
            for b in &boards {
                w.line(format_args!(
                    "would push {:?} ({}); DD_API_KEY/DD_APP_KEY unset, so not compared with {base}",
                    b.title, b.file
                ))?;
            }
            return w.flush_now();
        }
        return Err(AppError::Input(
            "dashboards push: set DD_API_KEY and DD_APP_KEY (an application key with dashboards_write)".into(),
        ));
    };
    let client = Client::new(&base, &api, &app).map_err(AppError::Input)?;
    let out = runtime()?
        .block_on(client.push(&boards, dry_run))
        .map_err(AppError::Runtime)?;
    for o in out {
        let verb = match (&o.action, dry_run) {
            (Action::Create, true) => "would create",
            (Action::Update { .. }, true) => "would update",
            (Action::Create, false) => "created",
            (Action::Update { .. }, false) => "updated",
        };
        let id = o.id.as_deref().unwrap_or("-");
        w.line(format_args!(
            "{verb} {:?} id={id}{}",
            o.title,
            o.url.map(|u| format!(" {u}")).unwrap_or_default()
        ))?;
    }
    w.flush_now()
}

/// `hubpulse cull --once [--dry-run]`: one pass, a line per decision, a summary line.
fn cull_cmd(config: &Path, dry_run: bool) -> Result<(), AppError> {
    use crate::control::{decisions::DecisionSink, metrics::ControlStats, runner::Culler};
    let cfg = AgentConfig::load(config).map_err(AppError::Input)?;
    let Some(mut policy) = cfg.control.culler.clone() else {
        return Err(AppError::Input(format!(
            "{}: no enabled [culler] section",
            config.display()
        )));
    };
    policy.dry_run |= dry_run;
    let client = crate::control::hub_client(
        cfg.control.hub.as_ref(),
        policy.concurrency,
        policy.page_size,
    )
    .map_err(AppError::Input)?;
    let sink = DecisionSink::new(&cfg.lake.path, &cfg.hub);
    let mut culler = Culler::new(
        client,
        Arc::new(policy),
        Some(sink),
        Arc::new(ControlStats::default()),
        None,
    );
    let report = runtime()?
        .block_on(culler.reconcile("once"))
        .map_err(|e| AppError::Runtime(format!("hub API: {e}")))?;
    let mut out = Out::stdout();
    let mut counts = std::collections::BTreeMap::new();
    for r in &report.rows {
        let d = &r.decision;
        *counts.entry(d.action.label()).or_insert(0) += 1;
        out.line(format_args!(
            "{}\t{}\t{}\t{}",
            d.action.label(),
            d.reason.label(),
            d.log_name(),
            r.outcome.unwrap_or("-")
        ))?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.line(format_args!("kept={} {}", report.kept, summary.join(" ")))?;
    out.flush_now()
}
