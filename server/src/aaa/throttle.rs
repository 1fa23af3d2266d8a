//! Back-off for password guessing: failed authentications are counted per
//! source address and per user name, and once either has failed too often
//! within a window, further attempts from that source or for that user are
//! refused, without consulting the user store, for a lockout period.
//!
//! * **Keys.** A source is its IPv4 address, or the /64 of an IPv6 address
//!   (one host usually holds a whole /64). A user name is compared without
//!   ASCII case and kept only as a keyed 64-bit hash, so every entry has the
//!   same small size whatever names a client sends.
//! * **Counting.** The first failure opens a window of `window`; failures
//!   within it are counted; the `max_failures`-th locks the key until
//!   `lockout` has passed, then the count starts afresh. Attempts refused
//!   while locked out are not failures (they do not extend the lockout, so
//!   a client that keeps retrying gets in once the lockout ends). A success
//!   clears the user's count, not the source's.
//! * **Bounded memory.** Each table holds at most `max_entries` keys; a new
//!   key evicts the least recently seen one, and evictions are reported so
//!   the caller counts them. An attacker cycling sources or names therefore
//!   costs a fixed amount of memory; the price is that they can push an
//!   idle key's count out (a key that keeps failing stays recent).
//! * **Memory follows use.** The tables start empty and grow with the keys
//!   recorded ([`LruCache::sparse`]): a server nobody fails to log in to
//!   holds nothing for them. Allocated at capacity up front (2 × 544 KiB
//!   at the default 16,384), they cost an idle server a 2 MiB page and the
//!   latency benchmark's peak 16 MB: mimalloc backs its arena with 2 MiB
//!   transparent huge pages (`server/tests/throttle_memory.rs`).
//!
//! * **Reload.** [`AuthThrottle::reconfigure`] takes a new section: the
//!   counts and lockouts already recorded stay (a reload is no way out of
//!   a lockout); new thresholds, window and lockout apply from the next
//!   failure, and a smaller `max_entries` forgets the least recent keys.
//!
//! Pure logic: time is passed in, so tests run on a virtual clock. One
//! mutex serialises the two tables and the settings; it is taken once per
//! authentication attempt, never on the packet path.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::config::AuthThrottleSection;

/// Where a client comes from, as admission control and the throttle count
/// it: an IPv4 address, or the upper 64 bits of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(Ipv4Addr),
    /// The /64 prefix of an IPv6 source.
    V6(u64),
}

impl SourceKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4),
                None => SourceKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(v4) => v4.fmt(f),
            SourceKey::V6(upper) => {
                let prefix = std::net::Ipv6Addr::from(u128::from(*upper) << 64);
                write!(f, "{prefix}/64")
            }
        }
    }
}

/// Which limit refused an attempt or engaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleKind {
    Source,
    User,
}

/// The answer to [`AuthThrottle::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Consult the user store.
    Allowed,
    /// Refuse without consulting it, until `until`.
    Throttled { by: ThrottleKind, until: Instant },
}

/// What recording a failure changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// The source is locked out from now on.
    pub source_engaged: bool,
    /// The user is locked out from now on.
    pub user_engaged: bool,
    /// Keys forgotten to make room (0, 1 or 2).
    pub evicted: u32,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table<K: std::hash::Hash + Eq> {
    entries: LruCache<K, Record>,
    max_failures: u32,
}

impl<K: std::hash::Hash + Eq + Copy> Table<K> {
    fn new(capacity: NonZeroUsize, max_failures: u32) -> Self {
        Table {
            // At most `capacity` keys, allocated as they arrive.
            entries: LruCache::sparse(capacity),
            max_failures,
        }
    }

    /// The end of `key`'s lockout, if it is locked out at `now`.
    fn locked_until(&mut self, key: &K, now: Instant) -> Option<Instant> {
        self.entries
            .peek(key)
            .and_then(|r| r.locked_until)
            .filter(|until| now < *until)
    }

