//! Routes behind clients (RADIUS Framed-Route, [RFC 2865] 5.22): which
//! session owns which routed prefix, the longest-prefix match the TUN
//! path falls back to, and what the kernel's routing table should hold.
//!
//! # What is refused (and counted)
//!
//! A session's routes are claimed when its IPCP comes up (its address is
//! known then) and released when IPCP goes down or the session ends.
//! Each route is judged on its own; a refused one is logged and counted
//! under its [`RouteRefusal`] label, and the session comes up with the
//! others:
//!
//! * the default route (`/0`): `framed_route_default`. A client would
//!   take every unrouted packet of the server, and with the anti-spoofing
//!   check opened for `/0`, could send from any address;
//! * a prefix sharing an address with a client pool or the server's
//!   tunnel address: `framed_route_in_pool`. Those addresses belong to
//!   sessions through the exact table ([`super::session_table`]); a route
//!   over them would let a client send as another client;
//! * a gateway other than `0.0.0.0` or the client's own address:
//!   `framed_route_foreign_gateway`. sstpd can only route a prefix into a
//!   session; a route via some other router is not the session's to own;
//! * a prefix overlapping a live route of *another user's* session:
//!   `framed_route_overlap`. First come, first served: a second user
//!   cannot take a network another user is reachable through.
//!
//! A prefix overlapping a live route of an older session of the *same*
//! user is taken over: the route moves to the new session and the older
//! session is closed (`framed_route_taken_over`, and the older session
//! `session_taken_over`), as for a fixed address ([`super::ServerPools`]):
//! a site router that reconnects before its old connection timed out is
//! not locked out of its own network.
//!
//! Malformed values are ignored at parse time ([`parse_framed_routes`]),
//! logged, and counted with the Access-Accept's ignored attributes; at
//! most [`MAX_ROUTES_PER_SESSION`] are kept per session.
//!
//! # The lookup, and why the exact table stays the fast path
//!
//! A packet read from TUN is first looked up in the exact per-address
//! table (one atomic load). Only on a miss does the worker ask this table,
//! and when no route is live anywhere (the common case) that costs one
//! more atomic load ([`FramedRouteTable::lookup`] sees `live == 0`).
//! Otherwise each worker reads an immutable [`Snapshot`] it holds through
//! its own [`RouteReader`]: per prefix length present, longest first, a
//! sorted array searched by binary search. Writers (session up and down,
//! never per packet) change the registry under a mutex, bump a version and
//! build the new snapshot (linear in the routes) before letting go; a
//! reader that sees a new version picks up that snapshot (an `Arc` clone
//! under a lock held for nothing else) once, then reads without
//! synchronisation until the next change. No packet ever waits for a
//! rebuild. Routes of different sessions never overlap (see above),
//! so any matching prefix names the right session; longest-first is what
//! makes that true for one session's overlapping routes too.
//!
//! # The kernel
//!
//! The kernel routes follow the registry: [`FramedRouteTable::kernel_routes`]
//! is the set they should be, and [`FramedRouteTable::wait_for_change`]
//! wakes whoever installs them (`tun::routes`, on a thread of its own: an
//! rtnetlink call holds the kernel's RTNL lock and must not stall a
//! worker). Reconciling a desired set, rather than queueing add and delete
//! commands, keeps that thread's backlog bounded by the routes themselves
//! and turns a flapping session into no kernel work at all.
//!
//! `std` only, like the rest of `routing`.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::metrics::Event;
use crate::proto::route::{FramedRoute, FramedRouteError, Ipv4Prefix};
use crate::routing::session_table::SessionRef;

/// The most Framed-Routes kept for one session; more are ignored (and
/// counted with the ignored attributes). Together with the session limit
/// this bounds the table.
pub const MAX_ROUTES_PER_SESSION: usize = 32;

