//! The client side of the runtime: one SSTP session over real TLS on a
//! tokio-uring runtime, driving the protocol core's client role. The load
//! generator runs thousands of these; the end-to-end tests use a few.
//!
//! [`connect`] opens TCP (optionally from a chosen source address), runs
//! the TLS handshake, then drives HTTP, SSTP, PPP authentication and IPCP
//! until the call is established and an IPv4 address is assigned,
//! timestamping each phase. The returned [`Client`] keeps a reader and a
//! writer task running; IP packets from the server go to the `on_ip`
//! callback, and [`Client::send_ip`] queues packets to the server.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::sync::Notify;

use crate::net::uring_tls::{ReadOutcome, TlsConn, TlsIoError};
use crate::proto::ppp::Ipv4Params;
use crate::proto::session::{
    ClientParams, CloseReason, SendIpError, Session, SessionConfig, SessionEvent,
};
use crate::proto::sstp::{CertHashes, ClientHandshake, Transmit};

/// Everything needed to open one session.
#[derive(Clone)]
pub struct ClientOptions {
    pub target: SocketAddr,
    /// Source address to bind before connecting (spreads sessions over
    /// 127.x so that 100,000 of them do not run out of ephemeral ports).
    pub bind: Option<IpAddr>,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    /// The HTTP Host header (sstp-client sends the address without port).
    pub host: String,
    pub username: String,
    pub password: Vec<u8>,
    /// Client-role protocol configuration.
    pub session: SessionConfig,
    /// Bound on the whole setup, TCP connect to IPCP.
    pub setup_timeout: Duration,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("target", &self.target)
            .field("bind", &self.bind)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How long each phase of the setup took. The phases are consecutive, so
/// they add up to `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupTimes {
    /// TCP connect.
    pub tcp: Duration,
    /// TLS handshake.
    pub tls: Duration,
    /// HTTP `SSTP_DUPLEX_POST` and its 200.
    pub http: Duration,
    /// Call Connect Request until the Acknowledge.
    pub sstp: Duration,
    /// LCP and authentication (to the PPP Success).
    pub ppp_auth: Duration,
    /// IPCP, and Call Connected, until both are done.
    pub network: Duration,
    pub total: Duration,
}

/// Why a session could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    Tcp(std::io::Error),
    Tls(TlsIoError),
    /// The session closed during setup, for this reason.
    Closed(CloseReason),
    /// Setup did not finish within `setup_timeout`.
    Timeout {
        phase: &'static str,
    },
}

impl ConnectError {
    /// Short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectError::Tcp(_) => "tcp_connect_failed",
            ConnectError::Tls(e) => e.as_str(),
            ConnectError::Closed(reason) => reason.as_str(),
            ConnectError::Timeout { .. } => "setup_timeout",
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "TCP connect: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS: {e}"),
            ConnectError::Closed(reason) => write!(f, "closed during setup: {}", reason.as_str()),
            ConnectError::Timeout { phase } => write!(f, "setup timed out in phase {phase}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Receives IP packets from the server.
pub type IpHandler = Box<dyn FnMut(&[u8])>;

struct Inner {
    proto: RefCell<Session>,
    tls: TlsConn,
    out: RefCell<Transmit>,
    wake_writer: Notify,
    /// Signalled whenever the writer takes the queued bytes (and on close):
    /// what [`Client::writable`] waits for.
    drained: Notify,
    on_ip: RefCell<IpHandler>,
    /// Setup progress, timestamped.
    progress: RefCell<Progress>,
    progress_changed: Notify,
    closed: Cell<bool>,
    closed_notify: Notify,
    /// The reader saw the end of the stream (or failed).
    reader_done: Cell<bool>,
    reader_done_notify: Notify,
    /// [`Client::pause_reading`]: the reader reads nothing until resumed.
    reading_paused: Cell<bool>,
    reading_resumed: Notify,
    close_reason: RefCell<Option<CloseReason>>,
    /// Plaintext bytes queued beyond which `send_ip` refuses (backpressure).
    max_pending: usize,
}

#[derive(Default)]
struct Progress {
    http: Option<Instant>,
    ppp_started: Option<Instant>,
    authenticated: Option<Instant>,
    established: Option<Instant>,
    ipv4: Option<(Instant, Ipv4Params)>,
    /// The IPv6 prefix the server announced (Router Advertisement).
    ipv6_prefix: Option<(std::net::Ipv6Addr, u8)>,
    /// Router Advertisements received.
    router_advertisements: u64,
}

/// A connected session.
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("ipv4", &self.ipv4())
            .field("closed", &self.inner.closed.get())
            .finish_non_exhaustive()
    }
}