    /// Counts a failure; returns (engaged, evicted).
    fn fail(&mut self, key: K, now: Instant, window: Duration, lockout: Duration) -> (bool, bool) {
        let fresh = Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        };
        let mut evicted = false;
        if !self.entries.contains(&key) {
            if let Some((old, _)) = self.entries.push(key, fresh) {
                evicted = old != key;
            }
        }
        let max = self.max_failures;
        let Some(record) = self.entries.get_mut(&key) else {
            return (false, evicted);
        };
        let lockout_over = record.locked_until.is_some_and(|until| now >= until);
        let window_over = now.saturating_duration_since(record.window_start) >= window;
        if lockout_over || (record.locked_until.is_none() && window_over) {
            *record = fresh;
        }
        if record.locked_until.is_some() {
            // A failure that slipped past the check (a concurrent
            // attempt): the lockout stands as it is.
            return (false, evicted);
        }
        record.failures = record.failures.saturating_add(1);
        if record.failures >= max {
            record.locked_until = Some(now + lockout);
            return (true, evicted);
        }
        (false, evicted)
    }

    fn clear(&mut self, key: &K) {
        self.entries.pop(key);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct Tables {
    enabled: bool,
    window: Duration,
    lockout: Duration,
    sources: Table<SourceKey>,
    users: Table<u64>,
}

/// The throttle shared by all workers.
pub struct AuthThrottle {
    /// Keys the user-name hash, so names cannot be chosen to collide.
    hasher: RandomState,
    tables: Mutex<Tables>,
}

impl fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tables = self.tables();
        f.debug_struct("AuthThrottle")
            .field("enabled", &tables.enabled)
            .field("window", &tables.window)
            .field("lockout", &tables.lockout)
            .finish_non_exhaustive()
    }
}

fn capacity(config: &AuthThrottleSection) -> NonZeroUsize {
    NonZeroUsize::new(config.max_entries).unwrap_or(NonZeroUsize::MIN)
}

impl AuthThrottle {
    pub fn new(config: &AuthThrottleSection) -> Self {
        let capacity = capacity(config);
        AuthThrottle {
            hasher: RandomState::new(),
            tables: Mutex::new(Tables {
                enabled: config.enabled,
                window: config.window,
                lockout: config.lockout,
                sources: Table::new(capacity, config.max_failures_per_source.max(1)),
                users: Table::new(capacity, config.max_failures_per_user.max(1)),
            }),
        }
    }

    /// Applies a reloaded `[auth_throttle]` (see the module doc).
    pub fn reconfigure(&self, config: &AuthThrottleSection) {
        let capacity = capacity(config);
        let mut tables = self.tables();
        tables.enabled = config.enabled;
        tables.window = config.window;
        tables.lockout = config.lockout;
        tables.sources.entries.resize(capacity);
        tables.sources.max_failures = config.max_failures_per_source.max(1);
        tables.users.entries.resize(capacity);
        tables.users.max_failures = config.max_failures_per_user.max(1);
    }

    pub fn is_enabled(&self) -> bool {
        self.tables().enabled
    }

