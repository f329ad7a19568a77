//! `hubpulse demo`: the README's main job on the bundled sample log.
//!
//! The live agent follows the sample while it is being written (as a hub would write it), the
//! lake fills commit by commit, named queries run, and the demo ends with what to try next
//! (a report for the sample's month, the dashboards, the agent with a config). A second run on
//! the same lake adds nothing (the agent resumes at its checkpoint). Output goes through
//! [`Out`]: a reader that stops early (`hubpulse demo | head`) ends it quietly with exit 0,
//! the agent stopped in order first.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::agent::config::AgentConfig;
use crate::query::{self, Format};
use crate::stream::metrics::Metrics;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::AppError;
use super::out::Out;

/// The sample log bundled into the binary for `hubpulse demo`.
const SAMPLE_LOG: &str = include_str!("../../fixtures/logs/real/hub-only/hub.log");

const QUERIES: [&str; 4] = [
    "daily_active_users",
    "spawn_duration_percentiles",
    "request_errors_by_route",
    "failed_spawns",
];

pub fn demo(rt: &Handle, lake: &Path) -> Result<(), AppError> {
    let sample_dir = lake.join("_hubpulse").join("sample");
    std::fs::create_dir_all(&sample_dir)
        .map_err(|e| AppError::Input(format!("{}: {e}", sample_dir.display())))?;
    let sample = sample_dir.join("hub.log");
    let location = crate::lake::LakeLocation::local(lake);
    let mut cfg = AgentConfig::zero(location.clone(), &[sample.display().to_string()])?;
    cfg.hub = "sample-hub".into();
    cfg.http = None;
    cfg.lake.flush_interval = Duration::from_millis(500);
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let mut out = Out::stdout();
    out.line(format_args!(
        "# hubpulse run --lake {} --follow {}   (the live agent, on the bundled sample log)",
        lake.display(),
        sample.display()
    ))?;
    let (m, sd, h) = (metrics.clone(), shutdown.clone(), rt.clone());
    // The agent blocks on the runtime: from a thread of its own, outside the runtime.
    let agent = std::thread::spawn(move || crate::agent::run_with(&h, cfg, Vec::new(), m, sd));
    let fed = feed(&sample, &metrics, &agent, &mut out);
    // The agent is stopped in order (flush, commit) whatever happened while feeding it.
    shutdown.cancel();
    let stopped = match agent.join() {
        Ok(r) => r.map_err(AppError::from),
        Err(_) => Err(AppError::Runtime("agent thread panicked".into())),
    };
    fed?;
    stopped?;
    out.line(format_args!(
        "  lake: {} rows committed in this run; agent stopped cleanly",
        metrics.rows_published.load(Ordering::Relaxed)
    ))?;
    for name in QUERIES {
        out.line(format_args!(
            "\n# hubpulse query --lake {} --name {name}",
            lake.display()
        ))?;
        let sql = query::named(name, None)?;
        let batches = super::query::run_sql(rt, &location, &sql)?;
        query::render(&batches, Format::Table, &mut out).map_err(|e| out.error(e))?;
    }
    next_steps(lake, &mut out)?;
    out.flush_now()
}

/// Write the sample the way a hub writes its log, a slice at a time, waiting for each commit.
fn feed(
    sample: &Path,
    metrics: &Metrics,
    agent: &std::thread::JoinHandle<Result<(), crate::agent::AgentError>>,
    out: &mut Out,
) -> Result<(), AppError> {
    let fresh = !sample.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sample)
        .map_err(|e| AppError::Runtime(format!("{}: {e}", sample.display())))?;
    let lines: Vec<&str> = SAMPLE_LOG.split_inclusive('\n').collect();
    let total_lines = lines.len() as u64;
    let wait = |what: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !what() && t.elapsed() < Duration::from_secs(20) && !agent.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if !fresh {
        out.line(
            "  (sample already followed into this lake: the agent resumes at its checkpoint and adds nothing)",
        )?;
        wait(&|| metrics.ready());
        return Ok(());
    }
    for chunk in slices(&lines, 5) {
        f.write_all(chunk.as_bytes())
            .map_err(|e| AppError::Runtime(format!("{}: {e}", sample.display())))?;
        let before = metrics.commits.load(Ordering::Relaxed);
        wait(&|| metrics.commits.load(Ordering::Relaxed) > before);
        let commits = metrics.commits.load(Ordering::Relaxed);
        out.line(format_args!(
            "  lake: {:>5} rows in {:>2} {} (parsed {} records)",
            metrics.rows_published.load(Ordering::Relaxed),
            commits,
            if commits == 1 { "commit" } else { "commits" },
            metrics.records.load(Ordering::Relaxed)
        ))?;
        out.flush_now()?;
    }
    wait(&|| {
        metrics.lines.load(Ordering::Relaxed) >= total_lines
            && metrics.rows_published.load(Ordering::Relaxed)
                == metrics.records.load(Ordering::Relaxed)
    });
    Ok(())
}

/// `n` slices of about equal length, each ending where a record ends (as a hub writes whole
/// records).
fn slices(lines: &[&str], n: usize) -> Vec<String> {
    let target = lines.len().div_ceil(n);
    let mut chunks: Vec<String> = vec![String::new()];
    let mut in_chunk = 0;
    for l in lines {
        if in_chunk >= target && crate::parse::prefix::starts_record(l.as_bytes()) {
            chunks.push(String::new());
            in_chunk = 0;
        }
        if let Some(c) = chunks.last_mut() {
            c.push_str(l);
        }
        in_chunk += 1;
    }
    chunks
}

/// The sample's month (`YYYY-MM`, UTC): the month of its first record.
fn sample_month() -> String {
    SAMPLE_LOG
        .lines()
        .find_map(|l| {
            // `[I 2026-11-28 17:04:16.449 JupyterHub …]`
            let d = l.get(3..10)?;
            let ok = d.len() == 7 && d.as_bytes()[4] == b'-' && d[..4].parse::<u16>().is_ok();
            ok.then(|| d.to_string())
        })
        .unwrap_or_else(|| "YYYY-MM".into())
}

fn next_steps(lake: &Path, out: &mut Out) -> Result<(), AppError> {
    let l = lake.display();
    let month = sample_month();
    out.text(&format!(
        "
# What to try next
  hubpulse report monthly --lake {l} --month {month} --out report.html
      the sample's month as a cost and usage report (add --pricing examples/pricing.toml for prices)
  hubpulse query --lake {l} \"SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC\"
      any SQL over the lake (hubpulse query --help lists the tables)
  hubpulse dashboards push --dry-run
      the three Datadog dashboards (set DD_API_KEY and DD_APP_KEY to push them)
  cp hubpulse.example.toml hubpulse.toml    # set [lake] path and [[files]] include
  hubpulse check-config hubpulse.toml && hubpulse run --config hubpulse.toml
      the agent on your hub's own logs (every key is documented in the example; for Zero to
      JupyterHub, deploy/GETTING-STARTED.md)
"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_month_is_read_from_the_sample() {
        let first = SAMPLE_LOG.lines().next().unwrap();
        assert!(first.contains(&format!(" {}-", sample_month())), "{first}");
    }

    #[test]
    fn slices_keep_every_line_once() {
        let lines: Vec<&str> = SAMPLE_LOG.split_inclusive('\n').collect();
        let s = slices(&lines, 5);
        assert!(s.len() >= 4, "{}", s.len());
        assert_eq!(s.concat(), SAMPLE_LOG);
    }
}
