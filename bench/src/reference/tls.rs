//! Bare TLS over loopback with sstpd's own TLS stack: rustls (aws-lc-rs)
//! configured by `sstpd::tls`, driven by [`sstpd::net::uring_tls::TlsConn`] on
//! tokio-uring, one thread per side. That is exactly the path a tunnel
//! packet takes in sstpd minus SSTP, PPP and TUN, so a scenario's figure
//! divided by its reference says what the tunnel costs on top of the TLS
//! it cannot avoid.
//!
//! Three measurements, each bounded by a duration and a count:
//!
//! * [`stream`]: one connection, the client writes as fast as it can in
//!   fixed writes with a fixed TLS record size; the server reads.
//! * [`handshakes`]: N concurrent clients connect, complete a TLS
//!   handshake and close, over and over.
//! * [`ping_pong`]: one connection, a small message echoed back; the
//!   round-trip time of each.
//! * [`paced_ping_pong`]: the same echo over several connections, the
//!   messages sent at a fixed rate whether or not the earlier ones came
//!   back (as the latency scenarios send their probes).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use sstpd::config::{TlsSection, TlsVersion};
use sstpd::net::uring_tls::{ReadOutcome, TlsConn};
use sstpd::tls::certs::{generate_self_signed, IdentityOrigin, SelfSignedKey};
use sstpd::tls::client::{build_client_config, server_name, ClientOptions, ServerVerification};
use sstpd::tls::{
    build_server_config, cipher_suite_by_name, cipher_suites, suite_version, ServerIdentity,
    ServerTlsOptions,
};

use super::{thread_cpu_seconds, ReferenceError};
use crate::results::LatencyProfile;

/// Bound on every handshake of the references.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server certificate: generated (ECDSA P-256 like sstpd's own
/// self-signed one, or RSA 2048) or loaded from the PEM files a scenario's
/// sstpd uses, so both pay for the same signatures.
#[derive(Clone, Debug)]
pub enum CertSource {
    Generate(SelfSignedKey),
    Files {
        certificate: std::path::PathBuf,
        private_key: std::path::PathBuf,
    },
}

impl Default for CertSource {
    fn default() -> Self {
        CertSource::Generate(SelfSignedKey::EcdsaP256)
    }
}

impl CertSource {
    pub fn identity(&self) -> Result<ServerIdentity, ReferenceError> {
        match self {
            CertSource::Generate(kind) => {
                let cert = generate_self_signed(*kind, &["localhost"])
                    .map_err(|e| ReferenceError::Tls(e.to_string()))?;
                ServerIdentity::from_der(
                    vec![cert.cert_der],
                    cert.key_der,
                    "generated".into(),
                    IdentityOrigin::SelfSignedGenerated,
                )
                .map_err(|e| ReferenceError::Tls(e.to_string()))
            }
            CertSource::Files {
                certificate,
                private_key,
            } => ServerIdentity::from_pem_files(certificate, private_key, IdentityOrigin::Files)
                .map_err(|e| ReferenceError::Tls(e.to_string())),
        }
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            CertSource::Generate(SelfSignedKey::EcdsaP256) => "ECDSA P-256 (generated)".into(),
            CertSource::Generate(SelfSignedKey::Rsa2048) => "RSA 2048 (generated)".into(),
            CertSource::Files { certificate, .. } => certificate.display().to_string(),
        }
    }
}

