//! The record framing the EAP-TLS family shares: how EAP-TLS ([RFC 5216]
//! 3.1, 3.2) and PEAP ([MS-PEAP] 2.2.1, which borrows it) carry TLS
//! records in EAP packets, and the peer's side of one TLS conversation
//! over them.
//!
//! * Type-Data: Flags `L M S` and three version bits, the TLS Message
//!   Length after an `L`, then TLS records or a fragment of them
//!   ([`EapTlsMessage`]).
//! * A message in fragments is reassembled up to [`MAX_TLS_MESSAGE_LEN`]
//!   (a certificate chain of a few KiB fits many times); a longer
//!   announced or received message is refused ([`EapTlsError::TooLong`]).
//!   Every fragment but the last is acknowledged with an empty Response;
//!   the peer's own messages longer than [`MAX_FRAGMENT_LEN`] go out in
//!   fragments, each after the authenticator's empty Request.
//! * The TLS itself is behind [`TunnelTls`], so the methods stay sans-IO
//!   and build without the runtime (the fuzzers build them): the runtime's
//!   `tls::eap` implements it with a rustls client capped at TLS 1.2.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::eap::{hlak_from_msk, EapPacket, TYPE_IDENTITY, TYPE_NAK, TYPE_NOTIFICATION};
use super::machine::{AuthEvent, AuthFailure};
use super::outbox::Outbox;
use super::packet::peer_text;
use super::RejectReason;

/// Flags: the TLS Message Length field is present.
pub const FLAG_LENGTH: u8 = 0x80;
/// Flags: more fragments follow.
pub const FLAG_MORE: u8 = 0x40;
/// Flags: Start (authenticator only).
pub const FLAG_START: u8 = 0x20;
/// The version bits of the Flags octet (PEAP's; zero in EAP-TLS).
pub const VERSION_MASK: u8 = 0x07;

/// Largest TLS message reassembled from fragments: far above a
/// certificate chain's few KiB, small enough that a hostile Length costs
/// nothing.
pub const MAX_TLS_MESSAGE_LEN: usize = 64 * 1024;
/// TLS data per fragment the peer sends (FreeRADIUS' default
/// `fragment_size` is 1024; with the headers this fits any PPP MRU the
/// server accepts).
pub const MAX_FRAGMENT_LEN: usize = 1000;

/// A packet or tunnel of the EAP-TLS family refused: dropped, or ending
/// the method, and counted under its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EapTlsError {
    /// No Flags octet, or an `L` without its four octets.
    Truncated,
    /// A TLS message announced or reassembled beyond
    /// [`MAX_TLS_MESSAGE_LEN`], or beyond its announced length.
    TooLong,
    /// A fragment that does not fit the reassembly in progress (a first
    /// fragment without `L`, a last fragment short of the announced
    /// length).
    BadFragment,
    /// A message before the Start, or a Start in the middle of the
    /// handshake.
    OutOfOrder,
    /// Our TLS stack refused the authenticator's records (its
    /// certificate among them).
    Tls,
    /// The authenticator's TLS stack refused ours: it sent a fatal alert
    /// (our certificate among the reasons).
    TlsAlert,
    /// PEAP: an inner packet that is neither a compressed EAP Request nor
    /// an Extensions Request, or an Extensions Request without a Result
    /// TLV.
    BadInner,
}

impl EapTlsError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            EapTlsError::Truncated => "eap_tls_truncated",
            EapTlsError::TooLong => "eap_tls_too_long",
            EapTlsError::BadFragment => "eap_tls_bad_fragment",
            EapTlsError::OutOfOrder => "eap_tls_out_of_order",
            EapTlsError::Tls => "eap_tls_refused",
            EapTlsError::TlsAlert => "eap_tls_alert",
            EapTlsError::BadInner => "peap_bad_inner",
        }
    }
}

impl fmt::Display for EapTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Type-Data of one EAP-TLS or PEAP packet, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EapTlsMessage<'a> {
    /// The Flags octet without the version bits.
    pub flags: u8,
    /// The version bits.
    pub version: u8,
    /// The TLS Message Length when `L` is set.
    pub total_len: Option<u32>,
    /// TLS records (or a fragment of them).
    pub data: &'a [u8],
}

