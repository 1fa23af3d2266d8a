#![cfg(feature = "runtime")]
//! Secure defaults and documented policies (issue 12, defect 10), at the
//! real server or binary in a network namespace: traffic between clients,
//! packets beyond the MRU, a second login of a fixed-address user, users
//! reloaded from the configuration file on SIGHUP, and a configuration
//! without a certificate.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use sstpd::config::{InlineUser, Secret};
use sstpd::tls::certs::SelfSignedKey;

/// Alice pings bob's tunnel address; whether bob saw a request.
fn alice_pings_bob(server: &TestServer) -> (bool, bool) {
    let addr = server.addr;
    server.run_clients(move || async move {
        let (a, inbox_a) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let (b, inbox_b) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        let (ip_a, ip_b) = (a.address().unwrap(), b.address().unwrap());
        for seq in 0..3u16 {
            a.send_ip(&icmp_echo(8, ip_a, ip_b, 5, seq, b"a to b"))
                .unwrap();
        }
        let b_saw = wait_for(&inbox_b, Duration::from_secs(1), |p| {
            parse_echo(p).is_some_and(|e| e.kind == 8 && e.src == ip_a && e.dst == ip_b)
        })
        .await;
        // The gateway stays reachable either way.
        let gateway = ping_gateway(&a, &inbox_a, 6, b"gateway").await;
        a.close(Duration::from_secs(5)).await;
        b.close(Duration::from_secs(5)).await;
        (b_saw, gateway)
    })
}

#[test]
fn client_to_client_traffic_is_denied_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path(), SelfSignedKey::EcdsaP256, 2));
    let (b_saw, gateway) = alice_pings_bob(&server);
    let stats = server.handle().metrics();
    assert!(!b_saw, "a packet reached another client: {stats}");
    assert!(gateway, "{stats}");
    assert_eq!(stats.event("client_to_client_denied"), 3, "{stats}");
}

#[test]
fn client_to_client_traffic_flows_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.ipv4.client_to_client = sstpd::config::ClientToClient::Allow;
    let server = TestServer::start(config);
    let (b_saw, gateway) = alice_pings_bob(&server);
    let stats = server.handle().metrics();
    assert!(b_saw, "{stats}");
    assert!(gateway, "{stats}");
    assert_eq!(stats.event("client_to_client_denied"), 0, "{stats}");
}

#[test]
fn packets_larger_than_the_mru_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    let mru = usize::from(config.ppp.mru);
    let server = TestServer::start(config);
    let addr = server.addr;
    let (at_mru, beyond) = server.run_clients(move || async move {
        let (client, inbox) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let me = client.address().unwrap();
        // An echo request of exactly the MRU (IP header 20, ICMP 8).
        let fits = vec![b'm'; mru - 28];
        let at_mru = ping_gateway(&client, &inbox, 1, &fits).await;
        let too_big = vec![b'x'; mru - 28 + 1];
        client
            .send_ip(&icmp_echo(8, me, GATEWAY, 2, 0, &too_big))
            .unwrap();
        let beyond = wait_for(&inbox, Duration::from_secs(1), |p| {
            parse_echo(p).is_some_and(|e| e.id == 2)
        })
        .await;
        client.close(Duration::from_secs(5)).await;
        (at_mru, beyond)
    });
    let stats = server.handle().metrics();
    assert!(at_mru, "a packet of the MRU passes: {stats}");
    assert!(!beyond, "a packet beyond the MRU was answered: {stats}");
    assert_eq!(stats.event("ip_exceeds_mru"), 1, "{stats}");
}

#[test]
fn a_second_login_of_a_fixed_address_user_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let fixed = Ipv4Addr::new(10, 99, 0, 77);
    config.users.local.push(InlineUser {
        name: "carol".into(),
        password: Secret("carol-secret".into()),
        ip: Some(fixed),
    });
    let server = TestServer::start(config);
    let addr = server.addr;
    let outcome = server.run_clients(move || async move {
        let carol = mschapv2_options(addr, "carol", "carol-secret");
        let (old, _) = connect(&carol).await.unwrap();
        let old_ip = old.address();
        // The same user again (another device, or a reconnect before the
        // old connection timed out).
        let (new, inbox) = connect(&carol).await.expect("the second login gets in");
        let new_ip = new.address();
        let old_closed = old.wait_closed(Duration::from_secs(10)).await;
        let old_reason = old.close_reason().map(|r| r.as_str());
        let pinged = ping_gateway(&new, &inbox, 3, b"new session").await;
        new.close(Duration::from_secs(5)).await;
        // Both gone: the address is free again for carol.
        let (again, _) = connect(&carol).await.expect("carol again");
        let again_ip = again.address();
        again.close(Duration::from_secs(5)).await;
        (old_ip, new_ip, old_closed, old_reason, pinged, again_ip)
    });
    let (old_ip, new_ip, old_closed, old_reason, pinged, again_ip) = outcome;
    let stats = server.handle().metrics();
    assert_eq!(old_ip, Some(fixed));
    assert_eq!(new_ip, Some(fixed), "{stats}");
    assert!(old_closed, "the old session was not closed: {stats}");
    assert!(
        matches!(old_reason, Some("peer_terminated" | "peer_disconnect")),
        "closed by the server, not timed out: {old_reason:?}"
    );
    assert!(pinged, "{stats}");
    assert_eq!(again_ip, Some(fixed), "{stats}");
    assert_eq!(stats.event("session_taken_over"), 1, "{stats}");
    assert_eq!(stats.event("route_taken_over"), 1, "{stats}");
}

