//! The record layer of an established connection, without the rustls
//! connection: sstpd's side of a session, and sstp-loadgen's.
//!
//! Once the handshake is done, a connection's rustls state is mostly dead
//! weight: about 1.2 KB inline and 1.2 KB on the heap per session, and on
//! every record a chunk that rustls allocates, fills and frees on its way
//! (and for a client, copies once more to seal it). rustls 0.23 can hand an
//! established connection over ([`rustls::kernel`], made for kernel TLS):
//! the traffic secrets and their sequence numbers, and a
//! [`KernelConnection`] that keeps only what a key update needs.
//! [`EstablishedRecords`] takes that hand-over in userspace. It opens
//! records in place with the `MessageDecrypter` that the negotiated
//! suite's own AEAD algorithm in rustls builds from the secrets, and seals
//! them in place with aws-lc's AEAD (`RecordSealer`, whose doc says why
//! not with rustls' encrypters). What rustls did besides, this module
//! does, after [RFC 8446] and [RFC 5246]:
//!
//! * **Records in** (5.1, 5.2; RFC 5246 6.2): a header whose version is not
//!   3.x, a TLS 1.3 record whose outer type is not application_data (a
//!   change_cipher_spec after the handshake included), a TLS 1.2
//!   change_cipher_spec, or a ciphertext longer than the protocol allows
//!   ends the connection with unexpected_message or record_overflow; one
//!   that does not decrypt, with bad_record_mac.
//! * **Alerts** (6): close_notify ends the stream cleanly; user_canceled
//!   and TLS 1.2 warnings are ignored (a few); everything else is fatal.
//! * **Post-handshake messages** (4.6.3): a KeyUpdate installs the peer's
//!   next key ([`KernelConnection::update_rx_secret`]) and, when the peer
//!   asks, ours after one of our own, sent before our next record: one,
//!   however many the peer asked for meanwhile. More than 32 KeyUpdates
//!   between two of the peer's data records, or more than 4 warning alerts,
//!   end the connection (rustls' and BoringSSL's bounds: each costs work
//!   and sends nothing). A client hands a NewSessionTicket to rustls'
//!   ticket store ([`KernelConnection::handle_new_session_ticket`]), 32
//!   at most between two data records. A TLS 1.2 HelloRequest to a client
//!   gets rustls' answer, a no_renegotiation warning, once (RFC 5246
//!   7.4.1.1); a second ends the connection. Anything else (a
//!   NewSessionTicket to a server, a ClientHello after a TLS 1.2
//!   handshake) is unexpected_message. A handshake message split across
//!   records is refused as decode_error: rustls' own post-handshake
//!   messages (a KeyUpdate is 5 bytes) never are.
//! * **Confidentiality limits** (5.5): before the suite's limit, TLS 1.3
//!   updates its own key; TLS 1.2 cannot and stops taking data.
//!
//! Every fatal error queues the alert that names it, sealed, for the next
//! write; the layer then refuses everything. Written here because no crate
//! does it: rustls keeps a connection that it fully drives, and the
//! kernel-TLS crates hand the records to the kernel.
//!
//! [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
//! [RFC 5246]: https://www.rfc-editor.org/rfc/rfc5246

use rustls::client::ClientConnectionData;
use rustls::crypto::cipher::{AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ContentType, Error, ExtractedSecrets,
    HandshakeType, InvalidMessage, PeerMisbehaved, ProtocolVersion, SupportedCipherSuite,
};

use super::tls_records::{Opened, Outgoing, SealError, UnbufferedTls};

/// Length of a TLS record header ([RFC 8446] 5.1).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
const HEADER_LEN: usize = 5;
/// The most plaintext in one record ([RFC 8446] 5.1).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
const MAX_PLAINTEXT: usize = 1 << 14;
/// The longest TLS 1.3 ciphertext ([RFC 8446] 5.2: 2^14 + 256).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
const MAX_CIPHERTEXT_TLS13: usize = MAX_PLAINTEXT + 256;
/// The longest TLS 1.2 ciphertext ([RFC 5246] 6.2.3: 2^14 + 2048).
///
/// [RFC 5246]: https://www.rfc-editor.org/rfc/rfc5246
const MAX_CIPHERTEXT_TLS12: usize = MAX_PLAINTEXT + 2048;
/// Records sealed under one key short of the suite's confidentiality
/// limit at which TLS 1.3 moves to its next key.
const LIMIT_MARGIN: u64 = 1 << 16;
/// KeyUpdateRequest values ([RFC 8446] 4.6.3).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
const UPDATE_NOT_REQUESTED: u8 = 0;
const UPDATE_REQUESTED: u8 = 1;
/// KeyUpdates the peer may send between two of its data records (each
/// costs a key derivation): BoringSSL's `kMaxKeyUpdates`, as rustls.
const MAX_KEY_UPDATES_BETWEEN_DATA: u8 = 32;
/// Warning alerts (TLS 1.2, or user_canceled) the peer may send on one
/// connection: BoringSSL's `kMaxWarningAlerts`, as rustls.
const MAX_WARNING_ALERTS: u8 = 4;
/// NewSessionTickets a server may send a client between two of its data
/// records (each is parsed and stored): as many as KeyUpdates.
const MAX_TICKETS_BETWEEN_DATA: u8 = MAX_KEY_UPDATES_BETWEEN_DATA;

/// Why a connection could not be taken over from rustls; it is gone
/// either way (the hand-over consumes it).
#[derive(Debug)]
#[non_exhaustive]
pub enum TakeOverError {
    /// rustls refused the hand-over (handshake not done, output left, or
    /// secret extraction not enabled in the configuration).
    Refused(Error),
    /// The negotiated suite has no AEAD algorithm rustls can build again.
    UnsupportedSuite,
}

impl std::fmt::Display for TakeOverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TakeOverError::Refused(e) => write!(f, "rustls refused the hand-over: {e}"),
            TakeOverError::UnsupportedSuite => f.write_str("the negotiated suite is not AEAD"),
        }
    }
}

