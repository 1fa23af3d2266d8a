//! PPP links alone, without a peer: helpers that open a lone link's LCP
//! by playing a minimal peer, and the fuzzers' entry points into PPP. Two
//! links back to back are [`LinkPair`](super::pair::LinkPair), on the
//! common harness. Not a stable API.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::ppp::frame::{
    parse_frame, write_header, HeaderFormat, PROTO_IPCP, PROTO_IPV6CP, PROTO_LCP,
};
use crate::proto::ppp::fsm::State;
use crate::proto::ppp::lcp::OPT_MAGIC_NUMBER;
use crate::proto::ppp::packet::{
    parse_control, parse_options, write_control, write_option, CONFIGURE_ACK, CONFIGURE_REQUEST,
};
use crate::proto::ppp::{IpVersion, PppConfig, PppEvent, PppLink};
use crate::routing::ServerPools;

use super::pair::{LinkEnd, Services, Side};

/// Opens a lone link's LCP by playing a minimal peer: a Configure-Request
/// carrying only `peer_magic`, and an Ack of the link's latest
/// Configure-Request (taken from its queued frames, which are consumed).
/// Returns whether LCP reached Opened. Frames the link sends in answer stay
/// queued.
pub fn open_lcp(link: &mut PppLink, now: Instant, peer_magic: u32) -> bool {
    let mut request = None;
    let mut frame = Vec::new();
    while link.poll_transmit(&mut frame) {
        if let Ok(parsed) = parse_frame(&frame) {
            if let Ok(packet) = parse_control(parsed.information) {
                if parsed.protocol == PROTO_LCP && packet.code == CONFIGURE_REQUEST {
                    request = Some((packet.identifier, packet.data.to_vec()));
                }
            }
        }
        frame.clear();
    }
    let Some((identifier, options)) = request else {
        return false;
    };
    let mut magic = Vec::new();
    write_option(OPT_MAGIC_NUMBER, &peer_magic.to_be_bytes(), &mut magic);
    let mut ignore = |_: IpVersion, _: &[u8]| {};
    for (code, id, data) in [
        (CONFIGURE_REQUEST, 0x70, &magic),
        (CONFIGURE_ACK, identifier, &options),
    ] {
        frame.clear();
        write_header(PROTO_LCP, HeaderFormat::FULL, &mut frame);
        write_control(code, id, &[data], &mut frame);
        link.handle_frame(now, &frame, &mut ignore);
    }
    link.lcp_state() == State::Opened
}

/// A server link whose LCP is open, in the Network phase with its NCPs
/// negotiating (their requests queued). `config` must not require
/// authentication.
pub fn server_in_network(config: Arc<PppConfig>, now: Instant, seed: [u8; 32]) -> PppLink {
    server_in_network_with(
        config,
        now,
        seed,
        &super::ipv4_pools([10, 0, 0, 2], [10, 0, 0, 3]),
    )
    .0
}

/// [`server_in_network`] with the peer's address from `pools` (answered
/// as the runtime does); also returns the events the link reported on the
/// way.
pub fn server_in_network_with(
    config: Arc<PppConfig>,
    now: Instant,
    seed: [u8; 32],
    pools: &Arc<ServerPools>,
) -> (PppLink, Vec<PppEvent>) {
    let mut link = PppLink::server(config, now, seed);
    link.open(now);
    open_lcp(&mut link, now, 0x1122_3344);
    let mut side = Side::new(LinkEnd {
        link,
        services: Services::new(None, pools.clone()),
    });
    while side.collect_events(now) {}
    (side.endpoint.link, side.events)
}

/// A client link whose LCP is open, in the Network phase with its NCPs
/// negotiating. The minimal peer asks for no authentication.
pub fn client_in_network(config: Arc<PppConfig>, now: Instant, seed: [u8; 32]) -> PppLink {
    let mut link = PppLink::client(config, now, "fuzz", b"fuzz", seed);
    link.open(now);
    open_lcp(&mut link, now, 0x5566_7788);
    link
}

// ---- Entry points of the PPP fuzz targets (fuzz/fuzz_targets/*.rs) ----

/// A configuration chosen by the bits of `flags`: 0x02 authentication
/// offered/accepted, 0x04 PFC/ACFC requested and used, 0x08 IPv6CP off,
/// 0x10 LCP keepalive, 0x20 name servers configured (server) or requested
/// (client).
pub fn fuzz_config(flags: u8) -> PppConfig {
    let mut config = PppConfig::default();
    if flags & 0x02 == 0 {
        config.auth_protocols.clear();
    }
    config.lcp.request_compression = flags & 0x04 != 0;
    config.lcp.compress_transmit = flags & 0x04 != 0;
    config.ipv6cp.enabled = flags & 0x08 == 0;
    if flags & 0x10 != 0 {
        config.lcp.echo_interval = Some(Duration::from_secs(10));
    }
    config.ipcp.local_address = Some(Ipv4Addr::new(10, 0, 0, 1));
    config.ipcp.request_dns = flags & 0x20 != 0;
    if flags & 0x20 != 0 {
        config.ipcp.dns = [
            Some(Ipv4Addr::new(10, 0, 0, 53)),
            Some(Ipv4Addr::new(10, 0, 1, 53)),
        ];
        config.ipcp.nbns = [Some(Ipv4Addr::new(10, 0, 0, 139)), None];
    }
    config
}

/// The record code that acknowledges the link's latest Configure-Request
/// of the protocol being fed (so inputs can reach Ack-Rcvd and Opened).
pub const ACK_OUR_REQUEST: u8 = 0x7f;
/// A record code bit: run the link's timers first.
pub const RUN_TIMERS: u8 = 0x80;

