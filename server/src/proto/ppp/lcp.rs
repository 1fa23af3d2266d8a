//! The Link Control Protocol ([RFC 1661] 5, 6): the option handling that
//! [`Fsm`](super::fsm::Fsm) drives for LCP, plus Protocol-Reject, Echo,
//! Discard and the [RFC 1570] informational codes.
//!
//! Options negotiated: Maximum-Receive-Unit (6.1), Authentication-Protocol
//! (6.2), Magic-Number with loop-back detection (6.4), Protocol-Field- and
//! Address-and-Control-Field-Compression (6.5, 6.6). Everything else is
//! Configure-Rejected: on this synchronous, single-link transport
//! Async-Control-Character-Map, Quality-Protocol, Callback, Multilink (MRRU,
//! Short-Sequence, Endpoint-Discriminator) and the rest have no use.
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
//! [RFC 1570]: https://www.rfc-editor.org/rfc/rfc1570

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::frame::PROTO_LCP;
use super::fsm::{CodeOutcome, NegotiationFailure, OptionHandler, Verdict};
use super::outbox::Outbox;
use super::packet::{data_u16, data_u32, write_option, ConfigOption, ControlPacket, Options};
use super::PppConfig;
use crate::proto::auth::AuthProtocol;
use crate::proto::rate::TokenBucket;
use crate::proto::Role;

pub use super::frame::DEFAULT_MRU;
/// Smallest MRU this end will ever advertise after a peer's Nak.
const MIN_OWN_MRU: u16 = 128;

/// Maximum-Receive-Unit ([RFC 1661] 6.1).
pub const OPT_MRU: u8 = 1;
/// Async-Control-Character-Map ([RFC 1662] 7.1).
pub const OPT_ACCM: u8 = 2;
/// Authentication-Protocol ([RFC 1661] 6.2).
pub const OPT_AUTH_PROTOCOL: u8 = 3;
/// Quality-Protocol ([RFC 1661] 6.3).
pub const OPT_QUALITY_PROTOCOL: u8 = 4;
/// Magic-Number ([RFC 1661] 6.4).
pub const OPT_MAGIC_NUMBER: u8 = 5;
/// Protocol-Field-Compression ([RFC 1661] 6.5).
pub const OPT_PFC: u8 = 7;
/// Address-and-Control-Field-Compression ([RFC 1661] 6.6).
pub const OPT_ACFC: u8 = 8;
/// Callback ([RFC 1570] 2.3).
pub const OPT_CALLBACK: u8 = 13;
/// Multilink Maximum-Received-Reconstructed-Unit ([RFC 1990] 5.1.1).
pub const OPT_MRRU: u8 = 17;
/// Multilink Endpoint-Discriminator ([RFC 1990] 5.1.3).
pub const OPT_ENDPOINT_DISCRIMINATOR: u8 = 19;

/// Protocol-Reject ([RFC 1661] 5.7).
pub const PROTOCOL_REJECT: u8 = 8;
/// Echo-Request ([RFC 1661] 5.8).
pub const ECHO_REQUEST: u8 = 9;
/// Echo-Reply ([RFC 1661] 5.8).
pub const ECHO_REPLY: u8 = 10;
/// Discard-Request ([RFC 1661] 5.9).
pub const DISCARD_REQUEST: u8 = 11;
/// Identification ([RFC 1570] 1.1); Windows sends it.
pub const IDENTIFICATION: u8 = 12;
/// Time-Remaining ([RFC 1570] 1.2).
pub const TIME_REMAINING: u8 = 13;

/// Protocol-Rejects remembered until the link collects them.
const MAX_PENDING_PROTOCOL_REJECTS: usize = 8;

