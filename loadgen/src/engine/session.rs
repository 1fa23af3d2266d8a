//! One session's life in each mode: set up, wait for the window, generate
//! traffic, drain, ask the peer, close. And what it does with each packet
//! that arrives from the tunnel.

use std::cell::Cell;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sstpd::client::{self, Client, ClientSendError, IpHandler};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::Worker;
use crate::backoff::Backoff;
use crate::config::{Direction, Mode, DEFAULT_PEER_PORT};
use crate::follow::{self, FollowRate};
use crate::packet::{
    parse_ip, payload_intact, FlowStats, Header, Kind, StreamRequest, Template, Transport,
    HEADER_LEN, STREAM_REQUEST_LEN,
};
use crate::stats::{count_reason, loss_cause, Counters, IpFamily};

/// Bulk senders fill a session's queue to this many plaintext bytes, then
/// wait for the writer to take it: one batch in TLS, one filling.
const BULK_QUEUE: usize = 128 * 1024;
/// Most packets a paced sender sends at once to catch up after a stall.
const MAX_CATCH_UP: u32 = 256;
/// The shortest period between a session's paced packets that is timed by
/// the ring (`sstpd::sys::uring::sleep`), each packet on time. Shorter
/// periods are saturating rates (`latency`'s maximum, for one): a
/// timeout per packet would cost the load generator more than the packet,
/// so such a session sleeps on tokio's millisecond timer and sends what
/// fell due in one burst.
pub const FINE_PACING_FROM: Duration = Duration::from_micros(50);
/// How long a session waits for the first datagram of a stream it asked
/// for before asking again, and how often it asks.
const STREAM_START_WAIT: Duration = Duration::from_millis(500);
const STREAM_START_TRIES: u32 = 3;
/// The same for the peer's counters.
const STATS_WAIT: Duration = Duration::from_millis(300);
const STATS_TRIES: u32 = 4;
/// First UDP source port; session `i` uses `SOURCE_PORT_BASE + i % 16384`.
const SOURCE_PORT_BASE: u16 = 49152;
/// A session's IPv6 flow id is its IPv4 flow id with this bit flipped.
const IPV6_FLOW_BIT: u32 = 1 << 31;
/// Why a session that came up was dropped at once: IPv6 traffic was asked
/// for and no prefix was advertised within the setup timeout.
pub const NO_IPV6_PREFIX: &str = "no_ipv6_prefix";

/// Starts every session of this worker (at `--rate`) and returns their
/// tasks.
pub(super) async fn start_all(w: &Rc<Worker>) -> Vec<JoinHandle<()>> {
    let config = &w.config;
    let mut tasks = Vec::new();
    let mut index = w.index as u64;
    while index < config.sessions {
        w.pace().await;
        if w.aborted() {
            break;
        }
        match config.mode {
            Mode::Churn { hold } => {
                tasks.push(tokio_uring::spawn(churn_slot(w.clone(), index, hold)));
            }
            Mode::Tun { ref names } => {
                let permit = w.setups.clone().acquire_owned().await.ok();
                let name = names.name(index);
                tasks.push(tokio_uring::spawn(super::tunnel::session(
                    w.clone(),
                    index,
                    name,
                    permit,
                )));
            }
            _ => {
                // Hold a setup permit from before the connect until it is
                // done, so at most `--setup-concurrency` are in flight.
                let permit = w.setups.clone().acquire_owned().await.ok();
                tasks.push(tokio_uring::spawn(session(w.clone(), index, permit)));
            }
        }
        index += w.config.workers as u64;
    }
    // Sessions never started (abort) still count toward the window's start.
    while index < config.sessions {
        w.shared.setup_finished();
        index += w.config.workers as u64;
    }
    tasks
}

/// What the receive side of one session tracks (shared with its
/// `on_ip` handler).
struct FlowRx {
    /// The flow id of the session's current incarnation.
    flow: Cell<u32>,
    /// Data packets sent and received before the current incarnation:
    /// the peer's counters of its flow leave them out.
    peer_base: Cell<(u64, u64)>,
    family: IpFamily,
    /// Replies to probes.
    answered: Cell<u64>,
    /// Highest probe sequence answered, plus one (0: none).
    probe_high: Cell<u64>,
    /// Data received: reflections and stream datagrams.
    data_received: Cell<u64>,
    stream_high: Cell<u64>,
    /// A stream datagram arrived since the last request for one.
    stream_started: Cell<bool>,
    stats: Cell<Option<FlowStats>>,
    /// A stats reply or a first stream datagram arrived.
    changed: Notify,
}

