//! The monthly report as one self-contained HTML file: inline CSS and SVG charts, no script,
//! no external asset, readable on screen and printable (A4, charts kept whole on a page).

use std::fmt::Write;

use super::monthly::{Monthly, Row};
use super::render::{headline, hours, humanize, money, notes, partial_warnings};

const PALETTE: [&str; 8] = [
    "#3366cc", "#dc7633", "#2e9e6b", "#9b59b6", "#c0392b", "#16a2b8", "#7f8c8d", "#d4ac0d",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum and step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Stacked daily bars of server-hours per profile.
fn daily_chart(m: &Monthly, out: &mut String) {
    let profiles: Vec<String> = m.by_profile.iter().map(|r| r.key.clone()).collect();
    let days: Vec<_> = m.daily.iter().collect();
    let (w, h, left, bottom, top) = (760.0, 260.0, 48.0, 28.0, 10.0);
    let max = days
        .iter()
        .map(|(_, p)| p.values().sum::<i64>() as f64 / 3.6e9)
        .fold(0.0, f64::max);
    let (ymax, step) = axis(max);
    let plot_h = h - bottom - top;
    let n = days.len().max(1) as f64;
    let slot = (w - left - 8.0) / n;
    let _ = write!(
        out,
        r#"<svg class="chart" role="img" aria-label="Daily server-hours by profile" viewBox="0 0 {w} {h}" width="100%">"#
    );
    let mut y = 0.0;
    while y <= ymax + 1e-9 {
        let py = top + plot_h - y / ymax * plot_h;
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            w - 4.0,
            left - 4.0,
            py + 4.0,
            trim(y)
        );
        y += step;
    }
    for (i, (day, per)) in days.iter().enumerate() {
        let x = left + i as f64 * slot + slot * 0.15;
        let mut base = top + plot_h;
        for (k, p) in profiles.iter().enumerate() {
            let v = per.get(p).copied().unwrap_or(0) as f64 / 3.6e9;
            if v <= 0.0 {
                continue;
            }
            let bh = v / ymax * plot_h;
            base -= bh;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{base:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {v:.2} h</title></rect>"#,
                slot * 0.7,
                PALETTE[k % PALETTE.len()],
                day.format("%Y-%m-%d"),
                esc(p)
            );
        }
        if days.len() <= 16 || i % 5 == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                x + slot * 0.35,
                h - 10.0,
                day.format("%d")
            );
        }
    }
    out.push_str("</svg>\n<div class=\"legend\">");
    for (k, p) in profiles.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            PALETTE[k % PALETTE.len()],
            esc(p)
        );
    }
    out.push_str("</div>\n");
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Horizontal bars of `value(row)` for the first `limit` rows.
fn bars(
    rows: &[Row],
    limit: usize,
    label: &str,
    value: fn(&Row) -> f64,
    unit: &str,
    out: &mut String,
) {
    let rows: Vec<&Row> = rows.iter().take(limit).collect();
    let (w, bar, gap, left) = (760.0, 18.0, 6.0, 170.0);
    let h = rows.len().max(1) as f64 * (bar + gap) + 8.0;
    // Bars are as long as their labels say (rounded to the cent): equal labels, equal bars.
    let value = |r: &Row| (value(r) * 100.0).round() / 100.0;
    let max = rows.iter().map(|r| value(r)).fold(0.0, f64::max);
    let scale = if max > 0.0 {
        (w - left - 110.0) / max
    } else {
        0.0
    };
    let _ = write!(
        out,
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {w} {h}" width="100%">"#,
        esc(label)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * (bar + gap);
        let v = value(r);
        let _ = write!(
            out,
            r##"<text x="{}" y="{:.1}" class="lbl" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{:.1}" height="{bar}" fill="#3366cc"/><text x="{:.1}" y="{:.1}" class="val">{} {}</text>"##,
            left - 6.0,
            y + 13.0,
            esc(&r.key),
            v * scale,
            left + v * scale + 6.0,
            y + 13.0,
            money(v),
            esc(unit)
        );
    }
    out.push_str("</svg>\n");
}