impl std::error::Error for TakeOverError {}

/// One direction's cipher state.
struct Direction<C: ?Sized> {
    cipher: Box<C>,
    /// The next record's sequence number under this key.
    seq: u64,
}

impl Direction<RecordSealer> {
    /// Seals one record into `out` under the next sequence number.
    fn seal(&mut self, typ: ContentType, payload: &[u8], out: &mut Outgoing) -> Result<(), Error> {
        self.cipher.seal(typ, payload, self.seq, out)?;
        self.seq += 1;
        Ok(())
    }
}

/// What rustls keeps of a connection it handed over: what a key update
/// needs and, for a client, its ticket store.
enum Kernel {
    Server(KernelConnection<ServerConnectionData>),
    Client(KernelConnection<ClientConnectionData>),
}

/// Runs `$body` with `$kernel` bound to either side's connection.
macro_rules! either_kernel {
    ($kernel:expr, $k:ident => $body:expr) => {
        match $kernel {
            Kernel::Server($k) => $body,
            Kernel::Client($k) => $body,
        }
    };
}

impl Kernel {
    /// rustls' hand-over of an established connection: its secrets, and
    /// what it keeps.
    fn hand_over(conn: UnbufferedTls) -> Result<(ExtractedSecrets, Kernel), Error> {
        match conn {
            UnbufferedTls::Server(conn) => conn
                .dangerous_into_kernel_connection()
                .map(|(secrets, kernel)| (secrets, Kernel::Server(kernel))),
            UnbufferedTls::Client(conn) => conn
                .dangerous_into_kernel_connection()
                .map(|(secrets, kernel)| (secrets, Kernel::Client(kernel))),
        }
    }

    fn negotiated_cipher_suite(&self) -> SupportedCipherSuite {
        either_kernel!(self, k => k.negotiated_cipher_suite())
    }

    fn protocol_version(&self) -> ProtocolVersion {
        either_kernel!(self, k => k.protocol_version())
    }

    fn update_tx_secret(&mut self) -> Result<(u64, ConnectionTrafficSecrets), Error> {
        either_kernel!(self, k => k.update_tx_secret())
    }

    fn update_rx_secret(&mut self) -> Result<(u64, ConnectionTrafficSecrets), Error> {
        either_kernel!(self, k => k.update_rx_secret())
    }

    fn is_client(&self) -> bool {
        matches!(self, Kernel::Client(_))
    }
}

/// An established connection's records; see the module docs.
pub struct EstablishedRecords {
    /// What a key update (and a client's tickets) need of rustls.
    kernel: Box<Kernel>,
    tx: Direction<RecordSealer>,
    rx: Direction<dyn MessageDecrypter>,
    tls13: bool,
    /// Records one key may seal, the margin taken off (TLS 1.3 re-keys
    /// there, TLS 1.2 stops).
    tx_limit: u64,
    /// Alerts and post-handshake messages for the next write.
    output: Outgoing,
    /// The first fatal error; nothing is opened or sealed after it.
    failed: Option<Error>,
    /// The peer's close_notify arrived; later records are not read.
    peer_closed: bool,
    /// The peer asked for our KeyUpdate: one is sent before our next
    /// record, however many it asked for meanwhile ([RFC 8446] 4.6.3).
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    key_update_owed: bool,
    /// KeyUpdates received since the peer's last data record.
    key_updates_received: u8,
    /// Warning alerts received.
    warnings_received: u8,
    /// NewSessionTickets received (by a client) since the peer's last
    /// data record.
    tickets_received: u8,
    /// A TLS 1.2 client rebuffed the server's HelloRequest already.
    renegotiation_refused: bool,
}

