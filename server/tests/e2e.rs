#![cfg(feature = "runtime")]
//! sstpd end to end: the real server (TLS, io_uring workers, multi-queue
//! TUN) in a network namespace, and clients running the protocol core's
//! client role over real TLS connections.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use sstpd::client::ConnectError;
use sstpd::config::{TlsVersion, TunOffload};
use sstpd::proto::auth::{AuthFailure, AuthProtocol};
use sstpd::proto::ppp::PppCloseReason;
use sstpd::proto::session::CloseReason;
use sstpd::tls::certs::SelfSignedKey;

fn tls_pair(v: TlsVersion) -> (TlsVersion, TlsVersion) {
    (v, v)
}

#[test]
fn sessions_come_up_with_pap_and_mschapv2_over_tls12_and_tls13_with_rsa_and_ecdsa() {
    for key in [SelfSignedKey::Rsa2048, SelfSignedKey::EcdsaP256] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), key, 2);
        // PAP is off by default (it binds with a zero key): enabled here
        // to test it.
        config.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap];
        let server = TestServer::start(config);
        let addr = server.addr;
        let results = server.run_clients(move || async move {
            let mut results = Vec::new();
            for tls in [TlsVersion::Tls12, TlsVersion::Tls13] {
                for method in [AuthProtocol::Pap, AuthProtocol::MsChapV2] {
                    let options =
                        client_options(addr, "alice", "alice-secret", tls_pair(tls), &[method]);
                    let (client, inbox) = connect(&options)
                        .await
                        .unwrap_or_else(|e| panic!("{key:?} {tls:?} {method}: {e}"));
                    let id = results.len() as u16;
                    let pinged = ping_gateway(
                        &client,
                        &inbox,
                        id,
                        format!("{key:?}/{tls:?}/{method}").as_bytes(),
                    )
                    .await;
                    client.close(Duration::from_secs(5)).await;
                    results.push((
                        format!("{key:?} {tls:?} {method}"),
                        pinged,
                        client.is_closed(),
                    ));
                }
            }
            results
        });
        for (case, pinged, closed) in results {
            assert!(pinged, "{case}: no echo reply from the gateway");
            assert!(closed, "{case}: graceful close did not finish");
        }
        let stats = server.handle().metrics();
        assert_eq!(stats.sessions_established, 4, "{stats}");
        assert!(stats.rx_packets >= 4 && stats.tx_packets >= 4, "{stats}");
    }
}

#[test]
fn two_clients_ping_each_other_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    // Client-to-client traffic is denied by default (tests/policy.rs).
    config.ipv4.client_to_client = sstpd::config::ClientToClient::Allow;
    let server = TestServer::start(config);
    let addr = server.addr;
    let (a_got_reply, b_saw_request) = server.run_clients(move || async move {
        let options_a = mschapv2_options(addr, "alice", "alice-secret");
        let options_b = mschapv2_options(addr, "bob", "bob-secret");
        let (a, inbox_a) = connect(&options_a).await.unwrap();
        let (b, inbox_b) = connect(&options_b).await.unwrap();
        let (ip_a, ip_b) = (a.address().unwrap(), b.address().unwrap());
        assert_ne!(ip_a, ip_b);
        // B answers echo requests the way a host would.
        let mut b_saw_request = false;
        let mut a_got_reply = false;
        for seq in 0..5u16 {
            a.send_ip(&icmp_echo(8, ip_a, ip_b, 77, seq, b"a to b"))
                .unwrap();
            let got = wait_for(&inbox_b, Duration::from_secs(1), |p| {
                parse_echo(p)
                    .is_some_and(|e| e.kind == 8 && e.src == ip_a && e.dst == ip_b && e.seq == seq)
            })
            .await;
            if !got {
                continue;
            }
            b_saw_request = true;
            b.send_ip(&icmp_echo(0, ip_b, ip_a, 77, seq, b"a to b"))
                .unwrap();
            if wait_for(&inbox_a, Duration::from_secs(1), |p| {
                parse_echo(p)
                    .is_some_and(|e| e.kind == 0 && e.src == ip_b && e.dst == ip_a && e.seq == seq)
            })
            .await
            {
                a_got_reply = true;
                break;
            }
        }
        (a_got_reply, b_saw_request)
    });
    assert!(b_saw_request, "client B never saw A's echo request");
    assert!(a_got_reply, "client A never got B's reply");
}

/// A client session that is up and idle waits for the server without a
/// read buffer (a load generator's held sessions keep none), and still
/// reads what comes after: a ping through the server to another client.
#[test]
fn idle_client_sessions_wait_without_a_read_buffer_and_still_get_their_packets() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.ipv4.client_to_client = sstpd::config::ClientToClient::Allow;
    let server = TestServer::start(config);
    let addr = server.addr;
    let (quiet, got) = server.run_clients(move || async move {
        let (a, _inbox_a) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let (b, inbox_b) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        let quiet = a.reads_quietly() && b.reads_quietly();
        let (ip_a, ip_b) = (a.address().unwrap(), b.address().unwrap());
        let mut got = false;
        for seq in 0..5u16 {
            a.send_ip(&icmp_echo(8, ip_a, ip_b, 78, seq, b"to a quiet session"))
                .unwrap();
            if wait_for(&inbox_b, Duration::from_secs(1), |p| {
                parse_echo(p).is_some_and(|e| e.kind == 8 && e.src == ip_a && e.seq == seq)
            })
            .await
            {
                got = true;
                break;
            }
        }
        (quiet, got)
    });
    assert!(
        quiet,
        "a session that is up and idle still reads with a buffer"
    );
    assert!(got, "the quiet session never got the packet");
}

