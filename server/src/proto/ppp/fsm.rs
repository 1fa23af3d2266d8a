//! The option negotiation automaton of [RFC 1661] 4, shared by LCP, IPCP
//! and IPv6CP.
//!
//! [`Fsm`] implements the states, events and actions of the state
//! transition table ([RFC 1661] 4.1) once; what differs between control
//! protocols (which options to request, how to judge the peer's, what a
//! Nak or Reject of ours means, extra codes such as LCP Echo) lives behind
//! [`OptionHandler`].
//!
//! The This-Layer actions (tlu, tld, tls, tlf) are queued as
//! [`LayerSignal`]s for the owner to act on after each call. Packets go to
//! the link's [`Outbox`]. Time comes in through [`Ctx::now`].
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::outbox::Outbox;
use super::packet::{
    parse_control, parse_options, write_option, ConfigOption, ControlPacket, Options, PacketError,
    CODE_REJECT, CONFIGURE_ACK, CONFIGURE_NAK, CONFIGURE_REJECT, CONFIGURE_REQUEST, TERMINATE_ACK,
    TERMINATE_REQUEST,
};

/// Restart timer and counters of [RFC 1661] 4.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    /// Restart timer: time between retransmissions of Configure-Request and
    /// Terminate-Request. Default 3 s.
    pub restart_interval: Duration,
    /// Max-Configure: Configure-Requests sent without an answer before
    /// giving up. Default 10.
    pub max_configure: u32,
    /// Max-Terminate: Terminate-Requests sent without a Terminate-Ack
    /// before giving up. Default 2.
    pub max_terminate: u32,
    /// Max-Failure: Configure-Naks sent without a Configure-Ack after which
    /// further Naks become Configure-Rejects. Default 5. A peer that has
    /// still not converged after twice this many refusals (Nak or Reject) is
    /// given up on ([`NegotiationFailure::MaxFailure`]).
    pub max_failure: u32,
}

impl Default for FsmConfig {
    fn default() -> Self {
        FsmConfig {
            restart_interval: Duration::from_secs(3),
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
        }
    }
}

/// The ten states of [RFC 1661] 4.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Lower layer down, no Open yet.
    Initial,
    /// Open issued, waiting for the lower layer to come up.
    Starting,
    /// Lower layer up, no Open (or closed again): requests get a
    /// Terminate-Ack.
    Closed,
    /// Open but given up (or terminated by the peer): waiting for a Down or
    /// for the peer to start again.
    Stopped,
    /// Terminate-Request sent after a Close; waiting for the Terminate-Ack.
    Closing,
    /// Terminate-Request sent while still Open; ends in Stopped.
    Stopping,
    /// Request-Sent: our Configure-Request is out, no Ack sent or received.
    ReqSent,
    /// Ack-Received: our request was acknowledged, the peer's not yet.
    AckRcvd,
    /// Ack-Sent: we acknowledged the peer's request, ours is not yet.
    AckSent,
    /// Both requests acknowledged: the layer is up.
    Opened,
}

impl State {
    /// Short snake_case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Starting => "starting",
            State::Closed => "closed",
            State::Stopped => "stopped",
            State::Closing => "closing",
            State::Stopping => "stopping",
            State::ReqSent => "req_sent",
            State::AckRcvd => "ack_rcvd",
            State::AckSent => "ack_sent",
            State::Opened => "opened",
        }
    }

    /// States in which a Configure-Request of ours is outstanding.
    pub fn is_negotiating(self) -> bool {
        matches!(self, State::ReqSent | State::AckRcvd | State::AckSent)
    }

    /// States in which the restart timer runs ([RFC 1661] 4.6).
    fn runs_restart_timer(self) -> bool {
        self.is_negotiating() || matches!(self, State::Closing | State::Stopping)
    }
}

/// The This-Layer actions of [RFC 1661] 4.4, reported to the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSignal {
    /// tlu: the automaton entered Opened.
    Up,
    /// tld: the automaton left Opened.
    Down,
    /// tls: the layer needs its lower layer (Initial/Stopped -> Starting).
    Started,
    /// tlf: the layer no longer needs its lower layer.
    Finished,
}