impl std::fmt::Debug for EstablishedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EstablishedRecords")
            .field("client", &self.kernel.is_client())
            .field("tls13", &self.tls13)
            .field("tx_seq", &self.tx.seq)
            .field("rx_seq", &self.rx.seq)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl EstablishedRecords {
    /// Takes an established connection, server or client, over from
    /// rustls. The connection's handshake must be complete and its output
    /// all written, and its configuration must have
    /// `enable_secret_extraction`.
    pub fn take_over(conn: impl Into<UnbufferedTls>) -> Result<Self, TakeOverError> {
        let (secrets, kernel) = Kernel::hand_over(conn.into()).map_err(TakeOverError::Refused)?;
        let suite = kernel.negotiated_cipher_suite();
        let tls13 = kernel.protocol_version() == ProtocolVersion::TLSv1_3;
        let (tx_seq, tx_secrets) = secrets.tx;
        let (rx_seq, rx_secrets) = secrets.rx;
        let encrypter = encrypter(suite, tx_secrets).ok_or(TakeOverError::UnsupportedSuite)?;
        let decrypter = decrypter(suite, rx_secrets).ok_or(TakeOverError::UnsupportedSuite)?;
        let limit = confidentiality_limit(suite);
        Ok(EstablishedRecords {
            kernel: Box::new(kernel),
            tx: Direction {
                cipher: encrypter,
                seq: tx_seq,
            },
            rx: Direction {
                cipher: decrypter,
                seq: rx_seq,
            },
            tls13,
            tx_limit: limit.saturating_sub(LIMIT_MARGIN).max(1),
            output: Outgoing::default(),
            failed: None,
            peer_closed: false,
            key_update_owed: false,
            key_updates_received: 0,
            warnings_received: 0,
            tickets_received: 0,
            renegotiation_refused: false,
        })
    }

    /// The negotiated suite (for inspection).
    pub fn negotiated_cipher_suite(&self) -> SupportedCipherSuite {
        self.kernel.negotiated_cipher_suite()
    }

    /// Lowers the records one key may seal (tests of the limit).
    #[cfg(test)]
    pub(crate) fn set_confidentiality_limit(&mut self, records: u64) {
        self.tx_limit = self.tx.seq + records;
    }

    /// Whether an error ended the connection.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether alerts or post-handshake messages wait to be sent.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || (self.key_update_owed && self.failed.is_none())
    }

    /// Opens the complete records at the front of `incoming`: appends
    /// their plaintext to `plaintext` and removes them, keeping only the
    /// start of a record still on its way. On an error the alert that
    /// names it waits for [`EstablishedRecords::take_output`].
    pub fn open(
        &mut self,
        incoming: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<Opened, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut start = 0;
        let mut result = Ok(Opened::default());
        while !self.peer_closed {
            match self.open_one(&mut incoming[start..], plaintext) {
                Ok(Some(consumed)) => start += consumed,
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e);
                    result = Err(e);
                    break;
                }
            }
        }
        incoming.drain(..start);
        if self.peer_closed && result.is_ok() {
            result = Ok(Opened { peer_closed: true });
        }
        result
    }

    /// Opens the record at the front of `buf`: its length, or `None` when
    /// it is not all there.
    fn open_one(
        &mut self,
        buf: &mut [u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<Option<usize>, Error> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let typ = ContentType::from(header[0]);
        let version = u16::from_be_bytes([header[1], header[2]]);
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if version >> 8 != 3 {
            return Err(Error::InvalidMessage(
                InvalidMessage::UnknownProtocolVersion,
            ));
        }
        let max = if self.tls13 {
            MAX_CIPHERTEXT_TLS13
        } else {
            MAX_CIPHERTEXT_TLS12
        };
        if len > max {
            return Err(Error::PeerSentOversizedRecord);
        }
        // After the handshake a TLS 1.3 record is application_data outside
        // (5.1, 5.2; a change_cipher_spec is allowed only before).
        let allowed = match typ {
            ContentType::ApplicationData => true,
            ContentType::Alert | ContentType::Handshake => !self.tls13,
            _ => false,
        };
        if !allowed {
            return Err(Error::InvalidMessage(InvalidMessage::InvalidContentType));
        }
        let Some(record) = buf.get_mut(..HEADER_LEN + len) else {
            return Ok(None);
        };
        let payload = &mut record[HEADER_LEN..];
        let message = InboundOpaqueMessage::new(typ, ProtocolVersion::from(version), payload);
        let plain = self.rx.cipher.decrypt(message, self.rx.seq)?;
        self.rx.seq += 1;
        if plain.payload.len() > MAX_PLAINTEXT {
            return Err(Error::PeerSentOversizedRecord);
        }
        match plain.typ {
            ContentType::ApplicationData => {
                self.key_updates_received = 0;
                self.tickets_received = 0;
                plaintext.extend_from_slice(plain.payload);
            }
            ContentType::Alert => self.receive_alert(plain.payload)?,
            ContentType::Handshake => self.receive_handshake(plain.payload)?,
            _ => return Err(Error::InvalidMessage(InvalidMessage::InvalidContentType)),
        }
        Ok(Some(HEADER_LEN + len))
    }

    /// An alert ([RFC 8446] 6; RFC 5246 7.2).
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    fn receive_alert(&mut self, alert: &[u8]) -> Result<(), Error> {
        let &[level, description] = alert else {
            return Err(Error::InvalidMessage(InvalidMessage::TrailingData("alert")));
        };
        let description = AlertDescription::from(description);
        match description {
            AlertDescription::CloseNotify => {
                self.peer_closed = true;
                Ok(())
            }
            // user_canceled, and TLS 1.2 warnings (level 1): a few are
            // ignored. In TLS 1.3 every other alert is fatal whatever its
            // level.
            AlertDescription::UserCanceled => self.warning_received(),
            _ if !self.tls13 && level == 1 => self.warning_received(),
            _ => Err(Error::AlertReceived(description)),
        }
    }

    fn warning_received(&mut self) -> Result<(), Error> {
        self.warnings_received += 1;
        if self.warnings_received > MAX_WARNING_ALERTS {
            return Err(Error::PeerMisbehaved(
                PeerMisbehaved::TooManyWarningAlertsReceived,
            ));
        }
        Ok(())
    }

    /// Post-handshake messages, whole within this record.
    fn receive_handshake(&mut self, mut messages: &[u8]) -> Result<(), Error> {
        if !self.tls13 {
            return self.receive_tls12_handshake(messages);
        }
        if messages.is_empty() {
            return Err(Error::InvalidMessage(InvalidMessage::InvalidEmptyPayload));
        }
        while !messages.is_empty() {
            let Some((&[typ, l0, l1, l2], rest)) = messages.split_first_chunk::<4>() else {
                return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
            };
            let len = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            let Some(body) = rest.get(..len) else {
                return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
            };
            let after = &rest[len..];
            match (HandshakeType::from(typ), &mut *self.kernel) {
                (HandshakeType::KeyUpdate, _) => {
                    // "If an implementation detects a KeyUpdate followed
                    // by other data in the same record": the next key
                    // applies from the next record (5.1).
                    if !after.is_empty() {
                        return Err(Error::PeerMisbehaved(
                            PeerMisbehaved::KeyEpochWithPendingFragment,
                        ));
                    }
                    let &[request] = body else {
                        return Err(Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate));
                    };
                    if request > UPDATE_REQUESTED {
                        return Err(Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate));
                    }
                    self.key_updates_received += 1;
                    if self.key_updates_received > MAX_KEY_UPDATES_BETWEEN_DATA {
                        return Err(Error::PeerMisbehaved(
                            PeerMisbehaved::TooManyKeyUpdateRequests,
                        ));
                    }
                    self.update_rx_key()?;
                    if request == UPDATE_REQUESTED {
                        self.key_update_owed = true;
                    }
                }
                (HandshakeType::NewSessionTicket, Kernel::Client(kernel))
                    if self.tickets_received < MAX_TICKETS_BETWEEN_DATA =>
                {
                    self.tickets_received += 1;
                    kernel.handle_new_session_ticket(body)?;
                }
                // A ticket to a server, or one too many.
                (got_type, _) => {
                    return Err(Error::InappropriateHandshakeMessage {
                        expect_types: vec![HandshakeType::KeyUpdate],
                        got_type,
                    });
                }
            }
            messages = after;
        }
        Ok(())
    }

    /// A handshake message after a TLS 1.2 handshake: renegotiation, which
    /// sstpd does not do. A client rebuffs the server's first
    /// HelloRequest with a no_renegotiation warning, as rustls does
    /// (RFC 5246 7.4.1.1); anything else ends the connection.
    fn receive_tls12_handshake(&mut self, messages: &[u8]) -> Result<(), Error> {
        let hello_request = [u8::from(HandshakeType::HelloRequest), 0, 0, 0];
        if self.kernel.is_client() && messages == hello_request && !self.renegotiation_refused {
            self.renegotiation_refused = true;
            let alert = [1, u8::from(AlertDescription::NoRenegotiation)];
            return self.tx.seal(ContentType::Alert, &alert, &mut self.output);
        }
        Err(Error::PeerMisbehaved(
            PeerMisbehaved::TooManyRenegotiationRequests,
        ))
    }

    fn update_rx_key(&mut self) -> Result<(), Error> {
        let suite = self.kernel.negotiated_cipher_suite();
        let (seq, secrets) = self.kernel.update_rx_secret()?;
        self.rx = Direction {
            cipher: decrypter(suite, secrets).ok_or(Error::DecryptError)?,
            seq,
        };
        Ok(())
    }

    /// Sends a KeyUpdate under the current key, then moves to the next
    /// ([RFC 8446] 4.6.3).
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    fn update_tx_key(&mut self, request: u8) -> Result<(), Error> {
        let message = [u8::from(HandshakeType::KeyUpdate), 0, 0, 1, request];
        self.tx
            .seal(ContentType::Handshake, &message, &mut self.output)?;
        let suite = self.kernel.negotiated_cipher_suite();
        let (seq, secrets) = self.kernel.update_tx_secret()?;
        self.tx = Direction {
            cipher: encrypter(suite, secrets).ok_or(Error::EncryptError)?,
            seq,
        };
        Ok(())
    }

    /// Seals one record of any content type and payload under the next
    /// sequence number, as a hostile peer could (the fuzzers' peer).
    #[cfg(any(test, feature = "testing"))]
    pub fn seal_any_record(
        &mut self,
        typ: ContentType,
        payload: &[u8],
        out: &mut Outgoing,
    ) -> Result<(), Error> {
        self.tx.seal(typ, payload, out)
    }

    /// Seals `plaintext` into `out` (one record per 2^14 bytes), behind
    /// any waiting output.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Outgoing) -> Result<(), SealError> {
        self.pay_key_update();
        self.output.move_into(out);
        if let Some(e) = &self.failed {
            return Err(SealError::Tls(e.clone()));
        }
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            if self.tx.seq >= self.tx_limit {
                if !self.tls13 {
                    return Err(SealError::Closed);
                }
                if let Err(e) = self.update_tx_key(UPDATE_NOT_REQUESTED) {
                    self.fail(&e);
                    return Err(SealError::Tls(e));
                }
                self.output.move_into(out);
            }
            if let Err(e) = self.tx.seal(ContentType::ApplicationData, chunk, out) {
                self.fail(&e);
                return Err(SealError::Tls(e));
            }
        }
        Ok(())
    }

    /// Moves waiting alerts and post-handshake messages into `out`.
    pub fn take_output(&mut self, out: &mut Outgoing) {
        self.pay_key_update();
        self.output.move_into(out);
    }

    /// Sends the KeyUpdate the peer asked for, if it did.
    fn pay_key_update(&mut self) {
        if !std::mem::take(&mut self.key_update_owed) || self.failed.is_some() {
            return;
        }
        if let Err(e) = self.update_tx_key(UPDATE_NOT_REQUESTED) {
            self.fail(&e);
        }
    }

    /// Queues a TLS 1.3 KeyUpdate that asks the peer to update too
    /// ([RFC 8446] 4.6.3), and moves to our next key.
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    pub fn request_key_update(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if !self.tls13 {
            return Err(Error::General("TLS 1.2 has no key update".into()));
        }
        self.update_tx_key(UPDATE_REQUESTED)
            .inspect_err(|e| self.fail(e))
    }

    /// Seals a close_notify into `out`, behind any waiting output; nothing
    /// once the connection failed.
    pub fn close_notify(&mut self, out: &mut Outgoing) {
        self.pay_key_update();
        self.output.move_into(out);
        if self.failed.is_none() {
            let alert = [1, u8::from(AlertDescription::CloseNotify)];
            let _ = self.tx.seal(ContentType::Alert, &alert, out);
        }
    }

    /// Records the first fatal error and queues the alert that names it.
    fn fail(&mut self, error: &Error) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some(error.clone());
        let Some(description) = alert_for(error) else {
            return;
        };
        let alert = [2, u8::from(description)];
        let _ = self.tx.seal(ContentType::Alert, &alert, &mut self.output);
    }
}