/// Server and client configurations as sstpd and its clients build them:
/// `sstpd::tls::build_server_config` with the default `[tls]` section
/// (no session resumption), `build_client_config` accepting the
/// self-signed certificate. `suite` restricts both ends to one suite
/// (`None`: sstpd's defaults). `record_size` bounds the plaintext of one
/// TLS record (`None`: 16 KiB).
pub fn configs(
    identity: &ServerIdentity,
    suite: Option<&str>,
    record_size: Option<usize>,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>), ReferenceError> {
    let tls_error = |e: sstpd::tls::TlsError| ReferenceError::Tls(e.to_string());
    let (suites, versions) = match suite {
        Some(name) => {
            let suite = cipher_suite_by_name(name).map_err(ReferenceError::Tls)?;
            let version = suite_version(suite);
            (vec![suite], (version, version))
        }
        None => (
            cipher_suites(None).map_err(tls_error)?,
            (TlsVersion::Tls12, TlsVersion::Tls13),
        ),
    };
    let section = TlsSection {
        min_version: versions.0,
        max_version: versions.1,
        ..TlsSection::default()
    };
    let server = build_server_config(
        &section,
        identity,
        suites,
        ServerTlsOptions {
            secret_extraction: false,
        },
    )
    .map_err(tls_error)?;
    let client = build_client_config(&ClientOptions {
        verification: ServerVerification::Insecure,
        min_version: versions.0,
        max_version: versions.1,
        cipher_suites: suite.map(|s| vec![s.to_owned()]),
        send_sni: true,
        key_log: false,
        secret_extraction: false,
    })
    .map_err(tls_error)?;
    let Some(size) = record_size else {
        return Ok((server, client));
    };
    if !(32..=16 * 1024).contains(&size) {
        return Err(ReferenceError::Params(format!(
            "record size {size} is outside 32..=16384"
        )));
    }
    // rustls counts the 5-byte record header in its fragment size.
    let mut server = (*server).clone();
    server.max_fragment_size = Some(size + 5);
    let mut client = (*client).clone();
    client.max_fragment_size = Some(size + 5);
    Ok((Arc::new(server), Arc::new(client)))
}

/// Parameters of [`stream`].
#[derive(Clone, Debug)]
pub struct StreamParams {
    /// Cipher suite name (rustls spelling).
    pub suite: String,
    /// Plaintext bytes per TLS record.
    pub record_size: usize,
    /// Plaintext bytes per write (one `TlsConn::write_plaintext` call).
    pub write_size: usize,
    pub duration: Duration,
    /// Stop after this many bytes even if time remains.
    pub max_bytes: u64,
    pub cert: CertSource,
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            suite: "TLS13_AES_128_GCM_SHA256".into(),
            record_size: 16 * 1024,
            write_size: 64 * 1024,
            duration: Duration::from_secs(3),
            max_bytes: 64 << 30,
            cert: CertSource::default(),
        }
    }
}

/// What [`stream`] measured (at the receiving server).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    /// CPU time of the receiving (server) thread: decryption and reads.
    pub server_cpu_seconds: f64,
    /// CPU time of the sending thread: encryption and writes.
    pub client_cpu_seconds: f64,
}

impl StreamResult {
    /// Receiver CPU seconds per gigabyte (10^9 bytes) of plaintext.
    pub fn server_cpu_s_per_gb(&self) -> f64 {
        per_gb(self.server_cpu_seconds, self.bytes)
    }

    /// Sender CPU seconds per gigabyte of plaintext (encryption, writes).
    pub fn client_cpu_s_per_gb(&self) -> f64 {
        per_gb(self.client_cpu_seconds, self.bytes)
    }
}

fn per_gb(seconds: f64, bytes: u64) -> f64 {
    if bytes == 0 {
        0.0
    } else {
        seconds / (bytes as f64 / 1e9)
    }
}

/// `tokio_uring::start` with the ring flags sstpd's workers get
/// (`sstpd::sys::uring`), so that the reference and sstpd run on like rings.
fn start_runtime<F: std::future::Future>(future: F) -> F::Output {
    sstpd::sys::uring::start(sstpd::sys::uring::DEFAULT_ENTRIES, future)
        .expect("an io_uring runtime for the reference")
}

fn listener() -> Result<(std::net::TcpListener, SocketAddr), ReferenceError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn connect_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsConn, ReferenceError> {
    let tcp = tokio_uring::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = server_name("localhost").map_err(|e| ReferenceError::Tls(e.to_string()))?;
    let tls = UnbufferedClientConnection::new(config, name)
        .map_err(|e| ReferenceError::Tls(e.to_string()))?;
    let conn = TlsConn::new(tcp, tls);
    let mut early = Vec::new();
    conn.handshake(HANDSHAKE_TIMEOUT, &mut early)
        .await
        .map_err(|e| ReferenceError::Tls(e.to_string()))?;
    Ok(conn)
}

