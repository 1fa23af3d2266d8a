//! One client connection on its worker: TLS handshake, then a reader task
//! (socket -> protocol core -> TUN) and a writer task (protocol output and
//! packets from TUN -> one TLS write per batch), both driving the same
//! sans-IO [`Session`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{field, Instrument};

use super::admission::{Admitted, PendingSource, PreauthPermit, RateLimitedLog};
use super::{Worker, WorkerMsg};
use crate::aaa::dae::{ActionOutcome, DaeAction, PolicyChange, TimeoutChange};
use crate::aaa::radius::accounting::{
    terminate_cause, unix_now, AcctKind, AcctRecord, Authentic, Traffic,
};
use crate::aaa::throttle::{ThrottleKind, Verdict};
use crate::config::{ClientToClient, ListenerSection};
use crate::metrics::{Event, SetupPhase, WorkerMetrics};
use crate::net::proxy_header::{read_header, ProxiedPeer};
use crate::net::session_io::{wait_for_work, writer_timer, QuietReads, CLOSE_LINGER};
use crate::net::uring_tls::{Offload, ReadOutcome, TlsConn, TlsIoError};
use crate::proto::auth::{
    AuthContext, AuthDecision, AuthReject, AuthReply, AuthRequestId, PasswordStore as _,
    RejectReason, SessionPolicy,
};
use crate::proto::ppp::Ipv4AddressRequest;
use crate::proto::route::Ipv4Prefix;
use crate::proto::session::{CloseReason, Session, SessionEvent};
use crate::proto::sstp::connection::{AbortReason, CloseReason as SstpCloseReason};
use crate::proto::sstp::{HashProtocol, Transmit};
use crate::routing::session_table::SessionRef;
use crate::tls::ktls::KtlsDecision;

/// Plaintext queued for a client beyond which further packets from TUN are
/// dropped (and counted as `tx_queue_full`): bounds memory per session
/// under overload.
const MAX_PENDING_PLAINTEXT: usize = 512 * 1024;
/// How long the writer has had nothing to write before it gives back its
/// buffers (the plaintext batch, the session's output queue and the TLS
/// write buffer): the handshake's flight with its certificate chain, or a
/// burst's batch, would otherwise stay allocated for an idle session's
/// whole life. A second, as a quiet read's.
const WRITE_BUFFERS_IDLE: Duration = Duration::from_secs(1);
/// A session's output backlog (plaintext waiting, plus the write in
/// flight) at which its reader stops reading the socket: what a client's
/// input makes the server answer (LCP, SSTP control) is queued only while
/// the client also takes the answers. Counted as `session_read_paused`.
const OUTPUT_HIGH_WATER: usize = MAX_PENDING_PLAINTEXT;
/// The backlog below which a paused reader reads again.
const OUTPUT_LOW_WATER: usize = OUTPUT_HIGH_WATER / 4;