/// LCP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LcpConfig {
    /// The MRU this end advertises (its receive capability). Requested only
    /// when it differs from the default 1500. This implementation receives
    /// frames of any size regardless ([RFC 1661] 6.1 requires at least
    /// 1500 even when a smaller MRU was agreed).
    pub mru: u16,
    /// The smallest peer MRU accepted; smaller values are Nak'd with this
    /// one. Default 576, the datagram size every IPv4 host must accept
    /// ([RFC 791], [RFC 1122] 3.3.2). When IPv6CP is enabled the floor is at
    /// least 1280, the IPv6 minimum link MTU ([RFC 8200] 5, required of PPP
    /// links by [RFC 5072] 2).
    ///
    /// Larger peer MRUs are always acknowledged: the MRU states a receive
    /// capability, which the sender need not use, so there is nothing to
    /// refuse ([RFC 1661] 6.1 implementation note). What this end sends is
    /// capped by [`LcpConfig::max_transmit_unit`] instead. Windows proposes
    /// 4091 and gets an Ack.
    pub min_peer_mru: u16,
    /// The largest Information field the transport below carries. Default
    /// 4087: an SSTP packet is at most 4095 octets ([MS-SSTP] 2.2.1, 12-bit
    /// length), minus the 4-octet SSTP header and the 4-octet PPP header.
    pub max_transmit_unit: u16,
    /// Negotiate a Magic-Number (and detect looped-back links). Default on.
    pub magic_number: bool,
    /// How many times our own Magic-Number may come back before the link is
    /// declared looped back ([RFC 1661] 6.4). Default 5.
    pub loopback_limit: u32,
    /// Request PFC and ACFC, letting the peer compress what it sends. Off
    /// by default. Received frames are accepted compressed or not either
    /// way.
    pub request_compression: bool,
    /// Compress the headers of IP frames this end sends when the peer
    /// allowed it (PFC/ACFC in its request). Off by default: full `FF 03`
    /// and 2-octet protocol.
    pub compress_transmit: bool,
    /// Once LCP is open, send an LCP Echo-Request ([RFC 1661] 5.8) after
    /// this much silence from the peer, and again at this interval while
    /// the silence lasts; any frame received counts as a sign of life, so
    /// a busy link sends none. Off by default: SSTP has its own keepalive
    /// (Echo-Request, [MS-SSTP] 3.1.2).
    pub echo_interval: Option<Duration>,
    /// Consecutive unanswered Echo-Requests after which the link is closed
    /// ([`PppCloseReason::EchoTimeout`](super::PppCloseReason::EchoTimeout)).
    /// Default 3.
    pub echo_failures: u32,
    /// Echo-Requests answered at once ([RFC 1661] 5.8): the bucket of a
    /// token-bucket limit. Beyond it, and beyond one more per
    /// [`echo_reply_interval`](Self::echo_reply_interval), Echo-Requests
    /// are dropped (counted as `echo_rate_limited`): a peer must not make
    /// the link answer as fast as it can send. Default 10.
    pub echo_reply_burst: u32,
    /// One more Echo-Reply allowed per this interval. Default 100 ms (10/s
    /// sustained; keepalives come seconds apart).
    pub echo_reply_interval: Duration,
}

impl Default for LcpConfig {
    fn default() -> Self {
        LcpConfig {
            mru: DEFAULT_MRU,
            min_peer_mru: 576,
            max_transmit_unit: 4087,
            magic_number: true,
            loopback_limit: 5,
            request_compression: false,
            compress_transmit: false,
            echo_interval: None,
            echo_failures: 3,
            echo_reply_burst: 10,
            echo_reply_interval: Duration::from_millis(100),
        }
    }
}

/// The LCP options agreed for one direction: what the peer asked for in
/// the request we acknowledged ([`Lcp::peer`]), or what it acknowledged of
/// ours ([`Lcp::local`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LcpOptions {
    /// The Maximum-Receive-Unit of the requesting end.
    pub mru: u16,
    /// The requesting end's Magic-Number (0 when not negotiated).
    pub magic: u32,
    /// The method the requesting end (as authenticator) wants the other
    /// end to authenticate with.
    pub auth: Option<AuthProtocol>,
    /// The requesting end accepts compressed Protocol fields.
    pub pfc: bool,
    /// The requesting end accepts frames without `FF 03`.
    pub acfc: bool,
}

