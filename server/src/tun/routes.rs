//! Kernel routes for the prefixes routed behind clients (RADIUS
//! Framed-Route, [RFC 2865] 5.22): one route per prefix via the TUN
//! device, what `ip route add PREFIX dev TUN metric M proto 83` makes,
//! added over rtnetlink ([RFC 3549] 3.1.1, rtnetlink(7)) with
//! `netlink-packet-route` and `netlink-sys`.
//!
//! **Whose routes.** Every route sstpd adds carries the routing protocol
//! number [`ROUTE_PROTOCOL`] (83, unassigned in iproute2's `rt_protos`),
//! in the main table, so `ip route show proto 83` lists exactly sstpd's,
//! and sstpd never touches a route it did not make: at start it removes
//! the IPv4 routes of the main table with that number (left by a run that
//! crashed with a persistent device, or added by hand) and nothing else.
//! One sstpd per network namespace owns the number. Adds use
//! `NLM_F_EXCL`: a route an operator already has for the same prefix and
//! metric is left alone, and the add fails (counted, logged).
//!
//! **Off the workers.** The rtnetlink calls run on a thread of their own
//! (`sstpd-routes`), with a blocking socket opened at start in the
//! server's network namespace. A route change holds the kernel's RTNL
//! lock, which a routing daemon loading a full table can hold for
//! seconds; a worker must not wait on it. The thread does not take
//! commands: it makes the kernel's routes match
//! [`FramedRouteTable::kernel_routes`] whenever the table changes, so its
//! work is bounded by the routes themselves, and a session that comes and
//! goes before the thread looks costs nothing.
//!
//! **Failures.** A route the kernel refuses is counted
//! (`kernel_route_add_failed`) and logged, and not tried again for that
//! session; the session stays up with its own address and without that
//! route (refusing the session would turn a routing problem into an
//! outage for the user). A failed delete is counted
//! (`kernel_route_delete_failed`); a route that is already gone (its
//! device went away) counts as deleted. At stop, every route the thread
//! added is deleted.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 3549]: https://www.rfc-editor.org/rfc/rfc3549

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::metrics::{Event, Metrics};
use crate::proto::route::Ipv4Prefix;
use crate::routing::framed_route::{FramedRouteTable, KernelRoute};
use crate::routing::session_table::SessionRef;

/// The routing protocol number of sstpd's routes (`rtm_protocol`; values
/// above 4 are not interpreted by the kernel, rtnetlink(7)). 83 is 'S',
/// and unassigned in iproute2's `rt_protos`; name it for `ip` with
/// `echo "83 sstpd" > /etc/iproute2/rt_protos.d/sstpd.conf`.
pub const ROUTE_PROTOCOL: u8 = 83;

/// The main routing table (`RT_TABLE_MAIN`).
const MAIN_TABLE: u8 = RouteHeader::RT_TABLE_MAIN;

/// How long an rtnetlink answer may take before the call counts as failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the thread looks at the table without being woken (a safety
/// net: every change wakes it).
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// A blocking rtnetlink socket for route requests.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").finish_non_exhaustive()
    }
}