    fn user_key(&self, user: &str) -> u64 {
        self.hasher.hash_one(user.to_ascii_lowercase())
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt from `source` as `user` may be judged now. The
    /// source's lockout is reported first.
    pub fn check(&self, now: Instant, source: IpAddr, user: &str) -> Verdict {
        let user = self.user_key(user);
        let mut tables = self.tables();
        if !tables.enabled {
            return Verdict::Allowed;
        }
        if let Some(until) = tables.sources.locked_until(&SourceKey::of(source), now) {
            return Verdict::Throttled {
                by: ThrottleKind::Source,
                until,
            };
        }
        match tables.users.locked_until(&user, now) {
            Some(until) => Verdict::Throttled {
                by: ThrottleKind::User,
                until,
            },
            None => Verdict::Allowed,
        }
    }

    /// Counts a failed attempt (credentials the user store rejected).
    pub fn record_failure(&self, now: Instant, source: IpAddr, user: &str) -> FailureOutcome {
        let user = self.user_key(user);
        let mut tables = self.tables();
        if !tables.enabled {
            return FailureOutcome::default();
        }
        let (window, lockout) = (tables.window, tables.lockout);
        let (source_engaged, source_evicted) =
            tables
                .sources
                .fail(SourceKey::of(source), now, window, lockout);
        let (user_engaged, user_evicted) = tables.users.fail(user, now, window, lockout);
        FailureOutcome {
            source_engaged,
            user_engaged,
            evicted: u32::from(source_evicted) + u32::from(user_evicted),
        }
    }

    /// A successful login clears the user's count (not the source's: a
    /// source may be a NAT shared with an attacker).
    pub fn record_success(&self, user: &str) {
        let user = self.user_key(user);
        let mut tables = self.tables();
        if tables.enabled {
            tables.users.clear(&user);
        }
    }

    /// Keys tracked: (sources, users).
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.tables();
        (tables.sources.len(), tables.users.len())
    }

