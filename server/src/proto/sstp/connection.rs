//! The SSTP state machines of both roles ([MS-SSTP] 3.1 to 3.3), sans-IO.
//!
//! One [`SstpConnection`] per TLS connection. The owner feeds it the TLS
//! plaintext ([`SstpConnection::handle_input`]), the time
//! ([`SstpConnection::handle_timeout`]) and the PPP layer's frames and keys
//! ([`SstpConnection::send_ppp`], [`SstpConnection::set_hlak`]); it takes
//! back the bytes to send ([`SstpConnection::poll_transmit`]), events
//! ([`SstpConnection::poll_event`]) and the next deadline
//! ([`SstpConnection::poll_timeout`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::binding::{
    build_call_connected, verify_call_connected, BindingError, BindingExpectation, CertHashes,
};
use super::config::{SstpConfig, UNSUPPORTED_TEST_PROTOCOL};
use super::deframer::{DeframeError, Deframer};
use super::http::{
    write_ok_response, ClientHandshake, HttpError, HttpResponseError, Parsed, RequestParser,
    ResponseParser,
};
use super::transmit::Transmit;
use super::wire::{
    connect_request_defects, encode_bare, encode_call_abort, encode_call_connect_ack,
    encode_call_connect_nak, encode_call_connect_request, encode_call_disconnect,
    put_packet_header, AttributeId, ControlMessage, ControlPacket, HashProtocol, HashProtocols,
    MessageType, Packet, PacketHeader, Status, StatusInfo, WireError, ATTRIB_NO_ERROR,
    CALL_CONNECTED_LEN, HEADER_LEN, MAX_PPP_FRAME_LEN, NONCE_LEN, PROTOCOL_PPP,
};
use crate::proto::rate::TokenBucket;
use crate::proto::Role;

/// Where a connection stands: the CurrentState of [MS-SSTP] 3.1.1, 3.2.1
/// and 3.3.1, plus the HTTP phase before it and the end after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SstpState {
    /// Server: waiting for the HTTP request.
    ServerHttpPending,
    /// Server_Connect_Request_Pending: `200` sent, waiting for an acceptable
    /// Call Connect Request.
    ServerConnectRequestPending,
    /// Server_Call_Connected_Pending: Call Connect Acknowledge sent; PPP
    /// runs; waiting for a Call Connected that verifies.
    ServerCallConnectedPending,
    /// Server_Call_Connected: the crypto binding verified.
    ServerCallConnected,
    /// Client: request sent, waiting for the HTTP reply.
    ClientHttpPending,
    /// Client_Connect_Request_Sent.
    ClientConnectRequestSent,
    /// Client_Connect_Ack_Received: PPP runs; waiting for the HLAK.
    ClientConnectAckReceived,
    /// Client_Call_Connected: Call Connected sent.
    ClientCallConnected,
    /// Call_Abort_Pending: Call Abort sent, waiting for the peer's.
    CallAbortPending,
    /// Call_Abort_Timeout_Pending: waiting out TIMER_VAL_ABORT_STATE_TIMER_2.
    CallAbortTimeoutPending,
    /// Call_Disconnect_Ack_Pending: Call Disconnect sent, waiting for the
    /// acknowledgement.
    CallDisconnectAckPending,
    /// Call_Disconnect_Timeout_Pending: acknowledgement sent, waiting out
    /// TIMER_VAL_DISCONNECT_STATE_TIMER_2.
    CallDisconnectTimeoutPending,
    /// Over. Nothing more will be sent once the transmit queue is drained.
    Closed,
}

impl SstpState {
    /// Whether PPP frames flow: the server after sending the Call Connect
    /// Acknowledge, the client after receiving it ([MS-SSTP] 3.2.7, 3.3.7).
    pub fn ppp_ready(self) -> bool {
        matches!(
            self,
            SstpState::ServerCallConnectedPending
                | SstpState::ServerCallConnected
                | SstpState::ClientConnectAckReceived
                | SstpState::ClientCallConnected
        )
    }

    /// Whether the SSTP negotiation is complete.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            SstpState::ServerCallConnected | SstpState::ClientCallConnected
        )
    }

    /// Whether an abort or disconnect exchange is under way.
    pub fn is_tearing_down(self) -> bool {
        matches!(
            self,
            SstpState::CallAbortPending
                | SstpState::CallAbortTimeoutPending
                | SstpState::CallDisconnectAckPending
                | SstpState::CallDisconnectTimeoutPending
        )
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SstpState::ServerHttpPending => "server_http_pending",
            SstpState::ServerConnectRequestPending => "server_connect_request_pending",
            SstpState::ServerCallConnectedPending => "server_call_connected_pending",
            SstpState::ServerCallConnected => "server_call_connected",
            SstpState::ClientHttpPending => "client_http_pending",
            SstpState::ClientConnectRequestSent => "client_connect_request_sent",
            SstpState::ClientConnectAckReceived => "client_connect_ack_received",
            SstpState::ClientCallConnected => "client_call_connected",
            SstpState::CallAbortPending => "call_abort_pending",
            SstpState::CallAbortTimeoutPending => "call_abort_timeout_pending",
            SstpState::CallDisconnectAckPending => "call_disconnect_ack_pending",
            SstpState::CallDisconnectTimeoutPending => "call_disconnect_timeout_pending",
            SstpState::Closed => "closed",
        }
    }
}