#[test]
fn sighup_rereads_inline_users_and_closes_sessions_of_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let port = free_port();
    config.server.listen = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    let config_path = dir.path().join("sstpd.toml");
    std::fs::write(&config_path, config_toml(&config, "")).unwrap();
    let ns = sstpd::testing::netns::NetNs::new("sstpd-policy").unwrap();
    let child = spawn_sstpd_in(&ns, env!("CARGO_BIN_EXE_sstpd"), &config_path);
    let pid = child.id() as i32;
    // The same file without bob, with carol.
    config.users.local.retain(|u| u.name != "bob");
    config.users.local.push(InlineUser {
        name: "carol".into(),
        password: Secret("carol-secret".into()),
        ip: None,
    });
    let reloaded = config_toml(&config, "");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let outcome = ns.run(move || {
        tokio_uring::start(async move {
            let (alice, alice_inbox) =
                connect_when_up(&mschapv2_options(addr, "alice", "alice-secret"), 100).await;
            let (bob, _) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .unwrap();
            let carol_before = connect(&mschapv2_options(addr, "carol", "carol-secret"))
                .await
                .is_ok();
            std::fs::write(&config_path, reloaded).unwrap();
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGHUP) };
            let bob_closed = bob.wait_closed(Duration::from_secs(10)).await;
            let carol_after = connect(&mschapv2_options(addr, "carol", "carol-secret"))
                .await
                .is_ok();
            let bob_again = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .is_ok();
            let alice_alive =
                !alice.is_closed() && ping_gateway(&alice, &alice_inbox, 4, b"still here").await;
            (
                carol_before,
                bob_closed,
                carol_after,
                bob_again,
                alice_alive,
            )
        })
    });
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (carol_before, bob_closed, carol_after, bob_again, alice_alive) = outcome;
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!carol_before, "carol is not a user yet");
    assert!(
        carol_after,
        "SIGHUP did not add carol from the file; log:\n{log}"
    );
    assert!(!bob_again, "bob was removed");
    assert!(
        bob_closed,
        "bob's session outlived his account; log:\n{log}"
    );
    assert!(alice_alive, "alice's session was disturbed; log:\n{log}");
    assert!(log.contains("user_removed"), "log:\n{log}");
}

/// Runs the binary on `toml` in a namespace for at most `wait`; its exit
/// status (None if still running, then stopped) and log.
fn run_binary(toml: &str, wait: Duration) -> (Option<std::process::ExitStatus>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sstpd.toml");
    std::fs::write(
        &path,
        toml.replace("STATE", &dir.path().display().to_string()),
    )
    .unwrap();
    let ns = sstpd::testing::netns::NetNs::new("sstpd-policy").unwrap();
    let mut child = spawn_sstpd_in(&ns, env!("CARGO_BIN_EXE_sstpd"), &path);
    let status = wait_until(wait, || child.try_wait().unwrap().is_some())
        .then(|| child.try_wait().unwrap())
        .flatten();
    if status.is_none() {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (status, log)
}

#[test]
fn a_configuration_without_a_certificate_refuses_to_start_unless_self_signed_is_asked_for() {
    let base = "[server]\nlisten = [\"127.0.0.1:4443\"]\nworkers = 1\nstate_dir = \"STATE\"\n\
                [[users.local]]\nname = \"a\"\npassword = \"b\"\n";
    let (status, log) = run_binary(base, Duration::from_secs(5));
    let status = status.expect("sstpd kept running without a certificate");
    assert!(!status.success(), "{log}");
    assert!(log.contains("tls.self_signed = true"), "{log}");

    let explicit = base.replace(
        "[[users.local]]",
        "[tls]\nself_signed = true\n[[users.local]]",
    );
    let (status, log) = run_binary(&explicit, Duration::from_secs(2));
    assert_eq!(status, None, "sstpd did not keep running: {log}");
    assert!(log.contains("sstpd ready"), "{log}");
}
