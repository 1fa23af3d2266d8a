#![cfg(feature = "runtime")]
//! When part of the server itself fails: a session task that panics gives
//! back everything the session held (its slot, the session count, its
//! routes, its pool address) and is counted, and the other sessions carry
//! on; a worker whose own task (accept loop, TUN reader or writer,
//! hand-over) ends, or that loses its TUN queue, is a failure of the
//! server, which ends the process with a clear error and a non-zero exit,
//! for the service manager to restart it.

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sstpd::config::TlsVersion;
use sstpd::proto::auth::AuthProtocol;
use sstpd::testing::faults::{panic_session_of, panic_worker_task, SessionTask, WorkerTask};
use sstpd::tls::certs::SelfSignedKey;

#[test]
fn a_panicking_session_task_gives_back_its_slot_route_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    // A pool of one: a leaked lease would lock every later client out.
    let only = Ipv4Addr::new(10, 99, 0, 2);
    config.ipv4.pool = sstpd::config::Ipv4Range::new(only, only).unwrap();
    let server = TestServer::start(config);
    let addr = server.addr;
    let rounds = [
        ("alice", Some(SessionTask::Reader)),
        ("bob", Some(SessionTask::Writer)),
        ("alice", None),
    ];
    let outcome = server.run_clients(move || async move {
        let mut outcome = Vec::new();
        for (round, (user, task)) in rounds.into_iter().enumerate() {
            let password = format!("{user}-secret");
            let options = client_options(
                addr,
                user,
                &password,
                (TlsVersion::Tls13, TlsVersion::Tls13),
                &[AuthProtocol::MsChapV2],
            );
            let (client, inbox) = connect(&options)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {user} does not come up: {e}"));
            let address = client.address();
            let pinged = ping_gateway(&client, &inbox, round as u16, b"before").await;
            let closed = match task {
                Some(task) => {
                    panic_session_of(user, task);
                    // The server's reader panics on this packet, its
                    // writer on the reply.
                    let me = address.unwrap();
                    client
                        .send_ip(&icmp_echo(8, me, GATEWAY, 99, 0, b"boom"))
                        .unwrap();
                    client.wait_closed(Duration::from_secs(10)).await
                }
                None => {
                    client.close(Duration::from_secs(5)).await;
                    true
                }
            };
            outcome.push((user, address, pinged, closed));
        }
        outcome
    });
    for (user, address, pinged, closed) in outcome {
        assert_eq!(address, Some(only), "{user}");
        assert!(pinged, "{user} could not ping");
        assert!(closed, "{user}'s session outlived the panic of its task");
    }
    assert!(
        server.wait_idle(Duration::from_secs(10)),
        "{}",
        server.handle().metrics()
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.event("session_panicked"), 2, "{stats}");
    // The dead sessions' routes went with them.
    assert_eq!(stats.event("route_taken_over"), 0, "{stats}");
    assert_eq!(stats.sessions_established, 3, "{stats}");
    // A session is not one of the worker's own tasks: its panic is no
    // failure of the server.
    assert_eq!(server.handle().failure(), None);
}

#[test]
fn a_panicking_tun_writer_is_a_failure_of_the_server() {
    a_panicking_worker_task_is_a_failure_of_the_server(
        WorkerTask::TunWriter,
        "worker 0: its TUN writer ended",
    );
}

#[test]
fn a_panicking_tun_reader_is_a_failure_of_the_server() {
    a_panicking_worker_task_is_a_failure_of_the_server(
        WorkerTask::TunReader,
        "worker 0: its TUN reader ended",
    );
}

#[test]
fn a_panicking_accept_loop_is_a_failure_of_the_server() {
    // The listener's address as configured (an ephemeral port).
    a_panicking_worker_task_is_a_failure_of_the_server(
        WorkerTask::Accept,
        "worker 0: its accept task on 127.0.0.1:0 ended",
    );
}

/// Two workers without the TUN steering, sixteen sessions that ping the
/// gateway at once: the tun driver's flow hash puts the first reply of a
/// flow on either queue, so some reach the worker that does not own their
/// session, whose hand-over then panics (each reply lands on the wrong
/// queue with a chance of one half: none of sixteen with 1 in 65,536).
#[test]
fn a_panicking_hand_over_is_a_failure_of_the_server() {
    const SESSIONS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.tun.steering = false;
    numbered_users(&mut config, SESSIONS);
    let mut server = TestServer::start(config);
    let addr = server.addr;
    let failed = failure_flag(&server);
    let reported = server.run_clients(move || async move {
        let mut clients = Vec::new();
        for i in 0..SESSIONS {
            let options = mschapv2_options(addr, &format!("user{i}"), &format!("pw{i}"));
            let (client, inbox) = connect(&options)
                .await
                .unwrap_or_else(|e| panic!("session {i}: {e}"));
            clients.push((client, inbox));
        }
        assert!(!failed.load(Ordering::SeqCst), "a failure before the panic");
        panic_worker_task(WorkerTask::HandOver);
        for (i, (client, _)) in clients.iter().enumerate() {
            let me = client.address().unwrap();
            client
                .send_ip(&icmp_echo(8, me, GATEWAY, i as u16, 0, b"cross"))
                .unwrap();
        }
        let reported = failed_within(&failed, Duration::from_secs(5)).await;
        drop(clients);
        reported
    });
    assert!(reported, "no failure within 5 s of the hand-over's panic");
    let error = server.handle().failure();
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.starts_with("worker ") && e.ends_with(": its hand-over ended")),
        "failure: {error:?}"
    );
    shuts_down_after_the_failure(&mut server);
}

