//! The userspace TLS record layer of [`super::uring_tls::TlsConn`], on
//! rustls' unbuffered API, without IO.
//!
//! rustls' buffered `Connection` copies every received record into a
//! deframer buffer of its own (`read_tls`), queues every sealed record in
//! a chunk of its own (`sendable_tls`) and hands both out through further
//! copies. [`UserspaceRecords`] keeps the bytes where the runtime has them:
//!
//! * **open**: rustls deframes and decrypts the records in place in the
//!   caller's read buffer ([`UserspaceRecords::open`]); the plaintext is
//!   appended to the caller's plaintext buffer, the consumed records are
//!   dropped from the front of the read buffer, and only the start of a
//!   record still on its way stays behind;
//! * **seal**: [`UserspaceRecords::seal`] encrypts each unit straight into
//!   the caller's write buffer ([`Outgoing`]), one record per unit (up to
//!   2^14 bytes, [RFC 8446] 5.1), behind any TLS output produced while
//!   reading (handshake flights, alerts), which waits in the record layer
//!   until then. rustls puts its answer to a peer's KeyUpdate in front of
//!   the next record it seals.
//!
//! rustls 0.23 still copies a record's plaintext once inside each call
//! (into a chunk of its own on open, into the record it encrypts on seal);
//! those chunks are freed at once, so an idle connection holds no rustls
//! buffer.
//!
//! One case keeps received bytes here: a handshake message split across
//! records. rustls refers to the earlier records by position until the
//! message is complete, so they and everything after them move into
//! [`UserspaceRecords`]' own buffer until rustls lets go of them. The
//! writer's calls into rustls pass that same buffer: rustls must always see
//! the bytes it still refers to.
//!
//! [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446

use super::established::{EstablishedRecords, TakeOverError};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus, WriteTraffic,
};

/// Length of a TLS record header ([RFC 8446] 5.1).
///
/// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
const RECORD_HEADER_LEN: usize = 5;
/// Room reserved per record beyond its plaintext: header, TLS 1.2 explicit
/// nonce or TLS 1.3 content type, AEAD tag. rustls says how much it needs
/// when this is short.
const RECORD_OVERHEAD: usize = 32;
/// The most plaintext in one record.
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;
/// Pending TLS output larger than this (a handshake flight) is not kept
/// allocated once sent.
const KEPT_OUTPUT_CAPACITY: usize = 256;

/// A rustls connection driven through the unbuffered API, either side.
pub enum UnbufferedTls {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl From<UnbufferedServerConnection> for UnbufferedTls {
    fn from(conn: UnbufferedServerConnection) -> Self {
        UnbufferedTls::Server(conn)
    }
}

impl From<UnbufferedClientConnection> for UnbufferedTls {
    fn from(conn: UnbufferedClientConnection) -> Self {
        UnbufferedTls::Client(conn)
    }
}

impl std::fmt::Debug for UnbufferedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self {
            UnbufferedTls::Server(_) => "server",
            UnbufferedTls::Client(_) => "client",
        };
        f.debug_struct("UnbufferedTls")
            .field("side", &side)
            .finish_non_exhaustive()
    }
}

impl UnbufferedTls {
    /// The negotiated parameters and handshake state.
    pub fn common(&self) -> &rustls::CommonState {
        match self {
            UnbufferedTls::Server(conn) => conn,
            UnbufferedTls::Client(conn) => conn,
        }
    }
}

/// The one call that differs by side.
trait Process {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Process for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

impl Process for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

/// Runs `$body` with `$conn` bound to the concrete connection.
macro_rules! either_side {
    ($tls:expr, $conn:ident => $body:expr) => {
        match $tls {
            UnbufferedTls::Server($conn) => $body,
            UnbufferedTls::Client($conn) => $body,
        }
    };
}

/// Ciphertext assembled for one socket write: `bytes[..filled]`. The rest
/// of `bytes` is room zeroed by earlier writes, so sealing into a reused
/// buffer never clears it again.
#[derive(Debug, Default)]
pub struct Outgoing {
    bytes: Vec<u8>,
    filled: usize,
}

impl Outgoing {
    /// Wraps a buffer to reuse (its contents are overwritten).
    pub fn reuse(bytes: Vec<u8>) -> Self {
        Outgoing { bytes, filled: 0 }
    }

