//! What to do with the intake's answer to one payload: a pure `decide()`, no I/O, no clock.
//!
//! The sender (next step) calls [`decide`] after every attempt and acts on the [`Action`]; it
//! never sleeps inside a decision. Policy (issue 4, research §1.4, §1.8, §1.9):
//! * 2xx: accepted; a 202 whose body lists `errors` is a partial failure (counted, not retried:
//!   resending would duplicate what was accepted).
//! * 408, 429, 5xx, timeouts and connection errors: retry with capped exponential backoff and
//!   full jitter; a 429's `X-RateLimit-Reset` (seconds) or `Retry-After` is honoured when longer.
//! * 413: split the payload in two ([`crate::sinks::datadog::payload::split_in_two`]) and send both.
//! * 400, 403 and any other 4xx: never retried (the body or the key is wrong; resending cannot
//!   help), dropped and counted.
//! * Points older than Datadog accepts (metrics 1 h, events and logs 18 h) are not sent: the
//!   sender checks [`expired`] and takes them out point by point.

use std::time::Duration;

use crate::backoff::{Jitter, Policy};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First backoff. Default 1 s.
    pub base: Duration,
    /// Longest backoff. Default 64 s (the Datadog Agent's cap).
    pub cap: Duration,
    /// Oldest point Datadog accepts, seconds before now. Default 3600.
    pub max_age_secs: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(64),
            max_age_secs: 3600,
        }
    }
}

/// The answer to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// An HTTP response: status, body, and the rate-limit headers if sent.
    Http {
        status: u16,
        body: &'a [u8],
        rate_limit_reset: Option<&'a str>,
        retry_after: Option<&'a str>,
    },
    /// No response: connect error, timeout, connection reset.
    NoResponse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Done,
    /// Accepted, but the intake reported errors for part of it.
    PartialFailure(Vec<String>),
    RetryAfter(Duration),
    Split,
    /// Dropped for good; the reason is a bounded label for the drop counter.
    Drop(&'static str),
}

/// Whether a payload whose oldest point is `oldest_s` may still be sent at `now_s`.
pub fn expired(policy: &RetryPolicy, oldest_s: i64, now_s: i64) -> bool {
    oldest_s < now_s - policy.max_age_secs
}

impl RetryPolicy {
    /// The waits between attempts: doubling from `base` up to `cap`, full jitter.
    pub fn backoff(&self) -> Policy {
        Policy::doubling(self.base, self.cap, Jitter::Full)
    }
}

/// Backoff before attempt `attempt + 1` (attempt 0 is the first send): `base · 2^attempt`,
/// capped, scaled by `jitter` ∈ [0, 1) ("full jitter"; the caller draws it).
pub fn backoff(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    policy.backoff().delay_with(attempt, jitter)
}

/// Decide what to do after attempt number `attempt` (0-based) got `answer`.
pub fn decide(policy: &RetryPolicy, answer: Answer<'_>, attempt: u32, jitter: f64) -> Action {
    let retry = |hint: Option<Duration>| {
        let b = backoff(policy, attempt, jitter);
        Action::RetryAfter(hint.map_or(b, |h| h.max(b)))
    };
    match answer {
        Answer::NoResponse => retry(None),
        Answer::Http {
            status,
            body,
            rate_limit_reset,
            retry_after,
        } => match status {
            200..=299 => match errors(body) {
                Some(e) if !e.is_empty() => Action::PartialFailure(e),
                _ => Action::Done,
            },
            413 => Action::Split,
            429 => retry(seconds(rate_limit_reset).or_else(|| seconds(retry_after))),
            408 | 500..=599 => retry(seconds(retry_after)),
            400 => Action::Drop("bad_request"),
            401 | 403 => Action::Drop("forbidden"),
            _ => Action::Drop("rejected"),
        },
    }
}

/// `errors` of an `IntakePayloadAccepted` / `APIErrorResponse` body.
fn errors(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("errors")?.as_array()?;
    Some(
        e.iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect(),
    )
}

fn seconds(h: Option<&str>) -> Option<Duration> {
    let s: f64 = h?.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &[u8]) -> Answer<'_> {
        Answer::Http {
            status,
            body,
            rate_limit_reset: None,
            retry_after: None,
        }
    }

    #[test]
    fn status_codes_map_to_the_issues_policy() {
        let p = RetryPolicy::default();
        assert_eq!(
            decide(&p, http(202, br#"{"errors":[]}"#), 0, 0.5),
            Action::Done
        );
        assert_eq!(decide(&p, http(202, b""), 0, 0.5), Action::Done);
        assert_eq!(
            decide(&p, http(202, br#"{"errors":["bad point"]}"#), 0, 0.5),
            Action::PartialFailure(vec!["bad point".into()])
        );
        assert_eq!(decide(&p, http(413, b""), 3, 0.5), Action::Split);
        assert_eq!(
            decide(&p, http(400, b""), 0, 0.5),
            Action::Drop("bad_request")
        );
        assert_eq!(
            decide(&p, http(403, b""), 0, 0.5),
            Action::Drop("forbidden")
        );
        assert_eq!(decide(&p, http(404, b""), 0, 0.5), Action::Drop("rejected"));
        for s in [408, 429, 500, 503] {
            assert_eq!(
                decide(&p, http(s, b""), 0, 0.5),
                Action::RetryAfter(Duration::from_millis(500)),
                "{s}"
            );
        }
        assert_eq!(
            decide(&p, Answer::NoResponse, 2, 1.0),
            Action::RetryAfter(Duration::from_secs(4))
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let p = RetryPolicy::default();
        let b: Vec<u64> = (0..10).map(|a| backoff(&p, a, 1.0).as_secs()).collect();
        assert_eq!(b, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
        assert_eq!(backoff(&p, 40, 1.0), Duration::from_secs(64));
        assert_eq!(backoff(&p, 3, 0.0), Duration::ZERO);
        assert!(backoff(&p, 3, 0.25) < backoff(&p, 3, 0.75));
    }

    #[test]
    fn rate_limit_headers_are_honoured_when_longer() {
        let p = RetryPolicy::default();
        let a = Answer::Http {
            status: 429,
            body: b"",
            rate_limit_reset: Some("30"),
            retry_after: None,
        };
        assert_eq!(
            decide(&p, a, 0, 0.5),
            Action::RetryAfter(Duration::from_secs(30))
        );
        let a = Answer::Http {
            status: 503,
            body: b"",
            rate_limit_reset: None,
            retry_after: Some("7"),
        };
        assert_eq!(
            decide(&p, a, 0, 0.5),
            Action::RetryAfter(Duration::from_secs(7))
        );
        let junk = Answer::Http {
            status: 429,
            body: b"",
            rate_limit_reset: Some("soon"),
            retry_after: None,
        };
        assert_eq!(
            decide(&p, junk, 1, 1.0),
            Action::RetryAfter(Duration::from_secs(2))
        );
    }

    #[test]
    fn points_older_than_an_hour_are_expired() {
        let p = RetryPolicy::default();
        assert!(!expired(&p, 10_000 - 3600, 10_000));
        assert!(expired(&p, 10_000 - 3601, 10_000));
    }
}