/// Accepts connections on one listener until shutdown. Admission control
/// ([`super::admission`]) decides before any TLS work: a refused
/// connection is closed at once and counted by why. On a PROXY listener
/// a connection from outside `proxy_from` is closed at once
/// (`proxy_source_not_allowed`), and the others are counted by source once
/// their header names the client ([`serve_proxied`]).
pub(crate) async fn accept_loop(
    worker: Rc<Worker>,
    listener: tokio_uring::net::TcpListener,
    options: Rc<ListenerSection>,
) {
    let mut warnings = RateLimitedLog::new(ACCEPT_WARNING_INTERVAL);
    let mut not_allowed = RateLimitedLog::new(ACCEPT_WARNING_INTERVAL);
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) if options.proxy_protocol.is_on() => {
                if worker.stopping.get() {
                    return;
                }
                WorkerMetrics::add(&worker.metrics().connections_accepted, 1);
                if worker.draining() {
                    refuse_draining(&worker, tcp, peer);
                    continue;
                }
                if !options.proxy_allowed(peer.ip()) {
                    drop(tcp);
                    worker.metrics().event(Event::ProxySourceNotAllowed);
                    if let Some(suppressed) = not_allowed.due(Instant::now()) {
                        tracing::warn!(
                            %peer,
                            suppressed,
                            "refusing connection: not in proxy_from of this PROXY listener"
                        );
                    }
                    continue;
                }
                match worker.shared.admission.admit_unsourced() {
                    Ok(pending) => {
                        tokio_uring::spawn(serve_proxied(
                            worker.clone(),
                            tcp,
                            peer,
                            pending,
                            options.clone(),
                        ));
                    }
                    Err(refusal) => {
                        drop(tcp);
                        worker.refused(refusal, peer);
                    }
                }
            }
            Ok((tcp, peer)) => {
                if worker.stopping.get() {
                    return;
                }
                WorkerMetrics::add(&worker.metrics().connections_accepted, 1);
                if worker.draining() {
                    refuse_draining(&worker, tcp, peer);
                    continue;
                }
                match worker.shared.admission.admit(peer.ip()) {
                    Ok(admitted) => {
                        tokio_uring::spawn(serve_connection(
                            worker.clone(),
                            tcp,
                            Instant::now(),
                            Peer::direct(peer),
                            admitted,
                        ));
                        #[cfg(any(test, feature = "testing"))]
                        super::injected_panic(crate::testing::faults::WorkerTask::Accept);
                    }
                    Err(refusal) => {
                        drop(tcp);
                        worker.refused(refusal, peer);
                    }
                }
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly rather than spin.
                worker.metrics().event(Event::AcceptError);
                if let Some(suppressed) = warnings.due(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// How many connections refused while draining a worker closes gently at
/// once; beyond that, one is simply closed.
const MAX_GENTLE_REFUSALS: usize = 64;

/// A connection that arrived while the node drains (`app::drain`):
/// counted (`refused_draining`) and closed without a reset.
fn refuse_draining(worker: &Rc<Worker>, tcp: tokio_uring::net::TcpStream, peer: SocketAddr) {
    worker.metrics().event(Event::RefusedDraining);
    tracing::debug!(%peer, "refusing connection: draining");
    let lingering = worker.gentle_refusals.get();
    if lingering >= MAX_GENTLE_REFUSALS {
        return;
    }
    worker.gentle_refusals.set(lingering + 1);
    let worker = worker.clone();
    tokio_uring::spawn(async move {
        close_gently(&tcp).await;
        worker
            .gentle_refusals
            .set(worker.gentle_refusals.get().saturating_sub(1));
    });
}

/// Sends FIN at once, then reads and discards what the client still sends
/// (a ClientHello, a PROXY header) until its FIN, for at most
/// [`CLOSE_LINGER`]: closing a socket with unread input makes the kernel
/// answer with a reset instead.
async fn close_gently(tcp: &tokio_uring::net::TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let deadline = tokio::time::Instant::from_std(Instant::now() + CLOSE_LINGER);
    let mut buf = vec![0u8; 4096];
    loop {
        let read = tcp.read(buf);
        tokio::pin!(read);
        // A read in flight must complete, never be dropped: at the
        // deadline the socket is shut down, which completes it.
        let (result, back) = tokio::select! {
            done = &mut read => done,
            () = tokio::time::sleep_until(deadline) => {
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                read.await
            }
        };
        match result {
            Ok(n) if n > 0 && tokio::time::Instant::now() < deadline => buf = back,
            _ => return,
        }
    }
}

/// A PROXY listener's connection: reads the header (bounded by the
/// listener's `proxy_header_timeout` and the pre-auth window), counts the
/// connection under its client's address, then serves it as that client.
async fn serve_proxied(
    worker: Rc<Worker>,
    tcp: tokio_uring::net::TcpStream,
    balancer: SocketAddr,
    pending: PendingSource,
    options: Rc<ListenerSection>,
) {
    let accepted_at = Instant::now();
    let timeout = options
        .proxy_header_timeout
        .min(worker.shared.live.load().config.server.preauth_timeout);
    let header = read_header(&tcp, options.proxy_protocol, timeout).await;
    let client = match header {
        Ok(peer) => {
            worker.metrics().event(peer);
            match peer {
                ProxiedPeer::Client(client) => client,
                ProxiedPeer::Local | ProxiedPeer::Unknown => balancer,
            }
        }
        Err(e) => {
            worker.metrics().event(&e);
            tracing::debug!(%balancer, error = %e, "PROXY header refused; closing");
            return;
        }
    };
    match pending.for_source(client.ip()) {
        Ok(admitted) => {
            let peer = Peer {
                client,
                balancer: Some(balancer),
            };
            // A task of its own, so that this one (the header read's state
            // besides the session's) ends here: the session's task is the
            // same size as on a listener without PROXY.
            tokio_uring::spawn(serve_connection(worker, tcp, accepted_at, peer, admitted));
        }
        Err(refusal) => {
            drop(tcp);
            worker.refused(refusal, client);
        }
    }
}

/// Who is at the other end of a connection.
#[derive(Clone, Copy, Debug)]
struct Peer {
    /// The client: the TCP peer, or the address a PROXY header gave.
    client: SocketAddr,
    /// The load balancer that sent the PROXY header.
    balancer: Option<SocketAddr>,
}

impl Peer {
    fn direct(client: SocketAddr) -> Peer {
        Peer {
            client,
            balancer: None,
        }
    }
}

/// Pause after a failed accept (out of descriptors, usually).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// At most one "accept failed" line per this interval: a listener out of
/// descriptors fails every [`ACCEPT_BACKOFF`], and the counter has them all.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// How long data sstpd sent may stay unacknowledged before the kernel
/// drops the connection: two Hello intervals, when the Hello timer would
/// have declared the peer dead ([MS-SSTP] 3.1.2). A backstop: the
/// session's own timers run while a write waits, and close a client that
/// stops reading (a zero window) at the negotiation or Hello timeout.
pub(crate) fn user_timeout_for(hello_interval: Duration) -> Duration {
    hello_interval.saturating_mul(2)
}

/// What the listening sockets were given for the connections they accept.
/// Linux copies `TCP_NODELAY` and `TCP_USER_TIMEOUT` from a listening
/// socket to each socket accepted from it (tcp(7) says nothing; the
/// accepted socket is a clone of the listener's, and a test here holds the
/// kernel to it), so a session sets them itself only where the listeners
/// could not, and the timeout only once a reload changed
/// `sstp.hello_interval`: two `setsockopt` calls a session fewer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InheritedSocketOptions {
    pub nodelay: bool,
    pub user_timeout: Option<Duration>,
}

impl InheritedSocketOptions {
    /// Gives `listener` both options for the sockets it will accept, as far
    /// as the kernel takes them (what it refuses, sessions set themselves).
    pub(crate) fn apply(listener: &socket2::Socket, user_timeout: Duration) -> Self {
        let nodelay = listener.set_tcp_nodelay(true).is_ok();
        let user_timeout = set_user_timeout(std::os::fd::AsFd::as_fd(listener), user_timeout)
            .is_ok()
            .then_some(user_timeout);
        InheritedSocketOptions {
            nodelay,
            user_timeout,
        }
    }

    /// What every one of two sets of listeners passes on.
    pub(crate) fn both(self, other: Self) -> Self {
        InheritedSocketOptions {
            nodelay: self.nodelay && other.nodelay,
            user_timeout: self.user_timeout.filter(|t| other.user_timeout == Some(*t)),
        }
    }

    /// Whether an accepted socket still needs `TCP_NODELAY` set.
    pub(crate) fn needs_nodelay(&self) -> bool {
        !self.nodelay
    }

    /// Whether an accepted socket still needs `user_timeout` set.
    pub(crate) fn needs_user_timeout(&self, user_timeout: Duration) -> bool {
        self.user_timeout != Some(user_timeout)
    }
}

/// Sets `TCP_USER_TIMEOUT` (tcp(7)). The kernel takes a non-negative int of
/// milliseconds (socket2 clamps to an unsigned one, which the kernel would
/// refuse as negative), so longer timeouts saturate at `i32::MAX` ms.
pub(crate) fn set_user_timeout(socket: BorrowedFd<'_>, timeout: Duration) -> std::io::Result<()> {
    let max = Duration::from_millis(i32::MAX as u64);
    socket2::SockRef::from(&socket).set_tcp_user_timeout(Some(timeout.min(max)))
}

/// Per-session state shared by the reader and writer tasks.
pub(crate) struct SessionCtx {
    pub(super) reference: SessionRef,
    pub(super) proto: RefCell<Session>,
    pub(super) tls: TlsConn,
    /// Whether the kernel does this session's records (kTLS), decided once
    /// after the handshake (counted in `ktls_sessions` while it lives).
    pub(super) kernel_tls: bool,
    /// The cipher suite the handshake settled on (and with it the TLS
    /// version).
    pub(super) tls_suite: Option<rustls::SupportedCipherSuite>,
    /// TLS plaintext waiting for the writer: SSTP packets, control and data.
    /// Boxed: inline, the `Transmit` (its bytes and where its records end)
    /// grew the context by 40 bytes, and an idle session's RSS by about
    /// 0.5 KiB (`run idle`, four alternated runs each way, December 6);
    /// boxed, it is back where it was with a `Vec`.
    out: RefCell<Box<Transmit>>,
    wake_writer: Notify,
    span: tracing::Span,
    /// Addresses this session owns in the session table.
    routes: RefCell<Vec<IpAddr>>,
    /// The IPv4 address IPCP assigned, while it is up.
    pub(super) ipv4_route: Cell<Option<std::net::Ipv4Addr>>,
    /// The Framed-Route prefixes routed to this session, while its IPv4
    /// is up.
    framed_routes: RefCell<Vec<Ipv4Prefix>>,
    /// The IPv6 /64 delegated to this session, to return to the pool.
    pub(super) ipv6_prefix: Cell<Option<std::net::Ipv6Addr>>,
    /// The IPv4 address reserved for the client, until the core releases it.
    ipv4_lease: Cell<Option<std::net::Ipv4Addr>>,
    reader_done: Cell<bool>,
    /// The client's address (admission and the authentication throttle
    /// count by it).
    pub(super) peer: SocketAddr,
    /// This connection's place in the pre-authentication window, until the
    /// call is established.
    preauth: RefCell<Option<PreauthPermit>>,
    /// When the pre-authentication window ends (`server.preauth_timeout`
    /// after accept).
    preauth_deadline: Instant,
    /// When the TCP connection was accepted, and the setup phases timed
    /// from it so far (each once).
    pub(super) accepted_at: Instant,
    setup_timed: Cell<crate::metrics::SetupPhases>,
    /// The user name of the request handed to the authenticator, until
    /// its answer arrives (the throttle counts the answer against it).
    pending_auth: RefCell<Option<(AuthRequestId, String)>>,
    /// Why the runtime closed this session (taken over, user removed, pre-
    /// auth timeout): counted instead of the protocol's close reason.
    close_label: Cell<Option<Event>>,
    /// Plaintext in the write the writer has in flight.
    in_flight: Cell<usize>,
    /// Signalled when the output backlog falls below [`OUTPUT_LOW_WATER`]
    /// or the writer ends (a paused reader waits for it).
    output_drained: Notify,
    writer_done: Cell<bool>,
    /// The PPP link's count of control frames it could not queue, as last
    /// reported.
    ppp_overflows: Cell<u64>,
    /// One of the session's tasks panicked ([`TaskGuard`]).
    failed: Cell<bool>,
    /// Acct-Session-Id: names the session to RADIUS.
    pub(super) session_id: String,
    /// What the authenticator decided for this session besides the accept
    /// (RADIUS attributes), once accepted.
    policy: RefCell<SessionPolicy>,
    /// The timers `policy` sets (Session-Timeout, Idle-Timeout).
    limits: Cell<PolicyLimits>,
    /// The local user store authenticated this session (a reload that
    /// removes the user closes it).
    authenticated_locally: Cell<bool>,
    /// RADIUS accounting, from the Start on until the Stop is sent.
    acct: RefCell<Option<SessionAcct>>,
    /// When the call was established (the "session started" log line);
    /// the "session ended" line gives the time since.
    pub(super) established_at: Cell<Option<Instant>>,
    /// The IPv4 address the session had, kept after IPCP goes down for
    /// the "session ended" line.
    logged_ipv4: Cell<Option<std::net::Ipv4Addr>>,
    /// Whether the kernel drops this session's packets from TUN while its
    /// queue is full ([`crate::tun::drop_filter`]).
    kernel_drop: Cell<KernelDrop>,
}

/// A session's context is one allocation of its `Rc` (two counts and the
/// context) for the session's life, and mimalloc serves it from the next
/// size class up: at 4,192 bytes it took a 5,120-byte block, and an idle
/// session held about a kilobyte it never used (docs/benchmarking.md,
/// "Where an idle session's memory goes"). It stays within the 4 KiB
/// class; a field that pushes it past is boxed, or the bound raised on
/// purpose. (Test builds carry a scripted authentication machine besides.)
#[cfg(not(test))]
const _: () =
    assert!(std::mem::size_of::<SessionCtx>() + 2 * std::mem::size_of::<usize>() <= 4_096);

/// A session's standing with the kernel's drop filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelDrop {
    /// Its packets reach sstpd.
    Off,
    /// Its queue is full and its addresses are in the filter's map: the
    /// kernel drops its packets until the writer makes room.
    Marked,
    /// Its queue is full but the map refused its addresses (full): sstpd
    /// drops at the bound, and does not try again until the writer makes
    /// room.
    Refused,
}

/// A session's accounting ([RFC 2866]): Start when IPCP gives it its
/// address, Interim-Update every interval, Stop when it ends.
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
#[derive(Clone, Copy, Debug)]
struct SessionAcct {
    started: Instant,
    start_unix: u64,
    framed_ip: std::net::Ipv4Addr,
    interim: Option<Duration>,
    next_interim: Option<Instant>,
}

/// The session-ending timers of an authenticator's [`SessionPolicy`]
/// ([RFC 2865] 5.27, 5.28).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Copy, Debug, Default)]
struct PolicyLimits {
    /// Session-Timeout: the session ends at this instant.
    session_end: Option<Instant>,
    /// Idle-Timeout.
    idle: Option<IdleWatch>,
}

/// Idle-Timeout: the session's IP packet count (both directions) is looked
/// at every [`IdleWatch::check_interval`]; the session ends once it has
/// not changed for `timeout`. Sampling keeps the data path free of clock
/// reads; the session ends at most one check interval late.
#[derive(Clone, Copy, Debug)]
struct IdleWatch {
    timeout: Duration,
    /// The packet count at the last check, and when it last changed.
    packets: u64,
    active_at: Instant,
    next_check: Instant,
}

impl IdleWatch {
    /// An eighth of the timeout, at least a second: the session ends
    /// between `timeout` and `timeout * 9/8` (or a second) after its last
    /// packet.
    fn check_interval(timeout: Duration) -> Duration {
        (timeout / 8).max(Duration::from_secs(1)).min(timeout)
    }
}

/// What [`PolicyLimits::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitVerdict {
    /// Look again at this instant (none: no limit left).
    Next(Option<Instant>),
    /// End the session, counted as this event.
    End(Event),
}

impl PolicyLimits {
    fn is_set(&self) -> bool {
        self.session_end.is_some() || self.idle.is_some()
    }

