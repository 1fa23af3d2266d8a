#![cfg(feature = "runtime")]
//! Kernel TLS end to end, in a kernel that has it: scripts/vm-test boots
//! Debian's 6.1 kernel (CONFIG_TLS=m) in a VM, loads `tls` and `tun`, and
//! runs these tests there with `SSTPD_KTLS_VM=1`. Anywhere else they record
//! a skip (see `common::record_skip`) and return: this machine's kernel has
//! no TLS module, and a test that passed without the kernel doing the
//! records would prove nothing.
//!
//! What they establish, with `tls.ktls = "require"`: sessions from the
//! in-repo client over TLS 1.2 and 1.3 with AES-128-GCM, AES-256-GCM and
//! ChaCha20-Poly1305 are handed to the kernel (`ktls_enabled`,
//! `sstpd_ktls_sessions`), or refused where the kernel lacks the pair; IP
//! passes both ways through the kernel's records, payloads compared byte
//! for byte (single pings of every size up to the MTU, and a burst that
//! the server writes in batches); the SSTP Hello and LCP echo timers still
//! run; Call Disconnect and close_notify cross in both directions at the
//! end, whichever side closes; a TLS 1.3 KeyUpdate from the client, which
//! Linux 6.1 cannot follow, ends the session with its own counted reason;
//! the real sstp-client completes a session. `auto` offloads too, `off`
//! does not. Bursts leave the server batched (several packets per kernel
//! TLS send submission: one chain of linked sends through the worker's
//! private io_uring) and still one TLS record per SSTP packet, as a tap
//! on the wire sees; a reader that stops for a while (the server's socket
//! fills, the chains wait) still gets every packet, in order, intact. The
//! real `sstp-loadgen` (udp, reflected by its peer: up the tunnel and back
//! down) finds not one payload altered.
//! The CPU in the VM is emulated: nothing here measures time.

mod common;

use std::time::Duration;

use common::sstpc;
use common::*;
use sstpd::client::Client;
use sstpd::config::{Config, KtlsMode, TlsVersion};
use sstpd::metrics::{Event, MetricsSnapshot};
use sstpd::proto::auth::AuthProtocol;
use sstpd::tls::certs::SelfSignedKey;
use sstpd::tls::client::{build_client_config, ServerVerification};
use sstpd::tls::ktls::{probe, KernelCiphers, KtlsCipher, KtlsSupport};

/// Set by scripts/vm-test inside the VM.
const VM_ENV: &str = "SSTPD_KTLS_VM";

/// Inside the VM: what its kernel offers (it must offer something).
/// Anywhere else: records a skip and returns `None`.
fn in_vm(test: &str) -> Option<KernelCiphers> {
    if std::env::var_os(VM_ENV).is_none_or(|v| v != "1") {
        record_skip(
            test,
            "needs a kernel with kernel TLS: runs inside the VM of scripts/vm-test (SSTPD_KTLS_VM=1)",
        );
        return None;
    }
    match probe() {
        KtlsSupport::Available(ciphers) => Some(ciphers),
        KtlsSupport::Unavailable(reason) => {
            panic!("the VM's kernel must have kernel TLS (was `modprobe tls` run?): {reason}")
        }
    }
}

/// Every (version, suite, kernel cipher) the tests try; TLS 1.2 with the
/// ECDSA suites of the test certificate.
const SUITES: [(TlsVersion, &str, KtlsCipher); 6] = [
    (
        TlsVersion::Tls12,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        KtlsCipher::AesGcm128,
    ),
    (
        TlsVersion::Tls12,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        KtlsCipher::AesGcm256,
    ),
    (
        TlsVersion::Tls12,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        KtlsCipher::Chacha20Poly1305,
    ),
    (
        TlsVersion::Tls13,
        "TLS13_AES_128_GCM_SHA256",
        KtlsCipher::AesGcm128,
    ),
    (
        TlsVersion::Tls13,
        "TLS13_AES_256_GCM_SHA384",
        KtlsCipher::AesGcm256,
    ),
    (
        TlsVersion::Tls13,
        "TLS13_CHACHA20_POLY1305_SHA256",
        KtlsCipher::Chacha20Poly1305,
    ),
];

/// A one-worker server with `tls.ktls = "require"`.
fn require_config(dir: &std::path::Path) -> Config {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 1);
    config.tls.ktls = KtlsMode::Require;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// Inside the VM: the kernel's ciphers and a [`require_config`] server
