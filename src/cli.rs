//! Command-line definitions (clap only; behaviour lives in `app`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::query::Format;

/// `hubpulse --version`: the crate version and the git commit it was built from (`build.rs`;
/// `unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HUBPULSE_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "hubpulse",
    version = VERSION,
    about = "Makes a JupyterHub deployment observable and keeps it cheap."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ParseArgs {
    /// IANA time zone of the hub's and single-user servers' local timestamps.
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub tz: String,
    /// Replace the embedded message catalogue with the *.toml files in DIR.
    #[arg(long, value_name = "DIR")]
    pub parsers: Option<PathBuf>,
    /// Name of the hub, stored in every row (tells several hubs apart in one lake).
    #[arg(long, default_value = "jupyterhub", value_name = "NAME")]
    pub hub: String,
    /// Lines longer than this are kept truncated and flagged.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one JSON object per log record (JSON Lines); `-` reads stdin.
    Parse {
        #[command(flatten)]
        opts: ParseArgs,
        /// Print only one summary line per input (records, lines, unparsed, bytes, seconds, lines/s).
        #[arg(long)]
        summary: bool,
        /// Log files to read, in order; `-` reads stdin.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Append log files to the lake, exactly once, and print one summary line.
    Ingest {
        /// Lake root: a directory (created if missing) or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
        #[command(flatten)]
        opts: ParseArgs,
        /// Do not draw a progress bar even on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// Threads parsing each file (default: one per core, at most two; 1 parses on the thread
        /// that reads). Each one beyond the first adds about 20 MiB of memory.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        /// Log files to append (plain or rotated copies; each resumes where it was left).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Drop one hub's partitions older than N months, per table (what `[lake.retention]` does
    /// in a running agent). N keeps the current month and the N before it, whole.
    Retention {
        /// Lake root: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
        /// The hub whose partitions are dropped (other hubs in the lake are left alone).
        #[arg(long, default_value = "jupyterhub", value_name = "NAME")]
        hub: String,
        /// Months of `events` to keep before the current one.
        #[arg(long, value_name = "MONTHS", value_parser = clap::value_parser!(u32).range(1..=1200))]
        events: Option<u32>,
        /// Months of `decisions` to keep.
        #[arg(long, value_name = "MONTHS", value_parser = clap::value_parser!(u32).range(1..=1200))]
        decisions: Option<u32>,
        /// Months of `pods` to keep.
        #[arg(long, value_name = "MONTHS", value_parser = clap::value_parser!(u32).range(1..=1200))]
        pods: Option<u32>,
    },
    /// Convert a lake of format 1 or 2 (hubpulse before format 3) to format 3, in place.
    ///
    /// One commit per hub and day; safe to run again after a crash (days already converted are
    /// left alone). Stop the agents writing to the lake first.
    Migrate {
        /// Lake root: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
    },
    /// Run SQL over the lake with DataFusion.
    ///
    /// Tables: events (every log record), lifecycle (server start/stop records), activity
    /// (activity-POST times per user and day), sessions (server runs rebuilt from lifecycle,
    /// when the SQL names it), decisions (culler, quota, admission and capacity decisions),
    /// observations (what the hub's API said of each server), pods (single-user pod changes).
    /// decisions, observations and pods exist once the agent has written them.
    Query {
        /// Lake root: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
        /// Output: an aligned table, CSV with a header, or JSON Lines.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Read the SQL from a file.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["sql", "name"])]
        file: Option<PathBuf>,
        /// Run a named query from queries/ (e.g. daily_active_users).
        #[arg(long, value_name = "NAME", conflicts_with = "sql")]
        name: Option<String>,
        /// Directory of named queries (default: the copies embedded in the binary).
        #[arg(long, value_name = "DIR")]
        queries: Option<PathBuf>,
        /// The SQL text.
        #[arg(required_unless_present_any = ["file", "name"])]
        sql: Option<String>,
    },
    /// Reports for team leads and finance, from the lake.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Run the live agent: follow logs into the lake until SIGTERM/SIGINT.
    ///
    /// Either `--config FILE` (see hubpulse.example.toml) or the zero-config form
    /// `--lake DIR --follow PATH_OR_GLOB...` (`-` follows stdin).
    Run(RunArgs),
    /// Datadog dashboards (dashboards/*.json, embedded in the binary).
    Dashboards {
        #[command(subcommand)]
        action: DashboardsCmd,
    },
    /// Validate an agent configuration file; prints what the agent would do, or one error line
    /// `FILE:LINE:COL: key: why` (exit 2).
    CheckConfig {
        /// The agent's TOML configuration (see hubpulse.example.toml).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The main job on the bundled sample: the live agent follows it into a local lake, then
    /// named queries show what it says, and what to try next.
    Demo {
        /// Lake directory to create or reuse (a second run adds nothing: exactly once).
        #[arg(long, default_value = "hubpulse-lake", value_name = "DIR")]
        lake: PathBuf,
    },
    /// Write a large, realistic, deterministic hub log and the true counts it contains.
    Generate {
        /// Number of hub users.
        #[arg(long, default_value_t = 50, value_name = "N")]
        users: u32,
        /// Number of days, from --start.
        #[arg(long, default_value_t = 7, value_name = "N")]
        days: u32,
        /// First day of the log (UTC).
        #[arg(long, default_value = "2026-11-02", value_name = "YYYY-MM-DD")]
        start: chrono::NaiveDate,
        /// Random seed: the same seed and options write the same bytes.
        #[arg(long, default_value_t = 1, value_name = "N")]
        seed: u64,
        /// Single-user activity report interval (JupyterHub's default is 300 s).
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        activity_interval: u32,
        /// Where to write the log.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where to write the true counts as JSON.
        #[arg(long, value_name = "FILE")]
        truth: Option<PathBuf>,
    },
    /// One idle-culler pass against the hub, with the `[culler]` section of an agent config.
    ///
    /// Decisions rest on the hub's `last_activity` alone (no log stream), are printed one per
    /// line, and are recorded in the lake table `decisions`. `hubpulse run` culls continuously.
    Cull {
        /// The agent config: its [hub] and [culler] sections are used.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Make one pass and exit (required: the continuous culler is `hubpulse run`).
        #[arg(long, required = true)]
        once: bool,
        /// Decide and record, stop nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Capacity ahead of demand (Z2JH user placeholders).
    Capacity {
        #[command(subcommand)]
        action: CapacityCommand,
    },
    /// List the message kinds of the catalogue (embedded or --parsers DIR), validating it.
    Kinds {
        /// A catalogue directory of *.toml files instead of the embedded one.
        #[arg(long, value_name = "DIR")]
        parsers: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Cost and usage of one month: totals and breakdowns by user, group, profile and project,
    /// idle time, month-over-month change.
    Monthly {
        /// Lake root: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
        /// The month, YYYY-MM (UTC).
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Pricing file: profile prices, groups, projects (see examples/pricing.toml).
        /// Without it every profile costs 0.
        #[arg(long, value_name = "FILE")]
        pricing: Option<PathBuf>,
        /// html: one self-contained page; md: Markdown; csv: one row per breakdown line.
        #[arg(long, value_enum, default_value = "html")]
        format: crate::report::ReportFormat,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCmd {
    /// Create or update the dashboards through /api/v1/dashboard, idempotent by title
    /// (needs DD_API_KEY and DD_APP_KEY; DD_SITE picks the site).
    Push {
        /// Say what would be created or updated; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Push the *.json files of DIR instead of the embedded dashboards.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// API base URL instead of https://api.{site}.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CapacityCommand {
    /// Print the demand forecast from the lake and the placeholder decision it leads to. A dry
    /// run: reads no cluster and changes nothing (give what the cluster shows with --replicas,
    /// --running, --pending).
    Plan {
        /// Lake root: a directory or s3://bucket/prefix.
        #[arg(long, value_name = "DIR|URL")]
        lake: PathBuf,
        /// The agent config whose [capacity] section sets the policy (defaults otherwise).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Plan as of this time (RFC 3339, e.g. 2026-11-30T08:00:00Z; default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The placeholder StatefulSet's current replicas.
        #[arg(long, default_value_t = 0, value_name = "N")]
        replicas: i32,
        /// Single-user servers running now.
        #[arg(long, default_value_t = 0, value_name = "N")]
        running: u32,
        /// Single-user pods pending now.
        #[arg(long, default_value_t = 0, value_name = "N")]
        pending: u32,
    },
}

/// The flags of `hubpulse run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["lake", "follow"])]
    pub config: Option<PathBuf>,
    /// Lake root directory (zero-config form).
    #[arg(long, value_name = "DIR", requires = "follow")]
    pub lake: Option<PathBuf>,
    /// Files or glob patterns to follow; `-` is stdin (zero-config form).
    #[arg(long, value_name = "PATH_OR_GLOB", num_args = 1.., requires = "lake")]
    pub follow: Vec<String>,
    /// HTTP address for /healthz and /metrics (zero-config form; `off` to disable).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Commit at least this often (zero-config form), e.g. 10s.
    #[arg(long, value_name = "DURATION")]
    pub flush_interval: Option<String>,
    /// Time zone of local timestamps (zero-config form).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Hub name stored in every row (zero-config form).
    #[arg(long, value_name = "NAME")]
    pub hub: Option<String>,
    /// Write the Datadog payloads to FILE (JSON Lines) instead of sending them.
    #[arg(long, value_name = "FILE")]
    pub datadog_dry_run: Option<PathBuf>,
    /// Send Datadog payloads to this base URL instead of https://api.{site}.
    #[arg(long, value_name = "URL")]
    pub datadog_url: Option<String>,
}
