//! Every mode of the load generator against sstpd in a network namespace,
//! with the traffic peer next to the server where the mode needs one.
//! Rates are kept low where a test compares counts exactly, so that
//! nothing is lost even on a busy two-core machine; full-speed runs are
//! checked for consistent accounting instead.

mod support;

use std::net::SocketAddrV4;
use std::time::Duration;

use sstp_loadgen::packet::IPV4_UDP_OVERHEAD;
use sstp_loadgen::{Direction, Mode};
use sstpd::config::CryptoBindingHash;
use sstpd::proto::auth::AuthProtocol;
use support::*;

#[test]
fn echo_at_a_low_rate_gets_every_reply_and_phases_add_up() {
    let server = server();
    let mut config = load_config(&server, Mode::Echo { to: None }, 8);
    config.pps = Some(20.0);
    config.payload = Some(100);
    let r = run(&server, config);
    assert_consistent(&r);
    let s = &r.sessions;
    assert_eq!(
        (s.established, s.failed, s.dropped, s.held, s.closed),
        (8, 0, 0, 8, 8),
        "{s:?}"
    );
    let t = &r.traffic;
    assert!(t.probes_sent >= 8, "every session sent: {t:?}");
    assert_eq!(t.probes_answered, t.probes_sent, "replies equal requests");
    assert_eq!(r.rtt.count, t.probes_answered);
    assert_eq!(t.up.packets, t.probes_sent);
    assert_eq!(t.up.bytes, t.up.packets * (20 + 8 + 100));
    assert_eq!(t.reordered, 0);
    let loss = r.loss.round_trip.as_ref().expect("echo measures loss");
    assert_eq!((loss.sent, loss.lost), (t.probes_sent, 0));
    assert!(r.rtt.min_us <= r.rtt.p50_us && r.rtt.p50_us <= r.rtt.max_us);
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, 8, "{stats}");
    assert!(stats.rx_packets >= t.probes_sent, "{stats}");
}

#[test]
fn a_pace_the_load_generator_cannot_keep_is_reported_as_late_sends() {
    let server = server();
    let mut config = load_config(&server, Mode::Echo { to: None }, 1);
    // A packet every microsecond: more than one session's TLS carries, so
    // the sender falls behind and catches up in bursts.
    config.pps = Some(1_000_000.0);
    let r = run(&server, config);
    assert_consistent(&r);
    let t = &r.traffic;
    assert!(t.late_sends > 0, "{t:?}");
    assert!(t.late_sends <= t.up.packets, "{t:?}");
    assert!(
        r.table().contains("sent a period or more late"),
        "the table says so"
    );
}

#[test]
fn udp_reflected_by_the_peer_matches_byte_for_byte() {
    let server = server();
    let peer = start_peer(&server);
    let mut config = load_config(
        &server,
        Mode::Udp {
            to: None,
            reflect: true,
            // Each probe from the next of five source ports: every reply
            // still finds its probe.
            flows: 5,
        },
        6,
    );
    config.pps = Some(25.0);
    config.payload = Some(200);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.sessions.held, 6, "{:?}", r.sessions);
    let t = &r.traffic;
    assert!(t.probes_sent >= 6);
    assert_eq!(t.probes_answered, t.probes_sent);
    assert_eq!(t.up.bytes, t.up.packets * (IPV4_UDP_OVERHEAD as u64 + 200));
    let p = &r.peer;
    assert_eq!((p.queried_flows, p.answered_flows), (6, 6));
    assert_eq!(p.rx_packets, t.up.packets, "the peer got every datagram");
    assert_eq!(p.rx_bytes, t.up.bytes, "and every byte");
    assert_eq!(p.tx_packets, p.rx_packets, "and reflected each one");
    assert_eq!(t.payload_mismatches, 0, "every reply carried what was sent");
    let up = r.loss.up.as_ref().expect("the peer answered");
    assert_eq!(up.lost, 0);
    assert_eq!(peer.totals().rx_packets, t.up.packets);
}