    /// Whether a limit is reached at `now`; `packets` counts the session's
    /// IP packets so far (asked only when an idle check is due).
    fn check(&mut self, now: Instant, packets: impl FnOnce() -> u64) -> LimitVerdict {
        if self.session_end.is_some_and(|end| now >= end) {
            return LimitVerdict::End(Event::SessionTimeout);
        }
        if let Some(idle) = self.idle.as_mut() {
            if now >= idle.next_check {
                let packets = packets();
                if packets != idle.packets {
                    idle.packets = packets;
                    idle.active_at = now;
                } else if now.saturating_duration_since(idle.active_at) >= idle.timeout {
                    return LimitVerdict::End(Event::IdleTimeout);
                }
                idle.next_check = now + IdleWatch::check_interval(idle.timeout);
            }
        }
        LimitVerdict::Next(
            [self.session_end, self.idle.map(|i| i.next_check)]
                .into_iter()
                .flatten()
                .min(),
        )
    }
}

async fn serve_connection(
    worker: Rc<Worker>,
    tcp: tokio_uring::net::TcpStream,
    accepted_at: Instant,
    peer: Peer,
    admitted: Admitted,
) {
    // Held until the connection ends: its place under max_sessions.
    let Admitted {
        connection: _connection,
        preauth,
    } = admitted;
    // The handshake's state (the TLS connection before it moves into the
    // session, the handshake's own future) lives on the heap only while it
    // runs: what the task keeps for the session's lifetime is the writer.
    let Some(Established { ctx, span, early }) =
        Box::pin(establish(&worker, tcp, accepted_at, peer, preauth)).await
    else {
        return;
    };
    // From here on, however this task ends, the guard gives back what the
    // session holds (see `TaskGuard`).
    let guard = TaskGuard::new(&worker, &ctx, Task::Writer);
    if !early.is_empty() {
        ctx.input(&worker, &early);
    }
    drop(early);
    tokio_uring::spawn(reader(worker.clone(), ctx.clone()).instrument(span.clone()));
    writer(&worker, &ctx).instrument(span).await;
    guard.completed();
}

/// A connection whose setup succeeded.
struct Established {
    ctx: Rc<SessionCtx>,
    span: tracing::Span,
    /// Plaintext that arrived with the handshake's last records.
    early: Vec<u8>,
}

/// The connection's setup: the TLS handshake (and the switch to kernel
/// TLS), then the session's place in the worker's table. `None`: the
/// connection ended here (counted by why).
async fn establish(
    worker: &Rc<Worker>,
    tcp: tokio_uring::net::TcpStream,
    accepted_at: Instant,
    peer: Peer,
    preauth: PreauthPermit,
) -> Option<Established> {
    let Peer {
        client: peer,
        balancer,
    } = peer;
    // One snapshot for the whole connection: a reload during its handshake
    // does not mix two certificates or two sets of timeouts.
    let live = worker.shared.live.load_full();
    let preauth_timeout = live.config.server.preauth_timeout;
    let span = tracing::info_span!(
        "session",
        %peer,
        balancer = field::Empty,
        correlation_id = field::Empty,
        user = field::Empty,
        ip = field::Empty
    );
    if let Some(balancer) = balancer {
        span.record("balancer", field::display(balancer));
    }
    // What the listener did not pass on (see `InheritedSocketOptions`).
    let inherited = worker.shared.inherited_socket_options;
    if inherited.needs_nodelay() {
        let _ = tcp.set_nodelay(true);
    }
    let user_timeout = user_timeout_for(live.config.sstp.hello_interval);
    if inherited.needs_user_timeout(user_timeout) {
        // SAFETY: the descriptor is `tcp`'s, which outlives the borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) };
        if let Err(e) = set_user_timeout(fd, user_timeout) {
            span.in_scope(|| tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT"));
        }
    }
    let conn = match rustls::server::UnbufferedServerConnection::new(live.tls.clone()) {
        Ok(c) => c,
        Err(e) => {
            worker.metrics().event(Event::TlsSetupError);
            span.in_scope(|| tracing::error!(error = %e, "TLS setup failed"));
            return None;
        }
    };
    let tls = TlsConn::new(tcp, conn);
    if worker.shared.ktls.may_offload() {
        // Nothing past the handshake may be read into userspace before the
        // kernel takes over the records.
        tls.read_exact_records_during_handshake();
    }
    let mut early = Vec::new();
    // The handshake is part of the pre-authentication window: whichever
    // bound is shorter applies.
    let handshake_timeout = live.config.tls.handshake_timeout;
    // What is left of the window (a PROXY header may have used some).
    let preauth_left = (accepted_at + preauth_timeout).saturating_duration_since(Instant::now());
    let timeout = handshake_timeout.min(preauth_left);
    if let Err(e) = tls
        .handshake(timeout, &mut early)
        .instrument(span.clone())
        .await
    {
        let event = match e {
            TlsIoError::HandshakeTimeout if preauth_left < handshake_timeout => {
                Event::PreauthTimeout
            }
            _ => Event::from(&e),
        };
        worker.metrics().event(event);
        span.in_scope(|| tracing::debug!(error = %e, "TLS handshake failed"));
        return None;
    }
    worker
        .metrics()
        .setup_phase(SetupPhase::Tls, accepted_at.elapsed());
    let tls_suite = tls.with_tls(|c| c.negotiated_cipher_suite()).flatten();
    if let Some(suite) = tls_suite {
        for event in crate::tls::handshake_events(suite) {
            worker.metrics().event(event);
        }
        match worker.shared.ktls.decide(suite) {
            KtlsDecision::Kernel(cipher) => match tls.offload_to_kernel() {
                Ok(Offload::Kernel { early_plaintext }) => {
                    early.extend_from_slice(&early_plaintext);
                    worker.metrics().event(Event::KtlsEnabled);
                    span.in_scope(|| {
                        tracing::debug!(cipher = cipher.as_str(), "records moved to kernel TLS")
                    });
                }
                Ok(Offload::StayedInUserspace(reason)) => {
                    worker.metrics().event(&reason);
                    span.in_scope(|| {
                        tracing::debug!(
                            reason = reason.as_str(),
                            "kernel TLS refused; staying in userspace"
                        )
                    });
                }
                Err(e) => {
                    worker.metrics().event(Event::KtlsSwitchFailed);
                    span.in_scope(
                        || tracing::warn!(error = %e, "kernel TLS switch failed; closing"),
                    );
                    return None;
                }
            },
            // Counted once at startup when the kernel lacks kTLS.
            KtlsDecision::Userspace(_) => {}
            KtlsDecision::Refuse(reason) => {
                worker.metrics().event(reason);
                span.in_scope(|| {
                    tracing::warn!(
                        reason = reason.as_str(),
                        "tls.ktls = require and this suite cannot be offloaded"
                    )
                });
                return None;
            }
        }
    }

    // The records leave rustls (`net::established`), unless the kernel has
    // them already or `tls.take_over_records` is off.
    let take_over = worker.shared.config.tls.take_over_records;
    if let Err(e) = tls.take_over_records_if(take_over) {
        worker.metrics().event(Event::TlsTakeOverFailed);
        span.in_scope(|| tracing::warn!(error = %e, "TLS records not taken over; closing"));
        return None;
    }
    let kernel_tls = tls.is_kernel_tls();
    let seed: [u8; 32] = rand::random();
    let session = Session::server(&live.session_config, accepted_at, live.cert, seed);
    // The session has what it needs; an old certificate is not kept for
    // its lifetime.
    drop(live);
    let inserted = worker
        .sessions
        .borrow_mut()
        .insert_with(|reference| SessionCtx {
            reference,
            proto: RefCell::new(session),
            tls,
            kernel_tls,
            tls_suite,
            out: RefCell::new(Box::default()),
            wake_writer: Notify::new(),
            span: span.clone(),
            routes: RefCell::new(Vec::new()),
            ipv4_route: Cell::new(None),
            framed_routes: RefCell::new(Vec::new()),
            ipv6_prefix: Cell::new(None),
            ipv4_lease: Cell::new(None),
            reader_done: Cell::new(false),
            peer,
            preauth: RefCell::new(Some(preauth)),
            preauth_deadline: accepted_at + preauth_timeout,
            accepted_at,
            setup_timed: Cell::new(crate::metrics::SetupPhases::default()),
            pending_auth: RefCell::new(None),
            close_label: Cell::new(None),
            in_flight: Cell::new(0),
            output_drained: Notify::new(),
            writer_done: Cell::new(false),
            ppp_overflows: Cell::new(0),
            failed: Cell::new(false),
            session_id: worker.shared.session_ids.next_id(),
            policy: RefCell::new(SessionPolicy::default()),
            limits: Cell::new(PolicyLimits::default()),
            authenticated_locally: Cell::new(false),
            acct: RefCell::new(None),
            established_at: Cell::new(None),
            logged_ipv4: Cell::new(None),
            kernel_drop: Cell::new(KernelDrop::Off),
        });
    let Some((_, ctx)) = inserted else {
        worker.metrics().event(Event::RefusedWorkerFull);
        return None;
    };
    worker
        .metrics()
        .sessions_active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if kernel_tls {
        worker
            .metrics()
            .ktls_sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Some(Established { ctx, span, early })
}

/// A session's two tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    Reader,
    Writer,
}

/// Ends a session task, however it ends: normally, by a panic (tokio
/// catches it and drops the task's future, and with it this guard, after
/// the unwinding), or with the worker's runtime.
///
/// A task that did not complete while its worker was not stopping has
/// panicked: counted as `session_panicked` (once per session), the
/// session marked failed (its protocol state is not to be trusted any
/// more), and its socket shut down, so that the other task's IO completes
/// and it ends too. The writer's guard then gives back what the session
/// held ([`SessionCtx::finish`]): its routes, its IPv6 prefix, its slot and
/// its place in the session count; the protocol session, and with it the
/// pool address its PPP link holds, goes when the last task lets go of it.
struct TaskGuard {
    worker: Rc<Worker>,
    ctx: Rc<SessionCtx>,
    task: Task,
    completed: bool,
}

impl TaskGuard {
    fn new(worker: &Rc<Worker>, ctx: &Rc<SessionCtx>, task: Task) -> Self {
        TaskGuard {
            worker: worker.clone(),
            ctx: ctx.clone(),
            task,
            completed: false,
        }
    }

    /// The task came to its end.
    fn completed(mut self) {
        self.completed = true;
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let (worker, ctx) = (&*self.worker, &*self.ctx);
        if !self.completed && !worker.stopping.get() {
            ctx.task_failed(worker, self.task);
        }
        match self.task {
            Task::Reader => {
                ctx.reader_done.set(true);
                ctx.wake_writer.notify_one();
            }
            Task::Writer => {
                // Make the reader's pending read return so its task ends
                // too, and release it if it waits for output space.
                let _ = ctx.tls.tcp().shutdown(std::net::Shutdown::Both);
                ctx.writer_done.set(true);
                ctx.output_drained.notify_waiters();
                ctx.finish(worker);
            }
        }
    }
}

/// Socket -> TLS -> protocol core -> TUN.
async fn reader(worker: Rc<Worker>, ctx: Rc<SessionCtx>) {
    let guard = TaskGuard::new(&worker, &ctx, Task::Reader);
    // Grows to what a read yields; an idle session keeps it small.
    let mut plaintext = Vec::new();
    // Once up and until it carries IP, a session's reads wait without a
    // buffer (an idle session then holds none); not during its setup.
    let mut quiet = QuietReads::default();
    loop {
        super::tun_io::wait_for_tun_space(&worker).await;
        ctx.wait_for_output_space(&worker).await;
        plaintext.clear();
        let outcome = ctx.tls.read_plaintext(&mut plaintext).await;
        if ctx.failed.get() {
            // The writer failed: leave the protocol state alone.
            guard.completed();
            return;
        }
        match outcome {
            // Once the session has closed, what still arrives (the
            // client's close_notify, a late packet) is read and dropped
            // until the client's end of the stream: see the writer's linger.
            Ok(ReadOutcome::Data(_)) if ctx.proto.borrow().is_closed() => {}
            Ok(ReadOutcome::Data(_)) => {
                ctx.input(&worker, &plaintext);
                quiet.apply(&ctx.tls, &ctx.proto);
                #[cfg(any(test, feature = "testing"))]
                ctx.injected_panic(crate::testing::faults::SessionTask::Reader);
            }
            Ok(ReadOutcome::Closed) => {
                ctx.proto.borrow_mut().transport_closed(Instant::now());
                break;
            }
            Err(e) => {
                worker.metrics().event(&e);
                tracing::debug!(error = %e, "connection read failed");
                ctx.proto.borrow_mut().transport_closed(Instant::now());
                break;
            }
        }
    }
    ctx.handle_events(&worker);
    guard.completed();
}

/// Where an authenticator's answer goes. One that comes before
/// [`AnswerSlot::close`], while `authenticate` runs (the local user store
/// answers at once), is kept, and the session takes it as soon as
/// `authenticate` returns. One that comes later (RADIUS, from its own
/// thread) goes through the worker's mailbox. Either way
/// [`SessionCtx::auth_decision`] applies it to the request it answers.
///
/// Before, every answer went through the mailbox: for a local user that
/// was an eventfd write and a read of it, and a turn of the worker's loop
/// before the MS-CHAPv2 Success could leave.
#[derive(Default)]
struct AnswerSlot(std::sync::Mutex<AnswerState>);

#[derive(Default)]
struct AnswerState {
    /// What came while the slot was open.
    answer: Option<AuthDecision>,
    closed: bool,
}

impl AnswerSlot {
    /// Keeps `decision` while the slot is open; gives it back once it is
    /// closed (the caller sends it on).
    fn offer(&self, decision: AuthDecision) -> Option<AuthDecision> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed || state.answer.is_some() {
            return Some(decision);
        }
        state.answer = Some(decision);
        None
    }

    /// Closes the slot: later answers are given back to their sender.
    /// Returns the answer that came while it was open.
    fn close(&self) -> Option<AuthDecision> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        state.answer.take()
    }
}