/// Why [`Client::send_ip`] refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientSendError {
    /// Too much is queued already (the connection is slower than the load).
    Backpressure,
    Protocol(SendIpError),
}

static CORRELATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Opens a session and waits until it is established with an IPv4 address.
pub async fn connect(
    options: &ClientOptions,
    on_ip: IpHandler,
) -> Result<(Client, SetupTimes), ConnectError> {
    let start = Instant::now();
    let deadline = start + options.setup_timeout;
    let within = |phase: &'static str| {
        let left = deadline.saturating_duration_since(Instant::now());
        (left, ConnectError::Timeout { phase })
    };

    let (left, timeout_err) = within("tcp");
    let tcp = match tokio::time::timeout(left, tcp_connect(options)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(ConnectError::Tcp(e)),
        Err(_) => return Err(timeout_err),
    };
    let _ = tcp.set_nodelay(true);
    let tcp_done = Instant::now();

    let conn = rustls::client::UnbufferedClientConnection::new(
        options.tls.clone(),
        options.server_name.clone(),
    )
    .map_err(|e| ConnectError::Tls(TlsIoError::Tls(e)))?;
    let tls = TlsConn::new(tcp, conn);
    let mut early = Vec::new();
    let (left, _) = within("tls");
    tls.handshake(left, &mut early)
        .await
        .map_err(ConnectError::Tls)?;
    let tls_done = Instant::now();
    let server_cert = tls
        .with_tls(|c| {
            c.peer_certificates()
                .and_then(|certs| certs.first().map(|c| CertHashes::of_der(c.as_ref())))
        })
        .flatten()
        .ok_or(ConnectError::Tls(TlsIoError::Tls(
            rustls::Error::NoCertificatesPresented,
        )))?;
    // The records leave rustls (`net::established`) when the configuration
    // lets rustls hand over its secrets: each record then costs one copy
    // and no allocation.
    tls.take_over_records_if(options.tls.enable_secret_extraction)
        .map_err(ConnectError::Tls)?;

    let n = CORRELATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let correlation_id = format!(
        "{{{:08X}-{:04X}-4{:03X}-8000-{:012X}}}",
        n as u32,
        std::process::id() & 0xffff,
        n & 0xfff,
        n
    );
    let handshake = ClientHandshake::new(&options.host, &correlation_id)
        .map_err(|_| ConnectError::Timeout { phase: "http" })?;
    let seed: [u8; 32] = rand::random();
    let session = Session::client(
        &options.session,
        tls_done,
        ClientParams {
            handshake,
            server_cert,
            username: options.username.clone(),
            password: options.password.clone(),
        },
        seed,
    );
    let inner = Rc::new(Inner {
        proto: RefCell::new(session),
        tls,
        out: RefCell::new(Transmit::new()),
        wake_writer: Notify::new(),
        drained: Notify::new(),
        on_ip: RefCell::new(on_ip),
        progress: RefCell::new(Progress::default()),
        progress_changed: Notify::new(),
        closed: Cell::new(false),
        closed_notify: Notify::new(),
        reader_done: Cell::new(false),
        reader_done_notify: Notify::new(),
        reading_paused: Cell::new(false),
        reading_resumed: Notify::new(),
        close_reason: RefCell::new(None),
        max_pending: 1 << 20,
    });
    let client = Client { inner };
    if !early.is_empty() {
        client.input(&early);
    }
    tokio_uring::spawn(reader(client.clone()));
    tokio_uring::spawn(writer(client.clone()));

    // Wait for IPCP and Call Connected.
    loop {
        let changed = client.inner.progress_changed.notified();
        if let Some(reason) = client.inner.close_reason.borrow().clone() {
            return Err(ConnectError::Closed(reason));
        }
        {
            let p = client.inner.progress.borrow();
            if let (Some(established), Some((ipv4_at, _))) = (p.established, p.ipv4) {
                let http = p.http.unwrap_or(tls_done);
                let ppp_started = p.ppp_started.unwrap_or(http);
                let authenticated = p.authenticated.unwrap_or(ppp_started);
                let end = established.max(ipv4_at);
                let times = SetupTimes {
                    tcp: tcp_done - start,
                    tls: tls_done - tcp_done,
                    http: http - tls_done,
                    sstp: ppp_started - http,
                    ppp_auth: authenticated - ppp_started,
                    network: end - authenticated,
                    total: end - start,
                };
                return Ok((client.clone(), times));
            }
        }
        let phase = client.setup_phase();
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, changed).await.is_err() {
            client.abandon();
            return Err(ConnectError::Timeout { phase });
        }
    }
}

