//! Wires the stages together for each command and maps failures to exit codes.
//!
//! Exit codes (a contract): 0 success; 1 runtime failure; 2 bad usage or bad input (missing
//! file, bad zone, bad catalogue, unreadable lake, SQL error) — always with one line on stderr
//! naming what and where.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agent::AgentError;
use crate::agent::config::{AgentConfig, LogFormat};
use crate::cli::{Command, DashboardsCmd, ParseArgs};
use crate::ingest::{IngestOptions, ingest};
use crate::lake::manifest::{FP_BYTES, LakeError, hash_prefix};
use crate::parse::Parser;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::Zone;
use crate::query::{self, Format, QueryError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad usage or bad input: exit 2.
    #[error("{0}")]
    Input(String),
    /// Something failed while working: exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Input(_) => 2,
            AppError::Runtime(_) => 1,
        }
    }
}

/// The sample log bundled into the binary for `hubpulse demo`.
const SAMPLE_LOG: &str = include_str!("../fixtures/logs/real/hub-only/hub.log");

pub fn run(cmd: Command) -> Result<(), AppError> {
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
        } => ingest_cmd(&lake, &opts, !no_progress, threads, &files),
        Command::Retention {
            lake,
            hub,
            events,
            decisions,
            pods,
        } => retention_cmd(
            &lake,
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
            query_cmd(&lake, &sql, format)
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
        } => report_monthly(&lake, &month, pricing.as_deref(), format, out.as_deref()),
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
                    let mut c = AgentConfig::zero(lake, &follow).map_err(AppError::Input)?;
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
                        Zone::parse(&z).map_err(|e| AppError::Input(format!("--tz: {e}")))?;
                        c.tz = z;
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
            init_logging(&cfg);
            run_agent(cfg)
        }
        Command::Dashboards {
            action: DashboardsCmd::Push { dry_run, dir, url },
        } => dashboards_push(dir.as_deref(), url, dry_run),
        Command::CheckConfig { file } => {
            let cfg = AgentConfig::load(&file).map_err(AppError::Input)?;
            println!("{}: ok", file.display());
            if let Some(c) = &cfg.control.culler {
                println!("{}.", c.summary());
            }
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Demo { lake } => demo(&lake),
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
            capacity_plan(&lake, config.as_deref(), at.as_deref(), seen)
        }
        Command::Kinds { parsers } => {
            let cat = load_catalogue(parsers.as_deref())?;
            let mut out = io::stdout().lock();
            for (file, kind) in &cat.entries {
                let _ = writeln!(out, "{kind}\t{file}");
            }
            Ok(())
        }
    }
}

/// Logging for every command: `HUBPULSE_LOG` (an env-filter) wins over the configured level.
pub fn init_logging_with(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBPULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
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
            return output_error(e);
        }
        r.map_err(|e| AppError::Runtime(format!("{name}: {e}")))?;
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
            out.write_all(line.as_bytes()).or_else(output_error)?;
        }
    }
    out.flush().or_else(output_error)
}

/// A closed stdout (`hubpulse parse … | head`) is a normal end, not a failure.
fn output_error(e: io::Error) -> Result<(), AppError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(AppError::Runtime(format!("stdout: {e}")))
    }
}

fn retention_cmd(
    lake: &Path,
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
    let dropped = crate::lake::retention::apply(&mut m, lake, &r, today)
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    for (table, dt) in &dropped.partitions {
        println!("dropped {table}/hub={hub}/dt={dt}");
    }
    eprintln!("retention: {} partitions dropped", dropped.partitions.len());
    Ok(())
}

fn ingest_cmd(
    lake: &Path,
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
    if !crate::lake::store::Location::of(lake).is_remote() {
        std::fs::create_dir_all(lake)
            .map_err(|e| AppError::Input(format!("{}: cannot create lake: {e}", lake.display())))?;
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
        LakeError::Io { ref path, .. } if !path.starts_with(lake) => AppError::Input(e.to_string()),
        e => AppError::Runtime(e.to_string()),
    })?;
    println!("{summary}");
    Ok(())
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

fn query_cmd(lake: &Path, sql: &str, format: Format) -> Result<(), AppError> {
    let batches = runtime()?.block_on(async {
        let ctx = query::session(lake).await?;
        if mentions_sessions(sql) {
            crate::report::register_sessions(&ctx).await?;
        }
        query::run(&ctx, sql).await
    });
    let batches = batches.map_err(query_err)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    query::render(&batches, format, &mut out).map_err(query_err)?;
    out.flush().or_else(output_error)
}

/// `hubpulse capacity plan`: the forecast from the lake and the decision, printed; a dry run.
fn capacity_plan(
    lake: &Path,
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
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    w.write_all(text.as_bytes()).or_else(output_error)?;
    w.flush().or_else(output_error)
}

fn report_monthly(
    lake: &Path,
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
            let stdout = io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            w.write_all(text.as_bytes()).or_else(output_error)?;
            w.flush().or_else(output_error)
        }
    }
}

