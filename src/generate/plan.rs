//! Who works on a given day and how: each user's [`Session`] (server, failed logins, spawn
//! faults, how the server ends), drawn from the PRNG, and the scripted first-day incidents.

use super::*;

/// Whether a spawn attempt fails, and how.
#[derive(Clone, Copy, Default)]
pub(super) enum Fault {
    #[default]
    None,
    Error,
    Timeout,
}

/// How a session's server goes away once the user stops working.
#[derive(Clone, Copy, Default)]
pub(super) enum End {
    Stop,
    Exit,
    #[default]
    Cull,
}

/// One user's plan and state for the current day.
#[derive(Default)]
pub(super) struct Session {
    pub(super) server: Option<&'static str>,
    pub(super) pod: String,
    pub(super) failed_logins: u8,
    pub(super) give_up: bool,
    pub(super) cookie: bool,
    /// Faults of the first two spawn attempts; later attempts succeed.
    pub(super) faults: [Fault; 2],
    pub(super) attempt: u8,
    pub(super) spawn_started: u64,
    pub(super) end: End,
    pub(super) logout: bool,
    pub(super) force_extras: bool,
    pub(super) work_ms: u64,
    pub(super) work_end: u64,
    pub(super) last_activity: u64,
    /// Ms of day the server was ready.
    pub(super) ready_at: u64,
}

impl Session {
    /// `("/", name)` for a named server, `("", "")` for the default one.
    pub(super) fn sl(&self) -> (&'static str, &'static str) {
        self.server.map_or(("", ""), |s| ("/", s))
    }
    /// `/hub/api/users/{u}/server` or `/hub/api/users/{u}/servers/{s}`.
    pub(super) fn api(&self, u: &str) -> String {
        match self.server {
            Some(s) => format!("/hub/api/users/{u}/servers/{s}"),
            None => format!("/hub/api/users/{u}/server"),
        }
    }
    pub(super) fn fault(&self) -> Fault {
        let i = usize::from(self.attempt);
        self.faults.get(i).copied().unwrap_or_default()
    }
}

pub(super) struct User {
    pub(super) name: String,
    pub(super) ip: String,
}

impl<W: Write> Sim<W> {
    /// Decides whether and how user `u` works today, and schedules the login.
    pub(super) fn plan(&mut self, u: usize, first_day: bool, weekend: bool) {
        let scripted = first_day && u < SCRIPTED_USERS;
        let r = &mut self.rng;
        if !scripted && !r.chance(if weekend { 12 } else { 85 }, 100) {
            return;
        }
        let mut fault = || match r.below(100) {
            0..3 => Fault::Error,
            3..5 => Fault::Timeout,
            _ => Fault::None,
        };
        let faults = [fault(), fault()];
        let mut s = Session {
            server: r.chance(3, 10).then(|| SERVER_NAMES[r.below(3) as usize]),
            failed_logins: u8::from(r.chance(1, 12)) * (1 + r.below(2) as u8),
            give_up: r.chance(1, 4),
            cookie: r.chance(3, 10),
            faults,
            end: match r.below(100) {
                0..25 => End::Stop,
                25..28 => End::Exit,
                _ => End::Cull,
            },
            logout: r.chance(1, 2),
            work_ms: 90 * MIN_MS + r.below(5 * HOUR_MS),
            ..Session::default()
        };
        if scripted {
            script(u, &mut s);
        }
        self.sessions[u] = s;
        let login = 7 * HOUR_MS + self.rng.below(5 * HOUR_MS);
        self.push(login, Ev::Login(u));
    }
}

/// First-day incidents for the first users, so every record kind shows up in small runs.
fn script(u: usize, s: &mut Session) {
    (s.faults, s.failed_logins) = ([Fault::None; 2], 0);
    (s.end, s.logout) = if u == 0 {
        (End::Stop, true)
    } else {
        (End::Cull, false)
    };
    match u {
        0 => (s.failed_logins, s.give_up, s.cookie) = (1, false, false),
        1 => s.faults[0] = Fault::Error,
        2 => s.faults[0] = Fault::Timeout,
        3 => s.end = End::Exit,
        4 => s.server = Some("gpu"),
        _ => s.force_extras = true,
    }
}
