//! sstpd's Prometheus endpoint scraped during a load-generator run: the
//! exposition passes `promtool check metrics` while the load is on, and
//! what the endpoint counted agrees with the load generator's report
//! (sessions set up and closed, authentications, IP packets and bytes each
//! way).

mod support;

use std::time::{Duration, Instant};

use sstp_loadgen::Mode;
use sstpd::proto::auth::AuthProtocol;
use support::prometheus::{promtool_check, samples, scrape, value};
use support::*;

const SESSIONS: u64 = 24;

#[test]
fn counters_scraped_during_a_run_agree_with_the_load_generator() {
    let server = server_with(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap()));
    let metrics = server.handle().metrics_addr().expect("the endpoint runs");
    let mut config = load_config(&server, Mode::Echo { to: None }, SESSIONS);
    config.auth = vec![AuthProtocol::MsChapV2];
    config.pps = Some(20.0);
    config.payload = Some(200);
    config.duration = Duration::from_secs(3);

    let (report, during) = std::thread::scope(|scope| {
        // Scrapes from inside the namespace once every session is up
        // (established, none left before authentication),
        // while the load generator's traffic window runs.
        let scraper = scope.spawn(|| {
            server.ns.run(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let (status, text) = scrape(metrics);
                    let live = samples(&text);
                    let up = value(&live, "sstpd_sessions_established_total") == SESSIONS
                        && value(&live, "sstpd_connections_preauth") == 0;
                    if up {
                        return Some((status, text));
                    }
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        let report = run(&server, config);
        (report, scraper.join().expect("the scraper"))
    });
    assert_consistent(&report);
    let s = &report.sessions;
    assert_eq!(
        (s.established, s.failed, s.dropped, s.closed),
        (SESSIONS, 0, 0, SESSIONS),
        "{s:?}"
    );

    let (status, text) = during.expect("every session was up at some scrape");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics during the run: {said}\n{text}");
    let live = samples(&text);
    assert_eq!(value(&live, "sstpd_connections_open"), SESSIONS);
    assert_eq!(value(&live, "sstpd_sessions_active"), SESSIONS);
    // kTLS as configured (the default, auto) and as this kernel has it.
    let kernel = match sstpd::tls::ktls::probe() {
        sstpd::tls::ktls::KtlsSupport::Available(_) => "available",
        sstpd::tls::ktls::KtlsSupport::Unavailable(_) => "unavailable",
    };
    let info = format!(r#"sstpd_ktls_info{{mode="auto",kernel="{kernel}"}}"#);
    assert_eq!(value(&live, &info), 1);
    if kernel == "unavailable" {
        assert_eq!(value(&live, "sstpd_ktls_sessions"), 0);
    }
    assert_eq!(
        value(&live, r#"sstpd_auth_total{reason="auth_success_mschapv2"}"#),
        SESSIONS
    );

    assert!(server.wait_idle(Duration::from_secs(10)), "sessions left");
    let (status, text) = server.ns.run(move || scrape(metrics));
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics after the run: {said}\n{text}");
    let after = samples(&text);
    // Nothing left waiting between the workers.
    for worker in ["0", "1"] {
        for queue in ["packet_batches", "control"] {
            let series = format!(r#"sstpd_worker_mailbox_{queue}{{worker="{worker}"}}"#);
            assert_eq!(value(&after, &series), 0, "{series}");
        }
    }
    let t = &report.traffic;
    assert!(t.up.packets >= SESSIONS, "every session sent: {t:?}");
    let expected = [
        ("sstpd_connections_accepted_total", s.attempted),
        ("sstpd_sessions_established_total", s.established),
        ("sstpd_sessions_active", 0),
        (
            r#"sstpd_auth_total{reason="auth_success_mschapv2"}"#,
            s.established,
        ),
        (r#"sstpd_auth_total{reason="auth_failure_mschapv2"}"#, 0),
        (
            r#"sstpd_ip_packets_total{direction="from_clients"}"#,
            t.up.packets,
        ),
        (
            r#"sstpd_ip_bytes_total{direction="from_clients"}"#,
            t.up.bytes,
        ),
        // Every echo reply the clients got, in the window or after it
        // (the report's `down` counts the window only).
        (
            r#"sstpd_ip_packets_total{direction="to_clients"}"#,
            t.probes_answered,
        ),
        (
            r#"sstpd_ip_bytes_total{direction="to_clients"}"#,
            t.probes_answered * (t.up.bytes / t.up.packets),
        ),
    ];
    let found: Vec<(&str, u64)> = expected
        .iter()
        .map(|&(series, _)| (series, value(&after, series)))
        .collect();
    assert_eq!(
        found,
        expected.to_vec(),
        "the endpoint against the report {report:?}"
    );
    // The load generator closed every session itself: LCP Terminate, then
    // Call Disconnect.
    let closed: Vec<(&String, &f64)> = after
        .iter()
        .filter(|(series, &n)| series.starts_with("sstpd_sessions_closed_total{") && n > 0.0)
        .collect();
    assert_eq!(
        closed,
        [(
            &r#"sstpd_sessions_closed_total{reason="peer_terminated"}"#.to_string(),
            &(s.closed as f64)
        )],
    );
}
