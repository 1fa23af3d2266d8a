//! The peer's side of PEAPv0 with EAP-MSCHAPv2 inside ([MS-PEAP]): what a
//! Windows client runs against a RADIUS server that terminates PEAP, with
//! sstpd relaying the EAP in between (`radius.eap_pass_through`).
//!
//! ```text
//! Request/Identity                      → Response/Identity (outer identity)
//! Request/PEAP Start (S)                → Response/PEAP ClientHello
//! Request/PEAP ServerHello… (L, M)      → Response/PEAP (empty: fragment ack) …
//! Request/PEAP ServerHelloDone          → Response/PEAP ClientKeyExchange, Finished
//! Request/PEAP ChangeCipherSpec, Finished → Response/PEAP (empty)
//! Request/PEAP {Identity}               → Response/PEAP {Identity}
//! Request/PEAP {MSCHAPv2 Challenge}     → Response/PEAP {MSCHAPv2 Response}
//! Request/PEAP {MSCHAPv2 Success}       → Response/PEAP {MSCHAPv2 Success}
//! Request/PEAP {Extensions: Result TLV} → Response/PEAP {Extensions: Result TLV}
//! EAP-Success (the MSK is the TLS exporter's)
//! ```
//!
//! (`{…}` is inside the TLS tunnel.) Behaviour worth knowing:
//!
//! * Framing ([MS-PEAP] 2.2.1, the EAP-TLS rules of [RFC 5216] 3.2):
//!   Flags `L M S` and three version bits, the TLS Message Length after an
//!   `L`. A message in fragments is reassembled up to
//!   [`MAX_TLS_MESSAGE_LEN`] (a certificate chain of a few KiB fits many
//!   times); a longer announced or received message is refused
//!   ([`PeapError::TooLong`]) and ends the method. Every fragment but the
//!   last is acknowledged with an empty Response; the peer's own messages
//!   longer than [`MAX_FRAGMENT_LEN`] go out in fragments, each after the
//!   authenticator's empty Request.
//! * Phase 2 in PEAPv0 ([MS-PEAP] 3.1.5.6): the inner EAP packets travel
//!   without their Code, Identifier and Length, except Extensions (Type
//!   33), which travel whole. The inner packets are handed to the
//!   EAP-MSCHAPv2 peer of [`super::eap`] with a header rebuilt from the
//!   outer Identifier, so the inner method is that module's, unchanged.
//! * The Result TLV ([MS-PEAP] 2.2.8.1) is answered with success only when
//!   the authenticator both announced success and proved, through
//!   MS-CHAPv2's AuthenticatorResponse, that it knows the password; the
//!   outer EAP-Success is accepted only after that answer ([RFC 3748] 7.2).
//!   Other TLVs (Crypto-Binding, SoH) are not answered: FreeRADIUS sends
//!   none, and a server that requires them fails the method.
//! * Keys ([MS-PEAP] 3.1.5.7 for PEAPv0 as FreeRADIUS and Windows run it):
//!   the MSK is the TLS PRF of the master secret with the label
//!   `client EAP encryption` over the two randoms, 64 octets: RFC 5705's
//!   exporter with no context on TLS 1.2. The RADIUS server returns it as
//!   MS-MPPE-Recv-Key (MSK 0..32) and MS-MPPE-Send-Key (32..64), so the
//!   HLAK is its first 32 octets at both ends ([MS-SSTP] 3.2.5.2.2).
//! * The TLS is behind [`TunnelTls`], so this module stays sans-IO and
//!   builds without the runtime (the fuzzers build it): the runtime's
//!   `tls::peap` implements it with a rustls client capped at TLS 1.2 that
//!   verifies the server's certificate against the CA it is given.
//! * Retransmissions: a Request repeated with the same Identifier gets the
//!   same Response again, without touching the TLS state.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
//! [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;

use super::eap::{
    hlak_from_msk, EapClient, EapPacket, CODE_REQUEST, CODE_RESPONSE, TYPE_IDENTITY, TYPE_NAK,
    TYPE_NOTIFICATION,
};
use super::machine::{AuthConfig, AuthEvent, AuthFailure};
use super::outbox::Outbox;
use super::packet::peer_text;
use super::RejectReason;