#[test]
fn wrong_password_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap];
    let server = TestServer::start(config);
    let addr = server.addr;
    let outcomes = server.run_clients(move || async move {
        let mut outcomes = Vec::new();
        for method in [AuthProtocol::MsChapV2, AuthProtocol::Pap] {
            let options = client_options(
                addr,
                "alice",
                "not-her-password",
                (TlsVersion::Tls12, TlsVersion::Tls13),
                &[method],
            );
            outcomes.push((method, connect(&options).await.map(|_| ()).err()));
        }
        outcomes
    });
    for (method, error) in outcomes {
        match error {
            Some(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(
                AuthFailure::Rejected { .. },
            )))) => {}
            Some(ConnectError::Closed(CloseReason::Sstp(_))) => {}
            other => panic!("{method}: expected an authentication failure, got {other:?}"),
        }
    }
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, 0, "{stats}");
    // PAP's one attempt fails the phase; MS-CHAPv2 spends the connection's
    // three (ppp.auth_max_attempts). Every attempt is counted by method.
    assert_eq!(stats.event("auth_failed"), 1, "{stats}");
    assert_eq!(stats.event("auth_attempts_exhausted"), 1, "{stats}");
    assert_eq!(stats.event("auth_failure_pap"), 1, "{stats}");
    assert_eq!(stats.event("auth_failure_mschapv2"), 3, "{stats}");
}

/// With `tun.steering` (the default) every reply reaches the queue of the
/// worker that owns its session: nothing is handed over.
#[test]
fn two_hundred_sessions_on_two_workers_each_get_their_own_packets() {
    let (handed_over, stats) =
        sessions_on_two_workers_get_their_own_packets(TunOffload::Auto, true);
    assert_eq!(handed_over, 0, "steered to their owners: {stats}");
    for label in [
        "steering_map",
        "steering_program",
        "steering_attach",
        "steer",
        "forget",
    ] {
        assert_eq!(stats.event(label), 0, "{label}: {stats}");
    }
}

/// Without the steering the tun driver's flow hash spreads the replies
/// over both queues: those a worker reads for the other worker's sessions
/// are handed over (`worker::handover`).
#[test]
fn two_hundred_sessions_on_two_workers_each_get_their_own_packets_handed_over() {
    let (handed_over, stats) =
        sessions_on_two_workers_get_their_own_packets(TunOffload::Auto, false);
    assert!(handed_over > 0, "some replies crossed workers: {stats}");
}

/// The same without segmentation offload or steering: the packets handed
/// from one worker to the other carry no virtio-net header.
#[test]
fn two_hundred_sessions_on_two_workers_each_get_their_own_packets_without_tun_offload() {
    let (handed_over, stats) =
        sessions_on_two_workers_get_their_own_packets(TunOffload::Off, false);
    assert!(handed_over > 0, "some replies crossed workers: {stats}");
}

/// Two hundred sessions spread over two workers each ping the gateway,
/// and each session gets exactly its own replies, however they reached its
/// worker. Returns the packets handed between workers in the counted
/// round, and the counters at the end.
///
/// The counted round pings another address of the server's namespace
/// than a first round did: before a session's first reply the server may
/// not yet have read the client's last IPCP message (its address is not
/// routed or steered yet), and for the tun driver's own choice each round
/// is a flow it has not seen (its flow table learns a flow from the
/// request the owner writes, after the first reply has been queued).
/// An address of the server's namespace (on `lo`) besides the gateway.
const OTHER_LOCAL: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 1);