/// The alert that tells the peer about `error` ([RFC 8446] 6.2); none for
/// an alert the peer sent.
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
fn alert_for(error: &Error) -> Option<AlertDescription> {
    Some(match error {
        Error::AlertReceived(_) => return None,
        Error::DecryptError => AlertDescription::BadRecordMac,
        Error::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        Error::InvalidMessage(
            InvalidMessage::MessageTooShort
            | InvalidMessage::InvalidKeyUpdate
            | InvalidMessage::TrailingData(_),
        ) => AlertDescription::DecodeError,
        Error::InvalidMessage(_)
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerMisbehaved(_) => AlertDescription::UnexpectedMessage,
        _ => AlertDescription::InternalError,
    })
}

/// The sealing half of `secrets` under `suite`'s AEAD algorithm.
fn encrypter(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Option<Box<RecordSealer>> {
    let tls13 = matches!(suite, SupportedCipherSuite::Tls13(_));
    RecordSealer::new(&secrets, tls13).map(Box::new)
}

/// Seals records straight into the caller's buffer: the header, the
/// plaintext encrypted from where it lies into the buffer (with TLS 1.2
/// GCM's explicit nonce before it, TLS 1.3's content type after it), the
/// tag. No allocation, and no copy of the plaintext besides the
/// encryption's own pass over it.
///
/// The constructions, per suite:
/// * TLS 1.3 ([RFC 8446] 5.2, 5.3): the nonce is the IV with the sequence
///   number XORed into its last 8 bytes; the additional data is the
///   record header; the inner plaintext is the content and its type,
///   without padding.
/// * TLS 1.2 AES-GCM ([RFC 5288] 3, [RFC 5246] 6.2.3.3): the same nonce
///   (the 12-byte IV is the key block's 4-byte salt and 8 bytes that
///   start the explicit nonce, as rustls builds it); its last 8 bytes go
///   out as the explicit nonce; the additional data is the sequence
///   number, type, version and plaintext length.
/// * TLS 1.2 ChaCha20-Poly1305 ([RFC 7905] 2): the same nonce, no
///   explicit nonce, the same additional data.
///
/// Why not rustls' encrypters: each allocates a record of its own, and its
/// AES-GCM ones seal with aws-lc's TLS AEAD, which takes the first nonce it
/// sees for sequence number 0 and then refuses a nonce that seems to go
/// back. A key taken over after records were sealed under it (TLS 1.2's
/// Finished, TLS 1.3's tickets) does not start at 0. Opening stays with
/// rustls' decrypters, which decrypt in place and check nothing of the
/// kind.
///
/// Why aws-lc itself ([`OutOfPlaceAead`]) and not aws-lc-rs' keys: those
/// seal only in place, so the plaintext had to be copied into the write
/// buffer first (a tenth of the load generator's CPU in `tcp_up_1`, where
/// it seals 16 KiB records). aws-lc's `EVP_AEAD_CTX_seal_scatter` reads
/// the plaintext where it lies, writes the ciphertext into the buffer, and
/// encrypts TLS 1.3's content type (its `extra_in`) behind it with the tag.
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
/// [RFC 5288]: https://www.rfc-editor.org/rfc/rfc5288
/// [RFC 5246]: https://www.rfc-editor.org/rfc/rfc5246
/// [RFC 7905]: https://www.rfc-editor.org/rfc/rfc7905
struct RecordSealer {
    key: OutOfPlaceAead,
    iv: [u8; 12],
    tls13: bool,
    /// TLS 1.2 AES-GCM's 8-byte explicit nonce.
    explicit_nonce: bool,
}

/// The explicit nonce of a TLS 1.2 GCM record.
const EXPLICIT_NONCE_LEN: usize = 8;
/// The AEAD tag (all three algorithms).
const TAG_LEN: usize = 16;

impl RecordSealer {
    /// `None` for secrets of an algorithm a later rustls may add.
    fn new(secrets: &ConnectionTrafficSecrets, tls13: bool) -> Option<Self> {
        let (algorithm, key, iv, gcm) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (Algorithm::Aes128Gcm, key, iv, true)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (Algorithm::Aes256Gcm, key, iv, true)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Algorithm::Chacha20Poly1305, key, iv, false)
            }
            _ => return None,
        };
        Some(RecordSealer {
            key: OutOfPlaceAead::new(algorithm, key.as_ref())?,
            iv: iv.as_ref().try_into().ok()?,
            tls13,
            explicit_nonce: gcm && !tls13,
        })
    }

    fn seal(
        &self,
        typ: ContentType,
        plaintext: &[u8],
        seq: u64,
        out: &mut Outgoing,
    ) -> Result<(), Error> {
        let len = plaintext.len();
        let (prefix, inner_type) = match (self.tls13, self.explicit_nonce) {
            (true, _) => (0, 1),
            (false, true) => (EXPLICIT_NONCE_LEN, 0),
            (false, false) => (0, 0),
        };
        let sealed_len = len + inner_type;
        let body = prefix + sealed_len + TAG_LEN;
        let record_len = u16::try_from(body).map_err(|_| Error::EncryptError)?;
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let version = ProtocolVersion::TLSv1_2.to_array();
        let (outer_type, aad) = if self.tls13 {
            // The header is the additional data (5.2).
            let mut aad = [0u8; 13];
            aad[0] = u8::from(ContentType::ApplicationData);
            aad[1..3].copy_from_slice(&version);
            aad[3..5].copy_from_slice(&record_len.to_be_bytes());
            (ContentType::ApplicationData, (aad, HEADER_LEN))
        } else {
            // seq_num + type + version + length (RFC 5246 6.2.3.3).
            let mut aad = [0u8; 13];
            aad[..8].copy_from_slice(&seq.to_be_bytes());
            aad[8] = u8::from(typ);
            aad[9..11].copy_from_slice(&version);
            aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
            (typ, (aad, 13))
        };
        let total = HEADER_LEN + body;
        let room = &mut out.room(total)[..total];
        room[0] = u8::from(outer_type);
        room[1..3].copy_from_slice(&version);
        room[3..5].copy_from_slice(&record_len.to_be_bytes());
        let (head, rest) = room.split_at_mut(HEADER_LEN + prefix);
        if self.explicit_nonce {
            head[HEADER_LEN..].copy_from_slice(&nonce[4..]);
        }
        let (data, tail) = rest.split_at_mut(len);
        let inner = [u8::from(typ)];
        let extra: &[u8] = if self.tls13 { &inner } else { &[] };
        self.key
            .seal(&nonce, &aad.0[..aad.1], plaintext, extra, data, tail)
            .ok_or(Error::EncryptError)?;
        out.commit(total);
        Ok(())
    }
}