/// A server-side TLS connection on an accepted socket, not yet handshaken.
fn server_conn(
    tcp: tokio_uring::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Option<TlsConn> {
    tcp.set_nodelay(true).ok()?;
    let tls = UnbufferedServerConnection::new(config).ok()?;
    Some(TlsConn::new(tcp, tls))
}

async fn accept_tls(
    tcp: tokio_uring::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    early: &mut Vec<u8>,
) -> Result<TlsConn, ReferenceError> {
    let conn = server_conn(tcp, config)
        .ok_or_else(|| ReferenceError::Tls("cannot set up the server connection".into()))?;
    conn.handshake(HANDSHAKE_TIMEOUT, early)
        .await
        .map_err(|e| ReferenceError::Tls(e.to_string()))?;
    Ok(conn)
}

/// Bulk TLS over loopback: the client writes `write_size` chunks for
/// `duration` (or `max_bytes`), the server decrypts and counts. The rate
/// is taken at the server from its first plaintext to the close.
pub fn stream(params: &StreamParams) -> Result<StreamResult, ReferenceError> {
    if params.write_size == 0 {
        return Err(ReferenceError::Params("write size must be positive".into()));
    }
    let identity = params.cert.identity()?;
    let (server_config, client_config) =
        configs(&identity, Some(&params.suite), Some(params.record_size))?;
    let (listener, addr) = listener()?;
    let server = spawn(SERVER_THREAD, move || {
        start_runtime(async move {
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            let (tcp, _) = listener.accept().await?;
            let mut buf = Vec::with_capacity(256 * 1024);
            let conn = accept_tls(tcp, server_config, &mut buf).await?;
            let cpu_start = thread_cpu_seconds();
            let mut total = buf.len() as u64;
            let mut first: Option<Instant> = None;
            loop {
                buf.clear();
                match conn
                    .read_plaintext(&mut buf)
                    .await
                    .map_err(|e| ReferenceError::Tls(e.to_string()))?
                {
                    ReadOutcome::Data(n) => {
                        first.get_or_insert_with(Instant::now);
                        total += n as u64;
                    }
                    ReadOutcome::Closed => break,
                }
            }
            let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
            Ok::<_, ReferenceError>((total, seconds, thread_cpu_seconds() - cpu_start))
        })
    })?;
    let duration = params.duration;
    let max_bytes = params.max_bytes;
    let write_size = params.write_size;
    let client = spawn(CLIENT_THREAD, move || {
        start_runtime(async move {
            let conn = connect_tls(addr, client_config).await?;
            let chunk = vec![0x5au8; write_size];
            let cpu_start = thread_cpu_seconds();
            let deadline = Instant::now() + duration;
            let mut sent = 0u64;
            while Instant::now() < deadline && sent < max_bytes {
                conn.write_plaintext(&chunk)
                    .await
                    .map_err(|e| ReferenceError::Tls(e.to_string()))?;
                sent += chunk.len() as u64;
            }
            conn.close()
                .await
                .map_err(|e| ReferenceError::Tls(e.to_string()))?;
            Ok::<_, ReferenceError>((sent, thread_cpu_seconds() - cpu_start))
        })
    })?;
    let client = join(client)?;
    let (bytes, seconds, server_cpu_seconds) = join(server)?;
    let (sent, client_cpu_seconds) = client;
    if bytes != sent {
        return Err(ReferenceError::Incomplete(format!(
            "stream: sent {sent} bytes, server received {bytes}"
        )));
    }
    Ok(StreamResult {
        bytes,
        seconds,
        gbit_per_s: if seconds > 0.0 {
            bytes as f64 * 8.0 / seconds / 1e9
        } else {
            0.0
        },
        server_cpu_seconds,
        client_cpu_seconds,
    })
}

/// The reference server's thread name: what `perf` records as its command
/// (`sstp-bench split-profile --comm tls-ref-server`).
pub const SERVER_THREAD: &str = "tls-ref-server";
/// The reference client's thread name.
pub const CLIENT_THREAD: &str = "tls-ref-client";

/// Runs `f` on a new thread called `name`.
fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, ReferenceError> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T, ReferenceError>>, ReferenceError> {
    Ok(std::thread::Builder::new().name(name.into()).spawn(f)?)
}

fn join<T>(
    handle: std::thread::JoinHandle<Result<T, ReferenceError>>,
) -> Result<T, ReferenceError> {
    handle
        .join()
        .map_err(|_| ReferenceError::Incomplete("a reference thread panicked".into()))?
}

/// Parameters of [`handshakes`].
#[derive(Clone, Debug)]
pub struct HandshakeParams {
    /// One suite, or `None` for sstpd's defaults (the client then gets
    /// what sstpd negotiates by default: TLS 1.3, AES-128-GCM).
    pub suite: Option<String>,
    /// Concurrent clients.
    pub clients: usize,
    pub duration: Duration,
    pub max_handshakes: u64,
    pub cert: CertSource,
    /// Request/response exchanges after each handshake: the client writes
    /// `message_size` bytes, the server echoes them, the client waits for
    /// all of them (0: handshake and close).
    pub exchanges: usize,
    pub message_size: usize,
    /// Cores to pin the server's and the client's threads to (sstpd's
    /// first worker core and the load generator's, so that the handshakes
    /// run where the setup scenario's do); `None`: where the scheduler
    /// puts them.
    pub server_core: Option<usize>,
    pub client_core: Option<usize>,
}

impl Default for HandshakeParams {
    fn default() -> Self {
        HandshakeParams {
            suite: None,
            clients: 8,
            duration: Duration::from_secs(3),
            max_handshakes: 1_000_000,
            cert: CertSource::default(),
            exchanges: 0,
            message_size: 100,
            server_core: None,
            client_core: None,
        }
    }
}

/// What [`handshakes`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeResult {
    /// Handshakes the server completed.
    pub handshakes: u64,
    /// Client attempts that failed (should be zero).
    pub failures: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// Server thread CPU time (accepting, handshaking, closing).
    pub server_cpu_seconds: f64,
}