#[test]
fn bulk_both_ways_at_a_set_rate_loses_nothing() {
    let server = server();
    let _peer = start_peer(&server);
    let mut config = load_config(
        &server,
        Mode::Bulk {
            to: Some(SocketAddrV4::new(GATEWAY, PEER_PORT)),
            direction: Direction::Both,
            // Eight flows each way: ports cycle per datagram, and the
            // counts still match one for one.
            flows: 8,
            follow: false,
        },
        4,
    );
    config.pps = Some(50.0);
    config.payload = Some(500);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.sessions.held, 4);
    let (t, p) = (&r.traffic, &r.peer);
    assert_eq!(p.answered_flows, 4);
    assert_eq!(p.streams_unanswered, 0);
    let size = IPV4_UDP_OVERHEAD as u64 + 500;
    assert!(t.up.packets >= 4 && t.down.packets >= 4, "{t:?}");
    // Upstream: the peer counted what we sent.
    assert_eq!(p.rx_packets, t.up.packets);
    assert_eq!(p.rx_bytes, t.up.bytes);
    assert_eq!(t.up.bytes, t.up.packets * size);
    // Downstream: we received what the peer sent.
    let down = r.loss.down.as_ref().expect("down measured");
    assert_eq!((down.sent, down.lost), (p.tx_packets, 0));
    assert_eq!(p.tx_bytes, p.tx_packets * size);
    assert_eq!(
        t.payload_mismatches, 0,
        "the stream arrived as the peer sent it"
    );
    assert_eq!(r.loss.up.as_ref().map(|l| l.lost), Some(0));
}

#[test]
fn bulk_at_full_speed_accounts_for_every_packet() {
    let server = server();
    let _peer = start_peer(&server);
    let mut config = load_config(
        &server,
        Mode::Bulk {
            to: None,
            direction: Direction::Both,
            flows: 1,
            follow: false,
        },
        2,
    );
    config.duration = Duration::from_secs(1);
    let payload = config.payload() as u64;
    let r = run(&server, config);
    assert_consistent(&r);
    let (t, p) = (&r.traffic, &r.peer);
    assert!(t.up.gbit_per_s > 0.0 && t.down.gbit_per_s > 0.0, "{t:?}");
    assert_eq!(p.answered_flows, p.queried_flows);
    // Whatever was lost, sent = received + lost, in packets and bytes.
    let up = r.loss.up.as_ref().expect("up measured");
    assert_eq!(up.sent, t.up.packets);
    assert_eq!(up.received, p.rx_packets);
    assert_eq!(up.sent, up.received + up.lost);
    assert_eq!(
        p.rx_bytes,
        p.rx_packets * (payload + IPV4_UDP_OVERHEAD as u64)
    );
    let down = r.loss.down.as_ref().expect("down measured");
    assert_eq!(down.sent, p.tx_packets);
    assert!(down.received <= down.sent);
    assert_eq!(down.sent, down.received + down.lost);
    assert!(r.cpu.per_gb_s.is_some());
}

/// `--follow`: the peer's stream is steered by what arrives, its rate
/// changed in place (the sequence goes on, so nothing counts as reordered
/// or lost that arrived), and far less is dropped than when it floods.
#[test]
fn bulk_down_following_the_tunnel_keeps_the_accounting_and_drops_little() {
    let server = server();
    let peer = start_peer(&server);
    let mut config = load_config(
        &server,
        Mode::Bulk {
            to: None,
            direction: Direction::Down,
            flows: 1,
            follow: true,
        },
        1,
    );
    config.duration = Duration::from_secs(2);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.config.follow, Some(true));
    let (t, p) = (&r.traffic, &r.peer);
    assert_eq!(p.answered_flows, p.queried_flows);
    let down = r.loss.down.as_ref().expect("down measured");
    assert_eq!(down.sent, p.tx_packets);
    assert!(down.received <= down.sent);
    assert_eq!(down.sent, down.received + down.lost);
    assert_eq!(t.reordered, 0, "the rate changed, the sequence went on");
    // Forty intervals of 50 ms: the rate was set again and again, in
    // place (a restarted stream would have shown as reordering above).
    let totals = peer.totals();
    assert!(totals.streams_started >= 1, "{totals:?}");
    assert!(totals.streams_changed >= 10, "{totals:?}");
    // A flood loses most of what the peer sends (83-87% on the 2-core
    // machine this was written on); following, the loss is the overshoot
    // of the ramp and of each probe.
    assert!(
        down.ratio < 0.3,
        "following the tunnel lost {:.1}% of the stream",
        down.ratio * 100.0
    );
}

