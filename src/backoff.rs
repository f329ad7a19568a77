//! The one backoff policy of the crate: how long to wait before the next attempt after a
//! failure, for every retry and reconnect loop (Datadog sends, lake writes while the disk is
//! full, Kubernetes reconnects).
//!
//! A [`Policy`] is a first delay, a cap, a multiplier and a [`Jitter`] kind: the nominal wait
//! before retry number `attempt` (0 = the first retry) is `first · multiplier^attempt`, capped,
//! and the jitter then spreads it so that many clients failing together do not retry in
//! lockstep. The random draws come from one small RNG ([`fastrand`]), through [`Rng`] (seeded,
//! for a caller that wants reproducible waits) or [`draw`] (the thread's generator).
//!
//! A foundation module: it names nothing else of the crate.

use std::time::Duration;

/// How the nominal delay is spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the nominal delay.
    None,
    /// "Full jitter": anywhere in `[0, nominal)`.
    Full,
    /// "Equal jitter": the lower half always, the upper half scaled by the draw, so each wait
    /// is at least half the nominal one.
    Equal,
    /// Up to as much again on top: anywhere in `[nominal, 2 · nominal)` (what kube-rs's
    /// watchers use).
    Added,
}

/// First delay, cap, multiplier and jitter kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first: Duration,
    pub cap: Duration,
    pub multiplier: u32,
    pub jitter: Jitter,
}

impl Policy {
    /// Doubling from `first` up to `cap`, with the given jitter.
    pub const fn doubling(first: Duration, cap: Duration, jitter: Jitter) -> Self {
        Policy {
            first,
            cap,
            multiplier: 2,
            jitter,
        }
    }

    /// The wait before retry number `attempt` without jitter: `first · multiplier^attempt`,
    /// capped (saturating, so any `attempt` is fine).
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.saturating_pow(attempt);
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry number `attempt` for a draw `r` in `[0, 1)` (clamped to
    /// `[0, 1]`): the pure form, for callers and tests that supply the draw.
    pub fn delay_with(&self, attempt: u32, r: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let r = r.clamp(0.0, 1.0);
        match self.jitter {
            Jitter::None => nominal,
            Jitter::Full => nominal.mul_f64(r),
            Jitter::Equal => {
                let half = nominal / 2;
                half + half.mul_f64(r)
            }
            Jitter::Added => nominal.saturating_add(nominal.mul_f64(r)),
        }
    }

    /// The wait before retry number `attempt`, drawing the jitter from the thread's RNG.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, draw())
    }
}

/// A uniform draw in `[0, 1)` from the thread's generator.
pub fn draw() -> f64 {
    fastrand::f64()
}

/// A seeded generator of draws in `[0, 1)`, for reproducible jitter.
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// The next draw in `[0, 1)`.
    pub fn draw(&mut self) -> f64 {
        self.0.f64()
    }
}

/// A failure count under a [`Policy`]: each [`Backoff::next_delay`] is one more failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            failures: 0,
        }
    }

    /// The wait before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_from_the_first_delay_up_to_the_cap() {
        let p = Policy::doubling(MS(250), MS(10_000), Jitter::None);
        let d: Vec<u64> = (0..8)
            .map(|a| p.delay_with(a, 0.3).as_millis() as u64)
            .collect();
        assert_eq!(d, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(p.nominal(u32::MAX), MS(10_000));
    }

    #[test]
    fn other_multipliers_grow_by_their_factor() {
        let p = Policy {
            multiplier: 3,
            ..Policy::doubling(MS(100), MS(5_000), Jitter::None)
        };
        let d: Vec<u64> = (0..5).map(|a| p.nominal(a).as_millis() as u64).collect();
        assert_eq!(d, [100, 300, 900, 2700, 5000]);
    }

    #[test]
    fn full_jitter_stays_below_the_nominal_delay() {
        let p = Policy::doubling(MS(1000), MS(64_000), Jitter::Full);
        assert_eq!(p.delay_with(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay_with(3, 0.5), MS(4000));
        assert_eq!(p.delay_with(3, 7.0), MS(8000), "draws are clamped");
        assert_eq!(p.delay_with(40, 1.0), MS(64_000));
        for a in 0..12 {
            let d = p.delay(a);
            assert!(d < p.nominal(a), "attempt {a}: {d:?}");
        }
    }

    #[test]
    fn equal_jitter_keeps_at_least_half() {
        let p = Policy::doubling(MS(200), MS(30_000), Jitter::Equal);
        let ms = |a, r| p.delay_with(a, r).as_millis();
        assert_eq!([ms(0, 0.0), ms(0, 1.0)], [100, 200]);
        assert_eq!([ms(8, 0.0), ms(8, 1.0)], [15_000, 30_000]);
        assert_eq!([ms(0, -3.0), ms(0, 7.0)], [100, 200]);
        for a in 0..12 {
            let (d, n) = (p.delay(a), p.nominal(a));
            assert!(d >= n / 2 && d <= n, "attempt {a}: {d:?} of {n:?}");
        }
    }

    #[test]
    fn added_jitter_goes_up_to_twice_the_nominal_delay() {
        let p = Policy::doubling(MS(800), MS(30_000), Jitter::Added);
        assert_eq!(
            [p.delay_with(0, 0.0), p.delay_with(0, 0.5)],
            [MS(800), MS(1200)]
        );
        assert_eq!(
            p.delay_with(9, 1.0),
            MS(60_000),
            "the cap is on the nominal delay"
        );
        for a in 0..12 {
            let (d, n) = (p.delay(a), p.nominal(a));
            assert!(d >= n && d < n * 2, "attempt {a}: {d:?} of {n:?}");
        }
    }

    #[test]
    fn draws_are_in_the_unit_interval_and_seeds_repeat() {
        let (mut a, mut b) = (Rng::seeded(7), Rng::seeded(7));
        let xs: Vec<f64> = (0..200).map(|_| a.draw()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs, (0..200).map(|_| b.draw()).collect::<Vec<_>>());
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
        assert!((0..200).map(|_| draw()).all(|x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn a_backoff_counts_failures() {
        let mut b = Backoff::new(Policy::doubling(MS(250), MS(10_000), Jitter::None));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(b.failures(), 8);
        assert_eq!([d[0], d[1], d[7]], [MS(250), MS(500), MS(10_000)]);
        b.reset();
        assert_eq!((b.failures(), b.next_delay()), (0, MS(250)));
    }
}
