//! What the workers measure: counters, reasons and histograms, kept per
//! worker (no sharing on the data path) and merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use sstpd::client::SetupTimes;
use sstpd::proto::ppp::PppCloseReason;
use sstpd::proto::session::CloseReason;
use sstpd::proto::sstp::CloseReason as SstpCloseReason;

use crate::report::Tunnel;

/// Largest value a histogram holds, in microseconds (one hour); larger
/// values are recorded as this.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
/// Significant figures of every histogram (0.1 % resolution).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A latency histogram in microseconds, with the exact sum in
/// nanoseconds (so sums of phases can be compared exactly).
#[derive(Clone, Debug)]
pub struct Histo {
    pub hist: Histogram<u64>,
    pub sum_ns: u128,
}

impl Default for Histo {
    fn default() -> Self {
        Histo::new()
    }
}

impl Histo {
    pub fn new() -> Histo {
        Histo {
            hist: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG)
                .expect("static histogram bounds are valid"),
            sum_ns: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).min(HISTOGRAM_MAX_US);
        self.hist.saturating_record(us);
        self.sum_ns += d.as_nanos();
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn add(&mut self, other: &Histo) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sum_ns += other.sum_ns;
    }

    pub fn reset(&mut self) {
        self.hist.reset();
        self.sum_ns = 0;
    }
}

/// One histogram per setup phase ([`SetupTimes`]).
#[derive(Clone, Debug, Default)]
pub struct SetupHistos {
    pub tcp: Histo,
    pub tls: Histo,
    pub http: Histo,
    pub sstp: Histo,
    pub ppp_auth: Histo,
    pub network: Histo,
    pub total: Histo,
}

impl SetupHistos {
    pub fn record(&mut self, t: &SetupTimes) {
        self.tcp.record(t.tcp);
        self.tls.record(t.tls);
        self.http.record(t.http);
        self.sstp.record(t.sstp);
        self.ppp_auth.record(t.ppp_auth);
        self.network.record(t.network);
        self.total.record(t.total);
    }

    pub fn add(&mut self, o: &SetupHistos) {
        self.tcp.add(&o.tcp);
        self.tls.add(&o.tls);
        self.http.add(&o.http);
        self.sstp.add(&o.sstp);
        self.ppp_auth.add(&o.ppp_auth);
        self.network.add(&o.network);
        self.total.add(&o.total);
    }
}

/// Event counts. All fields add up across workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Setups started.
    pub attempted: u64,
    pub established: u64,
    /// Setups that did not complete.
    pub failed: u64,
    /// Established sessions that ended before we closed them.
    pub dropped: u64,
    /// Sessions still up when the hold (idle) or traffic window ended.
    pub held: u64,
    /// Graceful closes that finished within the close timeout.
    pub closed: u64,
    pub close_timeouts: u64,
    /// Churn: connect-hold-close cycles completed.
    pub cycles: u64,
    /// IP packets and bytes sent within the traffic window.
    pub up_packets: u64,
    pub up_bytes: u64,
    /// IP packets and bytes of ours received within the window.
    pub down_packets: u64,
    pub down_bytes: u64,
    /// ... and received at any time (window plus drain).
    pub down_packets_total: u64,
    /// Probes that expect a reply (echo, reflected udp), and replies.
    pub probes_sent: u64,
    pub probes_answered: u64,
    /// Replies or stream datagrams older than one already seen.
    pub reordered: u64,
    /// IP packets received that were not ours (or were malformed).
    pub foreign: u64,
    /// Echo replies and stream datagrams of ours whose payload was not
    /// the pattern sent, byte for byte.
    pub payload_mismatches: u64,
    /// Times a sender found the session's queue full and waited.
    pub backpressure_waits: u64,
    /// Paced packets sent a whole period or more after their time: the
    /// load generator did not keep the pace it was asked for (at a
    /// saturating rate, every packet of a catch-up burst).
    pub late_sends: u64,
    /// Packets the session refused to send (closed, not ready).
    pub send_errors: u64,
    /// Peer stats: flows asked and flows that answered.
    pub peer_queried: u64,
    pub peer_answered: u64,
    pub peer_rx_packets: u64,
    pub peer_rx_bytes: u64,
    pub peer_tx_packets: u64,
    pub peer_tx_bytes: u64,
    /// Of the flows whose peer counters arrived: data packets we sent, and
    /// data packets (reflections, stream datagrams) we received. These are
    /// what the peer's counters compare with.
    pub peer_flow_up_sent: u64,
    pub peer_flow_down_received: u64,
    /// Bulk down: stream requests no datagram followed.
    pub streams_unanswered: u64,
    /// Tun: packets read from a TUN device the session refused (closed,
    /// not an IPv4 packet it may send, its queue full).
    pub tun_up_dropped: u64,
    /// Tun: packets from the server dropped because the session's queue
    /// toward its TUN device was full.
    pub tun_down_dropped: u64,
    /// Tun: failed reads and writes of the TUN devices.
    pub tun_read_errors: u64,
    pub tun_write_errors: u64,
}

