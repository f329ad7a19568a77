//! Output side of the generator: the seeded PRNG, timestamp formatting, and the `Sink` that
//! writes each record's lines in one of the fixed templates and counts them into the `Truth`.

use super::*;

macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Record kinds, named as the parser names them.
        #[derive(Clone, Copy)]
        pub(super) enum Kind { $($variant,)* }
        /// Kind names, indexed by `Kind as usize`.
        pub(super) const KIND_NAMES: &[&str] = &[$($name,)*];
    };
}

kinds! {
    Request => "request",
    RequestHeaders => "request_headers",
    Login => "login",
    LoginFailed => "login_failed",
    Logout => "logout",
    OauthClient => "oauth_client",
    ProfileOverride => "profile_override",
    PodCreate => "pod_create",
    SpawnSucceeded => "spawn_succeeded",
    ProxyRouteAdded => "proxy_route_added",
    SpawnFailed => "spawn_failed",
    SpawnTimeout => "spawn_timeout",
    ProxyRouteRemoved => "proxy_route_removed",
    PodDelete => "pod_delete",
    StopSucceeded => "stop_succeeded",
    ServerExited => "server_exited",
    CullServer => "cull_server",
    ActiveUsers => "active_users",
    ChpRequest => "chp_request",
    ChpRouteAdded => "chp_route_added",
    ChpRouteRemoved => "chp_route_removed",
    ChpProxyError => "chp_proxy_error",
    Unparsed => "unparsed",
}

/// splitmix64: tiny, seedable, good enough for a simulation.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }
    pub(super) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub(super) fn ip(&mut self) -> String {
        format!("10.244.{}.{}", self.below(8), self.range(2, 255))
    }
}

/// Pushes `v` zero-padded to `width` digits.
pub(super) fn push_num(buf: &mut String, v: u64, width: u32) {
    for p in (0..width).rev() {
        buf.push(char::from(b'0' + ((v / 10u64.pow(p)) % 10) as u8));
    }
}

/// Pushes `HH:MM:SS` (and `.mmm` when `millis`) for a millisecond of the day.
pub(super) fn push_clock(buf: &mut String, ms: u64, millis: bool) {
    let ms = ms.min(DAY_MS - 1);
    let s = ms / 1000;
    push_num(buf, s / 3600, 2);
    buf.push(':');
    push_num(buf, s / 60 % 60, 2);
    buf.push(':');
    push_num(buf, s % 60, 2);
    if millis {
        buf.push('.');
        push_num(buf, ms % 1000, 3);
    }
}

/// Actor, client IP and duration (in hundredths of a millisecond) of a hub request line.
pub(super) struct Who<'a>(pub(super) &'a str, pub(super) &'a str, pub(super) u64);

/// Formats records into a buffer, clamps timestamps to keep them ordered, counts everything.
pub(super) struct Sink<W: Write> {
    pub(super) out: BufWriter<W>,
    pub(super) buf: String,
    /// Absolute ms (since the first day's midnight) of the latest stamped line.
    pub(super) last: u64,
    pub(super) day_base: u64,
    pub(super) date: String,
    pub(super) short_date: String,
    pub(super) kinds: [u64; KIND_NAMES.len()],
    pub(super) status: [u64; 4],
    pub(super) lines: u64,
    pub(super) bytes: u64,
    pub(super) tracebacks: u64,
}