impl HandshakeResult {
    /// Server CPU seconds per 1,000 handshakes.
    pub fn server_cpu_s_per_1000(&self) -> f64 {
        if self.handshakes == 0 {
            0.0
        } else {
            self.server_cpu_seconds * 1000.0 / self.handshakes as f64
        }
    }
}

/// TLS handshake rate: `clients` tasks on one client thread connect,
/// handshake, make `exchanges` request/response exchanges and close, in a
/// loop against one server thread, which handshakes each connection, echoes
/// what it reads and waits for the close.
pub fn handshakes(params: &HandshakeParams) -> Result<HandshakeResult, ReferenceError> {
    if params.clients == 0 {
        return Err(ReferenceError::Params("at least one client".into()));
    }
    if params.exchanges > 0 && params.message_size == 0 {
        return Err(ReferenceError::Params(
            "message size must be positive".into(),
        ));
    }
    let identity = params.cert.identity()?;
    let (server_config, client_config) = configs(&identity, params.suite.as_deref(), None)?;
    let (listener, addr) = listener()?;
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = stop.clone();
    let (server_core, client_core) = (params.server_core, params.client_core);
    let server = spawn(SERVER_THREAD, move || {
        pin_current_thread(server_core)?;
        start_runtime(async move {
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            let done = Rc::new(Cell::new(0u64));
            let active = Rc::new(Cell::new(0usize));
            let cpu_start = thread_cpu_seconds();
            loop {
                let (tcp, _) = listener.accept().await?;
                if server_stop.load(Ordering::Acquire) {
                    break;
                }
                let config = server_config.clone();
                let (done, active) = (done.clone(), active.clone());
                active.set(active.get() + 1);
                tokio_uring::spawn(async move {
                    if let Some(conn) = server_conn(tcp, config) {
                        // A client that closes right after its Finished
                        // makes `handshake` report the close: count by the
                        // TLS state, not by the call's result.
                        let mut early = Vec::new();
                        let result = conn.handshake(HANDSHAKE_TIMEOUT, &mut early).await;
                        // `None`: the kernel does the records, so the handshake is over.
                        if conn.with_tls(|tls| !tls.is_handshaking()).unwrap_or(true) {
                            done.set(done.get() + 1);
                        }
                        // Echo the exchanges' messages, one write per
                        // read as sstpd answers; then wait for the
                        // client's close, as sstpd would read.
                        while result.is_ok() {
                            if !early.is_empty() && conn.write_plaintext(&early).await.is_err() {
                                break;
                            }
                            early.clear();
                            match conn.read_plaintext(&mut early).await {
                                Ok(ReadOutcome::Data(_)) => {}
                                _ => break,
                            }
                        }
                    }
                    active.set(active.get() - 1);
                });
            }
            // Every client has finished: let the last connections (their
            // final handshake flight, their close) be processed.
            let drain_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            while active.get() > 0 && Instant::now() < drain_deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, ReferenceError>((done.get(), thread_cpu_seconds() - cpu_start))
        })
    })?;
    let clients = params.clients;
    let duration = params.duration;
    let max = params.max_handshakes;
    let (exchanges, message_size) = (params.exchanges, params.message_size);
    let client = spawn(CLIENT_THREAD, move || {
        // A client that cannot be pinned still stops the server below.
        let pinned = pin_current_thread(client_core);
        let run = pinned.is_ok().then(|| {
            start_runtime(async move {
                let ok = Rc::new(Cell::new(0u64));
                let failed = Rc::new(Cell::new(0u64));
                let start = Instant::now();
                let deadline = start + duration;
                let tasks: Vec<_> = (0..clients)
                    .map(|_| {
                        let (ok, failed, config) =
                            (ok.clone(), failed.clone(), client_config.clone());
                        tokio_uring::spawn(async move {
                            while Instant::now() < deadline && ok.get() + failed.get() < max {
                                let conn = match connect_tls(addr, config.clone()).await {
                                    Ok(conn) => conn,
                                    Err(_) => {
                                        failed.set(failed.get() + 1);
                                        continue;
                                    }
                                };
                                match exchange(&conn, exchanges, message_size).await {
                                    Ok(()) => ok.set(ok.get() + 1),
                                    Err(_) => failed.set(failed.get() + 1),
                                }
                                let _ = conn.close().await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    let _ = task.await;
                }
                (ok.get(), failed.get(), start.elapsed().as_secs_f64())
            })
        });
        // Wake the accept loop so that it sees the stop flag.
        stop.store(true, Ordering::Release);
        let _ = std::net::TcpStream::connect(addr);
        pinned?;
        Ok::<_, ReferenceError>(run.unwrap_or_default())
    })?;
    let (_ok, failures, seconds) = join(client)?;
    let (handshakes, server_cpu_seconds) = join(server)?;
    Ok(HandshakeResult {
        handshakes,
        failures,
        seconds,
        per_second: if seconds > 0.0 {
            handshakes as f64 / seconds
        } else {
            0.0
        },
        server_cpu_seconds,
    })
}

/// `exchanges` times: writes a `message_size`-byte message and reads until
/// as many bytes have come back.
async fn exchange(
    conn: &TlsConn,
    exchanges: usize,
    message_size: usize,
) -> Result<(), ReferenceError> {
    if exchanges == 0 {
        return Ok(());
    }
    let message = vec![0x5au8; message_size];
    let mut reply = Vec::with_capacity(message_size);
    for _ in 0..exchanges {
        conn.write_plaintext(&message)
            .await
            .map_err(|e| ReferenceError::Tls(e.to_string()))?;
        read_reply(conn, &mut reply, message_size, "exchanges").await?;
    }
    Ok(())
}

/// Reads until `reply` holds `len` bytes (`reply` emptied first); the
/// server closing first is an error of `what`.
async fn read_reply(
    conn: &TlsConn,
    reply: &mut Vec<u8>,
    len: usize,
    what: &str,
) -> Result<(), ReferenceError> {
    reply.clear();
    while reply.len() < len {
        match conn
            .read_plaintext(reply)
            .await
            .map_err(|e| ReferenceError::Tls(e.to_string()))?
        {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Closed => {
                return Err(ReferenceError::Incomplete(format!(
                    "{what}: the server closed early"
                )))
            }
        }
    }
    Ok(())
}

/// Parameters of [`ping_pong`].
#[derive(Clone, Debug)]
pub struct PingPongParams {
    pub suite: String,
    /// Bytes per message (both ways).
    pub message_size: usize,
    pub duration: Duration,
    pub max_round_trips: u64,
    /// Round trips before recording starts.
    pub warmup: u64,
    pub cert: CertSource,
    /// Cores to pin the server's and the client's threads to, as
    /// [`PacedPingPongParams`]' (`None`: where the scheduler puts them).
    pub server_core: Option<usize>,
    pub client_core: Option<usize>,
}

impl Default for PingPongParams {
    fn default() -> Self {
        PingPongParams {
            suite: "TLS13_AES_128_GCM_SHA256".into(),
            message_size: 64,
            duration: Duration::from_secs(3),
            max_round_trips: 200_000,
            warmup: 200,
            cert: CertSource::default(),
            server_core: None,
            client_core: None,
        }
    }
}

/// What [`ping_pong`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PingPongResult {
    pub round_trips: u64,
    pub latency: LatencyProfile,
}

/// Round-trip latency of a small message over one TLS connection: the
/// client writes `message_size` bytes, the server echoes them, the client
/// waits for all of them; one sample per round trip.
pub fn ping_pong(params: &PingPongParams) -> Result<PingPongResult, ReferenceError> {
    if params.message_size == 0 {
        return Err(ReferenceError::Params(
            "message size must be positive".into(),
        ));
    }
    let identity = params.cert.identity()?;
    let (server_config, client_config) = configs(&identity, Some(&params.suite), None)?;
    let (listener, addr) = listener()?;
    let server_core = params.server_core;
    let server = spawn(SERVER_THREAD, move || {
        pin_current_thread(server_core)?;
        start_runtime(async move {
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            let (tcp, _) = listener.accept().await?;
            let mut buf = Vec::with_capacity(64 * 1024);
            let conn = accept_tls(tcp, server_config, &mut buf).await?;
            echo(&conn, buf).await
        })
    })?;
    let params_client = params.clone();
    let client = spawn(CLIENT_THREAD, move || {
        pin_current_thread(params_client.client_core)?;
        start_runtime(async move {
            let p = params_client;
            let conn = connect_tls(addr, client_config).await?;
            let message = vec![0xa5u8; p.message_size];
            let mut reply = Vec::with_capacity(64 * 1024);
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| ReferenceError::Params(e.to_string()))?;
            let deadline = Instant::now() + p.duration;
            let mut round_trips = 0u64;
            let total = p.warmup + p.max_round_trips;
            for i in 0..total {
                if i >= p.warmup && Instant::now() >= deadline {
                    break;
                }
                let start = Instant::now();
                conn.write_plaintext(&message)
                    .await
                    .map_err(|e| ReferenceError::Tls(e.to_string()))?;
                read_reply(&conn, &mut reply, message.len(), "ping-pong").await?;
                if i >= p.warmup {
                    let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                    histogram.saturating_record(ns.max(1));
                    round_trips += 1;
                }
            }
            let _ = conn.close().await;
            Ok::<_, ReferenceError>((round_trips, histogram))
        })
    })?;
    let (round_trips, histogram) = join(client)?;
    join(server)?;
    Ok(PingPongResult {
        round_trips,
        latency: LatencyProfile::from_histogram_ns(&histogram),
    })
}

/// Parameters of [`paced_ping_pong`].
#[derive(Clone, Debug)]
pub struct PacedPingPongParams {
    pub suite: String,
    /// Bytes per message (both ways), at least 8: each carries the time
    /// it was sent.
    pub message_size: usize,
    /// Connections the messages are spread over.
    pub connections: usize,
    /// Messages a second over all connections.
    pub rate: f64,
    pub duration: Duration,
    /// Messages sent before this much of the run are not recorded.
    pub warmup: Duration,
    pub cert: CertSource,
    /// Cores to pin the server's and the client's threads to (sstpd's
    /// first worker core and the load generator's, so that the reference
    /// runs where the scenario does); `None`: where the scheduler puts them.
    pub server_core: Option<usize>,
    pub client_core: Option<usize>,
}

impl Default for PacedPingPongParams {
    fn default() -> Self {
        PacedPingPongParams {
            suite: "TLS13_AES_128_GCM_SHA256".into(),
            message_size: 64,
            connections: 8,
            rate: 10_000.0,
            duration: Duration::from_secs(3),
            warmup: Duration::from_millis(200),
            cert: CertSource::default(),
            server_core: None,
            client_core: None,
        }
    }
}

/// What [`paced_ping_pong`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PacedPingPongResult {
    /// Messages sent and echoes received (all of them, warm-up included).
    pub sent: u64,
    pub received: u64,
    /// Messages sent a whole period or more after their time.
    pub sent_late: u64,
    /// Seconds from the first message to the last one's time.
    pub seconds: f64,
    pub latency: LatencyProfile,
}

/// How long the client waits for the last echoes once it has stopped
/// sending.
const PACED_DRAIN: Duration = Duration::from_secs(2);

/// Round-trip latency of small messages sent at a fixed rate: the shape
/// of the latency scenarios' paced points, without SSTP, PPP and TUN.
///
/// [`ping_pong`] sends the next message when the last one is back, so a
/// stall of either side (another thread on its core, a kernel thread)
/// delays one message; at a fixed rate it delays every message sent
/// while it lasts, as it does the load generator's probes. The client
/// paces each connection as the load generator paces a session
/// (`sstp_loadgen::engine::wait_until`: the ring's timer, one message
/// at a time, from a period of 50 µs; a whole period late counts as
/// late), each connection's first message offset by its share of one
/// period. Each message carries its send time; its round trip ends when
/// the echo's last byte is read.
pub fn paced_ping_pong(
    params: &PacedPingPongParams,
) -> Result<PacedPingPongResult, ReferenceError> {
    if params.message_size < 8
        || params.connections == 0
        || !params.rate.is_finite()
        || params.rate <= 0.0
    {
        return Err(ReferenceError::Params(
            "a paced ping-pong needs messages of 8 bytes or more, a connection and a rate".into(),
        ));
    }
    let identity = params.cert.identity()?;
    let (server_config, client_config) = configs(&identity, Some(&params.suite), None)?;
    let (listener, addr) = listener()?;
    let connections = params.connections;
    let server_core = params.server_core;
    let server = spawn(SERVER_THREAD, move || {
        pin_current_thread(server_core)?;
        start_runtime(async move {
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            let mut echoes = Vec::with_capacity(connections);
            for _ in 0..connections {
                let (tcp, _) = listener.accept().await?;
                let server_config = server_config.clone();
                echoes.push(tokio_uring::spawn(async move {
                    let mut buf = Vec::with_capacity(64 * 1024);
                    let conn = accept_tls(tcp, server_config, &mut buf).await?;
                    echo(&conn, buf).await
                }));
            }
            for e in echoes {
                e.await
                    .map_err(|_| ReferenceError::Incomplete("an echo task failed".into()))??;
            }
            Ok::<_, ReferenceError>(())
        })
    })?;
    let p = params.clone();
    let client = spawn(CLIENT_THREAD, move || {
        pin_current_thread(p.client_core)?;
        start_runtime(async move {
            let mut conns = Vec::with_capacity(p.connections);
            for _ in 0..p.connections {
                conns.push(Rc::new(connect_tls(addr, client_config.clone()).await?));
            }
            let histogram = Rc::new(std::cell::RefCell::new(
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| ReferenceError::Params(e.to_string()))?,
            ));
            let epoch = Instant::now();
            let go = epoch + Duration::from_millis(10);
            let record_from = go + p.warmup;
            let end = go + p.duration;
            let period = Duration::from_secs_f64(p.connections as f64 / p.rate);
            let mut tasks = Vec::new();
            for (i, conn) in conns.iter().enumerate() {
                let first = go + period.mul_f64(i as f64 / p.connections as f64);
                let sender = Rc::new(PacedSender::default());
                tasks.push(tokio_uring::spawn(send_paced(
                    conn.clone(),
                    sender.clone(),
                    (epoch, first, period, end),
                    p.message_size,
                )));
                tasks.push(tokio_uring::spawn(receive_echoes(
                    conn.clone(),
                    sender,
                    histogram.clone(),
                    (epoch, record_from),
                    p.message_size,
                    end + PACED_DRAIN,
                )));
            }
            let (mut sent, mut received, mut sent_late) = (0, 0, 0);
            for task in tasks {
                let counts = task
                    .await
                    .map_err(|_| ReferenceError::Incomplete("a paced task failed".into()))??;
                sent += counts.sent;
                received += counts.received;
                sent_late += counts.late;
            }
            for conn in &conns {
                let _ = conn.close().await;
            }
            let histogram = histogram.borrow().clone();
            Ok::<_, ReferenceError>(PacedPingPongResult {
                sent,
                received,
                sent_late,
                seconds: p.duration.as_secs_f64(),
                latency: LatencyProfile::from_histogram_ns(&histogram),
            })
        })
    })?;
    let result = join(client)?;
    join(server)?;
    if result.received < result.sent {
        return Err(ReferenceError::Incomplete(format!(
            "paced ping-pong: {} of {} echoes came back",
            result.received, result.sent
        )));
    }
    Ok(result)
}