impl Default for LcpOptions {
    fn default() -> Self {
        LcpOptions {
            mru: DEFAULT_MRU,
            magic: 0,
            auth: None,
            pfc: false,
            acfc: false,
        }
    }
}

/// LCP's option handling for one link, in either role.
#[derive(Debug)]
pub struct Lcp {
    role: Role,
    config: Arc<PppConfig>,
    min_peer_mru: u16,
    // What we request.
    request_mru: Option<u16>,
    request_magic: bool,
    magic: u32,
    /// Server: index into `auth_protocols` of the method offered.
    auth_offer: Option<usize>,
    /// Server: bit i set once method i was offered and refused.
    auth_refused: u32,
    request_pfc: bool,
    request_acfc: bool,
    /// The Magic-Number we last suggested in a Configure-Nak.
    last_magic_nak: Option<u32>,
    /// Times our own Magic-Number came back.
    loops: u32,
    local: LcpOptions,
    peer: LcpOptions,
    // For the link.
    protocol_rejects: Vec<u16>,
    echo_replies: u32,
    /// How many Echo-Requests are answered ([`LcpConfig::echo_reply_burst`]).
    echo_budget: TokenBucket,
    next_identifier: u8,
}

impl Lcp {
    /// LCP for `role` with `config`.
    pub fn new(role: Role, config: Arc<PppConfig>) -> Self {
        let mut min_peer_mru = config.lcp.min_peer_mru;
        if config.ipv6cp.enabled {
            min_peer_mru = min_peer_mru.max(1280);
        }
        let echo_budget =
            TokenBucket::new(config.lcp.echo_reply_burst, config.lcp.echo_reply_interval);
        Lcp {
            role,
            config,
            min_peer_mru,
            request_mru: None,
            request_magic: false,
            magic: 0,
            auth_offer: None,
            auth_refused: 0,
            request_pfc: false,
            request_acfc: false,
            last_magic_nak: None,
            loops: 0,
            local: LcpOptions::default(),
            peer: LcpOptions::default(),
            protocol_rejects: Vec::new(),
            echo_replies: 0,
            echo_budget,
            next_identifier: 0,
        }
    }

    /// What the peer acknowledged of our request (valid once Opened).
    pub fn local(&self) -> &LcpOptions {
        &self.local
    }

    /// What we acknowledged of the peer's request (valid once Opened).
    pub fn peer(&self) -> &LcpOptions {
        &self.peer
    }

    /// The authentication to run once LCP is open: the method the peer
    /// agreed to (server) or the one we agreed to use (client).
    pub fn negotiated_auth(&self) -> Option<AuthProtocol> {
        match self.role {
            Role::Server => self.local.auth,
            Role::Client => self.peer.auth,
        }
    }

    /// The largest Information field to send: the peer's MRU, capped by the
    /// transport.
    pub fn transmit_mtu(&self) -> u16 {
        self.peer.mru.min(self.config.lcp.max_transmit_unit)
    }

    /// Protocols the peer rejected since the last call ([RFC 1661] 5.7).
    pub fn take_protocol_rejects(&mut self) -> Vec<u16> {
        std::mem::take(&mut self.protocol_rejects)
    }

    /// Echo-Replies received since the last call.
    pub fn take_echo_replies(&mut self) -> u32 {
        std::mem::take(&mut self.echo_replies)
    }

    fn take_identifier(&mut self) -> u8 {
        self.next_identifier = self.next_identifier.wrapping_add(1);
        self.next_identifier
    }

