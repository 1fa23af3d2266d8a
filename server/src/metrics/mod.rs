//! Counters for operators and tests.
//!
//! Every worker owns one [`WorkerMetrics`], padded to its own cache lines, so
//! the per-packet counters are plain relaxed atomic adds on memory no other
//! core writes. Events (a session closing for a reason, a protocol
//! violation, a dropped packet) are counted by their label (the `as_str()`
//! of the error enums) in a small lock-free table: some of them, such as
//! `spoofed_source`, can happen per packet under attack, and the packet path
//! takes no locks.
//!
//! [`Metrics::snapshot`] sums all workers; the server logs it periodically
//! and at shutdown, and tests assert on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Packets dropped because the TUN write queue was full.
    pub tun_write_queue_full: AtomicU64,
    events: LabelCounters,
}

impl WorkerMetrics {
    /// Counts one occurrence of a labelled event (a close reason, a dropped
    /// frame's reason, a refused handshake).
    pub fn event(&self, label: &'static str) {
        self.events_n(label, 1);
    }

    /// Counts `n` occurrences of a labelled event. Lock-free; called by the
    /// worker that owns these counters (the table has one writer).
    pub fn events_n(&self, label: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.events.add(label, n);
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

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut snap = MetricsSnapshot::default();
        for w in self.workers.iter().chain(std::iter::once(&*self.global)) {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            snap.connections_accepted += get(&w.connections_accepted);
            snap.sessions_established += get(&w.sessions_established);
            snap.sessions_active += w.sessions_active.load(Ordering::Relaxed);
            snap.rx_packets += get(&w.rx_packets);
            snap.rx_bytes += get(&w.rx_bytes);
            snap.tx_packets += get(&w.tx_packets);
            snap.tx_bytes += get(&w.tx_bytes);
            snap.tun_no_session += get(&w.tun_no_session);
            snap.handoff_packets += get(&w.handoff_packets);
            snap.tx_queue_full += get(&w.tx_queue_full);
            snap.tun_write_queue_full += get(&w.tun_write_queue_full);
            w.events
                .for_each(|label, n| *snap.events.entry(label).or_insert(0) += n);
        }
        snap
    }
}

/// Labelled counters without locks: an open-addressed table of
/// (label, count) slots. Each table has a single writer (its worker), which
/// claims a slot by publishing the label's length and then its pointer
/// (release); readers skip slots whose pointer is not yet set (acquire).
/// Labels are compared by content, so the same label from two codegen units
/// lands in one slot. When the table is full, the rest count under
/// `"other_events"`.
#[derive(Debug)]
struct LabelCounters {
    slots: Box<[LabelSlot]>,
    other: AtomicU64,
    /// Serialises writers; uncontended (one writer per table), and held
    /// only when a new label is inserted, never on the counting path.
    insert: Mutex<()>,
}

#[derive(Debug, Default)]
struct LabelSlot {
    ptr: std::sync::atomic::AtomicPtr<u8>,
    len: std::sync::atomic::AtomicUsize,
    count: AtomicU64,
}

const LABEL_SLOTS: usize = 256;

impl Default for LabelCounters {
    fn default() -> Self {
        LabelCounters {
            slots: (0..LABEL_SLOTS).map(|_| LabelSlot::default()).collect(),
            other: AtomicU64::new(0),
            insert: Mutex::new(()),
        }
    }
}

impl LabelSlot {
    fn label(&self) -> Option<&'static str> {
        let ptr = self.ptr.load(Ordering::Acquire);
        if ptr.is_null() {
            return None;
        }
        let len = self.len.load(Ordering::Relaxed);
        // SAFETY: `ptr`/`len` were published together from a `&'static str`
        // (len stored before ptr, ptr with release, loaded with acquire).
        Some(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) })
    }
}

impl LabelCounters {
    fn start(label: &str) -> usize {
        // FNV-1a over the content: stable whichever copy of the literal.
        let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        hash as usize % LABEL_SLOTS
    }

