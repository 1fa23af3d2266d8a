//! `bulk --follow`: the rate of the peer's stream follows what arrives.
//!
//! Downstream, the load generator asks the peer for a stream and the peer
//! sends at the rate asked. Asked for everything it can send, the peer
//! floods: what the tunnel cannot carry is dropped at the server (its
//! session queue, the TUN device's), and the flood costs the peer's host
//! CPU for packets nobody receives. On a machine that also runs the server,
//! that CPU is taken from the server, and the figure measures the flood as
//! much as the server. A sender on the Internet with congestion control
//! (TCP, QUIC) instead slows to what arrives. [`FollowRate`] does the same
//! for the peer's stream, from what reaches the load generator each
//! [`INTERVAL`]: it grows quickly while everything arrives (like TCP's slow
//! start), and once something falls short it sets the rate to what arrived
//! and probes upward slowly (like congestion avoidance). What the tunnel
//! carries is then measured with a few percent of loss instead of most of
//! the stream.
//!
//! No crate fits: this is the few lines of a congestion controller whose
//! only signal is the arrival rate, and the peer's protocol
//! ([`crate::packet`]) carries the new rate in a stream request.

use std::time::Duration;

/// How often the rate is set from what arrived.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// The first rate when `--pps` gives none (packets per second).
pub const DEFAULT_START_PPS: f64 = 50_000.0;
/// The rate never falls below this, so that a stalled tunnel is probed
/// again.
pub const MIN_PPS: f64 = 1_000.0;
/// What arrived keeps up when it is at least this share of the rate
/// asked for (the rest: timing between the two clocks).
const KEEPS_UP: f64 = 0.95;
/// Growth per interval before the first shortfall.
const START_GROWTH: f64 = 1.5;
/// Growth per interval after it.
const PROBE_GROWTH: f64 = 1.05;

/// The rate asked of the peer, and how it changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FollowRate {
    pps: f64,
    /// Some interval fell short: growth is slow from then on.
    fell_short: bool,
}

impl FollowRate {
    /// Starts at `start` packets per second (at least [`MIN_PPS`]).
    pub fn new(start: f64) -> FollowRate {
        FollowRate {
            pps: start.max(MIN_PPS),
            fell_short: false,
        }
    }

    /// The rate to ask for now.
    pub fn pps(&self) -> f64 {
        self.pps
    }

    /// Takes what arrived over the last interval (packets per second)
    /// and returns the rate to ask for next.
    pub fn next(&mut self, arrived_pps: f64) -> f64 {
        if arrived_pps >= KEEPS_UP * self.pps {
            let growth = if self.fell_short {
                PROBE_GROWTH
            } else {
                START_GROWTH
            };
            self.pps *= growth;
        } else {
            self.fell_short = true;
            self.pps = arrived_pps.max(MIN_PPS);
        }
        self.pps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tunnel that carries `capacity` packets/s: what arrives is what
    /// was asked, up to it.
    fn carried(asked: f64, capacity: f64) -> f64 {
        asked.min(capacity)
    }

    #[test]
    fn grows_by_half_until_the_tunnel_falls_short_then_settles_just_above_it() {
        let capacity = 500_000.0;
        let mut rate = FollowRate::new(50_000.0);
        let mut asked = vec![rate.pps()];
        for _ in 0..100 {
            let arrived = carried(rate.pps(), capacity);
            asked.push(rate.next(arrived));
        }
        // 50,000 × 1.5ⁿ passes 500,000 at the seventh interval.
        assert_eq!(asked[1], 75_000.0);
        let first_short = asked.iter().position(|&a| a > capacity).unwrap();
        assert_eq!(first_short, 6);
        assert_eq!(asked[7], capacity, "set to what arrived");
        // From then on it cycles: the capacity, 5% above (which arrives
        // as 95% of what was asked, still keeping up), 10.25% above
        // (falls short), the capacity again. About 5% of what is sent is
        // lost, and the tunnel is never left idle.
        for &a in &asked[7..] {
            assert!((capacity..=capacity * 1.1025 + 1.0).contains(&a), "{a}");
        }
        let mean = asked[7..].iter().sum::<f64>() / asked[7..].len() as f64;
        assert!((1.04..1.06).contains(&(mean / capacity)), "{mean}");
    }

    #[test]
    fn follows_the_capacity_down_and_back_up() {
        let mut rate = FollowRate::new(100_000.0);
        for _ in 0..20 {
            rate.next(carried(rate.pps(), 400_000.0));
        }
        assert!(rate.pps() <= 420_000.0);
        // The server gets busier: the rate falls to what it carries at
        // once.
        rate.next(carried(rate.pps(), 100_000.0));
        assert_eq!(rate.pps(), 100_000.0);
        // It frees up again: the rate climbs by 5% an interval.
        let mut intervals = 0;
        while rate.pps() < 400_000.0 {
            rate.next(carried(rate.pps(), 400_000.0));
            intervals += 1;
        }
        assert_eq!(intervals, 29, "1.05²⁹ ≈ 4.1");
    }

    #[test]
    fn never_stops_probing_a_tunnel_that_carries_nothing() {
        let mut rate = FollowRate::new(0.0);
        assert_eq!(rate.pps(), MIN_PPS);
        assert_eq!(rate.next(0.0), MIN_PPS);
        assert_eq!(rate.next(f64::NAN), MIN_PPS, "no arrival figure");
        assert_eq!(rate.next(MIN_PPS), MIN_PPS * PROBE_GROWTH);
    }
}
