//! Admission control at accept, before any TLS work is done for a
//! connection:
//!
//! * `server.max_sessions` bounds connections from accept to close (TLS
//!   handshakes included), all workers together;
//! * `server.max_preauth_sessions` bounds the connections not yet
//!   authenticated (accept to Call Connected), and
//!   `server.max_preauth_per_source` the same per source address (an IPv6
//!   source by its /64).
//!
//! A connection is admitted with an [`Admitted`] pair of permits: the
//! connection permit lives as long as the connection, the pre-auth permit
//! until the session is established. Dropping a permit gives its place
//! back. Counters are checked and taken in one atomic step, so concurrent
//! accepts on several workers never overshoot a cap.
//!
//! Behind a load balancer (a `[[server.listener]]` with `proxy_protocol`)
//! the TCP peer is the balancer, and counting by it would put every client
//! behind it under one `max_preauth_per_source`. Such a connection is
//! admitted in two steps: at accept, [`Admission::admit_unsourced`] takes
//! its places under `max_sessions` and `max_preauth_sessions` (so
//! connections waiting for their header are bounded with all the others);
//! once the header is read, [`PendingSource::for_source`] counts it under
//! `max_preauth_per_source` by the client's address the header carries,
//! or by the balancer's when the header has none (LOCAL, UNKNOWN).
//!
//! The per-source table holds an entry only while that source has a
//! connection in the pre-auth window, so it never holds more than
//! `max_preauth_sessions` entries, whatever the number of addresses an
//! attacker cycles through.
//!
//! A reload changes the caps ([`Admission::set_limits`]): they bound new
//! admissions only. Lowering one below the current count closes nothing;
//! new connections are refused until enough have ended.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aaa::throttle::SourceKey;
use crate::config::ServerSection;
use crate::metrics::Event;

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `server.max_sessions` connections are open.
    MaxSessions,
    /// `server.max_preauth_sessions` connections are not yet authenticated.
    MaxPreauth,
    /// `server.max_preauth_per_source` connections from this source are not
    /// yet authenticated.
    PreauthPerSource,
}

impl From<Refusal> for Event {
    fn from(refusal: Refusal) -> Event {
        match refusal {
            Refusal::MaxSessions => Event::RefusedMaxSessions,
            Refusal::MaxPreauth => Event::RefusedMaxPreauth,
            Refusal::PreauthPerSource => Event::RefusedPreauthPerSource,
        }
    }
}

impl Refusal {
    /// The configuration key whose bound was reached.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Refusal::MaxSessions => "server.max_sessions",
            Refusal::MaxPreauth => "server.max_preauth_sessions",
            Refusal::PreauthPerSource => "server.max_preauth_per_source",
        }
    }

    const ALL: [Refusal; 3] = [
        Refusal::MaxSessions,
        Refusal::MaxPreauth,
        Refusal::PreauthPerSource,
    ];

    fn index(self) -> usize {
        match self {
            Refusal::MaxSessions => 0,
            Refusal::MaxPreauth => 1,
            Refusal::PreauthPerSource => 2,
        }
    }
}

/// The counters and caps all workers share.
#[derive(Debug)]
pub(crate) struct Admission {
    max_connections: AtomicUsize,
    max_preauth: AtomicUsize,
    max_per_source: AtomicU32,
    connections: AtomicUsize,
    preauth: AtomicUsize,
    per_source: Mutex<HashMap<SourceKey, u32>>,
}

fn per_source_cap(server: &ServerSection) -> u32 {
    u32::try_from(server.max_preauth_per_source).unwrap_or(u32::MAX)
}

