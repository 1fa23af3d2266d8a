//! The real `sstpd` binary under a stand-in for systemd: a Unix datagram
//! socket bound by the test and passed as `NOTIFY_SOCKET` (what systemd
//! does for `Type=notify`), with `WATCHDOG_USEC` set. The test reads the
//! notifications as systemd would: READY=1 once it listens, STATUS= with
//! the session count, WATCHDOG=1 at half of WATCHDOG_USEC,
//! RELOADING=1 + MONOTONIC_USEC= then READY=1 around SIGHUP, STOPPING=1 on
//! SIGTERM; no WATCHDOG=1 while one worker thread is stopped. Its log carries the structured session start and end lines.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sstpd::tls::certs::SelfSignedKey;

/// Notifications received, with when they arrived.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;

fn received_since(received: &Received, from: usize) -> Vec<(Instant, String)> {
    received.lock().unwrap()[from..].to_vec()
}

fn wait_for_message(received: &Received, from: usize, timeout: Duration, want: &str) -> usize {
    let mut found = None;
    let ok = wait_until(timeout, || {
        let all = received.lock().unwrap();
        found = all[from..]
            .iter()
            .position(|(_, m)| m.lines().any(|l| l == want))
            .map(|i| i + from);
        found.is_some()
    });
    assert!(
        ok,
        "no {want:?} within {timeout:?}; received: {:?}",
        received_since(received, from)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
    );
    found.unwrap()
}

/// The id of `pid`'s thread named `name`.
fn worker_thread(pid: i32, name: &str) -> i32 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| t.ok())
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .and_then(|t| t.file_name().to_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no thread {name} in {pid}"))
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The fields of the first JSON log line whose message is `message`.
fn json_line(log: &str, message: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("fields")?.as_object().cloned())
        .find(|f| f.get("message").and_then(|m| m.as_str()) == Some(message))
}