/// Protocol output -> TLS -> socket; also runs the session's timers, also
/// while a write waits for the client ([`SessionCtx::while_writing`]).
async fn writer(worker: &Rc<Worker>, ctx: &Rc<SessionCtx>) {
    let mut batch = Transmit::new();
    let mut last_write = Instant::now();
    let mut timer = std::pin::pin!(writer_timer());
    loop {
        if ctx.failed.get() {
            // The reader failed and shut the socket down.
            return;
        }
        let deadline = ctx.run_timers(worker);
        if ctx.close_label.get() == Some(Event::PreauthTimeout) {
            // Not authenticated within server.preauth_timeout: the
            // connection is dropped, not closed politely (which would hold
            // the place for another round of timers).
            break;
        }
        std::mem::swap(&mut **ctx.out.borrow_mut(), &mut batch);
        ctx.queue_has_room(worker);
        if !batch.is_empty() || ctx.tls.wants_flush() {
            #[cfg(any(test, feature = "testing"))]
            ctx.injected_panic(crate::testing::faults::SessionTask::Writer);
            // One TLS record per SSTP packet: sstp-client handles only
            // the first packet of a record until more bytes arrive.
            ctx.in_flight.set(batch.len());
            let write = ctx.tls.write_plaintext_units(batch.units());
            // On the heap while it runs: the write's state is most of the
            // writer's, and an idle session does not keep room for it.
            let result = Box::pin(ctx.while_writing(worker, write, timer.as_mut())).await;
            let sends = ctx.tls.take_kernel_sends();
            WorkerMetrics::add(&worker.metrics().ktls_send_batches, sends.batches);
            WorkerMetrics::add(&worker.metrics().ktls_send_packets, sends.packets);
            let fallbacks = sends.fallbacks;
            for (event, n) in [
                (Event::KtlsRingUnavailable, fallbacks.ring_unavailable),
                (Event::KtlsRingBusy, fallbacks.ring_busy),
                (Event::KtlsChainBroken, fallbacks.chain_broken),
            ] {
                if n > 0 {
                    worker.metrics().events_n(event, n);
                }
            }
            ctx.in_flight.set(0);
            ctx.output_written();
            batch.clear();
            last_write = Instant::now();
            if let Err(e) = result {
                worker.metrics().event(&e);
                tracing::debug!(error = %e, "connection write failed");
                ctx.proto.borrow_mut().transport_closed(Instant::now());
                ctx.handle_events(worker);
                break;
            }
            continue;
        }
        if ctx.proto.borrow().is_closed() {
            let _ = Box::pin(ctx.while_writing(worker, ctx.tls.close(), timer.as_mut())).await;
            Box::pin(crate::net::session_io::linger(
                &ctx.reader_done,
                &ctx.wake_writer,
                timer.as_mut(),
            ))
            .await;
            break;
        }
        let release_at = ctx.release_idle_write_buffers(&mut batch, last_write);
        let deadline = [deadline, release_at].into_iter().flatten().min();
        wait_for_work(&ctx.wake_writer, timer.as_mut(), deadline).await;
    }
}

impl SessionCtx {
    /// The writer has nothing to write: once it has had nothing for
    /// [`WRITE_BUFFERS_IDLE`], its buffers go back to the allocator.
    /// Returns when to look again (`None`: nothing is held, or it was
    /// given back now).
    fn release_idle_write_buffers(
        &self,
        batch: &mut Transmit,
        last_write: Instant,
    ) -> Option<Instant> {
        let held =
            batch.capacity() + self.out.borrow().capacity() + self.tls.write_buffer_capacity();
        if held == 0 {
            return None;
        }
        let release_at = last_write + WRITE_BUFFERS_IDLE;
        if Instant::now() < release_at {
            return Some(release_at);
        }
        *batch = Transmit::new();
        self.out.borrow_mut().release_if_empty();
        self.tls.release_write_buffer();
        self.proto.borrow_mut().release_idle_capacity();
        None
    }

    /// `task` panicked (see [`TaskGuard`]): count it once, stop trusting
    /// the protocol state, and shut the socket down so the other task's IO
    /// completes and it ends too.
    fn task_failed(&self, worker: &Worker, task: Task) {
        if self.failed.replace(true) {
            return;
        }
        worker.metrics().event(Event::SessionPanicked);
        self.span.in_scope(|| {
            tracing::error!(
                ?task,
                "session task panicked; closing the session and giving back what it held"
            )
        });
        let _ = self.tls.tcp().shutdown(std::net::Shutdown::Both);
        self.wake_writer.notify_one();
        self.output_drained.notify_waiters();
    }

    /// Test builds: panics if a test asked this task of this session to
    /// ([`crate::testing::faults`]). Not compiled into the shipped server.
    #[cfg(any(test, feature = "testing"))]
    fn injected_panic(&self, task: crate::testing::faults::SessionTask) {
        let proto = self.proto.borrow();
        if proto.ipv4().is_some()
            && crate::testing::faults::session_should_panic(proto.username(), task)
        {
            drop(proto);
            panic!("injected panic in the session's {task:?} task");
        }
    }

    /// Runs the session's due timers, collects what they and everything
    /// since make the protocol send, and acts on its events. Returns the
    /// next timer deadline.
    fn run_timers(&self, worker: &Worker) -> Option<Instant> {
        let now = Instant::now();
        if self.preauth_expired(now) && self.close_label.get().is_none() {
            tracing::debug!("not authenticated within server.preauth_timeout; dropping");
            self.close_label.set(Some(Event::PreauthTimeout));
            self.proto.borrow_mut().transport_closed(now);
        }
        let policy_deadline = self.enforce_policy_limits(worker, now);
        let interim_deadline = self.acct_interim(worker, now);
        let deadline =
            crate::net::session_io::collect_output(&self.proto, &mut self.out.borrow_mut(), now);
        self.handle_events(worker);
        let deadline = [deadline, policy_deadline, interim_deadline]
            .into_iter()
            .flatten()
            .min();
        self.with_preauth_deadline(deadline)
    }