/// Takes one place below `max`, or none.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Admission {
    pub(crate) fn new(server: &ServerSection) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections: AtomicUsize::new(server.max_sessions),
            max_preauth: AtomicUsize::new(server.max_preauth_sessions),
            max_per_source: AtomicU32::new(per_source_cap(server)),
            connections: AtomicUsize::new(0),
            preauth: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
        })
    }

    /// New caps from a reloaded `[server]` (see the module doc).
    pub(crate) fn set_limits(&self, server: &ServerSection) {
        self.max_connections
            .store(server.max_sessions, Ordering::Release);
        self.max_preauth
            .store(server.max_preauth_sessions, Ordering::Release);
        self.max_per_source
            .store(per_source_cap(server), Ordering::Release);
    }

    /// The caps in force: (max_sessions, max_preauth_sessions).
    pub(crate) fn limits(&self) -> (usize, usize) {
        (
            self.max_connections.load(Ordering::Acquire),
            self.max_preauth.load(Ordering::Acquire),
        )
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<SourceKey, u32>> {
        self.per_source.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `source`, or says which cap refuses it.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Admitted, Refusal> {
        self.admit_unsourced()?.for_source(source)
    }

    /// Takes a connection's places under the global caps only; its source
    /// is counted once known ([`PendingSource::for_source`]).
    pub(crate) fn admit_unsourced(self: &Arc<Self>) -> Result<PendingSource, Refusal> {
        if !take(
            &self.connections,
            self.max_connections.load(Ordering::Acquire),
        ) {
            return Err(Refusal::MaxSessions);
        }
        let connection = ConnectionPermit(self.clone());
        if !take(&self.preauth, self.max_preauth.load(Ordering::Acquire)) {
            return Err(Refusal::MaxPreauth);
        }
        Ok(PendingSource {
            connection,
            preauth: GlobalPreauth(self.clone()),
        })
    }

    /// Open connections, and those among them not yet authenticated.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::Acquire),
            self.preauth.load(Ordering::Acquire),
        )
    }

    /// Sources with a connection in the pre-auth window.
    #[cfg(test)]
    pub(crate) fn sources_tracked(&self) -> usize {
        self.sources().len()
    }
}

/// A connection's place under `server.max_sessions`.
#[derive(Debug)]
pub(crate) struct ConnectionPermit(Arc<Admission>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place under `server.max_preauth_sessions`.
#[derive(Debug)]
pub(crate) struct GlobalPreauth(Arc<Admission>);

impl Drop for GlobalPreauth {
    fn drop(&mut self) {
        self.0.preauth.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection admitted under the global caps whose source is not known
/// yet (a PROXY listener's, until its header is read). Dropping it gives
/// both places back.
#[derive(Debug)]
pub(crate) struct PendingSource {
    connection: ConnectionPermit,
    preauth: GlobalPreauth,
}

impl PendingSource {
    /// Counts the connection under `server.max_preauth_per_source` for
    /// `source`; refused, it gives back its global places too.
    pub(crate) fn for_source(self, source: IpAddr) -> Result<Admitted, Refusal> {
        let admission = &self.preauth.0;
        let key = SourceKey::of(source);
        let mut sources = admission.sources();
        let count = sources.entry(key).or_insert(0);
        if *count >= admission.max_per_source.load(Ordering::Acquire) {
            if *count == 0 {
                sources.remove(&key);
            }
            return Err(Refusal::PreauthPerSource);
        }
        *count += 1;
        drop(sources);
        Ok(Admitted {
            connection: self.connection,
            preauth: PreauthPermit {
                global: self.preauth,
                source: key,
            },
        })
    }
}

/// A connection's place in the pre-auth window, globally and for its
/// source.
#[derive(Debug)]
pub(crate) struct PreauthPermit {
    /// Dropped after the source's place (fields drop after `drop`).
    global: GlobalPreauth,
    source: SourceKey,
}

impl Drop for PreauthPermit {
    fn drop(&mut self) {
        let mut sources = self.global.0.sources();
        if let Some(count) = sources.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sources.remove(&self.source);
            }
        }
    }
}

/// Both permits of an admitted connection.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub connection: ConnectionPermit,
    pub preauth: PreauthPermit,
}

pub(crate) use crate::metrics::RateLimitedLog;

/// Interval of the refusal log lines.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One [`RateLimitedLog`] per refusal reason (one worker's).
#[derive(Debug)]
pub(crate) struct RefusalLogs([RateLimitedLog; 3]);

impl Default for RefusalLogs {
    fn default() -> Self {
        RefusalLogs(Refusal::ALL.map(|_| RateLimitedLog::new(REFUSAL_LOG_INTERVAL)))
    }
}