impl FlowRx {
    fn new(flow: u32, family: IpFamily) -> Rc<FlowRx> {
        Rc::new(FlowRx {
            flow: Cell::new(flow),
            peer_base: Cell::new((0, 0)),
            family,
            answered: Cell::new(0),
            probe_high: Cell::new(0),
            data_received: Cell::new(0),
            stream_high: Cell::new(0),
            stream_started: Cell::new(false),
            stats: Cell::new(None),
            changed: Notify::new(),
        })
    }
}

impl FlowRx {
    /// A reconnected session's flow: a new id, so that the peer counts it
    /// afresh (the new tunnel address may reach another of its threads,
    /// which would not know the old counters); `sent_before` data packets
    /// went out on earlier incarnations.
    fn resume(&self, flow: u32, sent_before: u64) {
        self.flow.set(flow);
        self.peer_base.set((sent_before, self.data_received.get()));
        self.stream_high.set(0);
        self.stats.set(None);
    }
}

/// Counts `seq` against the highest seen; true when it arrived out of order.
fn reordered(high: &Cell<u64>, seq: u64) -> bool {
    if seq < high.get() {
        return true;
    }
    high.set(seq + 1);
    false
}

impl Worker {
    /// Handles one IP packet from the tunnel (borrowed: nothing is copied).
    fn receive(&self, rx: &FlowRx, packet: &[u8]) {
        let Some(r) = parse_ip(packet).filter(|r| r.header.flow == rx.flow.get()) else {
            self.counters().foreign += 1;
            return;
        };
        let family = rx.family;
        if matches!(
            r.header.kind,
            Kind::Echo | Kind::EchoReply | Kind::StreamData
        ) && !payload_intact(r.body)
        {
            self.count(family, |c| c.payload_mismatches += 1);
        }
        let reordered = match (r.header.kind, r.transport) {
            // The kernel answers ICMP echo with our header unchanged; the
            // peer marks its UDP reflections.
            (Kind::Echo, Transport::IcmpEchoReply) | (Kind::EchoReply, Transport::Udp { .. }) => {
                rx.answered.set(rx.answered.get() + 1);
                rx.data_received.set(rx.data_received.get() + 1);
                let rtt = Duration::from_nanos(self.now_ns().saturating_sub(r.header.timestamp_ns));
                let mut stats = self.stats.borrow_mut();
                stats.rtt.record(rtt);
                stats.families[family.index()].rtt.record(rtt);
                drop(stats);
                self.count(family, |c| c.probes_answered += 1);
                self.interval_rtt.borrow_mut().record(rtt);
                reordered(&rx.probe_high, r.header.seq)
            }
            (Kind::StreamData, Transport::Udp { .. }) => {
                rx.data_received.set(rx.data_received.get() + 1);
                if !rx.stream_started.replace(true) {
                    rx.changed.notify_waiters();
                }
                reordered(&rx.stream_high, r.header.seq)
            }
            (Kind::StatsReply, Transport::Udp { .. }) => {
                if let Some(stats) = FlowStats::parse(r.body) {
                    rx.stats.set(Some(stats));
                    rx.changed.notify_waiters();
                }
                return;
            }
            _ => {
                self.counters().foreign += 1;
                return;
            }
        };
        let in_window = self.go.get().is_some() && !self.stopped.get();
        self.count(family, |c| {
            c.down_packets_total += 1;
            if reordered {
                c.reordered += 1;
            }
            if in_window {
                c.down_packets += 1;
                c.down_bytes += packet.len() as u64;
            }
        });
    }

    /// Applies `f` to the totals and to the family's counters.
    fn count(&self, family: IpFamily, f: impl Fn(&mut Counters)) {
        let mut stats = self.stats.borrow_mut();
        f(&mut stats.counters);
        f(&mut stats.families[family.index()].counters);
    }

    fn receiver(self: &Rc<Self>, rx: &Rc<FlowRx>) -> IpHandler {
        let w = self.clone();
        let rx = rx.clone();
        Box::new(move |packet| w.receive(&rx, packet))
    }

    /// Hands each packet to the flow of its IP version.
    fn dual_receiver(self: &Rc<Self>, rx4: &Rc<FlowRx>, rx6: &Rc<FlowRx>) -> IpHandler {
        let w = self.clone();
        let (rx4, rx6) = (rx4.clone(), rx6.clone());
        Box::new(move |packet| {
            let rx = if packet.first().is_some_and(|b| b >> 4 == 6) {
                &rx6
            } else {
                &rx4
            };
            w.receive(rx, packet)
        })
    }

    fn client_options(&self, credentials_index: u64, source_index: u64) -> client::ClientOptions {
        let mut options = self.options.clone();
        let (user, password) = self.config.credentials.for_session(credentials_index);
        options.username = user;
        options.password = password;
        options.bind = self
            .config
            .source_range
            .map(|r| r.address(source_index).into());
        options
    }