impl<W: Write> Sink<W> {
    pub(super) fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 17, out),
            buf: String::with_capacity(1 << 12),
            last: 0,
            day_base: 0,
            date: String::new(),
            short_date: String::new(),
            kinds: [0; KIND_NAMES.len()],
            status: [0; 4],
            lines: 0,
            bytes: 0,
            tracebacks: 0,
        }
    }
    pub(super) fn begin_day(&mut self, day_base: u64, date: NaiveDate) {
        self.day_base = day_base;
        self.date = date.format("%Y-%m-%d").to_string();
        self.short_date = date.format("%y%m%d").to_string();
    }
    /// Clamps ms-of-day `t` to no earlier than the latest stamp, records it and returns it.
    pub(super) fn stamp(&mut self, t: u64) -> u64 {
        self.last = (self.day_base + t).max(self.last);
        self.last - self.day_base
    }
    /// Like [`Self::stamp`], rounded up to a whole second (the culler format has no millis).
    pub(super) fn stamp_second(&mut self, t: u64) -> u64 {
        let abs = (self.day_base + t).max(self.last);
        self.stamp(abs.div_ceil(1000) * 1000 - self.day_base)
    }
    pub(super) fn newline(&mut self) {
        self.buf.push('\n');
        self.lines += 1;
    }
    pub(super) fn record(&mut self, kind: Kind, msg: fmt::Arguments<'_>) {
        self.kinds[kind as usize] += 1;
        let _ = self.buf.write_fmt(msg);
        self.newline();
    }
    /// A continuation line of the current record.
    pub(super) fn cont(&mut self, text: &str) {
        self.buf.push_str(text);
        self.newline();
    }
    pub(super) fn hub(
        &mut self,
        kind: Kind,
        t: u64,
        level: char,
        src: &str,
        msg: fmt::Arguments<'_>,
    ) -> u64 {
        let t = self.stamp(t);
        self.buf.push('[');
        self.buf.push(level);
        self.buf.push(' ');
        self.buf.push_str(&self.date);
        self.buf.push(' ');
        push_clock(&mut self.buf, t, true);
        self.buf.push_str(" JupyterHub ");
        self.buf.push_str(src);
        self.buf.push_str("] ");
        self.record(kind, msg);
        t
    }
    pub(super) fn info(&mut self, kind: Kind, t: u64, src: &str, msg: fmt::Arguments<'_>) -> u64 {
        self.hub(kind, t, 'I', src, msg)
    }
    pub(super) fn chp(&mut self, kind: Kind, t: u64, msg: fmt::Arguments<'_>) -> u64 {
        let t = self.stamp(t);
        self.buf.push_str(&self.date);
        self.buf.push('T');
        push_clock(&mut self.buf, t, true);
        let error = matches!(kind, Kind::ChpProxyError);
        self.buf.push_str(if error { CHP_ERROR } else { CHP_INFO });
        self.record(kind, msg);
        t
    }
    pub(super) fn culler(&mut self, t: u64, msg: fmt::Arguments<'_>) -> u64 {
        let t = self.stamp_second(t);
        self.buf.push_str("[I ");
        self.buf.push_str(&self.short_date);
        self.buf.push(' ');
        push_clock(&mut self.buf, t, false);
        self.buf.push_str(" __init__:251] ");
        self.record(Kind::CullServer, msg);
        t
    }
    /// `{status} {what} ({actor}@{ip}) {ms}ms`; a 5xx is preceded by a request_headers record.
    pub(super) fn request(
        &mut self,
        t: u64,
        status: u16,
        who: Who<'_>,
        what: fmt::Arguments<'_>,
    ) -> u64 {
        if status >= 500 {
            self.hub(Kind::RequestHeaders, t, 'E', "log:184", format_args!("{{"));
            self.cont("    \"Host\": \"hub.example\",");
            self.cont("    \"Authorization\": \"token [secret]\",");
            self.cont("    \"Cookie\": \"_xsrf=[secret]\"");
            self.cont("    }");
        }
        let level = match status {
            500.. => 'E',
            400.. => 'W',
            _ => 'I',
        };
        self.status[usize::from(status / 100).clamp(2, 5) - 2] += 1;
        let Who(actor, ip, centi) = who;
        let (ms, frac) = (centi / 100, centi % 100);
        let msg = format_args!("{status} {what} ({actor}@{ip}) {ms}.{frac:02}ms");
        self.hub(Kind::Request, t, level, "log:192", msg)
    }
    pub(super) fn commit(&mut self) -> io::Result<()> {
        self.bytes += self.buf.len() as u64;
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }
}