    /// The lockout period.
    pub fn lockout(&self) -> Duration {
        self.tables().lockout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn config(per_source: u32, per_user: u32, entries: usize) -> AuthThrottleSection {
        AuthThrottleSection {
            enabled: true,
            window: 10 * MIN,
            max_failures_per_source: per_source,
            max_failures_per_user: per_user,
            lockout: 15 * MIN,
            max_entries: entries,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_user_is_locked_out_after_max_failures_and_let_in_after_the_lockout() {
        let t = AuthThrottle::new(&config(100, 3, 16));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for i in 0..2 {
            assert_eq!(t.check(t0, src, "alice"), Verdict::Allowed);
            let out = t.record_failure(t0 + MIN * i, src, "alice");
            assert!(!out.user_engaged);
        }
        let out = t.record_failure(t0 + 2 * MIN, src, "alice");
        assert!(out.user_engaged && !out.source_engaged);
        let until = t0 + 2 * MIN + 15 * MIN;
        // Any source, any case of the name.
        for (source, name) in [(src, "alice"), (ip("198.51.100.7"), "ALICE")] {
            assert_eq!(
                t.check(t0 + 3 * MIN, source, name),
                Verdict::Throttled {
                    by: ThrottleKind::User,
                    until
                }
            );
        }
        assert_eq!(t.check(t0 + 3 * MIN, src, "bob"), Verdict::Allowed);
        assert_eq!(t.check(until, src, "alice"), Verdict::Allowed);
        // After the lockout the count starts afresh.
        assert!(!t.record_failure(until, src, "alice").user_engaged);
        assert_eq!(t.check(until, src, "alice"), Verdict::Allowed);
    }

    #[test]
    fn reconfiguring_keeps_lockouts_and_applies_new_thresholds() {
        let t = AuthThrottle::new(&config(100, 2, 16));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        t.record_failure(t0, src, "alice");
        assert!(t.record_failure(t0, src, "alice").user_engaged);
        t.record_failure(t0, src, "bob");
        t.reconfigure(&config(100, 5, 16));
        // alice stays locked out; bob now needs five failures in all.
        assert!(matches!(
            t.check(t0 + MIN, src, "alice"),
            Verdict::Throttled { .. }
        ));
        for _ in 0..3 {
            assert!(!t.record_failure(t0 + MIN, src, "bob").user_engaged);
        }
        assert!(t.record_failure(t0 + MIN, src, "bob").user_engaged);
        // Disabled by a reload: nothing is judged any more.
        t.reconfigure(&AuthThrottleSection {
            enabled: false,
            ..config(100, 5, 16)
        });
        assert_eq!(t.check(t0 + MIN, src, "alice"), Verdict::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = AuthThrottle::new(&config(100, 3, 16));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        t.record_failure(t0, src, "alice");
        t.record_failure(t0 + MIN, src, "alice");
        // The window (10 min) from the first failure has passed.
        assert!(!t.record_failure(t0 + 11 * MIN, src, "alice").user_engaged);
        assert!(!t.record_failure(t0 + 12 * MIN, src, "alice").user_engaged);
        assert!(t.record_failure(t0 + 13 * MIN, src, "alice").user_engaged);
    }

    #[test]
    fn a_source_spraying_many_users_is_locked_out() {
        let t = AuthThrottle::new(&config(5, 100, 64));
        let t0 = Instant::now();
        let src = ip("203.0.113.9");
        for i in 0..4 {
            let out = t.record_failure(t0, src, &format!("user{i}"));
            assert!(!out.source_engaged);
        }
        assert!(t.record_failure(t0, src, "user4").source_engaged);
        assert!(matches!(
            t.check(t0, src, "somebody-else"),
            Verdict::Throttled {
                by: ThrottleKind::Source,
                ..
            }
        ));
        assert_eq!(t.check(t0, ip("203.0.113.10"), "user0"), Verdict::Allowed);
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        let t = AuthThrottle::new(&config(2, 100, 16));
        let t0 = Instant::now();
        t.record_failure(t0, ip("2001:db8:1:2::1"), "a");
        assert!(
            t.record_failure(t0, ip("2001:db8:1:2:ffff::9"), "b")
                .source_engaged
        );
        assert!(matches!(
            t.check(t0, ip("2001:db8:1:2::77"), "c"),
            Verdict::Throttled { .. }
        ));
        assert_eq!(t.check(t0, ip("2001:db8:1:3::1"), "c"), Verdict::Allowed);
        assert_eq!(
            SourceKey::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            SourceKey::of(ip("::ffff:192.0.2.1")),
            SourceKey::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn attempts_refused_while_locked_out_do_not_extend_it() {
        let t = AuthThrottle::new(&config(100, 1, 16));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        assert!(t.record_failure(t0, src, "alice").user_engaged);
        // A failure that raced past the check does not move the end.
        assert!(!t.record_failure(t0 + MIN, src, "alice").user_engaged);
        assert_eq!(
            t.check(t0 + MIN, src, "alice"),
            Verdict::Throttled {
                by: ThrottleKind::User,
                until: t0 + 15 * MIN
            }
        );
    }

    #[test]
    fn success_clears_the_user_but_not_the_source() {
        let t = AuthThrottle::new(&config(3, 3, 16));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        t.record_failure(t0, src, "alice");
        t.record_failure(t0, src, "alice");
        t.record_success("Alice");
        assert!(!t.record_failure(t0, src, "alice").user_engaged);
        // The source had three failures in all.
        assert!(t.check(t0, src, "carol") != Verdict::Allowed);
    }

    #[test]
    fn memory_is_bounded_and_evictions_are_reported() {
        let t = AuthThrottle::new(&config(1000, 1000, 8));
        let t0 = Instant::now();
        let mut evicted = 0;
        for i in 0..1000u32 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            evicted += t.record_failure(t0, source, &format!("u{i}")).evicted;
        }
        assert_eq!(t.tracked(), (8, 8));
        assert_eq!(evicted, 2 * (1000 - 8));
        // A key that keeps failing stays recent and is not pushed out.
        let t = AuthThrottle::new(&config(1000, 3, 4));
        let src = ip("192.0.2.1");
        for i in 0..2u32 {
            t.record_failure(t0, src, "alice");
            for j in 0..2u32 {
                t.record_failure(t0, src, &format!("junk{i}-{j}"));
            }
        }
        assert!(t.record_failure(t0, src, "alice").user_engaged);
    }

    #[test]
    fn disabled_throttle_allows_everything_and_keeps_nothing() {
        let mut c = config(1, 1, 16);
        c.enabled = false;
        let t = AuthThrottle::new(&c);
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        assert_eq!(
            t.record_failure(t0, src, "alice"),
            FailureOutcome::default()
        );
        assert_eq!(t.check(t0, src, "alice"), Verdict::Allowed);
        assert_eq!(t.tracked(), (0, 0));
    }
}