    /// Ends the session when its Session-Timeout has passed or it has been
    /// idle for its Idle-Timeout (counted as `session_timeout` and
    /// `idle_timeout`); returns when to look again.
    fn enforce_policy_limits(&self, worker: &Worker, now: Instant) -> Option<Instant> {
        let mut limits = self.limits.get();
        if !limits.is_set() {
            return None;
        }
        if self.proto.borrow().is_closed() {
            self.limits.set(PolicyLimits::default());
            return None;
        }
        let packets = || self.proto.borrow().stats().ip_packets();
        let verdict = limits.check(now, packets);
        self.limits.set(limits);
        match verdict {
            LimitVerdict::Next(at) => at,
            LimitVerdict::End(event) => {
                tracing::info!(reason = event.label(), "session limit reached: closing");
                self.limits.set(PolicyLimits::default());
                self.close_for(worker, event);
                None
            }
        }
    }

    /// Awaits `write` (a write of this session's socket) while the
    /// session's timers keep running: a client that stops reading (a zero
    /// window) holds the write up, and must not hold up the negotiation
    /// and Hello timers that would close it too. Once the session is
    /// closed, the write gets [`CLOSE_LINGER`] to finish; then the socket
    /// is shut down, counted as `write_stalled_at_close`, which completes
    /// the write with an error. (A tokio-uring write cannot be abandoned:
    /// the ring holds it, and with it the socket, until it completes.)
    async fn while_writing<T>(
        &self,
        worker: &Worker,
        write: impl Future<Output = Result<T, TlsIoError>>,
        mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Result<T, TlsIoError> {
        let mut write = std::pin::pin!(write);
        let mut give_up_at: Option<Instant> = None;
        loop {
            if self.failed.get() {
                // The reader failed and shut the socket down: the write
                // completes.
                return write.await;
            }
            let due = self.run_timers(worker);
            if give_up_at.is_none() && self.proto.borrow().is_closed() {
                give_up_at = Some(Instant::now() + CLOSE_LINGER);
            }
            let wake_at = match (due, give_up_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                result = &mut write => return result,
                () = wait_for_work(&self.wake_writer, timer.as_mut(), wake_at) => {}
            }
            if give_up_at.is_some_and(|at| Instant::now() >= at) {
                worker.metrics().event(Event::WriteStalledAtClose);
                tracing::debug!("the client took nothing since the session closed; shutting down");
                let _ = self.tls.tcp().shutdown(std::net::Shutdown::Both);
                return write.await;
            }
        }
    }

    /// Feeds plaintext from the client to the protocol core; IP packets go
    /// to the TUN write queue.
    ///
    /// The core has judged each IP packet (source, size: see
    /// [`Session::handle_input`]); one policy of the server's applies
    /// here: with `ipv4.client_to_client = "deny"` a packet addressed to
    /// another client's tunnel address is dropped
    /// (`client_to_client_denied`).
    ///
    /// What the input makes the protocol answer is collected into the
    /// output buffer at once, so the backlog the reader checks before its
    /// next read ([`SessionCtx::wait_for_output_space`]) is all there is.
    fn input(&self, worker: &Worker, plaintext: &[u8]) {
        let now = Instant::now();
        let deny = worker.shared.config.ipv4.client_to_client == ClientToClient::Deny;
        let mut denied = 0u64;
        {
            let mut proto = self.proto.borrow_mut();
            proto.handle_input(now, plaintext, &mut |packet| {
                if deny
                    && worker
                        .destination_owner(packet)
                        .is_some_and(|owner| owner != self.reference)
                {
                    denied += 1;
                } else {
                    worker.write_to_tun(packet)
                }
            });
            worker.end_tun_batch();
            proto.poll_transmit(now, &mut self.out.borrow_mut());
            // One input answers at most the PPP outbox's 64 frames; what
            // did not fit was dropped (PPP retransmits what matters).
            let overflows = proto.ppp().transmit_overflows();
            let new = overflows.saturating_sub(self.ppp_overflows.replace(overflows));
            worker.metrics().events_n(Event::PppOutboxFull, new);
        }
        worker
            .metrics()
            .events_n(Event::ClientToClientDenied, denied);
        self.after_step(worker);
    }

    /// Plaintext queued for the client: waiting, and in the write in
    /// flight.
    fn output_backlog(&self) -> usize {
        self.out.borrow().len() + self.in_flight.get()
    }

    /// Backpressure on the client's input: while the output backlog is at
    /// [`OUTPUT_HIGH_WATER`], the reader does not read (TCP's window then
    /// slows the client down) until the writer has taken it below
    /// [`OUTPUT_LOW_WATER`]. A client that sends requests and never reads
    /// the answers is held to the bound this way; its timers (negotiation,
    /// Hello) run on and close it.
    async fn wait_for_output_space(&self, worker: &Worker) {
        if self.output_backlog() < OUTPUT_HIGH_WATER || self.proto.borrow().is_closed() {
            return;
        }
        worker.metrics().event(Event::SessionReadPaused);
        loop {
            // Registered before the check, so a wakeup in between is not
            // lost.
            let drained = self.output_drained.notified();
            if self.output_backlog() < OUTPUT_LOW_WATER || self.writer_done.get() {
                return;
            }
            drained.await;
        }
    }

    /// The plaintext queue is at its bound: from now on the kernel drops
    /// this session's packets from TUN, which sstpd would drop after
    /// reading them ([`crate::tun::drop_filter`]), until the writer takes
    /// the queue ([`SessionCtx::queue_has_room`]). Its addresses are
    /// marked, and its Framed-Route prefixes while the route table is
    /// locked, so that a prefix a newer session has taken over is not
    /// marked (the table's observer clears a prefix's mark on every change
    /// of its owner, start.rs).
    pub(crate) fn queue_full(&self, worker: &Worker) {
        if self.kernel_drop.get() != KernelDrop::Off {
            return;
        }
        let Some(filter) = worker.shared.drop_filter.as_deref() else {
            return;
        };
        let routes = self.routes.borrow();
        let framed = self.framed_routes.try_borrow();
        let framed: &[Ipv4Prefix] = framed.as_deref().map_or(&[], |f| f.as_slice());
        let refused = worker
            .shared
            .framed_routes
            .with_owned(self.reference, framed, |prefixes| {
                let refused = routes
                    .iter()
                    .find_map(|addr| filter.mark(*addr).err().map(|e| (addr.to_string(), e)))
                    .or_else(|| {
                        prefixes.iter().find_map(|prefix| {
                            let refused = filter.mark_prefix(*prefix).err();
                            refused.map(|e| (prefix.to_string(), e))
                        })
                    });
                if refused.is_some() {
                    for addr in routes.iter() {
                        let _ = filter.clear(*addr);
                    }
                    for prefix in prefixes {
                        let _ = filter.clear_prefix(*prefix);
                    }
                }
                refused
            });
        if let Some((what, error)) = refused {
            worker.metrics().event(Event::TunDropFilterMarkFailed);
            tracing::debug!(%what, %error, "drop filter refused the mark; dropping at the queue");
            self.kernel_drop.set(KernelDrop::Refused);
            return;
        }
        self.kernel_drop.set(KernelDrop::Marked);
        worker.metrics().event(Event::TunDropFilterMarked);
    }

    /// The writer took the queue (or the session ends): the session's
    /// packets reach sstpd again.
    fn queue_has_room(&self, worker: &Worker) {
        if self.kernel_drop.get() == KernelDrop::Marked {
            // Marked only with a filter. Routes borrowed elsewhere (a
            // panic's cleanup): the mark stays, to be cleared next time.
            let (Some(filter), Ok(routes)) = (
                worker.shared.drop_filter.as_deref(),
                self.routes.try_borrow(),
            ) else {
                return;
            };
            for addr in routes.iter() {
                if let Err(error) = filter.clear(*addr) {
                    worker.metrics().event(Event::TunDropFilterClearFailed);
                    tracing::error!(%addr, %error, "drop filter: could not clear a congested address");
                }
            }
            // Only the prefixes it still holds: a taken-over prefix's mark
            // went with the take-over, and a newer owner may have its own.
            if let Ok(framed) = self.framed_routes.try_borrow() {
                let shared = &worker.shared;
                shared
                    .framed_routes
                    .with_owned(self.reference, &framed, |prefixes| {
                        for prefix in prefixes {
                            if let Err(error) = filter.clear_prefix(*prefix) {
                                worker.metrics().event(Event::TunDropFilterClearFailed);
                                tracing::error!(%prefix, %error, "drop filter: could not clear a congested route");
                            }
                        }
                    });
            }
        }
        self.kernel_drop.set(KernelDrop::Off);
    }

    /// After a write: wakes a paused reader once the backlog is low.
    fn output_written(&self) {
        if self.output_backlog() < OUTPUT_LOW_WATER {
            self.output_drained.notify_waiters();
        }
    }

    /// After any input: act on events and let the writer send what the
    /// protocol queued.
    fn after_step(&self, worker: &Worker) {
        self.handle_events(worker);
        self.wake_writer.notify_one();
    }

    /// Whether [`SessionCtx::send_ip`] would drop a packet now (the
    /// plaintext queue is at its bound).
    pub(crate) fn plaintext_full(&self) -> bool {
        self.out.borrow().len() >= MAX_PENDING_PLAINTEXT
    }

    /// A packet from TUN for this client.
    pub(crate) fn send_ip(&self, worker: &Worker, packet: &[u8]) {
        self.send_ip_gathered(worker, packet, &[]);
    }

    /// A packet from TUN for this client in two pieces, `head` then `rest`
    /// (a segment's rebuilt headers and its payload in the super-packet it
    /// was cut from), copied once into the plaintext queue.
    pub(crate) fn send_ip_gathered(&self, worker: &Worker, head: &[u8], rest: &[u8]) {
        if self.plaintext_full() {
            WorkerMetrics::add(&worker.metrics().tx_queue_full, 1);
            self.queue_full(worker);
            return;
        }
        let mut out = self.out.borrow_mut();
        match self
            .proto
            .borrow_mut()
            .send_ip_gathered(head, rest, &mut out)
        {
            Ok(()) => {
                let m = worker.metrics();
                WorkerMetrics::add(&m.tx_packets, 1);
                WorkerMetrics::add(&m.tx_bytes, (head.len() + rest.len()) as u64);
            }
            Err(e) => worker.metrics().event(e),
        }
        drop(out);
        self.wake_writer.notify_one();
    }

    pub(crate) fn auth_decision(
        &self,
        worker: &Worker,
        request: AuthRequestId,
        decision: AuthDecision,
    ) {
        let now = Instant::now();
        // The user name of this request, if it is the one handed out last.
        let pending = self
            .pending_auth
            .borrow_mut()
            .take_if(|(id, _)| *id == request)
            .map(|(_, user)| user);
        // What the runtime does with the answer, decided before the core
        // takes it and done only if the core applied it: an answer the core
        // drops as stale (its request abandoned by an LCP renegotiation or
        // the phase timeout) sets no policy and counts nothing.
        let verdict = match &decision {
            AuthDecision::Accept(accept) => Some(Ok(accept.policy.clone())),
            // The authenticator could not decide: not a guess.
            AuthDecision::Reject(AuthReject {
                reason: RejectReason::ServiceUnavailable,
                ..
            }) => None,
            AuthDecision::Reject(_) => Some(Err(())),
            // Relayed EAP: the conversation goes on.
            AuthDecision::Challenge(_) => None,
        };
        let applied = self
            .proto
            .borrow_mut()
            .auth_decision(now, request, decision);
        if let (true, Some(user), Some(verdict)) = (applied, pending, verdict) {
            match verdict {
                Ok(policy) => {
                    worker.shared.throttle.record_success(&user);
                    self.apply_policy(worker, now, &user, &policy);
                }
                Err(()) => self.auth_failed(worker, now, &user),
            }
        }
        self.after_step(worker);
    }

    /// Takes the authenticator's per-session policy: the runtime's part of
    /// it (timeouts, pool, accounting) is kept here; the core applies its
    /// own part (DNS, MTU) from the same decision.
    fn apply_policy(&self, worker: &Worker, now: Instant, user: &str, policy: &SessionPolicy) {
        let idle = policy.idle_timeout.map(|timeout| IdleWatch {
            timeout,
            packets: 0,
            active_at: now,
            next_check: now + IdleWatch::check_interval(timeout),
        });
        self.limits.set(PolicyLimits {
            session_end: policy.session_timeout.map(|t| now + t),
            idle,
        });
        *self.policy.borrow_mut() = policy.clone();
        self.authenticated_locally.set(
            worker.shared.config.uses_local_users() && worker.shared.users.lookup(user).is_some(),
        );
        if policy != &SessionPolicy::default() {
            tracing::debug!(?policy, "session policy from the authenticator");
        }
        self.wake_writer.notify_one();
    }

    /// Whether the local user store authenticated this session.
    pub(crate) fn authenticated_locally(&self) -> bool {
        self.authenticated_locally.get()
    }

    /// The accounting record of `kind` for this session now.
    fn acct_record(&self, kind: AcctKind, acct: &SessionAcct, now: Instant) -> AcctRecord {
        let (user, stats) = match self.proto.try_borrow() {
            Ok(proto) => (
                proto.username().unwrap_or_default().to_owned(),
                proto.stats(),
            ),
            // Only after a panic left the protocol state borrowed.
            Err(_) => (String::new(), Default::default()),
        };
        let class = self
            .policy
            .try_borrow()
            .map(|p| p.class.clone())
            .unwrap_or_default();
        AcctRecord {
            kind,
            session_id: self.session_id.clone(),
            user,
            calling_station: Some(self.peer.ip().to_string()),
            framed_ip: Some(acct.framed_ip),
            class,
            authentic: if self.authenticated_locally.get() {
                Authentic::Local
            } else {
                Authentic::Radius
            },
            event_time: if kind == AcctKind::Start {
                acct.start_unix
            } else {
                unix_now()
            },
            session_time: u32::try_from(now.saturating_duration_since(acct.started).as_secs())
                .unwrap_or(u32::MAX),
            traffic: Traffic {
                input_octets: stats.ip_bytes_in,
                output_octets: stats.ip_bytes_out,
                input_packets: stats.ip_packets_in,
                output_packets: stats.ip_packets_out,
            },
            terminate_cause: None,
        }
    }

    /// Accounting Start, once, when IPCP gave the session its address.
    fn acct_start(&self, worker: &Worker, framed_ip: std::net::Ipv4Addr) {
        let Some(radius) = worker.shared.radius.as_ref().filter(|r| r.accounting()) else {
            return;
        };
        if self.acct.borrow().is_some() {
            return;
        }
        let now = Instant::now();
        let interim = self.policy.borrow().acct_interim_interval.or_else(|| {
            let default = worker
                .shared
                .live
                .load()
                .config
                .radius
                .acct_interim_interval;
            (!default.is_zero()).then_some(default)
        });
        let acct = SessionAcct {
            started: now,
            start_unix: unix_now(),
            framed_ip,
            interim,
            next_interim: interim.map(|i| now + i),
        };
        radius.account(self.acct_record(AcctKind::Start, &acct, now));
        *self.acct.borrow_mut() = Some(acct);
        self.wake_writer.notify_one();
    }

    /// Sends the Interim-Update that is due; returns when the next one is.
    fn acct_interim(&self, worker: &Worker, now: Instant) -> Option<Instant> {
        let mut acct = (*self.acct.borrow())?;
        let (interval, due) = (acct.interim?, acct.next_interim?);
        if now < due {
            return Some(due);
        }
        if let Some(radius) = worker.shared.radius.as_ref() {
            radius.account(self.acct_record(AcctKind::InterimUpdate, &acct, now));
        }
        // Catch up without a burst after a stall.
        let mut next = due + interval;
        if next <= now {
            next = now + interval;
        }
        acct.next_interim = Some(next);
        *self.acct.borrow_mut() = Some(acct);
        Some(next)
    }

    /// Accounting Stop for a session that ended for `reason`, once.
    fn acct_stop(&self, worker: &Worker, reason: Event) {
        let Some(acct) = self.acct.try_borrow_mut().ok().and_then(|mut a| a.take()) else {
            return;
        };
        let Some(radius) = worker.shared.radius.as_ref() else {
            return;
        };
        let mut record = self.acct_record(AcctKind::Stop, &acct, Instant::now());
        let cause = terminate_cause(reason, worker.stopping.get());
        record.terminate_cause = Some(cause.value());
        radius.account(record);
    }

    /// Counts a failed attempt with the throttle; logs (rate-limited) when
    /// a lockout engages.
    fn auth_failed(&self, worker: &Worker, now: Instant, user: &str) {
        let source = self.peer.ip();
        let outcome = worker.shared.throttle.record_failure(now, source, user);
        worker
            .metrics()
            .events_n(Event::AuthThrottleEvicted, u64::from(outcome.evicted));
        for (engaged, kind) in [
            (outcome.source_engaged, ThrottleKind::Source),
            (outcome.user_engaged, ThrottleKind::User),
        ] {
            if engaged {
                worker.throttle_engaged(kind, source, user, now);
            }
        }
    }

    /// Graceful close (shutdown): LCP Terminate, then CALL_DISCONNECT.
    pub(crate) fn close(&self, worker: &Worker) {
        self.proto.borrow_mut().close(Instant::now());
        self.after_step(worker);
    }

    /// Graceful close for a reason of the runtime's (`label`, counted
    /// instead of the protocol's close reason).
    pub(crate) fn close_for(&self, worker: &Worker, label: Event) {
        if self.close_label.get().is_none() {
            self.close_label.set(Some(label));
        }
        self.close(worker);
    }

    /// The authenticated user, if authentication succeeded.
    pub(crate) fn username(&self) -> Option<String> {
        self.proto.borrow().username().map(str::to_owned)
    }

    /// Whether the pre-authentication window is over without the call
    /// being established.
    fn preauth_expired(&self, now: Instant) -> bool {
        now >= self.preauth_deadline && self.preauth.borrow().is_some()
    }

    /// `deadline`, or the end of the pre-authentication window if that
    /// comes first and the call is not established yet.
    fn with_preauth_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        if self.preauth.borrow().is_none() {
            return deadline;
        }
        Some(deadline.map_or(self.preauth_deadline, |d| d.min(self.preauth_deadline)))
    }

