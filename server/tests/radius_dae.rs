#![cfg(feature = "runtime")]
//! Dynamic authorization (RFC 5176) end to end: sstpd in a network
//! namespace with `[radius.dae]` on its default port, sessions from the
//! protocol core's client role over real TLS, and the real `radclient` of
//! FreeRADIUS 3.2.1 as the Dynamic Authorization Client (it checks the
//! answers' Response Authenticator and Message-Authenticator itself).
//!
//! Needs `freeradius-utils` (scripts/test installs it) and root, like
//! every end-to-end test.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use sstpd::aaa::dae::Selector;
use sstpd::config::DaeClient;
use sstpd::testing::freeradius::{
    radclient_with, RadclientKind, RadclientOptions, RadclientOutput,
};
use sstpd::tls::certs::SelfSignedKey;

const SECRET: &str = "testing123";

/// A server whose DAE listener takes requests from loopback with
/// [`SECRET`]; the directory holds its certificate.
fn dae_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.radius.dae.client = vec![DaeClient {
        address: "127.0.0.1".parse().unwrap(),
        secret: sstpd::config::Secret(SECRET.into()),
    }];
    let server = TestServer::start(config);
    assert_eq!(
        server.handle().dae_addrs(),
        ["127.0.0.1:3799".parse::<SocketAddr>().unwrap()],
        "the default port"
    );
    (server, dir)
}

/// Runs radclient from the caller's thread's namespace, on a thread of its
/// own so the clients' runtime keeps running meanwhile.
async fn radclient(
    target: SocketAddr,
    kind: RadclientKind,
    secret: &str,
    attributes: &[(&str, &str)],
) -> RadclientOutput {
    radclient_signed(target, kind, secret, attributes, true).await
}

/// [`radclient`], with or without a Message-Authenticator.
async fn radclient_signed(
    target: SocketAddr,
    kind: RadclientKind,
    secret: &str,
    attributes: &[(&str, &str)],
    message_authenticator: bool,
) -> RadclientOutput {
    let secret = secret.to_owned();
    let attributes: Vec<(String, String)> = attributes
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let thread = std::thread::spawn(move || {
        let attributes: Vec<(&str, &str)> = attributes
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let options = RadclientOptions {
            message_authenticator,
            timeout: Duration::from_secs(2),
            ..RadclientOptions::default()
        };
        radclient_with(target, kind, &secret, &attributes, &options)
    });
    while !thread.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    thread
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("radclient sent nothing: {e}"))
}

fn by_user(user: &str) -> Selector {
    Selector {
        user_name: Some(user.into()),
        ..Selector::default()
    }
}

#[test]
fn disconnect_by_user_name_ends_every_session_of_that_user() {
    let (server, _dir) = dae_server();
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            let (a1, _) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let (a2, _) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let (b, inbox_b) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .unwrap();
            let registered = server.handle().find_sessions(&by_user("alice")).len();
            let answer = radclient(
                dae,
                RadclientKind::Disconnect,
                SECRET,
                &[
                    ("User-Name", "alice"),
                    // The clients' address, as sstpd sends it to RADIUS.
                    ("Calling-Station-Id", "127.0.0.1"),
                    ("NAS-Identifier", "sstpd"),
                ],
            )
            .await;
            let closed = a1.wait_closed(Duration::from_secs(10)).await
                && a2.wait_closed(Duration::from_secs(10)).await;
            let graceful = session_closed_by_server(&a1) && session_closed_by_server(&a2);
            // Bob's session is untouched.
            let bob_alive = !b.is_closed() && ping_gateway(&b, &inbox_b, 1, b"bob").await;
            let left = server.handle().find_sessions(&by_user("alice")).len();
            b.close(Duration::from_secs(5)).await;
            (registered, answer, closed, graceful, bob_alive, left)
        })
    });
    let (registered, answer, closed, graceful, bob_alive, left) = outcome;
    let stats = server.handle().metrics();
    assert_eq!(registered, 2, "{stats}");
    assert_eq!(
        answer.code.as_deref(),
        Some("Disconnect-ACK"),
        "{}",
        answer.output
    );
    assert_eq!(answer.get("Error-Cause"), None);
    assert!(closed, "alice's sessions did not end: {stats}");
    assert!(graceful, "closed with LCP Terminate and Call Disconnect");
    assert!(bob_alive, "{stats}");
    assert_eq!(left, 0, "closed sessions leave the registry");
    assert_eq!(stats.event("admin_reset"), 2, "{stats}");
    assert_eq!(stats.event("dae_disconnect_ack"), 1, "{stats}");
}

