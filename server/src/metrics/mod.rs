//! Counters for operators and tests.
//!
//! Every worker owns one [`WorkerMetrics`], padded to its own cache lines, so
//! the per-packet counters are plain relaxed atomic adds on memory no other
//! core writes. Events (a session closing for a reason, a protocol
//! violation, a dropped packet) are [`Event`]s: one relaxed counter each in
//! a fixed table indexed by the event, so that counting one (some, such as
//! `spoofed_source`, can happen per packet under attack) is one atomic add.
//! The core's reasons convert into events here (`reasons.rs`), the
//! runtime's errors next to their definitions; an event's label is the
//! reason's `as_str()`.
//!
//! [`Metrics::snapshot`] sums all workers; the server logs it periodically
//! and at shutdown, and tests assert on it.

mod event;
mod rate_limited_log;
mod reasons;
mod setup;

pub use event::{Event, Family};
pub use rate_limited_log::RateLimitedLog;
pub use setup::{LatencySnapshot, RadiusAuthResult, SetupPhase, SetupPhases, LATENCY_BUCKETS};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use event::EventCounters;
use setup::{Histogram, SetupHistograms};

/// Per-packet and per-session counters of one worker.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerMetrics {
    /// TCP connections accepted.
    pub connections_accepted: AtomicU64,
    /// Sessions whose SSTP call is connected (crypto binding verified).
    pub sessions_established: AtomicU64,
    /// Sessions currently alive on this worker (accepted, not yet closed).
    pub sessions_active: AtomicI64,
    /// Of those, the sessions whose TLS records the kernel seals and
    /// opens (kTLS).
    pub ktls_sessions: AtomicI64,
    /// IP packets from clients written to the TUN device.
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// IP packets from the TUN device sent to clients.
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Packets read from TUN for an address no session owns.
    pub tun_no_session: AtomicU64,
    /// Packets handed to another worker.
    pub handoff_packets: AtomicU64,
    /// Packets dropped because a session's send queue was full.
    pub tx_queue_full: AtomicU64,
    /// Kernel TLS send batches (a run of packets sent back to back without
    /// waiting, or one awaited write when the socket was full) and the SSTP
    /// packets, one TLS record each, they carried: packets per batch is how
    /// well sends are batched.
    pub ktls_send_batches: AtomicU64,
    pub ktls_send_packets: AtomicU64,
    /// Packets dropped because the TUN write queue was full.
    pub tun_write_queue_full: AtomicU64,
    events: EventCounters,
    setup: SetupHistograms,
    /// Access-Request round trips, by result (process-wide only).
    radius_auth: [Histogram; RadiusAuthResult::ALL.len()],
}

impl WorkerMetrics {
    /// Counts one event (a close reason, a dropped frame's reason, a
    /// refused handshake).
    #[inline]
    pub fn event(&self, event: impl Into<Event>) {
        self.events.add(event.into(), 1);
    }

    /// Counts `n` occurrences of an event.
    #[inline]
    pub fn events_n(&self, event: impl Into<Event>, n: u64) {
        if n != 0 {
            self.events.add(event.into(), n);
        }
    }

    /// Records how long after accept a session finished `phase`.
    #[inline]
    pub fn setup_phase(&self, phase: SetupPhase, since_accept: std::time::Duration) {
        self.setup.record(phase, since_accept);
    }

    /// Records how long an Access-Request took, from the session's
    /// request to the answer (or to giving up).
    pub fn radius_auth(&self, result: RadiusAuthResult, elapsed: std::time::Duration) {
        self.radius_auth[result as usize].record(elapsed);
    }

    /// How often this worker counted `event`.
    pub fn event_count(&self, event: Event) -> u64 {
        self.events.get(event)
    }

    /// Adds to a counter (relaxed: these are statistics).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// All workers' counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    workers: Arc<[WorkerMetrics]>,
    /// Process-wide events (startup decisions such as kTLS availability).
    global: Arc<WorkerMetrics>,
}

impl Metrics {
    pub fn new(workers: usize) -> Self {
        Metrics {
            workers: (0..workers).map(|_| WorkerMetrics::default()).collect(),
            global: Arc::new(WorkerMetrics::default()),
        }
    }

    /// The counters of worker `index`.
    pub fn worker(&self, index: usize) -> &WorkerMetrics {
        &self.workers[index]
    }

    /// The number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Process-wide counters.
    pub fn global(&self) -> &WorkerMetrics {
        &self.global
    }

    /// Sessions alive on all workers (a few relaxed loads; used to enforce
    /// `server.max_sessions` at accept).
    pub fn sessions_active(&self) -> i64 {
        self.workers
            .iter()
            .map(|w| w.sessions_active.load(Ordering::Relaxed))
            .sum()
    }

    /// The setup-time histogram of `phase`, summed over workers.
    pub fn setup_histogram(&self, phase: SetupPhase) -> LatencySnapshot {
        let mut snapshot = LatencySnapshot::default();
        for w in self.workers.iter() {
            w.setup.add_to(phase, &mut snapshot);
        }
        snapshot
    }