/// Parses the Framed-Route values of an Access-Accept ([RFC 2865] 5.22)
/// with [`FramedRoute::parse`]. Malformed values (and those beyond
/// [`MAX_ROUTES_PER_SESSION`]) are logged and left out; returns the routes
/// and how many values were left out, for the caller's ignored-attribute
/// count. Never fails: a bad route never refuses a session.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn parse_framed_routes<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<FramedRoute>, usize) {
    let mut routes = Vec::new();
    let mut ignored = 0usize;
    for value in values {
        let parsed = std::str::from_utf8(value)
            .map_err(|_| FramedRouteError::NotText)
            .and_then(FramedRoute::parse);
        match parsed {
            Ok(_) if routes.len() >= MAX_ROUTES_PER_SESSION => {
                ignored += 1;
                tracing::warn!(
                    route = %value.escape_ascii(),
                    max = MAX_ROUTES_PER_SESSION,
                    "Framed-Route ignored: too many for one session"
                );
            }
            Ok(route) => routes.push(route),
            Err(error) => {
                ignored += 1;
                tracing::warn!(
                    route = %value.escape_ascii(),
                    error = error.as_str(),
                    "Framed-Route ignored: malformed"
                );
            }
        }
    }
    (routes, ignored)
}

/// Why a route was not installed (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteRefusal {
    /// The default route.
    Default,
    /// Shares an address with a client pool or the tunnel gateway.
    InPool,
    /// A gateway that is not the client's address.
    ForeignGateway,
    /// Overlaps a live route of another user's session.
    Overlap,
}

impl RouteRefusal {
    /// The label it is counted under.
    pub fn as_str(self) -> &'static str {
        Event::from(self).label()
    }
}

impl From<RouteRefusal> for Event {
    fn from(refusal: RouteRefusal) -> Event {
        match refusal {
            RouteRefusal::Default => Event::FramedRouteDefault,
            RouteRefusal::InPool => Event::FramedRouteInPool,
            RouteRefusal::ForeignGateway => Event::FramedRouteForeignGateway,
            RouteRefusal::Overlap => Event::FramedRouteOverlap,
        }
    }
}

impl fmt::Display for RouteRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`FramedRouteTable::claim`] did with a session's routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    /// The prefixes now routed to the session (give them to
    /// [`FramedRouteTable::release`] when it goes, and to the core's
    /// source check).
    pub installed: Vec<Ipv4Prefix>,
    /// The routes refused, and why.
    pub refused: Vec<(FramedRoute, RouteRefusal)>,
    /// Routes moved from older sessions of the same user.
    pub taken_over: usize,
    /// Those older sessions (each once), to be closed.
    pub taken_from: Vec<SessionRef>,
}

/// One prefix's owner.
#[derive(Clone, Debug)]
struct Claim {
    owner: SessionRef,
    user: String,
    metric: u32,
}

/// A route the kernel should have: `prefix` via the TUN device with
/// priority `metric`; `owner` tells one claim from the next (a failed
/// install is tried again only for a new claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    /// The destination.
    pub prefix: Ipv4Prefix,
    /// The route's priority (Framed-Route's first metric).
    pub metric: u32,
    /// The session it is routed to.
    pub owner: SessionRef,
}

/// The routed prefixes of all sessions, shared by every worker.
pub struct FramedRouteTable {
    /// Address ranges no route may share an address with: the pools and
    /// the tunnel gateway.
    reserved: Vec<(Ipv4Addr, Ipv4Addr)>,
    registry: Mutex<BTreeMap<Ipv4Prefix, Claim>>,
    /// Signalled on every change (the kernel-route thread waits on it).
    changed: Condvar,
    /// Bumped on every change, under the registry lock.
    version: AtomicU64,
    /// Routes in the registry: 0 lets lookups skip everything.
    live: AtomicUsize,
    /// The snapshot of the current version (built by the writer that
    /// made it), for every worker to pick up.
    published: Mutex<Arc<Snapshot>>,
    /// Told of each route gained or lost, under the registry lock.
    observer: Option<RouteObserver>,
}

/// Told of every route the table gains (its owner) or loses (`None`),
/// while the table is locked, so the calls come in the order of the
/// changes: the TUN steering keeps its map of routed prefixes with it.
pub type RouteObserver = Box<dyn Fn(Ipv4Prefix, Option<SessionRef>) + Send + Sync>;