    /// Sends an Echo-Request carrying our Magic-Number ([RFC 1661] 5.8).
    pub fn send_echo_request(&mut self, out: &mut Outbox) {
        let identifier = self.take_identifier();
        out.send_control(
            PROTO_LCP,
            ECHO_REQUEST,
            identifier,
            &[&self.local.magic.to_be_bytes()],
        );
    }

    /// Sends a Protocol-Reject for a frame of `protocol` ([RFC 1661] 5.7),
    /// quoting its Information field truncated to the peer's MRU.
    pub fn send_protocol_reject(&mut self, out: &mut Outbox, protocol: u16, information: &[u8]) {
        let identifier = self.take_identifier();
        out.send_control_quoting(
            PROTO_LCP,
            PROTOCOL_REJECT,
            identifier,
            &protocol.to_be_bytes(),
            information,
        );
    }

    /// Our Magic-Number as the peer sees it in Echo/Discard packets.
    fn is_own_magic(&self, magic: u32) -> bool {
        self.local.magic != 0 && magic == self.local.magic
    }

    /// Counts one return of our own Magic-Number; `true` once it proves a
    /// loop.
    fn count_loop(&mut self) -> bool {
        self.loops += 1;
        self.loops >= self.config.lcp.loopback_limit
    }

    /// Client: accept the offered method if we speak it, else suggest our
    /// preferred one ([RFC 1661] 6.2: "a Configure-Nak ... indicating the
    /// implementation's preferred authentication protocol").
    fn judge_auth_offer(&mut self, option: &ConfigOption<'_>, verdict: &mut Verdict) {
        let offered = AuthProtocol::from_lcp_option_data(option.data);
        let acceptable = &self.config.auth_protocols;
        match offered {
            Some(protocol) if acceptable.contains(&protocol) => self.peer.auth = Some(protocol),
            _ => match acceptable.first() {
                Some(preferred) => verdict.nak(option, preferred.lcp_option_data()),
                None => verdict.reject(option),
            },
        }
    }

    /// Server: the peer refused the method offered; move to the method it
    /// suggested if we allow it, else to the next one in our list.
    fn next_auth_offer(
        &mut self,
        suggested: Option<AuthProtocol>,
    ) -> Result<(), NegotiationFailure> {
        let Some(current) = self.auth_offer else {
            return Ok(());
        };
        self.auth_refused |= 1 << current.min(31);
        let list = &self.config.auth_protocols;
        let untried = |index: &usize| *index < 32 && self.auth_refused & (1 << index) == 0;
        let suggested_index = suggested
            .and_then(|protocol| list.iter().position(|&p| p == protocol))
            .filter(untried);
        let next = suggested_index.or_else(|| (0..list.len()).find(untried));
        match next {
            Some(index) => {
                self.auth_offer = Some(index);
                Ok(())
            }
            None => Err(NegotiationFailure::NoCommonAuthProtocol),
        }
    }
}

/// A random 32-bit value that is neither zero nor `avoid`.
fn fresh_magic(rng: &mut dyn RngCore, avoid: u32) -> u32 {
    (0..16)
        .map(|_| rng.next_u32())
        .find(|&value| value != 0 && value != avoid)
        .unwrap_or(avoid.wrapping_add(1).max(1))
}

impl OptionHandler for Lcp {
    const PROTOCOL: u16 = PROTO_LCP;

