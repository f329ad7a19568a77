//! The monthly report as Markdown and CSV. (HTML is in [`html`](super::html).)
//!
//! Figures are rounded only here: hours to two decimals, money to the cent. The CSV is long
//! and flat (one row per breakdown line, a `section` column) so that a spreadsheet can pivot
//! it; its server time is also given in whole seconds for exact reconciliation. With `pods`
//! rows in the lake, section `priced_from` says which sessions were priced from their pod's
//! requests (`pod_requests`) and which by their profile (`profile`).

use std::fmt::Write;

use super::monthly::{Monthly, Row, Totals};

pub fn money(x: f64) -> String {
    format!("{:.2}", (x * 100.0).round() / 100.0)
}

pub fn hours(us: i64) -> String {
    format!("{:.2}", us as f64 / 3.6e9)
}

pub fn seconds(us: i64) -> i64 {
    (us as f64 / 1e6).round() as i64
}

/// `+12.5 %`, or an em dash when there is nothing to compare with.
pub fn change(now: f64, before: Option<f64>) -> String {
    match before {
        Some(b) if b > 0.0 => format!("{:+.1} %", (now - b) / b * 100.0),
        Some(_) if now > 0.0 => "new".into(),
        _ => "—".into(),
    }
}

/// Headline figures with the previous month: (label, this month, previous, change).
pub fn headline(m: &Monthly) -> Vec<(&'static str, String, String, String)> {
    let t = &m.totals;
    let p = m.previous.as_ref();
    let row = |label, now: f64, before: Option<f64>, fmt: &dyn Fn(f64) -> String| {
        (
            label,
            fmt(now),
            before.map_or("—".into(), fmt),
            change(now, before),
        )
    };
    let cur = |x: f64| format!("{} {}", money(x), m.currency);
    let h = |x: f64| format!("{x:.2}");
    let n = |x: f64| format!("{x:.0}");
    let f = |g: fn(&Totals) -> f64| p.map(g);
    vec![
        row("Cost", t.all.cost, f(|t| t.all.cost), &cur),
        row("Server-hours", t.all.hours(), f(|t| t.all.hours()), &h),
        row(
            "Active users",
            t.all.users as f64,
            f(|t| t.all.users as f64),
            &n,
        ),
        row(
            "Sessions",
            t.all.sessions as f64,
            f(|t| t.all.sessions as f64),
            &n,
        ),
        row(
            "Idle server-hours",
            t.all.idle_hours(),
            f(|t| t.all.idle_hours()),
            &h,
        ),
        row(
            "Culled sessions",
            t.culled_sessions as f64,
            f(|t| t.culled_sessions as f64),
            &n,
        ),
    ]
}

fn md_table(out: &mut String, title: &str, what: &str, rows: &[Row], currency: &str) {
    let _ = writeln!(out, "\n## {title}\n");
    let _ = writeln!(
        out,
        "| {what} | server-hours | active days | sessions | idle hours | cost ({currency}) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.key.replace('|', "\\|"),
            hours(r.server_us),
            r.active_days,
            r.sessions,
            hours(r.idle_us),
            money(r.cost)
        );
    }
}

pub fn markdown(m: &Monthly) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# JupyterHub usage and cost, {}\n", m.month);
    let _ = writeln!(
        out,
        "Hubs: {}. Compared with {}.\n",
        m.hubs.join(", "),
        m.previous_month
    );
    for w in partial_warnings(m) {
        let _ = writeln!(out, "> {w}\n");
    }
    let _ = writeln!(out, "| | {} | {} | change |", m.month, m.previous_month);
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (label, now, before, ch) in headline(m) {
        let _ = writeln!(out, "| {label} | {now} | {before} | {ch} |");
    }
    let t = &m.totals;
    let _ = writeln!(
        out,
        "\nIdle time: {} server-hours ran after their user's last activity. A culler stopping \
         servers after {} of inactivity would have saved {} server-hours ({} {}). Culled \
         sessions: {}, idle {} hours before their cull.",
        hours(t.all.idle_us),
        humanize(m.idle_timeout_s),
        hours(t.saved_us),
        money(t.saved_cost),
        m.currency,
        t.culled_sessions,
        hours(t.culled_idle_us),
    );
    md_table(&mut out, "By group", "group", &m.by_group, &m.currency);
    md_table(
        &mut out,
        "By profile",
        "profile",
        &m.by_profile,
        &m.currency,
    );
    md_table(
        &mut out,
        "By project",
        "project",
        &m.by_project,
        &m.currency,
    );
    md_table(&mut out, "By user", "user", &m.by_user, &m.currency);
    let _ = writeln!(out, "\n## How the figures are made\n");
    for line in notes(m) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