    /// Opens a session and records the outcome.
    async fn connect(
        self: &Rc<Self>,
        index: u64,
        source_index: u64,
        rx: &Rc<FlowRx>,
    ) -> Option<Client> {
        self.connect_with(index, source_index, self.receiver(rx))
            .await
    }

    /// Opens a session whose packets go to `on_ip` and records the
    /// outcome.
    pub(super) async fn connect_with(
        &self,
        index: u64,
        source_index: u64,
        on_ip: IpHandler,
    ) -> Option<Client> {
        self.counters().attempted += 1;
        let options = self.client_options(index, source_index);
        match client::connect(&options, on_ip).await {
            Ok((client, times)) => {
                let mut stats = self.stats.borrow_mut();
                stats.counters.established += 1;
                stats.setup.record(&times);
                drop(stats);
                self.interval_setup.borrow_mut().record(times.total);
                Some(client)
            }
            Err(e) => {
                let mut stats = self.stats.borrow_mut();
                stats.counters.failed += 1;
                count_reason(&mut stats.failure_reasons, e.as_str());
                stats
                    .failure_examples
                    .entry(e.as_str().to_string())
                    .or_insert_with(|| e.to_string());
                None
            }
        }
    }

    pub(super) fn dropped(&self, client: &Client) {
        let reason = client.close_reason().map_or("unknown", |r| r.as_str());
        let mut stats = self.stats.borrow_mut();
        stats.counters.dropped += 1;
        count_reason(&mut stats.drop_reasons, reason);
    }

    /// Graceful close, timed.
    pub(super) async fn close(&self, client: &Client) {
        let start = Instant::now();
        client.close(self.config.close_timeout).await;
        let mut stats = self.stats.borrow_mut();
        if client.is_closed() {
            stats.counters.closed += 1;
            stats.teardown.record(start.elapsed());
        } else {
            stats.counters.close_timeouts += 1;
        }
    }

    /// The flow id of session `index`.
    fn flow(&self, index: u64) -> u32 {
        self.shared.flow_base.wrapping_add(index as u32)
    }

    fn count_sent(&self, family: IpFamily, packets: u64, bytes: u64, probes: bool) {
        self.count(family, |c| {
            c.up_packets += packets;
            c.up_bytes += bytes;
            if probes {
                c.probes_sent += packets;
            }
        });
    }
}

/// The default IPv6 destination: the first host of the /48 that holds
/// our address, where sstpd's default `ipv6.gateway` lies (the first host
/// of its default `ipv6.prefix`, a /48).
fn default_ipv6_target(address: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from((u128::from(address) & (u128::MAX << 80)) | 1)
}

/// Runs `f` until it ends or the session does.
pub(super) async fn until_closed<T>(client: &Client, f: impl std::future::Future<Output = T>) {
    tokio::select! {
        _ = f => {}
        _ = client.closed() => {}
    }
}