/// The AEAD algorithms of the suites rustls negotiates.
#[derive(Clone, Copy, Debug)]
enum Algorithm {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// An aws-lc AEAD context that seals out of place (see [`RecordSealer`]
/// for why aws-lc-rs' keys do not do).
struct OutOfPlaceAead {
    ctx: std::ptr::NonNull<aws_lc_sys::EVP_AEAD_CTX>,
}

// SAFETY: the context is owned alone (freed once, on drop), and aws-lc's
// seal takes it as `const`: it may move between threads and be shared.
unsafe impl Send for OutOfPlaceAead {}
// SAFETY: as above; nothing mutates the context after `new`.
unsafe impl Sync for OutOfPlaceAead {}

impl OutOfPlaceAead {
    /// `None` if aws-lc refuses the key (a wrong length).
    fn new(algorithm: Algorithm, key: &[u8]) -> Option<Self> {
        // SAFETY: the EVP_aead_* functions return static descriptions;
        // `EVP_AEAD_CTX_new` reads `key_len` bytes of `key` and returns an
        // owned context or null; a tag length of 0 asks for the default,
        // 16 bytes for all three.
        let ctx = unsafe {
            let aead = match algorithm {
                Algorithm::Aes128Gcm => aws_lc_sys::EVP_aead_aes_128_gcm(),
                Algorithm::Aes256Gcm => aws_lc_sys::EVP_aead_aes_256_gcm(),
                Algorithm::Chacha20Poly1305 => aws_lc_sys::EVP_aead_chacha20_poly1305(),
            };
            aws_lc_sys::EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), 0)
        };
        Some(OutOfPlaceAead {
            ctx: std::ptr::NonNull::new(ctx)?,
        })
    }

    /// Encrypts `plaintext` into `out` (the same length) and `extra`
    /// into the start of `tail`, followed by the tag, which must fill the
    /// rest of `tail` exactly. `None` if aws-lc refuses.
    fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        extra: &[u8],
        out: &mut [u8],
        tail: &mut [u8],
    ) -> Option<()> {
        if out.len() != plaintext.len() || tail.len() != extra.len() + TAG_LEN {
            return None;
        }
        let mut tail_len = 0usize;
        // SAFETY: every pointer comes with the length of the slice it
        // points into; `out` and `tail` are distinct mutable slices, and
        // neither overlaps `plaintext` (a shared borrow held across the
        // call). aws-lc writes `plaintext.len()` bytes to `out` and at most
        // `tail.len()` bytes to `tail`, reporting how many in `tail_len`.
        let sealed = unsafe {
            aws_lc_sys::EVP_AEAD_CTX_seal_scatter(
                self.ctx.as_ptr(),
                out.as_mut_ptr(),
                tail.as_mut_ptr(),
                &mut tail_len,
                tail.len(),
                nonce.as_ptr(),
                nonce.len(),
                plaintext.as_ptr(),
                plaintext.len(),
                extra.as_ptr(),
                extra.len(),
                aad.as_ptr(),
                aad.len(),
            )
        };
        (sealed == 1 && tail_len == tail.len()).then_some(())
    }
}