impl fmt::Debug for FramedRouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedRouteTable")
            .field("reserved", &self.reserved)
            .field("live", &self.live)
            .field("version", &self.version)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl FramedRouteTable {
    /// A table refusing routes over `reserved` (the pools' ranges, and the
    /// gateway as a one-address range).
    pub fn new(reserved: impl IntoIterator<Item = (Ipv4Addr, Ipv4Addr)>) -> FramedRouteTable {
        FramedRouteTable {
            reserved: reserved.into_iter().collect(),
            registry: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            version: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            published: Mutex::new(Arc::new(Snapshot::default())),
            observer: None,
        }
    }

    /// The table, telling `observer` of every change.
    pub fn with_observer(mut self, observer: RouteObserver) -> FramedRouteTable {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, prefix: Ipv4Prefix, owner: Option<SessionRef>) {
        if let Some(observer) = &self.observer {
            observer(prefix, owner);
        }
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<Ipv4Prefix, Claim>> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes `routes` to the session `owner` of `user`, whose tunnel
    /// address is `client`, as far as the rules of the module
    /// documentation allow.
    pub fn claim(
        &self,
        owner: SessionRef,
        user: &str,
        client: Ipv4Addr,
        routes: &[FramedRoute],
    ) -> Claimed {
        let mut claimed = Claimed::default();
        if routes.is_empty() {
            return claimed;
        }
        let mut registry = self.registry();
        for route in routes {
            let prefix = route.prefix;
            let refusal = if prefix.is_default() {
                Some(RouteRefusal::Default)
            } else if route.gateway.is_some_and(|g| g != client) {
                Some(RouteRefusal::ForeignGateway)
            } else if self
                .reserved
                .iter()
                .any(|&(first, last)| prefix.overlaps_range(first, last))
            {
                Some(RouteRefusal::InPool)
            } else {
                let overlapping = overlapping(&registry, prefix);
                if overlapping
                    .iter()
                    .any(|(_, c)| c.owner != owner && c.user != user)
                {
                    Some(RouteRefusal::Overlap)
                } else {
                    for (other, c) in overlapping {
                        if c.owner == owner {
                            continue;
                        }
                        // The same user's older session: the route moves.
                        registry.remove(&other);
                        self.observe(other, None);
                        claimed.taken_over += 1;
                        if !claimed.taken_from.contains(&c.owner) {
                            claimed.taken_from.push(c.owner);
                        }
                    }
                    None
                }
            };
            if let Some(refusal) = refusal {
                claimed.refused.push((*route, refusal));
                continue;
            }
            if claimed.installed.contains(&prefix) {
                continue;
            }
            registry.insert(
                prefix,
                Claim {
                    owner,
                    user: user.to_owned(),
                    metric: route.metric,
                },
            );
            self.observe(prefix, Some(owner));
            claimed.installed.push(prefix);
        }
        self.changed_locked(&registry);
        claimed
    }

    /// Withdraws `prefixes` from `owner`; a prefix another session has
    /// taken over since stays with it. Returns how many were withdrawn.
    pub fn release(&self, owner: SessionRef, prefixes: &[Ipv4Prefix]) -> usize {
        if prefixes.is_empty() {
            return 0;
        }
        let mut registry = self.registry();
        let mut released = 0;
        for prefix in prefixes {
            if registry.get(prefix).is_some_and(|c| c.owner == owner) {
                registry.remove(prefix);
                self.observe(*prefix, None);
                released += 1;
            }
        }
        if released > 0 {
            self.changed_locked(&registry);
        }
        released
    }

    /// Calls `f` with those of `prefixes` that `owner` still holds, while
    /// the table is locked: what `f` does to them (the drop filter's marks)
    /// cannot cross a take-over, which the observer sees after it.
    pub fn with_owned<R>(
        &self,
        owner: SessionRef,
        prefixes: &[Ipv4Prefix],
        f: impl FnOnce(&[Ipv4Prefix]) -> R,
    ) -> R {
        if prefixes.is_empty() {
            // Most sessions have no routes: no lock to take.
            return f(&[]);
        }
        let registry = self.registry();
        let owned: Vec<Ipv4Prefix> = prefixes
            .iter()
            .filter(|prefix| registry.get(prefix).is_some_and(|c| c.owner == owner))
            .copied()
            .collect();
        f(&owned)
    }

    /// After a change, with the registry still locked: a new version, its
    /// snapshot published, the live count, and the waiters woken.
    fn changed_locked(&self, registry: &BTreeMap<Ipv4Prefix, Claim>) {
        let version = self.version.load(Ordering::Acquire) + 1;
        let snapshot = Arc::new(Snapshot::build(version, registry));
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.live.store(registry.len(), Ordering::Release);
        self.version.store(version, Ordering::Release);
        self.changed.notify_all();
    }

    /// Routes live in the table.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Whether no route is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader for one worker's lookups.
    pub fn reader(&self) -> RouteReader {
        RouteReader {
            snapshot: Arc::new(Snapshot::default()),
        }
    }

    /// The session `dst` is routed to by the longest live prefix holding
    /// it, if any. One atomic load while no route is live; otherwise a
    /// second one, and a search of `reader`'s snapshot (refreshed first if
    /// the table changed since).
    #[inline]
    pub fn lookup(&self, reader: &mut RouteReader, dst: Ipv4Addr) -> Option<SessionRef> {
        if self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        if self.version.load(Ordering::Acquire) != reader.snapshot.version {
            self.refresh(reader);
        }
        reader.snapshot.lookup(dst)
    }

    /// Brings `reader` to the published snapshot (built by the writer, so
    /// never here on the packet path).
    #[cold]
    fn refresh(&self, reader: &mut RouteReader) {
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        reader.snapshot = published.clone();
    }

    /// The routes the kernel should have now, and the table's version.
    pub fn kernel_routes(&self) -> (u64, Vec<KernelRoute>) {
        let registry = self.registry();
        let routes = registry
            .iter()
            .map(|(prefix, c)| KernelRoute {
                prefix: *prefix,
                metric: c.metric,
                owner: c.owner,
            })
            .collect();
        (self.version.load(Ordering::Acquire), routes)
    }

    /// Waits until the table's version is not `seen` or `timeout` has
    /// passed (or [`FramedRouteTable::wake`] was called); returns the
    /// version then.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let registry = self.registry();
        if self.version.load(Ordering::Acquire) != seen {
            return self.version.load(Ordering::Acquire);
        }
        let _ = self
            .changed
            .wait_timeout(registry, timeout)
            .unwrap_or_else(|e| e.into_inner());
        self.version.load(Ordering::Acquire)
    }

    /// Wakes every [`FramedRouteTable::wait_for_change`] (to stop).
    pub fn wake(&self) {
        let _registry = self.registry();
        self.changed.notify_all();
    }
}

