#![cfg(feature = "runtime")]
//! Hostile clients before authentication (issue 12, defects 4 and 7), at
//! the real server over real TLS in a network namespace: connections are
//! counted from accept, the pre-authentication window is capped globally
//! and per source and bounded in time as a whole, and password guessing is
//! throttled per user and per source. Every refusal is counted by why.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use sstpd::proto::auth::AuthProtocol;
use sstpd::tls::certs::SelfSignedKey;

fn alice(addr: SocketAddr, password: &str) -> sstpd::client::ClientOptions {
    user(addr, "alice", password)
}

fn user(addr: SocketAddr, name: &str, password: &str) -> sstpd::client::ClientOptions {
    let mut options = mschapv2_options(addr, name, password);
    options.setup_timeout = Duration::from_secs(10);
    options
}

/// Whether the server closed `stream` (EOF or reset) within `within`,
/// rather than leaving it open.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// TCP connections that never start TLS: each holds a place in the
/// pre-authentication window until the handshake times out.
fn silent_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let streams: Vec<_> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Let the server's accept loops take them all.
    std::thread::sleep(Duration::from_millis(300));
    streams
}

#[test]
fn preauth_connections_are_capped_per_source_and_the_place_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    // Long enough that the silent connections below stay for the test.
    config.tls.handshake_timeout = Duration::from_secs(30);
    let per_source = config.server.max_preauth_per_source;
    assert_eq!(per_source, 32, "the documented default");
    let server = TestServer::start(config);
    let addr = server.addr;
    let (refused_fast, alice_while_full, alice_after) = server.run_clients(move || async move {
        let held = silent_connections(addr, per_source);
        let mut one_more = TcpStream::connect(addr).expect("the kernel accepts it");
        let refused_fast = closed_by_server(&mut one_more, Duration::from_secs(3));
        let alice_while_full = connect(&alice(addr, "alice-secret")).await.is_ok();
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let alice_after = connect(&alice(addr, "alice-secret")).await;
        let alice_after = match alice_after {
            Ok((client, _)) => {
                client.close(Duration::from_secs(5)).await;
                true
            }
            Err(_) => false,
        };
        (refused_fast, alice_while_full, alice_after)
    });
    let stats = server.handle().metrics();
    assert!(
        refused_fast,
        "the connection past the cap was not closed at once: {stats}"
    );
    assert!(
        !alice_while_full,
        "a source at its cap got another session in: {stats}"
    );
    assert!(
        alice_after,
        "the places came back when the connections closed: {stats}"
    );
    assert_eq!(stats.event("refused_preauth_per_source"), 2, "{stats}");
    assert_eq!(stats.sessions_established, 1, "{stats}");
}

#[test]
fn max_sessions_counts_connections_from_accept() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.server.max_sessions = 2;
    config.tls.handshake_timeout = Duration::from_secs(30);
    let server = TestServer::start(config);
    let addr = server.addr;
    let (while_full, after) = server.run_clients(move || async move {
        // Two handshakes in progress fill max_sessions: a third
        // connection may not start one.
        let held = silent_connections(addr, 2);
        let while_full = connect(&alice(addr, "alice-secret")).await.is_ok();
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = connect(&alice(addr, "alice-secret")).await.is_ok();
        (while_full, after)
    });
    let stats = server.handle().metrics();
    assert!(!while_full, "max_sessions was overshot: {stats}");
    assert!(after, "{stats}");
    assert_eq!(stats.event("refused_max_sessions"), 1, "{stats}");
}