/// Pins the calling thread to `core` (nothing to do for `None`), as
/// sstpd and the load generator pin theirs.
fn pin_current_thread(core: Option<usize>) -> Result<(), ReferenceError> {
    match core {
        Some(id) if !core_affinity::set_for_current(core_affinity::CoreId { id }) => Err(
            ReferenceError::Params(format!("cannot pin a reference thread to core {id}")),
        ),
        _ => Ok(()),
    }
}

/// The server's side of both ping-pongs: writes back what it reads until
/// the client closes.
async fn echo(conn: &TlsConn, mut buf: Vec<u8>) -> Result<(), ReferenceError> {
    loop {
        if !buf.is_empty() {
            conn.write_plaintext(&buf)
                .await
                .map_err(|e| ReferenceError::Tls(e.to_string()))?;
            buf.clear();
        }
        match conn.read_plaintext(&mut buf).await {
            Ok(ReadOutcome::Data(_)) => {}
            Ok(ReadOutcome::Closed) | Err(_) => return Ok(()),
        }
    }
}

/// What one connection's sender has done, for its receiver.
#[derive(Default)]
struct PacedSender {
    sent: Cell<u64>,
    done: Cell<bool>,
    /// Woken when `done` is set.
    finished: tokio::sync::Notify,
}

/// Counts of one paced task.
#[derive(Default)]
struct PacedCounts {
    sent: u64,
    received: u64,
    late: u64,
}