    fn start_negotiation(&mut self, rng: &mut dyn RngCore) {
        let lcp = &self.config.lcp;
        self.request_mru = (lcp.mru != DEFAULT_MRU).then_some(lcp.mru);
        self.request_magic = lcp.magic_number;
        self.magic = if lcp.magic_number {
            fresh_magic(rng, 0)
        } else {
            0
        };
        self.auth_offer = match self.role {
            Role::Server if !self.config.auth_protocols.is_empty() => Some(0),
            _ => None,
        };
        self.auth_refused = 0;
        self.request_pfc = lcp.request_compression;
        self.request_acfc = lcp.request_compression;
        self.last_magic_nak = None;
        self.loops = 0;
        self.local = LcpOptions::default();
        self.peer = LcpOptions::default();
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        if let Some(mru) = self.request_mru {
            write_option(OPT_MRU, &mru.to_be_bytes(), out);
        }
        if let Some(protocol) = self
            .auth_offer
            .and_then(|i| self.config.auth_protocols.get(i))
        {
            write_option(OPT_AUTH_PROTOCOL, protocol.lcp_option_data(), out);
        }
        if self.request_magic {
            write_option(OPT_MAGIC_NUMBER, &self.magic.to_be_bytes(), out);
        }
        if self.request_pfc {
            write_option(OPT_PFC, &[], out);
        }
        if self.request_acfc {
            write_option(OPT_ACFC, &[], out);
        }
    }

    fn judge_request(
        &mut self,
        options: Options<'_>,
        verdict: &mut Verdict,
        rng: &mut dyn RngCore,
    ) {
        self.peer = LcpOptions::default();
        // Our own Magic-Number: possibly our request looped back ([RFC
        // 1661] 6.4). Answer with the Magic-Number Nak alone, so that the
        // test is not masked by a Configure-Reject of other options (a
        // server would reject its own Authentication-Protocol); the rest is
        // judged on the next request.
        let looped = options.into_iter().find(|option| {
            option.kind == OPT_MAGIC_NUMBER
                && self.request_magic
                && data_u32(option.data) == Some(self.magic)
        });
        if let Some(option) = looped {
            if self.count_loop() {
                verdict.fail(NegotiationFailure::LoopbackDetected);
            } else {
                let suggestion = fresh_magic(rng, self.magic);
                self.last_magic_nak = Some(suggestion);
                verdict.nak(&option, &suggestion.to_be_bytes());
            }
            return;
        }
        for option in options {
            match option.kind {
                OPT_MRU => match data_u16(option.data) {
                    Some(mru) if mru >= self.min_peer_mru => self.peer.mru = mru,
                    Some(_) => verdict.nak(&option, &self.min_peer_mru.to_be_bytes()),
                    None => verdict.reject(&option),
                },
                OPT_AUTH_PROTOCOL => match self.role {
                    Role::Client => self.judge_auth_offer(&option, verdict),
                    // The server does not authenticate itself to clients.
                    Role::Server => verdict.reject(&option),
                },
                OPT_MAGIC_NUMBER => match data_u32(option.data) {
                    None => verdict.reject(&option),
                    // "A Magic-Number of zero is illegal and MUST always be
                    // Nak'd" ([RFC 1661] 6.4).
                    Some(0) => verdict.nak(&option, &fresh_magic(rng, self.magic).to_be_bytes()),
                    Some(magic) => self.peer.magic = magic,
                },
                OPT_PFC if option.data.is_empty() => self.peer.pfc = true,
                OPT_ACFC if option.data.is_empty() => self.peer.acfc = true,
                // ACCM (meaningless without async HDLC), Quality-Protocol,
                // Callback, MRRU, Endpoint-Discriminator, malformed
                // PFC/ACFC and anything unknown.
                _ => verdict.reject(&option),
            }
        }
    }

    fn request_acked(&mut self, _options: Options<'_>) {
        self.local = LcpOptions {
            mru: self.request_mru.unwrap_or(DEFAULT_MRU),
            magic: if self.request_magic { self.magic } else { 0 },
            auth: self
                .auth_offer
                .and_then(|i| self.config.auth_protocols.get(i).copied()),
            pfc: self.request_pfc,
            acfc: self.request_acfc,
        };
    }