/// Why this end aborted ([MS-SSTP] 3.1.5.1 and the message-processing
/// sections). Each reason knows the Status Info its Call Abort carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortReason {
    /// The owner called [`SstpConnection::abort`] with this status.
    Local(Status),
    /// A malformed packet ([MS-SSTP] 3.2.5.3.1, 3.3.5.2.1).
    InvalidPacket(WireError),
    /// A malformed Call Connected: AttribID SSTP_ATTRIB_STATUS_INFO,
    /// ATTRIB_STATUS_ATTRIB_NOT_SUPPORTED_IN_MSG ([MS-SSTP] 3.3.5.2.3).
    InvalidCallConnected(WireError),
    /// A message the current state does not accept
    /// (ATTRIB_STATUS_UNACCEPTED_FRAME_RECEIVED).
    UnexpectedMessage(MessageType),
    /// The negotiation timer expired ([MS-SSTP] 3.2.6.1, 3.3.6.1).
    NegotiationTimeout,
    /// Too many Call Connect NAKs ([MS-SSTP] 3.2.5.3.3, 3.3.5.2.2).
    RetryCountExceeded,
    /// Client: the Call Connect Acknowledge offers no hash protocol the
    /// client supports ([MS-SSTP] 3.2.5.3.2).
    NoCommonHashProtocol,
    /// The Call Connected failed the crypto binding checks: AttribID
    /// SSTP_ATTRIB_CRYPTO_BINDING, ATTRIB_STATUS_VALUE_NOT_SUPPORTED
    /// ([MS-SSTP] 3.3.5.2.3).
    CryptoBinding(BindingError),
}

impl AbortReason {
    /// The Status of the Call Abort's Status Info ([MS-SSTP] 2.2.13).
    pub fn status(&self) -> Status {
        match self {
            AbortReason::Local(status) => *status,
            AbortReason::InvalidPacket(error) => error.abort_status(),
            AbortReason::InvalidCallConnected(_) => Status::AttribNotSupportedInMsg,
            AbortReason::UnexpectedMessage(_) => Status::UnacceptedFrameReceived,
            AbortReason::NegotiationTimeout => Status::NegotiationTimeout,
            AbortReason::RetryCountExceeded => Status::RetryCountExceeded,
            AbortReason::NoCommonHashProtocol | AbortReason::CryptoBinding(_) => {
                Status::ValueNotSupported
            }
        }
    }

    /// The AttribID of the Call Abort's Status Info: the attribute at fault
    /// where the spec names one, SSTP_ATTRIB_STATUS_INFO otherwise (as
    /// [MS-SSTP] 3.3.5.2.2 and 3.3.5.2.3 do).
    pub fn attrib_id(&self) -> u8 {
        match self {
            AbortReason::CryptoBinding(_) => AttributeId::CryptoBinding.as_u8(),
            AbortReason::NoCommonHashProtocol => AttributeId::CryptoBindingReq.as_u8(),
            _ => AttributeId::StatusInfo.as_u8(),
        }
    }

    /// Short snake_case name for logs and metric labels. The crypto binding
    /// failures have one name each.
    pub fn as_str(&self) -> &'static str {
        match self {
            AbortReason::Local(_) => "local",
            AbortReason::InvalidPacket(_) => "invalid_packet",
            AbortReason::InvalidCallConnected(_) => "invalid_call_connected",
            AbortReason::UnexpectedMessage(_) => "unexpected_message",
            AbortReason::NegotiationTimeout => "negotiation_timeout",
            AbortReason::RetryCountExceeded => "retry_count_exceeded",
            AbortReason::NoCommonHashProtocol => "no_common_hash_protocol",
            AbortReason::CryptoBinding(error) => error.as_str(),
        }
    }
}

/// How a connection ended (or is ending).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`SstpConnection::close`]: Call Disconnect sent ([MS-SSTP] 3.2.4.2).
    LocalDisconnect,
    /// The peer sent Call Disconnect, with this status if it had one.
    PeerDisconnect {
        /// The status of its Status Info attribute ([MS-SSTP] 2.2.14).
        status: Option<Status>,
    },
    /// This end sent Call Abort.
    LocalAbort(AbortReason),
    /// The peer sent Call Abort, with this status if it had one.
    PeerAbort {
        /// The status of its Status Info attribute ([MS-SSTP] 2.2.13).
        status: Option<Status>,
    },
    /// No packet for two Hello intervals; closed without a Call Abort
    /// ([MS-SSTP] 3.1.2.3).
    HelloTimeout,
    /// The stream could not be delineated; closed without a message
    /// ([MS-SSTP] 3.1.5.1).
    Framing(DeframeError),
    /// Server: the HTTP request was refused with this error's status.
    HttpRequestRejected(HttpError),
    /// Client: the server's HTTP reply was refused.
    HttpResponseRejected(HttpResponseError),
    /// The owner reported the TLS/TCP connection gone
    /// ([MS-SSTP] 3.1.7.2, "HTTPS connection disconnected").
    TransportClosed,
    /// More than [`MAX_QUEUED_OUTPUT`] bytes were queued for the peer and
    /// not collected by the owner: the peer keeps asking (each request
    /// queues an answer) faster than the owner can send. Closed without a
    /// message, the queue discarded.
    OutputQueueOverflow,
}

impl CloseReason {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::LocalDisconnect => "local_disconnect",
            CloseReason::PeerDisconnect { .. } => "peer_disconnect",
            // Which abort matters to operators (wrong MAC, timeout, ...).
            CloseReason::LocalAbort(reason) => reason.as_str(),
            CloseReason::PeerAbort { .. } => "peer_abort",
            CloseReason::HelloTimeout => "hello_timeout",
            CloseReason::Framing(_) => "framing",
            CloseReason::HttpRequestRejected(error) => error.rejection_label(),
            CloseReason::HttpResponseRejected(_) => "http_response_rejected",
            CloseReason::TransportClosed => "transport_closed",
            CloseReason::OutputQueueOverflow => "output_queue_overflow",
        }
    }
}

/// Input discarded without ending the connection, reported so that it can
/// be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A data packet before PPP may run ([MS-SSTP] 3.2.7.2, 3.3.7.2).
    PppBeforeConnect,
    /// A data packet during an abort or disconnect exchange.
    PppWhileClosing,
    /// A data packet with no PPP frame in it.
    EmptyDataPacket,
    /// A control message during an abort or disconnect exchange: "silently
    /// discarded" ([MS-SSTP] 3.1.1.1.2).
    IgnoredWhileClosing,
    /// An Echo Request beyond the rate this end answers
    /// ([`SstpConfig::echo_reply_burst`](super::SstpConfig::echo_reply_burst)).
    EchoRateLimited,
}

