#![cfg(feature = "runtime")]
//! The Prometheus endpoint (`[metrics] listen`) of a real server in a
//! network namespace, scraped while sessions of the core's client role come
//! and go: the text passes `promtool check metrics` (Debian package
//! `prometheus`), and the counters agree with what the test did.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::prometheus::*;
use common::*;
use sstpd::tls::certs::SelfSignedKey;

#[test]
fn the_endpoint_reports_sessions_as_they_come_and_go_and_promtool_accepts_it() {
    const SESSIONS: usize = 3;
    const PAYLOAD: &[u8] = b"counted by the metrics endpoint";
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    // The pings pass the TUN offload path too.
    config.tun.offload = sstpd::config::TunOffload::Auto;
    let server = TestServer::start(config);
    let metrics_addr = server.handle().metrics_addr().expect("the endpoint runs");
    let addr = server.addr;

    let (during, pinged, rejected) = server.run_clients(move || async move {
        let mut clients = Vec::new();
        let mut pinged = 0;
        for i in 0..SESSIONS {
            let (user, password) = USERS[i % USERS.len()];
            let options = mschapv2_options(addr, user, password);
            let (client, inbox) = connect(&options).await.expect("session comes up");
            if ping_gateway(&client, &inbox, i as u16, PAYLOAD).await {
                pinged += 1;
            }
            clients.push(client);
        }
        // Scraped from this thread (inside the namespace) while the
        // sessions are up.
        let during = scrape(metrics_addr);
        // A wrong password: refused, closed as auth_attempts_exhausted.
        let options = mschapv2_options(addr, "alice", "not-her-password");
        let rejected = connect(&options).await.is_err();
        for client in &clients {
            client.close(Duration::from_secs(5)).await;
        }
        (during, pinged, rejected)
    });
    assert_eq!(pinged, SESSIONS, "every session reached the gateway");
    assert!(rejected, "the wrong password was accepted");

    let (status, text) = during;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    let live = samples(&text);
    assert_eq!(value(&live, "sstpd_sessions_active"), SESSIONS as u64);
    assert!(
        ["tso", "tso_uso"]
            .iter()
            .any(|active| text.contains(&format!(
                "sstpd_tun_offload_info{{mode=\"auto\",active=\"{active}\"}} 1"
            ))),
        "the offloads the kernel took are exported: {text}"
    );
    assert_eq!(
        value(&live, "sstpd_sessions_established_total"),
        SESSIONS as u64
    );
    let per_worker: u64 = (0..2)
        .map(|w| {
            value(
                &live,
                &format!("sstpd_worker_sessions_active{{worker=\"{w}\"}}"),
            )
        })
        .sum();
    assert_eq!(per_worker, SESSIONS as u64);
    assert_eq!(value(&live, "sstpd_connections_preauth"), 0);
    assert_eq!(value(&live, "sstpd_connections_open"), SESSIONS as u64);
    // One pool address per session; the size is the pool's, whatever is in use.
    assert_eq!(value(&live, "sstpd_pool_ipv4_in_use"), SESSIONS as u64);
    let pool_size = value(&live, "sstpd_pool_ipv4_size");
    assert!(pool_size > SESSIONS as u64, "{pool_size}");

    assert!(server.wait_idle(Duration::from_secs(10)), "sessions left");
    // Quiescent: the endpoint and the server's own snapshot must agree
    // exactly, and both with what the clients did.
    let (status, text) = server.ns.run(move || scrape(metrics_addr));
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    let after = samples(&text);
    let stats = server.handle().metrics();
    assert_eq!(value(&after, "sstpd_sessions_active"), 0);
    assert_eq!(
        value(&after, "sstpd_pool_ipv4_in_use"),
        0,
        "every address back"
    );
    assert_eq!(value(&after, "sstpd_pool_ipv4_size"), pool_size);
    assert_eq!(
        value(&after, "sstpd_sessions_established_total"),
        SESSIONS as u64
    );
    assert_eq!(
        value(&after, "sstpd_connections_accepted_total"),
        SESSIONS as u64 + 1
    );
    assert_eq!(
        value(
            &after,
            r#"sstpd_auth_total{reason="auth_failure_mschapv2"}"#
        ),
        3,
        "MS-CHAPv2 spends ppp.auth_max_attempts (3) attempts"
    );
    let closed: BTreeMap<&str, u64> = sstpd::metrics::Family::SessionsClosed
        .events()
        .iter()
        .map(|e| {
            let series = format!("sstpd_sessions_closed_total{{reason=\"{}\"}}", e.label());
            (e.label(), value(&after, &series))
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    assert_eq!(
        closed.values().sum::<u64>(),
        SESSIONS as u64 + 1,
        "one close reason per connection: {closed:?}"
    );
    assert_eq!(
        closed.get("auth_attempts_exhausted"),
        Some(&1),
        "{closed:?}"
    );
    let clean =
        closed.get("peer_terminated").unwrap_or(&0) + closed.get("peer_disconnect").unwrap_or(&0);
    assert_eq!(clean, SESSIONS as u64, "clients closed cleanly: {closed:?}");
    for (label, n) in &closed {
        assert_eq!(stats.event(label), *n, "{label}");
    }
    // Bytes and packets: at least the echo requests sent and the replies
    // received, and exactly what the server counted.
    let echo_len = 20 + 8 + PAYLOAD.len() as u64;
    for (direction, packets, bytes) in [
        ("from_clients", stats.rx_packets, stats.rx_bytes),
        ("to_clients", stats.tx_packets, stats.tx_bytes),
    ] {
        let p = value(
            &after,
            &format!("sstpd_ip_packets_total{{direction=\"{direction}\"}}"),
        );
        let b = value(
            &after,
            &format!("sstpd_ip_bytes_total{{direction=\"{direction}\"}}"),
        );
        assert_eq!((p, b), (packets, bytes), "{direction}");
        assert!(p >= SESSIONS as u64, "{direction}: {p} packets");
        assert!(b >= SESSIONS as u64 * echo_len, "{direction}: {b} bytes");
    }
    // Every handshake by version and suite: the clients offered 1.2 and
    // 1.3, so 1.3 it was.
    assert_eq!(
        value(&after, r#"sstpd_tls_versions_total{version="tls13"}"#),
        SESSIONS as u64 + 1
    );
    let suites: u64 = after
        .iter()
        .filter(|(series, _)| series.starts_with("sstpd_tls_cipher_suites_total{"))
        .map(|(_, &n)| n as u64)
        .sum();
    assert_eq!(suites, SESSIONS as u64 + 1);
    // Setup latency: every connection finished TLS, HTTP and SSTP; the
    // refused one went no further.
    for (phase, n) in [
        ("tls", SESSIONS + 1),
        ("http", SESSIONS + 1),
        ("sstp", SESSIONS + 1),
        ("auth", SESSIONS),
        ("call_connected", SESSIONS),
        ("ipcp", SESSIONS),
    ] {
        let count = format!("sstpd_session_setup_seconds_count{{phase=\"{phase}\"}}");
        let inf = format!("sstpd_session_setup_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}}");
        assert_eq!(value(&after, &count), n as u64, "{phase}");
        assert_eq!(value(&after, &inf), n as u64, "{phase}");
        let sum = after[&format!("sstpd_session_setup_seconds_sum{{phase=\"{phase}\"}}")];
        assert!(sum > 0.0 && sum < 60.0 * n as f64, "{phase}: {sum}");
    }
    // The two scrapes were counted (the counter is read before this
    // scrape's own count is added).
    assert_eq!(
        value(
            &after,
            r#"sstpd_metrics_requests_total{reason="metrics_scraped"}"#
        ),
        1
    );
    assert_eq!(stats.event("metrics_scraped"), 2);

    // Every metric the documented alerts use is one this server exports
    // (a sample, or a declared family whose series this configuration does
    // not have, such as the RADIUS servers').
    let declared = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next());
    let exported: std::collections::BTreeSet<&str> = after
        .keys()
        .map(|series| series.split('{').next().unwrap())
        .chain(declared)
        .collect();
    let (_, alerts) = documented_prometheus_files();
    let mut named: Vec<&str> = alerts
        .match_indices("sstpd_")
        .map(|(at, _)| {
            let rest = &alerts[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(named.len() >= 10, "{named:?}");
    for name in named {
        assert!(
            exported.contains(name),
            "docs/operations.md alerts on {name}, which sstpd does not export"
        );
    }
}

/// docs/operations.md's `prometheus.yml` and `sstpd-alerts.yml`: its first
/// and second YAML blocks.
fn documented_prometheus_files() -> (String, String) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .unwrap();
    let blocks: Vec<String> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect();
    assert_eq!(blocks.len(), 2, "prometheus.yml and sstpd-alerts.yml");
    (blocks[0].clone(), blocks[1].clone())
}

#[test]
fn the_documented_scrape_config_and_alerts_pass_promtool() {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let (config, alerts) = documented_prometheus_files();
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::write(dir.path().join("sstpd-alerts.yml"), alerts).unwrap();
    for args in [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "sstpd-alerts.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_endpoint_is_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    let server = TestServer::start(config);
    assert_eq!(server.handle().metrics_addr(), None);
}

#[test]
fn radius_round_trips_are_timed_by_result_against_freeradius() {
    use sstpd::config::{RadiusServer, Secret, UserBackend};
    use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusUser};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.users.backends = vec![UserBackend::Radius];
    config.radius.auth_server = vec![RadiusServer {
        address: "127.0.0.1:1812".parse().unwrap(),
        secret: Secret("testing123".into()),
    }];
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::start(config);
    let radius = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("carol", "carol-secret")],
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts in the namespace");
    let metrics_addr = server.handle().metrics_addr().unwrap();
    let addr = server.addr;
    let (accepted, rejected) = server.run_clients(move || async move {
        let options = |password: &str| mschapv2_options(addr, "carol", password);
        let accepted = match connect(&options("carol-secret")).await {
            Ok((client, _)) => {
                client.close(Duration::from_secs(5)).await;
                true
            }
            Err(_) => false,
        };
        let rejected = connect(&options("wrong")).await.is_err();
        (accepted, rejected)
    });
    assert!(accepted && rejected, "{}", radius.log());
    let (_, text) = server.ns.run(move || scrape(metrics_addr));
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    let s = samples(&text);
    let stats = server.handle().metrics();
    // One Access-Request accepted; the wrong password spent the
    // connection's MS-CHAPv2 attempts, each one rejected.
    let accepts = stats.event("radius_accept");
    let rejects = stats.event("radius_reject");
    assert_eq!(accepts, 1, "{stats}");
    assert!(rejects >= 1, "{stats}");
    for (result, n) in [("accept", accepts), ("reject", rejects), ("no_answer", 0)] {
        let count = format!("sstpd_radius_access_seconds_count{{result=\"{result}\"}}");
        assert_eq!(value(&s, &count), n, "{result}");
    }
    let sum = s[r#"sstpd_radius_access_seconds_sum{result="accept"}"#];
    assert!(
        sum > 0.0 && sum < 5.0,
        "one round trip on loopback: {sum} s"
    );
    assert_eq!(value(&s, "sstpd_radius_auth_queued"), 0);
}