fn sessions_on_two_workers_get_their_own_packets(
    offload: TunOffload,
    steering: bool,
) -> (u64, sstpd::metrics::MetricsSnapshot) {
    const SESSIONS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.tun.offload = offload;
    config.tun.steering = steering;
    // Waves of 50 setups from one address: more than the default
    // per-source cap on connections not yet authenticated.
    config.server.max_preauth_per_source = 64;
    numbered_users(&mut config, SESSIONS);
    let server = TestServer::start(config);
    let out = server
        .ns
        .command("ip")
        .args(["addr", "add", &format!("{OTHER_LOCAL}/32"), "dev", "lo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let addr = server.addr;
    let counters = server.handle().counters();
    let (connected, verified, handed_over) = server.run_clients(move || async move {
        // Connect in waves of 50 to keep setup bounded on two cores.
        let mut clients = Vec::new();
        for wave in 0..SESSIONS / 50 {
            let mut pending = Vec::new();
            for i in wave * 50..(wave + 1) * 50 {
                let options = client_options(
                    addr,
                    &format!("user{i}"),
                    &format!("pw{i}"),
                    (TlsVersion::Tls13, TlsVersion::Tls13),
                    &[AuthProtocol::MsChapV2],
                );
                pending.push(tokio_uring::spawn(
                    async move { (i, connect(&options).await) },
                ));
            }
            for handle in pending {
                let (i, result) = handle.await.unwrap();
                let (client, inbox) = result.unwrap_or_else(|e| panic!("session {i}: {e}"));
                clients.push((i, client, inbox));
            }
        }
        let connected = clients.len();
        // A first round trip each: the server has routed every address.
        for (i, client, inbox) in &clients {
            let me = client.address().unwrap();
            let echo = icmp_echo(8, me, GATEWAY, *i as u16, 100, b"first");
            client.send_ip(&echo).unwrap();
            let answered = wait_for(inbox, Duration::from_secs(10), |p| {
                parse_echo(p).is_some_and(|e| e.kind == 0)
            })
            .await;
            assert!(answered, "session {i}: no first echo reply");
            inbox.borrow_mut().clear();
        }
        let handed_over_before = counters.snapshot().handoff_packets;
        // Every session pings the other address with its own index as
        // payload, all at once; each must get back exactly its own.
        for (i, client, _) in &clients {
            let me = client.address().unwrap();
            let payload = format!("session-{i}");
            for seq in 0..3u16 {
                client
                    .send_ip(&icmp_echo(
                        8,
                        me,
                        OTHER_LOCAL,
                        *i as u16,
                        seq,
                        payload.as_bytes(),
                    ))
                    .unwrap();
            }
        }
        // All three replies of every session in, before the count.
        let replies = |inbox: &Inbox| {
            inbox
                .borrow()
                .iter()
                .filter(|p| parse_echo(p).is_some_and(|e| e.kind == 0))
                .count()
        };
        for (i, _, inbox) in &clients {
            let all = wait_for(inbox, Duration::from_secs(10), |_| replies(inbox) >= 3).await;
            assert!(all, "session {i}: {} of 3 replies", replies(inbox));
        }
        let handed_over = counters.snapshot().handoff_packets - handed_over_before;
        let mut verified = 0;
        for (i, client, inbox) in &clients {
            let me = client.address().unwrap();
            let payload = format!("session-{i}");
            let ok = wait_for(inbox, Duration::from_secs(10), |p| {
                parse_echo(p).is_some_and(|e| e.kind == 0)
            })
            .await;
            let all_mine = inbox.borrow().iter().all(|p| {
                parse_echo(p).is_some_and(|e| {
                    e.dst == me && e.id == *i as u16 && e.payload == payload.as_bytes()
                })
            });
            assert!(all_mine, "session {i} received another session's packet");
            if ok {
                verified += 1;
            }
        }
        for (_, client, _) in &clients {
            client.close(Duration::from_secs(5)).await;
        }
        (connected, verified, handed_over)
    });
    assert_eq!(connected, SESSIONS);
    assert_eq!(verified, SESSIONS, "every session got its echo reply");
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, SESSIONS as u64, "{stats}");
    (handed_over, stats)
}

#[test]
fn a_client_spoofing_its_source_gets_nothing_through() {
    spoofed_sources_get_nothing_through(TunOffload::Off);
}

/// With segmentation offload on the TUN device the core still judges every
/// packet before the coalescer sees it, and the honest ping passes both
/// ways behind virtio-net headers.
#[test]
fn a_client_spoofing_its_source_gets_nothing_through_with_tun_offload() {
    let stats = spoofed_sources_get_nothing_through(TunOffload::Auto);
    assert_eq!(
        stats.event("vnet_hdr") + stats.event("tunsetoffload"),
        0,
        "the kernel took the offloads: {stats}"
    );
}

/// Where the kernel refuses `TUNSETOFFLOAD`, `tun.offload = "auto"` falls
/// back to the plain path: the refusal is counted by its step and the
/// device carries traffic without virtio-net headers. This kernel takes
/// the offloads, so a seccomp filter on the server's threads makes that
/// one ioctl fail with `EINVAL`, as a kernel without TSO on TUN would.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_kernel_refusing_tun_offload_leaves_the_plain_path_carrying_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.tun.offload = TunOffload::Auto;
    let tun_name = config.tun.name.clone();
    let server = TestServer::start_after(config, refuse_tunsetoffload_on_this_thread);
    let addr = server.addr;
    let answered = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "alice", "alice-secret");
        let (client, inbox) = connect(&options).await.unwrap();
        ping_gateway(&client, &inbox, 10, b"plain path").await
    });
    assert!(answered, "the plain path must carry the ping");
    let stats = server.handle().metrics();
    assert_eq!(stats.event("tunsetoffload"), 1, "{stats}");
    assert_eq!(stats.event("vnet_hdr"), 0, "{stats}");
    let link = server
        .ns
        .command("ip")
        .args(["-details", "link", "show", &tun_name])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("vnet_hdr off"), "{link}");
}

/// Installs a seccomp filter on the calling thread (and the threads it
/// starts afterwards) under which `ioctl(fd, TUNSETOFFLOAD, ...)` fails
/// with `EINVAL`; every other system call is allowed.
#[cfg(target_arch = "x86_64")]
fn refuse_tunsetoffload_on_this_thread() {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // struct seccomp_data: nr at 0, arch at 4, args[1]'s low half at 24.
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut program = [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 5, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 3, libc::SYS_ioctl as u32),
        op(LD_W_ABS, 0, 0, 24),
        op(JEQ_K, 0, 1, libc::TUNSETOFFLOAD as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl with the documented arguments; the program outlives
    // the call, which copies it into the kernel.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let installed = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        );
        assert_eq!(installed, 0, "{}", std::io::Error::last_os_error());
    }
}

