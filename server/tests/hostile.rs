#![cfg(feature = "runtime")]
//! Bad input at the real server: each hostile connection gets the answer
//! the spec names (a TLS alert, an HTTP 4xx, a Call Abort, a close at the
//! timeout), is counted,
//! and disturbs no other session: a client that was up before keeps
//! pinging through it all.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use sstpd::config::TlsVersion;
use sstpd::proto::auth::pap::{CODE_AUTHENTICATE_ACK, CODE_AUTHENTICATE_NAK};
use sstpd::proto::auth::{AuthProtocol, PROTO_PAP};
use sstpd::proto::ppp::frame::{PROTO_IPCP, PROTO_LCP};
use sstpd::proto::ppp::packet::{CONFIGURE_ACK, CONFIGURE_REQUEST, TERMINATE_REQUEST};
use sstpd::testing::hostile::ScriptedClient;
use sstpd::tls::certs::SelfSignedKey;
use sstpd::tls::client::ServerVerification;

/// [MS-SSTP] 2.2.9: Call Abort's message type.
const CALL_ABORT: u16 = 0x0005;
/// A request that passes every check of [MS-SSTP] 3.2.4.1.
const DUPLEX_POST: &str =
    "SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\
Host: localhost\r\n\
Content-Length: 18446744073709551615\r\n\
SSTPCORRELATIONID: {B0F4A4BE-7E84-4A4F-A4F6-0C5D4F2E1B63}\r\n\r\n";
/// How long any one hostile exchange may take (the server's Call Abort
/// timer is 3 s; nothing here waits for a handshake timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