/// Why an automaton gave up ([RFC 1661] 4.6 and option-specific causes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NegotiationFailure {
    /// Max-Configure Configure-Requests went unanswered (TO-).
    MaxConfigure,
    /// The peer kept sending requests we could not accept (Max-Failure).
    MaxFailure,
    /// The peer Code-Rejected a code the protocol cannot do without, or
    /// Protocol-Rejected the protocol itself (RXJ-).
    Rejected,
    /// The peer rejected an option this end cannot do without.
    RequiredOptionRejected(u8),
    /// LCP: the peer accepts none of the authentication protocols offered.
    NoCommonAuthProtocol,
    /// LCP: our own Magic-Number kept coming back ([RFC 1661] 6.4).
    LoopbackDetected,
    /// IPCP: no IPv4 address could be agreed for this end.
    NoAddress,
}

impl NegotiationFailure {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NegotiationFailure::MaxConfigure => "max_configure",
            NegotiationFailure::MaxFailure => "max_failure",
            NegotiationFailure::Rejected => "rejected_by_peer",
            NegotiationFailure::RequiredOptionRejected(_) => "required_option_rejected",
            NegotiationFailure::NoCommonAuthProtocol => "no_common_auth_protocol",
            NegotiationFailure::LoopbackDetected => "loopback_detected",
            NegotiationFailure::NoAddress => "no_address",
        }
    }
}

impl fmt::Display for NegotiationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a received control packet did not drive the automaton (it was
/// silently discarded, [RFC 1661] 5), or was answered with a Code-Reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlDrop {
    /// Bad Length field or option list.
    Malformed(PacketError),
    /// The automaton is in Initial or Starting (lower layer not up).
    NotRunning,
    /// A reply whose Identifier does not match our outstanding
    /// Configure-Request, or a second reply to it.
    StaleReply,
    /// A Configure-Ack not equal to our last request, or a Configure-Reject
    /// listing options we did not send ([RFC 1661] 5.2, 5.4).
    MismatchedReply,
    /// An unknown code, answered with Code-Reject (RUC).
    UnknownCode(u8),
    /// A code only valid in the Opened state (Echo, Discard, ...).
    NotOpened,
    /// A request beyond the rate this end answers (Echo-Request).
    RateLimited,
}

impl ControlDrop {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlDrop::Malformed(_) => "malformed_control",
            ControlDrop::NotRunning => "not_running",
            ControlDrop::StaleReply => "stale_reply",
            ControlDrop::MismatchedReply => "mismatched_reply",
            ControlDrop::UnknownCode(_) => "unknown_code",
            ControlDrop::NotOpened => "not_opened",
            ControlDrop::RateLimited => "echo_rate_limited",
        }
    }
}

impl From<PacketError> for ControlDrop {
    fn from(error: PacketError) -> Self {
        ControlDrop::Malformed(error)
    }
}

/// How a protocol-specific code (beyond 1..=7) was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Known and handled (RXR, or an informational code).
    Handled,
    /// Known, but only valid in Opened: silently discarded.
    NotOpened,
    /// Known but malformed: silently discarded.
    Malformed,
    /// Known, and beyond the rate this end answers: silently discarded.
    RateLimited,
    /// Not a code of this protocol: answer with Code-Reject (RUC).
    Unknown,
    /// The peer rejected something we cannot do without (RXJ-).
    Catastrophic,
    /// The packet proves a looped-back link beyond the configured limit.
    Loopback,
}