    fn request_naked(
        &mut self,
        options: Options<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<(), NegotiationFailure> {
        for option in options {
            match option.kind {
                OPT_MRU => {
                    let ceiling = self.config.lcp.mru.max(DEFAULT_MRU);
                    self.request_mru =
                        data_u16(option.data).filter(|mru| (MIN_OWN_MRU..=ceiling).contains(mru));
                }
                OPT_AUTH_PROTOCOL if self.auth_offer.is_some() => {
                    self.next_auth_offer(AuthProtocol::from_lcp_option_data(option.data))?;
                }
                OPT_MAGIC_NUMBER if self.request_magic => {
                    let suggested = data_u32(option.data).unwrap_or(0);
                    self.magic = if suggested == 0
                        || Some(suggested) == self.last_magic_nak
                        || suggested == self.peer.magic
                    {
                        // Our own Nak came back (or a useless value): a
                        // loop is more likely; choose anew (6.4).
                        fresh_magic(rng, self.magic)
                    } else {
                        // A Nak different from ours proves no loop and
                        // offers a unique number.
                        suggested
                    };
                }
                // Suggestions for options we do not request are ignored;
                // Naks of boolean options are invalid ([RFC 1661] 5.3).
                _ => {}
            }
        }
        Ok(())
    }

    fn request_rejected(&mut self, options: Options<'_>) -> Result<(), NegotiationFailure> {
        for option in options {
            match option.kind {
                OPT_MRU => self.request_mru = None,
                // The peer refuses to authenticate at all.
                OPT_AUTH_PROTOCOL => return Err(NegotiationFailure::NoCommonAuthProtocol),
                // "it can only mean that the link is not looped-back, and
                // that its peer will not be using Magic-Numbers" (6.4).
                OPT_MAGIC_NUMBER => self.request_magic = false,
                OPT_PFC => self.request_pfc = false,
                OPT_ACFC => self.request_acfc = false,
                _ => {}
            }
        }
        Ok(())
    }

    fn handle_other_code(
        &mut self,
        now: Instant,
        packet: &ControlPacket<'_>,
        opened: bool,
        out: &mut Outbox,
    ) -> CodeOutcome {
        match packet.code {
            // Informational, any state, no response ([RFC 1570] 1.1, 1.2).
            IDENTIFICATION | TIME_REMAINING => CodeOutcome::Handled,
            // The rest only make sense in Opened ([RFC 1661] 5.7-5.9).
            PROTOCOL_REJECT | ECHO_REQUEST | ECHO_REPLY | DISCARD_REQUEST if !opened => {
                CodeOutcome::NotOpened
            }
            PROTOCOL_REJECT => {
                let Some(protocol) = packet.data.get(..2).and_then(data_u16) else {
                    return CodeOutcome::Malformed;
                };
                if protocol == PROTO_LCP {
                    return CodeOutcome::Catastrophic;
                }
                if self.protocol_rejects.len() < MAX_PENDING_PROTOCOL_REJECTS {
                    self.protocol_rejects.push(protocol);
                }
                CodeOutcome::Handled
            }
            ECHO_REQUEST | ECHO_REPLY | DISCARD_REQUEST => {
                let Some(magic) = packet.data.get(..4).and_then(data_u32) else {
                    return CodeOutcome::Malformed;
                };
                if self.is_own_magic(magic) {
                    // Our own packet came back: do not answer it.
                    return if self.count_loop() {
                        CodeOutcome::Loopback
                    } else {
                        CodeOutcome::Handled
                    };
                }
                match packet.code {
                    // The peer may send them as fast as it likes; the
                    // answers go out at a bounded rate.
                    ECHO_REQUEST if !self.echo_budget.take(now) => return CodeOutcome::RateLimited,
                    ECHO_REQUEST => {
                        let data = packet.data.get(4..).unwrap_or_default();
                        out.send_control_quoting(
                            PROTO_LCP,
                            ECHO_REPLY,
                            packet.identifier,
                            &self.local.magic.to_be_bytes(),
                            data,
                        );
                    }
                    ECHO_REPLY => self.echo_replies = self.echo_replies.saturating_add(1),
                    _ => {}
                }
                CodeOutcome::Handled
            }
            _ => CodeOutcome::Unknown,
        }
    }
}