/// The prefixes in `registry` sharing an address with `prefix`: those it
/// holds (a range of the map) and those holding it (one probe per shorter
/// length).
fn overlapping(
    registry: &BTreeMap<Ipv4Prefix, Claim>,
    prefix: Ipv4Prefix,
) -> Vec<(Ipv4Prefix, Claim)> {
    let mut found: Vec<(Ipv4Prefix, Claim)> = Vec::new();
    // Prefixes at the same address but shorter sort before `prefix`; they
    // hold it and the probes below find them.
    for (p, c) in registry.range(prefix..) {
        if p.addr() > prefix.last() {
            break;
        }
        if prefix.overlaps(p) {
            found.push((*p, c.clone()));
        }
    }
    for len in 0..prefix.prefix_len() {
        let mask = match len {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len)),
        };
        let Ok(shorter) = Ipv4Prefix::new(Ipv4Addr::from(u32::from(prefix.addr()) & mask), len)
        else {
            continue;
        };
        if let Some(c) = registry.get(&shorter) {
            if !found.iter().any(|(p, _)| *p == shorter) {
                found.push((shorter, c.clone()));
            }
        }
    }
    found
}

/// One worker's view of the table (see [`FramedRouteTable::lookup`]).
#[derive(Debug)]
pub struct RouteReader {
    snapshot: Arc<Snapshot>,
}

/// The routes at one version, for lookups: per prefix length present,
/// longest first, the networks sorted.
#[derive(Debug, Default)]
pub struct Snapshot {
    version: u64,
    by_len: Vec<(u32, Vec<(u32, SessionRef)>)>,
}

