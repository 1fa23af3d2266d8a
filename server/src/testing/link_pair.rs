//! A client and a server [`PppLink`] wired back to back on a virtual clock,
//! for tests, fuzz targets and benchmarks (no SSTP in between: frames are
//! shuttled directly). Not a stable API.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::auth::{AuthDecision, AuthRequest};
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

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Decides whether to drop the `n`-th frame (counting from 0) travelling
/// in a direction.
pub type LossFn = Box<dyn FnMut(Direction, u64, &[u8]) -> bool>;
/// Answers the server's authentication requests.
pub type AuthenticatorFn = Box<dyn FnMut(&AuthRequest) -> AuthDecision>;

/// Two links and the wire between them.
pub struct LinkPair {
    pub server: PppLink,
    pub client: PppLink,
    /// The start of the virtual clock.
    pub base: Instant,
    pub now: Instant,
    /// Frame loss injected on the wire.
    pub loss: Option<LossFn>,
    /// Answers [`PppEvent::AuthRequest`] at once when set.
    pub authenticator: Option<AuthenticatorFn>,
    /// Every event either link reported, in order.
    pub server_events: Vec<PppEvent>,
    pub client_events: Vec<PppEvent>,
    /// IP packets delivered to each side.
    pub server_ip: Vec<(IpVersion, Vec<u8>)>,
    pub client_ip: Vec<(IpVersion, Vec<u8>)>,
    /// Frames sent each way (index 0: client to server) and dropped.
    pub frames_sent: [u64; 2],
    pub frames_lost: u64,
    /// Where the server's address requests are answered from, as the
    /// runtime does (default: 10.0.0.2 to 10.0.0.254).
    pub addresses: Arc<ServerPools>,
}

impl fmt::Debug for LinkPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkPair")
            .field("server", &self.server.phase())
            .field("client", &self.client.phase())
            .field("elapsed", &(self.now - self.base))
            .finish_non_exhaustive()
    }
}

impl LinkPair {
    /// A pair with distinct RNG seeds derived from `seed`.
    pub fn new(
        server_config: Arc<PppConfig>,
        client_config: Arc<PppConfig>,
        username: &str,
        password: &[u8],
        seed: u8,
    ) -> Self {
        let base = Instant::now();
        LinkPair {
            server: PppLink::server(server_config, base, [seed; 32]),
            client: PppLink::client(client_config, base, username, password, [seed ^ 0x5a; 32]),
            base,
            now: base,
            loss: None,
            authenticator: None,
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_ip: Vec::new(),
            client_ip: Vec::new(),
            frames_sent: [0; 2],
            frames_lost: 0,
            addresses: super::ipv4_pools([10, 0, 0, 2], [10, 0, 0, 254]),
        }
    }

    /// Both lower layers up.
    pub fn open(&mut self) {
        self.server.open(self.now);
        self.client.open(self.now);
        self.collect_events();
    }

    /// Moves every frame queued on either side across once. Returns how
    /// many frames were sent (lost ones included).
    pub fn exchange(&mut self) -> usize {
        let mut moved = 0;
        let mut frame = Vec::new();
        while self.client.poll_transmit(&mut frame) {
            moved += 1;
            self.deliver(Direction::ClientToServer, &frame);
            frame.clear();
        }
        while self.server.poll_transmit(&mut frame) {
            moved += 1;
            self.deliver(Direction::ServerToClient, &frame);
            frame.clear();
        }
        self.collect_events();
        moved
    }

    fn deliver(&mut self, direction: Direction, frame: &[u8]) {
        let index = match direction {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        };
        let n = self.frames_sent[index];
        self.frames_sent[index] += 1;
        if let Some(loss) = &mut self.loss {
            if loss(direction, n, frame) {
                self.frames_lost += 1;
                return;
            }
        }
        let now = self.now;
        match direction {
            Direction::ClientToServer => {
                let delivered = &mut self.server_ip;
                self.server
                    .handle_frame(now, frame, &mut |v, p| delivered.push((v, p.to_vec())));
            }
            Direction::ServerToClient => {
                let delivered = &mut self.client_ip;
                self.client
                    .handle_frame(now, frame, &mut |v, p| delivered.push((v, p.to_vec())));
            }
        }
    }