fn tls(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = client_tls(ServerVerification::Insecure);
    let name = sstpd::tls::client::server_name("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(conn, tcp(addr))
}

/// Everything until the server closes (close_notify, FIN or reset) or
/// `enough` says so.
fn read_until(stream: &mut impl Read, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !enough(&got) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("no answer within {READ_TIMEOUT:?}; got {got:?}")
            }
            Err(_) => break,
        }
    }
    got
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status line of an HTTP response.
fn status_line(bytes: &[u8]) -> String {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Message types of the SSTP control packets in `bytes` ([MS-SSTP] 2.2.1).
fn control_messages(mut bytes: &[u8]) -> Vec<u16> {
    let mut types = Vec::new();
    while bytes.len() >= 6 {
        let len = (usize::from(bytes[2] & 0x0f) << 8) | usize::from(bytes[3]);
        if len < 4 || len > bytes.len() {
            break;
        }
        if bytes[1] & 1 == 1 {
            types.push(u16::from_be_bytes([bytes[4], bytes[5]]));
        }
        bytes = &bytes[len..];
    }
    types
}

#[test]
fn bad_input_gets_the_spec_answer_a_counter_and_leaves_other_sessions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    // Short enough for the stalled connections below, long enough for a
    // session's whole setup on a busy machine.
    config.tls.handshake_timeout = Duration::from_secs(1);
    config.sstp.negotiation_timeout = Duration::from_secs(3);
    let server = TestServer::start(config);
    let addr = server.addr;
    let outcome = server.run_clients(move || async move {
        let options = client_options(
            addr,
            "alice",
            "alice-secret",
            (TlsVersion::Tls13, TlsVersion::Tls13),
            &[AuthProtocol::MsChapV2],
        );
        let (client, inbox) = connect(&options).await.expect("alice comes up");
        let before = ping_gateway(&client, &inbox, 1, b"before").await;

        // Not TLS at all: a TLS alert, then the server closes.
        let mut plain = tcp(addr);
        plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let alert = read_until(&mut plain, |_| false);

        // TLS, then an ordinary web request: 4xx and close.
        let mut web = tls(addr);
        web.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let web_reply = read_until(&mut web, |_| false);

        // TLS, then a request head that never ends: refused at 8 KiB.
        let mut flood = tls(addr);
        let mut head =
            b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n".to_vec();
        while head.len() < 9 * 1024 {
            head.extend_from_slice(
                b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        // The server may close before all of it is written.
        let _ = flood.write_all(&head);
        let flood_reply = read_until(&mut flood, |_| false);

        // A valid handshake, then an SSTP packet of version 2.0: Call
        // Abort ([MS-SSTP] 3.3.5.2.1).
        let mut sstp = tls(addr);
        let mut bytes = DUPLEX_POST.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x20, 0x00, 0x00, 0x08, 0, 0, 0, 0]);
        sstp.write_all(&bytes).unwrap();
        let sstp_reply = read_until(&mut sstp, |got| {
            head_end(got).is_some_and(|end| control_messages(&got[end..]).contains(&CALL_ABORT))
        });

        // Slow loris, twice: a TCP connection that never starts TLS is
        // closed at the handshake timeout; a request that never ends gets
        // 408 at the negotiation timeout ([MS-SSTP] 3.2.2).
        let mut silent = tcp(addr);
        let silent_reply = read_until(&mut silent, |_| false);
        let mut stalled = tls(addr);
        stalled
            .write_all(
                b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n",
            )
            .unwrap();
        let stalled_reply = read_until(&mut stalled, |_| false);

        let after = ping_gateway(&client, &inbox, 2, b"after").await;
        client.close(Duration::from_secs(5)).await;
        (
            (before, after),
            (alert, web_reply, flood_reply, sstp_reply),
            (silent_reply, stalled_reply),
        )
    });
    let ((before, after), (alert, web_reply, flood_reply, sstp_reply), (silent, stalled)) = outcome;
    assert!(before && after, "pinged before {before}, after {after}");

    // A TLS alert record (content type 21).
    assert_eq!(alert.first(), Some(&21), "{alert:?}");
    let web_status = status_line(&web_reply);
    assert!(web_status.starts_with("HTTP/1.1 4"), "{web_status}");
    let flood_status = status_line(&flood_reply);
    assert!(flood_status.starts_with("HTTP/1.1 4"), "{flood_status}");
    assert!(
        status_line(&sstp_reply).starts_with("HTTP/1.1 200"),
        "{sstp_reply:?}"
    );
    let end = head_end(&sstp_reply).unwrap();
    assert!(
        control_messages(&sstp_reply[end..]).contains(&CALL_ABORT),
        "{sstp_reply:?}"
    );

    assert!(silent.is_empty(), "{silent:?}");
    let stalled_status = status_line(&stalled);
    assert!(
        stalled_status.starts_with("HTTP/1.1 408"),
        "{stalled_status}"
    );

    assert!(
        server.wait_idle(Duration::from_secs(10)),
        "{}",
        server.handle().metrics()
    );
    // Each counted once, by what went wrong; only alice got anywhere.
    let stats = server.handle().metrics();
    assert_eq!(stats.connections_accepted, 7, "{stats}");
    assert_eq!(stats.sessions_established, 1, "{stats}");
    assert_eq!(stats.event("tls_error"), 1, "{stats}");
    assert_eq!(stats.event("http_rejected_not_found"), 1, "{stats}");
    assert_eq!(stats.event("http_rejected_head_too_large"), 1, "{stats}");
    assert_eq!(stats.event("http_rejected_timeout"), 1, "{stats}");
    assert_eq!(stats.event("tls_handshake_timeout"), 1, "{stats}");
    assert_eq!(stats.event("invalid_packet"), 1, "{stats}");
}

// ---------------------------------------------------------------- authentication

/// A raw TLS connection driven by the protocol core's scripted client.
struct Scripted {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    client: ScriptedClient,
    /// Renegotiations sent (each takes a new Identifier).
    renegotiations: std::cell::Cell<u8>,
}