impl<'a> EapTlsMessage<'a> {
    /// Parses the Type-Data after the Type octet.
    pub fn parse(type_data: &'a [u8]) -> Result<Self, EapTlsError> {
        let (&flags, rest) = type_data.split_first().ok_or(EapTlsError::Truncated)?;
        let (total_len, data) = if flags & FLAG_LENGTH != 0 {
            let (len, data) = rest
                .split_first_chunk::<4>()
                .ok_or(EapTlsError::Truncated)?;
            (Some(u32::from_be_bytes(*len)), data)
        } else {
            (None, rest)
        };
        Ok(EapTlsMessage {
            flags: flags & !VERSION_MASK,
            version: flags & VERSION_MASK,
            total_len,
            data,
        })
    }

    /// Whether the `M` flag is set.
    pub fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    /// Whether the `S` flag is set.
    pub fn start(&self) -> bool {
        self.flags & FLAG_START != 0
    }

    /// Appends the Type-Data (Flags, TLS Message Length, data) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let length_flag = if self.total_len.is_some() {
            FLAG_LENGTH
        } else {
            0
        };
        out.push((self.flags & !(VERSION_MASK | FLAG_LENGTH)) | length_flag | self.version);
        if let Some(len) = self.total_len {
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(self.data);
    }
}

/// Reassembles a TLS message from fragments, bounded by
/// [`MAX_TLS_MESSAGE_LEN`].
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
    /// The announced length of the message in progress.
    expected: Option<usize>,
}

impl Reassembler {
    /// Adds one fragment: `Ok(Some(message))` when the message is whole,
    /// `Ok(None)` when more fragments are due. After an error the
    /// reassembly starts afresh.
    pub fn push(&mut self, message: &EapTlsMessage<'_>) -> Result<Option<Vec<u8>>, EapTlsError> {
        let result = self.push_inner(message);
        if !matches!(result, Ok(None)) {
            self.buf = Vec::new();
            self.expected = None;
        }
        result
    }

    fn push_inner(&mut self, message: &EapTlsMessage<'_>) -> Result<Option<Vec<u8>>, EapTlsError> {
        let announced = message.total_len.map(|len| len as usize);
        if let Some(len) = announced {
            if len > MAX_TLS_MESSAGE_LEN {
                return Err(EapTlsError::TooLong);
            }
        }
        let first = self.expected.is_none() && self.buf.is_empty();
        if first {
            if message.more() && announced.is_none() {
                return Err(EapTlsError::BadFragment);
            }
            self.expected = announced;
        }
        let limit = self.expected.unwrap_or(MAX_TLS_MESSAGE_LEN);
        if message.data.len() > limit.saturating_sub(self.buf.len()) {
            return Err(EapTlsError::TooLong);
        }
        self.buf.extend_from_slice(message.data);
        if message.more() {
            return Ok(None);
        }
        if self.expected.is_some_and(|len| len != self.buf.len()) {
            return Err(EapTlsError::BadFragment);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// Whether a message is part way through.
    pub fn in_progress(&self) -> bool {
        !self.buf.is_empty() || self.expected.is_some()
    }
}

/// The TLS client inside an EAP-TLS-family method, driven with in-memory
/// buffers: records in, records out, plaintext both ways, and the MSK
/// once the handshake is done. The runtime implements it with rustls
/// (`tls::eap`).
pub trait TunnelTls: Send {
    /// Processes TLS records received from the authenticator:
    /// [`EapTlsError::TlsAlert`] when they carry its fatal alert,
    /// [`EapTlsError::Tls`] when we refuse them.
    fn receive(&mut self, records: &[u8]) -> Result<(), EapTlsError>;
    /// Moves the TLS records waiting to be sent to the end of `out`.
    fn transmit(&mut self, out: &mut Vec<u8>);
    /// Whether the handshake is still running.
    fn is_handshaking(&self) -> bool;
    /// Moves the plaintext received so far to the end of `out`.
    fn read_plaintext(&mut self, out: &mut Vec<u8>);
    /// Encrypts `plaintext` for sending (see [`Self::transmit`]).
    fn write_plaintext(&mut self, plaintext: &[u8]);
    /// After the handshake: the MSK, the TLS 1.2 PRF of the master secret
    /// with the label `client EAP encryption` over the two randoms, 64
    /// octets (EAP-TLS: [RFC 5216] 2.3; PEAPv0 the same).
    ///
    /// [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216
    fn export_msk(&self) -> Option<[u8; 64]>;
}

/// Starts a [`TunnelTls`] for each conversation.
pub trait TunnelTlsConnector: Send + Sync {
    /// A new TLS client, before its ClientHello.
    fn connect(&self) -> Result<Box<dyn TunnelTls>, EapTlsError>;
}

/// The client role's TLS for a method of the family
/// ([`super::AuthConfig::eap_peer`]): the connector that starts its
/// conversations. Equal only to itself.
#[derive(Clone)]
pub struct TlsTunnel(pub Arc<dyn TunnelTlsConnector>);

impl PartialEq for TlsTunnel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsTunnel {}

impl fmt::Debug for TlsTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTunnel")
    }
}