    /// The Access-Request latency histogram of `result`.
    pub fn radius_auth_histogram(&self, result: RadiusAuthResult) -> LatencySnapshot {
        let mut snapshot = LatencySnapshot::default();
        self.global.radius_auth[result as usize].add_to(&mut snapshot);
        snapshot
    }

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut snap = MetricsSnapshot::default();
        let all = || self.workers.iter().chain(std::iter::once(&*self.global));
        for w in all() {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            snap.connections_accepted += get(&w.connections_accepted);
            snap.sessions_established += get(&w.sessions_established);
            snap.sessions_active += w.sessions_active.load(Ordering::Relaxed);
            snap.ktls_sessions += w.ktls_sessions.load(Ordering::Relaxed);
            snap.rx_packets += get(&w.rx_packets);
            snap.rx_bytes += get(&w.rx_bytes);
            snap.tx_packets += get(&w.tx_packets);
            snap.tx_bytes += get(&w.tx_bytes);
            snap.tun_no_session += get(&w.tun_no_session);
            snap.handoff_packets += get(&w.handoff_packets);
            snap.tx_queue_full += get(&w.tx_queue_full);
            snap.ktls_send_batches += get(&w.ktls_send_batches);
            snap.ktls_send_packets += get(&w.ktls_send_packets);
            snap.tun_write_queue_full += get(&w.tun_write_queue_full);
        }
        snap.events = Event::ALL
            .iter()
            .map(|&e| (e.label(), all().map(|w| w.event_count(e)).sum()))
            .filter(|&(_, n)| n > 0)
            .collect();
        snap
    }
}

/// A point-in-time sum of all counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub connections_accepted: u64,
    pub sessions_established: u64,
    pub sessions_active: i64,
    /// Sessions whose records go through kernel TLS.
    pub ktls_sessions: i64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tun_no_session: u64,
    pub handoff_packets: u64,
    pub tx_queue_full: u64,
    pub tun_write_queue_full: u64,
    /// Kernel TLS send submissions, and the packets (records) they sent.
    pub ktls_send_batches: u64,
    pub ktls_send_packets: u64,
    /// The events that happened, by label ([`Event::label`]); those that
    /// did not are left out.
    pub events: BTreeMap<&'static str, u64>,
}

impl MetricsSnapshot {
    /// How often an event happened (0 if never).
    pub fn count(&self, event: Event) -> u64 {
        self.events.get(event.label()).copied().unwrap_or(0)
    }

    /// How often the event labelled `label` happened (0 if never).
    ///
    /// # Panics
    ///
    /// If no event has this label: a test asserting on a misspelt label
    /// would otherwise read 0 and pass.
    pub fn event(&self, label: &str) -> u64 {
        let event =
            Event::from_label(label).unwrap_or_else(|| panic!("no event is labelled {label:?}"));
        self.count(event)
    }
}

impl std::fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sessions active={} established={} accepted={} | rx {} pkts {} B | tx {} pkts {} B | \
             no_session={} handoff={} tx_queue_full={} tun_queue_full={}",
            self.sessions_active,
            self.sessions_established,
            self.connections_accepted,
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.tun_no_session,
            self.handoff_packets,
            self.tx_queue_full,
            self.tun_write_queue_full
        )?;
        for (label, n) in &self.events {
            write!(f, " {label}={n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers_and_events() {
        let m = Metrics::new(2);
        WorkerMetrics::add(&m.worker(0).rx_packets, 3);
        WorkerMetrics::add(&m.worker(1).rx_packets, 4);
        m.worker(0).event(Event::WrongMac);
        m.worker(1).events_n(Event::WrongMac, 2);
        m.global().event(Event::KtlsUnavailable);
        m.worker(1).sessions_active.fetch_add(5, Ordering::Relaxed);
        m.worker(0).sessions_active.fetch_sub(1, Ordering::Relaxed);
        let s = m.snapshot();
        assert_eq!(s.rx_packets, 7);
        assert_eq!(s.event("wrong_mac"), 3);
        assert_eq!(s.count(Event::WrongMac), 3);
        assert_eq!(s.event("ktls_unavailable"), 1);
        assert_eq!(s.event("spoofed_source"), 0);
        assert_eq!(s.sessions_active, 4);
        let text = s.to_string();
        assert!(text.contains("wrong_mac=3"), "{text}");
        assert!(text.contains("rx 7 pkts"), "{text}");
    }

    #[test]
    fn the_snapshot_and_the_log_line_leave_out_what_did_not_happen() {
        let m = Metrics::new(1);
        m.worker(0).events_n(Event::SpoofedSource, 0);
        assert!(m.snapshot().events.is_empty());
        m.worker(0).event(Event::SpoofedSource);
        m.worker(0).event(Event::HelloTimeout);
        let s = m.snapshot();
        assert_eq!(
            s.events.into_iter().collect::<Vec<_>>(),
            [("hello_timeout", 1), ("spoofed_source", 1)]
        );
    }

    #[test]
    #[should_panic(expected = "no event is labelled \"wrong_mack\"")]
    fn reading_an_unknown_label_is_a_mistake() {
        Metrics::new(1).snapshot().event("wrong_mack");
    }
}