#[test]
fn the_whole_preauth_window_is_one_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    // Each inner bound alone would allow far longer.
    config.tls.handshake_timeout = Duration::from_secs(30);
    config.sstp.negotiation_timeout = Duration::from_secs(60);
    config.ppp.auth_timeout = Duration::from_secs(60);
    config.server.preauth_timeout = Duration::from_secs(2);
    let server = TestServer::start(config);
    let addr = server.addr;
    let (silent_after, stalled_after, established_survives) =
        server.run_clients(move || async move {
            let (client, inbox) = connect(&alice(addr, "alice-secret")).await.unwrap();
            let start = Instant::now();
            // Never starts TLS.
            let mut silent = TcpStream::connect(addr).unwrap();
            // TLS and a valid SSTP request, then nothing: the client would
            // sit in SSTP negotiation (and then PPP authentication).
            let tls = client_tls(sstpd::tls::client::ServerVerification::Insecure);
            let conn = rustls::ClientConnection::new(
                tls,
                sstpd::tls::client::server_name("localhost").unwrap(),
            )
            .unwrap();
            let mut stalled = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
            stalled
                .write_all(
                    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\
                      Host: localhost\r\nContent-Length: 18446744073709551615\r\n\
                      SSTPCORRELATIONID: {B0F4A4BE-7E84-4A4F-A4F6-0C5D4F2E1B63}\r\n\r\n",
                )
                .unwrap();
            assert!(closed_by_server(&mut silent, Duration::from_secs(6)));
            let silent_after = start.elapsed();
            stalled
                .sock
                .set_read_timeout(Some(Duration::from_secs(6)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let stalled_closed = loop {
                match stalled.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            assert!(stalled_closed, "the stalled negotiation was left open");
            let stalled_after = start.elapsed();
            // Established sessions are past the window: alice stays.
            let established_survives =
                !client.is_closed() && ping_gateway(&client, &inbox, 1, b"still here").await;
            client.close(Duration::from_secs(5)).await;
            (silent_after, stalled_after, established_survives)
        });
    let stats = server.handle().metrics();
    assert!(silent_after < Duration::from_secs(5), "{silent_after:?}");
    assert!(stalled_after < Duration::from_secs(5), "{stalled_after:?}");
    assert!(established_survives, "{stats}");
    assert_eq!(stats.event("preauth_timeout"), 2, "{stats}");
    assert!(server.wait_idle(Duration::from_secs(10)), "{stats}");
}

/// `name` with one authentication attempt per connection (the client
/// gives up after the first Failure instead of answering MS-CHAPv2's
/// retry), so that every connection is exactly one attempt.
fn one_attempt(addr: SocketAddr, name: &str, password: &str) -> sstpd::client::ClientOptions {
    let mut options = user(addr, name, password);
    let mut ppp = sstpd::proto::ppp::PppConfig {
        auth_protocols: vec![AuthProtocol::MsChapV2],
        ..Default::default()
    };
    ppp.auth.max_attempts = 1;
    options.session = sstpd::proto::session::SessionConfig::new(Default::default(), ppp);
    options
}

#[test]
fn password_guessing_is_throttled_per_user_then_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    // The documented defaults: 10 failures lock a user out, 20 a source.
    const PER_USER: usize = 10;
    const PER_SOURCE: usize = 20;
    let server = TestServer::start(config);
    let addr = server.addr;
    let outcome = server.run_clients(move || async move {
        for i in 0..PER_USER {
            let wrong = connect(&one_attempt(addr, "alice", &format!("guess-{i}"))).await;
            assert!(wrong.is_err(), "a wrong password was accepted");
        }
        // Alice is locked out: even her right password is refused...
        let alice_refused = connect(&one_attempt(addr, "alice", "alice-secret"))
            .await
            .is_err();
        // ...but bob, from the same address, still gets in.
        let bob_ok = match connect(&one_attempt(addr, "bob", "bob-secret")).await {
            Ok((client, _)) => {
                client.close(Duration::from_secs(5)).await;
                true
            }
            Err(_) => false,
        };
        // Spraying other names from this address locks the address out.
        for i in 0..PER_SOURCE - PER_USER {
            let _ = connect(&one_attempt(addr, &format!("nobody{i}"), "x")).await;
        }
        let bob_after = connect(&one_attempt(addr, "bob", "bob-secret"))
            .await
            .is_ok();
        (alice_refused, bob_ok, bob_after)
    });
    let (alice_refused, bob_ok, bob_after) = outcome;
    let stats = server.handle().metrics();
    assert!(alice_refused, "a locked-out user got in: {stats}");
    assert!(
        bob_ok,
        "another user from the same address is not locked out: {stats}"
    );
    assert!(
        !bob_after,
        "the source is locked out after spraying: {stats}"
    );
    assert_eq!(stats.event("auth_throttle_engaged_user"), 1, "{stats}");
    assert_eq!(stats.event("auth_throttle_engaged_source"), 1, "{stats}");
    assert_eq!(stats.event("auth_throttled_user"), 1, "{stats}");
    assert_eq!(stats.event("auth_throttled_source"), 1, "{stats}");
    assert_eq!(
        stats.sessions_established, 1,
        "only bob's first login: {stats}"
    );
}