/// The peer's side of one TLS conversation carried in EAP: Start,
/// fragments both ways, the records handed to the TLS, the MSK once the
/// handshake is done. The method on top reads the plaintext (PEAP's phase
/// 2) and says when to answer.
pub(crate) struct TlsConversation {
    connector: TlsTunnel,
    tls: Option<Box<dyn TunnelTls>>,
    reassembly: Reassembler,
    /// Our TLS message part way through being sent in fragments.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    msk: Option<[u8; 64]>,
}

/// What a Request's Type-Data came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// The framing answers on its own (the Start's ClientHello, the next
    /// fragment of ours, the acknowledgement of one of theirs).
    Answer(Vec<u8>),
    /// A whole TLS message went to the TLS: the method reads the
    /// plaintext, then answers with [`TlsConversation::answer`].
    Records,
}

impl TlsConversation {
    pub(crate) fn new(connector: TlsTunnel) -> Self {
        TlsConversation {
            connector,
            tls: None,
            reassembly: Reassembler::default(),
            outgoing: Vec::new(),
            outgoing_sent: 0,
            msk: None,
        }
    }

    /// Whether the Start has been seen.
    pub(crate) fn started(&self) -> bool {
        self.tls.is_some()
    }

    /// The MSK, once the handshake has finished (and so the
    /// authenticator's certificate has been verified).
    pub(crate) fn msk(&self) -> Option<[u8; 64]> {
        self.msk
    }

    /// Handles the Type-Data of one Request of the method.
    pub(crate) fn receive(&mut self, type_data: &[u8]) -> Result<Received, EapTlsError> {
        let message = EapTlsMessage::parse(type_data)?;
        if message.start() {
            if self.tls.is_some() {
                return Err(EapTlsError::OutOfOrder);
            }
            let mut tls = self.connector.0.connect()?;
            tls.transmit(&mut self.outgoing);
            self.tls = Some(tls);
            return Ok(Received::Answer(self.next_fragment()));
        }
        let Some(tls) = self.tls.as_mut() else {
            return Err(EapTlsError::OutOfOrder);
        };
        if self.outgoing_sent < self.outgoing.len() {
            // The authenticator acknowledges our fragment.
            if !message.data.is_empty() || message.more() {
                return Err(EapTlsError::BadFragment);
            }
            return Ok(Received::Answer(self.next_fragment()));
        }
        let Some(records) = self.reassembly.push(&message)? else {
            return Ok(Received::Answer(empty_answer()));
        };
        tls.receive(&records)?;
        if self.msk.is_none() && !tls.is_handshaking() {
            self.msk = tls.export_msk();
        }
        Ok(Received::Records)
    }

    /// Moves the plaintext received so far to the end of `out`.
    pub(crate) fn read_plaintext(&mut self, out: &mut Vec<u8>) {
        if let Some(tls) = self.tls.as_mut() {
            tls.read_plaintext(out);
        }
    }