/// One session in echo, udp, bulk or idle mode. With `--reconnect`, a
/// session that ends before the window does is set up again in the same
/// slot (same user, same flows; its counters go on adding up) and its
/// traffic resumes.
async fn session(w: Rc<Worker>, index: u64, setup_permit: Option<OwnedSemaphorePermit>) {
    let family = w.config.family;
    let rx4 = FlowRx::new(w.flow(index), IpFamily::V4);
    let rx6 = FlowRx::new(w.flow(index) ^ IPV6_FLOW_BIT, IpFamily::V6);
    // The setup's state (the TLS handshake, the protocol's exchanges)
    // lives on the heap while it runs: what the task keeps for the
    // session's whole life is this function's own, small state.
    let client = Box::pin(w.connect_with(index, index, w.dual_receiver(&rx4, &rx6))).await;
    // IPv6: the address by SLAAC is part of the setup.
    let address6 = match &client {
        Some(client) if family.v6() => client.autoconfigure_ipv6(w.config.setup_timeout).await,
        _ => None,
    };
    drop(setup_permit);
    w.shared.setup_finished();
    let Some(mut client) = client else { return };
    if family.v6() && address6.is_none() {
        w.no_ipv6_prefix();
        client.close(w.config.close_timeout).await;
        return;
    }
    let mut address6 = address6;
    // On the heap: its random generator is most of an idle session's
    // task, and only `--reconnect` has one.
    let mut backoff = w
        .config
        .reconnect
        .map(|p| Box::new(Backoff::new(&p, index)));
    // Data packets sent so far per family, over every incarnation.
    let mut sent = [0u64; 2];
    let mut incarnation = 0u64;
    let (v4, v6) = loop {
        until_closed(&client, w.wait_go()).await;
        let outcome = match client.ipv4() {
            Some(params) if !client.is_closed() => {
                let v4 = async {
                    if !family.v4() {
                        return None;
                    }
                    let plan = FlowPlan {
                        me: params.local.into(),
                        to: w.target(params.peer.into()),
                        payload: w.config.payload(),
                    };
                    Some(plan.run(&w, &client, &rx4, index, sent[0]).await)
                };
                let v6 = async {
                    let me = address6?;
                    let plan = FlowPlan {
                        me: me.into(),
                        to: w.target(w.config.to6.unwrap_or(default_ipv6_target(me)).into()),
                        payload: w.config.payload_v6(),
                    };
                    Some(plan.run(&w, &client, &rx6, index, sent[1]).await)
                };
                Some(tokio::join!(v4, v6))
            }
            _ => None,
        };
        if let Some((v4, v6)) = &outcome {
            sent = [
                v4.as_ref().map_or(sent[0], |o| o.sent),
                v6.as_ref().map_or(sent[1], |o| o.sent),
            ];
        }
        if backoff.is_some() && outcome.is_some() && !client.is_closed() && !w.stopped.get() {
            // The flows ended before the window did: a send was refused
            // because the server is taking the link down (LCP Terminate)
            // while the connection is still open. Wait for it to close,
            // so that the loss is seen now and not at the window's end.
            until_closed(&client, w.wait_stopped()).await;
        }
        match outcome {
            Some(outcome) if !client.is_closed() => break outcome,
            _ => {}
        }
        w.dropped(&client);
        let Some(backoff) = backoff.as_mut() else {
            return;
        };
        incarnation += 1;
        let flow = w.flow(index + incarnation * w.config.sessions);
        rx4.resume(flow, sent[0]);
        rx6.resume(flow ^ IPV6_FLOW_BIT, sent[1]);
        match Box::pin(w.reconnect(index, &client, &rx4, &rx6, backoff)).await {
            Some((again, again6)) => {
                client = again;
                address6 = again6;
            }
            None => return,
        }
    };
    w.counters().held += 1;
    let finish = |rx: Rc<FlowRx>, outcome: Option<FlowOutcome>| {
        let (w, client) = (&w, &client);
        async move {
            let Some(outcome) = outcome else { return };
            drain(w, client, &rx, outcome.sent).await;
            if let Some((source, to)) = outcome.peer {
                query_peer(w, client, &rx, source, to, outcome.sent).await;
            }
        }
    };
    Box::pin(async { tokio::join!(finish(rx4.clone(), v4), finish(rx6.clone(), v6)) }).await;
    if client.is_closed() {
        w.dropped(&client);
        if w.config.reconnect.is_some() {
            // Lost after the window: too late to come back.
            w.lost(&client, Instant::now());
            w.stats.borrow_mut().reconnect.unrecovered += 1;
        }
        return;
    }
    w.close(&client).await;
}

impl Worker {
    fn no_ipv6_prefix(&self) {
        let mut stats = self.stats.borrow_mut();
        stats.counters.dropped += 1;
        crate::stats::count_reason(&mut stats.drop_reasons, NO_IPV6_PREFIX);
    }

    /// Counts the loss of `client` at `at`.
    fn lost(&self, client: &Client, at: Instant) {
        let at_ns = self.shared.ns(at);
        let mut stats = self.stats.borrow_mut();
        let r = &mut stats.reconnect;
        r.lost += 1;
        count_reason(&mut r.causes, loss_cause(client.close_reason().as_ref()));
        r.first_loss_ns = Some(r.first_loss_ns.map_or(at_ns, |f| f.min(at_ns)));
    }

    /// Re-establishes the session `lost` was, after the back-off's delays,
    /// until an attempt succeeds or the window ends. Returns the new
    /// session and its IPv6 address.
    async fn reconnect(
        self: &Rc<Self>,
        index: u64,
        lost: &Client,
        rx4: &Rc<FlowRx>,
        rx6: &Rc<FlowRx>,
        backoff: &mut Backoff,
    ) -> Option<(Client, Option<Ipv6Addr>)> {
        let lost_at = Instant::now();
        self.lost(lost, lost_at);
        backoff.reset();
        let family = self.config.family;
        loop {
            if self.stopped.get() || self.aborted() {
                self.stats.borrow_mut().reconnect.unrecovered += 1;
                return None;
            }
            let delay = backoff.next_delay();
            let waited = tokio::select! {
                _ = tokio::time::sleep(delay) => true,
                _ = self.wait_stopped() => false,
            };
            if !waited {
                continue;
            }
            let permit = self.setups.clone().acquire_owned().await.ok();
            self.stats.borrow_mut().reconnect.attempts += 1;
            let client = self
                .connect_with(index, index, self.dual_receiver(rx4, rx6))
                .await;
            let address6 = match &client {
                Some(client) if family.v6() => {
                    client.autoconfigure_ipv6(self.config.setup_timeout).await
                }
                _ => None,
            };
            drop(permit);
            match client {
                Some(client) if !family.v6() || address6.is_some() => {
                    let now = Instant::now();
                    let now_ns = self.shared.ns(now);
                    let mut stats = self.stats.borrow_mut();
                    let r = &mut stats.reconnect;
                    r.reconnected += 1;
                    r.recovery.record(now - lost_at);
                    r.last_recovery_ns = Some(r.last_recovery_ns.map_or(now_ns, |l| l.max(now_ns)));
                    return Some((client, address6));
                }
                Some(client) => {
                    self.no_ipv6_prefix();
                    self.stats.borrow_mut().reconnect.failed_attempts += 1;
                    client.close(self.config.close_timeout).await;
                }
                None => self.stats.borrow_mut().reconnect.failed_attempts += 1,
            }
        }
    }
}