impl DropReason {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::PppBeforeConnect => "ppp_before_connect",
            DropReason::PppWhileClosing => "ppp_while_closing",
            DropReason::EmptyDataPacket => "empty_data_packet",
            DropReason::IgnoredWhileClosing => "ignored_while_closing",
            DropReason::EchoRateLimited => "sstp_echo_rate_limited",
        }
    }
}

/// What happened, for the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SstpEvent {
    /// PPP may start ("Lower Link Up", [MS-SSTP] 3.1.7.1): the server sent
    /// the Call Connect Acknowledge, or the client received it.
    PppReady,
    /// The SSTP negotiation is complete: the server verified the crypto
    /// binding, or the client sent Call Connected.
    Established {
        /// The crypto binding's hash protocol ([MS-SSTP] 2.2.7).
        hash_protocol: HashProtocol,
    },
    /// Server: a Call Connect Request was refused with a NAK.
    NakSent {
        /// The status of the NAK's first Status Info ([MS-SSTP] 2.2.12).
        status: Status,
    },
    /// Client: the server refused a Call Connect Request.
    NakReceived {
        /// The status of the NAK's first Status Info ([MS-SSTP] 2.2.12).
        status: Status,
    },
    /// Input was discarded `count` times for `reason` since the last poll.
    Dropped {
        /// What was discarded.
        reason: DropReason,
        /// Discards for this reason while the event waited to be polled.
        count: u32,
    },
    /// An abort or disconnect exchange started; PPP should stop. `Closed`
    /// with the same reason follows.
    Closing(CloseReason),
    /// The connection is over; the last event. Once the transmit queue is
    /// drained, [`SstpConnection::is_closed`] is true.
    Closed(CloseReason),
}

/// Why [`SstpConnection::send_ppp`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// PPP may not run yet (before the Call Connect Acknowledge).
    NotReady,
    /// The connection is closing or closed.
    Closed,
    /// An empty frame.
    EmptyFrame,
    /// A frame over 4091 bytes, which no 12-bit SSTP length can carry
    /// ([MS-SSTP] 2.2.1, 3.1.5.2).
    FrameTooLarge {
        /// The frame's size.
        len: usize,
    },
}

impl SendError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendError::NotReady => "not_ready",
            SendError::Closed => "closed",
            SendError::EmptyFrame => "empty_frame",
            SendError::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::FrameTooLarge { len } => {
                write!(f, "PPP frame of {len} bytes exceeds {MAX_PPP_FRAME_LEN}")
            }
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for SendError {}

/// The HTTP phase.
#[derive(Debug)]
enum HttpPhase {
    Server(RequestParser),
    Client(ResponseParser),
    Done,
}

/// One SSTP connection, server or client role.
pub struct SstpConnection {
    deframer: Deframer,
    machine: Machine,
}

/// Everything but the deframer, so that a packet borrowed from the
/// deframer's buffer can be processed while the machine changes.
struct Machine {
    config: Arc<SstpConfig>,
    role: Role,
    state: SstpState,
    http: HttpPhase,
    timer: Option<Instant>,
    /// An Echo Request is out and unanswered ([MS-SSTP] 3.1.2.3).
    echo_outstanding: bool,
    /// How many of the peer's Echo Requests are answered
    /// ([`SstpConfig::echo_reply_burst`]).
    echo_budget: TokenBucket,
    /// Control bytes (HTTP, SSTP control packets) waiting to be sent.
    tx: Transmit,
    events: VecDeque<SstpEvent>,
    /// The crypto binding's inputs, until the call is connected or torn
    /// down.
    setup: Option<Box<Setup>>,
    /// Server: ServerHashProtocolSupported as offered.
    offered: HashProtocols,
    /// The hash protocol of the crypto binding (client: chosen; server:
    /// verified).
    hash_protocol: Option<HashProtocol>,
    /// Server: NAKs sent. Client: NAKs received.
    naks: u8,
    /// Client: Call Connect Requests sent.
    requests_sent: u8,
    correlation_id: Option<String>,
    /// Why the current teardown started.
    close_reason: Option<CloseReason>,
}

/// What only the call's setup needs: the crypto binding's inputs
/// ([MS-SSTP] 3.3.5.2.3, 3.2.7.1) and the HTTP reply's date. On the heap
/// until the call is connected, then dropped: an established session,
/// which may live for days, does not keep room for them.
struct Setup {
    /// ServerCertificateHash / ClientCertificateHash.
    cert: CertHashes,
    /// Server: the nonce it sends. Client: ClientNonce, once received.
    nonce: [u8; NONCE_LEN],
    /// ServerHLAKKey / the client's HLAK, once PPP authentication is done.
    hlak: Option<[u8; 32]>,
    /// Server: a Call Connected that arrived before the HLAK.
    pending_call_connected: Option<[u8; CALL_CONNECTED_LEN]>,
    /// Server: the Date header of the `200` reply.
    http_date: Option<String>,
}

fn after(now: Instant, delay: Duration) -> Option<Instant> {
    now.checked_add(delay)
}

/// Bytes of output (HTTP, SSTP control, queued PPP frames) the connection
/// holds for its owner to collect with
/// [`SstpConnection::poll_transmit`]. An owner that collects after every
/// input never comes near it (one input queues a bounded answer: the PPP
/// link's outbox holds 64 frames); beyond it, at the next input, the
/// connection ends with [`CloseReason::OutputQueueOverflow`].
pub const MAX_QUEUED_OUTPUT: usize = 256 * 1024;

impl SstpConnection {
    /// A server connection, created when the TCP connection is accepted
    /// (`now` starts the negotiation timer, [MS-SSTP] 3.3.2.1). `cert` holds
    /// the hashes of the certificate the TLS layer presents; `nonce` is 32
    /// fresh random bytes for the Crypto Binding Request ([MS-SSTP] 2.2.6).
    pub fn server(
        config: Arc<SstpConfig>,
        now: Instant,
        cert: CertHashes,
        nonce: [u8; NONCE_LEN],
    ) -> Self {
        let deframer = Deframer::new(config.max_packet_len);
        let offered = config.offered_hash_protocols();
        let http = HttpPhase::Server(RequestParser::new(config.http_max_head_len));
        let timer = after(now, config.negotiation_timeout);
        SstpConnection {
            deframer,
            machine: Machine::new(config, Role::Server, http, timer, cert, nonce, offered),
        }
    }