    fn add(&self, label: &'static str, n: u64) {
        let start = Self::start(label);
        for i in 0..LABEL_SLOTS {
            let slot = &self.slots[(start + i) % LABEL_SLOTS];
            match slot.label() {
                Some(existing) if existing == label => {
                    slot.count.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Some(_) => continue,
                None => {
                    let _writer = self.insert.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.label().is_some() {
                        // Claimed meanwhile: look again from here.
                        drop(_writer);
                        return self.add(label, n);
                    }
                    slot.count.store(n, Ordering::Relaxed);
                    slot.len.store(label.len(), Ordering::Relaxed);
                    slot.ptr.store(label.as_ptr().cast_mut(), Ordering::Release);
                    return;
                }
            }
        }
        self.other.fetch_add(n, Ordering::Relaxed);
    }

    fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        for slot in self.slots.iter() {
            if let Some(label) = slot.label() {
                f(label, slot.count.load(Ordering::Relaxed));
            }
        }
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            f("other_events", other);
        }
    }
}

/// A point-in-time sum of all counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub connections_accepted: u64,
    pub sessions_established: u64,
    pub sessions_active: i64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tun_no_session: u64,
    pub handoff_packets: u64,
    pub tx_queue_full: u64,
    pub tun_write_queue_full: u64,
    /// Labelled events, by label.
    pub events: BTreeMap<&'static str, u64>,
}

impl MetricsSnapshot {
    /// The count of one labelled event (0 if it never happened).
    pub fn event(&self, label: &str) -> u64 {
        self.events.get(label).copied().unwrap_or(0)
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
        m.worker(0).event("wrong_mac");
        m.worker(1).events_n("wrong_mac", 2);
        m.global().event("ktls_unavailable");
        m.worker(1).sessions_active.fetch_add(5, Ordering::Relaxed);
        m.worker(0).sessions_active.fetch_sub(1, Ordering::Relaxed);
        let s = m.snapshot();
        assert_eq!(s.rx_packets, 7);
        assert_eq!(s.event("wrong_mac"), 3);
        assert_eq!(s.event("ktls_unavailable"), 1);
        assert_eq!(s.event("never"), 0);
        assert_eq!(s.sessions_active, 4);
        let text = s.to_string();
        assert!(text.contains("wrong_mac=3"), "{text}");
        assert!(text.contains("rx 7 pkts"), "{text}");
    }

    #[test]
    fn many_labels_fill_the_table_then_overflow_to_other_events() {
        let m = Metrics::new(1);
        let labels: Vec<&'static str> = (0..LABEL_SLOTS + 10)
            .map(|i| &*Box::leak(format!("label_{i}").into_boxed_str()))
            .collect();
        for (i, label) in labels.iter().enumerate() {
            m.worker(0).events_n(label, i as u64 + 1);
            m.worker(0).event(label);
        }
        let s = m.snapshot();
        let counted: u64 = s.events.values().sum();
        let expected: u64 = (0..labels.len() as u64).map(|i| i + 2).sum();
        assert_eq!(counted, expected, "nothing is lost");
        assert_eq!(s.event("label_0"), 2);
        assert!(s.event("other_events") > 0);
    }

    #[test]
    fn equal_labels_from_different_allocations_share_a_counter() {
        let m = Metrics::new(1);
        let a: &'static str = Box::leak(String::from("wrong_mac").into_boxed_str());
        m.worker(0).event("wrong_mac");
        m.worker(0).event(a);
        assert_eq!(m.snapshot().event("wrong_mac"), 2);
        assert_eq!(m.snapshot().events.len(), 1);
    }

    #[test]
    fn zero_events_are_not_recorded() {
        let m = Metrics::new(1);
        m.worker(0).events_n("nothing", 0);
        assert!(m.snapshot().events.is_empty());
    }
}
