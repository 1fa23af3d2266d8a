//! The traffic modes over IPv6 through the tunnel, alone and beside IPv4:
//! sstpd with `[ipv6]` enabled in a network namespace, the load generator
//! negotiating IPv6CP, soliciting the Router Advertisement and forming its
//! address by SLAAC, and the traffic peer on `[::]` next to the server.
//! Every figure is checked per family (`families` in the report).

mod support;

use sstp_loadgen::packet::IPV6_UDP_OVERHEAD;
use sstp_loadgen::report::FamilyFigures;
use sstp_loadgen::{Direction, Family, Mode, Report};
use support::*;

fn dual_stack_server() -> Harness {
    server_with(|c| c.ipv6.enabled = true)
}

fn family<'a>(r: &'a Report, name: &str) -> &'a FamilyFigures {
    r.families
        .get(name)
        .unwrap_or_else(|| panic!("no {name} figures in {:?}", r.families.keys()))
}

#[test]
fn echo_over_both_families_gets_every_reply_of_each() {
    let server = dual_stack_server();
    let mut config = load_config(&server, Mode::Echo { to: None }, 4);
    config.family = Family::Both;
    config.pps = Some(20.0);
    config.payload = Some(100);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.config.family, "both");
    let s = &r.sessions;
    assert_eq!((s.established, s.held, s.closed), (4, 4, 4), "{s:?}");
    let (v4, v6) = (family(&r, "ipv4"), family(&r, "ipv6"));
    for (name, f, header) in [("ipv4", v4, 20u64), ("ipv6", v6, 40)] {
        let t = &f.traffic;
        assert!(t.probes_sent >= 4, "{name}: every session sent: {t:?}");
        assert_eq!(
            t.probes_answered,
            t.probes_sent,
            "{name}: {t:?} {}",
            server.handle().metrics()
        );
        assert_eq!(t.up.bytes, t.up.packets * (header + 8 + 100), "{name}");
        assert_eq!(f.rtt.count, t.probes_answered, "{name}");
        assert_eq!(f.loss.round_trip.as_ref().unwrap().lost, 0, "{name}");
    }
    assert_eq!(
        r.traffic.probes_sent,
        v4.traffic.probes_sent + v6.traffic.probes_sent,
        "the totals are the families' sums"
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.event("spoofed_source"), 0, "{stats}");
}

#[test]
fn udp_over_ipv6_alone_is_reflected_byte_for_byte() {
    let server = dual_stack_server();
    let peer = start_peer(&server);
    let mut config = load_config(
        &server,
        Mode::Udp {
            to: None,
            reflect: true,
            flows: 1,
        },
        4,
    );
    config.family = Family::V6;
    config.pps = Some(25.0);
    config.payload = Some(200);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.sessions.held, 4, "{:?}", r.sessions);
    assert!(!r.families.contains_key("ipv4"), "only IPv6 ran");
    let v6 = family(&r, "ipv6");
    let t = &v6.traffic;
    assert!(t.probes_sent >= 4);
    assert_eq!(t.probes_answered, t.probes_sent);
    assert_eq!(t.up.bytes, t.up.packets * (IPV6_UDP_OVERHEAD as u64 + 200));
    let p = &v6.peer;
    assert_eq!((p.queried_flows, p.answered_flows), (4, 4));
    assert_eq!(p.rx_packets, t.up.packets, "the peer got every datagram");
    assert_eq!(p.rx_bytes, t.up.bytes, "and counted IPv6 bytes");
    assert_eq!(p.tx_packets, p.rx_packets);
    assert_eq!(peer.totals().rx_packets, t.up.packets);
}

#[test]
fn bulk_both_ways_over_both_families_loses_nothing_at_a_set_rate() {
    let server = dual_stack_server();
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
    config.family = Family::Both;
    config.pps = Some(50.0);
    let r = run(&server, config);
    assert_consistent(&r);
    assert_eq!(r.sessions.held, 2);
    // The default bulk packet fills 1400 octets in either family.
    for name in ["ipv4", "ipv6"] {
        let f = family(&r, name);
        let (t, p) = (&f.traffic, &f.peer);
        assert_eq!(p.answered_flows, 2, "{name}: {p:?}");
        assert_eq!(p.streams_unanswered, 0, "{name}");
        assert!(t.up.packets >= 2 && t.down.packets >= 2, "{name}: {t:?}");
        assert_eq!(t.up.bytes, t.up.packets * 1400, "{name}");
        assert_eq!(
            p.rx_bytes,
            p.rx_packets * 1400,
            "{name}: the peer counts the same"
        );
        assert_eq!(f.loss.up.as_ref().unwrap().lost, 0, "{name}");
        assert_eq!(f.loss.down.as_ref().unwrap().lost, 0, "{name}");
    }
}