    fn handle_events(&self, worker: &Worker) {
        loop {
            let event = self.proto.borrow_mut().poll_event();
            let Some(event) = event else { return };
            let _guard = self.span.enter();
            if let Some(phase) = setup_phase(&event) {
                let mut timed = self.setup_timed.get();
                if timed.first(phase) {
                    self.setup_timed.set(timed);
                    let elapsed = self.accepted_at.elapsed();
                    worker.metrics().setup_phase(phase, elapsed);
                }
            }
            match event {
                SessionEvent::AuthRequest(request) => {
                    let now = Instant::now();
                    let verdict =
                        worker
                            .shared
                            .throttle
                            .check(now, self.peer.ip(), &request.username);
                    if let Verdict::Throttled { by, .. } = verdict {
                        // Refused without consulting the user store, with
                        // the answer a wrong password gets.
                        worker.metrics().event(match by {
                            ThrottleKind::Source => Event::AuthThrottledSource,
                            ThrottleKind::User => Event::AuthThrottledUser,
                        });
                        tracing::debug!(user = %request.username, by = ?by, "authentication throttled");
                        let reject = AuthDecision::Reject(AuthReject {
                            reason: RejectReason::AuthenticationFailure,
                            message: crate::proto::auth::verify::REJECT_MESSAGE.into(),
                        });
                        self.proto
                            .borrow_mut()
                            .auth_decision(now, request.id, reject);
                        continue;
                    }
                    tracing::debug!(user = %request.username, method = %request.credentials.protocol(), "authenticating");
                    *self.pending_auth.borrow_mut() = Some((request.id, request.username.clone()));
                    let mailbox = worker.shared.mailboxes[worker.index].clone();
                    let (to, request_id) = (self.reference, request.id);
                    let slot = Arc::new(AnswerSlot::default());
                    let reply = AuthReply::new({
                        let slot = slot.clone();
                        move |decision| {
                            if let Some(decision) = slot.offer(decision) {
                                super::send_control(
                                    &mailbox,
                                    WorkerMsg::Auth {
                                        to,
                                        request: request_id,
                                        decision,
                                    },
                                );
                            }
                        }
                    });
                    let context = AuthContext::new(self.peer, self.session_id.clone());
                    worker
                        .shared
                        .authenticator
                        .authenticate(request, context, reply);
                    if let Some(decision) = slot.close() {
                        self.auth_decision(worker, request_id, decision);
                    }
                }
                SessionEvent::HttpHandshake { correlation_id } => {
                    // Set against sessions_established, this shows the
                    // clients that stop between the 200 and Call Connected.
                    worker.metrics().event(Event::HttpAccepted);
                    self.span
                        .record("correlation_id", field::display(&correlation_id));
                }
                SessionEvent::AuthAttemptFailed(attempt) => {
                    worker.metrics().event(&attempt);
                    tracing::info!(
                        user = %attempt.username,
                        method = %attempt.protocol,
                        outcome = attempt.outcome.as_str(),
                        attempt = attempt.attempt,
                        max_attempts = attempt.max_attempts,
                        "authentication failed"
                    );
                }
                SessionEvent::Authenticated { username } => {
                    if let Some(method) = self.proto.borrow().ppp().auth_protocol() {
                        worker.metrics().event(method);
                    }
                    self.span.record("user", field::display(&username));
                    tracing::info!("authenticated");
                    worker.dae_register(
                        &self.session_id,
                        &username,
                        self.peer.ip(),
                        self.reference,
                    );
                }
                SessionEvent::Established => {
                    // Authenticated and bound: the pre-auth place is free.
                    drop(self.preauth.take());
                    WorkerMetrics::add(&worker.metrics().sessions_established, 1);
                    // Which hash the client bound with: SHA-1-only clients
                    // are worth knowing about before SHA-1 is switched off.
                    let hash = self.proto.borrow().sstp().hash_protocol();
                    worker.metrics().event(match hash {
                        Some(HashProtocol::Sha1) => Event::CryptoBindingSha1,
                        Some(HashProtocol::Sha256) => Event::CryptoBindingSha256,
                        None => Event::CryptoBindingUnknown,
                    });
                    self.established_at.set(Some(Instant::now()));
                    // The structured start line (docs/operations.md, Logs);
                    // the tunnel address follows in "IPCP opened".
                    tracing::info!(
                        user = self.username().as_deref().unwrap_or(""),
                        client = %self.peer,
                        session_id = %self.session_id,
                        hash = hash.map_or("none", HashProtocol::as_str),
                        "session started"
                    );
                }
                SessionEvent::Ipv4AddressRequest(request) => self.assign_ipv4(worker, request),
                SessionEvent::Ipv4AddressReleased(address) => {
                    if self.ipv4_lease.get() == Some(address) {
                        self.release_ipv4(worker);
                    }
                }
                SessionEvent::Ipv4Up(params) => {
                    self.span.record("ip", field::display(params.peer));
                    self.add_route(worker, IpAddr::V4(params.peer));
                    self.ipv4_route.set(Some(params.peer));
                    self.logged_ipv4.set(Some(params.peer));
                    worker.dae_framed_ip(&self.session_id, Some(params.peer));
                    tracing::info!(peer = %params.peer, local = %params.local, "IPCP opened");
                    self.install_framed_routes(worker, params.peer);
                    self.acct_start(worker, params.peer);
                }
                SessionEvent::Ipv4Down => {
                    worker.dae_framed_ip(&self.session_id, None);
                    if let Some(v4) = self.ipv4_route.take() {
                        self.remove_route(worker, IpAddr::V4(v4));
                    }
                    self.release_framed_routes(worker);
                }
                SessionEvent::Ipv6Up(params) => {
                    tracing::info!(
                        peer_ifid = format_args!("{:016x}", params.peer_ifid),
                        "IPv6CP opened"
                    );
                    self.delegate_ipv6_prefix(worker);
                }
                SessionEvent::Ipv6Down => self.release_ipv6_prefix(worker),
                // Client-role only: a server never receives advertisements.
                SessionEvent::Ipv6Prefix { .. } => {}
                SessionEvent::PppStarted => {
                    tracing::debug!("call connect acknowledged; PPP started")
                }
                SessionEvent::Closed(reason) => {
                    worker.dae_unregister(&self.session_id);
                    let label = self
                        .close_label
                        .get()
                        .unwrap_or_else(|| Event::from(&reason));
                    worker.metrics().event(label);
                    self.acct_stop(worker, label);
                    let label = label.label();
                    if let Some(established) = self.established_at.get() {
                        // The structured end line (docs/operations.md, Logs).
                        let stats = self.proto.borrow().stats();
                        let ip = self.logged_ipv4.get();
                        tracing::info!(
                            user = self.username().as_deref().unwrap_or(""),
                            client = %self.peer,
                            ip = ip.map(|ip| ip.to_string()).as_deref().unwrap_or(""),
                            session_id = %self.session_id,
                            duration_ms = established.elapsed().as_millis() as u64,
                            bytes_from_client = stats.ip_bytes_in,
                            packets_from_client = stats.ip_packets_in,
                            bytes_to_client = stats.ip_bytes_out,
                            packets_to_client = stats.ip_packets_out,
                            reason = label,
                            "session ended"
                        );
                    } else {
                        let proto = self.proto.borrow();
                        match proto
                            .claimed_username()
                            .filter(|_| proto.username().is_none())
                        {
                            // Never authenticated: the name it tried, for
                            // the line that says why it ended.
                            Some(user) => tracing::info!(reason = label, user, "session closed"),
                            None => tracing::info!(reason = label, "session closed"),
                        }
                    }
                    // Credentials the authenticator accepted but the crypto
                    // binding did not confirm (a relaying man in the middle,
                    // or a client that does not know the password it
                    // replayed): a failed attempt too.
                    if let CloseReason::Sstp(SstpCloseReason::LocalAbort(
                        AbortReason::CryptoBinding(_),
                    )) = reason
                    {
                        if let Some(user) = self.username() {
                            self.auth_failed(worker, Instant::now(), &user);
                        }
                    }
                }
                SessionEvent::Dropped { reason, count } => {
                    worker.metrics().events_n(&reason, u64::from(count));
                    tracing::debug!(reason = reason.as_str(), count, "dropped");
                }
            }
        }
    }