#[test]
fn disconnect_by_acct_session_id_ends_that_session_only() {
    let (server, _dir) = dae_server();
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            let (first, _) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let (second, inbox) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            // The first session's Acct-Session-Id, found by its address.
            let first_ip = first.address().unwrap();
            let found = server.handle().find_sessions(&Selector {
                framed_ip: Some(first_ip),
                ..Selector::default()
            });
            assert_eq!(found.len(), 1, "{found:?}");
            let id = found[0].acct_session_id.clone();
            let answer = radclient(
                dae,
                RadclientKind::Disconnect,
                SECRET,
                &[("Acct-Session-Id", &format!("\"{id}\""))],
            )
            .await;
            let closed = first.wait_closed(Duration::from_secs(10)).await;
            let graceful = session_closed_by_server(&first);
            let other_alive = !second.is_closed() && ping_gateway(&second, &inbox, 2, b"2nd").await;
            // Sent again, the same id names no session any more.
            let again = radclient(
                dae,
                RadclientKind::Disconnect,
                SECRET,
                &[("Acct-Session-Id", &format!("\"{id}\""))],
            )
            .await;
            second.close(Duration::from_secs(5)).await;
            (answer, closed, graceful, other_alive, again)
        })
    });
    let (answer, closed, graceful, other_alive, again) = outcome;
    let stats = server.handle().metrics();
    assert_eq!(
        answer.code.as_deref(),
        Some("Disconnect-ACK"),
        "{}",
        answer.output
    );
    assert!(closed && graceful, "{stats}");
    assert!(other_alive, "only the named session ends: {stats}");
    assert_eq!(
        again.code.as_deref(),
        Some("Disconnect-NAK"),
        "{}",
        again.output
    );
    assert_eq!(again.get("Error-Cause"), Some("Session-Context-Not-Found"));
    assert_eq!(stats.event("admin_reset"), 1, "{stats}");
}

#[test]
fn coa_session_timeout_ends_the_session_after_the_new_timeout() {
    let (server, _dir) = dae_server();
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            let (client, inbox) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .unwrap();
            let ip = client.address().unwrap().to_string();
            let answer = radclient(
                dae,
                RadclientKind::Coa,
                SECRET,
                &[("Framed-IP-Address", &ip), ("Session-Timeout", "2")],
            )
            .await;
            let acked = Instant::now();
            // Still up within the new timeout ...
            let alive_before = ping_gateway(&client, &inbox, 3, b"before").await
                && acked.elapsed() < Duration::from_secs(2);
            // ... and ended by it.
            let closed = client.wait_closed(Duration::from_secs(10)).await;
            let after = acked.elapsed();
            (
                answer,
                alive_before,
                closed,
                after,
                session_closed_by_server(&client),
            )
        })
    });
    let (answer, alive_before, closed, after, graceful) = outcome;
    let stats = server.handle().metrics();
    assert_eq!(answer.code.as_deref(), Some("CoA-ACK"), "{}", answer.output);
    assert!(alive_before, "{stats}");
    assert!(closed && graceful, "{stats}");
    // The ACK left after the worker applied the change, so the session
    // may end a little less than 2 s after radclient saw it; LCP Terminate
    // and Call Disconnect take a moment more.
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(5),
        "ended {after:?} after the CoA-ACK"
    );
    assert_eq!(stats.event("session_timeout"), 1, "{stats}");
    assert_eq!(stats.event("dae_coa_ack"), 1, "{stats}");
}