/// PEAP's EAP Type (IANA EAP method type 25).
pub const TYPE_PEAP: u8 = 25;
/// The Extensions Type that PEAPv0 phase 2 carries whole ([MS-PEAP] 2.2.5).
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
pub const TYPE_EXTENSIONS: u8 = 33;

/// Flags: the TLS Message Length field is present.
pub const FLAG_LENGTH: u8 = 0x80;
/// Flags: more fragments follow.
pub const FLAG_MORE: u8 = 0x40;
/// Flags: PEAP Start (authenticator only).
pub const FLAG_START: u8 = 0x20;
/// The version bits of the Flags octet.
pub const VERSION_MASK: u8 = 0x07;

/// Largest TLS message reassembled from fragments: far above a
/// certificate chain's few KiB, small enough that a hostile Length costs
/// nothing.
pub const MAX_TLS_MESSAGE_LEN: usize = 64 * 1024;
/// TLS data per fragment the peer sends (FreeRADIUS' default
/// `fragment_size` is 1024; with the headers this fits any PPP MRU the
/// server accepts).
pub const MAX_FRAGMENT_LEN: usize = 1000;

/// The Result TLV's Type with the Mandatory bit ([MS-PEAP] 2.2.8.1).
const RESULT_TLV: u16 = 0x8003;
/// Its Status values.
const RESULT_SUCCESS: u16 = 1;
const RESULT_FAILURE: u16 = 2;

/// A PEAP packet or tunnel refused: dropped, or ending the method, and
/// counted under its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeapError {
    /// No Flags octet, or an `L` without its four octets.
    Truncated,
    /// A TLS message announced or reassembled beyond
    /// [`MAX_TLS_MESSAGE_LEN`], or beyond its announced length.
    TooLong,
    /// A fragment that does not fit the reassembly in progress (a first
    /// fragment without `L`, a last fragment short of the announced
    /// length).
    BadFragment,
    /// A PEAP message before the Start, or a Start in the middle of the
    /// handshake.
    OutOfOrder,
    /// The TLS stack refused the authenticator's records (its
    /// certificate among them).
    Tls,
    /// An inner packet that is neither a compressed EAP Request nor an
    /// Extensions Request, or an Extensions Request without a Result TLV.
    BadInner,
}

impl PeapError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            PeapError::Truncated => "peap_truncated",
            PeapError::TooLong => "peap_too_long",
            PeapError::BadFragment => "peap_bad_fragment",
            PeapError::OutOfOrder => "peap_out_of_order",
            PeapError::Tls => "peap_tls",
            PeapError::BadInner => "peap_bad_inner",
        }
    }
}

impl fmt::Display for PeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Type-Data of one PEAP packet ([MS-PEAP] 2.2.1), borrowed.
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeapMessage<'a> {
    /// The Flags octet without the version bits.
    pub flags: u8,
    /// The version bits.
    pub version: u8,
    /// The TLS Message Length when `L` is set.
    pub total_len: Option<u32>,
    /// TLS records (or a fragment of them).
    pub data: &'a [u8],
}