impl Snapshot {
    fn build(version: u64, registry: &BTreeMap<Ipv4Prefix, Claim>) -> Snapshot {
        let mut by_len: BTreeMap<std::cmp::Reverse<u8>, Vec<(u32, SessionRef)>> = BTreeMap::new();
        for (prefix, claim) in registry {
            by_len
                .entry(std::cmp::Reverse(prefix.prefix_len()))
                .or_default()
                .push((u32::from(prefix.addr()), claim.owner));
        }
        Snapshot {
            version,
            by_len: by_len
                .into_iter()
                .map(|(std::cmp::Reverse(len), mut networks)| {
                    networks.sort_unstable_by_key(|&(network, _)| network);
                    let mask = match len {
                        0 => 0,
                        len => u32::MAX << (32 - u32::from(len)),
                    };
                    (mask, networks)
                })
                .collect(),
        }
    }

    #[inline]
    fn lookup(&self, dst: Ipv4Addr) -> Option<SessionRef> {
        let dst = u32::from(dst);
        self.by_len.iter().find_map(|(mask, networks)| {
            let key = dst & mask;
            networks
                .binary_search_by_key(&key, |&(network, _)| network)
                .ok()
                .map(|i| networks[i].1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(slot: u32) -> SessionRef {
        SessionRef {
            worker: 0,
            slot,
            generation: 1,
        }
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn p(s: &str) -> Ipv4Prefix {
        FramedRoute::parse(s).unwrap().prefix
    }

    fn route(s: &str) -> FramedRoute {
        FramedRoute::parse(s).unwrap()
    }

    /// The default configuration's pool and gateway.
    fn table() -> FramedRouteTable {
        FramedRouteTable::new([
            (a("10.99.0.2"), a("10.99.0.254")),
            (a("10.99.0.1"), a("10.99.0.1")),
        ])
    }

    const ALICE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 10);

    #[test]
    fn parsing_keeps_the_good_routes_and_counts_the_rest() {
        let values: Vec<&[u8]> = vec![
            b"192.0.2.0/24 0.0.0.0 1",
            b"bogus",
            b"\xff\xfe",
            b"198.51.100.0/25",
        ];
        let (routes, ignored) = parse_framed_routes(values);
        assert_eq!(
            routes,
            [route("192.0.2.0/24 0.0.0.0 1"), route("198.51.100.0/25")]
        );
        assert_eq!(ignored, 2);
        let many: Vec<String> = (0..40).map(|i| format!("203.0.{i}.0/24")).collect();
        let (routes, ignored) = parse_framed_routes(many.iter().map(|s| s.as_bytes()));
        assert_eq!(routes.len(), MAX_ROUTES_PER_SESSION);
        assert_eq!(ignored, 40 - MAX_ROUTES_PER_SESSION);
    }

    #[test]
    fn refusals_by_rule() {
        let t = table();
        let claimed = t.claim(
            r(1),
            "alice",
            ALICE,
            &[
                route("0.0.0.0/0"),
                route("10.99.0.128/25"),
                route("10.0.0.0/8"),
                route("10.99.0.1/32"),
                route("192.0.2.0/24 192.0.2.1 1"),
                route("192.0.2.0/24 10.99.0.10 1"),
                route("198.51.100.0/24 0.0.0.0 7"),
            ],
        );
        let labels: Vec<&str> = claimed
            .refused
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        assert_eq!(
            labels,
            [
                "framed_route_default",
                "framed_route_in_pool",
                "framed_route_in_pool",
                "framed_route_in_pool",
                "framed_route_foreign_gateway",
            ]
        );
        // The client's own address as gateway is the RFC's "user's address".
        assert_eq!(claimed.installed, [p("192.0.2.0/24"), p("198.51.100.0/24")]);
        assert_eq!(t.len(), 2);
        let (_, kernel) = t.kernel_routes();
        assert_eq!(
            kernel,
            [
                KernelRoute {
                    prefix: p("192.0.2.0/24"),
                    metric: 1,
                    owner: r(1)
                },
                KernelRoute {
                    prefix: p("198.51.100.0/24"),
                    metric: 7,
                    owner: r(1)
                },
            ]
        );
    }

    #[test]
    fn another_users_overlapping_route_is_refused_until_released() {
        let t = table();
        let alice = t.claim(r(1), "alice", ALICE, &[route("192.0.2.0/24")]);
        assert_eq!(alice.installed, [p("192.0.2.0/24")]);
        let bob = a("10.99.0.11");
        for overlapping in [
            "192.0.2.0/24",
            "192.0.2.128/25",
            "192.0.0.0/16",
            "192.0.2.9",
        ] {
            let claimed = t.claim(r(2), "bob", bob, &[route(overlapping)]);
            assert_eq!(
                claimed.refused,
                [(route(overlapping), RouteRefusal::Overlap)],
                "{overlapping}"
            );
            assert!(claimed.taken_from.is_empty());
        }
        // Next door is fine.
        let claimed = t.claim(r(2), "bob", bob, &[route("192.0.3.0/24")]);
        assert_eq!(claimed.installed, [p("192.0.3.0/24")]);
        // A late release by someone else changes nothing.
        assert_eq!(t.release(r(2), &[p("192.0.2.0/24")]), 0);
        assert_eq!(t.release(r(1), &[p("192.0.2.0/24")]), 1);
        let claimed = t.claim(r(2), "bob", bob, &[route("192.0.2.128/25")]);
        assert_eq!(claimed.installed, [p("192.0.2.128/25")]);
    }

    #[test]
    fn the_same_users_newer_session_takes_the_routes_over() {
        let t = table();
        t.claim(
            r(1),
            "alice",
            ALICE,
            &[route("192.0.2.0/24"), route("203.0.113.0/24")],
        );
        let again = t.claim(r(7), "alice", a("10.99.0.12"), &[route("192.0.2.0/25")]);
        assert_eq!(again.installed, [p("192.0.2.0/25")]);
        assert_eq!(again.taken_over, 1);
        assert_eq!(again.taken_from, [r(1)]);
        // What each still holds (what its drop marks may cover).
        let asked = [p("192.0.2.0/24"), p("203.0.113.0/24"), p("198.51.100.0/24")];
        let owned = t.with_owned(r(1), &asked, |owned| owned.to_vec());
        assert_eq!(owned, [p("203.0.113.0/24")]);
        assert_eq!(t.with_owned(r(7), &[p("192.0.2.0/25")], <[_]>::len), 1);
        let mut reader = t.reader();
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), Some(r(7)));
        // Not the new session's: gone with the old route.
        assert_eq!(t.lookup(&mut reader, a("192.0.2.200")), None);
        // The old session's other route stays until it ends.
        assert_eq!(t.lookup(&mut reader, a("203.0.113.5")), Some(r(1)));
        // When it ends, it releases everything it had: only its own go.
        assert_eq!(
            t.release(r(1), &[p("192.0.2.0/24"), p("203.0.113.0/24")]),
            1
        );
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), Some(r(7)));
        assert_eq!(t.lookup(&mut reader, a("203.0.113.5")), None);
    }