#[test]
fn refusals_get_a_nak_with_its_error_cause_or_no_answer() {
    let (server, _dir) = dae_server();
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            let (client, inbox) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let mut answers = Vec::new();
            for (kind, secret, attributes) in [
                // No such session.
                (
                    RadclientKind::Disconnect,
                    SECRET,
                    vec![("User-Name", "carol")],
                ),
                // Nothing that names a session.
                (
                    RadclientKind::Disconnect,
                    SECRET,
                    vec![("NAS-Identifier", "sstpd")],
                ),
                // Another NAS.
                (
                    RadclientKind::Disconnect,
                    SECRET,
                    vec![("User-Name", "alice"), ("NAS-Identifier", "other-nas")],
                ),
                // A change sstpd does not make.
                (
                    RadclientKind::Coa,
                    SECRET,
                    vec![("User-Name", "alice"), ("Filter-Id", "gold")],
                ),
                // The wrong secret: dropped, no answer.
                (
                    RadclientKind::Disconnect,
                    "not-the-secret",
                    vec![("User-Name", "alice")],
                ),
            ] {
                answers.push(radclient(dae, kind, secret, &attributes).await);
            }
            // No Message-Authenticator (required by default): dropped.
            let bare = [("User-Name", "alice")];
            answers
                .push(radclient_signed(dae, RadclientKind::Disconnect, SECRET, &bare, false).await);
            let alive = !client.is_closed() && ping_gateway(&client, &inbox, 4, b"alive").await;
            client.close(Duration::from_secs(5)).await;
            (answers, alive)
        })
    });
    let (answers, alive) = outcome;
    let stats = server.handle().metrics();
    let got: Vec<(Option<&str>, Option<&str>)> = answers
        .iter()
        .map(|a| (a.code.as_deref(), a.get("Error-Cause")))
        .collect();
    assert_eq!(
        got,
        [
            (Some("Disconnect-NAK"), Some("Session-Context-Not-Found")),
            (Some("Disconnect-NAK"), Some("Missing-Attribute")),
            (Some("Disconnect-NAK"), Some("NAS-Identification-Mismatch")),
            (Some("CoA-NAK"), Some("Unsupported-Attribute")),
            (None, None),
            (None, None),
        ],
        "{}",
        answers.last().unwrap().output
    );
    assert!(alive, "no refusal touched the session: {stats}");
    assert_eq!(stats.event("admin_reset"), 0, "{stats}");
    assert_eq!(stats.event("dae_bad_authenticator"), 1, "{stats}");
    assert_eq!(
        stats.event("dae_missing_message_authenticator"),
        1,
        "{stats}"
    );
    assert_eq!(
        stats.event("dae_nak_session_context_not_found"),
        1,
        "{stats}"
    );
    assert_eq!(stats.event("dae_nak_missing_attribute"), 1, "{stats}");
}

#[test]
fn coa_idle_timeout_ends_an_idle_session() {
    let (server, _dir) = dae_server();
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let outcome = server.ns.run(|| {
        tokio_uring::start(async {
            let (client, _) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .unwrap();
            let answer = radclient(
                dae,
                RadclientKind::Coa,
                SECRET,
                &[("User-Name", "alice"), ("Idle-Timeout", "1")],
            )
            .await;
            let acked = Instant::now();
            // Nothing flows: ended at the first check a second after.
            let closed = client.wait_closed(Duration::from_secs(10)).await;
            (
                answer,
                closed,
                acked.elapsed(),
                session_closed_by_server(&client),
            )
        })
    });
    let (answer, closed, after, graceful) = outcome;
    let stats = server.handle().metrics();
    assert_eq!(answer.code.as_deref(), Some("CoA-ACK"), "{}", answer.output);
    assert!(closed && graceful, "{stats}");
    assert!(
        after < Duration::from_secs(5),
        "ended {after:?} after the CoA-ACK"
    );
    assert_eq!(stats.event("idle_timeout"), 1, "{stats}");
}