/// What the owner passes into every automaton event.
pub struct Ctx<'a> {
    /// The current time.
    pub now: Instant,
    /// Where packets go.
    pub out: &'a mut Outbox,
    /// Randomness (magic numbers, interface identifiers).
    pub rng: &'a mut dyn RngCore,
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The answer being assembled for one Configure-Request ([RFC 1661] 5.3,
/// 5.4): options to Nak (with acceptable values) and to Reject (verbatim).
/// With neither, the request is acknowledged as received.
#[derive(Debug, Default)]
pub struct Verdict {
    naks: Vec<u8>,
    rejects: Vec<u8>,
    naks_become_rejects: bool,
    failure: Option<NegotiationFailure>,
}

impl Verdict {
    fn reset(&mut self, naks_become_rejects: bool) {
        self.naks.clear();
        self.rejects.clear();
        self.naks_become_rejects = naks_become_rejects;
        self.failure = None;
    }

    /// Refuses an option (unknown, or not negotiable): Configure-Reject.
    pub fn reject(&mut self, option: &ConfigOption<'_>) {
        self.rejects.extend_from_slice(option.raw);
    }

    /// Refuses an option's value and suggests `data` instead:
    /// Configure-Nak, or Configure-Reject once Max-Failure Naks were sent
    /// without an Ack ([RFC 1661] 4.6).
    pub fn nak(&mut self, option: &ConfigOption<'_>, data: &[u8]) {
        if self.naks_become_rejects {
            self.reject(option);
        } else {
            write_option(option.kind, data, &mut self.naks);
        }
    }

    /// Asks the peer to include an option it left out ([RFC 1661] 5.3, last
    /// paragraph). Dropped once Max-Failure is reached.
    pub fn nak_missing(&mut self, kind: u8, data: &[u8]) {
        if !self.naks_become_rejects {
            write_option(kind, data, &mut self.naks);
        }
    }

    /// `true` once Max-Failure was reached: Naks are turned into Rejects.
    pub fn naks_become_rejects(&self) -> bool {
        self.naks_become_rejects
    }

    /// Gives up on the negotiation (for instance on a looped-back link).
    pub fn fail(&mut self, failure: NegotiationFailure) {
        self.failure.get_or_insert(failure);
    }

    fn is_ack(&self) -> bool {
        self.naks.is_empty() && self.rejects.is_empty()
    }
}

/// The per-protocol part of the automaton: building our Configure-Request,
/// judging the peer's, learning from Naks and Rejects of ours, and codes
/// beyond 1..=7.
pub trait OptionHandler {
    /// The PPP protocol number of this control protocol.
    const PROTOCOL: u16;

    /// A new negotiation begins (this end is about to send its first
    /// Configure-Request from a non-negotiating state): reset what was
    /// learned in the previous one.
    fn start_negotiation(&mut self, rng: &mut dyn RngCore);

    /// Appends the options of our next Configure-Request to `out`.
    fn build_request(&mut self, out: &mut Vec<u8>);

    /// Judges the peer's Configure-Request. Options not touched through
    /// `verdict` are acknowledged. The values seen here describe the peer
    /// once the automaton reaches Opened (the last request judged before
    /// Opened is always the one acknowledged).
    fn judge_request(&mut self, options: Options<'_>, verdict: &mut Verdict, rng: &mut dyn RngCore);

    /// The peer acknowledged our last request (`options` is exactly it).
    fn request_acked(&mut self, options: Options<'_>);

    /// The peer Nak'd options of our last request.
    fn request_naked(
        &mut self,
        options: Options<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<(), NegotiationFailure>;

    /// The peer rejected options of our last request.
    fn request_rejected(&mut self, options: Options<'_>) -> Result<(), NegotiationFailure>;

    /// A code other than 1..=7, received at `now`. The default knows none
    /// (Code-Reject).
    fn handle_other_code(
        &mut self,
        now: Instant,
        packet: &ControlPacket<'_>,
        opened: bool,
        out: &mut Outbox,
    ) -> CodeOutcome {
        let _ = (now, packet, opened, out);
        CodeOutcome::Unknown
    }

    /// Whether a Code-Reject of `code` is RXJ- (catastrophic): by default
    /// the configuration and termination codes 1..=7 ([RFC 1661] 4.3).
    fn code_reject_is_fatal(&self, code: u8) -> bool {
        (CONFIGURE_REQUEST..=CODE_REJECT).contains(&code)
    }
}

/// Names one Configure-Request of the peer: its Identifier and a digest of
/// its options. The peer must change the Identifier whenever the options
/// change or it has had an answer ([RFC 1661] 5.1), so a request with the
/// same key as one answered is a retransmission of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestKey {
    identifier: u8,
    digest: u64,
}

impl RequestKey {
    fn of(packet: &ControlPacket<'_>) -> Self {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: deterministic, and a collision only
        // ever confuses the session of the peer that forged it.
        let mut hasher = std::hash::DefaultHasher::new();
        packet.data.hash(&mut hasher);
        RequestKey {
            identifier: packet.identifier,
            digest: hasher.finish(),
        }
    }
}

/// One instance of the [RFC 1661] 4 automaton.
#[derive(Debug)]
pub struct Fsm<H> {
    handler: H,
    config: FsmConfig,
    state: State,
    restart_count: u32,
    deadline: Option<Instant>,
    /// Configure-Naks sent since the last Configure-Ack (Max-Failure).
    naks_sent: u32,
    /// Consecutive Configure-Naks and Configure-Rejects sent.
    refusals: u32,
    next_identifier: u8,
    request_identifier: u8,
    /// Options of our last Configure-Request, to match the Ack against.
    request: Vec<u8>,
    reply_seen: bool,
    /// The peer's request we last sent a Configure-Ack for, and the one we
    /// last refused: a copy of either is a retransmission ([`RequestKey`]).
    acked: Option<RequestKey>,
    refused: Option<RequestKey>,
    verdict: Verdict,
    signals: VecDeque<LayerSignal>,
    failure: Option<NegotiationFailure>,
    peer_terminated: bool,
}

impl<H: OptionHandler> Fsm<H> {
    /// A new automaton in the Initial state.
    pub fn new(handler: H, config: FsmConfig) -> Self {
        Fsm {
            handler,
            config,
            state: State::Initial,
            restart_count: 0,
            deadline: None,
            naks_sent: 0,
            refusals: 0,
            next_identifier: 1,
            request_identifier: 0,
            request: Vec::new(),
            reply_seen: true,
            acked: None,
            refused: None,
            verdict: Verdict::default(),
            signals: VecDeque::new(),
            failure: None,
            peer_terminated: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The protocol-specific part (its negotiated values).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The protocol-specific part, mutably (addresses to request, queued
    /// replies to drain).
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Why the automaton last gave up, if it did.
    pub fn failure(&self) -> Option<NegotiationFailure> {
        self.failure
    }

    /// `true` once the peer sent a Terminate-Request.
    pub fn peer_terminated(&self) -> bool {
        self.peer_terminated
    }

    /// The restart timer's deadline, if running.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next This-Layer signal to act on.
    #[must_use]
    pub fn poll_signal(&mut self) -> Option<LayerSignal> {
        self.signals.pop_front()
    }

    /// The restart counter (for tests and diagnostics).
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    // ---- Events ([RFC 1661] 4.3) ----

    /// Up: the lower layer is ready.
    pub fn up(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Initial => self.state = State::Closed,
            State::Starting => {
                self.start_configuring(ctx);
                self.state = State::ReqSent;
            }
            _ => {}
        }
        self.settle_timer();
    }

    /// Down: the lower layer is gone.
    pub fn down(&mut self) {
        self.state = match self.state {
            State::Closed | State::Closing => State::Initial,
            State::Stopped => {
                self.signals.push_back(LayerSignal::Started);
                State::Starting
            }
            State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => State::Starting,
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                State::Starting
            }
            other => other,
        };
        self.settle_timer();
    }

    /// Open: administrative permission to negotiate.
    pub fn open(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Initial => {
                self.signals.push_back(LayerSignal::Started);
                self.state = State::Starting;
            }
            State::Closed => {
                self.start_configuring(ctx);
                self.state = State::ReqSent;
            }
            // "5r": a Close in progress becomes a Stop, so that the link may
            // come back when the peer asks.
            State::Closing => self.state = State::Stopping,
            _ => {}
        }
        self.settle_timer();
    }

    /// Close: administrative request to terminate.
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Starting => {
                self.signals.push_back(LayerSignal::Finished);
                self.state = State::Initial;
            }
            State::Stopped => self.state = State::Closed,
            State::Stopping => self.state = State::Closing,
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.start_terminating(ctx);
                self.state = State::Closing;
            }
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                self.start_terminating(ctx);
                self.state = State::Closing;
            }
            State::Initial | State::Closed | State::Closing => {}
        }
        self.settle_timer();
    }

    /// Gives up on the negotiation with `failure`: a Close, remembering why.
    pub fn fail(&mut self, ctx: &mut Ctx<'_>, failure: NegotiationFailure) {
        self.failure.get_or_insert(failure);
        self.close(ctx);
    }

    /// RXJ- caused by the peer's Protocol-Reject of this protocol.
    pub fn protocol_rejected(&mut self, ctx: &mut Ctx<'_>) {
        self.failure.get_or_insert(NegotiationFailure::Rejected);
        self.receive_reject_catastrophic(ctx);
        self.settle_timer();
    }

    /// TO+ / TO-: call when `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        match self.deadline {
            Some(deadline) if deadline <= ctx.now => {}
            _ => return,
        }
        self.deadline = None;
        if self.restart_count > 0 {
            // TO+
            match self.state {
                State::Closing | State::Stopping => self.send_terminate_request(ctx),
                State::ReqSent | State::AckRcvd => {
                    self.resend_configure_request(ctx);
                    self.state = State::ReqSent;
                }
                State::AckSent => self.resend_configure_request(ctx),
                _ => {}
            }
        } else {
            // TO-
            match self.state {
                State::Closing => self.finish(State::Closed),
                State::Stopping => self.finish(State::Stopped),
                State::ReqSent | State::AckRcvd | State::AckSent => {
                    self.failure.get_or_insert(NegotiationFailure::MaxConfigure);
                    self.finish(State::Stopped);
                }
                _ => {}
            }
        }
        self.settle_timer();
    }

    /// Feeds the Information field of a received packet of this protocol.
    pub fn receive(&mut self, ctx: &mut Ctx<'_>, information: &[u8]) -> Result<(), ControlDrop> {
        let packet = parse_control(information)?;
        if matches!(self.state, State::Initial | State::Starting) {
            return Err(ControlDrop::NotRunning);
        }
        let result = match packet.code {
            CONFIGURE_REQUEST => self.receive_configure_request(ctx, &packet),
            CONFIGURE_ACK => self.receive_configure_ack(ctx, &packet),
            CONFIGURE_NAK | CONFIGURE_REJECT => self.receive_configure_nak_or_reject(ctx, &packet),
            TERMINATE_REQUEST => {
                self.receive_terminate_request(ctx, packet.identifier);
                Ok(())
            }
            TERMINATE_ACK => {
                self.receive_terminate_ack(ctx);
                Ok(())
            }
            CODE_REJECT => self.receive_code_reject(ctx, &packet),
            _ => self.receive_other_code(ctx, &packet, information),
        };
        self.settle_timer();
        result
    }

    // ---- Receive events ----

    /// RCR+ / RCR-.
    fn receive_configure_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        packet: &ControlPacket<'_>,
    ) -> Result<(), ControlDrop> {
        let options = parse_options(packet.data)?;
        let key = RequestKey::of(packet);
        if self.state == State::Opened && self.acked == Some(key) {
            // A copy of the request we acknowledged, sent before our Ack
            // reached the peer (a renegotiation would carry a new
            // Identifier, [RFC 1661] 5.1): acknowledge it again rather than
            // take the link down.
            ctx.out.send_control(
                H::PROTOCOL,
                CONFIGURE_ACK,
                packet.identifier,
                &[packet.data],
            );
            return Ok(());
        }
        let retransmission = self.refused == Some(key);
        match self.state {
            State::Closed => {
                self.send_terminate_ack(ctx, packet.identifier);
                return Ok(());
            }
            State::Closing | State::Stopping => return Ok(()),
            State::Stopped => {
                self.start_configuring(ctx);
                self.state = State::ReqSent;
            }
            State::Opened => {
                // tld, scr.
                self.signals.push_back(LayerSignal::Down);
                self.renegotiate(ctx);
                self.state = State::ReqSent;
            }
            _ => {}
        }

        self.verdict
            .reset(self.naks_sent >= self.config.max_failure);
        self.handler
            .judge_request(options, &mut self.verdict, &mut *ctx.rng);
        if let Some(failure) = self.verdict.failure {
            self.fail(ctx, failure);
            return Ok(());
        }
        if self.verdict.is_ack() {
            ctx.out.send_control(
                H::PROTOCOL,
                CONFIGURE_ACK,
                packet.identifier,
                &[packet.data],
            );
            self.naks_sent = 0;
            self.refusals = 0;
            self.acked = Some(key);
            self.refused = None;
            self.state = match self.state {
                State::AckRcvd => {
                    self.signals.push_back(LayerSignal::Up);
                    State::Opened
                }
                _ => State::AckSent,
            };
        } else {
            // A copy of a request already refused is answered again but
            // not counted: it says the path is slow, not that the
            // negotiation does not converge.
            if !retransmission {
                self.refusals += 1;
            }
            if self.refusals > self.config.max_failure.saturating_mul(2) {
                self.fail(ctx, NegotiationFailure::MaxFailure);
                return Ok(());
            }
            self.acked = None;
            self.refused = Some(key);
            if self.verdict.rejects.is_empty() {
                if !retransmission {
                    self.naks_sent += 1;
                }
                ctx.out.send_control(
                    H::PROTOCOL,
                    CONFIGURE_NAK,
                    packet.identifier,
                    &[&self.verdict.naks],
                );
            } else {
                ctx.out.send_control(
                    H::PROTOCOL,
                    CONFIGURE_REJECT,
                    packet.identifier,
                    &[&self.verdict.rejects],
                );
            }
            self.state = match self.state {
                State::AckRcvd => State::AckRcvd,
                _ => State::ReqSent,
            };
        }
        Ok(())
    }

    /// Checks that a Configure-Ack/Nak/Reject answers our outstanding
    /// request ([RFC 1661] 5.2-5.4).
    fn check_reply(&self, identifier: u8) -> Result<(), ControlDrop> {
        if self.reply_seen || identifier != self.request_identifier {
            return Err(ControlDrop::StaleReply);
        }
        Ok(())
    }

    /// RCA.
    fn receive_configure_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        packet: &ControlPacket<'_>,
    ) -> Result<(), ControlDrop> {
        self.check_reply(packet.identifier)?;
        if packet.data != self.request.as_slice() {
            return Err(ControlDrop::MismatchedReply);
        }
        let options = parse_options(packet.data)?;
        match self.state {
            State::Closed | State::Stopped => self.send_terminate_ack(ctx, packet.identifier),
            State::Closing | State::Stopping => {}
            State::ReqSent => {
                self.reply_seen = true;
                self.handler.request_acked(options);
                self.restart_count = self.config.max_configure;
                self.state = State::AckRcvd;
            }
            State::AckRcvd => {
                // Crossed connection ("6x").
                self.send_configure_request(ctx);
                self.state = State::ReqSent;
            }
            State::AckSent => {
                self.reply_seen = true;
                self.handler.request_acked(options);
                self.restart_count = self.config.max_configure;
                self.signals.push_back(LayerSignal::Up);
                self.state = State::Opened;
            }
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                self.renegotiate(ctx);
                self.state = State::ReqSent;
            }
            State::Initial | State::Starting => {}
        }
        Ok(())
    }

    /// RCN (for both Configure-Nak and Configure-Reject).
    fn receive_configure_nak_or_reject(
        &mut self,
        ctx: &mut Ctx<'_>,
        packet: &ControlPacket<'_>,
    ) -> Result<(), ControlDrop> {
        self.check_reply(packet.identifier)?;
        let options = parse_options(packet.data)?;
        let is_reject = packet.code == CONFIGURE_REJECT;
        if is_reject && !self.is_subset_of_request(options) {
            return Err(ControlDrop::MismatchedReply);
        }
        match self.state {
            State::Closed | State::Stopped => {
                self.send_terminate_ack(ctx, packet.identifier);
                return Ok(());
            }
            State::Closing | State::Stopping | State::Initial | State::Starting => return Ok(()),
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened => {}
        }
        self.reply_seen = true;
        let learned = if is_reject {
            self.handler.request_rejected(options)
        } else {
            self.handler.request_naked(options, &mut *ctx.rng)
        };
        if let Err(failure) = learned {
            self.fail(ctx, failure);
            return Ok(());
        }
        match self.state {
            State::ReqSent => {
                self.restart_count = self.config.max_configure;
                self.send_configure_request(ctx);
            }
            State::AckRcvd => {
                self.send_configure_request(ctx);
                self.state = State::ReqSent;
            }
            State::AckSent => {
                self.restart_count = self.config.max_configure;
                self.send_configure_request(ctx);
            }
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                self.renegotiate(ctx);
                self.state = State::ReqSent;
            }
            _ => {}
        }
        Ok(())
    }

    /// Every rejected option must appear verbatim in our last request.
    fn is_subset_of_request(&self, rejected: Options<'_>) -> bool {
        let Ok(sent) = parse_options(&self.request) else {
            return false;
        };
        rejected
            .into_iter()
            .all(|option| sent.into_iter().any(|ours| ours.raw == option.raw))
    }

    /// RTR.
    fn receive_terminate_request(&mut self, ctx: &mut Ctx<'_>, identifier: u8) {
        self.peer_terminated = true;
        match self.state {
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.send_terminate_ack(ctx, identifier);
                self.state = State::ReqSent;
            }
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                // zrc: let the Terminate-Ack reach the peer before tlf.
                self.restart_count = 0;
                self.deadline = Some(ctx.now + self.config.restart_interval);
                self.send_terminate_ack(ctx, identifier);
                self.state = State::Stopping;
            }
            _ => self.send_terminate_ack(ctx, identifier),
        }
    }

    /// RTA.
    fn receive_terminate_ack(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Closing => self.finish(State::Closed),
            State::Stopping => self.finish(State::Stopped),
            State::AckRcvd => self.state = State::ReqSent,
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                self.renegotiate(ctx);
                self.state = State::ReqSent;
            }
            _ => {}
        }
    }

    /// RXJ+ / RXJ- from a Code-Reject.
    fn receive_code_reject(
        &mut self,
        ctx: &mut Ctx<'_>,
        packet: &ControlPacket<'_>,
    ) -> Result<(), ControlDrop> {
        let Some(&rejected_code) = packet.data.first() else {
            return Err(ControlDrop::Malformed(PacketError::Truncated));
        };
        if self.handler.code_reject_is_fatal(rejected_code) {
            self.failure.get_or_insert(NegotiationFailure::Rejected);
            self.receive_reject_catastrophic(ctx);
        } else {
            self.receive_reject_permitted();
        }
        Ok(())
    }

    /// RXJ+.
    fn receive_reject_permitted(&mut self) {
        if self.state == State::AckRcvd {
            self.state = State::ReqSent;
        }
    }

    /// RXJ-.
    fn receive_reject_catastrophic(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Closed | State::Closing => self.finish(State::Closed),
            State::Stopped | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                self.finish(State::Stopped)
            }
            State::Opened => {
                self.signals.push_back(LayerSignal::Down);
                self.start_terminating(ctx);
                self.state = State::Stopping;
            }
            State::Initial | State::Starting => {}
        }
    }

    /// RXR / RUC and protocol-specific codes.
    fn receive_other_code(
        &mut self,
        ctx: &mut Ctx<'_>,
        packet: &ControlPacket<'_>,
        information: &[u8],
    ) -> Result<(), ControlDrop> {
        let opened = self.state == State::Opened;
        match self
            .handler
            .handle_other_code(ctx.now, packet, opened, ctx.out)
        {
            CodeOutcome::Handled => Ok(()),
            CodeOutcome::RateLimited => Err(ControlDrop::RateLimited),
            CodeOutcome::NotOpened => Err(ControlDrop::NotOpened),
            CodeOutcome::Malformed => Err(ControlDrop::Malformed(PacketError::Truncated)),
            CodeOutcome::Unknown => {
                // scj: quote the rejected packet, without padding.
                let length = super::packet::HEADER_LEN + packet.data.len();
                let quoted = information.get(..length).unwrap_or(information);
                let identifier = self.take_identifier();
                ctx.out
                    .send_control_quoting(H::PROTOCOL, CODE_REJECT, identifier, &[], quoted);
                Err(ControlDrop::UnknownCode(packet.code))
            }
            CodeOutcome::Catastrophic => {
                self.failure.get_or_insert(NegotiationFailure::Rejected);
                self.receive_reject_catastrophic(ctx);
                Ok(())
            }
            CodeOutcome::Loopback => {
                self.fail(ctx, NegotiationFailure::LoopbackDetected);
                Ok(())
            }
        }
    }

    // ---- Actions ([RFC 1661] 4.4) ----

    fn take_identifier(&mut self) -> u8 {
        let identifier = self.next_identifier;
        self.next_identifier = self.next_identifier.wrapping_add(1);
        identifier
    }

    /// Begins a fresh negotiation: reset per-negotiation state.
    fn start_negotiation(&mut self, ctx: &mut Ctx<'_>) {
        self.forget_negotiation();
        self.handler.start_negotiation(&mut *ctx.rng);
    }

    /// Counters, the peer's requests remembered and the failure of the
    /// previous negotiation: none of it says anything about a new one.
    fn forget_negotiation(&mut self) {
        self.naks_sent = 0;
        self.refusals = 0;
        self.acked = None;
        self.refused = None;
        self.failure = None;
    }

    /// irc + scr from a non-negotiating state.
    fn start_configuring(&mut self, ctx: &mut Ctx<'_>) {
        self.start_negotiation(ctx);
        self.restart_count = self.config.max_configure;
        self.send_configure_request(ctx);
    }

    /// scr out of Opened (the peer renegotiates). The counters are
    /// re-initialised, since what was left of them when Opened was entered
    /// says nothing about this negotiation; what the handler learned is
    /// kept, so the new request already carries the agreed values (a client
    /// keeps the address it was given instead of asking from scratch, which
    /// would cost round trips each exposed to loss).
    fn renegotiate(&mut self, ctx: &mut Ctx<'_>) {
        self.forget_negotiation();
        self.restart_count = self.config.max_configure;
        self.send_configure_request(ctx);
    }

    /// irc + str.
    fn start_terminating(&mut self, ctx: &mut Ctx<'_>) {
        self.restart_count = self.config.max_terminate;
        self.send_terminate_request(ctx);
    }

    /// scr: a new Identifier and freshly built options.
    fn send_configure_request(&mut self, ctx: &mut Ctx<'_>) {
        self.request.clear();
        self.handler.build_request(&mut self.request);
        self.request_identifier = self.take_identifier();
        self.transmit_request(ctx);
    }

    /// scr on a timeout. A request whose options have not changed keeps
    /// its Identifier ([RFC 1661] 5.1: "For retransmissions, the Identifier
    /// MAY remain unchanged"), so that an answer to an earlier copy is an
    /// answer to this one. On a path slower than the restart timer (a node
    /// swamped after an outage) every answer arrives after the next copy
    /// went out; with a new Identifier per copy all of them would be stale
    /// and the negotiation could never converge.
    fn resend_configure_request(&mut self, ctx: &mut Ctx<'_>) {
        let previous = std::mem::take(&mut self.request);
        self.handler.build_request(&mut self.request);
        if self.request != previous {
            self.request_identifier = self.take_identifier();
        }
        self.transmit_request(ctx);
    }

    /// Sends the request built, counting it against Max-Configure and
    /// arming the restart timer.
    fn transmit_request(&mut self, ctx: &mut Ctx<'_>) {
        self.reply_seen = false;
        ctx.out.send_control(
            H::PROTOCOL,
            CONFIGURE_REQUEST,
            self.request_identifier,
            &[&self.request],
        );
        self.restart_count = self.restart_count.saturating_sub(1);
        self.deadline = Some(ctx.now + self.config.restart_interval);
    }

    /// str.
    fn send_terminate_request(&mut self, ctx: &mut Ctx<'_>) {
        let identifier = self.take_identifier();
        ctx.out
            .send_control(H::PROTOCOL, TERMINATE_REQUEST, identifier, &[]);
        self.restart_count = self.restart_count.saturating_sub(1);
        self.deadline = Some(ctx.now + self.config.restart_interval);
    }

    /// sta.
    fn send_terminate_ack(&mut self, ctx: &mut Ctx<'_>, identifier: u8) {
        ctx.out
            .send_control(H::PROTOCOL, TERMINATE_ACK, identifier, &[]);
    }

    /// tlf and the final state.
    fn finish(&mut self, state: State) {
        self.signals.push_back(LayerSignal::Finished);
        self.state = state;
    }

    /// The restart timer runs only in the states that need it.
    fn settle_timer(&mut self) {
        if !self.state.runs_restart_timer() {
            self.deadline = None;
        }
    }

    /// Puts the automaton in `state` directly (tests of single cells).
    #[cfg(test)]
    pub(crate) fn force_state(&mut self, state: State, ctx: &mut Ctx<'_>) {
        self.state = state;
        if state.runs_restart_timer() {
            self.restart_count = self.config.max_configure;
            self.deadline = Some(ctx.now + self.config.restart_interval);
        }
        // An outstanding request in every state, so that reply cells of
        // the table can be exercised everywhere.
        self.request.clear();
        self.handler.build_request(&mut self.request);
        self.request_identifier = self.take_identifier();
        self.reply_seen = false;
        self.signals.clear();
    }

    /// Sets the restart counter (tests of TO+ and TO-).
    #[cfg(test)]
    pub(crate) fn set_restart_count(&mut self, count: u32) {
        self.restart_count = count;
    }

    /// The Identifier of our outstanding Configure-Request (tests).
    #[cfg(test)]
    pub(crate) fn request_identifier(&self) -> u8 {
        self.request_identifier
    }
}

#[cfg(test)]
mod tests;