/// Sends a message stamped with its send time (nanoseconds since
/// `epoch`) at `first`, then every `period`, until `end`.
async fn send_paced(
    conn: Rc<TlsConn>,
    sender: Rc<PacedSender>,
    (epoch, first, period, end): (Instant, Instant, Duration, Instant),
    message_size: usize,
) -> Result<PacedCounts, ReferenceError> {
    let mut message = vec![0xa5u8; message_size];
    let mut next = first;
    let mut late = 0;
    let fine = period >= sstp_loadgen::engine::FINE_PACING_FROM;
    let result = loop {
        let now = Instant::now();
        if next >= end {
            break Ok(());
        }
        if next > now {
            sstp_loadgen::engine::wait_until(next, fine).await;
            continue;
        }
        let stamp = now.duration_since(epoch).as_nanos() as u64;
        message[..8].copy_from_slice(&stamp.to_le_bytes());
        if let Err(e) = conn.write_plaintext(&message).await {
            break Err(ReferenceError::Tls(e.to_string()));
        }
        sender.sent.set(sender.sent.get() + 1);
        if now.saturating_duration_since(next) >= period {
            late += 1;
        }
        next += period;
    };
    sender.done.set(true);
    sender.finished.notify_one();
    result.map(|()| PacedCounts {
        sent: sender.sent.get(),
        received: 0,
        late,
    })
}