    /// The bytes to send.
    pub fn filled(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    pub fn len(&self) -> usize {
        self.filled
    }

    /// The buffer and how much of it to send; [`Outgoing::reuse`] takes it
    /// back.
    pub fn into_parts(self) -> (Vec<u8>, usize) {
        (self.bytes, self.filled)
    }

    /// At least `n` writable bytes after the filled part.
    pub(super) fn room(&mut self, n: usize) -> &mut [u8] {
        let needed = self.filled + n;
        if self.bytes.len() < needed {
            self.bytes.resize(needed, 0);
        }
        &mut self.bytes[self.filled..]
    }

    pub(super) fn commit(&mut self, n: usize) {
        self.filled += n;
    }

    pub(super) fn extend_from_slice(&mut self, data: &[u8]) {
        self.room(data.len())[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// Moves the filled bytes to the end of `to`.
    pub(super) fn move_into(&mut self, to: &mut Outgoing) {
        if self.filled > 0 {
            to.extend_from_slice(self.filled());
            self.filled = 0;
        }
        if self.bytes.len() > KEPT_OUTPUT_CAPACITY {
            self.bytes = Vec::new();
        }
    }
}

/// Why sealing failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SealError {
    /// The connection failed earlier or rustls refused.
    Tls(rustls::Error),
    /// The connection no longer takes application data (closed, or the
    /// TLS 1.2 record limit was reached).
    Closed,
}

/// What [`UserspaceRecords::open`] found besides plaintext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opened {
    /// The peer sent its close_notify.
    pub peer_closed: bool,
}

/// The userspace record layer: one rustls connection and the bytes it
/// still refers to or has to send, or, once a server connection is
/// established and [`UserspaceRecords::take_over`] has run, the records
/// alone ([`EstablishedRecords`]).
#[derive(Debug)]
pub struct UserspaceRecords {
    layer: Layer,
    /// Received records rustls still refers to (see the module docs), and
    /// everything received after them. Usually empty.
    held: Vec<u8>,
    /// TLS output produced outside a write (while opening records, or a
    /// key update asked for): the next write or flush sends it first.
    output: Outgoing,
    /// The first fatal error: rustls is not called again.
    failed: Option<rustls::Error>,
}

/// Who does the records.
#[derive(Debug)]
enum Layer {
    /// rustls, through its unbuffered API (boxed: an established session
    /// does not keep its size).
    Rustls(Box<UnbufferedTls>),
    /// Our own, with rustls' ciphers.
    Established(EstablishedRecords),
    /// The connection left rustls and was not taken over.
    Gone,
}

/// Runs `$body` with `$conn` bound to the rustls connection, or returns
/// `$otherwise` from the function when rustls no longer has it.
macro_rules! with_rustls {
    ($layer:expr, $otherwise:expr, $conn:ident => $body:expr) => {
        match $layer {
            Layer::Rustls(tls) => either_side!(&mut **tls, $conn => $body),
            _ => return $otherwise,
        }
    };
}

impl UserspaceRecords {
    pub fn new(tls: UnbufferedTls) -> Self {
        UserspaceRecords {
            layer: Layer::Rustls(Box::new(tls)),
            held: Vec::new(),
            output: Outgoing::default(),
            failed: None,
        }
    }

    /// The rustls connection, while rustls does the records.
    pub fn tls(&self) -> Option<&UnbufferedTls> {
        match &self.layer {
            Layer::Rustls(tls) => Some(tls),
            _ => None,
        }
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.tls().is_some_and(|tls| tls.common().is_handshaking())
    }

    /// The negotiated suite, once there is one.
    pub fn negotiated_cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        match &self.layer {
            Layer::Rustls(tls) => tls.common().negotiated_cipher_suite(),
            Layer::Established(records) => Some(records.negotiated_cipher_suite()),
            Layer::Gone => None,
        }
    }

    /// Whether the records are ours ([`UserspaceRecords::take_over`]).
    pub fn is_taken_over(&self) -> bool {
        matches!(self.layer, Layer::Established(_))
    }

    /// Whether an error ended the connection.
    pub fn has_failed(&self) -> bool {
        match &self.layer {
            Layer::Established(records) => records.has_failed(),
            _ => self.failed.is_some(),
        }
    }

    /// Whether TLS output waits to be sent.
    pub fn has_output(&self) -> bool {
        match &self.layer {
            Layer::Established(records) => records.has_output(),
            _ => !self.output.is_empty(),
        }
    }

    /// Whether received bytes are held here (a handshake message split
    /// across records is incomplete).
    pub fn holds_input(&self) -> bool {
        !self.held.is_empty()
    }

    /// The rustls connection alone, while rustls has it.
    /// [`UserspaceRecords::new`] with it continues where this left off
    /// when nothing was held ([`UserspaceRecords::holds_input`],
    /// [`UserspaceRecords::has_output`]) and nothing failed
    /// ([`UserspaceRecords::has_failed`]).
    pub fn into_tls(self) -> Option<UnbufferedTls> {
        match self.layer {
            Layer::Rustls(tls) => Some(*tls),
            _ => None,
        }
    }

    /// Takes an established connection's records over from rustls
    /// ([`EstablishedRecords`]): `Ok(true)` once done, `Ok(false)` when the
    /// connection is not one to take over yet (still handshaking, output
    /// or input left, failed). An error means the connection left rustls
    /// and is gone.
    pub fn take_over(&mut self) -> Result<bool, TakeOverError> {
        let ready = matches!(self.layer, Layer::Rustls(_))
            && !self.is_handshaking()
            && self.held.is_empty()
            && self.output.is_empty()
            && self.failed.is_none();
        if !ready {
            return Ok(false);
        }
        let Layer::Rustls(tls) = std::mem::replace(&mut self.layer, Layer::Gone) else {
            unreachable!("checked above");
        };
        match EstablishedRecords::take_over(*tls) {
            Ok(records) => {
                self.layer = Layer::Established(records);
                self.output = Outgoing::default();
                Ok(true)
            }
            Err(e) => {
                self.failed = Some(rustls::Error::General(e.to_string()));
                Err(e)
            }
        }
    }

    /// Lowers the records one key may seal (tests of the limit).
    #[cfg(test)]
    pub(crate) fn set_confidentiality_limit(&mut self, records: u64) {
        if let Layer::Established(established) = &mut self.layer {
            established.set_confidentiality_limit(records);
        }
    }