    /// The observer sees every route gained and lost, in order, and ends
    /// holding exactly what the table holds (the steering's prefix map is
    /// kept so).
    #[test]
    fn the_observer_sees_every_change_in_order() {
        type Change = (Ipv4Prefix, Option<SessionRef>);
        let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
        let t = table().with_observer(Box::new({
            let seen = seen.clone();
            move |prefix, owner| seen.lock().unwrap().push((prefix, owner))
        }));
        t.claim(
            r(1),
            "alice",
            ALICE,
            &[
                route("192.0.2.0/24"),
                route("203.0.113.0/24"),
                route("0.0.0.0/0"),
            ],
        );
        t.claim(r(7), "alice", a("10.99.0.12"), &[route("192.0.2.0/25")]);
        t.release(r(1), &[p("192.0.2.0/24"), p("203.0.113.0/24")]);
        t.release(r(7), &[p("192.0.2.0/25")]);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (p("192.0.2.0/24"), Some(r(1))),
                (p("203.0.113.0/24"), Some(r(1))),
                // Taken over by the newer session, then its own.
                (p("192.0.2.0/24"), None),
                (p("192.0.2.0/25"), Some(r(7))),
                // The old session's release: only what it still had.
                (p("203.0.113.0/24"), None),
                (p("192.0.2.0/25"), None),
            ]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn one_sessions_routes_may_overlap_and_the_longest_wins() {
        let t = table();
        let claimed = t.claim(
            r(1),
            "alice",
            ALICE,
            &[
                route("192.0.0.0/16"),
                route("192.0.2.0/24"),
                route("192.0.2.0/24"),
            ],
        );
        assert_eq!(claimed.installed, [p("192.0.0.0/16"), p("192.0.2.0/24")]);
        assert!(claimed.refused.is_empty());
        let mut reader = t.reader();
        assert_eq!(t.lookup(&mut reader, a("192.0.2.3")), Some(r(1)));
        assert_eq!(t.lookup(&mut reader, a("192.0.77.3")), Some(r(1)));
        assert_eq!(t.lookup(&mut reader, a("192.1.0.0")), None);
    }