impl Scripted {
    /// Connects and opens LCP: the server is then authenticating.
    fn in_authentication(addr: SocketAddr) -> Scripted {
        let mut this = Scripted {
            stream: tls(addr),
            client: ScriptedClient::new(),
            renegotiations: std::cell::Cell::new(0),
        };
        this.stream.write_all(&ScriptedClient::opening()).unwrap();
        assert!(
            this.read_until(|c| c.lcp_request().is_some()),
            "LCP request"
        );
        let request = this.client.lcp_request().unwrap().clone();
        let mut bytes = ScriptedClient::lcp_configure_request(1);
        bytes.extend_from_slice(&ScriptedClient::ack(&request));
        this.stream.write_all(&bytes).unwrap();
        assert!(
            this.read_until(|c| c.saw(PROTO_LCP, CONFIGURE_ACK)),
            "LCP open"
        );
        this
    }

    /// Reads until `done` holds, the server closes, or nothing arrives for
    /// [`READ_TIMEOUT`]. Returns whether `done` held.
    fn read_until(&mut self, done: impl Fn(&ScriptedClient) -> bool) -> bool {
        let mut buf = [0u8; 4096];
        while !done(&self.client) {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.client.receive(&buf[..n]),
            }
        }
        done(&self.client)
    }

    /// An LCP renegotiation with the Ack of the server's predictable next
    /// Configure-Request. Each has an Identifier of its own: a request with
    /// the Identifier and options of the one acknowledged is a copy of it
    /// ([RFC 1661] 5.1), answered with the same Ack, not a renegotiation.
    fn renegotiation(&self) -> Vec<u8> {
        let request = self.client.lcp_request().expect("server's LCP request");
        let identifier = 0x20 + self.renegotiations.get();
        self.renegotiations.set(self.renegotiations.get() + 1);
        let mut bytes = ScriptedClient::lcp_configure_request(identifier);
        bytes.extend_from_slice(&ScriptedClient::ack_next(request));
        bytes
    }
}

fn pap_server(dir: &std::path::Path) -> TestServer {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 1);
    config.ppp.auth = vec![AuthProtocol::Pap];
    TestServer::start(config)
}

/// Issue 12, defect 1: one TLS record with alice's good PAP request, an
/// LCP renegotiation with the Ack of the server's next Configure-Request,
/// and bob's request with a wrong password. alice's Accept must not be
/// taken as the answer to bob's request.
#[test]
fn an_answer_is_never_applied_to_a_request_made_after_a_renegotiation() {
    let dir = tempfile::tempdir().unwrap();
    let server = pap_server(dir.path());
    let addr = server.addr;
    let client = server.run_clients(move || async move {
        let mut conn = Scripted::in_authentication(addr);
        let mut record = ScriptedClient::pap_request(1, "alice", "alice-secret");
        record.extend_from_slice(&conn.renegotiation());
        record.extend_from_slice(&ScriptedClient::pap_request(2, "bob", "wrong"));
        // One write of a few hundred bytes: one TLS record.
        conn.stream.write_all(&record).unwrap();
        conn.read_until(|c| {
            c.saw(PROTO_PAP, CODE_AUTHENTICATE_ACK) || c.saw(PROTO_LCP, TERMINATE_REQUEST)
        });
        conn.client
    });
    assert!(
        !client.saw(PROTO_PAP, CODE_AUTHENTICATE_ACK),
        "bob got an Authenticate-Ack: {:?}",
        client.received
    );
    assert!(
        !client.saw(PROTO_IPCP, CONFIGURE_REQUEST),
        "IPCP opened for bob"
    );
    assert!(
        client.saw(PROTO_PAP, CODE_AUTHENTICATE_NAK),
        "{:?}",
        client.received
    );
    assert!(
        server.wait_idle(Duration::from_secs(30)),
        "{}",
        server.handle().metrics()
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, 0, "{stats}");
    assert_eq!(stats.event("stale_auth_decision"), 1, "{stats}");
    // bob's refusal and alice's request abandoned by the renegotiation.
    assert_eq!(stats.event("auth_failure_pap"), 2, "{stats}");
}