    /// Opens the complete records at the front of `incoming`: appends
    /// their plaintext to `plaintext` and removes them from `incoming`,
    /// which keeps only the start of a record still on its way. TLS output
    /// this produces waits for [`UserspaceRecords::take_output`]. On an
    /// error the alert that names it is waiting there too, and the
    /// connection is unusable.
    pub fn open(
        &mut self,
        incoming: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<Opened, rustls::Error> {
        if let Layer::Established(records) = &mut self.layer {
            return records.open(incoming, plaintext);
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = if self.held.is_empty() {
            let result = with_rustls!(&mut self.layer, Err(gone()), conn => open_records(conn, incoming, plaintext, &mut self.output));
            if matches!(result, Ok(opened) if !opened.peer_closed)
                && starts_with_complete_record(incoming)
            {
                self.held.append(incoming);
            }
            result
        } else {
            self.held.append(incoming);
            let result = with_rustls!(&mut self.layer, Err(gone()), conn => open_records(conn, &mut self.held, plaintext, &mut self.output));
            if !starts_with_complete_record(&self.held) {
                incoming.append(&mut self.held);
                self.held = Vec::new();
            }
            result
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Seals `plaintext` into `out` (one record per 2^14 bytes), behind
    /// any waiting TLS output.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Outgoing) -> Result<(), SealError> {
        if let Layer::Established(records) = &mut self.layer {
            return records.seal(plaintext, out);
        }
        self.output.move_into(out);
        if let Some(e) = &self.failed {
            return Err(SealError::Tls(e.clone()));
        }
        let sealed = with_rustls!(&mut self.layer, Err(SealError::Tls(gone())), conn => with_write_traffic(conn, &mut self.held, out, |mut traffic, out| {
            encrypt_into(&mut traffic, plaintext, out)
        }));
        match sealed {
            Ok(Some(result)) => result,
            Ok(None) => Err(SealError::Closed),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Moves every waiting TLS output into `out`.
    pub fn take_output(&mut self, out: &mut Outgoing) {
        if let Layer::Established(records) = &mut self.layer {
            records.take_output(out);
            return;
        }
        if self.failed.is_none() {
            if let Layer::Rustls(tls) = &mut self.layer {
                let collected = either_side!(&mut **tls, conn => collect_output(conn, &mut self.held, &mut self.output));
                if let Err(e) = collected {
                    self.failed = Some(e);
                }
            }
        }
        self.output.move_into(out);
    }

    /// Queues a TLS 1.3 KeyUpdate that asks the peer to update too
    /// ([RFC 8446] 4.6.3): it waits for [`UserspaceRecords::take_output`].
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    pub fn request_key_update(&mut self) -> Result<(), rustls::Error> {
        if let Layer::Established(records) = &mut self.layer {
            return records.request_key_update();
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let refreshed = with_rustls!(&mut self.layer, Err(gone()), conn => {
            with_write_traffic(conn, &mut self.held, &mut self.output, |traffic, _| {
                traffic.refresh_traffic_keys()
            })
            .and_then(|refreshed| {
                refreshed.unwrap_or(Err(rustls::Error::General(
                    "the connection cannot send application data".into(),
                )))
            })
            .and_then(|()| collect_output(conn, &mut self.held, &mut self.output))
        });
        refreshed.inspect_err(|e| self.failed = Some(e.clone()))
    }

    /// Seals a close_notify alert into `out`, behind any waiting TLS
    /// output. Nothing when the connection failed or is closed already.
    pub fn close_notify(&mut self, out: &mut Outgoing) {
        if let Layer::Established(records) = &mut self.layer {
            records.close_notify(out);
            return;
        }
        self.output.move_into(out);
        if self.failed.is_some() {
            return;
        }
        let Layer::Rustls(tls) = &mut self.layer else {
            return;
        };
        either_side!(&mut **tls, conn => {
            let _ = with_write_traffic(conn, &mut self.held, out, |mut traffic, out| {
                let room = out.room(RECORD_OVERHEAD);
                match traffic.queue_close_notify(room) {
                    Ok(n) => out.commit(n),
                    Err(EncryptError::InsufficientSize(size)) => {
                        let room = out.room(size.required_size);
                        if let Ok(n) = traffic.queue_close_notify(room) {
                            out.commit(n);
                        }
                    }
                    Err(_) => {}
                }
            });
        });
    }

    fn fail(&mut self, e: rustls::Error) -> SealError {
        self.failed = Some(e.clone());
        SealError::Tls(e)
    }
}

/// The error of a connection that left rustls without being taken over.
fn gone() -> rustls::Error {
    rustls::Error::General("the connection left rustls".into())
}

/// Whether `buf` begins with a whole record (which rustls, having stopped,
/// must still be referring to).
fn starts_with_complete_record(buf: &[u8]) -> bool {
    buf.len() >= RECORD_HEADER_LEN
        && buf.len() >= RECORD_HEADER_LEN + usize::from(u16::from_be_bytes([buf[3], buf[4]]))
}

/// What one state of the loop in [`open_records`] leads to.
enum Next {
    Continue,
    Stop(Opened),
    Fail(rustls::Error),
}

/// Processes `incoming` until rustls needs more input; see
/// [`UserspaceRecords::open`].
fn open_records<C: Process>(
    conn: &mut C,
    incoming: &mut Vec<u8>,
    plaintext: &mut Vec<u8>,
    output: &mut Outgoing,
) -> Result<Opened, rustls::Error> {
    // Discarded bytes are skipped, not moved: they leave the buffer once,
    // at the end.
    let mut start = 0;
    let result = loop {
        let UnbufferedStatus { discard, state } = conn.process(&mut incoming[start..]);
        let mut record_discard = 0;
        let next = match state {
            Err(e) => Next::Fail(e),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => loop {
                match traffic.next_record() {
                    Some(Ok(record)) => {
                        plaintext.extend_from_slice(record.payload);
                        record_discard += record.discard;
                    }
                    Some(Err(e)) => break Next::Fail(e),
                    None => break Next::Continue,
                }
            },
            // sstpd accepts no 0-RTT data (rustls' default).
            Ok(ConnectionState::ReadEarlyData(_)) => {
                Next::Fail(rustls::Error::General("unexpected early data".into()))
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                match encode_into(&mut encode, output) {
                    Ok(()) => Next::Continue,
                    Err(e) => Next::Fail(e),
                }
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                // The output waits in `output` for the writer.
                transmit.done();
                Next::Continue
            }
            Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                Next::Stop(Opened { peer_closed: true })
            }
            // BlockedHandshake, WriteTraffic: everything complete is
            // processed.
            Ok(_) => Next::Stop(Opened::default()),
        };
        start += discard + record_discard;
        match next {
            Next::Continue => {}
            Next::Stop(opened) => break Ok(opened),
            Next::Fail(e) => {
                collect_alert(conn, &mut incoming[start..], output);
                break Err(e);
            }
        }
    };
    incoming.drain(..start.min(incoming.len()));
    result
}

/// After an error: moves the alert that names it, which rustls has queued
/// (at most one), into `output`. Only one call: a second would make rustls
/// look at the offending record again.
fn collect_alert<C: Process>(conn: &mut C, incoming: &mut [u8], output: &mut Outgoing) {
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = conn.process(incoming).state {
        let _ = encode_into(&mut encode, output);
    }
}

/// Moves the TLS output rustls has queued into `output`, and drops from
/// `held` what rustls has finished with (kept as it is on an error).
fn collect_output<C: Process>(
    conn: &mut C,
    held: &mut Vec<u8>,
    output: &mut Outgoing,
) -> Result<(), rustls::Error> {
    let mut start = 0;
    loop {
        let UnbufferedStatus { discard, state } = conn.process(&mut held[start..]);
        let more = match state {
            Err(e) => Err(e),
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                encode_into(&mut encode, output).map(|()| true)
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(true)
            }
            Ok(_) => Ok(false),
        };
        start += discard;
        if !more? {
            break;
        }
    }
    held.drain(..start.min(held.len()));
    Ok(())
}

/// Runs `f` with the [`WriteTraffic`] state, first moving queued TLS output
/// into `out`. `None` when the connection cannot send application data
/// (handshake not done, or closed).
fn with_write_traffic<C: Process, R>(
    conn: &mut C,
    held: &mut Vec<u8>,
    out: &mut Outgoing,
    f: impl FnOnce(WriteTraffic<'_, C::Data>, &mut Outgoing) -> R,
) -> Result<Option<R>, rustls::Error> {
    let mut f = Some(f);
    loop {
        let UnbufferedStatus { discard, state } = conn.process(held);
        let next = match state {
            Err(e) => Err(e),
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                encode_into(&mut encode, out).map(|()| None)
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(None)
            }
            // Reported once; the next call goes on.
            Ok(ConnectionState::PeerClosed) => Ok(None),
            Ok(ConnectionState::WriteTraffic(traffic)) => match f.take() {
                Some(f) => Ok(Some(Some(f(traffic, out)))),
                None => Ok(Some(None)),
            },
            // The reader opens every record before the writer runs.
            Ok(ConnectionState::ReadTraffic(_) | ConnectionState::ReadEarlyData(_)) => Err(
                rustls::Error::General("received plaintext left unread".into()),
            ),
            // BlockedHandshake, Closed.
            Ok(_) => Ok(Some(None)),
        };
        held.drain(..discard.min(held.len()));
        if let Some(done) = next? {
            return Ok(done);
        }
    }
}

/// Encodes one queued handshake or alert record into `out`.
fn encode_into<D>(
    encode: &mut EncodeTlsData<'_, D>,
    out: &mut Outgoing,
) -> Result<(), rustls::Error> {
    // An empty room makes rustls say how much it needs.
    let required = match encode.encode(&mut []) {
        Ok(n) => {
            out.commit(n);
            return Ok(());
        }
        Err(EncodeError::InsufficientSize(size)) => size.required_size,
        Err(e) => return Err(rustls::Error::General(e.to_string())),
    };
    match encode.encode(out.room(required)) {
        Ok(n) => {
            out.commit(n);
            Ok(())
        }
        Err(e) => Err(rustls::Error::General(e.to_string())),
    }
}

/// Encrypts `plaintext` into `out`: one record per 2^14 bytes.
fn encrypt_into<D>(
    traffic: &mut WriteTraffic<'_, D>,
    plaintext: &[u8],
    out: &mut Outgoing,
) -> Result<(), SealError> {
    if plaintext.is_empty() {
        return Ok(());
    }
    let records = plaintext.len().div_ceil(MAX_RECORD_PLAINTEXT);
    let estimate = plaintext.len() + records * RECORD_OVERHEAD;
    let sealed = match traffic.encrypt(plaintext, out.room(estimate)) {
        Err(EncryptError::InsufficientSize(size)) => {
            traffic.encrypt(plaintext, out.room(size.required_size))
        }
        other => other,
    };
    match sealed {
        Ok(n) => {
            out.commit(n);
            Ok(())
        }
        Err(EncryptError::EncryptExhausted) => Err(SealError::Closed),
        Err(e) => Err(SealError::Tls(rustls::Error::General(e.to_string()))),
    }
}

/// Both ends of a connection in one process, for the tests and the
/// fuzzers.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::{Outgoing, UserspaceRecords};

    /// A server and a client configuration: the server with `cert` and
    /// its PKCS#8 `key`, the client trusting it for "localhost"; `version`
    /// only, only `suite` when given; secret extraction on at both ends, so
    /// that either can be taken over.
    pub fn configs(
        cert: rustls::pki_types::CertificateDer<'static>,
        key: Vec<u8>,
        version: &'static rustls::SupportedProtocolVersion,
        suite: Option<rustls::SupportedCipherSuite>,
    ) -> (rustls::ServerConfig, rustls::ClientConfig) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(suite) = suite {
            provider.cipher_suites = vec![suite];
        }
        let provider = std::sync::Arc::new(provider);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .expect("the version is the provider's")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("a certificate and its key");
        server.enable_secret_extraction = true;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("a certificate");
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .expect("the version is the provider's")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.enable_secret_extraction = true;
        (server, client)
    }

    /// Everything `records` has to send.
    pub fn output(records: &mut UserspaceRecords) -> Vec<u8> {
        let mut out = Outgoing::default();
        records.take_output(&mut out);
        out.filled().to_vec()
    }

    /// Delivers everything `from` has to send to `to` in one piece: the
    /// plaintext it opened.
    pub fn deliver(from: &mut UserspaceRecords, to: &mut UserspaceRecords) -> Vec<u8> {
        let mut incoming = output(from);
        let mut plaintext = Vec::new();
        to.open(&mut incoming, &mut plaintext).unwrap();
        assert!(incoming.is_empty());
        plaintext
    }

    /// Runs the handshake to its end, both ways in one piece at a time.
    pub fn handshake(
        mut server: UserspaceRecords,
        mut client: UserspaceRecords,
    ) -> (UserspaceRecords, UserspaceRecords) {
        for _ in 0..10 {
            deliver(&mut client, &mut server);
            deliver(&mut server, &mut client);
        }
        assert!(!server.is_handshaking() && !client.is_handshaking());
        (server, client)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::ServerConfig;

    use super::testing::{deliver, handshake, output};
    use super::*;

    pub(crate) const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
    pub(crate) const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

    /// A server and a client record layer, not yet handshaken. The
    /// server's records carry at most `fragment` bytes when given.
    fn pair(
        version: &'static rustls::SupportedProtocolVersion,
        fragment: Option<usize>,
    ) -> (UserspaceRecords, UserspaceRecords) {
        pair_with(version, fragment, None, |_| {})
    }

    /// [`pair`] with only `suite` offered when given, and `server` applied
    /// to the server's configuration.
    pub(crate) fn pair_with(
        version: &'static rustls::SupportedProtocolVersion,
        fragment: Option<usize>,
        suite: Option<rustls::SupportedCipherSuite>,
        server_config: impl FnOnce(&mut ServerConfig),
    ) -> (UserspaceRecords, UserspaceRecords) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (mut server, client) = testing::configs(
            cert.cert.der().clone(),
            cert.signing_key.serialize_der(),
            version,
            suite,
        );
        server.max_fragment_size = fragment;
        server_config(&mut server);
        let server = UnbufferedServerConnection::new(Arc::new(server)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let client = UnbufferedClientConnection::new(Arc::new(client), name).unwrap();
        (
            UserspaceRecords::new(server.into()),
            UserspaceRecords::new(client.into()),
        )
    }

    fn handshaking(records: &UserspaceRecords) -> bool {
        records.is_handshaking()
    }

    fn established(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> (UserspaceRecords, UserspaceRecords) {
        let (server, client) = pair(version, None);
        handshake(server, client)
    }

    /// [`established`], the server's records then taken over from rustls
    /// when `take_over`.
    fn established_and(
        version: &'static rustls::SupportedProtocolVersion,
        take_over: bool,
    ) -> (UserspaceRecords, UserspaceRecords) {
        let (mut server, client) = established(version);
        if take_over {
            assert!(server.take_over().unwrap());
            assert!(server.is_taken_over());
            assert!(!server.has_output());
        }
        (server, client)
    }

    /// Both record layers of a server: rustls', and ours after the take
    /// over.
    const BOTH: [bool; 2] = [false, true];

    fn seal(records: &mut UserspaceRecords, units: &[&[u8]]) -> Vec<u8> {
        let mut out = Outgoing::default();
        for unit in units {
            records.seal(unit, &mut out).unwrap();
        }
        out.filled().to_vec()
    }

    /// The lengths of the records in `ciphertext`.
    fn record_lengths(mut ciphertext: &[u8]) -> Vec<usize> {
        let mut lengths = Vec::new();
        while ciphertext.len() >= RECORD_HEADER_LEN {
            let len = usize::from(u16::from_be_bytes([ciphertext[3], ciphertext[4]]));
            lengths.push(len);
            ciphertext = &ciphertext[RECORD_HEADER_LEN + len..];
        }
        assert!(ciphertext.is_empty());
        lengths
    }

    fn units() -> Vec<Vec<u8>> {
        [100usize, 1400, 4000, 17_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|b| (b * 7 + i) as u8).collect())
            .collect()
    }

    #[test]
    fn each_unit_is_its_own_records_and_opens_from_any_split() {
        for (version, take_over) in [TLS12, TLS13]
            .into_iter()
            .flat_map(|v| BOTH.map(|t| (v, t)))
        {
            let (mut server, mut client) = established_and(version, take_over);
            let units = units();
            let unit_refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
            let expected = units.concat();

            // Several records in one read.
            let mut ciphertext = seal(&mut client, &unit_refs);
            // One record per unit; the 17,000 bytes take two.
            assert_eq!(record_lengths(&ciphertext).len(), 5, "{version:?}");
            // And the server's the same way.
            let mut back = seal(&mut server, &unit_refs);
            assert_eq!(record_lengths(&back).len(), 5, "{version:?} {take_over}");
            let mut got = Vec::new();
            client.open(&mut back, &mut got).unwrap();
            assert_eq!(got, expected);
            let mut plaintext = Vec::new();
            server.open(&mut ciphertext, &mut plaintext).unwrap();
            assert_eq!(plaintext, expected);
            assert!(ciphertext.is_empty());

            // Records split across reads, at every size from one byte.
            for piece in [1, 7, 5 + 100, 2048, 16 * 1024 + 40] {
                let ciphertext = seal(&mut client, &unit_refs);
                let mut incoming = Vec::new();
                let mut plaintext = Vec::new();
                for chunk in ciphertext.chunks(piece) {
                    incoming.extend_from_slice(chunk);
                    server.open(&mut incoming, &mut plaintext).unwrap();
                    // What stays is the start of one record, nothing more.
                    assert!(!starts_with_complete_record(&incoming));
                    assert!(!server.holds_input());
                }
                assert!(incoming.is_empty());
                assert_eq!(plaintext, expected, "{version:?}, pieces of {piece}");
            }
        }
    }

    /// A record larger than a whole read buffer (as after a quiet spell)
    /// completes over several reads.
    #[test]
    fn a_record_larger_than_the_read_buffer() {
        for take_over in BOTH {
            let (mut server, mut client) = established_and(TLS13, take_over);
            let unit = vec![0x5a; 16 * 1024];
            let ciphertext = seal(&mut client, &[&unit]);
            assert_eq!(record_lengths(&ciphertext).len(), 1);
            let mut incoming = Vec::new();
            let mut plaintext = Vec::new();
            let chunks: Vec<&[u8]> = ciphertext
                .chunks(super::super::uring_tls::IDLE_READ_CHUNK)
                .collect();
            for (i, chunk) in chunks.iter().enumerate() {
                incoming.extend_from_slice(chunk);
                server.open(&mut incoming, &mut plaintext).unwrap();
                if i + 1 < chunks.len() {
                    assert!(plaintext.is_empty());
                }
            }
            assert_eq!(plaintext, unit);
        }
    }

    #[test]
    fn key_updates_both_ways() {
        for take_over in BOTH {
            let (mut server, mut client) = established_and(TLS13, take_over);
            // The server asks; its KeyUpdate goes before the data sealed after.
            server.request_key_update().unwrap();
            assert!(server.has_output());
            assert_eq!(
                pass(&mut server, &mut client, b"after the server's update"),
                2
            );
            assert!(!server.has_output());
            // The client answers with its own KeyUpdate, in front of its next
            // record.
            assert_eq!(
                pass(&mut client, &mut server, b"after the client's answer"),
                2
            );

            // The client asks (as a peer of sstpd would): sstpd answers in
            // front of what it sends next.
            client.request_key_update().unwrap();
            assert_eq!(pass(&mut client, &mut server, b"ping"), 2);
            assert_eq!(pass(&mut server, &mut client, b"pong"), 2);
            // Both sides on new keys both ways: more traffic still opens.
            assert_eq!(pass(&mut client, &mut server, b"again"), 1);
            assert_eq!(pass(&mut server, &mut client, b"and back"), 1);
        }
    }

    /// Whether `from`'s close_notify reaches `to` as the peer's close.
    fn says_goodbye(from: &mut UserspaceRecords, to: &mut UserspaceRecords) -> bool {
        let mut out = Outgoing::default();
        from.close_notify(&mut out);
        let mut incoming = out.filled().to_vec();
        let mut plaintext = Vec::new();
        to.open(&mut incoming, &mut plaintext).unwrap().peer_closed
    }

    /// Seals `data` at `from` (behind what it has to send) and opens it at
    /// `to`; the records it took.
    fn pass(from: &mut UserspaceRecords, to: &mut UserspaceRecords, data: &[u8]) -> usize {
        let mut incoming = seal(from, &[data]);
        let records = record_lengths(&incoming).len();
        let mut plaintext = Vec::new();
        to.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, data);
        records
    }

    #[test]
    fn close_notify_in_the_middle_of_a_read() {
        for (version, take_over) in [TLS12, TLS13]
            .into_iter()
            .flat_map(|v| BOTH.map(|t| (v, t)))
        {
            let (mut server, mut client) = established_and(version, take_over);
            let mut out = Outgoing::default();
            client.seal(b"last words", &mut out).unwrap();
            client.close_notify(&mut out);
            let mut incoming = out.filled().to_vec();
            // Whatever follows the close_notify is not looked at.
            incoming.extend_from_slice(&[0xff; 40]);
            let mut plaintext = Vec::new();
            let opened = server.open(&mut incoming, &mut plaintext).unwrap();
            assert!(opened.peer_closed, "{version:?}");
            assert_eq!(plaintext, b"last words");
            // The server can still say goodbye.
            assert!(says_goodbye(&mut server, &mut client));
        }
    }

    /// Garbage after a good record: the good record's plaintext, then an
    /// error, the alert that names it for the peer, and errors (no panic)
    /// from then on.
    #[test]
    fn garbage_after_a_record_is_an_alert_and_an_error() {
        let garbage: [&[u8]; 3] = [
            // An application data record that does not decrypt.
            &[[0x17, 0x03, 0x03, 0x00, 0x20].as_slice(), &[0xab; 0x20]].concat(),
            // An unknown record type.
            &[0x42, 0x03, 0x03, 0x00, 0x02, 0x00, 0x00],
            // A record longer than TLS allows.
            &[0x17, 0x03, 0x03, 0xff, 0xff],
        ];
        for (version, take_over) in [TLS12, TLS13]
            .into_iter()
            .flat_map(|v| BOTH.map(|t| (v, t)))
        {
            for bad in garbage {
                let (mut server, mut client) = established_and(version, take_over);
                let mut incoming = seal(&mut client, &[b"fine"]);
                incoming.extend_from_slice(bad);
                let mut plaintext = Vec::new();
                assert!(server.open(&mut incoming, &mut plaintext).is_err());
                assert_eq!(plaintext, b"fine");
                assert!(server.has_output(), "{version:?} {bad:?}");
                let mut alert = output(&mut server);
                let mut plaintext = Vec::new();
                assert!(
                    matches!(
                        client.open(&mut alert, &mut plaintext),
                        Err(rustls::Error::AlertReceived(_))
                    ),
                    "{version:?} {bad:?}"
                );
                // Dead from now on, in both directions.
                let mut more = b"more".to_vec();
                assert!(server.open(&mut more, &mut plaintext).is_err());
                let mut out = Outgoing::default();
                assert!(server.seal(b"x", &mut out).is_err());
                server.close_notify(&mut out);
                assert!(server.request_key_update().is_err());
            }
        }
    }

    /// rustls refers to the earlier records of a handshake message split
    /// across records until the message is complete: they stay held, and
    /// the writer's calls in between see them too.
    #[test]
    fn a_handshake_message_split_across_records() {
        for version in [TLS12, TLS13] {
            // The server's certificate and (TLS 1.3) tickets span records.
            let (mut server, mut client) = pair(version, Some(64));
            let mut held_seen = false;
            for _ in 0..10 {
                deliver(&mut client, &mut server);
                let flight = output(&mut server);
                let mut incoming = Vec::new();
                let mut plaintext = Vec::new();
                for chunk in flight.chunks(50) {
                    incoming.extend_from_slice(chunk);
                    client.open(&mut incoming, &mut plaintext).unwrap();
                    held_seen |= client.holds_input();
                    // A writer in between: sealing, or collecting output.
                    if handshaking(&client) {
                        let mut out = Outgoing::default();
                        client.take_output(&mut out);
                        // Delivered later, in order.
                        client.output.extend_from_slice(out.filled());
                    } else {
                        let sealed = seal(&mut client, &[b"meanwhile"]);
                        let mut got = Vec::new();
                        let mut sealed = [output(&mut client), sealed].concat();
                        server.open(&mut sealed, &mut got).unwrap();
                        assert_eq!(got, b"meanwhile");
                    }
                }
                assert!(incoming.is_empty());
                assert!(plaintext.is_empty());
            }
            assert!(held_seen, "{version:?}");
            assert!(!handshaking(&server) && !handshaking(&client));
            assert!(!client.holds_input());
            let mut incoming = seal(&mut server, &[b"done"]);
            let mut plaintext = Vec::new();
            client.open(&mut incoming, &mut plaintext).unwrap();
            assert_eq!(plaintext, b"done");
        }
    }

    /// `count` records of distinct data from `from` to `to`, each opened.
    fn exchange(from: &mut UserspaceRecords, to: &mut UserspaceRecords, count: usize, what: &str) {
        for i in 0..count {
            let unit: Vec<u8> = (0..100 + i * 37).map(|b| (b * 13 + i) as u8).collect();
            let mut incoming = seal(from, &[&unit]);
            let mut plaintext = Vec::new();
            to.open(&mut incoming, &mut plaintext)
                .unwrap_or_else(|e| panic!("{what}, record {i}: {e}"));
            assert_eq!(plaintext, unit, "{what}, record {i}");
        }
    }

    /// Every suite of both versions, taken over after traffic both ways
    /// (so neither direction starts at sequence number 0 under its key),
    /// at the server, the client or both: rustls at one end opens what
    /// ours seals at the other and the other way round, for more records
    /// than aws-lc's nonce check lets a key seal out of order.
    #[test]
    fn taken_over_every_suite_both_ways() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut tested = 0;
        let ends = [(true, false), (false, true), (true, true)];
        for (suite, (at_server, at_client)) in provider
            .cipher_suites
            .iter()
            .flat_map(|suite| ends.map(|ends| (*suite, ends)))
        {
            let version = match suite {
                rustls::SupportedCipherSuite::Tls13(_) => TLS13,
                // The test certificate's key is ECDSA.
                rustls::SupportedCipherSuite::Tls12(_)
                    if !format!("{:?}", suite.suite()).contains("ECDSA") =>
                {
                    continue;
                }
                rustls::SupportedCipherSuite::Tls12(_) => TLS12,
            };
            let (server, client) =
                pair_with(version, None, Some(suite), |c| c.send_tls13_tickets = 0);
            let (mut server, mut client) = handshake(server, client);
            let what = format!("{:?} server {at_server} client {at_client}", suite.suite());
            exchange(&mut client, &mut server, 3, &what);
            exchange(&mut server, &mut client, 3, &what);
            for (ours, records) in [(at_server, &mut server), (at_client, &mut client)] {
                if ours {
                    assert!(records.take_over().unwrap(), "{what}");
                    assert!(
                        !records.has_output(),
                        "{what}: nothing to say when taking over"
                    );
                    assert_eq!(records.negotiated_cipher_suite(), Some(suite));
                }
            }
            exchange(&mut client, &mut server, 20, &what);
            exchange(&mut server, &mut client, 20, &what);
            assert!(says_goodbye(&mut server, &mut client), "{what}");
            tested += 1;
        }
        // Three TLS 1.3 suites, three TLS 1.2 ECDSA suites, three ways.
        assert_eq!(tested, 18);
    }

    /// A client (sstp-loadgen) takes over as soon as its Finished is out,
    /// before the server's TLS 1.3 tickets arrive: its records take them
    /// (into rustls' ticket store) and carry data both ways after.
    #[test]
    fn a_client_takes_over_before_the_tickets() {
        for tickets in [0, 2] {
            let (mut server, mut client) =
                pair_with(TLS13, None, None, |c| c.send_tls13_tickets = tickets);
            let mut rounds = 0;
            while handshaking(&client) {
                assert!(rounds < 10, "the client's handshake ends");
                deliver(&mut client, &mut server);
                deliver(&mut server, &mut client);
                rounds += 1;
            }
            // The client's Finished out; the server answers with its
            // tickets, which reach the client once it has taken over.
            deliver(&mut client, &mut server);
            assert!(!handshaking(&server));
            assert_eq!(server.has_output(), tickets > 0);
            assert!(client.take_over().unwrap());
            assert!(deliver(&mut server, &mut client).is_empty());
            assert!(!client.has_failed() && !client.has_output());
            exchange(&mut server, &mut client, 10, "after the tickets");
            exchange(&mut client, &mut server, 10, "after the tickets");
        }
    }

    /// TLS 1.3 tickets were sealed under the server's traffic key before
    /// the take over, so its sequence numbers do not start at 0 (see
    /// `RecordSealer`).
    #[test]
    fn taken_over_after_tickets() {
        for tickets in [0, 2] {
            let (server, client) = pair_with(TLS13, None, None, |c| c.send_tls13_tickets = tickets);
            let (mut server, mut client) = handshake(server, client);
            assert!(server.take_over().unwrap());
            assert!(!server.has_output());
            exchange(&mut server, &mut client, 10, "after the tickets");
            exchange(&mut client, &mut server, 10, "after the tickets");
        }
    }

    /// Records that must not come after the handshake: the alert names
    /// the error, then everything fails.
    #[test]
    fn taken_over_refuses_what_comes_only_before_the_handshake_ends() {
        let cases: [(
            &rustls::SupportedProtocolVersion,
            &[u8],
            rustls::AlertDescription,
        ); 4] = [
            // A change_cipher_spec (TLS 1.3 allows it only before).
            (
                TLS13,
                &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01],
                rustls::AlertDescription::UnexpectedMessage,
            ),
            // An alert in the clear.
            (
                TLS13,
                &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
                rustls::AlertDescription::UnexpectedMessage,
            ),
            // A change_cipher_spec in TLS 1.2.
            (
                TLS12,
                &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01],
                rustls::AlertDescription::UnexpectedMessage,
            ),
            // A version that is not 3.x.
            (
                TLS12,
                &[0x17, 0x04, 0x03, 0x00, 0x01, 0x01],
                rustls::AlertDescription::UnexpectedMessage,
            ),
        ];
        for (version, record, expected) in cases {
            let (mut server, mut client) = established_and(version, true);
            let mut incoming = record.to_vec();
            let mut plaintext = Vec::new();
            assert!(
                server.open(&mut incoming, &mut plaintext).is_err(),
                "{record:?}"
            );
            let mut alert = output(&mut server);
            let mut plaintext = Vec::new();
            match client.open(&mut alert, &mut plaintext) {
                Err(rustls::Error::AlertReceived(got)) => assert_eq!(got, expected, "{record:?}"),
                other => panic!("{record:?}: {other:?}"),
            }
        }
    }