fn spoofed_sources_get_nothing_through(offload: TunOffload) -> sstpd::metrics::MetricsSnapshot {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.tun.offload = offload;
    let server = TestServer::start(config);
    let addr = server.addr;
    let (spoof_answered, honest_answered) = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "alice", "alice-secret");
        let (client, inbox) = connect(&options).await.unwrap();
        let me = client.address().unwrap();
        let forged = Ipv4Addr::new(10, 99, 0, 200);
        assert_ne!(forged, me);
        for seq in 0..5 {
            client
                .send_ip(&icmp_echo(8, forged, GATEWAY, 9, seq, b"forged"))
                .unwrap();
        }
        let spoof_answered = wait_for(&inbox, Duration::from_millis(500), |_| true).await;
        let honest_answered = ping_gateway(&client, &inbox, 10, b"honest").await;
        (spoof_answered, honest_answered)
    });
    assert!(!spoof_answered, "a spoofed packet got an answer");
    assert!(honest_answered, "the same client's honest ping must work");
    let stats = server.handle().metrics();
    assert_eq!(stats.event("spoofed_source"), 5, "{stats}");
    stats
}

#[test]
fn sigterm_disconnects_every_session_cleanly() {
    // The real binary, in a namespace, stopped with SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let (ns, mut child, addr) = spawn_sstpd(env!("CARGO_BIN_EXE_sstpd"), dir.path(), config);
    let pid = child.id();
    let ns_ref = &ns;
    let reasons = ns.run(move || {
        tokio_uring::start(async move {
            // Wait for the listener.
            let options = mschapv2_options(addr, "alice", "alice-secret");
            let mut clients = vec![connect_when_up(&options, 100).await];
            for user in ["bob", "alice", "bob"] {
                let password = format!("{user}-secret");
                let options = mschapv2_options(addr, user, &password);
                clients.push(connect(&options).await.unwrap());
            }
            let rsts_before = tcp_out_rsts(ns_ref);
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let mut reasons = Vec::new();
            for (client, _) in &clients {
                assert!(
                    client.wait_closed(Duration::from_secs(10)).await,
                    "session not closed after SIGTERM"
                );
                reasons.push(client.close_reason().map(|r| r.as_str()).unwrap_or("none"));
            }
            (reasons, rsts_before)
        })
    });
    let (reasons, rsts_before) = reasons;
    for reason in &reasons {
        assert!(
            ["peer_terminated", "peer_disconnect"].contains(reason),
            "session ended with {reason}, not a clean disconnect"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sstpd did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("sstpd stopped"), "log:\n{log}");
    // Both ends closed in order (close_notify and FIN each way, the closer
    // lingering for the other's): no TCP reset in the namespace.
    assert_eq!(tcp_out_rsts(&ns), rsts_before, "TCP resets were sent");
}

/// The namespace's count of TCP resets sent (`OutRsts` in /proc/net/snmp).
fn tcp_out_rsts(ns: &sstpd::testing::netns::NetNs) -> u64 {
    let output = ns
        .command("cat")
        .arg("/proc/net/snmp")
        .output()
        .expect("read /proc/net/snmp in the namespace");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (
        tcp.next().expect("Tcp header"),
        tcp.next().expect("Tcp values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutRsts")
        .and_then(|(_, value)| value.parse().ok())
        .expect("OutRsts in /proc/net/snmp")
}

/// An ICMPv6 echo request with a valid checksum.
fn icmpv6_echo(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![128, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&1u16.to_be_bytes());
    icmp.extend_from_slice(payload);
    let checksum = sstpd::proto::ndp::icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&icmp);
    p
}

#[test]
fn ipv6_clients_get_a_prefix_by_router_advertisement_and_reach_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.ipv6.enabled = true;
    let gateway6: std::net::Ipv6Addr = "fd99::1".parse().unwrap();
    config.ipv6.gateway = Some(gateway6);
    let server = TestServer::start(config);
    let addr = server.addr;
    let results = server.run_clients(move || async move {
        let mut results = Vec::new();
        for (user, password) in USERS {
            let options = mschapv2_options(addr, user, password);
            let (client, inbox) = connect(&options).await.unwrap();
            let global = client
                .wait_ipv6(Duration::from_secs(5))
                .await
                .expect("a prefix was announced");
            let mut answered = false;
            for _ in 0..5 {
                client
                    .send_ip(&icmpv6_echo(global, gateway6, 6, user.as_bytes()))
                    .unwrap();
                answered = wait_for(&inbox, Duration::from_secs(1), |p| {
                    p.len() > 48
                        && p[0] >> 4 == 6
                        && p[6] == 58
                        && p[40] == 129
                        && p[8..24] == gateway6.octets()
                        && p[24..40] == global.octets()
                        && p.ends_with(user.as_bytes())
                })
                .await;
                if answered {
                    break;
                }
            }
            results.push((global, answered));
        }
        results
    });
    let (a, b) = (results[0].0, results[1].0);
    assert_eq!(a.segments()[..3], [0xfd99, 0, 0], "{a} is inside fd99::/48");
    assert_ne!(
        a.segments()[..4],
        b.segments()[..4],
        "each session has its own /64"
    );
    for (global, answered) in results {
        assert!(answered, "{global}: no ICMPv6 echo reply from the gateway");
    }
}