macro_rules! add_fields {
    ($a:ident, $b:ident, $($f:ident),*) => { $($a.$f += $b.$f;)* };
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        add_fields!(
            self,
            o,
            attempted,
            established,
            failed,
            dropped,
            held,
            closed,
            close_timeouts,
            cycles,
            up_packets,
            up_bytes,
            down_packets,
            down_bytes,
            down_packets_total,
            probes_sent,
            probes_answered,
            reordered,
            foreign,
            payload_mismatches,
            backpressure_waits,
            late_sends,
            send_errors,
            peer_queried,
            peer_answered,
            peer_rx_packets,
            peer_rx_bytes,
            peer_tx_packets,
            peer_tx_bytes,
            peer_flow_up_sent,
            peer_flow_down_received,
            streams_unanswered,
            tun_up_dropped,
            tun_down_dropped,
            tun_read_errors,
            tun_write_errors
        );
    }

    /// Sessions currently up (established, not yet ended).
    pub fn active(&self) -> u64 {
        self.established
            .saturating_sub(self.dropped + self.closed + self.close_timeouts)
    }
}

/// Counts per reason label (`as_str()` of the error).
pub type Reasons = BTreeMap<String, u64>;

pub fn count_reason(reasons: &mut Reasons, reason: &str) {
    match reasons.get_mut(reason) {
        Some(n) => *n += 1,
        None => {
            reasons.insert(reason.to_string(), 1);
        }
    }
}

/// `--reconnect`: sessions lost and re-established, and how long they
/// were down.
#[derive(Clone, Debug, Default)]
pub struct ReconnectStats {
    /// Sessions that ended unexpectedly (each loss counts).
    pub lost: u64,
    /// Losses followed by a new session in the same slot.
    pub reconnected: u64,
    /// Setups tried to re-establish a lost session.
    pub attempts: u64,
    pub failed_attempts: u64,
    /// Losses still down at the end of the run.
    pub unrecovered: u64,
    /// Losses by cause ([`loss_cause`]).
    pub causes: Reasons,
    /// From the loss until the new session was up.
    pub recovery: Histo,
    /// The first loss and the last recovery, nanoseconds since the run
    /// began.
    pub first_loss_ns: Option<u64>,
    pub last_recovery_ns: Option<u64>,
}

impl ReconnectStats {
    pub fn add(&mut self, o: &ReconnectStats) {
        add_fields!(
            self,
            o,
            lost,
            reconnected,
            attempts,
            failed_attempts,
            unrecovered
        );
        for (k, v) in &o.causes {
            *self.causes.entry(k.clone()).or_default() += v;
        }
        self.recovery.add(&o.recovery);
        self.first_loss_ns = min_some(self.first_loss_ns, o.first_loss_ns);
        self.last_recovery_ns = self.last_recovery_ns.max(o.last_recovery_ns);
    }

