//! Latency histograms with fixed buckets. How long session setup takes:
//! one histogram per [`SetupPhase`], per worker, of the time from accept
//! to the phase's end; and how long Access-Requests take, by
//! [`RadiusAuthResult`] (process-wide, written by the RADIUS thread).
//!
//! Written once per phase per session (a bucket, the count and the sum:
//! three relaxed atomic adds on the worker's own memory), read at scrape
//! time. Fixed buckets keep it allocation-free and lock-free; the bounds
//! span a loopback setup (about a millisecond) to the pre-authentication
//! window's default (30 s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A setup phase, timed from the TCP accept to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum SetupPhase {
    /// The TLS handshake finished.
    Tls,
    /// The HTTP request was accepted ([MS-SSTP] 3.2.4.1).
    Http,
    /// Call Connect Acknowledge sent: SSTP negotiated, PPP starts
    /// ([MS-SSTP] 3.2.5.1).
    Sstp,
    /// PPP authentication succeeded (RFC 1661 3.5).
    Auth,
    /// Call Connected verified: the crypto binding holds ([MS-SSTP]
    /// 3.2.5.2).
    CallConnected,
    /// IPCP opened: the client has its address (RFC 1332).
    Ipcp,
}

impl SetupPhase {
    /// Every phase, in setup order.
    pub const ALL: [SetupPhase; 6] = [
        SetupPhase::Tls,
        SetupPhase::Http,
        SetupPhase::Sstp,
        SetupPhase::Auth,
        SetupPhase::CallConnected,
        SetupPhase::Ipcp,
    ];

    /// The `phase` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            SetupPhase::Tls => "tls",
            SetupPhase::Http => "http",
            SetupPhase::Sstp => "sstp",
            SetupPhase::Auth => "auth",
            SetupPhase::CallConnected => "call_connected",
            SetupPhase::Ipcp => "ipcp",
        }
    }

    /// This phase's bit in a [`SetupPhases`] set.
    const fn bit(self) -> u8 {
        1 << self as usize
    }
}

/// The phases a session has already timed (each is timed once: an IPCP
/// renegotiation is not a setup).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupPhases(u8);

impl SetupPhases {
    /// Marks `phase` timed; false if it already was.
    pub fn first(&mut self, phase: SetupPhase) -> bool {
        let new = self.0 & phase.bit() == 0;
        self.0 |= phase.bit();
        new
    }
}

/// How an Access-Request ended, for the RADIUS latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum RadiusAuthResult {
    /// Access-Accept (RFC 2865 4.2), usable or not.
    Accept,
    /// Access-Reject (RFC 2865 4.3).
    Reject,
    /// Another code (Access-Challenge).
    Other,
    /// No server answered within the retries (RFC 2865 2.5).
    NoAnswer,
}

impl RadiusAuthResult {
    /// Every result.
    pub const ALL: [RadiusAuthResult; 4] = [
        RadiusAuthResult::Accept,
        RadiusAuthResult::Reject,
        RadiusAuthResult::Other,
        RadiusAuthResult::NoAnswer,
    ];

    /// The `result` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            RadiusAuthResult::Accept => "accept",
            RadiusAuthResult::Reject => "reject",
            RadiusAuthResult::Other => "other",
            RadiusAuthResult::NoAnswer => "no_answer",
        }
    }
}

/// Upper bounds of the buckets, in seconds (the last bucket, +Inf, is
/// implicit).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One latency histogram (a setup phase's on one worker, or RADIUS
/// answers').
#[derive(Debug, Default)]
pub(super) struct Histogram {
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(super) fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Every phase's histogram on one worker.
#[derive(Debug, Default)]
pub(super) struct SetupHistograms([Histogram; SetupPhase::ALL.len()]);

impl SetupHistograms {
    #[inline]
    pub(super) fn record(&self, phase: SetupPhase, elapsed: Duration) {
        self.0[phase as usize].record(elapsed);
    }

    pub(super) fn add_to(&self, phase: SetupPhase, into: &mut LatencySnapshot) {
        self.0[phase as usize].add_to(into);
    }
}

impl Histogram {
    pub(super) fn add_to(&self, into: &mut LatencySnapshot) {
        let h = self;
        for (sum, bucket) in into.buckets.iter_mut().zip(&h.buckets) {
            *sum += bucket.load(Ordering::Relaxed);
        }
        into.count += h.count.load(Ordering::Relaxed);
        into.sum += Duration::from_micros(h.sum_micros.load(Ordering::Relaxed));
    }
}

/// A histogram's counts (one phase's summed over workers, say).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (not cumulative), then
    /// those above the last bound.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub count: u64,
    pub sum: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = SetupHistograms::default();
        h.record(SetupPhase::Tls, Duration::from_micros(500));
        h.record(SetupPhase::Tls, Duration::from_millis(1));
        h.record(SetupPhase::Tls, Duration::from_millis(7));
        h.record(SetupPhase::Tls, Duration::from_secs(60));
        h.record(SetupPhase::Ipcp, Duration::from_millis(3));
        let mut s = LatencySnapshot::default();
        h.add_to(SetupPhase::Tls, &mut s);
        h.add_to(SetupPhase::Tls, &mut s);
        assert_eq!(s.count, 8);
        assert_eq!(s.buckets[0], 4, "0.5 ms and 1 ms are <= 0.001 s");
        assert_eq!(s.buckets[3], 2, "7 ms is in le=0.01");
        assert_eq!(s.buckets[LATENCY_BUCKETS.len()], 2, "60 s is above 30 s");
        assert_eq!(s.buckets.iter().sum::<u64>(), s.count);
        assert_eq!(s.sum, 2 * Duration::from_micros(60_008_500));
    }

    #[test]
    fn each_phase_is_timed_once() {
        let mut timed = SetupPhases::default();
        assert!(timed.first(SetupPhase::Ipcp));
        assert!(timed.first(SetupPhase::Tls));
        assert!(!timed.first(SetupPhase::Ipcp));
        assert_eq!(
            SetupPhase::ALL.map(|p| p as usize),
            [0, 1, 2, 3, 4, 5],
            "ALL is in index order"
        );
    }
}