#[test]
fn chap_secrets_fixed_addresses_are_honoured_and_reload_adds_users() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.users.local.clear();
    let secrets = dir.path().join("chap-secrets");
    std::fs::write(
        &secrets,
        "# client server secret ip\nalice * alice-secret 10.99.0.77\ncarol * \"carol secret\" *\n",
    )
    .unwrap();
    config.users.chap_secrets = Some(secrets.clone());
    let server = TestServer::start(config);
    let addr = server.addr;
    let options = |user: &str, password: &str| mschapv2_options(addr, user, password);
    let (alice, carol, dave) = (
        options("alice", "alice-secret"),
        options("carol", "carol secret"),
        options("dave", "dave-secret"),
    );
    let (alice_ip, carol_ok, dave_before) = server.run_clients({
        let (alice, carol, dave) = (alice.clone(), carol.clone(), dave.clone());
        move || async move {
            let (a, _) = connect(&alice).await.unwrap();
            let carol_ok = connect(&carol).await.is_ok();
            let dave_before = connect(&dave).await.is_ok();
            (a.address(), carol_ok, dave_before)
        }
    });
    assert_eq!(
        alice_ip,
        Some(Ipv4Addr::new(10, 99, 0, 77)),
        "fixed address from chap-secrets"
    );
    assert!(carol_ok, "quoted secret with a space");
    assert!(!dave_before, "dave is not a user yet");

    std::fs::write(
        &secrets,
        "alice * alice-secret 10.99.0.77\ndave * dave-secret *\n",
    )
    .unwrap();
    server.handle().reload().expect("reload");
    let (dave_after, carol_after) = server.run_clients(move || async move {
        (connect(&dave).await.is_ok(), connect(&carol).await.is_ok())
    });
    assert!(dave_after, "dave can log in after the reload");
    assert!(!carol_after, "carol was removed by the reload");
}

#[test]
fn the_real_binary_authenticates_eap_mschapv2_clients_and_refuses_wrong_passwords() {
    // The sstpd binary with ppp.auth = ["eap-mschapv2"]; the client role
    // speaks EAP-MSCHAPv2 over real TLS and binds with the MSK's HLAK.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.server.listen = vec![addr];
    let config_path = dir.path().join("sstpd.toml");
    let ppp = "\n[ppp]\nauth = [\"eap-mschapv2\"]\n";
    std::fs::write(&config_path, config_toml(&config, ppp)).unwrap();
    let ns = sstpd::testing::netns::NetNs::new("sstpd-eap").unwrap();
    let (outcome, log) = with_binary(&ns, &config_path, move || {
        tokio_uring::start(async move {
            let eap = [AuthProtocol::EapMsChapV2];
            let options = client_options(addr, "alice", "alice-secret", TLS, &eap);
            let (client, inbox) = connect_once_listening(&options)
                .await
                .map_err(|e| format!("alice: {e}"))?;
            let pinged = ping_gateway(&client, &inbox, 1, b"eap").await;
            client.close(Duration::from_secs(5)).await;
            let wrong = client_options(addr, "alice", "wrong", TLS, &eap);
            let refused = match connect(&wrong).await {
                Err(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(
                    AuthFailure::Rejected { code, .. },
                )))) => code,
                Err(other) => return Err(format!("wrong password ended with {other}")),
                Ok(_) => return Err("a wrong password connected".into()),
            };
            Ok((pinged, refused))
        })
    });
    let (pinged, refused) = outcome.unwrap_or_else(|e| panic!("{e}; log:\n{log}"));
    assert!(
        pinged,
        "no echo reply through an EAP-MSCHAPv2 session; log:\n{log}"
    );
    assert_eq!(refused, Some(691));
    assert!(log.contains("auth_success_eap_mschapv2"), "log:\n{log}");
    assert!(log.contains("auth_failure_eap_mschapv2"), "log:\n{log}");
}

/// The counters of a relayed EAP run in sstpd's log: a challenge, an
/// accept and a reject from RADIUS, one success and one failure, and no
/// crypto binding refused.
fn assert_relayed_eap_counted(log: &str) {
    for counter in [
        "radius_challenge",
        "radius_accept",
        "radius_reject",
        "auth_success_eap_mschapv2",
        "auth_failure_eap_mschapv2",
    ] {
        assert!(log.contains(counter), "{counter}; log:\n{log}");
    }
    assert!(!log.contains("wrong_mac"), "log:\n{log}");
}

/// A configuration file in `dir` for the sstpd binary relaying EAP
/// (`radius.eap_pass_through`, EAP only) to FreeRADIUS on 127.0.0.1:1812,
/// with no local users; and the address it listens on.
fn eap_pass_through_config(dir: &std::path::Path) -> (std::net::SocketAddr, std::path::PathBuf) {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 2);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.server.listen = vec![addr];
    config.users.local.clear();
    let config_path = dir.join("sstpd.toml");
    let extra = "\n[ppp]\nauth = [\"eap-mschapv2\"]\n\n[users]\nbackends = [\"radius\"]\n\n\
                 [radius]\neap_pass_through = true\nauth_timeout = \"2s\"\n\n\
                 [[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"testing123\"\n";
    std::fs::write(&config_path, config_toml(&config, extra)).unwrap();
    (addr, config_path)
}