/// The largest datagram read: dumps come in datagrams of up to 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket2::SockRef::from(&socket.as_fd()).set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Rtnl {
            socket,
            sequence: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.sequence)
    }

    /// Reads answers to `sequence` and hands each message to `each`
    /// until `each` says the exchange is over (`Some`).
    fn receive<T>(
        &mut self,
        sequence: u32,
        mut each: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        loop {
            self.buf.clear();
            self.buf.reserve(RECV_BUFFER);
            let n = self.socket.recv(&mut self.buf, libc::MSG_TRUNC)?;
            if n > self.buf.len() {
                return Err(io::Error::other("rtnetlink answer truncated"));
            }
            let mut offset = 0;
            while offset < n {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                        .map_err(|e| {
                            io::Error::other(format!("rtnetlink answer unreadable: {e}"))
                        })?;
                let len = message.header.length as usize;
                if len == 0 {
                    return Err(io::Error::other("rtnetlink message of length 0"));
                }
                offset += (len + 3) & !3;
                if message.header.sequence_number != sequence {
                    continue;
                }
                if let Some(done) = each(message) {
                    return done;
                }
            }
        }
    }

    /// Sends `message` asking for an acknowledgement; the kernel's error,
    /// if it refused.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let sequence = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.receive(sequence, |answer| match answer.payload {
            NetlinkPayload::Error(error) => Some(match error.code {
                None => Ok(()),
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
            }),
            _ => None,
        })
    }

    /// Adds `prefix` via the device `ifindex` with priority `metric`,
    /// protocol [`ROUTE_PROTOCOL`], in the main table; fails with
    /// `EEXIST` if that route exists already.
    pub fn add_route(&mut self, prefix: Ipv4Prefix, metric: u32, ifindex: u32) -> io::Result<()> {
        let message = route_message(prefix, metric, Some(ifindex), RouteScope::Link);
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes sstpd's route to `prefix` with priority `metric` (via
    /// `ifindex`, when given); `ESRCH` if there is none.
    pub fn delete_route(
        &mut self,
        prefix: Ipv4Prefix,
        metric: u32,
        ifindex: Option<u32>,
    ) -> io::Result<()> {
        // Scope "nowhere" matches any scope (what `ip route del` sends).
        let message = route_message(prefix, metric, ifindex, RouteScope::NoWhere);
        self.request(RouteNetlinkMessage::DelRoute(message), 0)
    }

    /// sstpd's IPv4 routes in the main table: prefix, priority and
    /// output device.
    pub fn own_routes(&mut self) -> io::Result<Vec<(Ipv4Prefix, u32, Option<u32>)>> {
        let mut request = RouteMessage::default();
        request.header.address_family = AddressFamily::Inet;
        let sequence = self.send(
            RouteNetlinkMessage::GetRoute(request),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        let mut found = Vec::new();
        self.receive(sequence, |answer| match answer.payload {
            NetlinkPayload::Done(_) => Some(Ok(())),
            NetlinkPayload::Error(error) => Some(Err(error.code.map_or_else(
                || io::Error::other("dump ended by an ACK"),
                |c| io::Error::from_raw_os_error(-c.get()),
            ))),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                if let Some(own) = own_route(&route) {
                    found.push(own);
                }
                None
            }
            _ => None,
        })?;
        Ok(found)
    }
}

/// A route message for `prefix` in the main table with sstpd's protocol.
fn route_message(
    prefix: Ipv4Prefix,
    metric: u32,
    ifindex: Option<u32>,
    scope: RouteScope,
) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = prefix.prefix_len();
    message.header.table = MAIN_TABLE;
    message.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    message.header.scope = scope;
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(
            prefix.addr(),
        )));
    if let Some(ifindex) = ifindex {
        message.attributes.push(RouteAttribute::Oif(ifindex));
    }
    message.attributes.push(RouteAttribute::Priority(metric));
    message
}

/// `route` as (prefix, priority, device) if it is one of sstpd's: IPv4,
/// main table, protocol [`ROUTE_PROTOCOL`].
fn own_route(route: &RouteMessage) -> Option<(Ipv4Prefix, u32, Option<u32>)> {
    let header = &route.header;
    if header.address_family != AddressFamily::Inet || u8::from(header.protocol) != ROUTE_PROTOCOL {
        return None;
    }
    let mut table = u32::from(header.table);
    let (mut dst, mut metric, mut oif) = (Ipv4Addr::UNSPECIFIED, 0, None);
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(MAIN_TABLE) {
        return None;
    }
    Some((
        Ipv4Prefix::new(dst, header.destination_prefix_length).ok()?,
        metric,
        oif,
    ))
}