/// Reads the echoes of one connection and records each round trip sent
/// at or after `record_from`, until all that were sent came back or
/// `give_up_at`.
async fn receive_echoes(
    conn: Rc<TlsConn>,
    sender: Rc<PacedSender>,
    histogram: Rc<std::cell::RefCell<Histogram<u64>>>,
    (epoch, record_from): (Instant, Instant),
    message_size: usize,
    give_up_at: Instant,
) -> Result<PacedCounts, ReferenceError> {
    let record_from = record_from.duration_since(epoch).as_nanos() as u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut received = 0u64;
    let all_back = |received: u64| sender.done.get() && received >= sender.sent.get();
    while !all_back(received) {
        // A read is never abandoned while echoes are on their way (the
        // connection's buffered record would go with it): only once all
        // are back, or at `give_up_at`, before the close.
        let outcome = {
            let read = conn.read_plaintext(&mut buf);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    biased;
                    read = &mut read => break Some(read),
                    () = sender.finished.notified(), if !sender.done.get() => {}
                    () = tokio::time::sleep_until(give_up_at.into()) => break None,
                }
                if all_back(received) {
                    break None;
                }
            }
        };
        let Some(read) = outcome else { break };
        match read.map_err(|e| ReferenceError::Tls(e.to_string()))? {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Closed => break,
        }
        let now = Instant::now().duration_since(epoch).as_nanos() as u64;
        let whole = buf.len() / message_size * message_size;
        for message in buf[..whole].chunks_exact(message_size) {
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&message[..8]);
            let sent_at = u64::from_le_bytes(stamp);
            if sent_at >= record_from {
                histogram
                    .borrow_mut()
                    .saturating_record(now.saturating_sub(sent_at).max(1));
            }
            received += 1;
        }
        buf.drain(..whole);
    }
    Ok(PacedCounts {
        sent: 0,
        received,
        late: 0,
    })
}