#[test]
fn the_real_binary_relays_eap_to_freeradius_and_binds_with_its_keys() {
    // radius.eap_pass_through: sstpd relays the client's EAP to
    // FreeRADIUS (its eap module running EAP-MSCHAPv2), which answers with
    // Access-Challenges and, at the end, the MSK as MS-MPPE keys. The
    // session reaching Call Connected proves the server's HLAK from those
    // keys matches the one the client derived from its password.
    use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusUser};
    let dir = tempfile::tempdir().unwrap();
    let (addr, config_path) = eap_pass_through_config(dir.path());
    let ns = sstpd::testing::netns::NetNs::new("sstpd-eapr").unwrap();
    let radius = FreeRadius::start_in(
        &ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("carol", "carol-secret")],
            eap: true,
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts with its eap module");
    let (outcome, log) = with_binary(&ns, &config_path, move || {
        tokio_uring::start(async move {
            let eap = [AuthProtocol::EapMsChapV2];
            let options = client_options(addr, "carol", "carol-secret", TLS, &eap);
            let (client, inbox) = connect_once_listening(&options)
                .await
                .map_err(|e| format!("carol: {e}"))?;
            let pinged = ping_gateway(&client, &inbox, 1, b"eap-radius").await;
            client.close(Duration::from_secs(5)).await;
            let wrong = client_options(addr, "carol", "wrong", TLS, &eap);
            match connect(&wrong).await {
                Err(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(
                    failure @ AuthFailure::Rejected { .. },
                )))) => Ok((pinged, failure)),
                Err(other) => Err(format!("wrong password ended with {other}")),
                Ok(_) => Err("a wrong password connected".into()),
            }
        })
    });
    let (pinged, refused) =
        outcome.unwrap_or_else(|e| panic!("{e}; log:\n{log}\nradius:\n{}", radius.log()));
    assert!(
        pinged,
        "no echo reply through a relayed EAP session; log:\n{log}"
    );
    assert!(matches!(refused, AuthFailure::Rejected { .. }));
    assert_relayed_eap_counted(&log);
    // FreeRADIUS ran the method: its log shows the EAP-MSCHAPv2 conversation.
    assert!(radius.log().contains("mschapv2"), "{}", radius.log());
}

#[test]
fn the_real_binary_relays_peap_to_freeradius_and_binds_with_its_tls_keys() {
    // radius.eap_pass_through with FreeRADIUS terminating PEAPv0 (its
    // phase 2 EAP-MSCHAPv2 in the inner-tunnel server), certificates from
    // a CA the test generates. Call Connected verifying proves sstpd's
    // HLAK from FreeRADIUS's MS-MPPE keys equals the client's from the TLS
    // exporter; a wrong password and a client trusting another CA fail.
    use sstpd::proto::auth::EapPeerMethod;
    use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, PeapCertificates, RadiusUser};
    use sstpd::tls::eap::RustlsTunnelConnector;
    let dir = tempfile::tempdir().unwrap();
    let (addr, config_path) = eap_pass_through_config(dir.path());
    let certificates = PeapCertificates::generate("radius.test").unwrap();
    let other_ca = PeapCertificates::generate("radius.test").unwrap().ca_pem;
    let ns = sstpd::testing::netns::NetNs::new("sstpd-peap").unwrap();
    let radius = FreeRadius::start_in(
        &ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("dave", "dave-secret")],
            peap: Some(certificates.clone()),
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts with PEAP");
    let peap_options = move |password: &str, ca_pem: &str| {
        let mut options = client_options(addr, "dave", password, TLS, &[AuthProtocol::EapMsChapV2]);
        let connector =
            RustlsTunnelConnector::new(trusting(ca_pem.as_bytes()), "radius.test", None).unwrap();
        let mut ppp = (*options.session.ppp).clone();
        ppp.auth.eap_peer = EapPeerMethod::Peap(connector.into_tunnel());
        options.session.ppp = std::sync::Arc::new(ppp);
        options
    };
    let ca = certificates.ca_pem.clone();
    let (outcome, log) = with_binary(&ns, &config_path, move || {
        tokio_uring::start(async move {
            let (client, inbox) = connect_once_listening(&peap_options("dave-secret", &ca))
                .await
                .map_err(|e| format!("dave: {e}"))?;
            let pinged = ping_gateway(&client, &inbox, 1, b"peap-radius").await;
            client.close(Duration::from_secs(5)).await;
            let wrong = match connect(&peap_options("wrong", &ca)).await {
                Err(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(
                    failure,
                )))) => failure,
                Err(other) => return Err(format!("wrong password ended with {other}")),
                Ok(_) => return Err("a wrong password connected".into()),
            };
            let untrusted = match connect(&peap_options("dave-secret", &other_ca)).await {
                Err(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(
                    failure,
                )))) => failure,
                Err(other) => return Err(format!("another CA ended with {other}")),
                Ok(_) => return Err("a client trusting another CA connected".into()),
            };
            Ok((pinged, wrong, untrusted))
        })
    });
    let (pinged, wrong, untrusted) =
        outcome.unwrap_or_else(|e| panic!("{e}; log:\n{log}\nradius:\n{}", radius.log()));
    assert!(pinged, "no echo reply through a PEAP session; log:\n{log}");
    assert!(matches!(wrong, AuthFailure::Rejected { .. }), "{wrong:?}");
    assert_eq!(untrusted, AuthFailure::ServerNotAuthenticated);
    assert_relayed_eap_counted(&log);
    let radius_log = radius.log();
    assert!(radius_log.contains("peap"), "{radius_log}");
    assert!(radius_log.contains("inner-tunnel"), "{radius_log}");
}