    fn add_route(&self, worker: &Worker, addr: IpAddr) {
        match worker.shared.table.insert(addr, self.reference) {
            Ok(None) => {}
            Ok(Some(previous)) if previous != self.reference => {
                // A fixed address still held by an older session of the
                // same user (a second login, or a client reconnecting
                // before its old connection timed out): the newer session
                // takes the address over and the older one is closed.
                worker.metrics().event(Event::RouteTakenOver);
                tracing::warn!(%addr, ?previous, "address moved from an older session; closing it");
                worker.disconnect(previous, Event::SessionTakenOver);
            }
            Ok(Some(_)) => {}
            Err(e) => {
                worker.metrics().event(&e);
                tracing::error!(%addr, error = %e, "cannot route address");
                return;
            }
        }
        worker.steer(addr);
        self.routes.borrow_mut().push(addr);
    }

    /// Routes the authenticator's Framed-Routes to this session once its
    /// address is known (`client`), as far as
    /// [`FramedRouteTable::claim`](crate::routing::framed_route::FramedRouteTable::claim)
    /// allows: refusals are counted and logged, older sessions of the same
    /// user whose routes move here are closed, and the core accepts
    /// traffic from the prefixes installed.
    fn install_framed_routes(&self, worker: &Worker, client: std::net::Ipv4Addr) {
        let routes = match self.policy.try_borrow() {
            Ok(policy) if !policy.routes.is_empty() => policy.routes.clone(),
            _ => return,
        };
        // A renegotiated IPCP: the earlier claim goes first.
        self.release_framed_routes(worker);
        let user = self.username().unwrap_or_default();
        let claimed = worker
            .shared
            .framed_routes
            .claim(self.reference, &user, client, &routes);
        let m = worker.metrics();
        for (route, refusal) in &claimed.refused {
            m.event(Event::from(*refusal));
            tracing::warn!(route = %route, reason = refusal.as_str(), "Framed-Route refused");
        }
        m.events_n(Event::FramedRouteInstalled, claimed.installed.len() as u64);
        m.events_n(Event::FramedRouteTakenOver, claimed.taken_over as u64);
        for previous in claimed.taken_from {
            tracing::warn!(
                ?previous,
                "Framed-Route moved from an older session of the user; closing it"
            );
            worker.disconnect(previous, Event::SessionTakenOver);
        }
        if !claimed.installed.is_empty() {
            let list = claimed
                .installed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            tracing::info!(routes = %list, "Framed-Route installed");
        }
        self.proto.borrow_mut().set_ipv4_routes(&claimed.installed);
        *self.framed_routes.borrow_mut() = claimed.installed;
    }

    /// Withdraws this session's Framed-Routes (IPCP down, or the end).
    fn release_framed_routes(&self, worker: &Worker) {
        let Ok(mut routes) = self.framed_routes.try_borrow_mut() else {
            return;
        };
        if routes.is_empty() {
            return;
        }
        let routes = std::mem::take(&mut *routes);
        worker.shared.framed_routes.release(self.reference, &routes);
        // After a panic the protocol state may still be borrowed; it goes
        // with the session anyway.
        if let Ok(mut proto) = self.proto.try_borrow_mut() {
            proto.set_ipv4_routes(&[]);
        }
    }