/// Issue 12, defect 2: renegotiating LCP while each guess is judged must
/// not reset `ppp.auth_max_attempts` (3 by default).
#[test]
fn renegotiation_does_not_reset_the_attempt_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = pap_server(dir.path());
    let addr = server.addr;
    let (guesses, terminated) = server.run_clients(move || async move {
        let mut conn = Scripted::in_authentication(addr);
        let mut guesses = 0u8;
        while guesses < 12 && !conn.client.saw(PROTO_LCP, TERMINATE_REQUEST) {
            let seen = conn.client.received.len();
            let mut record =
                ScriptedClient::pap_request(guesses, "alice", &format!("guess-{guesses}"));
            record.extend_from_slice(&conn.renegotiation());
            if conn.stream.write_all(&record).is_err() {
                break;
            }
            guesses += 1;
            // The server's new Configure-Request (or its Terminate-Request).
            conn.read_until(|c| {
                c.received[seen..].iter().any(|r| {
                    r.protocol == PROTO_LCP
                        && matches!(r.code, CONFIGURE_REQUEST | TERMINATE_REQUEST)
                })
            });
        }
        (guesses, conn.client.saw(PROTO_LCP, TERMINATE_REQUEST))
    });
    assert!(terminated, "the server never gave up ({guesses} guesses)");
    assert!(guesses <= 3, "{guesses} guesses on one connection");
    assert!(
        server.wait_idle(Duration::from_secs(30)),
        "{}",
        server.handle().metrics()
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.event("auth_attempts_exhausted"), 1, "{stats}");
    assert_eq!(stats.event("auth_failure_pap"), 3, "{stats}");
}

// ------------------------------------------------ clients that stop reading

/// How much a flooding client may write before the test calls the server's
/// reading unbounded (the server would be queuing replies to all of it).
const FLOOD_LIMIT: u64 = 64 * 1024 * 1024;
/// A write blocked this long means the server stopped reading.
const FLOOD_STALL: Duration = Duration::from_secs(2);

/// Small TCP buffers in the namespace (`tcp_rmem`, `tcp_wmem` are per
/// namespace): what the kernel holds on either side stays small, so how far
/// a client gets is decided by what sstpd itself reads and queues.
fn small_tcp_buffers(server: &TestServer) {
    for sysctl in [
        "net.ipv4.tcp_rmem=4096 65536 262144",
        "net.ipv4.tcp_wmem=4096 65536 262144",
    ] {
        let out = server
            .ns
            .command("sysctl")
            .args(["-qw", sysctl])
            .output()
            .expect("sysctl");
        assert!(out.status.success(), "sysctl {sysctl}: {out:?}");
    }
}

