//! `sstp-bench cluster` end to end: two real sstpd nodes behind a real
//! HAProxy with a real FreeRADIUS (SQLite accounting and address pool)
//! and the real load generator, each in a network namespace; a small load
//! (40 sessions), so the figures are the facts a cluster must show, not
//! rates: the sessions spread over both nodes, no address is held twice
//! and the pool's leases are exactly the sessions the nodes hold; a node
//! killed with SIGKILL loses its sessions and no one else's, its restart's
//! Accounting-On closes its accounting rows and frees its leases, and it
//! takes load again; a node drained with `sstpctl drain` is taken out of
//! rotation, its sessions move to the other and their accounting is
//! closed, and the other loses nothing. Afterwards no namespace and
//! no process of the run is left.
//!
//! Needs root, `haproxy`, `freeradius` and `sqlite3` (scripts/test
//! installs them).

use std::path::Path;
use std::process::{Command, Stdio};

use sstp_bench::results::{Results, ScenarioResult};

mod common;
use common::sibling_binary;

fn figure(results: &Results, scenario: &str, metric: &str) -> f64 {
    let s: &ScenarioResult = results
        .scenarios
        .iter()
        .find(|s| s.name == scenario)
        .unwrap_or_else(|| panic!("no {scenario} in {results:#?}"));
    s.figures
        .iter()
        .find(|f| f.metric == metric)
        .unwrap_or_else(|| panic!("no {scenario} {metric} in {s:#?}"))
        .value
}

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_two_node_cluster_spreads_fails_over_drains_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cluster.json");
    let child = Command::new(env!("CARGO_BIN_EXE_sstp-bench"))
        .args(["cluster", "--nodes", "2", "--sessions", "40"])
        .args(["--concurrency", "16", "--hold", "1", "--out"])
        .arg(&out)
        .env("SSTPD_BIN", sibling_binary("sstpd"))
        .env("SSTP_LOADGEN_BIN", sibling_binary("sstp-loadgen"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let r = Results::load(&out).unwrap();
    let f = |scenario: &str, metric: &str| figure(&r, scenario, metric);

    // Spread: both nodes hold sessions, all 40 are up.
    let (one, two) = (
        f("cluster_setup", "sessions_node-1"),
        f("cluster_setup", "sessions_node-2"),
    );
    assert!(one > 0.0 && two > 0.0, "{one} and {two}\n{stdout}");
    assert_eq!(one + two, 40.0, "{stdout}");
    assert_eq!(f("cluster_setup", "setup_failed"), 0.0, "{stdout}");
    let rate = r.scenarios[0].figures[0].reference.as_ref().unwrap();
    assert!(rate.value > 0.0 && rate.ratio > 0.0, "{rate:?}");

    // Addresses: none twice, and exactly the pool's leases.
    assert_eq!(f("cluster_addresses", "addresses_held_by_nodes"), 40.0);
    assert_eq!(f("cluster_addresses", "leases_in_radius_pool"), 40.0);
    assert_eq!(f("cluster_addresses", "duplicate_addresses"), 0.0);
    assert_eq!(f("cluster_addresses", "lease_mismatches"), 0.0);
    assert!(f("cluster_latency", "rtt_p50") > 0.0);

    // Failover: the killed node's sessions and no others are lost, and
    // every one is back through HAProxy on the survivors; its restart
    // closes its accounting and frees its leases; it takes load again.
    let failover = |m: &str| f("cluster_failover", m);
    let killed = failover("sessions_on_killed_node");
    assert!(killed > 0.0, "{stdout}");
    assert_eq!(failover("survivor_sessions_lost"), 0.0, "{stdout}");
    assert_eq!(failover("survivor_sessions_after"), 40.0, "{stdout}");
    assert_eq!(failover("reconnect_lost"), killed, "{stdout}");
    assert_eq!(failover("reconnected"), killed, "{stdout}");
    assert_eq!(failover("reconnect_unrecovered"), 0.0, "{stdout}");
    assert!(failover("all_back_after") < 30.0, "{stdout}");
    assert_eq!(failover("open_acct_rows_after_kill"), killed);
    assert_eq!(failover("leases_after_kill"), killed);
    assert_eq!(failover("acct_rows_closed_by_accounting_on"), killed);
    assert_eq!(failover("open_acct_rows_after_restart"), 0.0);
    assert_eq!(failover("leases_after_restart"), 0.0);
    assert!(failover("balancer_marked_up_after_restart") < 10.0);
    assert!(failover("restarted_node_sessions") > 0.0, "{stdout}");

    // Drain: the drained node's sessions move to the other, its
    // accounting is closed, the other loses nothing.
    let drain = |m: &str| f("cluster_drain", m);
    let drained = drain("sessions_on_drained_node");
    assert!(drained > 0.0, "{stdout}");
    assert_eq!(drain("survivor_sessions_lost"), 0.0, "{stdout}");
    assert_eq!(drain("survivor_sessions_after"), 40.0, "{stdout}");
    assert_eq!(drain("reconnected"), drained, "{stdout}");
    assert_eq!(drain("reconnect_unrecovered"), 0.0, "{stdout}");
    // No burst: only the reconnects that reached the node before
    // HAProxy's check saw its 503 can fail, and they are retried.
    assert!(drain("reconnect_failed_attempts") < drained, "{stdout}");
    assert!(drain("balancer_marked_down_after") < 5.0, "{stdout}");
    assert_eq!(drain("open_acct_rows_after"), 0.0);
    assert_eq!(drain("leases_after"), 0.0);

    // Nothing left: no namespace of this run, none of its processes.
    assert!(
        !namespaces().contains(&format!("sstp-bench-{pid}-")),
        "{}",
        namespaces()
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Everything is gone again: processes "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let pids: Vec<u32> = line
        .trim_start_matches("Everything is gone again: processes ")
        .split(", namespaces")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.len() >= 5, "HAProxy, FreeRADIUS, 2 + 1 sstpd: {line}");
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "process {p} is still there"
        );
    }
}