    /// At the confidentiality limit TLS 1.3 moves to its next key; TLS
    /// 1.2 cannot, and stops taking data.
    #[test]
    fn taken_over_at_the_confidentiality_limit() {
        let (mut server, mut client) = established_and(TLS13, true);
        server.set_confidentiality_limit(3);
        exchange(&mut server, &mut client, 10, "TLS 1.3 past its limit");
        exchange(&mut client, &mut server, 2, "TLS 1.3 past its limit");

        let (mut server, _client) = established_and(TLS12, true);
        server.set_confidentiality_limit(3);
        let mut out = Outgoing::default();
        let results: Vec<bool> = (0..5)
            .map(|_| server.seal(b"x", &mut out).is_ok())
            .collect();
        assert!(results.iter().filter(|ok| **ok).count() <= 3, "{results:?}");
        assert!(matches!(
            server.seal(b"x", &mut out),
            Err(SealError::Closed)
        ));
    }

    proptest::proptest! {
        /// Whatever follows a good record, the taken-over layer never
        /// panics: it opens what it can, waits for more, or fails with an
        /// alert queued.
        #[test]
        fn taken_over_survives_any_bytes(
            tls13 in proptest::bool::ANY,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            header in proptest::sample::select(vec![0x14u8, 0x15, 0x16, 0x17, 0x00, 0xff]),
        ) {
            let version = if tls13 { TLS13 } else { TLS12 };
            let (mut server, mut client) = established_and(version, true);
            let mut incoming = seal(&mut client, &[b"good"]);
            let len = tail.len() as u16;
            incoming.extend_from_slice(&[header, 0x03, 0x03]);
            incoming.extend_from_slice(&len.to_be_bytes());
            incoming.extend_from_slice(&tail);
            let mut plaintext = Vec::new();
            match server.open(&mut incoming, &mut plaintext) {
                Ok(_) => proptest::prop_assert!(!server.has_failed()),
                Err(_) => proptest::prop_assert!(server.has_output() || server.has_failed()),
            }
            proptest::prop_assert_eq!(&plaintext[..4], b"good");
        }
    }
}