    fn remove_route(&self, worker: &Worker, addr: IpAddr) {
        // Not left behind in the drop filter for the address's next owner.
        self.queue_has_room(worker);
        if let Ok(true) = worker.shared.table.remove(addr, self.reference) {
            worker.unsteer(addr);
        }
        self.routes.borrow_mut().retain(|a| *a != addr);
    }

    /// Answers the core's address request from the pool (the user's fixed
    /// address, or the next free one).
    fn assign_ipv4(&self, worker: &Worker, request: Ipv4AddressRequest) {
        let pool = self.policy.borrow().pool.clone();
        let address = worker.shared.pools.allocate_ipv4_from(
            &request.username,
            request.wanted,
            pool.as_deref(),
        );
        if let Some(address) = address {
            self.ipv4_lease.set(Some(address));
        }
        let answer = self
            .proto
            .borrow_mut()
            .assign_ipv4(Instant::now(), request.id, address);
        if answer.is_err() {
            self.release_ipv4(worker);
        }
    }

    fn release_ipv4(&self, worker: &Worker) {
        if let Some(address) = self.ipv4_lease.take() {
            worker.shared.pools.release_ipv4(address);
        }
    }

    fn delegate_ipv6_prefix(&self, worker: &Worker) {
        let Some(pool) = worker.shared.pools.ipv6.as_ref() else {
            return;
        };
        match pool.allocate() {
            Ok(prefix) => {
                self.ipv6_prefix.set(Some(prefix));
                self.add_route(worker, IpAddr::V6(prefix));
                self.proto
                    .borrow_mut()
                    .set_ipv6_prefix(Instant::now(), prefix, 64);
                tracing::info!(%prefix, "delegated IPv6 /64");
            }
            Err(e) => {
                worker.metrics().event(&e);
                tracing::warn!(error = %e, "no IPv6 prefix left");
            }
        }
    }

    fn release_ipv6_prefix(&self, worker: &Worker) {
        if let Some(prefix) = self.ipv6_prefix.take() {
            self.remove_route(worker, IpAddr::V6(prefix));
            if let Some(pool) = worker.shared.pools.ipv6.as_ref() {
                let _ = pool.release(prefix);
            }
        }
    }

    /// Final cleanup once the writer has ended (from its [`TaskGuard`]):
    /// routes, prefix, slot, session count. After a panic the protocol's
    /// last events are left alone, and no borrow is assumed free.
    fn finish(&self, worker: &Worker) {
        if !self.failed.get() {
            self.handle_events(worker);
        }
        // A session that ended without its Closed event (a panic, the
        // worker's runtime going away) still gets its Stop.
        self.acct_stop(worker, Event::SessionPanicked);
        // Before the addresses go back to the pool.
        self.queue_has_room(worker);
        self.release_ipv6_prefix(worker);
        self.release_ipv4(worker);
        self.release_framed_routes(worker);
        let routes = self
            .routes
            .try_borrow_mut()
            .map(|mut routes| std::mem::take(&mut *routes))
            .unwrap_or_default();
        for addr in routes {
            if let Ok(true) = worker.shared.table.remove(addr, self.reference) {
                worker.unsteer(addr);
            }
        }
        drop(self.preauth.take());
        worker.dae_unregister(&self.session_id);
        match worker.sessions.try_borrow_mut() {
            Ok(mut sessions) => {
                sessions.remove(self.reference);
            }
            Err(_) => tracing::error!("session slot busy at cleanup; it stays taken"),
        }
        worker
            .metrics()
            .sessions_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.kernel_tls {
            worker
                .metrics()
                .ktls_sessions
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        worker
            .ended_since_memory_return
            .set(worker.ended_since_memory_return.get() + 1);
        worker.session_ended.notify_waiters();
    }
}

/// Dynamic authorization ([RFC 5176]): what a Disconnect-Request or
/// CoA-Request does to this session.
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
impl SessionCtx {
    /// Carries out `action`; [`ActionOutcome::Gone`] if the session is
    /// already closing.
    pub(super) fn dae_action(&self, worker: &Worker, action: DaeAction) -> ActionOutcome {
        if self.failed.get() || self.close_label.get().is_some() || self.proto.borrow().is_closed()
        {
            return ActionOutcome::Gone;
        }
        let _span = self.span.enter();
        match action {
            DaeAction::Disconnect => {
                tracing::info!("closing on an administrator's request (admin reset)");
                self.close_for(worker, Event::AdminReset);
            }
            DaeAction::Change(change) => self.change_limits(Instant::now(), change),
        }
        ActionOutcome::Done
    }

    /// Applies a CoA's Session-Timeout and Idle-Timeout ([RFC 2865] 5.27,
    /// 5.28), counted from `now`; a value of 0 lifts the limit.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    fn change_limits(&self, now: Instant, change: PolicyChange) {
        let seconds = |c: TimeoutChange| match c {
            TimeoutChange::Remove => None,
            TimeoutChange::Set(t) => Some(t),
        };
        let mut limits = self.limits.get();
        let mut policy = self.policy.borrow_mut();
        if let Some(c) = change.session_timeout {
            let timeout = seconds(c);
            limits.session_end = timeout.and_then(|t| now.checked_add(t));
            policy.session_timeout = timeout;
        }
        if let Some(c) = change.idle_timeout {
            let timeout = seconds(c);
            let packets = self.proto.borrow().stats().ip_packets();
            limits.idle = timeout.map(|timeout| IdleWatch {
                timeout,
                packets,
                active_at: now,
                next_check: now + IdleWatch::check_interval(timeout),
            });
            policy.idle_timeout = timeout;
        }
        self.limits.set(limits);
        tracing::info!(
            session_timeout = ?policy.session_timeout,
            idle_timeout = ?policy.idle_timeout,
            "CoA-Request: session limits changed"
        );
        // The writer runs the timers: it takes the new deadline.
        self.wake_writer.notify_one();
    }
}

/// The setup phase an event ends, if any.
fn setup_phase(event: &SessionEvent) -> Option<SetupPhase> {
    match event {
        SessionEvent::HttpHandshake { .. } => Some(SetupPhase::Http),
        SessionEvent::PppStarted => Some(SetupPhase::Sstp),
        SessionEvent::Authenticated { .. } => Some(SetupPhase::Auth),
        SessionEvent::Established => Some(SetupPhase::CallConnected),
        SessionEvent::Ipv4Up(_) => Some(SetupPhase::Ipcp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn session_timeout_ends_at_its_instant() {
        let t0 = Instant::now();
        let mut limits = PolicyLimits {
            session_end: Some(t0 + Duration::from_secs(10)),
            idle: None,
        };
        let never = || -> u64 { unreachable!("no idle check without Idle-Timeout") };
        assert_eq!(
            limits.check(t0, never),
            LimitVerdict::Next(Some(t0 + Duration::from_secs(10)))
        );
        assert_eq!(
            limits.check(t0 + Duration::from_secs(10), never),
            LimitVerdict::End(Event::SessionTimeout)
        );
    }

    #[test]
    fn idle_timeout_ends_a_silent_session_within_an_eighth_of_it() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(80);
        let step = IdleWatch::check_interval(timeout);
        assert_eq!(step, Duration::from_secs(10));
        let mut limits = PolicyLimits {
            session_end: None,
            idle: Some(IdleWatch {
                timeout,
                packets: 0,
                active_at: t0,
                next_check: t0 + step,
            }),
        };
        // Traffic for 30 s keeps it alive.
        let mut now = t0;
        for packets in [3, 5, 9] {
            now += step;
            assert_eq!(
                limits.check(now, || packets),
                LimitVerdict::Next(Some(now + step))
            );
        }
        let last_seen = now;
        // Then silence: ended at the first check 80 s after the last
        // packet was seen.
        loop {
            now += step;
            match limits.check(now, || 9) {
                LimitVerdict::Next(_) => assert!(now - last_seen < timeout),
                LimitVerdict::End(event) => {
                    assert_eq!(event, Event::IdleTimeout);
                    assert_eq!(now - last_seen, timeout);
                    break;
                }
            }
        }
        // Short timeouts are checked every second.
        assert_eq!(
            IdleWatch::check_interval(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            IdleWatch::check_interval(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn the_user_timeout_is_two_hello_intervals_and_reaches_the_socket() {
        assert_eq!(
            user_timeout_for(Duration::from_secs(60)),
            Duration::from_secs(120)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_user_timeout(stream.as_fd(), Duration::from_secs(120)).unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(120))
        );
        // Out of range saturates instead of wrapping.
        set_user_timeout(stream.as_fd(), Duration::MAX).unwrap();
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(i32::MAX as u64))
        );
    }

    fn accept() -> AuthDecision {
        AuthDecision::Accept(crate::proto::auth::AuthAccept::default())
    }

    #[test]
    fn an_answer_given_while_authenticate_runs_is_taken_at_once() {
        let slot = AnswerSlot::default();
        assert!(slot.offer(accept()).is_none(), "kept, not sent on");
        assert!(matches!(slot.close(), Some(AuthDecision::Accept(_))));
        // Closed: nothing more is kept.
        assert!(slot.close().is_none());
    }

    #[test]
    fn an_answer_after_the_slot_closed_goes_back_to_its_sender() {
        let slot = Arc::new(AnswerSlot::default());
        assert!(slot.close().is_none(), "no answer yet");
        // As RADIUS answers: from another thread, later.
        let late = std::thread::spawn({
            let slot = slot.clone();
            move || slot.offer(accept())
        })
        .join()
        .unwrap();
        assert!(
            matches!(late, Some(AuthDecision::Accept(_))),
            "handed back for the mailbox"
        );
        assert!(slot.close().is_none());
    }
}
