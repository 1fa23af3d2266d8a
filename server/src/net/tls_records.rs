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
    fn room(&mut self, n: usize) -> &mut [u8] {
        let needed = self.filled + n;
        if self.bytes.len() < needed {
            self.bytes.resize(needed, 0);
        }
        &mut self.bytes[self.filled..]
    }

    fn commit(&mut self, n: usize) {
        self.filled += n;
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        self.room(data.len())[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// Moves the filled bytes to the end of `to`.
    fn move_into(&mut self, to: &mut Outgoing) {
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
/// still refers to or has to send.
#[derive(Debug)]
pub struct UserspaceRecords {
    tls: UnbufferedTls,
    /// Received records rustls still refers to (see the module docs), and
    /// everything received after them. Usually empty.
    held: Vec<u8>,
    /// TLS output produced outside a write (while opening records, or a
    /// key update asked for): the next write or flush sends it first.
    output: Outgoing,
    /// The first fatal error: rustls is not called again.
    failed: Option<rustls::Error>,
}

impl UserspaceRecords {
    pub fn new(tls: UnbufferedTls) -> Self {
        UserspaceRecords {
            tls,
            held: Vec::new(),
            output: Outgoing::default(),
            failed: None,
        }
    }

    pub fn tls(&self) -> &UnbufferedTls {
        &self.tls
    }

    /// Whether an error ended the connection.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether TLS output waits to be sent.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Whether received bytes are held here (a handshake message split
    /// across records is incomplete).
    pub fn holds_input(&self) -> bool {
        !self.held.is_empty()
    }

    /// The rustls connection alone. [`UserspaceRecords::new`] with it
    /// continues where this left off when nothing was held
    /// ([`UserspaceRecords::holds_input`], [`UserspaceRecords::has_output`])
    /// and nothing failed ([`UserspaceRecords::has_failed`]).
    pub fn into_tls(self) -> UnbufferedTls {
        self.tls
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
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = if self.held.is_empty() {
            let result = either_side!(&mut self.tls, conn => open_records(conn, incoming, plaintext, &mut self.output));
            if matches!(result, Ok(opened) if !opened.peer_closed)
                && starts_with_complete_record(incoming)
            {
                self.held.append(incoming);
            }
            result
        } else {
            self.held.append(incoming);
            let result = either_side!(&mut self.tls, conn => open_records(conn, &mut self.held, plaintext, &mut self.output));
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
        self.output.move_into(out);
        if let Some(e) = &self.failed {
            return Err(SealError::Tls(e.clone()));
        }
        let sealed = either_side!(&mut self.tls, conn => with_write_traffic(conn, &mut self.held, out, |mut traffic, out| {
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
        if self.failed.is_none() {
            let collected = either_side!(&mut self.tls, conn => collect_output(conn, &mut self.held, &mut self.output));
            if let Err(e) = collected {
                self.failed = Some(e);
            }
        }
        self.output.move_into(out);
    }

    /// Queues a TLS 1.3 KeyUpdate that asks the peer to update too
    /// ([RFC 8446] 4.6.3): it waits for [`UserspaceRecords::take_output`].
    ///
    /// [RFC 8446]: https://www.rfc-editor.org/rfc/rfc8446
    pub fn request_key_update(&mut self) -> Result<(), rustls::Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let refreshed = either_side!(&mut self.tls, conn => {
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
        self.output.move_into(out);
        if self.failed.is_some() {
            return;
        }
        let _ = either_side!(&mut self.tls, conn => with_write_traffic(conn, &mut self.held, out, |mut traffic, out| {
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
        }));
    }

    fn fail(&mut self, e: rustls::Error) -> SealError {
        self.failed = Some(e.clone());
        SealError::Tls(e)
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig};

    use super::*;

    const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
    const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

    /// A server and a client record layer, not yet handshaken. The
    /// server's records carry at most `fragment` bytes when given.
    fn pair(
        version: &'static rustls::SupportedProtocolVersion,
        fragment: Option<usize>,
    ) -> (UserspaceRecords, UserspaceRecords) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_der: CertificateDer<'static> = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key)
            .unwrap();
        server.max_fragment_size = fragment;
        let mut roots = RootCertStore::empty();
        roots.add(cert_der).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server = UnbufferedServerConnection::new(Arc::new(server)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let client = UnbufferedClientConnection::new(Arc::new(client), name).unwrap();
        (
            UserspaceRecords::new(server.into()),
            UserspaceRecords::new(client.into()),
        )
    }

    fn output(records: &mut UserspaceRecords) -> Vec<u8> {
        let mut out = Outgoing::default();
        records.take_output(&mut out);
        out.filled().to_vec()
    }

    /// Delivers everything `from` has to send to `to` in one piece.
    fn deliver(from: &mut UserspaceRecords, to: &mut UserspaceRecords) -> Vec<u8> {
        let mut incoming = output(from);
        let mut plaintext = Vec::new();
        to.open(&mut incoming, &mut plaintext).unwrap();
        assert!(incoming.is_empty());
        plaintext
    }

    fn handshaking(records: &UserspaceRecords) -> bool {
        records.tls().common().is_handshaking()
    }

    fn established(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> (UserspaceRecords, UserspaceRecords) {
        let (mut server, mut client) = pair(version, None);
        for _ in 0..10 {
            deliver(&mut client, &mut server);
            deliver(&mut server, &mut client);
        }
        assert!(!handshaking(&server) && !handshaking(&client));
        (server, client)
    }

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
        for version in [TLS12, TLS13] {
            let (mut server, mut client) = established(version);
            let units = units();
            let unit_refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
            let expected = units.concat();

            // Several records in one read.
            let mut ciphertext = seal(&mut client, &unit_refs);
            // One record per unit; the 17,000 bytes take two.
            assert_eq!(record_lengths(&ciphertext).len(), 5, "{version:?}");
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
        let (mut server, mut client) = established(TLS13);
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

    #[test]
    fn key_updates_both_ways() {
        let (mut server, mut client) = established(TLS13);
        // The server asks; its KeyUpdate goes before the data sealed after.
        server.request_key_update().unwrap();
        assert!(server.has_output());
        let mut out = Outgoing::default();
        server.seal(b"after the server's update", &mut out).unwrap();
        assert!(!server.has_output());
        let mut incoming = out.filled().to_vec();
        assert_eq!(record_lengths(&incoming).len(), 2);
        let mut plaintext = Vec::new();
        client.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, b"after the server's update");
        // The client answers with its own KeyUpdate, in front of its next
        // record.
        let mut incoming = seal(&mut client, &[b"after the client's answer"]);
        assert_eq!(record_lengths(&incoming).len(), 2);
        let mut plaintext = Vec::new();
        server.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, b"after the client's answer");

        // The client asks (as a peer of sstpd would): sstpd answers in
        // front of what it sends next.
        client.request_key_update().unwrap();
        let mut incoming = seal(&mut client, &[b"ping"]);
        let mut plaintext = Vec::new();
        server.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, b"ping");
        let mut incoming = seal(&mut server, &[b"pong"]);
        assert_eq!(record_lengths(&incoming).len(), 2);
        let mut plaintext = Vec::new();
        client.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, b"pong");
        // Both sides on new keys both ways: more traffic still opens.
        let mut incoming = seal(&mut client, &[b"again"]);
        assert_eq!(record_lengths(&incoming).len(), 1);
        let mut plaintext = Vec::new();
        server.open(&mut incoming, &mut plaintext).unwrap();
        assert_eq!(plaintext, b"again");
    }

    #[test]
    fn close_notify_in_the_middle_of_a_read() {
        for version in [TLS12, TLS13] {
            let (mut server, mut client) = established(version);
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
            let mut out = Outgoing::default();
            server.close_notify(&mut out);
            let mut incoming = out.filled().to_vec();
            let mut plaintext = Vec::new();
            assert!(
                client
                    .open(&mut incoming, &mut plaintext)
                    .unwrap()
                    .peer_closed
            );
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
        for version in [TLS12, TLS13] {
            for bad in garbage {
                let (mut server, mut client) = established(version);
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
}