#[test]
fn notifies_systemd_of_readiness_status_watchdog_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let received: Received = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let received = received.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    received.lock().unwrap().push((Instant::now(), text));
                }
            }
        })
    };

    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.server.listen = vec![addr];
    let config_path = dir.path().join("sstpd.toml");
    // JSON lines, as a log shipper would read them.
    let logging = "[logging]\nformat = \"json\"\n";
    std::fs::write(&config_path, config_toml(&config, logging)).unwrap();
    let ns = sstpd::testing::netns::NetNs::new("sstpd-notify").unwrap();
    // WATCHDOG_USEC=1 s: pings every 0.5 s. No WATCHDOG_PID: libsystemd
    // takes that as "this process" (systemd sets it to the main PID).
    let watchdog = Duration::from_secs(1);
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_sstpd"))
        .arg("--config")
        .arg(&config_path)
        .env("SSTPD_LOG", "info")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (stderr, stderr_thread) = collect_output(child.stderr.take().unwrap());
    let (stdout, stdout_thread) = collect_output(child.stdout.take().unwrap());
    let log = || stderr.lock().unwrap().clone() + &stdout.lock().unwrap();

    // READY=1, and by then it listens.
    let ready = wait_for_message(&received, 0, Duration::from_secs(30), "READY=1");
    assert!(
        log().contains("sstpd ready"),
        "READY=1 before the workers started; log:\n{}",
        log()
    );
    let connected = ns.run(move || std::net::TcpStream::connect(addr).map(drop));
    assert!(
        connected.is_ok(),
        "READY=1 sent, but {addr} refuses: {connected:?}"
    );
    assert!(
        received.lock().unwrap()[ready]
            .1
            .contains("STATUS=0 sessions"),
        "{:?}",
        received.lock().unwrap()[ready]
    );

    // WATCHDOG=1 every half WATCHDOG_USEC while the workers run.
    let from = received.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(4));
    let pings: Vec<Instant> = received_since(&received, from)
        .into_iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| t)
        .collect();
    assert!(
        (6..=10).contains(&pings.len()),
        "{} WATCHDOG=1 in 4 s, expected about 8",
        pings.len()
    );
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean >= Duration::from_millis(400) && mean <= Duration::from_millis(650),
        "mean gap between pings {mean:?}, expected 500 ms: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g < watchdog),
        "a gap reached WATCHDOG_USEC: {gaps:?}"
    );

    // A hung worker: one worker thread stopped alone (ptrace's
    // PTRACE_INTERRUPT stops that thread, not the process). Its heartbeat
    // stops, so do the pings, within the 2 s a beat may be late; once it
    // runs again, they resume.
    let worker = worker_thread(pid, "sstpd-worker-1");
    let stalled = Instant::now();
    let from = received.lock().unwrap().len();
    // SAFETY: ptrace on a thread of our own child; the pointers are unused
    // (0) or point to a live local.
    unsafe {
        assert_eq!(
            libc::ptrace(libc::PTRACE_SEIZE, worker, 0, 0),
            0,
            "PTRACE_SEIZE"
        );
        assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, worker, 0, 0), 0);
        let mut status = 0;
        assert_eq!(libc::waitpid(worker, &mut status, libc::__WALL), worker);
    }
    std::thread::sleep(Duration::from_secs(5));
    let late: Vec<Duration> = received_since(&received, from)
        .into_iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| t - stalled)
        .collect();
    // SAFETY: as above; the thread resumes.
    assert_eq!(
        unsafe { libc::ptrace(libc::PTRACE_DETACH, worker, 0, 0) },
        0
    );
    assert!(
        late.iter().all(|t| *t < Duration::from_millis(3000)),
        "WATCHDOG=1 while a worker was stopped (at {late:?} after it stopped)"
    );
    assert!(
        log().contains("withholding the systemd watchdog ping"),
        "log:\n{}",
        log()
    );
    let from = received.lock().unwrap().len();
    wait_for_message(&received, from, Duration::from_secs(3), "WATCHDOG=1");

    // A session: STATUS= counts it. The client holds it until told.
    let release = Arc::new(AtomicBool::new(false));
    let status_from = received.lock().unwrap().len();
    std::thread::scope(|scope| {
        let release_client = release.clone();
        let ns = &ns;
        let client = scope.spawn(move || {
            ns.run(move || {
                tokio_uring::start(async move {
                    let options = mschapv2_options(addr, "alice", "alice-secret");
                    let (client, _inbox) = connect_when_up(&options, 100).await;
                    // Some traffic for the end line's counters.
                    for seq in 0..3 {
                        let me = client.address().expect("address");
                        let _ = client.send_ip(&icmp_echo(8, me, GATEWAY, 9, seq, b"notify"));
                    }
                    while !release_client.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    client.close(Duration::from_secs(5)).await;
                })
            })
        });
        // STATUS= is refreshed every 5 s.
        wait_for_message(
            &received,
            status_from,
            Duration::from_secs(15),
            "STATUS=1 session",
        );

        // SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1.
        let from = received.lock().unwrap().len();
        let before = monotonic_usec();
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        let reloading = wait_for_message(&received, from, Duration::from_secs(10), "RELOADING=1");
        let after = monotonic_usec();
        let message = received.lock().unwrap()[reloading].1.clone();
        let usec: u64 = message
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {message:?}"))
            .parse()
            .unwrap();
        assert!(
            (before..=after).contains(&usec),
            "MONOTONIC_USEC={usec} not between {before} and {after}"
        );
        let ready_again =
            wait_for_message(&received, reloading, Duration::from_secs(10), "READY=1");
        assert!(ready_again > reloading);
        assert!(log().contains("users reloaded"), "log:\n{}", log());

        release.store(true, Ordering::SeqCst);
        client.join().unwrap();
    });

    // The structured session lines.
    assert!(
        wait_until(Duration::from_secs(10), || log().contains("session ended")),
        "no session end line; log:\n{}",
        log()
    );
    let log_text = log();
    let started = json_line(&log_text, "session started")
        .unwrap_or_else(|| panic!("no JSON start line; log:\n{log_text}"));
    assert_eq!(started["user"], "alice", "{started:?}");
    let client = started["client"].as_str().unwrap_or("");
    assert!(client.starts_with("127.0.0.1:"), "{started:?}");
    let ended = json_line(&log_text, "session ended")
        .unwrap_or_else(|| panic!("no JSON end line; log:\n{log_text}"));
    assert_eq!(ended["user"], "alice", "{ended:?}");
    assert_eq!(ended["client"].as_str(), Some(client), "{ended:?}");
    assert_eq!(ended["session_id"], started["session_id"], "{ended:?}");
    let ip = ended["ip"].as_str().unwrap_or("");
    assert!(ip.starts_with("10.99.0."), "{ended:?}");
    assert_eq!(ended["reason"], "peer_terminated", "{ended:?}");
    // Three echo requests went in; the gateway answered them.
    assert_eq!(ended["packets_from_client"], 3, "{ended:?}");
    assert_eq!(ended["bytes_from_client"], 3 * (28 + 6), "{ended:?}");
    for key in ["duration_ms", "bytes_to_client", "packets_to_client"] {
        assert!(ended[key].as_u64().is_some(), "no {key}: {ended:?}");
    }
    assert!(ended["duration_ms"].as_u64() > Some(0), "{ended:?}");

    // SIGTERM: STOPPING=1, no pings after it, exit 0.
    let from = received.lock().unwrap().len();
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = wait_for_message(&received, from, Duration::from_secs(10), "STOPPING=1");
    let status = wait_until(Duration::from_secs(15), || {
        child.try_wait().unwrap().is_some()
    });
    if !status {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    stderr_thread.join().unwrap();
    stdout_thread.join().unwrap();
    assert!(status.success(), "exit {status}; log:\n{}", log());
    let after_stop: Vec<String> = received_since(&received, stopping + 1)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert!(
        after_stop.iter().all(|m| !m.contains("WATCHDOG=1")),
        "watchdog pings after STOPPING=1: {after_stop:?}"
    );
}