/// A TLS client whose socket has a tiny receive buffer and that never
/// reads after the handshake: a zero window for everything sstpd sends.
fn deaf_tls(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let config = client_tls(ServerVerification::Insecure);
    let name = sstpd::tls::client::server_name("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// Writes the HTTP request, a Call Connect Request and then, until the
/// writes block for [`FLOOD_STALL`] (or fail) or [`FLOOD_LIMIT`] bytes are
/// out, LCP packets of an unknown code, each of which sstpd answers with a
/// Code-Reject quoting it ([RFC 1661] 5.6): as much to send as it reads.
/// Never reads. Returns the bytes written.
fn flood_without_reading(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) -> u64 {
    use sstpd::proto::sstp::wire::{encode_call_connect_request, put_packet_header, PROTOCOL_PPP};
    let mut start = DUPLEX_POST.as_bytes().to_vec();
    encode_call_connect_request(PROTOCOL_PPP, &mut start);
    tls.write_all(&start).unwrap();

    // ff 03 c0 21, then LCP code 0x40 (unknown), identifier, length.
    let lcp_len: usize = 4 + 1400;
    let mut packet = Vec::new();
    put_packet_header(&mut packet, false, 4 + 4 + lcp_len);
    packet.extend_from_slice(&[0xff, 0x03, 0xc0, 0x21, 0x40, 0x01]);
    packet.extend_from_slice(&(lcp_len as u16).to_be_bytes());
    packet.resize(4 + 4 + lcp_len, 0x5a);
    let chunk: Vec<u8> = packet.repeat(32);

    tls.sock.set_write_timeout(Some(FLOOD_STALL)).unwrap();
    let mut written = start.len() as u64;
    let mut at = 0;
    while written < FLOOD_LIMIT {
        // rustls takes plaintext only once what it holds has gone out, so
        // an error (the socket took nothing for FLOOD_STALL) means none of
        // this write was taken.
        match tls.write(&chunk[at..]) {
            Ok(n) => {
                written += n as u64;
                at = (at + n) % chunk.len();
            }
            Err(_) => break,
        }
    }
    written
}

#[test]
fn a_client_that_stops_reading_is_not_read_any_further() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    // The flood is not ended by a timer in this test.
    config.sstp.negotiation_timeout = Duration::from_secs(60);
    let server = TestServer::start(config);
    small_tcp_buffers(&server);
    let addr = server.addr;
    let (pinged, written) = server.run_clients(move || async move {
        let options = client_options(
            addr,
            "alice",
            "alice-secret",
            (TlsVersion::Tls13, TlsVersion::Tls13),
            &[AuthProtocol::MsChapV2],
        );
        let (client, inbox) = connect(&options).await.expect("alice comes up");
        // The flood runs on a thread of its own: it blocks.
        let flood = std::thread::spawn(move || {
            let mut tls = deaf_tls(addr);
            let written = flood_without_reading(&mut tls);
            (tls, written)
        });
        while !flood.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (tls, written) = flood.join().unwrap();
        let pinged = ping_gateway(&client, &inbox, 1, b"during the flood").await;
        // Gone without reading: the server's stuck write fails.
        drop(tls);
        client.close(Duration::from_secs(5)).await;
        (pinged, written)
    });
    assert!(pinged, "alice could not ping during the flood");
    let stats = server.handle().metrics();
    // With 256 KiB socket buffers each way the kernel holds well under
    // 1 MiB; sstpd must not take much more than its own bound on top.
    assert!(
        written < 8 * 1024 * 1024,
        "sstpd kept reading a client that never reads: {written} bytes in; {stats}"
    );
    assert!(stats.event("session_read_paused") >= 1, "{stats}");
    assert!(
        server.wait_idle(Duration::from_secs(10)),
        "{}",
        server.handle().metrics()
    );
}

#[test]
fn a_client_that_stops_reading_is_closed_by_the_negotiation_timer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.sstp.negotiation_timeout = Duration::from_secs(3);
    config.sstp.abort_timeout = Duration::from_secs(1);
    // TCP_USER_TIMEOUT is two Hello intervals: 4 minutes here, far beyond
    // the wait below, so only the protocol's timers can end the session.
    config.sstp.hello_interval = Duration::from_secs(120);
    let server = TestServer::start(config);
    small_tcp_buffers(&server);
    let addr = server.addr;
    let started = std::time::Instant::now();
    let tls = server.ns.run(move || {
        let mut tls = deaf_tls(addr);
        flood_without_reading(&mut tls);
        tls
    });
    // Still connected, still not reading.
    let closed = wait_until(Duration::from_secs(30), || {
        server.handle().metrics().sessions_active == 0
    });
    let stats = server.handle().metrics();
    assert!(
        closed,
        "the session outlived its negotiation timer by far ({:?}): {stats}",
        started.elapsed()
    );
    assert_eq!(stats.event("negotiation_timeout"), 1, "{stats}");
    // Its last write never finished: the close shut the socket down.
    assert_eq!(stats.event("write_stalled_at_close"), 1, "{stats}");
    drop(tls);
}