#[test]
fn the_real_binary_relays_eap_tls_to_freeradius_and_binds_with_its_tls_keys() {
    // radius.eap_pass_through with FreeRADIUS terminating EAP-TLS: the
    // client presents a certificate from the CA FreeRADIUS trusts, named
    // as its identity (check_cert_issuer, check_cert_cn). Call Connected
    // verifying proves sstpd's HLAK from FreeRADIUS's MS-MPPE keys equals
    // the client's from the TLS exporter; a certificate from another CA,
    // and one naming someone else, are refused with EAP-Failure.
    use sstpd::proto::auth::EapPeerMethod;
    use sstpd::testing::freeradius::{EapTlsCertificates, FreeRadius, FreeRadiusConfig};
    use sstpd::tls::client::ClientCertificate;
    use sstpd::tls::eap::RustlsTunnelConnector;
    let dir = tempfile::tempdir().unwrap();
    let (addr, config_path) = eap_pass_through_config(dir.path());
    let certificates = EapTlsCertificates::generate("radius.test", "erin").unwrap();
    let other_ca = EapTlsCertificates::generate("radius.test", "erin").unwrap();
    let ns = sstpd::testing::netns::NetNs::new("sstpd-eaptls").unwrap();
    let radius = FreeRadius::start_in(
        &ns,
        &FreeRadiusConfig {
            eap_tls: Some(certificates.clone()),
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts with EAP-TLS");
    let ca = certificates.server.ca_pem.clone();
    let eap_tls_options = move |user: &str, client: &EapTlsCertificates| {
        let mut options = client_options(addr, user, "unused", TLS, &[AuthProtocol::EapMsChapV2]);
        let certificate = ClientCertificate::from_pem(
            client.client_cert_pem.as_bytes(),
            client.client_key_pem.as_bytes(),
        )
        .unwrap();
        let connector =
            RustlsTunnelConnector::new(trusting(ca.as_bytes()), "radius.test", Some(certificate))
                .unwrap();
        let mut ppp = (*options.session.ppp).clone();
        ppp.auth.eap_peer = EapPeerMethod::Tls(connector.into_tunnel());
        options.session.ppp = std::sync::Arc::new(ppp);
        options
    };
    let refused = |outcome: Result<_, ConnectError>, case: &str| match outcome {
        Err(ConnectError::Closed(CloseReason::Ppp(PppCloseReason::AuthFailed(failure)))) => {
            Ok(failure)
        }
        Err(other) => Err(format!("{case} ended with {other}")),
        Ok(_) => Err(format!("{case} connected")),
    };
    let (outcome, log) = with_binary(&ns, &config_path, move || {
        tokio_uring::start(async move {
            let (client, inbox) = connect_once_listening(&eap_tls_options("erin", &certificates))
                .await
                .map_err(|e| format!("erin: {e}"))?;
            let pinged = ping_gateway(&client, &inbox, 1, b"eap-tls-radius").await;
            client.close(Duration::from_secs(5)).await;
            let untrusted = refused(
                connect(&eap_tls_options("erin", &other_ca))
                    .await
                    .map(|_| ()),
                "a certificate from another CA",
            )?;
            let misnamed = refused(
                connect(&eap_tls_options("mallory", &certificates))
                    .await
                    .map(|_| ()),
                "a certificate naming someone else",
            )?;
            Ok::<_, String>((pinged, untrusted, misnamed))
        })
    });
    let (pinged, untrusted, misnamed) =
        outcome.unwrap_or_else(|e| panic!("{e}; log:\n{log}\nradius:\n{}", radius.log()));
    assert!(
        pinged,
        "no echo reply through an EAP-TLS session; log:\n{log}"
    );
    for failure in [untrusted, misnamed] {
        assert!(
            matches!(failure, AuthFailure::Rejected { .. }),
            "{failure:?}; radius:\n{}",
            radius.log()
        );
    }
    assert_relayed_eap_counted(&log);
    // The refusals closed their sessions with the counted reason, and the
    // server went on to a clean stop.
    assert!(log.contains("auth_failed"), "log:\n{log}");
    assert!(log.contains("sstpd stopped"), "log:\n{log}");
    let radius_log = radius.log();
    assert!(radius_log.contains("eap_tls"), "{radius_log}");
}

/// Runs the sstpd binary with `config_path` in `ns` while `clients` run
/// there, then stops it with SIGTERM: what `clients` returned, and the
/// binary's log.
fn with_binary<T: Send>(
    ns: &sstpd::testing::netns::NetNs,
    config_path: &std::path::Path,
    clients: impl FnOnce() -> T + Send,
) -> (T, String) {
    let mut child = spawn_sstpd_in(ns, env!("CARGO_BIN_EXE_sstpd"), config_path);
    let pid = child.id();
    let outcome = ns.run(clients);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "sstpd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    (outcome, log)
}

/// [`connect`], retried while the binary is not listening yet.
async fn connect_once_listening(
    options: &sstpd::client::ClientOptions,
) -> Result<(sstpd::client::Client, Inbox), ConnectError> {
    let mut tries = 0;
    loop {
        match connect(options).await {
            Err(ConnectError::Tcp(_)) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}

/// A client that stops reading while the network sends to it at full
/// speed fills its session's queue (512 KiB of plaintext): what comes
/// beyond is dropped and counted as `tx_queue_full`, with segmentation
/// offload before the super-packet is cut, and from then on by the
/// kernel's drop filter (`tun.drop_filter`) until the writer makes room.
/// Neither the session nor another session of the same worker suffers:
/// the other still pings, and the stalled one carries traffic again once
/// it reads (so the filter let go of its address).
#[test]
fn a_client_that_stops_reading_fills_only_its_own_queue() {
    a_stalled_client_fills_only_its_own_queue(TunOffload::Auto, true);
}

#[test]
fn a_client_that_stops_reading_fills_only_its_own_queue_without_tun_offload() {
    a_stalled_client_fills_only_its_own_queue(TunOffload::Off, true);
}

/// The same where the kernel's drop filter is off: sstpd drops every
/// packet beyond the bound itself.
#[test]
fn a_client_that_stops_reading_fills_only_its_own_queue_without_the_drop_filter() {
    a_stalled_client_fills_only_its_own_queue(TunOffload::Auto, false);
}

/// A session that ends while the kernel drops its packets (its queue was
/// full) leaves no mark behind: the next session with its address, a
/// user's fixed one, carries traffic both ways.
#[test]
fn a_congested_session_that_ends_leaves_no_drop_mark_for_its_address() {
    const FIXED: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 77);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.users.local[0].ip = Some(FIXED);
    let server = TestServer::start(config);
    let addr = server.addr;
    let counters = server.handle().counters();
    let answered = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "alice", "alice-secret");
        let (stalled, _inbox) = connect(&options).await.unwrap();
        assert_eq!(stalled.address(), Some(FIXED));
        stalled.pause_reading();
        flood_until(FIXED, || counters.snapshot().event("marked") > 0).await;
        assert!(counters.snapshot().event("marked") > 0, "never marked");
        // The client says goodbye without reading: the server's answer
        // cannot leave, and its teardown timers end the session.
        stalled.close(Duration::from_secs(1)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let active = || counters.snapshot().sessions_active;
        while active() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(active(), 0, "the stalled session ended");
        drop(stalled);
        let (again, inbox) = connect(&options).await.unwrap();
        assert_eq!(again.address(), Some(FIXED));
        let answered = ping_gateway(&again, &inbox, 9, b"no mark left").await;
        again.close(Duration::from_secs(5)).await;
        answered
    });
    let stats = server.handle().metrics();
    assert!(answered, "the address's next session is answered: {stats}");
    assert_eq!(stats.event("clear_failed"), 0, "{stats}");
}

fn a_stalled_client_fills_only_its_own_queue(offload: TunOffload, drop_filter: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.tun.offload = offload;
    config.tun.drop_filter = drop_filter;
    let server = TestServer::start(config);
    let addr = server.addr;
    let counters = server.handle().counters();
    let (stalled_recovered, other_answered, dropped) = server.run_clients(move || async move {
        let (stalled, stalled_inbox) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .unwrap();
        let (other, other_inbox) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
            .await
            .unwrap();
        stalled.pause_reading();
        let target = stalled.address().unwrap();
        flood_until(target, || counters.snapshot().tx_queue_full > 0).await;
        let dropped = counters.snapshot().tx_queue_full;
        let other_answered = ping_gateway(&other, &other_inbox, 7, b"still here").await;
        stalled.resume_reading();
        let stalled_recovered =
            !stalled.is_closed() && ping_gateway(&stalled, &stalled_inbox, 8, b"back again").await;
        for client in [&stalled, &other] {
            client.close(Duration::from_secs(5)).await;
        }
        (stalled_recovered, other_answered, dropped)
    });
    let stats = server.handle().metrics();
    assert!(dropped > 0, "the stalled session's queue filled: {stats}");
    assert!(other_answered, "the other session kept working: {stats}");
    assert!(
        stalled_recovered,
        "the stalled session works again: {stats}"
    );
    assert_eq!(stats.sessions_established, 2, "{stats}");
    if drop_filter {
        assert!(
            stats.event("marked") >= 1,
            "the kernel took over the drops: {stats}"
        );
        assert_eq!(
            stats.event("mark_failed") + stats.event("clear_failed"),
            0,
            "{stats}"
        );
    } else {
        assert_eq!(stats.event("marked"), 0, "{stats}");
    }
    if offload == TunOffload::Auto && stats.event("super_packets_read") > 0 {
        // Where the kernel hands the TUN device UDP super-packets (USO,
        // Linux 6.2 on), segments were counted as dropped that were
        // never cut: a super-packet for the full queue went whole.
        assert!(
            stats.tx_queue_full + stats.tx_packets > stats.event("segments_cut"),
            "{stats}"
        );
    }
}