    /// Gives back the memory of empty queues (control bytes to send,
    /// events): the HTTP answer and the call's control packets grew them
    /// at setup. Nothing waiting is lost.
    pub fn release_idle_capacity(&mut self) {
        self.machine.tx.release_if_empty();
        crate::proto::release_if_empty(&mut self.machine.events);
    }

    /// Bytes of capacity its queues hold (tests of the release above).
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.machine.tx.capacity() + self.machine.events.capacity()
    }

    /// A client connection, created once TLS is up: the HTTP request is
    /// queued at once ([MS-SSTP] 3.2.4.1). `server_cert` holds the hashes of
    /// the certificate the server presented (ClientCertificateHash). The
    /// client needs no nonce of its own: it echoes the server's.
    pub fn client(
        config: Arc<SstpConfig>,
        now: Instant,
        handshake: ClientHandshake,
        server_cert: CertHashes,
    ) -> Self {
        let deframer = Deframer::new(config.max_packet_len);
        let offered = config.client_hash_protocols;
        let http = HttpPhase::Client(ResponseParser::new(config.http_max_head_len));
        let timer = after(now, config.http_response_timeout);
        let mut machine = Machine::new(
            config,
            Role::Client,
            http,
            timer,
            server_cert,
            [0; NONCE_LEN],
            offered,
        );
        handshake.write_request(&mut machine.tx.unit());
        machine.correlation_id = Some(handshake.correlation_id().to_owned());
        SstpConnection { deframer, machine }
    }

    /// Server: the Date header of the `200` reply (an IMF-fixdate such as
    /// `Thu, 09 Nov 2006 00:51:09 GMT`, [MS-SSTP] 4.1). The core has no wall
    /// clock; without this the header is left out. Call before the request
    /// arrives.
    pub fn set_http_date(&mut self, imf_fixdate: &str) {
        if let Some(setup) = self.machine.setup.as_deref_mut() {
            setup.http_date = Some(imf_fixdate.to_owned());
        }
    }

    /// TLS plaintext from the peer. PPP frames carried by data packets are
    /// passed to `on_ppp`, borrowed (from `data` itself when the packet lies
    /// whole in it). Protocol errors never return an error: they lead to the
    /// response the spec names and are reported through
    /// [`poll_event`](Self::poll_event).
    pub fn handle_input(&mut self, now: Instant, data: &[u8], on_ppp: &mut impl FnMut(&[u8])) {
        self.handle_input_with_state(now, data, &mut |frame, _established| on_ppp(frame));
    }

    /// [`SstpConnection::handle_input`], also telling `on_ppp` whether the
    /// call was established ([`SstpConnection::is_established`]) when that
    /// frame was processed. A Call Connected and the first data packets often
    /// arrive in one read: the owner gates network-layer traffic per frame,
    /// so it passes none before the crypto binding is verified
    /// ([MS-SSTP] 3.3.5.2.3) and loses none after.
    pub fn handle_input_with_state(
        &mut self,
        now: Instant,
        data: &[u8],
        on_ppp: &mut impl FnMut(&[u8], bool),
    ) {
        let SstpConnection { deframer, machine } = self;
        let Some(data) = machine.handle_http(now, data) else {
            return;
        };
        if data.is_empty() {
            return;
        }
        if machine.state == SstpState::Closed {
            // Nothing after `Closed`, not even a drop report.
            return;
        }
        let mut feed = deframer.feed(data);
        while let Some(item) = feed.next() {
            if machine.tx.len() >= MAX_QUEUED_OUTPUT {
                // The owner is not collecting what the peer's requests
                // queue: stop answering before memory does.
                machine.terminate(CloseReason::OutputQueueOverflow, true);
                return;
            }
            match item {
                Ok(packet) => machine.on_packet(now, packet, on_ppp),
                Err(error) => machine.terminate(CloseReason::Framing(error), true),
            }
            if machine.state == SstpState::Closed {
                return;
            }
        }
    }

    /// Appends one data packet carrying `frame` to `out` (the caller's TLS
    /// plaintext buffer): a 4-byte header and a copy of the frame
    /// ([MS-SSTP] 2.2.3). Control bytes still queued go first, so that the
    /// stream keeps its order. Allowed once PPP may run
    /// ([`SstpState::ppp_ready`]).
    pub fn send_ppp(&mut self, frame: &[u8], out: &mut Transmit) -> Result<(), SendError> {
        let machine = &mut self.machine;
        if !machine.state.ppp_ready() {
            return Err(
                if machine.state.is_tearing_down() || machine.state == SstpState::Closed {
                    SendError::Closed
                } else {
                    SendError::NotReady
                },
            );
        }
        if frame.is_empty() {
            return Err(SendError::EmptyFrame);
        }
        if frame.len() > MAX_PPP_FRAME_LEN {
            return Err(SendError::FrameTooLarge { len: frame.len() });
        }
        out.append(&mut machine.tx);
        let mut unit = out.unit();
        unit.reserve(HEADER_LEN + frame.len());
        put_packet_header(&mut unit, false, HEADER_LEN + frame.len());
        unit.extend_from_slice(frame);
        Ok(())
    }

    /// Like [`SstpConnection::send_ppp`], but queues the data packet with
    /// the connection's own control output (for the PPP link's control
    /// frames, which are produced away from any output buffer).
    pub fn send_ppp_queued(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let mut tx = std::mem::take(&mut self.machine.tx);
        let result = self.send_ppp(frame, &mut tx);
        self.machine.tx = tx;
        result
    }

    /// Appends queued control bytes to `out` without a clock (the data
    /// path uses it to keep the stream in order before a data packet).
    pub fn write_queued(&mut self, out: &mut Transmit) {
        out.append(&mut self.machine.tx);
    }

    /// Appends all queued control bytes (HTTP, SSTP control packets) to
    /// `out`.
    pub fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        out.append(&mut self.machine.tx);
    }

    /// The next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SstpEvent> {
        self.machine.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.machine.timer
    }

    /// Runs the timer that expired by `now`, if any.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.machine.handle_timeout(now);
    }

    /// The HLAK from PPP authentication ([MS-SSTP] 3.2.5.2.2; 32 zero bytes
    /// for methods without keys). Server: verifies a Call Connected that
    /// arrived first, or the one to come. Client: sends Call Connected once
    /// the Call Connect Acknowledge is in.
    pub fn set_hlak(&mut self, now: Instant, hlak: [u8; 32]) {
        self.machine.set_hlak(now, hlak);
    }

    /// Graceful close ([MS-SSTP] 3.2.4.2): Call Disconnect (with a Status
    /// Info, which sstp-client needs before it acknowledges), then wait for
    /// the acknowledgement up to TIMER_VAL_DISCONNECT_STATE_TIMER_1. Before
    /// the HTTP exchange completes, closes at once.
    pub fn close(&mut self, now: Instant) {
        self.machine.close(now);
    }

    /// Abort with `status` ([MS-SSTP] 3.1.5.1): Call Abort, then wait for
    /// the peer's up to TIMER_VAL_ABORT_STATE_TIMER_1.
    pub fn abort(&mut self, now: Instant, status: Status) {
        self.machine.start_abort(now, AbortReason::Local(status));
    }

    /// The owner's TLS/TCP connection is gone: clean up without sending
    /// anything ([MS-SSTP] 3.1.7.2).
    pub fn transport_closed(&mut self) {
        let machine = &mut self.machine;
        let reason = machine
            .close_reason
            .take()
            .unwrap_or(CloseReason::TransportClosed);
        machine.terminate(reason, true);
    }

    /// The state.
    pub fn state(&self) -> SstpState {
        self.machine.state
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.machine.role
    }

    /// Whether PPP frames may flow ([`SstpState::ppp_ready`]): from the Call
    /// Connect Acknowledge on, until a teardown starts.
    pub fn ppp_ready(&self) -> bool {
        self.machine.state.ppp_ready()
    }

    /// Server: the Call Connected verified. Client: Call Connected sent.
    /// False again once a teardown starts. IP traffic should pass only
    /// while this holds ([MS-SSTP] 3.3.5.2.3, 5.1).
    pub fn is_established(&self) -> bool {
        self.machine.state.is_connected()
    }

    /// Nothing more will be sent: closed and the transmit queue drained.
    /// The owner may close TLS and TCP.
    pub fn is_closed(&self) -> bool {
        self.machine.state == SstpState::Closed && self.machine.tx.is_empty()
    }

    /// The SSTPCORRELATIONID: the client's own, or the one the server
    /// received.
    pub fn correlation_id(&self) -> Option<&str> {
        self.machine.correlation_id.as_deref()
    }

    /// The crypto binding's hash protocol, once chosen (client) or verified
    /// (server).
    pub fn hash_protocol(&self) -> Option<HashProtocol> {
        self.machine.hash_protocol
    }
}