    /// From the first loss until every lost session was back; `None`
    /// when nothing was lost or some never came back.
    pub fn all_back_after(&self) -> Option<Duration> {
        if self.lost == 0 || self.unrecovered > 0 {
            return None;
        }
        let (first, last) = (self.first_loss_ns?, self.last_recovery_ns?);
        Some(Duration::from_nanos(last.saturating_sub(first)))
    }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Why a session ended unexpectedly, as the report's loss causes name it.
/// The client sees a TCP reset, an EOF and a TLS error alike (the
/// connection is gone): `transport_closed`.
pub fn loss_cause(reason: Option<&CloseReason>) -> &'static str {
    match reason {
        None => "unknown",
        Some(CloseReason::Sstp(r)) => match r {
            SstpCloseReason::PeerDisconnect { .. } => "call_disconnect",
            SstpCloseReason::PeerAbort { .. } => "call_abort",
            SstpCloseReason::HelloTimeout => "hello_timeout",
            SstpCloseReason::TransportClosed => "transport_closed",
            other => other.as_str(),
        },
        Some(CloseReason::Ppp(r)) => match r {
            PppCloseReason::PeerTerminated => "lcp_terminate",
            PppCloseReason::EchoTimeout => "echo_timeout",
            other => other.as_str(),
        },
        Some(other) => other.as_str(),
    }
}

/// The IP version a traffic flow runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// Index into [`WorkerStats::families`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The key of the family's figures in the report.
    pub fn label(self) -> &'static str {
        match self {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        }
    }
}

/// What the traffic of one IP version did: the traffic, loss and peer
/// counters of [`Counters`] (the others stay zero) and its round trips.
#[derive(Clone, Debug, Default)]
pub struct FamilyStats {
    pub counters: Counters,
    pub rtt: Histo,
}

/// Everything one worker measured.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    pub counters: Counters,
    pub failure_reasons: Reasons,
    /// The first message seen per failure reason.
    pub failure_examples: BTreeMap<String, String>,
    pub drop_reasons: Reasons,
    pub setup: SetupHistos,
    pub teardown: Histo,
    pub rtt: Histo,
    /// CPU time of the worker thread within the traffic window (or the
    /// whole run for modes without one).
    pub cpu: Duration,
    /// Tun: the devices of this worker's sessions.
    pub tunnels: Vec<Tunnel>,
    /// The traffic figures again, per IP version ([`IpFamily::index`]).
    pub families: [FamilyStats; 2],
    pub reconnect: ReconnectStats,
}

impl WorkerStats {
    pub fn add(&mut self, o: &WorkerStats) {
        self.counters.add(&o.counters);
        for (k, v) in &o.failure_reasons {
            *self.failure_reasons.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.failure_examples {
            self.failure_examples
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &o.drop_reasons {
            *self.drop_reasons.entry(k.clone()).or_default() += v;
        }
        self.setup.add(&o.setup);
        self.teardown.add(&o.teardown);
        self.rtt.add(&o.rtt);
        self.cpu += o.cpu;
        self.tunnels.extend(o.tunnels.iter().cloned());
        for (mine, theirs) in self.families.iter_mut().zip(&o.families) {
            mine.counters.add(&theirs.counters);
            mine.rtt.add(&theirs.rtt);
        }
        self.reconnect.add(&o.reconnect);
    }
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Duration {
    let (user, system) = rusage(libc::RUSAGE_THREAD);
    user + system
}

/// User and system CPU time of `who` (`RUSAGE_SELF`, `RUSAGE_THREAD`).
pub fn rusage(who: libc::c_int) -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid
    // initial value for this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_keep_exact_sums_and_merge() {
        let mut a = Histo::new();
        a.record(Duration::from_nanos(1_500));
        a.record(Duration::from_millis(3));
        let mut b = Histo::new();
        b.record(Duration::from_secs(7200)); // above the maximum: clamped
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum_ns, 1_500 + 3_000_000 + 7_200_000_000_000);
        assert_eq!(a.hist.max(), a.hist.highest_equivalent(HISTOGRAM_MAX_US));
        assert_eq!(a.hist.min(), 1);
    }