async fn tcp_connect(options: &ClientOptions) -> std::io::Result<tokio_uring::net::TcpStream> {
    match options.bind {
        None => tokio_uring::net::TcpStream::connect(options.target).await,
        Some(source) => {
            use socket2::{Domain, Protocol, Socket, Type};
            let socket = Socket::new(
                Domain::for_address(options.target),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            // Let the kernel pick the port at connect time, per 4-tuple, so
            // one source address is not limited to one port range's worth.
            set_bind_address_no_port(&socket);
            socket.bind(&SocketAddr::new(source, 0).into())?;
            socket.set_nonblocking(true)?;
            match socket.connect(&options.target.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            let stream: std::net::TcpStream = socket.into();
            wait_connected(&stream).await?;
            stream.set_nonblocking(false)?;
            Ok(tokio_uring::net::TcpStream::from_std(stream))
        }
    }
}

/// `IP_BIND_ADDRESS_NO_PORT`: defer the port choice to `connect`. Best
/// effort: without it binding still works, with fewer ports per source.
fn set_bind_address_no_port(socket: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to an int of the given size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Waits until a non-blocking connect completes (poll for writability
/// through io_uring would need the raw fd op; a short sleep loop bounded by
/// the caller's timeout is simple and only runs during setup).
async fn wait_connected(stream: &std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let mut delay = Duration::from_micros(50);
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout (never blocks).
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n > 0 {
            return match stream.take_error()? {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

async fn reader(client: Client) {
    let mut plaintext = Vec::new();
    // Once up and until it carries IP, a session's reads wait without a
    // buffer, so a session held idle keeps none; not during its setup.
    let mut quiet = crate::net::session_io::QuietReads::default();
    loop {
        client.reading_allowed().await;
        plaintext.clear();
        match client.inner.tls.read_plaintext(&mut plaintext).await {
            Ok(ReadOutcome::Data(_)) => {
                client.input(&plaintext);
                quiet.apply(&client.inner.tls, &client.inner.proto);
            }
            Ok(ReadOutcome::Closed) | Err(_) => {
                client
                    .inner
                    .proto
                    .borrow_mut()
                    .transport_closed(Instant::now());
                client.after_step();
                break;
            }
        }
        if client.inner.closed.get() {
            break;
        }
    }
    client.inner.reader_done.set(true);
    client.inner.reader_done_notify.notify_one();
}

async fn writer(client: Client) {
    let inner = &client.inner;
    let mut batch = Transmit::new();
    let mut timer = std::pin::pin!(crate::net::session_io::writer_timer());
    loop {
        let deadline = crate::net::session_io::collect_output(
            &inner.proto,
            &mut inner.out.borrow_mut(),
            Instant::now(),
        );
        client.handle_events();
        std::mem::swap(&mut *inner.out.borrow_mut(), &mut batch);
        if !batch.is_empty() {
            inner.drained.notify_waiters();
        }
        if !batch.is_empty() || inner.tls.wants_flush() {
            let result = inner.tls.write_plaintext(batch.bytes()).await;
            batch.clear();
            if result.is_err() {
                inner.proto.borrow_mut().transport_closed(Instant::now());
                client.handle_events();
                break;
            }
            continue;
        }
        if inner.proto.borrow().is_closed() {
            let _ = inner.tls.close().await;
            client.linger(timer.as_mut()).await;
            break;
        }
        crate::net::session_io::wait_for_work(&inner.wake_writer, timer.as_mut(), deadline).await;
    }
    let _ = inner.tls.tcp().shutdown(std::net::Shutdown::Both);
    client.mark_closed();
}

impl Client {
    fn input(&self, plaintext: &[u8]) {
        let inner = &self.inner;
        {
            let mut on_ip = inner.on_ip.borrow_mut();
            inner
                .proto
                .borrow_mut()
                .handle_input(Instant::now(), plaintext, &mut |packet| on_ip(packet));
        }
        self.after_step();
    }

    fn after_step(&self) {
        self.handle_events();
        self.inner.wake_writer.notify_one();
    }

    fn handle_events(&self) {
        let inner = &self.inner;
        loop {
            let event = inner.proto.borrow_mut().poll_event();
            let Some(event) = event else { return };
            let now = Instant::now();
            let mut progress = inner.progress.borrow_mut();
            match event {
                SessionEvent::HttpHandshake { .. } => progress.http = Some(now),
                SessionEvent::PppStarted => progress.ppp_started = Some(now),
                SessionEvent::Authenticated { .. } => progress.authenticated = Some(now),
                SessionEvent::Established => progress.established = Some(now),
                SessionEvent::Ipv4Up(params) => progress.ipv4 = Some((now, params)),
                SessionEvent::Ipv6Up(_) => {}
                SessionEvent::Ipv6Prefix { prefix, len } => {
                    progress.ipv6_prefix = Some((prefix, len));
                    progress.router_advertisements += 1;
                }
                SessionEvent::Closed(reason) => {
                    *inner.close_reason.borrow_mut() = Some(reason);
                }
                _ => continue,
            }
            drop(progress);
            inner.progress_changed.notify_waiters();
        }
    }

    fn setup_phase(&self) -> &'static str {
        let p = self.inner.progress.borrow();
        if p.http.is_none() {
            "http"
        } else if p.ppp_started.is_none() {
            "sstp"
        } else if p.authenticated.is_none() {
            "ppp_auth"
        } else {
            "network"
        }
    }

    /// After our close_notify and FIN: waits for the server's
    /// ([`crate::net::session_io::linger`]).
    async fn linger(&self, timer: std::pin::Pin<&mut tokio::time::Sleep>) {
        crate::net::session_io::linger(
            &self.inner.reader_done,
            &self.inner.reader_done_notify,
            timer,
        )
        .await;
    }

    fn mark_closed(&self) {
        self.inner.closed.set(true);
        if self.inner.close_reason.borrow().is_none() {
            *self.inner.close_reason.borrow_mut() = self
                .inner
                .proto
                .borrow()
                .is_closed()
                .then_some(CloseReason::Sstp(
                    crate::proto::sstp::connection::CloseReason::TransportClosed,
                ));
        }
        self.inner.progress_changed.notify_waiters();
        self.inner.closed_notify.notify_waiters();
        self.inner.drained.notify_waiters();
    }

    /// Stops the session without the protocol's goodbyes (setup timeout).
    fn abandon(&self) {
        self.inner
            .proto
            .borrow_mut()
            .transport_closed(Instant::now());
        self.after_step();
    }

    /// The address IPCP assigned and the server's tunnel address.
    pub fn ipv4(&self) -> Option<Ipv4Params> {
        self.inner.proto.borrow().ipv4()
    }

    /// Our global IPv6 address: the announced prefix with the interface
    /// identifier IPv6CP agreed (SLAAC, [RFC 4862]), once both are known.
    ///
    /// [RFC 4862]: https://www.rfc-editor.org/rfc/rfc4862
    pub fn ipv6_address(&self) -> Option<std::net::Ipv6Addr> {
        let (prefix, len) = self.inner.progress.borrow().ipv6_prefix?;
        let ifid = self.inner.proto.borrow().ipv6()?.local_ifid;
        (len == 64).then(|| std::net::Ipv6Addr::from(u128::from(prefix) | u128::from(ifid)))
    }

    /// How many Router Advertisements the server has sent us.
    pub fn router_advertisements(&self) -> u64 {
        self.inner.progress.borrow().router_advertisements
    }

    /// The IPv6 link-local address (`fe80::<interface identifier>`).
    pub fn ipv6_link_local(&self) -> Option<std::net::Ipv6Addr> {
        let ifid = self.inner.proto.borrow().ipv6()?.local_ifid;
        Some(crate::proto::ndp::link_local(ifid))
    }

    /// Waits (bounded) until the server has announced an IPv6 prefix.
    pub async fn wait_ipv6(&self, timeout: Duration) -> Option<std::net::Ipv6Addr> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.progress_changed.notified();
            if let Some(addr) = self.ipv6_address() {
                return Some(addr);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.ipv6_address();
            }
        }
    }

    /// Stateless address autoconfiguration over the tunnel ([RFC 4862]):
    /// waits (bounded) for IPv6CP, sends a Router Solicitation from our
    /// link-local address, once a second until the server's Router
    /// Advertisement has announced a prefix, and returns the global
    /// address formed from it and our interface identifier. `None` if
    /// IPv6CP or the advertisement did not come in time.
    ///
    /// [RFC 4862]: https://www.rfc-editor.org/rfc/rfc4862
    pub async fn autoconfigure_ipv6(&self, timeout: Duration) -> Option<std::net::Ipv6Addr> {
        const SOLICIT_EVERY: Duration = Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut next_solicitation = tokio::time::Instant::now();
        loop {
            let changed = self.inner.progress_changed.notified();
            if let Some(addr) = self.ipv6_address() {
                return Some(addr);
            }
            if self.is_closed() {
                return None;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return self.ipv6_address();
            }
            // Until IPv6CP is up there is nothing to solicit from: wait
            // for its event.
            let mut wake = deadline;
            if let Some(source) = self.ipv6_link_local() {
                if now >= next_solicitation {
                    let mut rs = Vec::with_capacity(48);
                    crate::proto::ndp::encode_router_solicitation(source, &mut rs);
                    let _ = self.send_ip(&rs);
                    next_solicitation = now + SOLICIT_EVERY;
                }
                wake = wake.min(next_solicitation);
            }
            let _ = tokio::time::timeout_at(wake, changed).await;
        }
    }

    /// The largest IP packet to send: the server's MRU as LCP negotiated
    /// it (the MTU a client's TUN device gets).
    pub fn transmit_mtu(&self) -> u16 {
        self.inner.proto.borrow().ppp().transmit_mtu()
    }

    /// Our tunnel address.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.ipv4().map(|p| p.local)
    }

    /// Queues an IP packet for the server (one SSTP data packet; packets
    /// queued together leave in one TLS write).
    pub fn send_ip(&self, packet: &[u8]) -> Result<(), ClientSendError> {
        self.send_ip_gathered(packet, &[])
    }

    /// [`Client::send_ip`] for a packet in two pieces, `head` then `rest`
    /// (a segment's rebuilt headers and its payload in the super-packet it
    /// was cut from), copied once into the plaintext queue.
    pub fn send_ip_gathered(&self, head: &[u8], rest: &[u8]) -> Result<(), ClientSendError> {
        let inner = &self.inner;
        let mut out = inner.out.borrow_mut();
        if out.len() >= inner.max_pending {
            return Err(ClientSendError::Backpressure);
        }
        inner
            .proto
            .borrow_mut()
            .send_ip_gathered(head, rest, &mut out)
            .map_err(ClientSendError::Protocol)?;
        drop(out);
        inner.wake_writer.notify_one();
        Ok(())
    }

    /// Plaintext bytes queued and not yet handed to TLS.
    pub fn pending_bytes(&self) -> usize {
        self.inner.out.borrow().len()
    }

    /// Waits until fewer than `limit` plaintext bytes are queued (the
    /// writer has taken the batch and is encrypting it), or the session has
    /// ended. A sender that fills the queue to `limit` and then waits here
    /// keeps one batch in TLS and one filling: full speed without polling,
    /// and at most about `2 * limit` bytes buffered per session.
    pub async fn writable(&self, limit: usize) {
        loop {
            let drained = self.inner.drained.notified();
            if self.pending_bytes() < limit || self.inner.closed.get() {
                return;
            }
            // Make sure a writer parked on its notify sees the queue.
            self.inner.wake_writer.notify_one();
            drained.await;
        }
    }

    /// Whether the session's next read waits for data without holding a
    /// read buffer: so for a session that is up and has carried no IP
    /// yet, which is how a load generator holds many idle sessions.
    pub fn reads_quietly(&self) -> bool {
        self.inner.tls.is_quiet()
    }

    /// Stops reading the socket after the read in flight, as a stalled
    /// client does: what the server sends piles up in the kernel's socket
    /// buffers, then in the server's queue for this session. For tests of
    /// the server's bounds.
    pub fn pause_reading(&self) {
        self.inner.reading_paused.set(true);
    }

    /// Reads again after [`Client::pause_reading`].
    pub fn resume_reading(&self) {
        self.inner.reading_paused.set(false);
        self.inner.reading_resumed.notify_one();
    }

    async fn reading_allowed(&self) {
        while self.inner.reading_paused.get() {
            self.inner.reading_resumed.notified().await;
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Whether the server ended TLS with a close_notify.
    pub fn received_close_notify(&self) -> bool {
        self.inner.tls.peer_sent_close_notify()
    }

    /// Sends a TLS 1.3 KeyUpdate (with the next batch of output, or now).
    pub fn request_key_update(&self) -> Result<(), TlsIoError> {
        self.inner.tls.request_key_update()?;
        self.inner.wake_writer.notify_one();
        Ok(())
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.close_reason.borrow().clone()
    }

    /// Graceful close (LCP Terminate, Call Disconnect); waits at most
    /// `timeout` for the exchange to finish.
    pub async fn close(&self, timeout: Duration) {
        self.inner.proto.borrow_mut().close(Instant::now());
        self.after_step();
        self.wait_closed(timeout).await;
    }

    /// Waits until the session has closed, with no timer (a caller that
    /// races it against something else, as the load generator's idle
    /// sessions race it against the run's end: 100,000 of them then keep
    /// no timer in the runtime's wheel).
    pub async fn closed(&self) {
        while !self.inner.closed.get() {
            self.inner.closed_notify.notified().await;
        }
    }

    /// Waits until the session ends (either side), at most `timeout`.
    /// Returns whether it ended.
    pub async fn wait_closed(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.closed()).await.is_ok() || self.inner.closed.get()
    }
}