impl fmt::Debug for SstpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Leaves the HLAK and the nonce out.
        f.debug_struct("SstpConnection")
            .field("role", &self.machine.role)
            .field("state", &self.machine.state)
            .field("timer", &self.machine.timer)
            .field("correlation_id", &self.machine.correlation_id)
            .field("queued", &self.machine.tx.len())
            .finish_non_exhaustive()
    }
}

impl Machine {
    fn new(
        config: Arc<SstpConfig>,
        role: Role,
        http: HttpPhase,
        timer: Option<Instant>,
        cert: CertHashes,
        nonce: [u8; NONCE_LEN],
        offered: HashProtocols,
    ) -> Self {
        let state = match role {
            Role::Server => SstpState::ServerHttpPending,
            Role::Client => SstpState::ClientHttpPending,
        };
        let echo_budget = TokenBucket::new(config.echo_reply_burst, config.echo_reply_interval);
        Machine {
            config,
            role,
            state,
            http,
            timer,
            echo_outstanding: false,
            echo_budget,
            tx: Transmit::new(),
            events: VecDeque::new(),
            setup: Some(Box::new(Setup {
                cert,
                nonce,
                hlak: None,
                pending_call_connected: None,
                http_date: None,
            })),
            offered,
            hash_protocol: None,
            naks: 0,
            requests_sent: 0,
            correlation_id: None,
            close_reason: None,
        }
    }