pub fn humanize(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Warnings that a month is only partly covered by the data (change figures are then
/// misleading).
pub fn partial_warnings(m: &Monthly) -> Vec<String> {
    let mut v = Vec::new();
    if m.data_from.is_none() {
        v.push(format!(
            "The lake holds no record for {} (nor the month before): every figure is 0.",
            m.month
        ));
    }
    if let Some(p) = m.month_partial() {
        v.push(format!(
            "{} is only partly covered by the logs ({p}).",
            m.month
        ));
    }
    if m.previous.is_some()
        && let Some(p) = m.previous_partial()
    {
        v.push(format!(
            "{} is only partly covered by the logs ({p}): read the change column with care.",
            m.previous_month
        ));
    }
    v
}

/// Method notes and data-quality flags, shared by every format.
/// Which activity the idle hours, active days and culler savings rest on.
fn grounded_note((grounded, all): (u64, u64)) -> String {
    let fallback = "the last activity POST line each server logged: a heartbeat that real \
         single-user servers repeat every JUPYTERHUB_ACTIVITY_INTERVAL (300 s by default) \
         whether or not anyone works, so idle time is a lower bound there, what a culler would \
         have saved is understated, and an active day is a day the server ran";
    match (grounded, all) {
        (_, 0) => "No session in the month.".to_string(),
        (g, a) if g == a => format!(
            "Idle hours, active days and what a culler would have saved rest on the hub's own \
             last_activity for every session ({a}): the user's activity as the hub's API \
             reported it (the lake's observations table)."
        ),
        (0, a) => format!(
            "Idle hours, active days and what a culler would have saved rest, for all {a} \
             sessions, on liveness only: {fallback}. Run the agent with a [hub] section to \
             record the hub's own last_activity."
        ),
        (g, a) => format!(
            "Idle hours, active days and what a culler would have saved rest on the hub's own \
             last_activity for {g} of {a} sessions (the lake's observations table); for the \
             other {}, on liveness only: {fallback}.",
            a - g
        ),
    }
}

/// What checking session bounds against the hub's observations did.
fn hub_check_note(g: &super::grounding::Grounding) -> String {
    if !g.observed {
        return "Session bounds rest on the log alone: the lake holds no observations of the \
                hub's servers (run the agent with a [hub] section to check them against the hub)."
            .to_string();
    }
    let hours = g.delta_us as f64 / 3.6e9;
    format!(
        "Session bounds were checked against the hub's own observations of its servers: {} of \
         the month's sessions were seen by the hub; {} starts and {} ends were corrected to \
         agree with it and {} sessions it never saw running were removed, changing the month's \
         server time by {hours:+.2} h (flag hub_corrected).",
        g.seen, g.starts, g.ends, g.removed
    )
}

pub fn notes(m: &Monthly) -> Vec<String> {
    let f = &m.flags;
    let mut v = vec![
        "A server is billed from the moment it was ready to the moment it stopped; spawn time \
         is not billed. Sessions crossing a month boundary are split at it (UTC)."
            .to_string(),
        format!(
            "Servers still running at the end of the data are counted to the hub's last log \
             record ({}).",
            f.running_at_end
        ),
        format!(
            "{} sessions were already running when the data begins (counted from the first \
             record); {} had no stop line (ended at their last activity); {} stopped while the \
             hub was down (ended at the hub's shutdown).",
            f.started_before_data, f.missing_stop, f.end_estimated
        ),
        "Profiles come from the hub's DEBUG line `Applying KubeSpawner override for profile`; \
         servers without one are counted under the default profile."
            .to_string(),
        grounded_note(m.grounded),
        hub_check_note(&m.hub_check),
    ];
    if let [pod, profile] = &m.priced_from[..] {
        v.push(format!(
            "Sessions priced from their pod's requests: {} ({} server-hours, {} {cur}); by their \
             profile's price: {} ({} server-hours, {} {cur}). A pod costs its node's hourly \
             price times the share of the node its dominant resource takes: max(CPU request / \
             node CPUs, memory request / node memory, GPUs / node GPUs).",
            pod.sessions,
            hours(pod.server_us),
            money(pod.cost),
            profile.sessions,
            hours(profile.server_us),
            money(profile.cost),
            cur = m.currency,
        ));
    }
    if !m.unpriced.is_empty() {
        let list: Vec<&str> = m.unpriced.iter().map(String::as_str).collect();
        v.push(format!(
            "Profiles with no price in the pricing file (costed at 0): {}.",
            list.join(", ")
        ));
    }
    let reasons: Vec<String> = m
        .end_reasons
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    v.push(format!("Session ends: {}.", reasons.join(", ")));
    v
}

pub fn csv(m: &Monthly) -> String {
    let mut out = String::from(
        "month,section,key,server_seconds,server_hours,active_days,users,sessions,idle_hours,cost,currency\n",
    );
    let esc = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut line = |section: &str, r: &Row| {
        let _ = writeln!(
            out,
            "{},{section},{},{},{},{},{},{},{},{},{}",
            m.month,
            esc(&r.key),
            seconds(r.server_us),
            hours(r.server_us),
            r.active_days,
            r.users,
            r.sessions,
            hours(r.idle_us),
            money(r.cost),
            esc(&m.currency)
        );
    };
    line("total", &m.totals.all);
    if let Some(p) = &m.previous {
        line("previous_month_total", &p.all);
    }
    for (section, rows) in [
        ("priced_from", &m.priced_from),
        ("group", &m.by_group),
        ("profile", &m.by_profile),
        ("project", &m.by_project),
        ("user", &m.by_user),
    ] {
        for r in rows {
            line(section, r);
        }
    }
    out
}