/// The README's main job: the live agent follows the bundled sample log while it is being
/// written (as a hub would write it), the lake fills commit by commit, then named queries run.
fn demo(lake: &Path) -> Result<(), AppError> {
    use std::sync::atomic::Ordering;
    let sample_dir = lake.join("_hubpulse").join("sample");
    std::fs::create_dir_all(&sample_dir)
        .map_err(|e| AppError::Input(format!("{}: {e}", sample_dir.display())))?;
    let sample = sample_dir.join("hub.log");
    let mut cfg = AgentConfig::zero(lake.to_path_buf(), &[sample.display().to_string()])
        .map_err(AppError::Input)?;
    cfg.hub = "sample-hub".into();
    cfg.http = None;
    cfg.lake.flush_interval = std::time::Duration::from_millis(500);
    let metrics = Arc::new(crate::agent::metrics::Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    println!(
        "# hubpulse run --lake {} --follow {}   (the live agent, on the bundled sample log)",
        lake.display(),
        sample.display()
    );
    let m = metrics.clone();
    let agent =
        std::thread::spawn(move || crate::agent::run_with(cfg, Vec::new(), m, Some(stop_rx)));
    // Write the sample the way a hub writes its log: a slice at a time.
    let fresh = !sample.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sample)
        .map_err(|e| AppError::Runtime(format!("{}: {e}", sample.display())))?;
    let lines: Vec<&str> = SAMPLE_LOG.split_inclusive('\n').collect();
    let total_lines = lines.len() as u64;
    let wait = |what: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !what() && t.elapsed() < std::time::Duration::from_secs(20) && !agent.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    if fresh {
        // Five slices, each ending where a record ends (as a hub writes whole records).
        let target = lines.len().div_ceil(5);
        let mut chunks: Vec<String> = vec![String::new()];
        let mut in_chunk = 0;
        for l in &lines {
            if in_chunk >= target && crate::parse::prefix::starts_record(l.as_bytes()) {
                chunks.push(String::new());
                in_chunk = 0;
            }
            if let Some(c) = chunks.last_mut() {
                c.push_str(l);
            }
            in_chunk += 1;
        }
        for chunk in &chunks {
            f.write_all(chunk.as_bytes())
                .map_err(|e| AppError::Runtime(format!("{}: {e}", sample.display())))?;
            let before = metrics.commits.load(Ordering::Relaxed);
            wait(&|| metrics.commits.load(Ordering::Relaxed) > before);
            println!(
                "  lake: {:>5} rows in {:>2} commits (parsed {} records)",
                metrics.rows_published.load(Ordering::Relaxed),
                metrics.commits.load(Ordering::Relaxed),
                metrics.records.load(Ordering::Relaxed)
            );
        }
        wait(&|| {
            metrics.lines.load(Ordering::Relaxed) >= total_lines
                && metrics.rows_published.load(Ordering::Relaxed)
                    == metrics.records.load(Ordering::Relaxed)
        });
    } else {
        println!(
            "  (sample already followed into this lake: the agent resumes at its checkpoint and adds nothing)"
        );
        wait(&|| metrics.ready());
    }
    let _ = stop_tx.send(true);
    match agent.join() {
        Ok(r) => r.map_err(|e| match e {
            AgentError::Config(m) => AppError::Input(m),
            AgentError::Runtime(m) => AppError::Runtime(m),
        })?,
        Err(_) => return Err(AppError::Runtime("agent thread panicked".into())),
    }
    println!(
        "  lake: {} rows committed in this run; agent stopped cleanly",
        metrics.rows_published.load(Ordering::Relaxed)
    );
    for name in [
        "daily_active_users",
        "spawn_duration_percentiles",
        "request_errors_by_route",
        "failed_spawns",
    ] {
        println!("\n# hubpulse query --lake {} --name {name}", lake.display());
        let sql = query::named(name, None).map_err(AppError::Input)?;
        query_cmd(lake, &sql, Format::Table)?;
    }
    Ok(())
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
        None => eprintln!("{json}"),
    }
    println!("lines={} records={} bytes={}", t.lines, t.records, t.bytes);
    Ok(())
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
        &crate::lake::store::state_dir(&cfg.lake.path, &cfg.hub),
        &metrics,
        grace,
    )
    .map_err(AppError::Input)?;
    let r = crate::agent::run_with(cfg, vec![obs], metrics, None);
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
    let (Some(api), Some(app)) = keys else {
        if dry_run {
            for b in &boards {
                println!(
                    "would push {:?} ({}); DD_API_KEY/DD_APP_KEY unset, so not compared with {base}",
                    b.title, b.file
                );
            }
            return Ok(());
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
        println!(
            "{verb} {:?} id={id}{}",
            o.title,
            o.url.map(|u| format!(" {u}")).unwrap_or_default()
        );
    }
    Ok(())
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
    let mut out = io::stdout().lock();
    let mut counts = std::collections::BTreeMap::new();
    for r in &report.rows {
        let d = &r.decision;
        *counts.entry(d.action.label()).or_insert(0) += 1;
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}",
            d.action.label(),
            d.reason.label(),
            d.log_name(),
            r.outcome.unwrap_or("-")
        );
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "kept={} {}", report.kept, summary.join(" "));
    Ok(())
}