/// The thread keeping the kernel's routes in step with a
/// [`FramedRouteTable`]; stopped (deleting its routes) by
/// [`KernelRoutes::stop`] or on drop.
#[derive(Debug)]
pub struct KernelRoutes {
    table: Arc<FramedRouteTable>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KernelRoutes {
    /// Opens the rtnetlink socket (in the calling thread's namespace),
    /// removes sstpd's routes left from before (counted as
    /// `kernel_route_stale_removed`), and starts the thread that installs
    /// `table`'s routes via the device `ifindex`.
    pub fn start(
        table: Arc<FramedRouteTable>,
        ifindex: u32,
        metrics: Metrics,
    ) -> io::Result<KernelRoutes> {
        let mut rtnl = Rtnl::open()?;
        remove_stale(&mut rtnl, &metrics);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sstpd-routes".into())
                .spawn(move || {
                    let mut sync = Reconciler::new(rtnl, ifindex, metrics);
                    while !stop.load(Ordering::Acquire) {
                        let (seen, desired) = table.kernel_routes();
                        sync.reconcile(&desired);
                        // Copy the table again only once it has changed; the
                        // idle wake is only to look at `stop`.
                        while !stop.load(Ordering::Acquire)
                            && table.wait_for_change(seen, IDLE_WAKE) == seen
                        {
                        }
                    }
                    sync.reconcile(&[]);
                })?
        };
        Ok(KernelRoutes {
            table,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread once it has deleted the routes it added.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.table.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for KernelRoutes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Deletes every route of sstpd's in the main table (see the module
/// documentation); failures are logged and counted.
fn remove_stale(rtnl: &mut Rtnl, metrics: &Metrics) {
    let routes = match rtnl.own_routes() {
        Ok(routes) => routes,
        Err(error) => {
            metrics.global().event(Event::KernelRouteDeleteFailed);
            tracing::warn!(%error, "cannot list routes of an earlier run");
            return;
        }
    };
    for (prefix, metric, oif) in routes {
        match rtnl.delete_route(prefix, metric, oif) {
            Ok(()) => {
                metrics.global().event(Event::KernelRouteStaleRemoved);
                tracing::info!(%prefix, metric, "removed a route sstpd left before");
            }
            Err(error) => {
                metrics.global().event(Event::KernelRouteDeleteFailed);
                tracing::warn!(%prefix, %error, "cannot remove a route sstpd left before");
            }
        }
    }
}

/// What the thread added, and what failed, by prefix.
struct Reconciler {
    rtnl: Rtnl,
    ifindex: u32,
    metrics: Metrics,
    installed: HashMap<Ipv4Prefix, u32>,
    /// Routes the kernel refused, not tried again for the same claim.
    failed: HashMap<Ipv4Prefix, (u32, SessionRef)>,
}

impl Reconciler {
    fn new(rtnl: Rtnl, ifindex: u32, metrics: Metrics) -> Reconciler {
        Reconciler {
            rtnl,
            ifindex,
            metrics,
            installed: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Makes the kernel hold `desired`: deletes what is no longer wanted
    /// (or wanted with another metric), then adds what is missing.
    fn reconcile(&mut self, desired: &[KernelRoute]) {
        let wanted: HashMap<Ipv4Prefix, &KernelRoute> =
            desired.iter().map(|r| (r.prefix, r)).collect();
        let global = self.metrics.global();
        let stale: Vec<(Ipv4Prefix, u32)> = self
            .installed
            .iter()
            .filter(|(prefix, metric)| wanted.get(prefix).is_none_or(|r| r.metric != **metric))
            .map(|(p, m)| (*p, *m))
            .collect();
        for (prefix, metric) in stale {
            self.installed.remove(&prefix);
            match self.rtnl.delete_route(prefix, metric, Some(self.ifindex)) {
                Ok(()) => {
                    global.event(Event::KernelRouteDeleted);
                    tracing::debug!(%prefix, "kernel route deleted");
                }
                // Gone with its device, or by hand: what was wanted.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    global.event(Event::KernelRouteDeleted);
                }
                Err(error) => {
                    global.event(Event::KernelRouteDeleteFailed);
                    tracing::warn!(%prefix, %error, "cannot delete the kernel route");
                }
            }
        }
        self.failed.retain(|prefix, (metric, owner)| {
            wanted
                .get(prefix)
                .is_some_and(|r| r.metric == *metric && r.owner == *owner)
        });
        for route in desired {
            if self.installed.contains_key(&route.prefix) || self.failed.contains_key(&route.prefix)
            {
                continue;
            }
            match self
                .rtnl
                .add_route(route.prefix, route.metric, self.ifindex)
            {
                Ok(()) => {
                    global.event(Event::KernelRouteAdded);
                    tracing::debug!(prefix = %route.prefix, metric = route.metric, "kernel route added");
                    self.installed.insert(route.prefix, route.metric);
                }
                Err(error) => {
                    global.event(Event::KernelRouteAddFailed);
                    tracing::warn!(
                        prefix = %route.prefix,
                        metric = route.metric,
                        %error,
                        "cannot add the kernel route; the session carries on without it"
                    );
                    self.failed
                        .insert(route.prefix, (route.metric, route.owner));
                }
            }
        }
    }
}

/// sstpd's routes as `ip -4 route show proto 83` lists them in the
/// calling thread's network namespace, one a line (for tests: what an
/// operator sees). Panics if `ip` fails.
#[cfg(any(test, feature = "testing"))]
pub fn shown_routes() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "show", "proto", &ROUTE_PROTOCOL.to_string()])
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip route show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::route::FramedRoute;
    use crate::testing::netns::NetNs;

    fn prefix(text: &str) -> Ipv4Prefix {
        FramedRoute::parse(text).unwrap().prefix
    }

    /// [`shown_routes`] in `ns`.
    fn shown(ns: &NetNs) -> Vec<String> {
        ns.run(shown_routes)
    }

    fn ip(ns: &NetNs, args: &[&str]) {
        let out = ns.command("ip").args(args).output().expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ifindex(ns: &NetNs, name: &str) -> u32 {
        let name = name.to_owned();
        ns.run(move || {
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: a valid NUL-terminated name.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        })
    }

    #[test]
    fn routes_follow_the_table_and_go_at_stop() {
        let ns = NetNs::new("sstpd-routes").expect("namespace");
        ip(
            &ns,
            &["link", "add", "rt0", "type", "veth", "peer", "name", "rt1"],
        );
        ip(&ns, &["link", "set", "rt0", "up"]);
        ip(&ns, &["link", "set", "rt1", "up"]);
        // One of an earlier run, and an operator's static route.
        ip(
            &ns,
            &[
                "route",
                "add",
                "203.0.113.0/24",
                "dev",
                "rt0",
                "proto",
                "83",
            ],
        );
        ip(
            &ns,
            &[
                "route",
                "add",
                "198.51.100.0/24",
                "dev",
                "rt0",
                "metric",
                "9",
            ],
        );
        let index = ifindex(&ns, "rt0");
        let table = Arc::new(FramedRouteTable::new([]));
        let metrics = Metrics::new(1);
        let mut routes = {
            let (table, metrics) = (table.clone(), metrics.clone());
            ns.run(move || KernelRoutes::start(table, index, metrics))
                .expect("started")
        };
        let count = |e| metrics.snapshot().count(e);
        assert_eq!(count(Event::KernelRouteStaleRemoved), 1);
        assert!(shown(&ns).is_empty(), "{:?}", shown(&ns));

        let owner = SessionRef {
            worker: 0,
            slot: 1,
            generation: 1,
        };
        let client = Ipv4Addr::new(10, 99, 0, 10);
        let claimed = table.claim(
            owner,
            "alice",
            client,
            &[
                FramedRoute::parse("192.0.2.0/24 0.0.0.0 5").unwrap(),
                // The operator's: refused by the kernel, not replaced.
                FramedRoute::parse("198.51.100.0/24 0.0.0.0 9").unwrap(),
            ],
        );
        assert_eq!(claimed.installed.len(), 2);
        let wait = |f: &dyn Fn(&[String]) -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let now = shown(&ns);
                if f(&now) {
                    return now;
                }
                assert!(std::time::Instant::now() < deadline, "{now:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let now = wait(&|r| r.len() == 1);
        assert_eq!(now, ["192.0.2.0/24 dev rt0 scope link metric 5"]);
        assert!(wait_for(|| count(Event::KernelRouteAddFailed) == 1));
        assert_eq!(count(Event::KernelRouteAdded), 1);

        table.release(owner, &claimed.installed);
        wait(&|r| r.is_empty());
        assert!(wait_for(|| count(Event::KernelRouteDeleted) == 1));

        table.claim(
            owner,
            "alice",
            client,
            &[FramedRoute::parse("192.0.2.128/25").unwrap()],
        );
        wait(&|r| r.len() == 1);
        routes.stop();
        assert!(shown(&ns).is_empty());
        // The operator's route was never touched.
        let out = ns
            .command("ip")
            .args(["-4", "route", "show", "198.51.100.0/24"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("metric 9"));
        assert_eq!(prefix("192.0.2.128/25").prefix_len(), 25);
    }

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn route_messages_carry_the_protocol_table_and_device() {
        let message = route_message(prefix("192.0.2.0/24"), 7, Some(3), RouteScope::Link);
        assert_eq!(message.header.destination_prefix_length, 24);
        assert_eq!(message.header.table, 254);
        assert_eq!(u8::from(message.header.protocol), ROUTE_PROTOCOL);
        assert_eq!(
            own_route(&message),
            Some((prefix("192.0.2.0/24"), 7, Some(3)))
        );
        let mut other = message.clone();
        other.header.protocol = RouteProtocol::Static;
        assert_eq!(own_route(&other), None);
        let mut elsewhere = message;
        elsewhere.header.table = 100;
        assert_eq!(own_route(&elsewhere), None);
    }
}