/// Where one IP version's traffic of a session goes.
struct FlowPlan {
    /// Our tunnel address.
    me: IpAddr,
    /// Echo: the destination; udp and bulk: the peer.
    to: SocketAddr,
    payload: usize,
}

/// What one IP version's traffic did: data packets sent, and the
/// addresses to ask the peer from and at.
struct FlowOutcome {
    sent: u64,
    peer: Option<(SocketAddr, SocketAddr)>,
}

impl Worker {
    /// The destination of a family's traffic: `--to`'s address (IPv4) or
    /// `default`, at `--to`'s port or the peer's default port.
    fn target(&self, default: IpAddr) -> SocketAddr {
        let (address, port) = match self.config.mode {
            Mode::Echo { to: Some(to) } if default.is_ipv4() => (IpAddr::V4(to), 0),
            Mode::Udp { to: Some(to), .. } | Mode::Bulk { to: Some(to), .. } => {
                let address = if default.is_ipv4() {
                    IpAddr::V4(*to.ip())
                } else {
                    default
                };
                (address, to.port())
            }
            _ => (default, DEFAULT_PEER_PORT),
        };
        SocketAddr::new(address, port)
    }
}

impl FlowPlan {
    /// Runs the traffic until the window ends or the session does; the
    /// sequence numbers go on from `sent_before` (the packets earlier
    /// incarnations of the session sent). Returns the total sent.
    async fn run(
        &self,
        w: &Worker,
        client: &Client,
        rx: &FlowRx,
        index: u64,
        sent_before: u64,
    ) -> FlowOutcome {
        let sent = match w.config.mode {
            // (Churn and tun sessions run in `churn_slot` and
            // `tunnel::session`; here they would idle.)
            Mode::Idle | Mode::Churn { .. } | Mode::Tun { .. } => {
                until_closed(client, w.wait_stopped()).await;
                sent_before
            }
            // On the heap while it runs: the traffic's state (its
            // template, its pacing) is most of a session's task, which an
            // idle session would otherwise keep for its whole life.
            _ => Box::pin(self.traffic(w, client, rx, index, sent_before)).await,
        };
        let peer = matches!(w.config.mode, Mode::Udp { .. } | Mode::Bulk { .. })
            .then(|| (self.source(index), self.to));
        FlowOutcome { sent, peer }
    }

    /// The session's source address for its flows.
    fn source(&self, index: u64) -> SocketAddr {
        SocketAddr::new(self.me, SOURCE_PORT_BASE + (index % 16384) as u16)
    }

    /// The traffic of [`FlowPlan::run`]'s modes that send; returns the
    /// total sent.
    async fn traffic(
        &self,
        w: &Worker,
        client: &Client,
        rx: &FlowRx,
        index: u64,
        sent_before: u64,
    ) -> u64 {
        let source = self.source(index);
        let pps = w.config.pps();
        let (payload, to) = (self.payload, self.to);
        // Templates cannot fail here: `LoadConfig::validate` built them once.
        match w.config.mode {
            Mode::Echo { .. } => {
                match Template::icmp_echo(self.me, to.ip(), rx.flow.get(), payload) {
                    Ok(mut probe) => {
                        paced(w, client, rx, &mut probe, pps, index, true, sent_before).await
                    }
                    Err(_) => sent_before,
                }
            }
            Mode::Udp { reflect, flows, .. } => {
                let kind = if reflect { Kind::Echo } else { Kind::Discard };
                match Template::udp(source, to, Header::new(kind, rx.flow.get()), &[], payload) {
                    Ok(mut datagram) => {
                        datagram.cycle_source_ports(flows);
                        paced(
                            w,
                            client,
                            rx,
                            &mut datagram,
                            pps,
                            index,
                            reflect,
                            sent_before,
                        )
                        .await
                    }
                    Err(_) => sent_before,
                }
            }
            Mode::Bulk {
                direction, follow, ..
            } => {
                let route = (source, to);
                bulk(
                    w,
                    client,
                    rx,
                    route,
                    (direction, follow),
                    payload,
                    pps,
                    index,
                    sent_before,
                )
                .await
            }
            // (`run` waits for these itself.)
            Mode::Idle | Mode::Churn { .. } | Mode::Tun { .. } => sent_before,
        }
    }
}