/// One worker, a client that pings through it, then `task` made to panic
/// (by a ping through the TUN device, or by a second client for the
/// accept loop): the server reports `failure`, and shuts down after all.
fn a_panicking_worker_task_is_a_failure_of_the_server(task: WorkerTask, failure: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    let mut server = TestServer::start(config);
    let addr = server.addr;
    let failed = failure_flag(&server);
    let (pinged, reported) = server.run_clients(move || async move {
        let (client, inbox) = connect(&mschapv2_options(addr, "alice", "alice-secret"))
            .await
            .expect("alice comes up");
        let pinged = ping_gateway(&client, &inbox, 1, b"before").await;
        assert!(!failed.load(Ordering::SeqCst), "a failure before the panic");
        panic_worker_task(task);
        match task {
            // The writer panics on the request, the reader on the reply.
            WorkerTask::TunWriter | WorkerTask::TunReader => {
                let me = client.address().unwrap();
                client
                    .send_ip(&icmp_echo(8, me, GATEWAY, 2, 0, b"boom"))
                    .unwrap();
            }
            // Bob's connection is handed on before the loop panics: it
            // may well come up.
            WorkerTask::Accept => {
                let bob = mschapv2_options(addr, "bob", "bob-secret");
                let _ = tokio::time::timeout(Duration::from_secs(10), connect(&bob)).await;
            }
            // Needs two workers: a_panicking_hand_over_is_a_failure_of_the_server.
            WorkerTask::HandOver => unreachable!("the hand-over has its own test"),
        }
        (pinged, failed_within(&failed, Duration::from_secs(5)).await)
    });
    assert!(pinged, "alice could not ping");
    assert!(reported, "no failure within 5 s of the panic of {task:?}");
    let error = server.handle().failure();
    assert!(
        error.as_deref().is_some_and(|e| e.contains(failure)),
        "failure: {error:?}, not {failure:?}"
    );
    shuts_down_after_the_failure(&mut server);
}

/// A flag that the server's first failure sets.
fn failure_flag(server: &TestServer) -> Arc<AtomicBool> {
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    server
        .handle()
        .on_failure(move || flag.store(true, Ordering::SeqCst));
    failed
}

/// Whether `failed` is set within `within`.
async fn failed_within(failed: &AtomicBool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !failed.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    failed.load(Ordering::SeqCst)
}

/// The rest of the workers still run after a failure: the server shuts
/// down when asked.
fn shuts_down_after_the_failure(server: &mut TestServer) {
    let handle = server.server.take().unwrap();
    handle.shutdown();
    assert!(
        handle.join(Duration::from_secs(10)),
        "no shutdown after the failure"
    );
}

#[test]
fn losing_the_tun_device_ends_the_process_with_an_error() {
    // The real binary, in a namespace; its TUN device deleted under it. A
    // worker without its TUN queue can carry no traffic: sstpd must say so
    // and exit non-zero (systemd restarts it), not warn forever.
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let tun = config.tun.name.clone();
    let (ns, mut child, _) = spawn_sstpd(env!("CARGO_BIN_EXE_sstpd"), dir.path(), config);
    let (stderr, stderr_thread) = collect_output(child.stderr.take().unwrap());
    let (stdout, stdout_thread) = collect_output(child.stdout.take().unwrap());
    let log = || stderr.lock().unwrap().clone() + &stdout.lock().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || log().contains("sstpd ready")),
        "sstpd did not start; log:\n{}",
        log()
    );
    let out = ns
        .command("ip")
        .args(["link", "del", &tun])
        .output()
        .expect("ip link del");
    assert!(out.status.success(), "ip link del {tun}: {out:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stderr_thread.join().unwrap();
    stdout_thread.join().unwrap();
    let log = log();
    let tail: String = log
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let status = status
        .unwrap_or_else(|| panic!("sstpd kept running without its TUN device; log tail:\n{tail}"));
    assert!(!status.success(), "exit status {status}; log tail:\n{tail}");
    assert!(log.contains("TUN queue lost"), "log tail:\n{tail}");
    // One line per lost queue at most, not a flood.
    let warnings = log.matches("TUN read failed").count();
    assert!(warnings <= 2, "{warnings} warnings; log tail:\n{tail}");
}