    #[test]
    fn setup_phases_are_recorded_per_phase() {
        let mut s = SetupHistos::default();
        let t = SetupTimes {
            tcp: Duration::from_micros(10),
            tls: Duration::from_micros(20),
            http: Duration::from_micros(30),
            sstp: Duration::from_micros(40),
            ppp_auth: Duration::from_micros(50),
            network: Duration::from_micros(60),
            total: Duration::from_micros(210),
        };
        s.record(&t);
        let parts = [&s.tcp, &s.tls, &s.http, &s.sstp, &s.ppp_auth, &s.network];
        assert_eq!(parts.iter().map(|h| h.sum_ns).sum::<u128>(), s.total.sum_ns);
    }

    #[test]
    fn counters_and_reasons_merge() {
        let mut a = WorkerStats::default();
        a.counters.established = 3;
        a.counters.dropped = 1;
        count_reason(&mut a.failure_reasons, "auth_failed");
        let mut b = WorkerStats::default();
        b.counters.established = 2;
        b.counters.closed = 2;
        count_reason(&mut b.failure_reasons, "auth_failed");
        count_reason(&mut b.drop_reasons, "hello_timeout");
        a.add(&b);
        assert_eq!(a.counters.established, 5);
        assert_eq!(a.counters.active(), 2);
        assert_eq!(a.failure_reasons["auth_failed"], 2);
        assert_eq!(a.drop_reasons["hello_timeout"], 1);
    }

    #[test]
    fn reconnections_merge_and_tell_when_all_were_back() {
        let mut a = ReconnectStats {
            lost: 2,
            reconnected: 2,
            first_loss_ns: Some(5_000),
            last_recovery_ns: Some(9_000),
            ..ReconnectStats::default()
        };
        count_reason(&mut a.causes, "call_disconnect");
        let b = ReconnectStats {
            lost: 1,
            reconnected: 1,
            first_loss_ns: Some(3_000),
            last_recovery_ns: Some(12_000),
            ..ReconnectStats::default()
        };
        a.add(&b);
        assert_eq!((a.lost, a.reconnected), (3, 3));
        assert_eq!(a.all_back_after(), Some(Duration::from_nanos(9_000)));
        a.add(&ReconnectStats {
            lost: 1,
            unrecovered: 1,
            first_loss_ns: Some(4_000),
            ..ReconnectStats::default()
        });
        assert_eq!(a.all_back_after(), None, "one never came back");
        assert_eq!(ReconnectStats::default().all_back_after(), None);
    }

    #[test]
    fn loss_causes_name_what_the_server_did() {
        let sstp = |r| Some(CloseReason::Sstp(r));
        let ppp = |r| Some(CloseReason::Ppp(r));
        let cases = [
            (
                sstp(SstpCloseReason::PeerDisconnect { status: None }),
                "call_disconnect",
            ),
            (
                sstp(SstpCloseReason::PeerAbort { status: None }),
                "call_abort",
            ),
            (sstp(SstpCloseReason::TransportClosed), "transport_closed"),
            (sstp(SstpCloseReason::HelloTimeout), "hello_timeout"),
            (ppp(PppCloseReason::PeerTerminated), "lcp_terminate"),
            (ppp(PppCloseReason::EchoTimeout), "echo_timeout"),
            (None, "unknown"),
        ];
        for (reason, cause) in cases {
            assert_eq!(loss_cause(reason.as_ref()), cause);
        }
    }

    #[test]
    fn thread_cpu_time_moves_forward() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() >= before);
    }
}