/// Sends `template` at `pps` from the window's start (offset by the
/// session's share of one period, so sessions do not send in lockstep;
/// timed by the ring, so that the share holds below a millisecond)
/// until it ends; a reconnected session resumes at once, numbering from
/// `first_seq`. Returns the sequence number reached.
#[allow(clippy::too_many_arguments)]
async fn paced(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    template: &mut Template,
    pps: f64,
    index: u64,
    probes: bool,
    first_seq: u64,
) -> u64 {
    let Some(go) = w.go.get() else {
        return first_seq;
    };
    let period = Duration::from_secs_f64(1.0 / pps);
    let share = index as f64 / w.config.sessions as f64;
    let mut next = go + period.mul_f64(share);
    if first_seq > 0 {
        next = next.max(Instant::now());
    }
    let mut seq = first_seq;
    let len = template.len() as u64;
    loop {
        if w.stopped.get() || client.is_closed() {
            return seq;
        }
        let now = Instant::now();
        if next > now {
            tokio::select! {
                _ = wait_until(next, period >= FINE_PACING_FROM) => {}
                _ = w.wait_stopped() => return seq,
            }
            continue;
        }
        let mut burst = 0;
        while next <= now && burst < MAX_CATCH_UP {
            match client.send_ip(template.stamp(seq, w.now_ns())) {
                Ok(()) => {
                    seq += 1;
                    w.count_sent(rx.family, 1, len, probes);
                    if now.saturating_duration_since(next) >= period {
                        w.count(rx.family, |c| c.late_sends += 1);
                    }
                }
                Err(ClientSendError::Backpressure) => {
                    // The tunnel is slower than the pace: the packet is
                    // late, not lost. Wait for room.
                    w.count(rx.family, |c| c.backpressure_waits += 1);
                    tokio::select! {
                        _ = client.writable(BULK_QUEUE) => {}
                        _ = w.wait_stopped() => return seq,
                    }
                    break;
                }
                Err(ClientSendError::Protocol(_)) => {
                    w.count(rx.family, |c| c.send_errors += 1);
                    return seq;
                }
            }
            next += period;
            burst += 1;
        }
        if burst == MAX_CATCH_UP && next < now {
            // Far behind (a stall): do not try to make up for all of it.
            next = now;
        }
    }
}

/// Waits until `next`: `fine`, on the ring's timer, so that the packet
/// leaves on time; else on tokio's, which counts whole milliseconds, so
/// that the caller's catch-up sends what fell due meanwhile in one burst.
/// (`sstp-bench`'s paced TLS reference paces with it too.)
pub async fn wait_until(next: Instant, fine: bool) {
    if fine {
        let wait = next.saturating_duration_since(Instant::now());
        if sstpd::sys::uring::sleep(wait).await.is_ok() {
            return;
        }
        // No ring timer: tokio's, bursts and all.
    }
    tokio::time::sleep_until(next.into()).await;
}

/// Sends as fast as the session's TLS connection takes (or at `pps`)
/// until the window ends, numbering from `first_seq`. Returns the
/// sequence number reached.
async fn fill(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    template: &mut Template,
    first_seq: u64,
) -> u64 {
    let mut seq = first_seq;
    let len = template.len() as u64;
    loop {
        if w.stopped.get() || client.is_closed() {
            return seq;
        }
        // One timestamp per burst: bulk packets are counted, not timed.
        let ts = w.now_ns();
        let before = seq;
        let mut failed = false;
        while client.pending_bytes() < BULK_QUEUE {
            match client.send_ip(template.stamp(seq, ts)) {
                Ok(()) => seq += 1,
                Err(ClientSendError::Backpressure) => break,
                Err(ClientSendError::Protocol(_)) => {
                    w.count(rx.family, |c| c.send_errors += 1);
                    failed = true;
                    break;
                }
            }
        }
        w.count_sent(rx.family, seq - before, (seq - before) * len, false);
        if failed {
            return seq;
        }
        tokio::select! {
            _ = client.writable(BULK_QUEUE) => {}
            _ = w.wait_stopped() => return seq,
        }
    }
}