/// Feeds `records` to `link` as control packets of `protocol`. Each record
/// is `code, identifier, length, options[length]` (a short last record
/// takes what is left). Code [`ACK_OUR_REQUEST`] acknowledges the link's
/// latest Configure-Request of `protocol`; [`RUN_TIMERS`] set in a code
/// first moves the clock to the link's next deadline. Everything the link
/// sends must parse. Returns the number of records fed.
pub fn feed_control_records(
    link: &mut PppLink,
    mut now: Instant,
    protocol: u16,
    mut records: &[u8],
) -> usize {
    let mut latest_request: Option<(u8, Vec<u8>)> = None;
    let mut fed = 0;
    let mut frame = Vec::new();
    let mut check_ip = |_: IpVersion, packet: &[u8]| assert!(!packet.is_empty());
    loop {
        drain_checked(link, protocol, &mut latest_request);
        while link.poll_event().is_some() {}
        let [code, identifier, length, rest @ ..] = records else {
            return fed;
        };
        let (options, tail) = rest.split_at(usize::from(*length).min(rest.len()));
        records = tail;
        if code & RUN_TIMERS != 0 {
            if let Some(deadline) = link.poll_timeout() {
                now = now.max(deadline);
                link.handle_timeout(now);
                drain_checked(link, protocol, &mut latest_request);
            }
        }
        frame.clear();
        write_header(protocol, HeaderFormat::FULL, &mut frame);
        match (code & !RUN_TIMERS, &latest_request) {
            (ACK_OUR_REQUEST, Some((id, request))) => {
                write_control(CONFIGURE_ACK, *id, &[request], &mut frame)
            }
            (ACK_OUR_REQUEST, None) => continue,
            (code, _) => write_control(code, *identifier, &[options], &mut frame),
        }
        link.handle_frame(now, &frame, &mut check_ip);
        fed += 1;
    }
}

/// Drains `link`'s output, checking every frame parses, and remembers its
/// latest Configure-Request of `protocol`.
fn drain_checked(link: &mut PppLink, protocol: u16, latest_request: &mut Option<(u8, Vec<u8>)>) {
    let mut out = Vec::new();
    while link.poll_transmit(&mut out) {
        let frame = parse_frame(&out).expect("the link sends valid frames");
        let packet =
            parse_control(frame.information).expect("the link sends valid control packets");
        if frame.protocol == protocol && packet.code == CONFIGURE_REQUEST {
            *latest_request = Some((packet.identifier, packet.data.to_vec()));
        }
        out.clear();
    }
}

/// Fuzz target `ppp_frame`: the frame, control packet and option parsers,
/// then the same bytes as a frame into a server link in the Network phase.
pub fn fuzz_ppp_frame(data: &[u8]) -> PppLink {
    if let Ok(frame) = parse_frame(data) {
        assert!(frame.information.len() < data.len());
        if let Ok(packet) = parse_control(frame.information) {
            if let Ok(options) = parse_options(packet.data) {
                let total: usize = options.map(|option| option.raw.len()).sum();
                assert_eq!(total, packet.data.len());
            }
        }
    }
    let now = Instant::now();
    let mut link = server_in_network(Arc::new(fuzz_config(0)), now, [7; 32]);
    link.handle_frame(now, data, &mut |_, packet| assert!(!packet.is_empty()));
    drain_checked(&mut link, PROTO_LCP, &mut None);
    link
}

/// Splits the flags byte off a fuzz input.
fn flags_and_records(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(flags, records)| (*flags, records))
}

/// Fuzz target `lcp_options`: LCP packets into a link that is negotiating
/// LCP. The first byte: 0x01 client (else server), then [`fuzz_config`]
/// bits; the rest are [`feed_control_records`] records.
pub fn fuzz_lcp_options(data: &[u8]) -> Option<PppLink> {
    let (flags, records) = flags_and_records(data)?;
    let now = Instant::now();
    let config = Arc::new(fuzz_config(flags));
    let mut link = if flags & 0x01 != 0 {
        PppLink::client(config, now, "fuzz", b"fuzz", [7; 32])
    } else {
        PppLink::server(config, now, [7; 32])
    };
    link.open(now);
    feed_control_records(&mut link, now, PROTO_LCP, records);
    Some(link)
}

/// A link of the role in `flags` (0x01 client) in the Network phase,
/// authentication off so that it gets there without a peer.
fn network_link(flags: u8) -> (PppLink, Instant) {
    let now = Instant::now();
    let config = Arc::new(fuzz_config(flags & !0x02));
    let link = if flags & 0x01 != 0 {
        client_in_network(config, now, [7; 32])
    } else {
        server_in_network(config, now, [7; 32])
    };
    (link, now)
}

/// Fuzz target `ipcp_options`: IPCP packets into a link whose IPCP is
/// negotiating. Input as for [`fuzz_lcp_options`].
pub fn fuzz_ipcp_options(data: &[u8]) -> Option<PppLink> {
    let (flags, records) = flags_and_records(data)?;
    let (mut link, now) = network_link(flags);
    feed_control_records(&mut link, now, PROTO_IPCP, records);
    Some(link)
}

/// Fuzz target `ipv6cp_options`: IPv6CP packets into a link whose IPv6CP
/// is negotiating. Input as for [`fuzz_lcp_options`].
pub fn fuzz_ipv6cp_options(data: &[u8]) -> Option<PppLink> {
    let (flags, records) = flags_and_records(data)?;
    let (mut link, now) = network_link(flags & !0x08);
    feed_control_records(&mut link, now, PROTO_IPV6CP, records);
    Some(link)
}