impl RefusalLogs {
    pub(crate) fn due(&mut self, refusal: Refusal, now: Instant) -> Option<u64> {
        self.0[refusal.index()].due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize, preauth: usize, per_source: usize) -> Arc<Admission> {
        Admission::new(&ServerSection {
            max_sessions: max,
            max_preauth_sessions: preauth,
            max_preauth_per_source: per_source,
            ..ServerSection::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_refuses_then_frees_on_drop() {
        let a = admission(100, 100, 2);
        let x = ip("192.0.2.1");
        let first = a.admit(x).unwrap();
        let second = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refusal::PreauthPerSource);
        // Other sources are not affected; an IPv6 /64 is one source.
        let _other = a.admit(ip("192.0.2.2")).unwrap();
        let _v6a = a.admit(ip("2001:db8::1")).unwrap();
        let _v6b = a.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8::3")).unwrap_err(),
            Refusal::PreauthPerSource
        );
        assert_eq!(a.counts(), (5, 5));
        // Established: the pre-auth place is given back, the connection
        // place is kept.
        let Admitted {
            connection,
            preauth,
        } = first;
        drop(preauth);
        assert_eq!(a.counts(), (5, 4));
        let third = a.admit(x).unwrap();
        drop((connection, second, third));
        // Left: 192.0.2.2 and two of 2001:db8::/64.
        assert_eq!(a.counts(), (3, 3));
        assert_eq!(a.sources_tracked(), 2);
    }

    #[test]
    fn global_caps_are_exact_and_refusals_leave_nothing_behind() {
        let a = admission(3, 2, 10);
        let one = a.admit(ip("192.0.2.1")).unwrap();
        let two = a.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.3")).unwrap_err(), Refusal::MaxPreauth);
        assert_eq!(a.counts(), (2, 2));
        assert_eq!(a.sources_tracked(), 2);
        drop(one.preauth);
        let three = a.admit(ip("192.0.2.3")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.4")).unwrap_err(), Refusal::MaxSessions);
        assert_eq!(a.counts(), (3, 2));
        drop((one.connection, two, three));
        assert_eq!(a.counts(), (0, 0));
        assert_eq!(a.sources_tracked(), 0);
    }

    #[test]
    fn unsourced_admission_counts_the_source_once_known() {
        let a = admission(4, 3, 1);
        // Three connections from one load balancer wait for their headers:
        // only the global caps count them.
        let p1 = a.admit_unsourced().unwrap();
        let p2 = a.admit_unsourced().unwrap();
        let p3 = a.admit_unsourced().unwrap();
        assert_eq!(a.admit_unsourced().unwrap_err(), Refusal::MaxPreauth);
        assert_eq!(a.counts(), (3, 3));
        assert_eq!(a.sources_tracked(), 0);
        // Their headers name different clients: each has its own place.
        let c1 = p1.for_source(ip("192.0.2.1")).unwrap();
        let c2 = p2.for_source(ip("192.0.2.2")).unwrap();
        assert_eq!(a.sources_tracked(), 2);
        // A second client address already at its bound: refused, and its
        // global places are given back.
        assert_eq!(
            p3.for_source(ip("192.0.2.1")).unwrap_err(),
            Refusal::PreauthPerSource
        );
        assert_eq!(a.counts(), (2, 2));
        // A pending connection that never sends its header leaves nothing.
        drop(a.admit_unsourced().unwrap());
        assert_eq!(a.counts(), (2, 2));
        drop((c1, c2));
        assert_eq!(a.counts(), (0, 0));
        assert_eq!(a.sources_tracked(), 0);
    }

    #[test]
    fn new_limits_bound_new_admissions_and_close_nothing() {
        let a = admission(3, 3, 3);
        let x = ip("192.0.2.1");
        let held: Vec<_> = (0..3).map(|_| a.admit(x).unwrap()).collect();
        a.set_limits(&ServerSection {
            max_sessions: 2,
            max_preauth_sessions: 10,
            max_preauth_per_source: 10,
            ..ServerSection::default()
        });
        assert_eq!(a.limits(), (2, 10));
        // Three stay admitted above the new cap; a fourth is refused.
        assert_eq!(a.counts(), (3, 3));
        assert_eq!(a.admit(x).unwrap_err(), Refusal::MaxSessions);
        drop(held);
        let _first = a.admit(x).unwrap();
        let _second = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refusal::MaxSessions);
    }

    #[test]
    fn concurrent_admissions_never_overshoot() {
        let a = admission(1000, 64, 1000);
        let admitted: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let a = a.clone();
                    s.spawn(move || {
                        (0..100)
                            .filter_map(|i| a.admit(IpAddr::from([10, t, 0, i as u8])).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 64);
        assert_eq!(a.counts(), (64, 64));
        drop(admitted);
        assert_eq!(a.counts(), (0, 0));
    }

    #[test]
    fn rate_limited_log_is_one_line_per_interval_with_the_rest_counted() {
        let mut log = RateLimitedLog::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(log.due(start), Some(0));
        for i in 1..50 {
            assert_eq!(log.due(start + Duration::from_millis(20) * i), None);
        }
        assert_eq!(log.due(start + Duration::from_secs(1)), Some(49));
        assert_eq!(log.due(start + Duration::from_secs(3)), Some(0));
    }
}