/// Bulk mode: upstream (`fill` or `paced` discard datagrams) and/or a
/// downstream stream requested from the peer (`route`: from, to), its
/// rate steered by what arrives with `follow`. Returns the data packets
/// sent, `sent_before` included.
#[allow(clippy::too_many_arguments)]
async fn bulk(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    (source, to): (SocketAddr, SocketAddr),
    (direction, follow): (Direction, bool),
    payload: usize,
    pps: f64,
    index: u64,
    sent_before: u64,
) -> u64 {
    let up = async {
        if !direction.up() {
            until_closed(client, w.wait_stopped()).await;
            return sent_before;
        }
        let Ok(mut datagram) = Template::udp(
            source,
            to,
            Header::new(Kind::Discard, rx.flow.get()),
            &[],
            payload,
        ) else {
            return sent_before;
        };
        datagram.cycle_source_ports(flows_per_session(w));
        if pps > 0.0 {
            paced(w, client, rx, &mut datagram, pps, index, false, sent_before).await
        } else {
            fill(w, client, rx, &mut datagram, sent_before).await
        }
    };
    let down = async {
        if direction.down() {
            if follow {
                follow_stream(w, client, rx, (source, to), payload, pps).await;
            } else {
                request_stream(w, client, rx, source, to, payload, pps).await;
            }
        }
    };
    let (sent, ()) = tokio::join!(up, down);
    if direction.down() {
        // The peer stops by itself at the end; this ends an aborted run's
        // stream early.
        let _ = send_control(
            client,
            source,
            to,
            Header::new(Kind::StreamStop, rx.flow.get()),
            &[],
        );
    }
    sent
}

/// Flows per session of bulk and udp mode (`--flows`): the source ports
/// upstream datagrams cycle through, and the destination ports of the
/// peer's stream.
fn flows_per_session(w: &Worker) -> u16 {
    match w.config.mode {
        Mode::Bulk { flows, .. } | Mode::Udp { flows, .. } => flows,
        _ => 1,
    }
}

fn send_control(
    client: &Client,
    source: SocketAddr,
    to: SocketAddr,
    header: Header,
    body: &[u8],
) -> Result<(), ClientSendError> {
    match Template::udp(source, to, header, body, HEADER_LEN + body.len()) {
        Ok(mut t) => client.send_ip(t.stamp(header.seq, 0)),
        Err(_) => Ok(()),
    }
}

/// Asks the peer to stream to us until the window ends; asks again if no
/// datagram follows.
async fn request_stream(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    source: SocketAddr,
    to: SocketAddr,
    payload: usize,
    pps: f64,
) {
    let Some(go) = w.go.get() else { return };
    let stop = w.shared.stop_at(go);
    // A reconnected session asks again: what earlier ones got is no answer.
    rx.stream_started.set(false);
    let answered = || rx.stream_started.get();
    for attempt in 0..STREAM_START_TRIES {
        let left = stop.saturating_duration_since(Instant::now());
        if left.is_zero() || w.stopped.get() {
            return;
        }
        let request = stream_request(w, payload, pps, left);
        if ask_for_stream(client, rx, (source, to), request, attempt).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + STREAM_START_WAIT;
        while !answered() {
            let changed = rx.changed.notified();
            if answered() || tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        if answered() {
            return;
        }
    }
    w.count(rx.family, |c| c.streams_unanswered += 1);
}

/// A stream of `payload`-byte datagrams at `pps` (0: as fast as the
/// peer can) for `left`, over the session's flows.
fn stream_request(w: &Worker, payload: usize, pps: f64, left: Duration) -> StreamRequest {
    StreamRequest {
        pps: pps.ceil() as u64,
        duration_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
        payload_len: u16::try_from(payload).unwrap_or(u16::MAX),
        flows: flows_per_session(w),
    }
}

/// Sends the peer `request` (a stream request with sequence number
/// `attempt`) from `source`.
fn ask_for_stream(
    client: &Client,
    rx: &FlowRx,
    (source, to): (SocketAddr, SocketAddr),
    request: StreamRequest,
    attempt: u32,
) -> Result<(), ClientSendError> {
    let mut body = [0u8; STREAM_REQUEST_LEN];
    request.write(&mut body);
    let mut header = Header::new(Kind::StreamStart, rx.flow.get());
    header.seq = u64::from(attempt);
    send_control(client, source, to, header, &body)
}

/// `--follow`: asks for a stream at `pps` (or [`follow::DEFAULT_START_PPS`]),
/// then, every [`follow::INTERVAL`] until the window ends, asks for the
/// rate [`FollowRate`] sets from what arrived. A request that is lost in
/// the tunnel is replaced by the next interval's.
async fn follow_stream(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    (source, to): (SocketAddr, SocketAddr),
    payload: usize,
    pps: f64,
) {
    let start = if pps > 0.0 {
        pps
    } else {
        follow::DEFAULT_START_PPS
    };
    let mut rate = FollowRate::new(start);
    request_stream(w, client, rx, source, to, payload, rate.pps()).await;
    let Some(go) = w.go.get() else { return };
    let stop = w.shared.stop_at(go);
    let mut last = (Instant::now(), rx.data_received.get());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(follow::INTERVAL) => {}
            _ = w.wait_stopped() => return,
        }
        let now = Instant::now();
        let left = stop.saturating_duration_since(now);
        if left.is_zero() || w.stopped.get() || client.is_closed() {
            return;
        }
        let received = rx.data_received.get();
        let seconds = now.duration_since(last.0).as_secs_f64();
        let arrived = received.saturating_sub(last.1) as f64 / seconds;
        last = (now, received);
        let request = stream_request(w, payload, rate.next(arrived), left);
        if ask_for_stream(client, rx, (source, to), request, 0).is_err() {
            return;
        }
    }
}