impl<'a> PeapMessage<'a> {
    /// Parses the Type-Data after the Type octet.
    pub fn parse(type_data: &'a [u8]) -> Result<Self, PeapError> {
        let (&flags, rest) = type_data.split_first().ok_or(PeapError::Truncated)?;
        let (total_len, data) = if flags & FLAG_LENGTH != 0 {
            let (len, data) = rest.split_first_chunk::<4>().ok_or(PeapError::Truncated)?;
            (Some(u32::from_be_bytes(*len)), data)
        } else {
            (None, rest)
        };
        Ok(PeapMessage {
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

/// Reassembles a TLS message from PEAP fragments, bounded by
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
    pub fn push(&mut self, message: &PeapMessage<'_>) -> Result<Option<Vec<u8>>, PeapError> {
        let result = self.push_inner(message);
        if !matches!(result, Ok(None)) {
            self.buf = Vec::new();
            self.expected = None;
        }
        result
    }

    fn push_inner(&mut self, message: &PeapMessage<'_>) -> Result<Option<Vec<u8>>, PeapError> {
        let announced = message.total_len.map(|len| len as usize);
        if let Some(len) = announced {
            if len > MAX_TLS_MESSAGE_LEN {
                return Err(PeapError::TooLong);
            }
        }
        let first = self.expected.is_none() && self.buf.is_empty();
        if first {
            if message.more() && announced.is_none() {
                return Err(PeapError::BadFragment);
            }
            self.expected = announced;
        }
        let limit = self.expected.unwrap_or(MAX_TLS_MESSAGE_LEN);
        if message.data.len() > limit.saturating_sub(self.buf.len()) {
            return Err(PeapError::TooLong);
        }
        self.buf.extend_from_slice(message.data);
        if message.more() {
            return Ok(None);
        }
        if self.expected.is_some_and(|len| len != self.buf.len()) {
            return Err(PeapError::BadFragment);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// Whether a message is part way through.
    pub fn in_progress(&self) -> bool {
        !self.buf.is_empty() || self.expected.is_some()
    }
}

/// The TLS client inside PEAP, driven with in-memory buffers: records in,
/// records out, plaintext both ways, and the MSK once the handshake is
/// done. The runtime implements it with rustls (`tls::peap`).
pub trait TunnelTls: Send {
    /// Processes TLS records received from the authenticator.
    fn receive(&mut self, records: &[u8]) -> Result<(), PeapError>;
    /// Moves the TLS records waiting to be sent to the end of `out`.
    fn transmit(&mut self, out: &mut Vec<u8>);
    /// Whether the handshake is still running.
    fn is_handshaking(&self) -> bool;
    /// Moves the plaintext received so far to the end of `out`.
    fn read_plaintext(&mut self, out: &mut Vec<u8>);
    /// Encrypts `plaintext` for sending (see [`Self::transmit`]).
    fn write_plaintext(&mut self, plaintext: &[u8]);
    /// After the handshake: the PEAPv0 MSK (label `client EAP
    /// encryption`, 64 octets).
    fn export_msk(&self) -> Option<[u8; 64]>;
}

/// Starts a [`TunnelTls`] for each PEAP conversation.
pub trait TunnelTlsConnector: Send + Sync {
    /// A new TLS client, before its ClientHello.
    fn connect(&self) -> Result<Box<dyn TunnelTls>, PeapError>;
}

/// The client role's choice of PEAP ([`AuthConfig::eap_peap`]): the
/// connector that starts its TLS tunnels. Equal only to itself.
#[derive(Clone)]
pub struct PeapTunnel(pub Arc<dyn TunnelTlsConnector>);

impl PartialEq for PeapTunnel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PeapTunnel {}

impl fmt::Debug for PeapTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeapTunnel")
    }
}

/// What the tunnel's Result exchange settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TunnelResult {
    Pending,
    /// We answered the Result TLV with success: EAP-Success may follow.
    Succeeded,
    /// We answered with failure (the authenticator's, or ours).
    Failed,
}

/// The peer's side of EAP with PEAPv0 and EAP-MSCHAPv2 inside.
pub(crate) struct PeapClient {
    pub(super) outbox: Outbox,
    username: Vec<u8>,
    connector: PeapTunnel,
    /// The inner method; its Success and Failure Requests arrive through
    /// the tunnel.
    inner: EapClient,
    tls: Option<Box<dyn TunnelTls>>,
    reassembly: Reassembler,
    /// Our TLS message part way through being sent in fragments.
    outgoing: Vec<u8>,
    outgoing_sent: usize,
    /// The last Request answered and our Response, for repeats.
    last: Option<(u8, Vec<u8>)>,
    result: TunnelResult,
    /// The tunnel's refusal (the inner method's, or the Result TLV's),
    /// reported when the EAP-Failure that follows arrives.
    refusal: Option<AuthFailure>,
    msk: Option<[u8; 64]>,
}

impl fmt::Debug for PeapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeapClient")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("tunnel", &self.tls.is_some())
            .field("result", &self.result)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl PeapClient {
    pub(crate) fn new(
        config: &AuthConfig,
        connector: PeapTunnel,
        username: &[u8],
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let username = &username[..username.len().min(super::eap::MAX_IDENTITY_LEN)];
        PeapClient {
            outbox: Outbox::new(now + config.phase_timeout),
            username: username.to_vec(),
            connector,
            inner: EapClient::new(config, username, password, now, rng),
            tls: None,
            reassembly: Reassembler::default(),
            outgoing: Vec::new(),
            outgoing_sent: 0,
            last: None,
            result: TunnelResult::Pending,
            refusal: None,
            msk: None,
        }
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), PeapError> {
        if self.outbox.failed() || self.outbox.succeeded() {
            return Ok(());
        }
        let packet = EapPacket::parse(info).map_err(|_| PeapError::Truncated)?;
        match packet {
            EapPacket::Request {
                identifier,
                kind,
                data,
            } => {
                if let Some((answered, response)) = &self.last {
                    if *answered == identifier {
                        self.outbox.send(response.clone());
                        return Ok(());
                    }
                }
                let data = match kind {
                    TYPE_IDENTITY => self.username.clone(),
                    TYPE_NOTIFICATION => Vec::new(),
                    TYPE_PEAP => match self.on_peap(now, identifier, data) {
                        Ok(Some(data)) => data,
                        Ok(None) => return Ok(()),
                        Err(error) => {
                            if matches!(error, PeapError::Tls | PeapError::TooLong) {
                                self.outbox.fail(AuthFailure::ServerNotAuthenticated);
                            }
                            return Err(error);
                        }
                    },
                    _ => {
                        self.send(identifier, TYPE_NAK, &[TYPE_PEAP]);
                        return Ok(());
                    }
                };
                self.send(identifier, kind, &data);
                Ok(())
            }
            EapPacket::Success { .. } => {
                match (self.result, self.msk) {
                    (TunnelResult::Succeeded, Some(msk)) => {
                        self.outbox.succeed(AuthEvent::Success {
                            username: peer_text(&self.username),
                            hlak: hlak_from_msk(&msk),
                            framed_ipv4: None,
                        });
                    }
                    // Success before the tunnel's method proved the
                    // authenticator ([RFC 3748] 7.2).
                    _ => self.outbox.fail(AuthFailure::ServerNotAuthenticated),
                }
                Ok(())
            }
            EapPacket::Failure { .. } => {
                let refusal = self.refusal.take();
                self.outbox
                    .fail(refusal.unwrap_or_else(|| rejected(String::new())));
                Ok(())
            }
            EapPacket::Response { .. } => Err(PeapError::OutOfOrder),
        }
    }

    fn send(&mut self, identifier: u8, kind: u8, data: &[u8]) {
        let packet = EapPacket::Response {
            identifier,
            kind,
            data,
        }
        .to_vec();
        self.outbox.send(packet.clone());
        self.last = Some((identifier, packet));
    }

    /// The Type-Data answering a PEAP Request; `None` when nothing is sent.
    fn on_peap(
        &mut self,
        now: Instant,
        identifier: u8,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, PeapError> {
        let message = PeapMessage::parse(data)?;
        if message.start() {
            if self.tls.is_some() {
                return Err(PeapError::OutOfOrder);
            }
            let mut tls = self.connector.0.connect()?;
            tls.transmit(&mut self.outgoing);
            self.tls = Some(tls);
            return Ok(Some(self.next_fragment()));
        }
        if self.tls.is_none() {
            return Err(PeapError::OutOfOrder);
        }
        if self.outgoing_sent < self.outgoing.len() {
            // The authenticator acknowledges our fragment.
            if !message.data.is_empty() || message.more() {
                return Err(PeapError::BadFragment);
            }
            return Ok(Some(self.next_fragment()));
        }
        let Some(records) = self.reassembly.push(&message)? else {
            return Ok(Some(ack()));
        };
        let Some(tls) = self.tls.as_mut() else {
            return Err(PeapError::OutOfOrder);
        };
        tls.receive(&records)?;
        if self.msk.is_none() && !tls.is_handshaking() {
            self.msk = tls.export_msk();
        }
        let mut plaintext = Vec::new();
        tls.read_plaintext(&mut plaintext);
        if !plaintext.is_empty() {
            self.on_inner(now, identifier, &plaintext)?;
        }
        if let Some(tls) = self.tls.as_mut() {
            tls.transmit(&mut self.outgoing);
        }
        if self.outbox.failed() && self.outgoing.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.next_fragment()))
    }

    /// The next fragment of our outgoing TLS message (an empty
    /// acknowledgement when there is none).
    fn next_fragment(&mut self) -> Vec<u8> {
        let total = self.outgoing.len();
        let start = self.outgoing_sent;
        let end = total.min(start + MAX_FRAGMENT_LEN);
        let fragmented = total > MAX_FRAGMENT_LEN;
        let mut out = Vec::with_capacity(5 + end - start);
        PeapMessage {
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

    /// One phase 2 packet from the tunnel.
    fn on_inner(
        &mut self,
        now: Instant,
        identifier: u8,
        plaintext: &[u8],
    ) -> Result<(), PeapError> {
        let extensions =
            plaintext.len() >= 5 && plaintext[0] == CODE_REQUEST && plaintext[4] == TYPE_EXTENSIONS;
        if extensions {
            return self.on_extensions(plaintext);
        }
        // A compressed Request ([MS-PEAP] 3.1.5.6): the header is rebuilt
        // with the outer Identifier for the inner method.
        let (&kind, data) = plaintext.split_first().ok_or(PeapError::BadInner)?;
        let request = EapPacket::Request {
            identifier,
            kind,
            data,
        }
        .to_vec();
        self.inner
            .handle_packet(now, &request)
            .map_err(|_| PeapError::BadInner)?;
        let mut response = Vec::new();
        while self.inner.outbox.poll_transmit(&mut response) {
            if response.first() == Some(&CODE_RESPONSE) && response.len() > 4 {
                if let Some(tls) = self.tls.as_mut() {
                    tls.write_plaintext(&response[4..]);
                }
            }
            response.clear();
        }
        while let Some(event) = self.inner.outbox.poll_event() {
            if let AuthEvent::Failure(failure) = event {
                // The Result TLV and the EAP-Failure follow; the verdict
                // waits for them, so the authenticator sees its refusal
                // through.
                self.result = TunnelResult::Failed;
                self.refusal.get_or_insert(failure);
            }
        }
        Ok(())
    }

    /// An Extensions Request: the Result TLV answered ([MS-PEAP] 3.1.5.7).
    fn on_extensions(&mut self, plaintext: &[u8]) -> Result<(), PeapError> {
        let Ok(EapPacket::Request {
            identifier, data, ..
        }) = EapPacket::parse(plaintext)
        else {
            return Err(PeapError::BadInner);
        };
        let status = result_tlv(data).ok_or(PeapError::BadInner)?;
        let proven = self.inner.server_proven() && self.msk.is_some();
        let success = status == RESULT_SUCCESS && proven;
        let status = if success {
            RESULT_SUCCESS
        } else {
            RESULT_FAILURE
        };
        let mut tlv = Vec::with_capacity(6);
        tlv.extend_from_slice(&RESULT_TLV.to_be_bytes());
        tlv.extend_from_slice(&2u16.to_be_bytes());
        tlv.extend_from_slice(&status.to_be_bytes());
        let response = EapPacket::Response {
            identifier,
            kind: TYPE_EXTENSIONS,
            data: &tlv,
        }
        .to_vec();
        if let Some(tls) = self.tls.as_mut() {
            tls.write_plaintext(&response);
        }
        if success {
            self.result = TunnelResult::Succeeded;
        } else if status_was_failure(data) {
            self.result = TunnelResult::Failed;
            self.refusal
                .get_or_insert_with(|| rejected("the authenticator reported failure".into()));
        } else {
            // Success claimed without the inner method's proof.
            self.result = TunnelResult::Failed;
            self.outbox.fail(AuthFailure::ServerNotAuthenticated);
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outbox.failed() || self.outbox.succeeded() {
            return;
        }
        if self.outbox.phase_expired(now) {
            let refusal = self.refusal.take();
            self.outbox.fail(refusal.unwrap_or(AuthFailure::Timeout));
        }
    }
}

fn status_was_failure(tlvs: &[u8]) -> bool {
    result_tlv(tlvs) == Some(RESULT_FAILURE)
}

fn rejected(message: String) -> AuthFailure {
    AuthFailure::Rejected {
        reason: RejectReason::AuthenticationFailure,
        code: None,
        message,
    }
}

/// An empty Response: acknowledges a fragment, or the Finished.
fn ack() -> Vec<u8> {
    vec![0]
}

/// The Status of the Result TLV among `tlvs` ([MS-PEAP] 2.2.8.1), the
/// Mandatory bit ignored.
fn result_tlv(mut tlvs: &[u8]) -> Option<u16> {
    while let [t0, t1, l0, l1, rest @ ..] = tlvs {
        let kind = u16::from_be_bytes([*t0, *t1]) & 0x3fff;
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let (value, next) = rest.split_at_checked(len)?;
        if kind == RESULT_TLV & 0x3fff {
            let status: [u8; 2] = value.try_into().ok()?;
            return Some(u16::from_be_bytes(status));
        }
        tlvs = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(flags: u8, total_len: Option<u32>, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PeapMessage {
            flags,
            version: 0,
            total_len,
            data,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn flags_length_and_version_parse() {
        assert_eq!(
            PeapMessage::parse(&[0x21]),
            Ok(PeapMessage {
                flags: FLAG_START,
                version: 1,
                total_len: None,
                data: &[],
            })
        );
        let bytes = message(FLAG_MORE, Some(3000), b"abc");
        assert_eq!(bytes[..5], [0xc0, 0, 0, 0x0b, 0xb8]);
        let parsed = PeapMessage::parse(&bytes).unwrap();
        assert!(parsed.more() && !parsed.start());
        assert_eq!((parsed.total_len, parsed.data), (Some(3000), &b"abc"[..]));
        // Hostile lengths: no Flags, an L with fewer than four octets.
        assert_eq!(PeapMessage::parse(&[]), Err(PeapError::Truncated));
        assert_eq!(
            PeapMessage::parse(&[FLAG_LENGTH, 0, 0]),
            Err(PeapError::Truncated)
        );
    }

    #[test]
    fn fragments_reassemble_to_the_announced_length() {
        let mut reassembly = Reassembler::default();
        let first = message(FLAG_MORE, Some(6), b"abc");
        let last = message(0, None, b"def");
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&first).unwrap()),
            Ok(None)
        );
        assert!(reassembly.in_progress());
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&last).unwrap()),
            Ok(Some(b"abcdef".to_vec()))
        );
        assert!(!reassembly.in_progress());
        // An unfragmented message, with or without L.
        let whole = message(0, None, b"xyz");
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&whole).unwrap()),
            Ok(Some(b"xyz".to_vec()))
        );
    }

    #[test]
    fn hostile_fragments_are_refused_and_reset() {
        let mut reassembly = Reassembler::default();
        // An announced length beyond the bound.
        let huge = message(FLAG_MORE, Some(u32::MAX), b"a");
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&huge).unwrap()),
            Err(PeapError::TooLong)
        );
        // A first fragment without L.
        let bare = message(FLAG_MORE, None, b"a");
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&bare).unwrap()),
            Err(PeapError::BadFragment)
        );
        // More octets than announced.
        let first = message(FLAG_MORE, Some(4), b"abc");
        let over = message(0, None, b"de");
        reassembly
            .push(&PeapMessage::parse(&first).unwrap())
            .unwrap();
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&over).unwrap()),
            Err(PeapError::TooLong)
        );
        assert!(!reassembly.in_progress());
        // Fewer octets than announced.
        reassembly
            .push(&PeapMessage::parse(&first).unwrap())
            .unwrap();
        let short = message(0, None, b"");
        assert_eq!(
            reassembly.push(&PeapMessage::parse(&short).unwrap()),
            Err(PeapError::BadFragment)
        );
        // Fragments that never end stop at the bound.
        let mut reassembly = Reassembler::default();
        let chunk = vec![0u8; MAX_FRAGMENT_LEN];
        let first = message(FLAG_MORE, Some(MAX_TLS_MESSAGE_LEN as u32), &chunk);
        reassembly
            .push(&PeapMessage::parse(&first).unwrap())
            .unwrap();
        let next = message(FLAG_MORE, None, &chunk);
        let mut refused = false;
        for _ in 0..MAX_TLS_MESSAGE_LEN / MAX_FRAGMENT_LEN + 1 {
            if reassembly.push(&PeapMessage::parse(&next).unwrap()) == Err(PeapError::TooLong) {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    /// A "TLS" that passes records through as plaintext, counting what it
    /// is fed.
    #[derive(Default)]
    struct Transparent {
        received: Vec<u8>,
        sent: Vec<u8>,
        fed: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl TunnelTls for Transparent {
        fn receive(&mut self, records: &[u8]) -> Result<(), PeapError> {
            self.fed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.received.extend_from_slice(records);
            Ok(())
        }
        fn transmit(&mut self, out: &mut Vec<u8>) {
            out.append(&mut self.sent);
        }
        fn is_handshaking(&self) -> bool {
            false
        }
        fn read_plaintext(&mut self, out: &mut Vec<u8>) {
            out.append(&mut self.received);
        }
        fn write_plaintext(&mut self, plaintext: &[u8]) {
            self.sent.extend_from_slice(plaintext);
        }
        fn export_msk(&self) -> Option<[u8; 64]> {
            Some([7; 64])
        }
    }

    /// The tunnel's ClientHello is "hello", or `.1` octets when set.
    struct Connector(Arc<std::sync::atomic::AtomicUsize>, usize);

    impl TunnelTlsConnector for Connector {
        fn connect(&self) -> Result<Box<dyn TunnelTls>, PeapError> {
            let hello = match self.1 {
                0 => b"hello".to_vec(),
                len => vec![0xab; len],
            };
            Ok(Box::new(Transparent {
                sent: hello,
                fed: self.0.clone(),
                ..Transparent::default()
            }))
        }
    }

    fn eap_request(identifier: u8, kind: u8, data: &[u8]) -> Vec<u8> {
        EapPacket::Request {
            identifier,
            kind,
            data,
        }
        .to_vec()
    }

    fn peap_request(identifier: u8, flags: u8, data: &[u8]) -> Vec<u8> {
        eap_request(identifier, TYPE_PEAP, &message(flags, None, data))
    }

    fn client() -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        client_with_hello(0)
    }

    fn client_with_hello(
        hello_len: usize,
    ) -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        let fed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let now = Instant::now();
        let mut rng = super::super::seeded_rng(1);
        let client = PeapClient::new(
            &AuthConfig::default(),
            PeapTunnel(Arc::new(Connector(fed.clone(), hello_len))),
            b"alice",
            b"pw",
            now,
            &mut rng,
        );
        (client, fed, now)
    }

    /// A client past the Start, its ClientHello sent.
    fn started() -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        let (mut client, fed, now) = client();
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        let _ = sent(&mut client);
        (client, fed, now)
    }

    fn assert_not_authenticated(client: &mut PeapClient) {
        assert_eq!(
            client.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
    }

    fn sent(client: &mut PeapClient) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut buf = Vec::new();
        while client.outbox.poll_transmit(&mut buf) {
            all.push(std::mem::take(&mut buf));
        }
        all
    }

    #[test]
    fn a_long_message_goes_out_in_fragments_each_after_an_ack() {
        let (mut client, _, now) = client_with_hello(2 * MAX_FRAGMENT_LEN + 5);
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        let first = sent(&mut client);
        let parsed = PeapMessage::parse(&first[0][5..]).unwrap();
        assert!(parsed.more());
        assert_eq!(parsed.total_len, Some(2 * MAX_FRAGMENT_LEN as u32 + 5));
        assert_eq!(parsed.data.len(), MAX_FRAGMENT_LEN);
        // Data where an ack belongs is refused.
        assert_eq!(
            client.handle_packet(now, &peap_request(2, 0, b"x")),
            Err(PeapError::BadFragment)
        );
        client.handle_packet(now, &peap_request(3, 0, b"")).unwrap();
        let second = sent(&mut client);
        let parsed = PeapMessage::parse(&second[0][5..]).unwrap();
        assert!(parsed.more() && parsed.total_len.is_none());
        client.handle_packet(now, &peap_request(4, 0, b"")).unwrap();
        let last = sent(&mut client);
        let parsed = PeapMessage::parse(&last[0][5..]).unwrap();
        assert!(!parsed.more());
        assert_eq!(parsed.data.len(), 5);
    }

    #[test]
    fn identity_is_answered_and_another_method_is_naked_toward_peap() {
        let (mut client, _, now) = client();
        let identity = eap_request(1, TYPE_IDENTITY, b"");
        client.handle_packet(now, &identity).unwrap();
        assert_eq!(sent(&mut client), [b"\x02\x01\x00\x0a\x01alice".to_vec()]);
        let mschapv2 = eap_request(2, super::super::eap::TYPE_MSCHAPV2, &[1]);
        client.handle_packet(now, &mschapv2).unwrap();
        assert_eq!(sent(&mut client), [vec![2, 2, 0, 6, TYPE_NAK, TYPE_PEAP]]);
        // PEAP data before the Start is out of order.
        assert_eq!(
            client.handle_packet(now, &peap_request(3, 0, b"x")),
            Err(PeapError::OutOfOrder)
        );
    }

    #[test]
    fn success_before_the_inner_proof_is_refused() {
        let (mut client, _, now) = client();
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        // The ClientHello ("hello" here) answers the Start.
        assert_eq!(
            sent(&mut client),
            [[2, 1, 0, 11, TYPE_PEAP, 0, b'h', b'e', b'l', b'l', b'o']]
        );
        client
            .handle_packet(now, &EapPacket::Success { identifier: 1 }.to_vec())
            .unwrap();
        assert_not_authenticated(&mut client);
    }

    #[test]
    fn a_result_tlv_claiming_success_without_the_proof_is_answered_with_failure() {
        let (mut client, _, now) = started();
        let extensions = eap_request(9, TYPE_EXTENSIONS, &[0x80, 0x03, 0, 2, 0, 1]);
        client
            .handle_packet(now, &peap_request(2, 0, &extensions))
            .unwrap();
        let answer = sent(&mut client);
        // The inner Response: Extensions with the Result TLV's failure.
        assert_eq!(
            answer[0][6..],
            [2, 9, 0, 11, TYPE_EXTENSIONS, 0x80, 0x03, 0, 2, 0, 2]
        );
        assert_not_authenticated(&mut client);
    }

    #[test]
    fn a_repeated_request_gets_the_same_response_without_touching_the_tunnel() {
        let (mut client, fed, now) = started();
        // A compressed inner Identity Request.
        let identity = peap_request(2, 0, &[TYPE_IDENTITY]);
        client.handle_packet(now, &identity).unwrap();
        let first = sent(&mut client);
        assert_eq!(first[0][6..], [TYPE_IDENTITY, b'a', b'l', b'i', b'c', b'e']);
        client.handle_packet(now, &identity).unwrap();
        assert_eq!(sent(&mut client), first);
        assert_eq!(fed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn the_result_tlv_is_found_among_others() {
        let tlvs = [
            0x00, 0x07, 0x00, 0x01, 0xaa, 0x80, 0x03, 0x00, 0x02, 0x00, 0x01,
        ];
        assert_eq!(result_tlv(&tlvs), Some(RESULT_SUCCESS));
        assert_eq!(result_tlv(&tlvs[..9]), None);
        assert_eq!(result_tlv(&[0x80, 0x03, 0x00, 0x03, 0, 2, 0]), None);
        assert_eq!(result_tlv(&[]), None);
    }
}