    /// Encrypts `plaintext` for the next answer.
    pub(crate) fn write_plaintext(&mut self, plaintext: &[u8]) {
        if let Some(tls) = self.tls.as_mut() {
            tls.write_plaintext(plaintext);
        }
    }

    /// Collects what the TLS has to send: whether there is anything.
    pub(crate) fn flush(&mut self) -> bool {
        if let Some(tls) = self.tls.as_mut() {
            tls.transmit(&mut self.outgoing);
        }
        !self.outgoing.is_empty()
    }

    /// The Type-Data answering the Request just handled: the first
    /// fragment of what the TLS has to send, or an empty acknowledgement.
    pub(crate) fn answer(&mut self) -> Vec<u8> {
        self.flush();
        self.next_fragment()
    }

    /// The next fragment of our outgoing TLS message (an empty
    /// acknowledgement when there is none).
    fn next_fragment(&mut self) -> Vec<u8> {
        let total = self.outgoing.len();
        let start = self.outgoing_sent;
        let end = total.min(start + MAX_FRAGMENT_LEN);
        let fragmented = total > MAX_FRAGMENT_LEN;
        let mut out = Vec::with_capacity(5 + end - start);
        EapTlsMessage {
            flags: if end < total { FLAG_MORE } else { 0 },
            version: 0,
            total_len: (fragmented && start == 0).then_some(total as u32),
            data: &self.outgoing[start..end],
        }
        .encode(&mut out);
        if end == total {
            self.outgoing.clear();
            self.outgoing_sent = 0;
        } else {
            self.outgoing_sent = end;
        }
        out
    }
}

/// The verdict on EAP-Success: success with the HLAK of `msk` when the
/// method has one to give (its handshake finished and its own proof
/// held), else [`AuthFailure::ServerNotAuthenticated`] ([RFC 3748] 7.2: a
/// Success before the method proved the authenticator is not believed).
///
/// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
pub(crate) fn settle_success(outbox: &mut Outbox, username: &[u8], msk: Option<[u8; 64]>) {
    match msk {
        Some(msk) => outbox.succeed(AuthEvent::Success {
            username: peer_text(username),
            hlak: hlak_from_msk(&msk),
            framed_ipv4: None,
        }),
        None => outbox.fail(AuthFailure::ServerNotAuthenticated),
    }
}

/// A refusal by the authenticator, with `message` (empty when it gave
/// none but EAP-Failure).
pub(crate) fn rejected(message: String) -> AuthFailure {
    AuthFailure::Rejected {
        reason: RejectReason::AuthenticationFailure,
        code: None,
        message,
    }
}

/// The verdict on EAP-Failure: the refusal the method already knows of
/// (the inner method's, the authenticator's alert), else a plain one.
pub(crate) fn settle_failure(outbox: &mut Outbox, refusal: Option<AuthFailure>) {
    outbox.fail(refusal.unwrap_or_else(|| rejected(String::new())));
}

/// The outer EAP conversation of a peer whose method runs over TLS
/// (EAP-TLS, PEAP): Identity, Notification, a Nak toward the method,
/// repeated Requests answered again, and the verdicts on EAP-Success and
/// EAP-Failure. The method's own Requests go to [`TlsMethodPeer`].
#[derive(Debug)]
pub(crate) struct OuterPeer {
    pub(crate) outbox: Outbox,
    /// The outer identity (at most [`super::eap::MAX_IDENTITY_LEN`]).
    pub(crate) username: Vec<u8>,
    pub(crate) last: LastAnswer,
    /// The authenticator's or the tunnel's refusal, reported when the
    /// EAP-Failure that follows arrives.
    pub(crate) refusal: Option<AuthFailure>,
}

impl OuterPeer {
    pub(crate) fn new(outbox: Outbox, username: &[u8]) -> Self {
        let username = &username[..username.len().min(super::eap::MAX_IDENTITY_LEN)];
        OuterPeer {
            outbox,
            username: username.to_vec(),
            last: LastAnswer::default(),
            refusal: None,
        }
    }