/// with `adjust` applied (bind in this order: the server drops before its
/// directory). Anywhere else: a skip, `None`.
fn vm_server(
    test: &str,
    adjust: impl FnOnce(&mut Config),
) -> Option<(KernelCiphers, tempfile::TempDir, TestServer)> {
    let ciphers = in_vm(test)?;
    let dir = tempfile::tempdir().unwrap();
    let mut config = require_config(dir.path());
    adjust(&mut config);
    let server = TestServer::start(config);
    Some((ciphers, dir, server))
}

/// The server's `sstpd_ktls_sessions`, scraped from its Prometheus
/// endpoint (blocking; from inside the server's namespace).
fn scraped_ktls_sessions(endpoint: std::net::SocketAddr) -> u64 {
    let (_, body) = common::prometheus::scrape(endpoint);
    common::prometheus::value(&common::prometheus::samples(&body), "sstpd_ktls_sessions")
}

/// A client offering exactly `suite` over `version`.
fn suite_options(
    addr: std::net::SocketAddr,
    version: TlsVersion,
    suite: &str,
) -> sstpd::client::ClientOptions {
    let mut options = mschapv2_options(addr, "alice", "alice-secret");
    options.tls = build_client_config(&sstpd::tls::client::ClientOptions {
        verification: ServerVerification::Insecure,
        min_version: version,
        max_version: version,
        cipher_suites: Some(vec![suite.to_string()]),
        ..Default::default()
    })
    .unwrap();
    options
}

/// A payload that differs per test, packet and byte.
fn pattern(tag: u16, seq: u16, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u16)
                .wrapping_mul(31)
                .wrapping_add(tag ^ seq.rotate_left(3)) as u8
        })
        .collect()
}

/// Pings the gateway through the tunnel: one echo request per size up to
/// the largest the tunnel carries, then a burst of 48 at once. Every
/// reply's payload must equal its request's. `Err` says what was missing.
async fn traffic_both_ways(client: &Client, inbox: &Inbox, tag: u16) -> Result<(), String> {
    let largest = usize::from(client.transmit_mtu()) - 28;
    for len in [1, 64, 500, 1000, largest] {
        if !ping_gateway(client, inbox, tag, &pattern(tag, len as u16, len)).await {
            return Err(format!("no intact echo reply with {len} bytes of payload"));
        }
    }
    echo_burst(client, inbox, tag.wrapping_add(0x4000), 48, |seq| {
        900 + usize::from(seq)
    })
    .await
}