impl Drop for OutOfPlaceAead {
    fn drop(&mut self) {
        // SAFETY: the context came from `EVP_AEAD_CTX_new` and is freed
        // once, here.
        unsafe { aws_lc_sys::EVP_AEAD_CTX_free(self.ctx.as_ptr()) }
    }
}

/// The opening half of `secrets` under `suite`'s AEAD algorithm.
fn decrypter(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Option<Box<dyn MessageDecrypter>> {
    let (key, iv) = key_and_iv(secrets)?;
    Some(match suite {
        SupportedCipherSuite::Tls13(suite) => suite.aead_alg.decrypter(key, iv),
        SupportedCipherSuite::Tls12(suite) => {
            let shape = suite.aead_alg.key_block_shape();
            suite
                .aead_alg
                .decrypter(key, &iv.as_ref()[..shape.fixed_iv_len])
        }
    })
}

/// The AEAD key and IV of `secrets`; `None` for an algorithm a later
/// rustls may add (the enum is non-exhaustive).
fn key_and_iv(secrets: ConnectionTrafficSecrets) -> Option<(AeadKey, Iv)> {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Some((key, iv)),
        _ => None,
    }
}

/// Records one key may seal under `suite` ([RFC 8446] 5.5).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
fn confidentiality_limit(suite: SupportedCipherSuite) -> u64 {
    match suite {
        SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
        SupportedCipherSuite::Tls12(suite) => suite.common.confidentiality_limit,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::net::tls_records::testing::handshake;
    use crate::net::tls_records::tests::{pair_with, TLS12, TLS13};

    /// The other side of a taken-over connection: seals any record it
    /// could send, with its keys.
    struct Peer {
        kernel: Kernel,
        sealer: RecordSealer,
        seq: u64,
        tls13: bool,
    }

    impl Peer {
        fn send(&mut self, typ: ContentType, body: &[u8], out: &mut Outgoing) {
            self.sealer.seal(typ, body, self.seq, out).unwrap();
            self.seq += 1;
        }

        /// A KeyUpdate, then the client's next key.
        fn key_update(&mut self, request: u8, out: &mut Outgoing) {
            let message = [u8::from(HandshakeType::KeyUpdate), 0, 0, 1, request];
            self.send(ContentType::Handshake, &message, out);
            let (seq, keys) = self.kernel.update_tx_secret().unwrap();
            self.sealer = RecordSealer::new(&keys, self.tls13).unwrap();
            self.seq = seq;
        }
    }

    /// A taken-over server and its client's [`Peer`].
    fn taken_over_with_client_keys(tls13: bool) -> (EstablishedRecords, Peer) {
        taken_over(tls13, false)
    }

    /// A taken-over client (sstp-loadgen's side) and its server's [`Peer`].
    fn taken_over_with_server_keys(tls13: bool) -> (EstablishedRecords, Peer) {
        taken_over(tls13, true)
    }

    /// An established connection: its client's records taken over when
    /// `client_is_ours`, else its server's, and the other end as a [`Peer`].
    fn taken_over(tls13: bool, client_is_ours: bool) -> (EstablishedRecords, Peer) {
        let version = if tls13 { TLS13 } else { TLS12 };
        let (server, client) = pair_with(version, None, None, |c| c.send_tls13_tickets = 0);
        let (server, client) = handshake(server, client);
        let (Some(server), Some(client)) = (server.into_tls(), client.into_tls()) else {
            panic!("both ends with rustls");
        };
        let (ours, theirs) = if client_is_ours {
            (client, server)
        } else {
            (server, client)
        };
        let (secrets, kernel) = Kernel::hand_over(theirs).unwrap();
        let (seq, keys) = secrets.tx;
        let peer = Peer {
            kernel,
            sealer: RecordSealer::new(&keys, tls13).unwrap(),
            seq,
            tls13,
        };
        let ours = EstablishedRecords::take_over(ours).unwrap();
        assert_eq!(ours.kernel.is_client(), client_is_ours);
        (ours, peer)
    }

    /// A TLS 1.3 NewSessionTicket ([RFC 8446] 4.6.1): an hour's lifetime,
    /// a one-byte nonce, a four-byte ticket, no extensions.
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    fn new_session_ticket(nonce: u8) -> Vec<u8> {
        let body = [
            &3600u32.to_be_bytes()[..],
            &[0, 0, 0, 0],
            &[1, nonce],
            &[0, 4, 1, 2, 3, 4],
            &[0, 0],
        ]
        .concat();
        let len = body.len() as u32;
        let mut message = vec![u8::from(HandshakeType::NewSessionTicket)];
        message.extend_from_slice(&len.to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    /// A taken-over client takes the server's tickets, 32 between two
    /// data records; data resets the count, and the 33rd in a row ends the
    /// connection with unexpected_message.
    #[test]
    fn a_client_takes_tickets_and_bounds_them() {
        let (mut client, mut peer) = taken_over_with_server_keys(true);
        let mut out = Outgoing::default();
        for nonce in 0..MAX_TICKETS_BETWEEN_DATA {
            peer.send(ContentType::Handshake, &new_session_ticket(nonce), &mut out);
        }
        peer.send(ContentType::ApplicationData, b"data", &mut out);
        assert_eq!(open_all(&mut client, &out).unwrap(), b"data");
        assert!(!client.has_output(), "a ticket needs no answer");

        let mut out = Outgoing::default();
        for nonce in 0..=MAX_TICKETS_BETWEEN_DATA {
            peer.send(ContentType::Handshake, &new_session_ticket(nonce), &mut out);
        }
        let error = open_all(&mut client, &out).unwrap_err();
        assert_eq!(
            alert_for(&error),
            Some(AlertDescription::UnexpectedMessage),
            "{error:?}"
        );
        assert!(client.has_output(), "the alert");
        // A ticket that does not parse is decode_error's kind of error, not
        // a panic.
        let (mut client, mut peer) = taken_over_with_server_keys(true);
        let mut out = Outgoing::default();
        let mut truncated = new_session_ticket(0);
        truncated[3] -= 2;
        truncated.truncate(truncated.len() - 2);
        peer.send(ContentType::Handshake, &truncated, &mut out);
        assert!(open_all(&mut client, &out).is_err());
        assert!(client.has_failed());
    }

    /// A TLS 1.2 client rebuffs the server's first HelloRequest with a
    /// no_renegotiation warning and carries on; the second ends the
    /// connection. A server is not asked: a ClientHello ends it at once.
    #[test]
    fn a_tls12_client_rebuffs_one_hello_request() {
        let hello_request = [u8::from(HandshakeType::HelloRequest), 0, 0, 0];
        let (mut client, mut peer) = taken_over_with_server_keys(false);
        let mut out = Outgoing::default();
        peer.send(ContentType::Handshake, &hello_request, &mut out);
        peer.send(ContentType::ApplicationData, b"after", &mut out);
        assert_eq!(open_all(&mut client, &out).unwrap(), b"after");
        assert!(client.has_output(), "the warning");
        let mut warning = Outgoing::default();
        client.take_output(&mut warning);
        assert_eq!(warning.filled()[0], u8::from(ContentType::Alert));
        assert!(!client.has_failed());

        // The client's second, and a server's first (a ClientHello's
        // place): each ends the connection.
        let (mut server, mut client_peer) = taken_over_with_client_keys(false);
        for (records, peer) in [(&mut client, &mut peer), (&mut server, &mut client_peer)] {
            let mut out = Outgoing::default();
            peer.send(ContentType::Handshake, &hello_request, &mut out);
            assert_eq!(
                open_all(records, &out),
                Err(Error::PeerMisbehaved(
                    PeerMisbehaved::TooManyRenegotiationRequests
                ))
            );
        }
    }

    /// Opens everything in `out` at `server`.
    fn open_all(server: &mut EstablishedRecords, out: &Outgoing) -> Result<Vec<u8>, Error> {
        let mut incoming = out.filled().to_vec();
        let mut plaintext = Vec::new();
        server
            .open(&mut incoming, &mut plaintext)
            .map(|_| plaintext)
    }

    /// Many KeyUpdates that ask for ours, with no data between: one
    /// answer; past 32 the connection ends. Data resets the count.
    #[test]
    fn key_update_requests_are_answered_once_and_bounded() {
        let (mut server, mut peer) = taken_over_with_client_keys(true);
        let mut out = Outgoing::default();
        for _ in 0..MAX_KEY_UPDATES_BETWEEN_DATA {
            peer.key_update(UPDATE_REQUESTED, &mut out);
        }
        peer.send(ContentType::ApplicationData, b"data", &mut out);
        assert_eq!(open_all(&mut server, &out).unwrap(), b"data");
        let mut answer = Outgoing::default();
        server.take_output(&mut answer);
        assert_eq!(answer.len(), HEADER_LEN + 5 + 1 + TAG_LEN, "one KeyUpdate");
        assert!(!server.has_output());

        let mut out = Outgoing::default();
        for _ in 0..=MAX_KEY_UPDATES_BETWEEN_DATA {
            peer.key_update(UPDATE_NOT_REQUESTED, &mut out);
        }
        assert_eq!(
            open_all(&mut server, &out),
            Err(Error::PeerMisbehaved(
                PeerMisbehaved::TooManyKeyUpdateRequests
            ))
        );
        assert!(server.has_output(), "the alert");
    }

    /// TLS 1.2 warning alerts: four are ignored, the fifth ends it.
    #[test]
    fn warning_alerts_are_bounded() {
        let (mut server, mut peer) = taken_over_with_client_keys(false);
        let mut out = Outgoing::default();
        let no_certificate = [1, 41];
        for _ in 0..MAX_WARNING_ALERTS {
            peer.send(ContentType::Alert, &no_certificate, &mut out);
        }
        peer.send(ContentType::ApplicationData, b"still here", &mut out);
        assert_eq!(open_all(&mut server, &out).unwrap(), b"still here");
        let mut out = Outgoing::default();
        peer.send(ContentType::Alert, &no_certificate, &mut out);
        assert_eq!(
            open_all(&mut server, &out),
            Err(Error::PeerMisbehaved(
                PeerMisbehaved::TooManyWarningAlertsReceived
            ))
        );
    }

    /// A KeyUpdate that asks for ours: the server moves to the client's
    /// next key and answers with its own KeyUpdate; a record still under
    /// the old key then does not open.
    #[test]
    fn a_key_update_from_the_peer_is_answered() {
        let (mut server, mut peer) = taken_over_with_client_keys(true);
        let mut out = Outgoing::default();
        let old_seq = peer.seq;
        let key_update = [
            u8::from(HandshakeType::KeyUpdate),
            0,
            0,
            1,
            UPDATE_REQUESTED,
        ];
        peer.send(ContentType::Handshake, &key_update, &mut out);
        open_all(&mut server, &out).unwrap();
        assert!(server.has_output(), "our KeyUpdate, answering");
        // Still under the old key: it no longer opens.
        let mut out = Outgoing::default();
        peer.sealer
            .seal(
                ContentType::ApplicationData,
                b"old key",
                old_seq + 1,
                &mut out,
            )
            .unwrap();
        assert_eq!(open_all(&mut server, &out), Err(Error::DecryptError));
    }

    /// Handshake messages after the handshake: a KeyUpdate with more
    /// behind it in its record, one split across records, one of another
    /// type, each refused with the alert the module doc names.
    #[test]
    fn post_handshake_messages_sstpd_refuses() {
        let key_update = [
            u8::from(HandshakeType::KeyUpdate),
            0,
            0,
            1,
            UPDATE_NOT_REQUESTED,
        ];
        let cases: [(&[u8], AlertDescription); 4] = [
            (
                &[key_update.as_slice(), &key_update].concat(),
                AlertDescription::UnexpectedMessage,
            ),
            (&key_update[..3], AlertDescription::DecodeError),
            (
                &[u8::from(HandshakeType::KeyUpdate), 0, 0, 1, 7],
                AlertDescription::DecodeError,
            ),
            (
                &[u8::from(HandshakeType::NewSessionTicket), 0, 0, 0],
                AlertDescription::UnexpectedMessage,
            ),
        ];
        for (message, alert) in cases {
            let (mut server, mut peer) = taken_over_with_client_keys(true);
            let mut out = Outgoing::default();
            peer.send(ContentType::Handshake, message, &mut out);
            let error = open_all(&mut server, &out).unwrap_err();
            assert_eq!(alert_for(&error), Some(alert), "{message:?}: {error:?}");
            assert!(server.has_output(), "{message:?}");
        }
    }

    proptest! {
        /// Any sequence of records the peer can seal (every content type,
        /// any payload, KeyUpdates included): no panic; an error leaves an
        /// alert to send, unless it was the peer's own alert; after an
        /// error nothing opens.
        #[test]
        fn any_records_sealed_with_the_peers_keys(
            tls13 in any::<bool>(),
            client_role in any::<bool>(),
            records in proptest::collection::vec((0u8..8, proptest::collection::vec(any::<u8>(), 0..24)), 1..6),
        ) {
            // `server` is ours, of either role.
            let (mut server, mut peer) = if client_role {
                taken_over_with_server_keys(tls13)
            } else {
                taken_over_with_client_keys(tls13)
            };
            let mut out = Outgoing::default();
            for (kind, body) in &records {
                let (typ, body) = match kind {
                    0 => (ContentType::Alert, body.clone()),
                    1 => (ContentType::Handshake, body.clone()),
                    2 => (ContentType::ChangeCipherSpec, body.clone()),
                    3 => (ContentType::from(0x42), body.clone()),
                    4 => {
                        let request = body.first().copied().unwrap_or(0) % 3;
                        (ContentType::Handshake, vec![u8::from(HandshakeType::KeyUpdate), 0, 0, 1, request])
                    }
                    5 => (ContentType::Handshake, new_session_ticket(body.first().copied().unwrap_or(0))),
                    _ => (ContentType::ApplicationData, body.clone()),
                };
                peer.send(typ, &body, &mut out);
            }
            let mut incoming = out.filled().to_vec();
            let mut plaintext = Vec::new();
            match server.open(&mut incoming, &mut plaintext) {
                Ok(_) => prop_assert!(!server.has_failed()),
                Err(Error::AlertReceived(_)) => prop_assert!(server.has_failed()),
                Err(_) => {
                    prop_assert!(server.has_output());
                    let mut more = b"more".to_vec();
                    prop_assert!(server.open(&mut more, &mut plaintext).is_err());
                }
            }
        }
    }
}