    /// Runs the HTTP phase on `data`; returns the bytes left for SSTP, or
    /// `None` when there are none.
    fn handle_http<'d>(&mut self, now: Instant, data: &'d [u8]) -> Option<&'d [u8]> {
        match &mut self.http {
            HttpPhase::Done => Some(data),
            HttpPhase::Server(parser) => match parser.feed(data) {
                Ok(Parsed::NeedMore) => None,
                Ok(Parsed::Done { message, consumed }) => {
                    self.http = HttpPhase::Done;
                    self.correlation_id = message.correlation_id;
                    let date = self.setup.as_deref_mut().and_then(|s| s.http_date.take());
                    write_ok_response(
                        &mut self.tx.unit(),
                        self.config.http_server_header.as_deref(),
                        date.as_deref(),
                    );
                    self.state = SstpState::ServerConnectRequestPending;
                    data.get(consumed..)
                }
                Err(error) => {
                    error.write_response(&mut self.tx.unit());
                    self.terminate(CloseReason::HttpRequestRejected(error), false);
                    None
                }
            },
            HttpPhase::Client(parser) => match parser.feed(data) {
                Ok(Parsed::NeedMore) => None,
                Ok(Parsed::Done { consumed, .. }) => {
                    self.http = HttpPhase::Done;
                    self.state = SstpState::ClientConnectRequestSent;
                    self.send_connect_request(now);
                    data.get(consumed..)
                }
                Err(error) => {
                    self.terminate(CloseReason::HttpResponseRejected(error), true);
                    None
                }
            },
        }
    }

    fn dropped(&mut self, reason: DropReason) {
        for event in self.events.iter_mut() {
            if let SstpEvent::Dropped { reason: r, count } = event {
                if *r == reason {
                    *count = count.saturating_add(1);
                    return;
                }
            }
        }
        self.events
            .push_back(SstpEvent::Dropped { reason, count: 1 });
    }

    fn on_packet(&mut self, now: Instant, bytes: &[u8], on_ppp: &mut impl FnMut(&[u8], bool)) {
        if self.state.is_connected() {
            // Any packet restarts the Hello timer ([MS-SSTP] 3.1.2.3).
            self.timer = after(now, self.config.hello_interval);
            self.echo_outstanding = false;
        }
        match Packet::parse(bytes) {
            Ok(Packet::Data(frame)) => self.on_data(frame, on_ppp),
            Ok(Packet::Control(control)) => self.on_control(now, &control),
            Err(error) => self.on_invalid(now, bytes, error),
        }
    }

    fn on_data(&mut self, frame: &[u8], on_ppp: &mut impl FnMut(&[u8], bool)) {
        if frame.is_empty() {
            self.dropped(DropReason::EmptyDataPacket);
        } else if self.state.ppp_ready() {
            on_ppp(frame, self.state.is_connected());
        } else if self.state.is_tearing_down() {
            self.dropped(DropReason::PppWhileClosing);
        } else {
            self.dropped(DropReason::PppBeforeConnect);
        }
    }

    /// A packet that fails [`Packet::parse`] ([MS-SSTP] 3.1.5.1).
    fn on_invalid(&mut self, now: Instant, bytes: &[u8], error: WireError) {
        if self.state.is_tearing_down() {
            self.dropped(DropReason::IgnoredWhileClosing);
            return;
        }
        let message_type = PacketHeader::parse(bytes)
            .filter(|header| header.control)
            .and_then(|_| bytes.get(HEADER_LEN..)?.first_chunk::<2>().copied())
            .and_then(|raw| MessageType::from_u16(u16::from_be_bytes(raw)));
        match (self.state, message_type, error.attribute()) {
            (
                SstpState::ServerConnectRequestPending,
                Some(MessageType::CallConnectRequest),
                Some(attribute),
            ) => self.nak(now, &[StatusInfo::new(attribute, error.status())]),
            (SstpState::ServerCallConnectedPending, Some(MessageType::CallConnected), _) => {
                self.start_abort(now, AbortReason::InvalidCallConnected(error))
            }
            _ => self.start_abort(now, AbortReason::InvalidPacket(error)),
        }
    }

    fn on_control(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let message_type = control.message_type();
        match message_type {
            MessageType::CallAbort => return self.on_peer_abort(now, control),
            MessageType::CallDisconnect => return self.on_peer_disconnect(now, control),
            MessageType::CallDisconnectAck => return self.on_disconnect_ack(now),
            _ => {}
        }
        if self.state.is_tearing_down() {
            // [MS-SSTP] 3.1.1.1.2: silently discarded.
            self.dropped(DropReason::IgnoredWhileClosing);
            return;
        }
        match (self.state, message_type) {
            (SstpState::ServerConnectRequestPending, MessageType::CallConnectRequest) => {
                self.server_on_connect_request(now, control)
            }
            (SstpState::ServerCallConnectedPending, MessageType::CallConnected)
                if self
                    .setup
                    .as_deref()
                    .is_some_and(|s| s.pending_call_connected.is_none()) =>
            {
                self.server_on_call_connected(now, control)
            }
            (SstpState::ClientConnectRequestSent, MessageType::CallConnectAck) => {
                self.client_on_ack(now, control)
            }
            (SstpState::ClientConnectRequestSent, MessageType::CallConnectNak) => {
                self.client_on_nak(now, control)
            }
            (
                SstpState::ServerCallConnected | SstpState::ClientCallConnected,
                MessageType::EchoRequest | MessageType::EchoResponse,
            ) => match control.message() {
                // [MS-SSTP] 3.2.5.3.7, 3.3.5.2.7 (the Hello timer restarted
                // on receipt, for responses too: 3.2.5.3.8, 3.3.5.2.8).
                // Answered at a bounded rate: the peer can ask faster than
                // it reads.
                Ok(ControlMessage::EchoRequest) if !self.echo_budget.take(now) => {
                    self.dropped(DropReason::EchoRateLimited)
                }
                Ok(ControlMessage::EchoRequest) => {
                    encode_bare(MessageType::EchoResponse, &mut self.tx.unit())
                }
                Ok(_) => {}
                Err(error) => self.start_abort(now, AbortReason::InvalidPacket(error)),
            },
            _ => self.start_abort(now, AbortReason::UnexpectedMessage(message_type)),
        }
    }

    /// [MS-SSTP] 3.2.5.3.4, 3.3.5.2.4. A malformed Call Abort still counts
    /// as one: either way the connection goes.
    fn on_peer_abort(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let info = match control.message() {
            Ok(ControlMessage::CallAbort(info)) => info,
            _ => None,
        };
        match self.state {
            SstpState::CallAbortPending => {
                self.state = SstpState::CallAbortTimeoutPending;
                self.timer = after(now, self.config.abort_timer_2);
            }
            SstpState::CallAbortTimeoutPending | SstpState::CallDisconnectTimeoutPending => {
                self.dropped(DropReason::IgnoredWhileClosing)
            }
            _ => {
                // Call_Abort_In_Progress_2: answer with a Call Abort carrying
                // the peer's Status Info back.
                encode_call_abort(
                    info.map(|info| StatusInfo::new(info.attrib_id, info.status)),
                    &mut self.tx.unit(),
                );
                self.begin_teardown(CloseReason::PeerAbort {
                    status: info.map(|info| info.status),
                });
                self.state = SstpState::CallAbortTimeoutPending;
                self.timer = after(now, self.config.abort_timer_2);
            }
        }
    }

    /// [MS-SSTP] 3.2.5.3.5, 3.3.5.2.5.
    fn on_peer_disconnect(&mut self, now: Instant, control: &ControlPacket<'_>) {
        match self.state {
            SstpState::CallAbortTimeoutPending
            | SstpState::CallAbortPending
            | SstpState::CallDisconnectTimeoutPending => {
                self.dropped(DropReason::IgnoredWhileClosing);
                return;
            }
            SstpState::CallDisconnectAckPending => {}
            _ => {
                let status = match control.message() {
                    Ok(ControlMessage::CallDisconnect(info)) => info.map(|info| info.status),
                    _ => None,
                };
                self.begin_teardown(CloseReason::PeerDisconnect { status });
            }
        }
        encode_bare(MessageType::CallDisconnectAck, &mut self.tx.unit());
        self.state = SstpState::CallDisconnectTimeoutPending;
        self.timer = after(now, self.config.disconnect_timer_2);
    }

    /// [MS-SSTP] 3.2.5.3.6, 3.3.5.2.6.
    fn on_disconnect_ack(&mut self, now: Instant) {
        match self.state {
            SstpState::CallDisconnectAckPending => self.complete_teardown(),
            SstpState::CallAbortPending
            | SstpState::CallAbortTimeoutPending
            | SstpState::CallDisconnectTimeoutPending => {
                self.dropped(DropReason::IgnoredWhileClosing)
            }
            _ => self.start_abort(
                now,
                AbortReason::UnexpectedMessage(MessageType::CallDisconnectAck),
            ),
        }
    }

    /// [MS-SSTP] 3.3.5.2.2.
    fn server_on_connect_request(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let mut defects = Vec::new();
        connect_request_defects(control, |error, value| {
            defects.push(StatusInfo {
                attrib_id: error.attribute().unwrap_or(AttributeId::StatusInfo.as_u8()),
                status: error.status(),
                value,
            })
        });
        if !defects.is_empty() {
            return self.nak(now, &defects);
        }
        let Some(setup) = self.setup.as_deref() else {
            // Gone only once the call is connected or torn down.
            return self.start_abort(
                now,
                AbortReason::UnexpectedMessage(MessageType::CallConnectRequest),
            );
        };
        encode_call_connect_ack(self.offered, &setup.nonce, &mut self.tx.unit());
        self.state = SstpState::ServerCallConnectedPending;
        self.timer = after(now, self.config.call_connected_timeout);
        self.events.push_back(SstpEvent::PppReady);
    }

    /// Sends a NAK, or aborts once the retry count is spent
    /// ([MS-SSTP] 3.3.5.2.2).
    fn nak(&mut self, now: Instant, infos: &[StatusInfo<'_>]) {
        if self.naks >= self.config.server_max_naks {
            return self.start_abort(now, AbortReason::RetryCountExceeded);
        }
        self.naks += 1;
        encode_call_connect_nak(infos, &mut self.tx.unit());
        if let Some(first) = infos.first() {
            self.events.push_back(SstpEvent::NakSent {
                status: first.status,
            });
        }
    }

    /// [MS-SSTP] 3.3.5.2.3: verified now if the HLAK is known, else kept
    /// until [`SstpConnection::set_hlak`].
    fn server_on_call_connected(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let message = match control.message() {
            Ok(ControlMessage::CallConnected(_)) => control.bytes().try_into(),
            Ok(_) => return,
            Err(error) => return self.start_abort(now, AbortReason::InvalidCallConnected(error)),
        };
        let Ok(message) = message else {
            // Unreachable: a valid Call Connected is 112 bytes.
            return self.start_abort(
                now,
                AbortReason::UnexpectedMessage(MessageType::CallConnected),
            );
        };
        let Some(setup) = self.setup.as_deref_mut() else {
            return;
        };
        match setup.hlak {
            Some(hlak) => self.verify(now, &message, &hlak),
            None => setup.pending_call_connected = Some(message),
        }
    }

    fn verify(&mut self, now: Instant, message: &[u8; CALL_CONNECTED_LEN], hlak: &[u8; 32]) {
        let Some(setup) = self.setup.as_deref() else {
            return;
        };
        let expected = BindingExpectation {
            offered: self.offered,
            nonce: &setup.nonce,
            cert: &setup.cert,
            hlak,
        };
        match verify_call_connected(message, &expected) {
            Ok(protocol) => self.established(now, protocol),
            Err(error) => self.start_abort(now, AbortReason::CryptoBinding(error)),
        }
    }

    fn established(&mut self, now: Instant, protocol: HashProtocol) {
        self.setup = None;
        self.hash_protocol = Some(protocol);
        self.state = match self.role {
            Role::Server => SstpState::ServerCallConnected,
            Role::Client => SstpState::ClientCallConnected,
        };
        self.timer = after(now, self.config.hello_interval);
        self.echo_outstanding = false;
        self.events.push_back(SstpEvent::Established {
            hash_protocol: protocol,
        });
    }

    fn set_hlak(&mut self, now: Instant, hlak: [u8; 32]) {
        let Some(setup) = self.setup.as_deref_mut() else {
            // Connected already, or torn down: nothing to bind.
            return;
        };
        setup.hlak = Some(hlak);
        match self.state {
            SstpState::ServerCallConnectedPending => {
                if let Some(message) = setup.pending_call_connected.take() {
                    self.verify(now, &message, &hlak);
                }
            }
            SstpState::ClientConnectAckReceived => self.send_call_connected(now),
            _ => {}
        }
    }

    /// Client: [MS-SSTP] 3.2.4.1; with the test option, the first requests
    /// propose a protocol the server must refuse.
    fn send_connect_request(&mut self, now: Instant) {
        let protocol = if self.requests_sent < self.config.client_unsupported_proposals {
            UNSUPPORTED_TEST_PROTOCOL
        } else {
            PROTOCOL_PPP
        };
        self.requests_sent = self.requests_sent.saturating_add(1);
        encode_call_connect_request(protocol, &mut self.tx.unit());
        self.timer = after(now, self.config.negotiation_timeout);
    }

    /// [MS-SSTP] 3.2.5.3.2.
    fn client_on_ack(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let request = match control.message() {
            Ok(ControlMessage::CallConnectAck(request)) => request,
            Ok(_) => return,
            Err(error) => return self.start_abort(now, AbortReason::InvalidPacket(error)),
        };
        let Some(protocol) = request.hash_protocols.strongest_common(self.offered) else {
            return self.start_abort(now, AbortReason::NoCommonHashProtocol);
        };
        let Some(setup) = self.setup.as_deref_mut() else {
            return;
        };
        setup.nonce = *request.nonce;
        let hlak_known = setup.hlak.is_some();
        self.hash_protocol = Some(protocol);
        self.state = SstpState::ClientConnectAckReceived;
        self.timer = after(now, self.config.call_connected_timeout);
        self.events.push_back(SstpEvent::PppReady);
        if hlak_known {
            self.send_call_connected(now);
        }
    }

    /// [MS-SSTP] 3.2.5.3.3.
    fn client_on_nak(&mut self, now: Instant, control: &ControlPacket<'_>) {
        let infos = match control.message() {
            Ok(ControlMessage::CallConnectNak(infos)) => infos,
            Ok(_) => return,
            Err(error) => return self.start_abort(now, AbortReason::InvalidPacket(error)),
        };
        if let Some(first) = infos.first() {
            self.events.push_back(SstpEvent::NakReceived {
                status: first.status,
            });
        }
        if self.naks >= self.config.client_connect_retries {
            return self.start_abort(now, AbortReason::RetryCountExceeded);
        }
        self.naks += 1;
        self.send_connect_request(now);
    }

    /// Client: [MS-SSTP] 3.2.7.1, Inner Authentication Completed.
    fn send_call_connected(&mut self, now: Instant) {
        let Some(setup) = self.setup.as_deref() else {
            return;
        };
        let (Some(protocol), Some(hlak)) = (self.hash_protocol, setup.hlak) else {
            return;
        };
        let message = build_call_connected(protocol, &setup.nonce, &setup.cert, &hlak);
        self.tx.unit().extend_from_slice(&message);
        self.established(now, protocol);
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(deadline) if deadline <= now => self.timer = None,
            _ => return,
        }
        match self.state {
            SstpState::ServerHttpPending => {
                HttpError::Timeout.write_response(&mut self.tx.unit());
                self.terminate(CloseReason::HttpRequestRejected(HttpError::Timeout), false);
            }
            SstpState::ClientHttpPending => self.terminate(
                CloseReason::HttpResponseRejected(HttpResponseError::Timeout),
                true,
            ),
            SstpState::ServerConnectRequestPending
            | SstpState::ServerCallConnectedPending
            | SstpState::ClientConnectRequestSent
            | SstpState::ClientConnectAckReceived => {
                self.start_abort(now, AbortReason::NegotiationTimeout)
            }
            SstpState::ServerCallConnected | SstpState::ClientCallConnected => {
                if self.echo_outstanding {
                    // [MS-SSTP] 3.1.2.3: abort without sending a Call Abort.
                    self.terminate(CloseReason::HelloTimeout, true);
                } else {
                    encode_bare(MessageType::EchoRequest, &mut self.tx.unit());
                    self.echo_outstanding = true;
                    self.timer = after(now, self.config.hello_interval);
                }
            }
            SstpState::CallAbortPending
            | SstpState::CallAbortTimeoutPending
            | SstpState::CallDisconnectAckPending
            | SstpState::CallDisconnectTimeoutPending => self.complete_teardown(),
            SstpState::Closed => {}
        }
    }

    fn close(&mut self, now: Instant) {
        match self.state {
            SstpState::ServerHttpPending | SstpState::ClientHttpPending => {
                self.terminate(CloseReason::LocalDisconnect, true)
            }
            state if state.is_tearing_down() || state == SstpState::Closed => {}
            _ => {
                encode_call_disconnect(
                    Some(StatusInfo::new(ATTRIB_NO_ERROR, Status::NoError)),
                    &mut self.tx.unit(),
                );
                self.begin_teardown(CloseReason::LocalDisconnect);
                self.state = SstpState::CallDisconnectAckPending;
                self.timer = after(now, self.config.disconnect_timer_1);
            }
        }
    }

    /// [MS-SSTP] 3.1.5.1: Call Abort, TIMER_VAL_ABORT_STATE_TIMER_1,
    /// Call_Abort_Pending. Before SSTP started (HTTP phase), closes at once.
    fn start_abort(&mut self, now: Instant, reason: AbortReason) {
        match self.state {
            SstpState::ServerHttpPending | SstpState::ClientHttpPending => {
                return self.terminate(CloseReason::LocalAbort(reason), true)
            }
            state if state.is_tearing_down() || state == SstpState::Closed => return,
            _ => {}
        }
        encode_call_abort(
            Some(StatusInfo::new(reason.attrib_id(), reason.status())),
            &mut self.tx.unit(),
        );
        self.begin_teardown(CloseReason::LocalAbort(reason));
        self.state = SstpState::CallAbortPending;
        self.timer = after(now, self.config.abort_timer_1);
    }

    fn begin_teardown(&mut self, reason: CloseReason) {
        self.events.push_back(SstpEvent::Closing(reason.clone()));
        self.close_reason = Some(reason);
        self.echo_outstanding = false;
        self.setup = None;
    }

    fn complete_teardown(&mut self) {
        let reason = self
            .close_reason
            .take()
            .unwrap_or(CloseReason::LocalDisconnect);
        self.terminate(reason, false);
    }

    /// Ends the connection; `discard_tx` drops queued bytes (a forced close
    /// sends nothing more).
    fn terminate(&mut self, reason: CloseReason, discard_tx: bool) {
        if self.state == SstpState::Closed {
            return;
        }
        if discard_tx {
            self.tx = Transmit::new();
        }
        self.state = SstpState::Closed;
        self.timer = None;
        self.http = HttpPhase::Done;
        self.setup = None;
        self.close_reason = None;
        self.events.push_back(SstpEvent::Closed(reason));
    }
}
