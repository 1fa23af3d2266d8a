//! The delays between reconnection attempts (`--reconnect`): exponential
//! back-off with decorrelated jitter, seeded.
//!
//! Each delay is drawn uniformly from `[initial, 3 × previous]` and capped
//! at `max` (the "decorrelated jitter" of Brooker, *Exponential Backoff
//! and Jitter*, AWS Architecture Blog, 2015). Chosen over full jitter
//! (`[0, initial × 2^n]`) because no delay falls below `initial`: a
//! client never hammers a server faster than the operator asked, and the
//! time to recover has a floor a test can assert. The draws still spread
//! clients that lost the same node at the same instant over the whole
//! range, so they do not come back in lock-step.
//!
//! Pure: the random source is a seeded [`StdRng`] and there is no clock,
//! so the schedule of a session is the same in every run with the same
//! `--seed`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `--reconnect`: how sessions that end unexpectedly are re-established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first delay, and the floor of every delay.
    pub initial: Duration,
    /// No delay is longer.
    pub max: Duration,
    /// Seeds every session's jitter (mixed with the session index).
    pub seed: u64,
}

impl ReconnectPolicy {
    pub const DEFAULT_INITIAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

    /// Checks the delays, with messages naming the options.
    pub fn validate(&self) -> Result<(), String> {
        if self.initial.is_zero() {
            return Err("--reconnect-delay must be above 0".into());
        }
        if self.max < self.initial {
            return Err("--reconnect-max-delay must not be below --reconnect-delay".into());
        }
        Ok(())
    }
}

/// One session's back-off schedule.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    previous: Duration,
    rng: StdRng,
}

impl Backoff {
    /// The schedule of session `index`: its own random stream, derived
    /// from the policy's seed.
    pub fn new(policy: &ReconnectPolicy, index: u64) -> Backoff {
        Backoff {
            initial: policy.initial,
            max: policy.max,
            previous: policy.initial,
            rng: StdRng::seed_from_u64(mix(policy.seed, index)),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.previous.saturating_mul(3).min(self.max);
        let delay = if ceiling <= self.initial {
            ceiling
        } else {
            let low = self.initial.as_nanos() as u64;
            let high = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(self.rng.random_range(low..=high))
        };
        self.previous = delay;
        delay
    }

    /// Back to the first step, after a successful reconnection (the random
    /// stream goes on).
    pub fn reset(&mut self) {
        self.previous = self.initial;
    }
}

/// SplitMix64 of `seed + index`: neighbouring sessions get unrelated
/// streams.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, max_ms: u64, seed: u64) -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            seed,
        }
    }

    fn schedule(policy: &ReconnectPolicy, index: u64, n: usize) -> Vec<Duration> {
        let mut b = Backoff::new(policy, index);
        (0..n).map(|_| b.next_delay()).collect()
    }

    #[test]
    fn every_delay_lies_between_the_initial_delay_and_the_cap() {
        let p = policy(100, 5_000, 7);
        for index in 0..200 {
            let mut previous = p.initial;
            for d in schedule(&p, index, 40) {
                assert!(d >= p.initial, "{d:?} below the initial delay");
                assert!(d <= p.max, "{d:?} above the cap");
                assert!(d <= previous * 3, "{d:?} more than 3x {previous:?}");
                previous = d;
            }
        }
    }

    #[test]
    fn delays_grow_then_stay_at_the_cap() {
        let p = policy(100, 5_000, 1);
        let sessions = 500;
        let mean_at = |step: usize| {
            let total: Duration = (0..sessions).map(|i| schedule(&p, i, step + 1)[step]).sum();
            total / sessions as u32
        };
        let (first, third, tenth) = (mean_at(0), mean_at(2), mean_at(9));
        // First draw: uniform in [100, 300] ms.
        assert!(first > Duration::from_millis(170) && first < Duration::from_millis(230));
        assert!(third > first * 2, "{first:?} -> {third:?}");
        assert!(tenth > third * 2, "{third:?} -> {tenth:?}");
        assert!(tenth <= p.max);
        // Later draws reach up to the cap, never past it.
        let late: Vec<Duration> = (0..sessions)
            .flat_map(|i| schedule(&p, i, 60).split_off(30))
            .collect();
        assert!(late.iter().all(|d| *d <= p.max));
        let near_cap = late.iter().filter(|d| **d >= p.max * 9 / 10).count();
        assert!(near_cap > late.len() / 50, "{near_cap} of {}", late.len());
    }

    #[test]
    fn jitter_spreads_sessions_that_lost_the_same_node() {
        let p = policy(1_000, 30_000, 42);
        let firsts: Vec<Duration> = (0..1000).map(|i| schedule(&p, i, 1)[0]).collect();
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 990, "{} distinct of 1000", distinct.len());
        // Spread over the whole first range [1 s, 3 s]: every fifth of it
        // gets a fair share.
        for fifth in 0..5u64 {
            let low = Duration::from_millis(1_000 + fifth * 400);
            let high = low + Duration::from_millis(400);
            let n = firsts.iter().filter(|d| **d >= low && **d < high).count();
            assert!((120..=280).contains(&n), "{n} in [{low:?}, {high:?})");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let p = policy(50, 2_000, 9);
        assert_eq!(schedule(&p, 3, 20), schedule(&p, 3, 20));
        assert_ne!(schedule(&p, 3, 20), schedule(&p, 4, 20));
        assert_ne!(schedule(&p, 3, 20), schedule(&policy(50, 2_000, 10), 3, 20));
    }

    #[test]
    fn a_reset_starts_over_from_the_initial_delay() {
        let p = policy(100, 10_000, 3);
        let mut b = Backoff::new(&p, 0);
        for _ in 0..20 {
            b.next_delay();
        }
        b.reset();
        let d = b.next_delay();
        assert!(d >= p.initial && d <= p.initial * 3, "{d:?}");
    }

    #[test]
    fn equal_initial_and_cap_give_a_fixed_delay() {
        let p = policy(250, 250, 5);
        assert!(schedule(&p, 0, 10)
            .iter()
            .all(|d| *d == Duration::from_millis(250)));
        assert!(p.validate().is_ok());
        assert!(policy(0, 10, 0).validate().is_err());
        assert!(policy(100, 10, 0).validate().is_err());
    }
}