/// After the window: waits (at most `--drain`) for what is in flight.
/// Probes are done when every one sent was answered; other traffic when
/// our queue is empty and nothing has arrived for [`QUIET`].
async fn drain(w: &Worker, client: &Client, rx: &FlowRx, sent: u64) {
    const QUIET: Duration = Duration::from_millis(100);
    let probes = matches!(
        w.config.mode,
        Mode::Echo { .. } | Mode::Udp { reflect: true, .. }
    );
    if !w.config.mode.has_traffic() {
        return;
    }
    let deadline = Instant::now() + w.config.drain;
    let mut last_count = rx.data_received.get();
    let mut last_change = Instant::now();
    while !client.is_closed() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        if probes {
            if rx.answered.get() >= sent {
                return;
            }
        } else {
            if rx.data_received.get() != last_count {
                last_count = rx.data_received.get();
                last_change = now;
            }
            if client.pending_bytes() == 0 && now.duration_since(last_change) >= QUIET {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asks the peer for its counters of this flow and adds them up.
async fn query_peer(
    w: &Worker,
    client: &Client,
    rx: &FlowRx,
    source: SocketAddr,
    to: SocketAddr,
    sent: u64,
) {
    w.count(rx.family, |c| c.peer_queried += 1);
    for attempt in 0..STATS_TRIES {
        let mut header = Header::new(Kind::StatsRequest, rx.flow.get());
        header.seq = u64::from(attempt);
        if send_control(client, source, to, header, &[]).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + STATS_WAIT * (attempt + 1);
        loop {
            let changed = rx.changed.notified();
            if let Some(stats) = rx.stats.get() {
                let (sent_before, received_before) = rx.peer_base.get();
                let sent = sent - sent_before;
                let received = rx.data_received.get() - received_before;
                w.count(rx.family, |c| {
                    c.peer_answered += 1;
                    c.peer_rx_packets += stats.rx_packets;
                    c.peer_rx_bytes += stats.rx_bytes;
                    c.peer_tx_packets += stats.tx_packets;
                    c.peer_tx_bytes += stats.tx_bytes;
                    c.peer_flow_up_sent += sent;
                    c.peer_flow_down_received += received;
                });
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
    }
}

/// Churn: connect, hold, close, again, until the run ends.
async fn churn_slot(w: Rc<Worker>, slot: u64, hold: Duration) {
    let Some(go) = w.go.get().or(w.shared.go()) else {
        return;
    };
    let mut cycle = 0u64;
    loop {
        let end = w.shared.stop_at(go);
        if Instant::now() >= end || w.aborted() {
            return;
        }
        if cycle > 0 {
            w.pace().await;
        }
        let permit = w.setups.clone().acquire_owned().await;
        let rx = FlowRx::new(w.flow(slot), IpFamily::V4);
        // Rotate source addresses across cycles.
        let source_index = slot + cycle * w.config.sessions;
        let client = w.connect(slot, source_index, &rx).await;
        drop(permit);
        cycle += 1;
        let Some(client) = client else {
            // Do not hammer a failing server from this slot.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let until = (Instant::now() + hold).min(w.shared.stop_at(go));
        until_closed(&client, async {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = w.wait_stopped() => {}
            }
        })
        .await;
        if client.is_closed() {
            w.dropped(&client);
            continue;
        }
        w.close(&client).await;
        if client.is_closed() {
            w.counters().cycles += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credentials, LoadConfig};
    use crate::engine::Engine;

    /// What a session's task may keep for its whole life. It was 4,544
    /// bytes while the setup's state and the traffic's were part of it,
    /// kept by every idle session of the load generator; with them on the
    /// heap while they run, and the waits for the window's end without a
    /// timer, it is 1,424.
    const SESSION_TASK_BOUND: usize = 2048;

    #[test]
    fn a_session_task_keeps_only_its_own_small_state() {
        // The future's size is its type's: the same whatever the mode.
        let config = LoadConfig::new(
            Mode::Idle,
            "127.0.0.1:4443".parse().unwrap(),
            Credentials::single("demo", "pw"),
        );
        let engine = Engine::new(config).unwrap();
        let w = Worker::for_test(&engine);
        // Not polled: it never connects.
        let task = session(w, 0, None);
        let size = std::mem::size_of_val(&task);
        assert!(size <= SESSION_TASK_BOUND, "{size} bytes");
    }
}