    /// Sends a Response and remembers it.
    pub(crate) fn send(&mut self, identifier: u8, kind: u8, data: &[u8]) {
        self.last.send(&mut self.outbox, identifier, kind, data);
    }
}

/// The method-specific part of a peer of an EAP method over TLS.
pub(crate) trait TlsMethodPeer {
    /// The method's EAP Type ([`super::eap_tls::TYPE_EAP_TLS`], PEAP's 25).
    const TYPE: u8;
    fn outer(&mut self) -> &mut OuterPeer;
    /// The Type-Data answering a Request of the method; `None` when nothing
    /// is sent. An error has already been settled in the outbox where it
    /// ends the conversation.
    fn on_request(
        &mut self,
        now: Instant,
        identifier: u8,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, EapTlsError>;
    /// The MSK to succeed with on EAP-Success, when the method proved the
    /// authenticator ([`settle_success`]).
    fn success_msk(&self) -> Option<[u8; 64]>;
}

/// One EAP packet for `method`'s peer ([RFC 3748] 4, 5): the outer
/// conversation here, the method's Requests to the method.
///
/// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
pub(crate) fn handle_outer_packet<M: TlsMethodPeer>(
    method: &mut M,
    now: Instant,
    info: &[u8],
) -> Result<(), EapTlsError> {
    let outer = method.outer();
    if outer.outbox.failed() || outer.outbox.succeeded() {
        return Ok(());
    }
    match EapPacket::parse(info).map_err(|_| EapTlsError::Truncated)? {
        EapPacket::Request {
            identifier,
            kind,
            data,
        } => {
            let outer = method.outer();
            if outer.last.repeat(&mut outer.outbox, identifier) {
                return Ok(());
            }
            let answer = match kind {
                TYPE_IDENTITY => outer.username.clone(),
                TYPE_NOTIFICATION => Vec::new(),
                kind if kind == M::TYPE => match method.on_request(now, identifier, data)? {
                    Some(answer) => answer,
                    None => return Ok(()),
                },
                _ => {
                    outer.send(identifier, TYPE_NAK, &[M::TYPE]);
                    return Ok(());
                }
            };
            method.outer().send(identifier, kind, &answer);
            Ok(())
        }
        EapPacket::Success { .. } => {
            let msk = method.success_msk();
            let outer = method.outer();
            settle_success(&mut outer.outbox, &outer.username, msk);
            Ok(())
        }
        EapPacket::Failure { .. } => {
            let outer = method.outer();
            settle_failure(&mut outer.outbox, outer.refusal.take());
            Ok(())
        }
        EapPacket::Response { .. } => Err(EapTlsError::OutOfOrder),
    }
}

/// The last Request a peer answered and its Response: a Request repeated
/// with the same Identifier gets the same Response again, without
/// touching the method's state.
#[derive(Debug, Default)]
pub(crate) struct LastAnswer(Option<(u8, Vec<u8>)>);

impl LastAnswer {
    /// Sends the Response again if `identifier` was answered last.
    pub(crate) fn repeat(&self, outbox: &mut Outbox, identifier: u8) -> bool {
        match &self.0 {
            Some((answered, response)) if *answered == identifier => {
                outbox.send(response.clone());
                true
            }
            _ => false,
        }
    }