fn table(title: &str, what: &str, rows: &[Row], currency: &str, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"tbl\"><h2>{title}</h2><table><thead><tr><th>{what}</th><th>server-hours</th>\
         <th>active days</th><th>sessions</th><th>idle hours</th><th>cost ({})</th></tr></thead><tbody>",
        esc(currency)
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.key),
            hours(r.server_us),
            r.active_days,
            r.sessions,
            hours(r.idle_us),
            money(r.cost)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;margin:0 auto;max-width:900px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 12px}.card b{display:block;font-size:20px}
.card small{color:#666}.up{color:#b03a2e}.down{color:#1e8449}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{background:#f4f6f8}
.chart text.tick{font-size:10px;fill:#555}.chart text.lbl,.chart text.val{font-size:11px;fill:#333}
.legend span{margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.notes{color:#444;font-size:12px}
.warn{background:#fff4e5;border-left:4px solid #e67e22;padding:6px 10px}
@media print{body{max-width:none;padding:0}.chart,.card,tr{break-inside:avoid}section.tbl{break-before:auto}}
@page{size:A4;margin:14mm}
";

pub fn html(m: &Monthly) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>JupyterHub usage and cost, {month}</title><style>{STYLE}</style></head><body>\n\
         <h1>JupyterHub usage and cost, {month}</h1><p class=\"sub\">Hubs: {hubs}. Compared with {prev}. \
         Money in {cur}.</p>\n",
        month = esc(&m.month),
        hubs = esc(&m.hubs.join(", ")),
        prev = esc(&m.previous_month),
        cur = esc(&m.currency),
    );
    for w in partial_warnings(m) {
        let _ = write!(out, "<p class=\"warn\">{}</p>", esc(&w));
    }
    out.push_str("<div class=\"cards\">");
    for (label, now, before, ch) in headline(m) {
        let class = if ch.starts_with('+') {
            "up"
        } else if ch.starts_with('-') {
            "down"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<div class=\"card\"><small>{label}</small><b>{}</b><small>{} last month \
             <span class=\"{class}\">{}</span></small></div>",
            esc(&now),
            esc(&before),
            esc(&ch)
        );
    }
    out.push_str("</div>\n");
    let t = &m.totals;
    let _ = writeln!(
        out,
        "<p>{} server-hours ran after their user's last activity. A culler stopping servers after \
         {} of inactivity would have saved <b>{} server-hours ({} {})</b>. {} sessions were culled, \
         idle {} hours before their cull.</p>",
        hours(t.all.idle_us),
        humanize(m.idle_timeout_s),
        hours(t.saved_us),
        money(t.saved_cost),
        esc(&m.currency),
        t.culled_sessions,
        hours(t.culled_idle_us)
    );
    out.push_str("<h2>Daily server-hours by profile</h2>\n");
    daily_chart(m, &mut out);
    out.push_str("<h2>Cost by group</h2>\n");
    bars(
        &m.by_group,
        12,
        "Cost by group",
        |r| r.cost,
        &m.currency,
        &mut out,
    );
    out.push_str("<h2>Top users by cost</h2>\n");
    bars(
        &m.by_user,
        15,
        "Top users by cost",
        |r| r.cost,
        &m.currency,
        &mut out,
    );
    table("By group", "group", &m.by_group, &m.currency, &mut out);
    table(
        "By profile",
        "profile",
        &m.by_profile,
        &m.currency,
        &mut out,
    );
    table(
        "By project",
        "project",
        &m.by_project,
        &m.currency,
        &mut out,
    );
    table("By user", "user", &m.by_user, &m.currency, &mut out);
    out.push_str("<h2>How the figures are made</h2><ul class=\"notes\">");
    for n in notes(m) {
        let _ = write!(out, "<li>{}</li>", esc(&n));
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bars whose labels are equal (rounded to the cent) are equally long.
    #[test]
    fn bars_are_as_long_as_their_labels_say() {
        let row = |key: &str, cost: f64| Row {
            key: key.into(),
            cost,
            ..Row::default()
        };
        let mut out = String::new();
        let rows = [
            row("a", 10.0),
            row("b", 0.004),
            row("c", 0.001),
            row("d", 0.0),
        ];
        bars(&rows, 4, "cost", |r| r.cost, "EUR", &mut out);
        let widths: Vec<&str> = out
            .split("<rect ")
            .skip(1)
            .map(|r| {
                r.split("width=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 4, "{out}");
        assert_ne!(widths[0], widths[1]);
        assert_eq!(widths[1], widths[2], "{out}");
        assert_eq!(widths[2], widths[3], "{out}");
    }
}
