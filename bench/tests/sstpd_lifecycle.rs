//! The scenario framework end to end without the load generator: the real
//! sstpd binary is started with a generated configuration in a namespace
//! of its own, measured (CPU from /proc/<pid>/stat, RSS), and stopped with
//! SIGTERM; the namespace is gone afterwards. Needs root (namespaces, TUN)
//! and the sstpd binary, which cargo builds next to this test (sstpd's own
//! integration tests make cargo build its binary).

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use sstp_bench::scenario::{locate_sstpd, SstpdOptions, SstpdProcess, Window};

/// The sstpd built in the same profile as this test, else any.
fn sstpd_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/sstpd
    let beside = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("sstpd"));
    beside
        .filter(|p| p.exists())
        .or_else(|| locate_sstpd(true))
        .expect("no sstpd binary: build it with `cargo build -p sstpd`")
}

fn namespace_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .expect("read the process's network namespace")
        .display()
        .to_string()
}

#[test]
fn sstpd_runs_in_its_own_namespace_is_measured_and_stops_on_sigterm() {
    let mut options = SstpdOptions::new(sstpd_binary());
    options.workers = 1;
    let server = SstpdProcess::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let pid = server.pid();
    let ns_name = server.namespace().name().to_owned();

    // It is sstpd itself (not the `ip netns exec` wrapper), in the
    // namespace, not in ours.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sstpd");
    assert_ne!(namespace_of(pid), namespace_of(std::process::id()));
    assert!(std::path::Path::new("/run/netns").join(&ns_name).exists());

    // Give it some work to measure: connections it accepts and drops.
    let window = Window::open(pid).unwrap();
    let addr = server.listen_addr();
    let accepted = server.namespace().run(move || {
        (0..20)
            .filter(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
            .count()
    });
    assert_eq!(accepted, 20);
    let usage = window.close(0, 0).unwrap();
    assert!(usage.cpu_seconds >= 0.0);
    assert!(usage.wall_seconds > 0.0);
    // A real server process: megabytes resident, a worker thread besides
    // the main one.
    assert!(usage.rss_bytes_end > 1 << 20, "{usage:?}");
    assert!(usage.rss_bytes_peak >= usage.rss_bytes_end);
    let sample = server.sample().unwrap();
    assert!(sample.threads >= Some(2), "{sample:?}");
    // CPU time comes in clock ticks (10 ms): a quick start may show none.
    assert!(
        sample.cpu_seconds() >= Some(usage.cpu_seconds),
        "{sample:?}"
    );
    let (cert, key) = server.certificate_files();
    assert!(cert.exists() && key.exists());

    let status = server.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "sstpd exited with {status}");
    assert!(
        !std::path::Path::new("/proc").join(pid.to_string()).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
        "sstpd is gone"
    );
    assert!(
        !std::path::Path::new("/run/netns").join(&ns_name).exists(),
        "the namespace was removed"
    );
}

#[test]
fn a_missing_binary_is_reported_by_path() {
    let options = SstpdOptions::new("/nonexistent/sstpd".into());
    let error = SstpdProcess::start(&options).unwrap_err();
    assert_eq!(error.as_str(), "binary_missing");
    assert!(error.to_string().contains("/nonexistent/sstpd"));
}
