//! Shared by the end-to-end tests: a server in a fresh network namespace,
//! clients built from the protocol core's client role over real TLS, ICMP
//! helpers, external tools and honest skips; [`sstpc`] drives the real
//! sstp-client.
#![allow(dead_code)]

pub mod prometheus;
pub mod sstpc;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sstpd::app::ServerHandle;
use sstpd::client::ClientOptions;
use sstpd::config::{Config, InlineUser, Secret, TlsVersion};
use sstpd::proto::auth::AuthProtocol;
use sstpd::proto::ppp::PppConfig;
use sstpd::proto::session::SessionConfig;
use sstpd::proto::sstp::SstpConfig;
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::{generate_self_signed, SelfSignedKey};
use sstpd::tls::client::{build_client_config, ServerVerification};

pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// A namespace with a running server; shut down and removed on drop.
pub struct TestServer {
    pub server: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub cert_der: Vec<u8>,
    pub ns: NetNs,
    pub dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.join(Duration::from_secs(10));
        }
    }
}

/// Users every test server knows.
pub const USERS: &[(&str, &str)] = &[("alice", "alice-secret"), ("bob", "bob-secret")];

/// A server configuration for tests: loopback on an ephemeral port, a
/// certificate of the given key type, two workers, the default pool.
pub fn test_config(dir: &Path, key: SelfSignedKey, workers: usize) -> Config {
    let cert = generate_self_signed(key, &["localhost", "127.0.0.1"]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut config = Config::default();
    config.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.server.workers = workers;
    config.server.state_dir = Some(dir.to_path_buf());
    config.server.shutdown_timeout = Duration::from_secs(5);
    config.tls.certificate = Some(cert_path);
    config.tls.private_key = Some(key_path);
    config.users.local = USERS
        .iter()
        .map(|(name, password)| InlineUser {
            name: name.to_string(),
            password: Secret(password.to_string()),
            ip: None,
        })
        .collect();
    config
}

impl TestServer {
    /// Starts a server with `config` in a new namespace (with IPv4 and
    /// IPv6 forwarding on, as deployment.md has it, so clients can reach
    /// each other).
    pub fn start(config: Config) -> TestServer {
        Self::start_after(config, || {})
    }

    /// [`TestServer::start`], running `setup` first on the thread that
    /// starts the server (whose threads inherit what it sets, such as a
    /// seccomp filter).
    pub fn start_after(config: Config, setup: impl FnOnce() + Send) -> TestServer {
        let ns = NetNs::new("sstpd-e2e").expect("create namespace");
        let out = ns
            .command("sysctl")
            .args([
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ])
            .output()
            .expect("sysctl");
        assert!(
            out.status.success(),
            "sysctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = tempfile::tempdir().unwrap();
        let cert_der = std::fs::read(config.tls.certificate.as_ref().unwrap()).unwrap();
        let server = ns
            .run(move || {
                setup();
                sstpd::app::start(config)
            })
            .expect("server starts");
        let addr = server.local_addrs()[0];
        TestServer {
            server: Some(server),
            addr,
            cert_der,
            ns,
            dir,
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }

    /// Waits (at most `timeout`) until no session is left; true if none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.handle().metrics().sessions_active == 0)
    }

    /// Runs `f` on a tokio-uring runtime on a thread inside the namespace.
    pub fn run_clients<F, Fut, R>(&self, f: F) -> R
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R>,
        R: Send + 'static,
    {
        self.ns.run(move || tokio_uring::start(f()))
    }
}

/// Client-role protocol configuration offering `methods`.
pub fn client_session_config(methods: &[AuthProtocol]) -> SessionConfig {
    let ppp = PppConfig {
        auth_protocols: methods.to_vec(),
        ..PppConfig::default()
    };
    SessionConfig::new(SstpConfig::default(), ppp)
}

/// What the tests' clients offer: TLS 1.2 to 1.3.
pub const TLS: (TlsVersion, TlsVersion) = (TlsVersion::Tls12, TlsVersion::Tls13);

/// A client of the server at `addr` logging in as `user` with MS-CHAPv2,
/// offering [`TLS`].
pub fn mschapv2_options(addr: SocketAddr, user: &str, password: &str) -> ClientOptions {
    client_options(addr, user, password, TLS, &[AuthProtocol::MsChapV2])
}

/// Replaces the local users with `n` numbered ones: `user{i}` with the
/// password `pw{i}`, for `i` in `0..n`.
pub fn numbered_users(config: &mut Config, n: usize) {
    config.users.local.clear();
    for i in 0..n {
        config.users.local.push(InlineUser {
            name: format!("user{i}"),
            password: Secret(format!("pw{i}")),
            ip: None,
        });
    }
}

/// Options for a client of `server`.
pub fn client_options(
    addr: SocketAddr,
    user: &str,
    password: &str,
    tls: (TlsVersion, TlsVersion),
    methods: &[AuthProtocol],
) -> ClientOptions {
    let tls = build_client_config(&sstpd::tls::client::ClientOptions {
        verification: ServerVerification::Insecure,
        min_version: tls.0,
        max_version: tls.1,
        ..Default::default()
    })
    .unwrap();
    ClientOptions {
        target: addr,
        bind: None,
        tls,
        server_name: sstpd::tls::client::server_name("localhost").unwrap(),
        host: addr.ip().to_string(),
        username: user.to_string(),
        password: password.as_bytes().to_vec(),
        session: client_session_config(methods),
        setup_timeout: Duration::from_secs(20),
    }
}

/// A shared verification for clients that trust exactly `cert_pem`.
pub fn trusting(cert_pem: &[u8]) -> ServerVerification {
    let certs = sstpd::tls::certs::parse_cert_chain(cert_pem).unwrap();
    ServerVerification::CaCertificates(certs)
}

pub type Shared<T> = std::rc::Rc<std::cell::RefCell<T>>;

/// The real `sstpd` binary (`env!("CARGO_BIN_EXE_sstpd")` of the calling
/// test), started in a namespace of its own with `config` listening on a
/// free port of 127.0.0.1 (written as TOML into `dir`), logging at info
/// level to its piped stdout and stderr.
pub fn spawn_sstpd(
    binary: &str,
    dir: &Path,
    mut config: Config,
) -> (NetNs, std::process::Child, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.server.listen = vec![addr];
    let config_path = dir.join("sstpd.toml");
    std::fs::write(&config_path, config_toml(&config, "")).unwrap();
    let ns = NetNs::new("sstpd-e2e").unwrap();
    let child = spawn_sstpd_in(&ns, binary, &config_path);
    (ns, child, addr)
}

// ---------------------------------------------------------------- clients

/// IP packets a client received, in order.
pub type Inbox = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

/// Connects and returns the client with an inbox of received packets.
pub async fn connect(
    options: &sstpd::client::ClientOptions,
) -> Result<(sstpd::client::Client, Inbox), sstpd::client::ConnectError> {
    let inbox: Inbox = std::rc::Rc::default();
    let sink = inbox.clone();
    let (client, _times) = sstpd::client::connect(
        options,
        Box::new(move |p| sink.borrow_mut().push(p.to_vec())),
    )
    .await?;
    Ok((client, inbox))
}

/// Waits (bounded) until `inbox` holds a packet matching `want`.
pub async fn wait_for(inbox: &Inbox, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if inbox.borrow().iter().any(|p| want(p)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a client's session ended the way a server-side graceful close
/// ends it: LCP Terminate-Request from the server, then SSTP Call
/// Disconnect (whichever the client saw first).
pub fn session_closed_by_server(client: &sstpd::client::Client) -> bool {
    matches!(
        client.close_reason().map(|r| r.as_str()),
        Some("peer_terminated" | "peer_disconnect")
    )
}

/// Pings the gateway (the kernel answers through the TUN device) and
/// checks the reply carries our payload.
pub async fn ping_gateway(
    client: &sstpd::client::Client,
    inbox: &Inbox,
    id: u16,
    payload: &[u8],
) -> bool {
    let me = client.address().unwrap();
    for attempt in 0..3u16 {
        client
            .send_ip(&icmp_echo(8, me, GATEWAY, id, attempt, payload))
            .expect("send");
        let ok = wait_for(inbox, Duration::from_secs(2), |p| {
            parse_echo(p).is_some_and(|e| {
                e.kind == 0 && e.id == id && e.src == GATEWAY && e.dst == me && e.payload == payload
            })
        })
        .await;
        if ok {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------- ICMP

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request (or reply, `kind` 0) with valid checksums.
pub fn icmp_echo(
    kind: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        1,
        0,
        0,
    ];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = p.len();
    p.extend_from_slice(&[kind, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let c = checksum(&p[icmp..]);
    p[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    p
}

/// A parsed ICMP echo message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    pub kind: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub id: u16,
    pub seq: u16,
    pub payload: Vec<u8>,
}

pub fn parse_echo(p: &[u8]) -> Option<Echo> {
    if p.len() < 28 || p[0] != 0x45 || p[9] != 1 {
        return None;
    }
    let icmp = &p[20..];
    if checksum(icmp) != 0 {
        return None;
    }
    Some(Echo {
        kind: icmp[0],
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: icmp[8..].to_vec(),
    })
}

/// Keeps the client TLS configuration type reachable for tests that build
/// their own.
pub fn client_tls(verification: ServerVerification) -> Arc<rustls::ClientConfig> {
    build_client_config(&sstpd::tls::client::ClientOptions {
        verification,
        ..Default::default()
    })
    .unwrap()
}

// ---------------------------------------------------------------- binary

/// The parts of a test configuration the binary needs, as TOML: listen,
/// workers, state directory, certificate (and `take_over_records` when
/// off) and the inline users (with their fixed addresses), then `extra`
/// (more sections).
pub fn config_toml(config: &Config, extra: &str) -> String {
    let mut users = String::new();
    for u in &config.users.local {
        users.push_str(&format!(
            "\n[[users.local]]\nname = \"{}\"\npassword = \"{}\"\n",
            u.name, u.password.0
        ));
        if let Some(ip) = u.ip {
            users.push_str(&format!("ip = \"{ip}\"\n"));
        }
    }
    format!(
        "[server]\nlisten = [\"{}\"]\nworkers = {}\nstate_dir = \"{}\"\nshutdown_timeout = \"5s\"\n\n\
         [tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n{}{extra}\n{users}",
        config.server.listen[0],
        config.server.workers,
        config.server.state_dir.as_ref().unwrap().display(),
        config.tls.certificate.as_ref().unwrap().display(),
        config.tls.private_key.as_ref().unwrap().display(),
        if config.tls.take_over_records {
            ""
        } else {
            "take_over_records = false\n"
        },
    )
}

/// A loopback port free at the time of asking (for the binary, which
/// cannot report the port it bound).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// The real `sstpd` binary (`binary`: the test's
/// `env!("CARGO_BIN_EXE_sstpd")`) with `--config path`, in `ns`, its
/// output piped.
pub fn spawn_sstpd_in(ns: &NetNs, binary: &str, config_path: &Path) -> std::process::Child {
    ns.command(binary)
        .arg("--config")
        .arg(config_path)
        .env("SSTPD_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Connects, retrying while the server is starting (at most `tries`
/// times, 50 ms apart).
pub async fn connect_when_up(
    options: &ClientOptions,
    tries: u32,
) -> (sstpd::client::Client, Inbox) {
    for attempt in 1..=tries {
        match connect(options).await {
            Ok(c) => return c,
            Err(_) if attempt < tries => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("server did not come up: {e}"),
        }
    }
    unreachable!("tries is at least 1")
}

// ---------------------------------------------------------------- tools

/// The path of `program` (searched in `PATH`, then the sbin directories
/// that a non-login root shell may lack). Panics naming the Debian
/// package to install: a missing tool fails the test, never passes it.
pub fn require_tool(program: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(std::path::PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{program}` is not installed: `apt-get install {package}` (scripts/test installs it)");
}

/// How many times [`start_haproxy_in`] starts HAProxy before it fails.
const HAPROXY_TRIES: usize = 3;

/// Runs HAProxy (Debian package `haproxy`) in `ns`, in the foreground
/// (`-db`), with the configuration `config` renders for `count` frontends
/// on `frontend_ip`; returns those frontends once HAProxy listens on every
/// one (binding them then fails: HAProxy sets no SO_REUSEPORT for us).
/// Killed with the namespace.
///
/// The ports are free in `ns` when chosen and distinct from each other.
/// Another socket may still take one before HAProxy binds it; HAProxy then
/// exits, and it is started again on other ports, [`HAPROXY_TRIES`] times
/// in all. A failure panics with what HAProxy printed.
pub fn start_haproxy_in(
    ns: &NetNs,
    dir: &Path,
    frontend_ip: std::net::IpAddr,
    count: usize,
    config: impl Fn(&[SocketAddr]) -> String,
) -> Vec<SocketAddr> {
    let haproxy = require_tool("haproxy", "haproxy");
    let cfg_path = dir.join("haproxy.cfg");
    let log_path = dir.join("haproxy.log");
    let mut failures = String::new();
    for attempt in 1..=HAPROXY_TRIES {
        // Held together, so the ports differ.
        let frontends: Vec<SocketAddr> = ns.run(move || {
            let probes: Vec<_> = (0..count)
                .map(|_| std::net::TcpListener::bind((frontend_ip, 0)).unwrap())
                .collect();
            probes.iter().map(|p| p.local_addr().unwrap()).collect()
        });
        std::fs::write(&cfg_path, config(&frontends)).unwrap();
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = ns.command(&haproxy);
        command
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let pid = ns.spawn_tracked(&mut command).unwrap();
        let (mut exited, mut listening) = (None, false);
        wait_until(Duration::from_secs(10), || {
            exited = ns.tracked_exit(pid);
            let frontends = frontends.clone();
            listening = exited.is_none()
                && ns.run(move || {
                    frontends
                        .iter()
                        .all(|a| std::net::TcpListener::bind(a).is_err())
                });
            listening || exited.is_some()
        });
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        match exited {
            _ if listening => return frontends,
            Some(status) => failures.push_str(&format!(
                "try {attempt} on {frontends:?}: haproxy exited ({status}):\n{output}\n"
            )),
            None => panic!("haproxy did not listen on {frontends:?} within 10 s:\n{output}"),
        }
    }
    panic!("haproxy did not start in {HAPROXY_TRIES} tries:\n{failures}");
}

/// Polls `condition` every 10 ms for at most `timeout`; true once it
/// holds.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Collects everything `reader` yields (a child's stderr) on a thread.
pub fn collect_output(
    mut reader: impl std::io::Read + Send + 'static,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    let thread = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    (text, thread)
}

// ---------------------------------------------------------------- skips

/// Where skipped tests leave a note: `target/test-skips/` (next to
/// `CARGO_TARGET_TMPDIR`), which scripts/test empties before the run and
/// lists after it.
pub fn skip_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("test-skips"))
        .unwrap_or_else(|| std::env::temp_dir().join("sstpd-test-skips"))
}

/// Neither libtest nor nextest has a runtime "skipped" outcome, so a test
/// that cannot reach a verdict for a reason outside sstpd (a known flake
/// of a third-party peer) calls this and returns: it prints `SKIPPED:
/// <reason>` and records the reason in [`skip_dir`], where scripts/test
/// finds it and prints a "Skipped" summary. With `SSTPD_TEST_NO_SKIP=1`
/// the skip is a failure instead (for runs that must reach a verdict).
pub fn record_skip(test: &str, reason: &str) {
    if std::env::var_os("SSTPD_TEST_NO_SKIP").is_some_and(|v| v != "0") {
        panic!("SSTPD_TEST_NO_SKIP is set, so this skip fails: {reason}");
    }
    println!("SKIPPED: {test}: {reason}");
    eprintln!("SKIPPED: {test}: {reason}");
    let dir = skip_dir();
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join(format!("{test}.txt")),
            format!("{test}: {reason}\n"),
        )
    });
    if let Err(error) = written {
        eprintln!("could not record the skip in {}: {error}", dir.display());
    }
}

/// `UDP_SEGMENT` (Linux 4.18): each send of up to 64 KiB leaves as
/// datagrams of `size` bytes, handed down as one GSO packet.
pub fn set_udp_segment(socket: &std::net::UdpSocket, size: u16) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::from(size);
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
}

/// The next read of a TUN `queue` (a packet, behind its virtio-net header
/// where the queue has one), or `None` at `deadline`.
pub fn read_queue(queue: &std::fs::File, deadline: std::time::Instant) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; sstpd::tun::offload::VIRTIO_NET_HDR_LEN + 65_536];
    loop {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        if wait.is_zero() {
            return None;
        }
        let mut fd = libc::pollfd {
            fd: queue.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, wait.as_millis().max(1) as libc::c_int) };
        assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        if fd.revents & libc::POLLIN != 0 {
            let len = (&*queue).read(&mut buf).unwrap();
            buf.truncate(len);
            return Some(buf);
        }
    }
}

/// Sends UDP from the server's side of the tunnel to `target` until
/// `enough` (at most 20 s), in rounds of 64 sends ([`flood_sends`]).
pub async fn flood_until(target: Ipv4Addr, enough: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        flood_sends(target, 64);
        tokio::time::sleep(Duration::from_millis(2)).await;
        if enough() {
            return;
        }
    }
}

/// `sends` sends of 48 UDP datagrams that fit the TUN device's MTU
/// (1,400) from the gateway to `target`: one super-packet each where the
/// kernel offloads UDP segmentation to the TUN device, else 48 packets.
pub fn flood_sends(target: Ipv4Addr, sends: usize) {
    let socket = std::net::UdpSocket::bind((GATEWAY, 0)).unwrap();
    socket.set_nonblocking(true).unwrap();
    set_udp_segment(&socket, 1_300);
    let payload = vec![0x5a; 1_300 * 48];
    for _ in 0..sends {
        // A full TUN queue refuses some, and so does the drop filter (the
        // kernel's drops, not the server's); anything else is the test's
        // mistake.
        if let Err(e) = socket.send_to(&payload, (target, 9)) {
            let full = matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN));
            assert!(full, "send: {e}");
        }
    }
}

/// A TUN device `name` with `queues` queues, up, with `addr`/24 (the
/// kernel tests of the device programs).
pub fn tun_device(name: &str, queues: usize, addr: Ipv4Addr) -> sstpd::tun::TunDevice {
    let device = sstpd::tun::TunDevice::create(&sstpd::tun::TunOptions::new(name, queues)).unwrap();
    device.set_ipv4(addr, 24).unwrap();
    device.set_up(true).unwrap();
    device
}

/// Routes `prefix` (`a.b.c.d/len`) into the device `name`, in the
/// current network namespace.
pub fn route_into(prefix: &str, name: &str) {
    let out = std::process::Command::new("ip")
        .args(["route", "add", prefix, "dev", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