#[test]
fn idle_holds_sessions_through_a_quirky_servers_keepalives() {
    // SHA-256-only crypto binding, PAP only (the client prefers MS-CHAPv2
    // and must take what is offered), SSTP Echo Requests and LCP
    // Echo-Requests after each second of silence: a client that did not
    // answer would be dropped within the hold.
    let server = server_with(|c| {
        c.sstp.crypto_binding = vec![CryptoBindingHash::Sha256];
        c.sstp.hello_interval = Duration::from_secs(1);
        c.ppp.lcp_echo_interval = Duration::from_secs(1);
        c.ppp.auth = vec![AuthProtocol::Pap];
    });
    let mut config = load_config(&server, Mode::Idle, 5);
    config.duration = Duration::from_millis(3500);
    let r = run(&server, config);
    assert_consistent(&r);
    let s = &r.sessions;
    assert_eq!(
        (s.established, s.dropped, s.held, s.closed),
        (5, 0, 5, 5),
        "{s:?}"
    );
    assert!(r.timing.window_s >= 3.5);
    assert_eq!(r.traffic.up.packets, 0, "no traffic, keepalives only");
    assert_eq!(server.handle().metrics().sessions_established, 5);
}

#[test]
fn churn_completes_cycles() {
    let server = server();
    let mut config = load_config(
        &server,
        Mode::Churn {
            hold: Duration::from_millis(100),
        },
        3,
    );
    config.duration = Duration::from_secs(2);
    let r = run(&server, config);
    assert_consistent(&r);
    let s = &r.sessions;
    assert!(r.churn.cycles >= 1, "{r:?}");
    assert_eq!(r.churn.cycles, s.closed, "a cycle ends with a clean close");
    assert_eq!(s.failed + s.dropped + s.close_timeouts, 0, "{s:?}");
    assert_eq!(s.established, s.closed);
    assert!(r.churn.cycles_per_s > 0.0);
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, s.established, "{stats}");
}

#[test]
fn a_wrong_password_is_counted_as_auth_failed() {
    // PAP is off by default (it binds with a zero key): enabled to test it.
    let server = server_with(|c| c.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap]);
    for method in [AuthProtocol::MsChapV2, AuthProtocol::Pap] {
        let mut config = load_config(&server, Mode::Idle, 3);
        config.credentials = sstp_loadgen::Credentials::single("alice", "not-her-password");
        config.auth = vec![method];
        config.max_failures = Some("2".parse().unwrap());
        let r = run(&server, config);
        assert_consistent(&r);
        let s = &r.sessions;
        assert_eq!((s.established, s.failed), (0, 3), "{method}: {s:?}");
        assert_eq!(
            s.failure_reasons.get("auth_failed"),
            Some(&3),
            "{method}: {s:?}"
        );
        assert!(s.failure_examples["auth_failed"].contains("auth_failed"));
        assert!(r.failures.exceeded && r.failed());
    }
}

#[test]
fn sessions_per_user_pattern_and_source_range_are_used() {
    let server = server_with(|c| {
        c.users.local.clear();
        for i in 0..4 {
            c.users.local.push(sstpd::config::InlineUser {
                name: format!("user{i}"),
                password: sstpd::config::Secret(format!("pw{i}")),
                ip: None,
            });
        }
    });
    let mut config = load_config(&server, Mode::Idle, 4);
    config.credentials = sstp_loadgen::Credentials::Pattern {
        user: "user%d".into(),
        password: "pw%d".into(),
    };
    config.source_range = Some("127.3.0.0/30".parse().unwrap());
    config.duration = Duration::from_millis(200);
    config.rate = Some(50.0);
    // One setup at a time per worker: a permit must be freed by the setup,
    // not held for the session's life, or the third session never starts.
    config.setup_concurrency = 2;
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.sessions.established, 4, "{:?}", r.sessions);
    assert_eq!(r.config.source_range.as_deref(), Some("127.3.0.0/30"));
    // Four sessions at 50/s: the last starts 60 ms after the first.
    assert!(r.timing.ramp_s >= 0.06, "{}", r.timing.ramp_s);
}