    /// Sends a Response and remembers it.
    pub(crate) fn send(&mut self, outbox: &mut Outbox, identifier: u8, kind: u8, data: &[u8]) {
        let packet = EapPacket::Response {
            identifier,
            kind,
            data,
        }
        .to_vec();
        outbox.send(packet.clone());
        self.0 = Some((identifier, packet));
    }
}

/// An empty Type-Data (Flags only): acknowledges a fragment, the
/// authenticator's Finished, or its alert.
pub(crate) fn empty_answer() -> Vec<u8> {
    vec![0]
}

/// Encoding helpers for the methods' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Everything `outbox` has to send, in order.
    pub(crate) fn sent(outbox: &mut crate::proto::auth::outbox::Outbox) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut buf = Vec::new();
        while outbox.poll_transmit(&mut buf) {
            all.push(std::mem::take(&mut buf));
        }
        all
    }

    /// An EAP Request, encoded.
    pub(crate) fn eap_request(identifier: u8, kind: u8, data: &[u8]) -> Vec<u8> {
        EapPacket::Request {
            identifier,
            kind,
            data,
        }
        .to_vec()
    }

    /// A Type-Data, encoded.
    pub(crate) fn message(flags: u8, total_len: Option<u32>, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        EapTlsMessage {
            flags,
            version: 0,
            total_len,
            data,
        }
        .encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::message;
    use super::*;

    #[test]
    fn flags_length_and_version_parse() {
        assert_eq!(
            EapTlsMessage::parse(&[0x21]),
            Ok(EapTlsMessage {
                flags: FLAG_START,
                version: 1,
                total_len: None,
                data: &[],
            })
        );
        let bytes = message(FLAG_MORE, Some(3000), b"abc");
        assert_eq!(bytes[..5], [0xc0, 0, 0, 0x0b, 0xb8]);
        let parsed = EapTlsMessage::parse(&bytes).unwrap();
        assert!(parsed.more() && !parsed.start());
        assert_eq!((parsed.total_len, parsed.data), (Some(3000), &b"abc"[..]));
        // Hostile lengths: no Flags, an L with fewer than four octets.
        assert_eq!(EapTlsMessage::parse(&[]), Err(EapTlsError::Truncated));
        assert_eq!(
            EapTlsMessage::parse(&[FLAG_LENGTH, 0, 0]),
            Err(EapTlsError::Truncated)
        );
    }

    #[test]
    fn fragments_reassemble_to_the_announced_length() {
        let mut reassembly = Reassembler::default();
        let first = message(FLAG_MORE, Some(6), b"abc");
        let last = message(0, None, b"def");
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&first).unwrap()),
            Ok(None)
        );
        assert!(reassembly.in_progress());
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&last).unwrap()),
            Ok(Some(b"abcdef".to_vec()))
        );
        assert!(!reassembly.in_progress());
        // An unfragmented message, with or without L.
        let whole = message(0, None, b"xyz");
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&whole).unwrap()),
            Ok(Some(b"xyz".to_vec()))
        );
    }

    #[test]
    fn hostile_fragments_are_refused_and_reset() {
        let mut reassembly = Reassembler::default();
        // An announced length beyond the bound.
        let huge = message(FLAG_MORE, Some(u32::MAX), b"a");
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&huge).unwrap()),
            Err(EapTlsError::TooLong)
        );
        // A first fragment without L.
        let bare = message(FLAG_MORE, None, b"a");
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&bare).unwrap()),
            Err(EapTlsError::BadFragment)
        );
        // More octets than announced.
        let first = message(FLAG_MORE, Some(4), b"abc");
        let over = message(0, None, b"de");
        reassembly
            .push(&EapTlsMessage::parse(&first).unwrap())
            .unwrap();
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&over).unwrap()),
            Err(EapTlsError::TooLong)
        );
        assert!(!reassembly.in_progress());
        // Fewer octets than announced.
        reassembly
            .push(&EapTlsMessage::parse(&first).unwrap())
            .unwrap();
        let short = message(0, None, b"");
        assert_eq!(
            reassembly.push(&EapTlsMessage::parse(&short).unwrap()),
            Err(EapTlsError::BadFragment)
        );
        // Fragments that never end stop at the bound.
        let mut reassembly = Reassembler::default();
        let chunk = vec![0u8; MAX_FRAGMENT_LEN];
        let first = message(FLAG_MORE, Some(MAX_TLS_MESSAGE_LEN as u32), &chunk);
        reassembly
            .push(&EapTlsMessage::parse(&first).unwrap())
            .unwrap();
        let next = message(FLAG_MORE, None, &chunk);
        let mut refused = false;
        for _ in 0..MAX_TLS_MESSAGE_LEN / MAX_FRAGMENT_LEN + 1 {
            if reassembly.push(&EapTlsMessage::parse(&next).unwrap()) == Err(EapTlsError::TooLong) {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