    /// Drains both links' events, answering authentication requests when an
    /// authenticator is set.
    pub fn collect_events(&mut self) {
        // Bounded: each decision produces at most a few further events.
        for _ in 0..16 {
            let mut decided = false;
            while let Some(event) = self.server.poll_event() {
                if answer_address(&mut self.server, self.now, &self.addresses, &event) {
                    decided = true;
                }
                if let (PppEvent::AuthRequest(request), Some(authenticator)) =
                    (&event, &mut self.authenticator)
                {
                    let (id, decision) = (request.id, authenticator(request));
                    self.server_events.push(event);
                    let _ = self.server.auth_decision(self.now, id, decision);
                    decided = true;
                    continue;
                }
                self.server_events.push(event);
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if !decided {
                break;
            }
        }
    }

    /// Exchanges frames until the wire is quiet (at most `max_rounds`).
    pub fn settle(&mut self, max_rounds: usize) {
        for _ in 0..max_rounds {
            if self.exchange() == 0 {
                break;
            }
        }
    }

    /// Moves the clock to the earliest deadline of either link, if it is
    /// within `limit`, and runs the timers. Returns `false` otherwise.
    pub fn advance(&mut self, limit: Duration) -> bool {
        let next = [self.server.poll_timeout(), self.client.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(deadline) if deadline <= self.now + limit => {
                self.now = self.now.max(deadline);
                self.server.handle_timeout(self.now);
                self.client.handle_timeout(self.now);
                self.collect_events();
                true
            }
            _ => false,
        }
    }

    /// Settles, then advances the clock and settles again, until `done`
    /// holds or `max_steps` timer steps passed. Returns whether `done` held.
    pub fn drive_until(
        &mut self,
        max_steps: usize,
        mut done: impl FnMut(&LinkPair) -> bool,
    ) -> bool {
        for _ in 0..max_steps {
            self.settle(64);
            if done(self) {
                return true;
            }
            if !self.advance(Duration::from_secs(3600)) {
                return done(self);
            }
        }
        self.settle(64);
        done(self)
    }

    /// Moves the clock forward by `by`, running every timer that falls due.
    pub fn advance_by(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..10_000 {
            self.settle(64);
            let remaining = end.saturating_duration_since(self.now);
            if !self.advance(remaining) {
                break;
            }
        }
        self.now = end;
        self.settle(64);
    }
}

/// Plays the runtime's part in address assignment: answers a
/// [`PppEvent::Ipv4AddressRequest`] from `pools` and returns a released
/// address to them. Returns whether `event` was one of those.
pub fn answer_address(
    link: &mut PppLink,
    now: Instant,
    pools: &ServerPools,
    event: &PppEvent,
) -> bool {
    match event {
        PppEvent::Ipv4AddressRequest(request) => {
            let address = pools.allocate_ipv4(&request.username, request.wanted);
            if let (Err(_), Some(address)) = (link.assign_ipv4(now, request.id, address), address) {
                pools.release_ipv4(address);
            }
            true
        }
        PppEvent::Ipv4AddressReleased(address) => {
            pools.release_ipv4(*address);
            true
        }
        _ => false,
    }
}

/// Drains a lone server link's events, answering address requests from
/// `pools`; returns the events (address ones included), in order.
pub fn serve_addresses(link: &mut PppLink, now: Instant, pools: &ServerPools) -> Vec<PppEvent> {
    let mut events = Vec::new();
    while let Some(event) = link.poll_event() {
        answer_address(link, now, pools, &event);
        events.push(event);
    }
    events
}

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

/// [`server_in_network`] with the peer's address from `pools`; also
/// returns the events the link reported on the way.
pub fn server_in_network_with(
    config: Arc<PppConfig>,
    now: Instant,
    seed: [u8; 32],
    pools: &ServerPools,
) -> (PppLink, Vec<PppEvent>) {
    let mut link = PppLink::server(config, now, seed);
    link.open(now);
    open_lcp(&mut link, now, 0x1122_3344);
    let events = serve_addresses(&mut link, now, pools);
    (link, events)
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