/// Sends `count` echo requests to the gateway at once (ICMP id `id`,
/// payload of `len(seq)` bytes), then waits until every reply has arrived
/// with its request's payload.
async fn echo_burst(
    client: &Client,
    inbox: &Inbox,
    id: u16,
    count: u16,
    len: impl Fn(u16) -> usize,
) -> Result<(), String> {
    let me = client.address().unwrap();
    for seq in 0..count {
        let payload = pattern(id, seq, len(seq));
        loop {
            match client.send_ip(&icmp_echo(8, me, GATEWAY, id, seq, &payload)) {
                Ok(()) => break,
                Err(sstpd::client::ClientSendError::Backpressure) => {
                    client.writable(64 * 1024).await
                }
                Err(e) => return Err(format!("burst request {seq} refused: {e:?}")),
            }
        }
    }
    let missing = |packets: &[Vec<u8>]| {
        let mut arrived = vec![false; usize::from(count)];
        for echo in packets.iter().filter_map(|p| parse_echo(p)) {
            if echo.kind == 0
                && echo.id == id
                && echo.src == GATEWAY
                && echo.seq < count
                && echo.payload == pattern(id, echo.seq, len(echo.seq))
            {
                arrived[usize::from(echo.seq)] = true;
            }
        }
        arrived.iter().filter(|&&a| !a).count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let missing = missing(&inbox.borrow());
        if missing == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "burst {id:#x}: {missing} of {count} echo replies missing or altered"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Server events that mean a connection ended badly.
const FAILURES: &[Event] = &[
    Event::IoError,
    Event::TlsError,
    Event::KtlsSwitchFailed,
    Event::TransportClosed,
    Event::HelloTimeout,
    Event::EchoTimeout,
];

fn assert_no_failures(stats: &MetricsSnapshot, context: &str) {
    for &event in FAILURES {
        assert_eq!(
            stats.count(event),
            0,
            "{context}: {event} counted: {stats:?}"
        );
    }
}

/// What one client session saw, for the assertions outside the runtime.
#[derive(Debug)]
struct Outcome {
    label: String,
    /// Connected, or why not.
    connected: Result<(), String>,
    traffic: Result<(), String>,
    /// The server's `sstpd_ktls_sessions` while the session was up.
    ktls_sessions_while_up: u64,
    closed: bool,
    close_reason: Option<String>,
    received_close_notify: bool,
}

/// Every version and cipher the kernel has carries a session through the
/// kernel's records, both ways, to a clean close; the ones it lacks are
/// refused (require mode offers only what the kernel can take over).
#[test]
fn every_version_and_cipher_is_carried_by_the_kernel() {
    const TEST: &str = "every_version_and_cipher_is_carried_by_the_kernel";
    let Some((ciphers, _dir, server)) = vm_server(TEST, |_| {}) else {
        return;
    };
    let addr = server.addr;
    let endpoint = server.handle().metrics_addr().unwrap();
    let (_, exposition) = server.ns.run(move || common::prometheus::scrape(endpoint));
    assert!(
        exposition.contains("sstpd_ktls_info{mode=\"require\",kernel=\"available\"} 1"),
        "{exposition}"
    );
    let outcomes = server.run_clients(move || async move {
        let mut outcomes = Vec::new();
        for (n, (version, suite, _)) in SUITES.iter().enumerate() {
            let options = suite_options(addr, *version, suite);
            let mut outcome = Outcome {
                label: format!("{version:?} {suite}"),
                connected: Ok(()),
                traffic: Err("not tried".into()),
                ktls_sessions_while_up: 0,
                closed: false,
                close_reason: None,
                received_close_notify: false,
            };
            let (client, inbox) = match connect(&options).await {
                Ok(c) => c,
                Err(e) => {
                    outcome.connected = Err(e.to_string());
                    outcomes.push(outcome);
                    continue;
                }
            };
            outcome.ktls_sessions_while_up = scraped_ktls_sessions(endpoint);
            outcome.traffic = traffic_both_ways(&client, &inbox, 0x100 * (n as u16 + 1)).await;
            client.close(Duration::from_secs(10)).await;
            outcome.closed = client.is_closed();
            outcome.close_reason = client.close_reason().map(|r| r.as_str().to_string());
            outcome.received_close_notify = client.received_close_notify();
            outcomes.push(outcome);
        }
        outcomes
    });
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    let mut offloaded = 0;
    for ((version, _, cipher), outcome) in SUITES.iter().zip(&outcomes) {
        let label = &outcome.label;
        if ciphers.contains(*version, *cipher) {
            offloaded += 1;
            assert_eq!(outcome.connected, Ok(()), "{label}: {stats:?}");
            assert_eq!(
                outcome.ktls_sessions_while_up, 1,
                "{label}: not in the kernel"
            );
            assert_eq!(outcome.traffic, Ok(()), "{label}: {stats:?}");
            assert!(outcome.closed, "{label}: did not close");
            assert!(
                outcome.received_close_notify,
                "{label}: no close_notify from the server's kernel"
            );
        } else {
            // Not offered, so the handshake fails: nothing to fall back to.
            assert!(
                outcome.connected.is_err(),
                "{label}: connected in userspace"
            );
        }
    }
    eprintln!("kernel ciphers {ciphers:?}; outcomes {outcomes:#?}");
    assert!(offloaded > 0, "the kernel took none of the suites");
    assert_eq!(stats.event("ktls_enabled"), offloaded, "{stats:?}");
    assert_eq!(stats.ktls_sessions, 0, "{stats:?}");
    assert_eq!(
        stats.count(Event::PeerTerminated) + stats.count(Event::PeerDisconnect),
        offloaded,
        "every session closed by the client: {stats:?}"
    );
    assert_no_failures(&stats, "clean sessions");
}

/// The SSTP Hello and the LCP echo keep running once the kernel does the
/// records: with both at one second on both ends, an idle session
/// outlives several intervals (unanswered, either end's keepalive would
/// close it) and still carries IP.
#[test]
fn hello_and_lcp_echo_run_through_the_kernel() {
    const TEST: &str = "hello_and_lcp_echo_run_through_the_kernel";
    let Some((_, _dir, server)) = vm_server(TEST, |config| {
        config.sstp.hello_interval = Duration::from_secs(1);
        config.ppp.lcp_echo_interval = Duration::from_secs(1);
        config.ppp.lcp_echo_failures = 2;
    }) else {
        return;
    };
    let addr = server.addr;
    let (alive, traffic) = server.run_clients(move || async move {
        let mut options = mschapv2_options(addr, "alice", "alice-secret");
        // The client keeps the session alive the same way, so the server's
        // answers cross the kernel's records too.
        let mut session = options.session.clone();
        let mut sstp = (*session.sstp).clone();
        sstp.hello_interval = Duration::from_secs(1);
        let mut ppp = (*session.ppp).clone();
        ppp.lcp.echo_interval = Some(Duration::from_secs(1));
        ppp.lcp.echo_failures = 2;
        session.sstp = std::sync::Arc::new(sstp);
        session.ppp = std::sync::Arc::new(ppp);
        options.session = session;
        let (client, inbox) = connect(&options).await.expect("connect");
        // Idle: only the keepalives cross.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let alive = !client.is_closed();
        let traffic = traffic_both_ways(&client, &inbox, 0x7700).await;
        client.close(Duration::from_secs(10)).await;
        (alive, traffic)
    });
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    assert!(alive, "the idle session closed: {stats:?}");
    assert_eq!(traffic, Ok(()), "{stats:?}");
    assert_eq!(stats.event("ktls_enabled"), 1, "{stats:?}");
    assert_no_failures(&stats, "keepalives");
}

/// The server ends the session (a graceful shutdown): LCP Terminate and
/// Call Disconnect reach the client through the kernel's records, then
/// the server's close_notify.
#[test]
fn server_close_reaches_the_client_through_the_kernel() {
    const TEST: &str = "server_close_reaches_the_client_through_the_kernel";
    let Some((_, _dir, mut server)) = vm_server(TEST, |_| {}) else {
        return;
    };
    let addr = server.addr;
    let handle = std::sync::Arc::new(server.server.take().unwrap());
    let shutdown = handle.clone();
    let (traffic, closed, by_server, close_notify) = server.ns.run(move || {
        tokio_uring::start(async move {
            let options = mschapv2_options(addr, "alice", "alice-secret");
            let (client, inbox) = connect(&options).await.expect("connect");
            let traffic = traffic_both_ways(&client, &inbox, 0x5500).await;
            shutdown.shutdown();
            let closed = client.wait_closed(Duration::from_secs(15)).await;
            (
                traffic,
                closed,
                session_closed_by_server(&client),
                client.received_close_notify(),
            )
        })
    });
    let stats = handle.metrics();
    let handle = std::sync::Arc::into_inner(handle).expect("the only handle");
    assert!(handle.join(Duration::from_secs(10)), "workers did not exit");
    assert_eq!(traffic, Ok(()), "{stats:?}");
    assert!(closed, "the session did not end: {stats:?}");
    assert!(by_server, "not closed by the server's LCP/SSTP goodbye");
    assert!(close_notify, "no close_notify from the server's kernel");
    assert_eq!(stats.event("ktls_enabled"), 1, "{stats:?}");
    assert_no_failures(&stats, "server close");
}

/// A TLS 1.3 KeyUpdate from the client: Linux 6.1 cannot install the
/// peer's next keys, so the server ends the session, counted under its own
/// reason, instead of failing to decrypt what follows.
#[test]
fn client_key_update_ends_the_session_with_a_counted_reason() {
    const TEST: &str = "client_key_update_ends_the_session_with_a_counted_reason";
    let Some((_, _dir, server)) = vm_server(TEST, |_| {}) else {
        return;
    };
    let addr = server.addr;
    let (traffic, closed, close_notify) = server.run_clients(move || async move {
        let options = suite_options(addr, TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256");
        let (client, inbox) = connect(&options).await.expect("connect");
        let traffic = traffic_both_ways(&client, &inbox, 0x6600).await;
        client.request_key_update().expect("a TLS 1.3 connection");
        let closed = client.wait_closed(Duration::from_secs(15)).await;
        (traffic, closed, client.received_close_notify())
    });
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    assert_eq!(traffic, Ok(()), "{stats:?}");
    assert!(closed, "the session went on after the KeyUpdate: {stats:?}");
    assert_eq!(stats.event("peer_key_update"), 1, "{stats:?}");
    assert_eq!(stats.count(Event::IoError), 0, "{stats:?}");
    assert_eq!(stats.count(Event::TlsError), 0, "{stats:?}");
    // The server's keys did not change: its close_notify still reads.
    assert!(
        close_notify,
        "no close_notify after the KeyUpdate: {stats:?}"
    );
}

/// The real sstp-client (a peer nobody here wrote, OpenSSL underneath)
/// completes a session against the kTLS server over TLS 1.2 and 1.3:
/// crypto binding, IP both ways, and the server's Call Disconnect after
/// sstpc's LCP Terminate, all through the kernel's records.
#[test]
fn sstp_client_completes_a_session_against_the_kernel() {
    const TEST: &str = "sstp_client_completes_a_session_against_the_kernel";
    if in_vm(TEST).is_none() {
        return;
    }
    require_tool("sstpc", sstpc::PACKAGE);
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = require_config(dir.path());
        config.tls.min_version = version;
        config.tls.max_version = version;
        let server = TestServer::start(config);
        let tag = format!("{TEST}_{version:?}");
        let session = match sstpc::start_session(
            &server,
            &tag,
            &[AuthProtocol::MsChapV2],
            "alice",
            "alice-secret",
        ) {
            Ok(session) => session,
            Err(reason) => {
                record_skip(&tag, &reason);
                continue;
            }
        };
        let sstpc::SstpcSession {
            sstpc: mut client,
            mut ppp,
            relay: _relay,
            ..
        } = session;
        let context = |client: &sstpc::Sstpc| {
            format!(
                "{version:?}: server {}\nsstpc log:\n{}",
                server.handle().metrics(),
                client.log()
            )
        };
        let authenticated = ppp.run_until(Duration::from_secs(20), |p| {
            p.mppe_keys().is_some() || p.closed().is_some()
        });
        assert!(authenticated, "not authenticated\n{}", context(&client));
        let (send, receive) = ppp.mppe_keys().unwrap();
        sstpc::deliver_mppe_keys(client.plugin_socket(), &send, &receive)
            .unwrap_or_else(|e| panic!("plugin socket: {e}\n{}", context(&client)));
        let up = ppp.run_until(Duration::from_secs(20), |p| {
            p.ipv4().is_some() && server.handle().metrics().sessions_established == 1
        });
        assert!(up, "not established\n{}", context(&client));
        for (n, len) in [16usize, 700, 1200].into_iter().enumerate() {
            let payload = pattern(0x3300, n as u16, len);
            assert!(
                ppp.ping(
                    GATEWAY,
                    0x3300 + n as u16,
                    &payload,
                    sstpc::PppHeader::Full,
                    3
                ),
                "no intact echo reply with {len} bytes through sstpc\n{}",
                context(&client)
            );
        }
        let stats = server.handle().metrics();
        assert_eq!(stats.ktls_sessions, 1, "not in the kernel: {stats:?}");
        ppp.close();
        assert!(
            ppp.run_until(Duration::from_secs(10), |p| p.closed().is_some()),
            "no Terminate-Ack\n{}",
            context(&client)
        );
        assert!(
            client.wait_exit(Duration::from_secs(10)).is_some(),
            "sstpc still running\n{}",
            context(&client)
        );
        assert!(
            client.log().contains("Sending Disconnect Ack Message"),
            "sstpc did not acknowledge the Call Disconnect\n{}",
            context(&client)
        );
        assert!(server.wait_idle(Duration::from_secs(10)));
        let stats = server.handle().metrics();
        assert_eq!(stats.event("ktls_enabled"), 1, "{stats:?}");
        assert_eq!(stats.count(Event::PeerTerminated), 1, "{stats:?}");
        assert_no_failures(&stats, "sstpc");
    }
}

/// `auto` hands a session to the kernel the way `require` does; `off`
/// keeps it in userspace on the same kernel. Either way IP passes.
#[test]
fn auto_offloads_and_off_stays_in_userspace() {
    const TEST: &str = "auto_offloads_and_off_stays_in_userspace";
    if in_vm(TEST).is_none() {
        return;
    }
    for (mode, in_kernel) in [(KtlsMode::Auto, 1), (KtlsMode::Off, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = require_config(dir.path());
        config.tls.ktls = mode;
        let server = TestServer::start(config);
        let addr = server.addr;
        let endpoint = server.handle().metrics_addr().unwrap();
        let (traffic, ktls_sessions) = server.run_clients(move || async move {
            let options = mschapv2_options(addr, "alice", "alice-secret");
            let (client, inbox) = connect(&options).await.expect("connect");
            let ktls_sessions = scraped_ktls_sessions(endpoint);
            let traffic = traffic_both_ways(&client, &inbox, 0x2200).await;
            client.close(Duration::from_secs(10)).await;
            (traffic, ktls_sessions)
        });
        assert!(server.wait_idle(Duration::from_secs(10)));
        let stats = server.handle().metrics();
        assert_eq!(traffic, Ok(()), "{mode:?}: {stats:?}");
        assert_eq!(ktls_sessions, in_kernel, "{mode:?}: {stats:?}");
        assert_eq!(
            stats.event("ktls_enabled"),
            in_kernel,
            "{mode:?}: {stats:?}"
        );
        assert_no_failures(&stats, mode.as_str());
    }
}

/// Volume through the kernel's records: rounds of 256 near-MTU packets
/// queued at once each way (hundreds of kilobytes, so reads return several
/// records at a time), over TLS 1.2 and 1.3, every payload compared.
#[test]
fn bursts_of_full_size_packets_cross_intact() {
    const TEST: &str = "bursts_of_full_size_packets_cross_intact";
    let Some((_, _dir, server)) = vm_server(TEST, |_| {}) else {
        return;
    };
    let addr = server.addr;
    let results = server.run_clients(move || async move {
        let mut results = Vec::new();
        for (version, suite, _) in [SUITES[2], SUITES[4]] {
            let options = suite_options(addr, version, suite);
            let (client, inbox) = connect(&options).await.expect("connect");
            let largest = usize::from(client.transmit_mtu()) - 28;
            for round in 0..4u16 {
                let result = echo_burst(&client, &inbox, 0x1000 + round, 256, |seq| {
                    largest - usize::from(seq % 7)
                })
                .await;
                inbox.borrow_mut().clear();
                results.push((format!("{suite} round {round}"), result));
            }
            client.close(Duration::from_secs(10)).await;
        }
        results
    });
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    for (label, result) in &results {
        assert_eq!(result, &Ok(()), "{label}: {stats:?}");
    }
    assert_eq!(stats.event("ktls_enabled"), 2, "{stats:?}");
    assert!(stats.rx_packets >= 2 * 4 * 256, "{stats:?}");
    assert_no_failures(&stats, "bursts");
}

/// A TCP relay in the server's namespace for one connection: passes both
/// directions on unchanged and notes the length of every TLS record the
/// server sends (the record header is in the clear), in order.
struct RecordTap {
    addr: std::net::SocketAddr,
    /// (content type, length) of each record from the server.
    records: std::sync::Arc<std::sync::Mutex<Vec<(u8, usize)>>>,
    /// While set, the tap stops reading from the server (a slow reader:
    /// the server's socket fills up).
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RecordTap {
    fn start(ns: &sstpd::testing::netns::NetNs, target: std::net::SocketAddr) -> RecordTap {
        use std::net::{TcpListener, TcpStream};
        let records = std::sync::Arc::<std::sync::Mutex<Vec<(u8, usize)>>>::default();
        let hold = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
        let seen = records.clone();
        let held = hold.clone();
        // Threads spawned from a thread inside the namespace stay in it.
        let addr = ns.run(move || {
            let listener = TcpListener::bind("127.0.0.1:0").expect("tap listener");
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                let Ok((client, _)) = listener.accept() else {
                    return;
                };
                // A small receive buffer toward the server: holding
                // fills the server's socket soon.
                let socket = socket2::Socket::new(
                    socket2::Domain::for_address(target),
                    socket2::Type::STREAM,
                    None,
                )
                .unwrap();
                socket.set_recv_buffer_size(8 * 1024).unwrap();
                socket
                    .connect(&target.into())
                    .expect("tap connects to the server");
                let server: TcpStream = socket.into();
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || tap_pump(client_in, server_out, None, None));
                tap_pump(server, client, Some(&seen), Some(&held));
            });
            addr
        });
        RecordTap {
            addr,
            records,
            hold,
        }
    }

    fn hold(&self, hold: bool) {
        self.hold.store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    fn records(&self) -> Vec<(u8, usize)> {
        self.records.lock().unwrap().clone()
    }
}

/// Copies `from` to `to` until either ends; with `records`, parses the
/// stream as TLS records and notes each one's type and length. While
/// `hold` is set it does not read.
fn tap_pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    records: Option<&std::sync::Mutex<Vec<(u8, usize)>>>,
    hold: Option<&std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let held = || hold.is_some_and(|h| h.load(std::sync::atomic::Ordering::SeqCst));
    loop {
        while held() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let Ok(n @ 1..) = from.read(&mut chunk) else {
            break;
        };
        if let Some(records) = records {
            pending.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while pending.len() - at >= 5 {
                let len = usize::from(u16::from_be_bytes([pending[at + 3], pending[at + 4]]));
                if pending.len() - at < 5 + len {
                    break;
                }
                records.lock().unwrap().push((pending[at], len));
                at += 5 + len;
            }
            pending.drain(..at);
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The server's kernel TLS send counters (batches, packets), scraped.
fn scraped_ktls_sends(endpoint: std::net::SocketAddr) -> (u64, u64) {
    let (_, body) = common::prometheus::scrape(endpoint);
    let samples = common::prometheus::samples(&body);
    (
        common::prometheus::value(&samples, "sstpd_ktls_send_batches_total"),
        common::prometheus::value(&samples, "sstpd_ktls_send_packets_total"),
    )
}

/// Bursts of echo replies leave the server batched, several SSTP packets
/// per kernel TLS send submission (`sstpd_ktls_send_packets_total` over
/// `sstpd_ktls_send_batches_total` above 1), every one through the
/// worker's ring (no `ktls_send_fallbacks`), and still one TLS record per
/// packet: a tap between client and server reads the records' lengths,
/// and every reply of the bursts (each of its own size) has a record of
/// exactly its SSTP packet's size, none larger than one packet. The client
/// checks every payload byte for byte. In the last round the tap stops
/// reading for two seconds (a slow reader): the server's socket, whose
/// send buffer the namespace caps at 16 KiB, fills and its chains wait
/// for room; order and payloads still hold (the client's TLS would reject
/// a record out of sequence).
#[test]
fn bursts_leave_batched_one_record_per_packet() {
    const TEST: &str = "bursts_leave_batched_one_record_per_packet";
    const ROUNDS: u16 = 3;
    const BURST: u16 = 128;
    let Some((_, _dir, server)) = vm_server(TEST, |_| {}) else {
        return;
    };
    let endpoint = server.handle().metrics_addr().unwrap();
    // A small send buffer for the server's connection (created after this).
    let sysctl = server
        .ns
        .command("sysctl")
        .args(["-q", "-w", "net.ipv4.tcp_wmem=4096 8192 16384"])
        .status()
        .expect("run sysctl");
    assert!(sysctl.success(), "sysctl net.ipv4.tcp_wmem: {sysctl:?}");
    let tap = std::sync::Arc::new(RecordTap::start(&server.ns, server.addr));
    let tap_addr = tap.addr;
    let holder = tap.clone();
    // Every reply of a round differs in size: 600, 604, ... bytes of payload.
    let payload_len = |seq: u16| 600 + 4 * usize::from(seq);
    let (results, before) = server.run_clients(move || async move {
        // TLS 1.3 with AES-GCM: a record is its plaintext plus 17 bytes
        // (the inner content type and the 16-byte tag).
        let options = suite_options(tap_addr, TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256");
        let (client, inbox) = connect(&options).await.expect("connect");
        let before = scraped_ktls_sends(endpoint);
        let mut results = Vec::new();
        for round in 0..ROUNDS {
            let slow_reader = (round == ROUNDS - 1).then(|| {
                holder.hold(true);
                let holder = holder.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(2));
                    holder.hold(false);
                })
            });
            let result = echo_burst(&client, &inbox, 0x0b00 + round, BURST, payload_len).await;
            if let Some(release) = slow_reader {
                release.join().unwrap();
            }
            inbox.borrow_mut().clear();
            results.push((round, result));
        }
        client.close(Duration::from_secs(10)).await;
        (results, before)
    });
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    for (round, result) in &results {
        assert_eq!(result, &Ok(()), "round {round}: {stats:?}");
    }
    assert_eq!(stats.event("ktls_enabled"), 1, "{stats:?}");
    assert_no_failures(&stats, "batched bursts");

    // Counted once a chain's last completion is reaped, which may be
    // after the client has read the packets: the totals at the end.
    let (batches, packets) = (
        stats.ktls_send_batches - before.0,
        stats.ktls_send_packets - before.1,
    );
    eprintln!("during the bursts: {packets} packets in {batches} kernel TLS send submissions");
    assert!(
        packets >= u64::from(ROUNDS * BURST),
        "{packets} packets sent for {} replies: {stats:?}",
        ROUNDS * BURST
    );
    assert!(
        packets > batches,
        "not batched: {packets} packets in {batches} submissions: {stats:?}"
    );
    // Every batch went through the private ring as one chain.
    for reason in ["ring_unavailable", "ring_busy", "chain_broken"] {
        assert_eq!(
            stats.event(reason),
            0,
            "ktls_send_fallbacks{{{reason}}}: {stats:?}"
        );
    }
    assert_one_record_per_reply(&tap.records(), ROUNDS, BURST, payload_len);
}

/// Every reply of `rounds` bursts of `burst` (reply `seq` with
/// `payload_len(seq)` bytes of ICMP payload) had a TLS 1.3 AES-GCM record
/// of exactly its SSTP packet's size, and no record was larger than one
/// packet.
fn assert_one_record_per_reply(
    records: &[(u8, usize)],
    rounds: u16,
    burst: u16,
    payload_len: impl Fn(u16) -> usize,
) {
    const TLS13_OVERHEAD: usize = 17;
    const APPLICATION_DATA: u8 = 23;
    let plaintext_lens: Vec<usize> = records
        .iter()
        .filter(|(kind, _)| *kind == APPLICATION_DATA)
        .map(|(_, len)| len - TLS13_OVERHEAD)
        .collect();
    let largest_payload = (0..burst).map(&payload_len).max().unwrap();
    let largest_packet = |header: usize| largest_payload + 28 + header;
    // An SSTP data packet: the 4-byte SSTP header, the PPP header (1 to 4
    // bytes, as negotiated), the IP packet (20 + 8 + payload).
    let framing = (5..=8).find(|&header| {
        (0..burst).all(|seq| {
            let expected = payload_len(seq) + 28 + header;
            plaintext_lens
                .iter()
                .filter(|&&len| len == expected)
                .count()
                >= usize::from(rounds)
        })
    });
    assert!(
        framing.is_some(),
        "not every reply had a record of its own size; record plaintext sizes: {plaintext_lens:?}"
    );
    let header = framing.unwrap();
    assert!(
        plaintext_lens
            .iter()
            .all(|&len| len <= largest_packet(header)),
        "a record larger than one packet; record plaintext sizes: {plaintext_lens:?}"
    );
}

/// The `sstp-loadgen` binary next to this test's (scripts/vm-test builds
/// it): `target/<profile>/deps/ktls_vm-*` -> `target/<profile>/sstp-loadgen`.
fn loadgen_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("sstp-loadgen");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p sstp-loadgen` (scripts/vm-test does)",
        binary.display()
    );
    binary
}

/// The load generator's traffic peer, running in the server's namespace
/// until dropped.
struct LoadgenPeer(std::process::Child);

impl Drop for LoadgenPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sstp-loadgen MODE ARGS` as alice against `server` from inside its
/// namespace, with a JSON report; returns the table and the report.
fn loadgen_run(
    server: &TestServer,
    mode: &str,
    args: &[&str],
    json_path: &std::path::Path,
) -> (String, serde_json::Value) {
    let target = server.addr.to_string();
    let out = server
        .ns
        .command(loadgen_binary())
        .args([mode, "--target", &target, "--insecure"])
        .args(["--user", "alice", "--password", "alice-secret"])
        .args(["--workers", "1", "--no-pin", "--progress", "never"])
        .args(["--json", json_path.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run sstp-loadgen");
    let table = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "sstp-loadgen {mode}: {:?}\n{table}",
        out.status
    );
    let report = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    (table, report)
}

/// The real load generator against the kernel TLS server: UDP reflected
/// by its peer, so each datagram crosses the tunnel up and back down and
/// the load generator checks every reply's payload byte for byte. Traffic
/// flows both ways, the sessions are the kernel's, and not one payload
/// differs from what was sent. A short run at a modest rate: the VM's CPU
/// is emulated.
#[test]
fn loadgen_payloads_cross_both_ways_intact() {
    const TEST: &str = "loadgen_payloads_cross_both_ways_intact";
    const SESSIONS: u64 = 2;
    // Room for the emulated CPU on a busy host, where one TLS handshake
    // took 9.5 s (beyond the 10 s default with the HTTP request).
    let Some((_, dir, server)) = vm_server(TEST, |config| {
        config.tls.handshake_timeout = Duration::from_secs(60);
        config.server.preauth_timeout = Duration::from_secs(120);
    }) else {
        return;
    };
    let peer = LoadgenPeer(
        server
            .ns
            .command(loadgen_binary())
            .args(["peer", "--bind", "0.0.0.0:9000", "--threads", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the loadgen peer"),
    );
    let sessions = SESSIONS.to_string();
    let args = [
        "--sessions",
        &sessions,
        "--duration",
        "3s",
        "--pps",
        "100",
        "--payload",
        "1372",
        "--setup-timeout",
        "120s",
    ];
    let json_path = dir.path().join("udp.json");
    let (table, report) = loadgen_run(&server, "udp", &args, &json_path);
    eprintln!("{table}");
    drop(peer);
    let at = |path: &str| {
        report
            .pointer(path)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("no {path} in the report\n{table}"))
    };
    assert_eq!(at("/sessions/established"), SESSIONS, "{table}");
    assert_eq!(at("/traffic/payload_mismatches"), 0, "{table}");
    assert_eq!(at("/traffic/foreign"), 0, "{table}");
    // Blocking TUN queues on this kernel had io-wq threads write a batch
    // in parallel: hundreds of packets out of order (sstpd::tun docs).
    assert_eq!(at("/traffic/reordered"), 0, "{table}");
    assert!(at("/traffic/up/packets") > 0, "nothing up\n{table}");
    assert!(at("/traffic/down/packets") > 0, "nothing down\n{table}");
    // The reflections: what crossed both ways and was compared.
    assert!(
        at("/traffic/probes_answered") > 0,
        "no reply to check\n{table}"
    );
    assert!(at("/peer/rx_packets") > 0, "the peer saw nothing\n{table}");
    assert!(server.wait_idle(Duration::from_secs(10)));
    let stats = server.handle().metrics();
    assert_eq!(stats.event("ktls_enabled"), SESSIONS, "{stats:?}");
    assert!(stats.ktls_send_packets > 0, "{stats:?}");
    assert_no_failures(&stats, "loadgen");
}