    #[test]
    fn lookups_see_every_change_and_cost_nothing_without_routes() {
        let t = table();
        let mut reader = t.reader();
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), None);
        assert_eq!(reader.snapshot.version, 0, "no route: no refresh");
        t.claim(r(1), "alice", ALICE, &[route("192.0.2.0/24")]);
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), Some(r(1)));
        let mut other = t.reader();
        assert_eq!(t.lookup(&mut other, a("192.0.2.1")), Some(r(1)));
        assert!(
            Arc::ptr_eq(&reader.snapshot, &other.snapshot),
            "one rebuild per change, shared"
        );
        t.release(r(1), &[p("192.0.2.0/24")]);
        assert!(t.is_empty());
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), None);
        t.claim(r(2), "bob", a("10.99.0.11"), &[route("192.0.2.0/24")]);
        assert_eq!(t.lookup(&mut reader, a("192.0.2.1")), Some(r(2)));
    }

    #[test]
    fn waiters_wake_on_a_change() {
        let t = Arc::new(table());
        let (seen, _) = t.kernel_routes();
        let waiter = {
            let t = t.clone();
            std::thread::spawn(move || t.wait_for_change(seen, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        t.claim(r(1), "alice", ALICE, &[route("192.0.2.0/24")]);
        assert_ne!(waiter.join().unwrap(), seen);
        // Already changed: no wait at all.
        assert_ne!(t.wait_for_change(seen, Duration::from_secs(10)), seen);
    }

    proptest! {
        /// The snapshot agrees with a linear longest-prefix match over the
        /// claimed routes.
        #[test]
        fn lookup_is_the_longest_prefix_match(
            routes in proptest::collection::vec((any::<u32>(), 1u8..=32, 0u32..4), 0..24),
            probes in proptest::collection::vec(any::<u32>(), 1..32),
        ) {
            let t = FramedRouteTable::new([]);
            let mut live: Vec<(Ipv4Prefix, SessionRef)> = Vec::new();
            for (addr, len, owner) in routes {
                let mask = u32::MAX << (32 - u32::from(len));
                let prefix = Ipv4Prefix::new(Ipv4Addr::from(addr & mask), len).unwrap();
                let owner = r(owner);
                let claimed = t.claim(owner, &format!("user{}", owner.slot), ALICE, &[FramedRoute::new(prefix)]);
                if claimed.installed == [prefix] {
                    live.retain(|(p, _)| *p != prefix);
                    live.push((prefix, owner));
                }
            }
            let mut reader = t.reader();
            for probe in probes {
                let dst = Ipv4Addr::from(probe);
                let expected = live
                    .iter()
                    .filter(|(p, _)| p.contains(dst))
                    .max_by_key(|(p, _)| p.prefix_len())
                    .map(|(_, o)| *o);
                prop_assert_eq!(t.lookup(&mut reader, dst), expected);
                // Refusals kept different owners apart.
                let owners: std::collections::HashSet<_> =
                    live.iter().filter(|(p, _)| p.contains(dst)).map(|(_, o)| *o).collect();
                prop_assert!(owners.len() <= 1);
            }
        }
    }
}
