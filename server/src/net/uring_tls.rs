//! rustls driven by hand over tokio-uring's owned buffers.
//!
//! tokio-uring hands buffers to the kernel and back, so the usual
//! `AsyncRead`/`AsyncWrite` TLS wrappers do not apply. [`TlsConn`] keeps the
//! rustls state machine next to the socket and exposes the two operations a
//! session needs, each usable from its own task:
//!
//! * [`TlsConn::read_plaintext`]: one socket read into the connection's own
//!   buffer (which keeps the start of a record still on its way), the
//!   records opened in place and their plaintext appended to the caller's
//!   plaintext buffer;
//! * [`TlsConn::write_plaintext`]: encrypt a batch of plaintext (as few TLS
//!   records as the record size allows) straight into the connection's
//!   write buffer and write it in one submission;
//!   [`TlsConn::write_plaintext_units`] makes each unit (an SSTP packet) a
//!   record of its own, still in one submission. With kernel TLS the units
//!   go out as linked sends (one record each) in one submission of a
//!   private ring (`ktls_batch`).
//!
//! rustls runs through its unbuffered API ([`super::tls_records`]): it keeps
//! no receive or send buffer of its own per connection.
//!
//! A session runs a reader task and a writer task concurrently. They share
//! the connection through `Rc`; the rustls state is only borrowed
//! synchronously, never across an `.await`. A tokio-uring read future must
//! never be dropped while in flight (its completion would be lost), which is
//! why reading lives in a task of its own instead of a `select!`.

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Duration;

use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

pub use super::tls_records::UnbufferedTls;
use super::tls_records::{Outgoing, SealError, UserspaceRecords};
use crate::metrics::Event;

/// Size of one socket read once a connection carries traffic. Large enough
/// for several full TLS records.
pub const READ_CHUNK: usize = 64 * 1024;
/// Size of the first reads: one full TLS record (2^14 plus overhead). A
/// read that fills it grows the buffer to [`READ_CHUNK`].
pub const INITIAL_READ_CHUNK: usize = 17 * 1024;
/// Size of the reads of a connection that has gone quiet: enough for the
/// keepalives (SSTP Echo, LCP Echo, Hello) of an idle session in one read.
/// A read in flight pins its buffer for as long as the client is silent,
/// so at 100,000 mostly idle sessions this is what the read side costs.
pub const IDLE_READ_CHUNK: usize = 2 * 1024;
/// Ciphertext sealed into the write buffer after which it is written out
/// before more is sealed: bounds the buffer of a session that writes a lot
/// at once. A multiple of the record size, so splitting a unit here does
/// not change its records.
pub const WRITE_BATCH: usize = 64 * 1024;
/// A read that waited at least this long marks the connection quiet: its
/// next read first waits for data without holding a buffer.
const QUIET_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// Reads in a row that return at most half of [`IDLE_READ_CHUNK`] after
/// which a buffer that never grew (the session's setup) shrinks to that
/// size.
const SHRINK_AFTER_SMALL_READS: u8 = 4;
/// The same for a buffer that grew to [`READ_CHUNK`] (the session carried
/// traffic): many more, so that small-packet traffic, whose reads are
/// small but frequent, does not reallocate every few reads.
const SHRINK_BUSY_AFTER_SMALL_READS: u8 = 64;

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Plaintext bytes appended to the caller's buffer (possibly zero, e.g.
    /// for a record that carried only a TLS control message).
    Data(usize),
    /// The peer closed the connection (TLS close_notify or TCP FIN).
    Closed,
}

/// Who does the record layer.
// One per session, and the userspace variant is the hot one: boxing it would
// add a pointer chase to every read and write to save ~1 KiB per kTLS session.
#[allow(clippy::large_enum_variant)]
enum Records {
    /// rustls encrypts and decrypts.
    Userspace(UserspaceRecords),
    /// The kernel does (kTLS): the socket carries plaintext.
    Kernel(KernelRecords),
    /// Transient, while the connection is handed to the kernel.
    Switching,
}

struct KernelRecords {
    version: crate::config::TlsVersion,
    /// Approximate records sent, against the AEAD confidentiality limit
    /// the kernel does not enforce.
    records_sent: u64,
}

/// Records of at most 16 KiB; close well before 2^24.5 of them (the
/// AES-GCM limit rustls would re-key at and the kernel cannot).
const KERNEL_RECORD_LIMIT: u64 = 1 << 24;

/// The most plaintext one TLS record carries (2^14, [RFC 8446] 5.1). Kernel
/// TLS seals a send no larger than this, without `MSG_MORE`, as one record,
/// and takes it whole or not at all.
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// What the kernel TLS send path did since it was last asked
/// ([`TlsConn::take_kernel_sends`]), for the worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelSends {
    /// Submissions: chains of linked sends (one io_uring submission
    /// each), runs of packets sent back to back without waiting (the
    /// fallback), and awaited writes of a packet the socket did not take.
    pub batches: u64,
    /// SSTP packets (TLS records) those submissions sent.
    pub packets: u64,
    /// Chains that were not submitted, or broke, by reason.
    pub fallbacks: KernelSendFallbacks,
}

/// Why kernel TLS packets did not go out as one chain (see
/// [`KernelSends`]), counted per chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelSendFallbacks {
    /// The worker's private ring could not be set up: sent packet by
    /// packet.
    pub ring_unavailable: u64,
    /// The ring had too much in flight: sent packet by packet.
    pub ring_busy: u64,
    /// A send of the chain was taken in part: the rest of the last one
    /// went through an awaited write, or, with more sent after it, the
    /// connection ended.
    pub chain_broken: u64,
}

/// A TLS connection on a tokio-uring TCP socket.
pub struct TlsConn {
    tcp: TcpStream,
    tls: RefCell<Records>,
    /// Until the handshake is over, read one TLS record at a time so that
    /// nothing beyond the last handshake record is read into userspace
    /// (required before handing the connection to kernel TLS).
    exact_records: Cell<bool>,
    /// Reusable ciphertext read buffer (moved into the kernel during a
    /// read). Between reads it holds the start of a record still on its
    /// way, which the next read completes.
    read_buf: Cell<Option<Vec<u8>>>,
    /// Sizes `read_buf` from what the reads return.
    read_sizer: Cell<ReadSizer>,
    /// The last read waited at least [`QUIET_AFTER`] for data, or was
    /// small while `small_reads_are_quiet`.
    quiet: Cell<bool>,
    /// Whether a small read marks the connection quiet (see
    /// [`TlsConn::small_reads_are_quiet`]).
    small_reads_are_quiet: Cell<bool>,
    /// Reusable ciphertext write buffer: records are sealed into it.
    write_buf: Cell<Option<Vec<u8>>>,
    /// The peer ended its side with a TLS close_notify (not a bare FIN).
    peer_close_notify: Cell<bool>,
    /// Kernel TLS sends not yet handed to the counters.
    kernel_sends: Cell<KernelSends>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").finish_non_exhaustive()
    }
}

/// How long a failed handshake may take to send its alert.
const ALERT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// TLS or IO failure of a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsIoError {
    Io(io::Error),
    Tls(rustls::Error),
    /// The handshake did not finish within the configured time.
    HandshakeTimeout,
    /// The peer closed the connection during the handshake.
    ClosedDuringHandshake,
    /// Kernel TLS received a record it cannot act on (a TLS 1.3
    /// KeyUpdate, a fatal alert, ...): the session ends.
    KernelRecord(crate::tls::ktls::ControlAction),
}

impl TlsIoError {
    /// Short snake_case name for logs: the label it is counted under.
    pub fn as_str(&self) -> &'static str {
        Event::from(self).label()
    }
}

impl From<&TlsIoError> for Event {
    fn from(error: &TlsIoError) -> Self {
        match error {
            TlsIoError::Io(_) => Event::IoError,
            TlsIoError::Tls(_) => Event::TlsError,
            TlsIoError::HandshakeTimeout => Event::TlsHandshakeTimeout,
            TlsIoError::ClosedDuringHandshake => Event::TlsClosedDuringHandshake,
            TlsIoError::KernelRecord(action) => action.close_event().unwrap_or(Event::TlsError),
        }
    }
}

impl std::fmt::Display for TlsIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsIoError::Io(e) => write!(f, "io: {e}"),
            TlsIoError::Tls(e) => write!(f, "tls: {e}"),
            TlsIoError::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            TlsIoError::ClosedDuringHandshake => f.write_str("peer closed during TLS handshake"),
            TlsIoError::KernelRecord(action) => {
                write!(f, "kernel TLS cannot act on the peer's {}", action.as_str())
            }
        }
    }
}

impl std::error::Error for TlsIoError {}

impl From<io::Error> for TlsIoError {
    fn from(e: io::Error) -> Self {
        TlsIoError::Io(e)
    }
}

impl From<rustls::Error> for TlsIoError {
    fn from(e: rustls::Error) -> Self {
        TlsIoError::Tls(e)
    }
}

impl From<SealError> for TlsIoError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Tls(e) => TlsIoError::Tls(e),
            // The connection no longer takes application data.
            _ => TlsIoError::Io(io::ErrorKind::WriteZero.into()),
        }
    }
}

/// Sizes the socket read buffer from what the reads return: grown to
/// [`READ_CHUNK`] when a read filled it (traffic), shrunk to
/// [`IDLE_READ_CHUNK`] after [`SHRINK_AFTER_SMALL_READS`] (or, once grown,
/// [`SHRINK_BUSY_AFTER_SMALL_READS`]) reads in a row of at most half that
/// (keepalives).
#[derive(Debug, Default, Clone, Copy)]
struct ReadSizer {
    small_reads: u8,
}

/// What to do with the read buffer before the next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    Keep,
    Grow,
    Shrink,
}

impl ReadSizer {
    /// After a read into the `room` bytes free in a buffer of `capacity`
    /// that returned `read` bytes (`None`: it failed).
    fn after_read(&mut self, capacity: usize, room: usize, read: Option<usize>) -> Resize {
        match read {
            Some(n) if n == room => {
                self.small_reads = 0;
                if capacity < READ_CHUNK {
                    Resize::Grow
                } else {
                    Resize::Keep
                }
            }
            Some(n) if n <= IDLE_READ_CHUNK / 2 => {
                self.small_reads = self.small_reads.saturating_add(1);
                let needed = if capacity >= READ_CHUNK {
                    SHRINK_BUSY_AFTER_SMALL_READS
                } else {
                    SHRINK_AFTER_SMALL_READS
                };
                if self.small_reads >= needed && capacity > IDLE_READ_CHUNK {
                    self.small_reads = 0;
                    Resize::Shrink
                } else {
                    Resize::Keep
                }
            }
            _ => {
                self.small_reads = 0;
                Resize::Keep
            }
        }
    }
}

impl TlsConn {
    /// Wraps a connected socket and a fresh unbuffered rustls connection
    /// (client or server).
    pub fn new(tcp: TcpStream, tls: impl Into<UnbufferedTls>) -> Self {
        TlsConn {
            tcp,
            tls: RefCell::new(Records::Userspace(UserspaceRecords::new(tls.into()))),
            exact_records: Cell::new(false),
            read_buf: Cell::new(Some(Vec::with_capacity(INITIAL_READ_CHUNK))),
            read_sizer: Cell::new(ReadSizer::default()),
            quiet: Cell::new(false),
            small_reads_are_quiet: Cell::new(false),
            // Grows to what is sent at once.
            write_buf: Cell::new(Some(Vec::new())),
            peer_close_notify: Cell::new(false),
            kernel_sends: Cell::new(KernelSends::default()),
        }
    }

    /// The underlying socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Runs `f` with the rustls connection's state (for inspection:
    /// negotiated version, suite, peer certificates); `None` once the
    /// kernel does the records.
    pub fn with_tls<R>(&self, f: impl FnOnce(&rustls::CommonState) -> R) -> Option<R> {
        match &*self.tls.borrow() {
            Records::Userspace(records) => records.tls().map(|tls| f(tls.common())),
            _ => None,
        }
    }

    /// Takes an established connection's records over from rustls
    /// ([`crate::net::established`]) when `wanted`: `Ok(true)` once done,
    /// `Ok(false)` when the connection stays with rustls or the kernel has
    /// its records. An error means the connection is unusable.
    pub fn take_over_records_if(&self, wanted: bool) -> Result<bool, TlsIoError> {
        match &mut *self.tls.borrow_mut() {
            Records::Userspace(records) if wanted => records
                .take_over()
                .map_err(|e| TlsIoError::Io(io::Error::other(e.to_string()))),
            _ => Ok(false),
        }
    }

    /// Who seals and opens the records: `"kernel"`, `"sstpd"`
    /// ([`TlsConn::take_over_records_if`]) or `"rustls"`.
    pub fn records_owner(&self) -> &'static str {
        match &*self.tls.borrow() {
            Records::Kernel(_) => "kernel",
            Records::Userspace(records) if records.is_taken_over() => "sstpd",
            _ => "rustls",
        }
    }

    /// Whether the kernel does the record layer (kTLS).
    pub fn is_kernel_tls(&self) -> bool {
        matches!(&*self.tls.borrow(), Records::Kernel(_))
    }

    /// Whether the peer has sent its TLS close_notify ([RFC 8446] 6.1):
    /// the clean end of a TLS session, as opposed to a bare TCP FIN.
    pub fn peer_sent_close_notify(&self) -> bool {
        self.peer_close_notify.get()
    }

    /// Queues a TLS 1.3 KeyUpdate that asks the peer to update too
    /// ([RFC 8446] 4.6.3); the next write or flush sends it. Userspace
    /// records only.
    pub fn request_key_update(&self) -> Result<(), TlsIoError> {
        match &mut *self.tls.borrow_mut() {
            Records::Userspace(records) => Ok(records.request_key_update()?),
            _ => Err(TlsIoError::Io(io::Error::other(
                "the kernel does the records; it cannot start a key update",
            ))),
        }
    }

    /// Reads the handshake one TLS record at a time (see
    /// [`TlsConn::offload_to_kernel`]). Call before [`TlsConn::handshake`].
    pub fn read_exact_records_during_handshake(&self) {
        self.exact_records.set(true);
    }

    /// Completes the TLS handshake within `timeout`. Plaintext that arrived
    /// together with the final handshake flight is appended to `early`.
    pub async fn handshake(
        &self,
        timeout: Duration,
        early: &mut Vec<u8>,
    ) -> Result<(), TlsIoError> {
        match tokio::time::timeout(timeout, self.handshake_inner(early)).await {
            Ok(Err(TlsIoError::Tls(e))) => {
                // A protocol error: tell the peer which, with the alert
                // rustls queued (RFC 8446 6.2), as far as the socket takes
                // it at once.
                let flush = tokio::time::timeout(ALERT_FLUSH_TIMEOUT, self.flush_tls()).await;
                if flush.is_err() {
                    // The abandoned write would hold the socket open.
                    let _ = self.tcp.shutdown(std::net::Shutdown::Both);
                }
                Err(TlsIoError::Tls(e))
            }
            Ok(r) => r,
            Err(_) => {
                // The read the timeout abandoned is still in the ring and
                // holds the socket open until it completes: a peer that
                // never sends would keep its descriptor for good. Shutting
                // the socket down completes it and lets the socket close.
                let _ = self.tcp.shutdown(std::net::Shutdown::Both);
                Err(TlsIoError::HandshakeTimeout)
            }
        }
    }

    async fn handshake_inner(&self, early: &mut Vec<u8>) -> Result<(), TlsIoError> {
        loop {
            self.flush_tls().await?;
            let handshaking = match &*self.tls.borrow() {
                Records::Userspace(records) => records.is_handshaking(),
                _ => false,
            };
            if !handshaking {
                self.exact_records.set(false);
                return Ok(());
            }
            let outcome = if self.exact_records.get() {
                self.read_one_record(early).await?
            } else {
                self.read_plaintext(early).await?
            };
            if outcome == ReadOutcome::Closed {
                return Err(TlsIoError::ClosedDuringHandshake);
            }
        }
    }

    /// Reads exactly one TLS record (header, then its length) and opens
    /// it.
    async fn read_one_record(&self, plaintext: &mut Vec<u8>) -> Result<ReadOutcome, TlsIoError> {
        let header_len = crate::tls::ktls::RECORD_HEADER_LEN;
        let mut buf = self.read_buf.take().unwrap_or_default();
        let mut complete = self.read_exact_into(&mut buf, header_len).await;
        if let Ok(true) = complete {
            let mut header = [0u8; 5];
            header.copy_from_slice(&buf[..header_len]);
            let total = crate::tls::ktls::record_len(header);
            complete = self.read_exact_into(&mut buf, total).await;
        }
        let outcome = match complete {
            Ok(true) => self.open(&mut buf, plaintext),
            Ok(false) => Ok(ReadOutcome::Closed),
            Err(e) => Err(e),
        };
        self.read_buf.set(Some(buf));
        outcome
    }

    /// Reads until `buf` holds `len` bytes (no more); `false` on EOF first.
    async fn read_exact_into(&self, buf: &mut Vec<u8>, len: usize) -> Result<bool, TlsIoError> {
        while buf.len() < len {
            buf.reserve_exact(len - buf.len());
            let filled = buf.len();
            let (res, slice) = self.tcp.read(std::mem::take(buf).slice(filled..len)).await;
            *buf = slice.into_inner();
            if res? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Bytes the write buffer holds on to between writes (its capacity).
    pub fn write_buffer_capacity(&self) -> usize {
        let buf = self.write_buf.take();
        let capacity = buf.as_ref().map_or(0, Vec::capacity);
        self.write_buf.set(buf);
        capacity
    }

    /// Gives the write buffer back (a quiet connection): the next write
    /// allocates one again. A write in flight has taken it already and is
    /// not disturbed.
    pub fn release_write_buffer(&self) {
        self.write_buf.set(Some(Vec::new()));
    }

    /// Whether TLS output (alerts, handshake or post-handshake messages)
    /// waits for [`TlsConn::flush_tls`].
    pub fn wants_flush(&self) -> bool {
        matches!(&*self.tls.borrow(), Records::Userspace(records) if records.has_output())
    }

    /// Performs one socket read, decrypts it and appends the plaintext to
    /// `plaintext`. Must be called from one task at a time.
    pub async fn read_plaintext(&self, plaintext: &mut Vec<u8>) -> Result<ReadOutcome, TlsIoError> {
        let mut buf = self
            .read_buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        let started = std::time::Instant::now();
        if self.quiet.get() && buf.is_empty() {
            // A quiet connection waits for data holding no buffer: a read
            // in flight pins its buffer for as long as the peer is silent,
            // which for 100,000 idle sessions is 100,000 buffers. The read
            // that follows finds the data there and completes at once.
            drop(buf);
            let ready = readable(self.tcp_fd()).await;
            buf = Vec::with_capacity(IDLE_READ_CHUNK);
            if let Err(e) = ready {
                self.read_buf.set(Some(buf));
                return Err(TlsIoError::Io(e));
            }
        }
        // The start of a record read last time stays in front.
        let kept = buf.len();
        if kept == buf.capacity() {
            buf.reserve_exact(READ_CHUNK.max(kept + 1) - kept);
        }
        let room = buf.capacity() - kept;
        let (res, slice) = self.tcp.read(buf.slice(kept..)).await;
        let mut buf = slice.into_inner();
        let read = res.as_ref().ok().copied();
        let kernel = self.is_kernel_tls();
        let outcome = match res {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(n) if kernel => {
                // The kernel decrypted it: application data as is.
                plaintext.extend_from_slice(&buf[kept..kept + n]);
                buf.clear();
                Ok(ReadOutcome::Data(n))
            }
            Ok(_) => self.open(&mut buf, plaintext),
            // kTLS reports a non-data record as EIO on a plain read.
            Err(e) if kernel && e.raw_os_error() == Some(libc::EIO) => self.kernel_control_record(),
            Err(e) => Err(TlsIoError::Io(e)),
        };
        let buf = self.next_read_buffer(buf, room, read);
        self.read_buf.set(Some(buf));
        let small = read.is_some_and(|n| n <= IDLE_READ_CHUNK / 2);
        self.quiet
            .set((small && self.small_reads_are_quiet.get()) || started.elapsed() >= QUIET_AFTER);
        outcome
    }

    /// The buffer for the next read, sized by [`ReadSizer`]; what it holds
    /// (the start of a record) is kept.
    fn next_read_buffer(&self, mut buf: Vec<u8>, room: usize, read: Option<usize>) -> Vec<u8> {
        let mut sizer = self.read_sizer.get();
        let resize = sizer.after_read(buf.capacity(), room, read);
        self.read_sizer.set(sizer);
        match resize {
            Resize::Keep => buf,
            Resize::Grow => {
                buf.reserve_exact(READ_CHUNK.saturating_sub(buf.len()));
                buf
            }
            Resize::Shrink => {
                let mut small = Vec::with_capacity(IDLE_READ_CHUNK.max(buf.len() + 1));
                small.extend_from_slice(&buf);
                small
            }
        }
    }

    /// Opens the complete records in `ciphertext` (removing them; the start
    /// of a record still on its way stays) and appends their plaintext.
    fn open(
        &self,
        ciphertext: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
    ) -> Result<ReadOutcome, TlsIoError> {
        let before = plaintext.len();
        let mut records = self.tls.borrow_mut();
        let Records::Userspace(records) = &mut *records else {
            return Err(TlsIoError::Io(io::Error::other(
                "TLS record layer not in userspace",
            )));
        };
        // On an error, the alert that names it waits for the caller's
        // flush.
        let opened = records.open(ciphertext, plaintext)?;
        if opened.peer_closed {
            self.peer_close_notify.set(true);
        }
        let got = plaintext.len() - before;
        if opened.peer_closed && got == 0 {
            Ok(ReadOutcome::Closed)
        } else {
            Ok(ReadOutcome::Data(got))
        }
    }

    /// Encrypts `plaintext` and writes it, together with any waiting TLS
    /// output, in one submission (one per [`WRITE_BATCH`] of ciphertext).
    pub async fn write_plaintext(&self, plaintext: &[u8]) -> Result<(), TlsIoError> {
        if self.is_kernel_tls() {
            return self.write_kernel(plaintext).await;
        }
        self.write_plaintext_units(std::iter::once(plaintext)).await
    }

    /// Encrypts each unit as its own TLS record(s) straight into the write
    /// buffer and writes them in one submission (one per [`WRITE_BATCH`]
    /// of ciphertext). The server sends one SSTP packet per record this
    /// way, which sstp-client needs (see [`crate::proto::sstp::transmit`]).
    ///
    /// With kernel TLS every send call becomes its own record(s): each unit
    /// is one send, in order, back to back (`write_kernel_units`).
    pub async fn write_plaintext_units<'a>(
        &self,
        units: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), TlsIoError> {
        if self.is_kernel_tls() {
            return self.write_kernel_units(units.into_iter()).await;
        }
        let mut out = Outgoing::reuse(self.write_buf.take().unwrap_or_default());
        for unit in units {
            for piece in unit.chunks(WRITE_BATCH) {
                {
                    let mut records = self.tls.borrow_mut();
                    let Records::Userspace(records) = &mut *records else {
                        return Err(TlsIoError::Io(io::ErrorKind::NotConnected.into()));
                    };
                    records.seal(piece, &mut out)?;
                }
                if out.len() >= WRITE_BATCH {
                    out = self.send(out).await?;
                }
            }
        }
        self.flush_into(out).await
    }

    /// Writes whatever TLS output waits (handshake flights, alerts,
    /// post-handshake messages).
    pub async fn flush_tls(&self) -> Result<(), TlsIoError> {
        let out = Outgoing::reuse(self.write_buf.take().unwrap_or_default());
        self.flush_into(out).await
    }

    /// Adds the waiting TLS output to `out`, writes it all, and keeps the
    /// buffer for the next write.
    async fn flush_into(&self, mut out: Outgoing) -> Result<(), TlsIoError> {
        if let Records::Userspace(records) = &mut *self.tls.borrow_mut() {
            records.take_output(&mut out);
        }
        if !out.is_empty() {
            out = self.send(out).await?;
        }
        self.write_buf.set(Some(out.into_parts().0));
        Ok(())
    }

    /// One awaited write of the sealed records; the emptied buffer back.
    async fn send(&self, out: Outgoing) -> Result<Outgoing, TlsIoError> {
        let (bytes, filled) = out.into_parts();
        let (res, slice) = self.tcp.write_all(bytes.slice(..filled)).await;
        let bytes = slice.into_inner();
        match res {
            Ok(()) => Ok(Outgoing::reuse(bytes)),
            Err(e) => {
                self.write_buf.set(Some(bytes));
                Err(TlsIoError::Io(e))
            }
        }
    }

    /// Sends a TLS close_notify and shuts the TCP write side. A peer that
    /// has already gone (reset, not connected, broken pipe) is not an error:
    /// the connection is closed either way.
    ///
    /// With kernel TLS a full socket makes the close_notify wait for room
    /// (through the ring), not vanish: the caller bounds the wait (the
    /// session writer's linger shuts the socket down, which ends it).
    pub async fn close(&self) -> Result<(), TlsIoError> {
        let mut out = Outgoing::reuse(self.write_buf.take().unwrap_or_default());
        let kernel = match &mut *self.tls.borrow_mut() {
            Records::Userspace(records) => {
                records.close_notify(&mut out);
                false
            }
            Records::Kernel(_) => true,
            Records::Switching => false,
        };
        let flushed = if kernel {
            self.write_buf.set(Some(out.into_parts().0));
            self.kernel_close_notify().await
        } else {
            self.flush_into(out).await
        };
        let shut = self
            .tcp
            .shutdown(std::net::Shutdown::Write)
            .map_err(TlsIoError::Io);
        match flushed.and(shut) {
            Err(TlsIoError::Io(e)) if peer_already_gone(&e) => Ok(()),
            other => other,
        }
    }
}

/// Whether an IO error only says that the peer has already closed.
pub fn peer_already_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// What happened when a connection was offered to kernel TLS.
#[derive(Debug)]
pub enum Offload {
    /// The kernel does the records now; process this plaintext (decrypted
    /// by rustls before the switch) before the next read.
    Kernel { early_plaintext: Vec<u8> },
    /// The kernel refused before anything changed: rustls carries on.
    StayedInUserspace(crate::tls::ktls::KtlsError),
}

impl TlsConn {
    /// Whether the last read waited long for data (or was small, see
    /// [`Self::small_reads_are_quiet`]), so that the next one waits without
    /// holding a buffer.
    pub fn is_quiet(&self) -> bool {
        self.quiet.get()
    }

    /// Makes the next read wait for data without holding a buffer, as after
    /// a quiet read: for a connection whose owner knows it goes idle now
    /// (a client session that has just come up).
    pub fn mark_quiet(&self) {
        self.quiet.set(true);
    }

    /// Whether a small read (at most half of [`IDLE_READ_CHUNK`]) marks the
    /// connection quiet too, off by default. Sessions turn it on once they
    /// are up, for their keepalives, and off once they carry IP
    /// (`session_io::QuietReads`): a quiet read costs a poll before the
    /// read, which a packet-by-packet exchange would pay on every packet
    /// (`latency` p50 190 to 230 µs when it did), and a setup on every
    /// answer (six polls a session).
    pub fn small_reads_are_quiet(&self, on: bool) {
        self.small_reads_are_quiet.set(on);
    }

    fn tcp_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.tcp)
    }

    /// Hands an established server connection to kernel TLS
    /// ([`crate::tls::ktls::enable`]). The handshake must have been read
    /// record by record ([`TlsConn::read_exact_records_during_handshake`])
    /// and all TLS output flushed. An error means the connection is
    /// unusable (the secrets left rustls but the kernel refused them).
    pub fn offload_to_kernel(&self) -> Result<Offload, TlsIoError> {
        let records = std::mem::replace(&mut *self.tls.borrow_mut(), Records::Switching);
        let records = match records {
            Records::Userspace(records)
                if matches!(records.tls(), Some(UnbufferedTls::Server(_))) =>
            {
                records
            }
            other => {
                *self.tls.borrow_mut() = other;
                return Err(TlsIoError::Io(io::Error::other(
                    "only server connections are offloaded",
                )));
            }
        };
        if let Some(refusal) = self.userspace_only(&records) {
            *self.tls.borrow_mut() = Records::Userspace(records);
            return Ok(Offload::StayedInUserspace(refusal));
        }
        let Some(UnbufferedTls::Server(conn)) = records.into_tls() else {
            unreachable!("checked above");
        };
        match crate::tls::ktls::enable(self.tcp_fd(), conn) {
            Ok(enabled) => {
                *self.tls.borrow_mut() = Records::Kernel(KernelRecords {
                    version: enabled.version,
                    records_sent: 0,
                });
                Ok(Offload::Kernel {
                    early_plaintext: enabled.early_plaintext,
                })
            }
            Err(failure) => match failure.connection {
                Some(conn) => {
                    *self.tls.borrow_mut() =
                        Records::Userspace(UserspaceRecords::new(UnbufferedTls::Server(*conn)));
                    Ok(Offload::StayedInUserspace(failure.error))
                }
                None => Err(TlsIoError::Io(io::Error::other(format!(
                    "kernel TLS setup failed after the switch: {}",
                    failure.error.as_str()
                )))),
            },
        }
    }

    /// Why the connection cannot move to the kernel as it stands, for what
    /// only this side knows: the peer's close, TLS output not yet written,
    /// received bytes rustls has not finished with (the kernel would never
    /// see them).
    fn userspace_only(&self, records: &UserspaceRecords) -> Option<crate::tls::ktls::KtlsError> {
        use crate::tls::ktls::KtlsError;
        if self.peer_close_notify.get() {
            return Some(KtlsError::PeerClosed);
        }
        if records.has_output() {
            return Some(KtlsError::PendingOutput);
        }
        if records.has_failed() {
            return Some(KtlsError::Tls(rustls::Error::General(
                "the connection failed".into(),
            )));
        }
        let buf = self.read_buf.take();
        let partial_record = buf.as_ref().is_some_and(|buf| !buf.is_empty());
        self.read_buf.set(buf);
        if partial_record || records.holds_input() {
            return Some(KtlsError::Tls(rustls::Error::General(
                "bytes past the last complete record were read".into(),
            )));
        }
        None
    }

    /// What the kernel TLS send path did since the last call (zero in
    /// userspace), for the worker's counters.
    pub fn take_kernel_sends(&self) -> KernelSends {
        self.kernel_sends.take()
    }

    fn count_kernel_sends(&self, batches: u64, packets: u64) {
        let mut sends = self.kernel_sends.get();
        sends.batches += batches;
        sends.packets += packets;
        self.kernel_sends.set(sends);
    }

    /// Counts `records` against [`KERNEL_RECORD_LIMIT`].
    fn account_kernel_records(&self, records: u64) -> Result<(), TlsIoError> {
        if let Records::Kernel(k) = &mut *self.tls.borrow_mut() {
            k.records_sent += records;
            if k.records_sent >= KERNEL_RECORD_LIMIT {
                return Err(TlsIoError::Io(io::Error::other(
                    "kernel TLS record limit reached; the client must reconnect",
                )));
            }
        }
        Ok(())
    }

    /// Kernel TLS, several units at once, one record each, in order.
    ///
    /// Units of at most one record's plaintext go out as chains of linked
    /// sends, one io_uring submission each (`ktls_batch`: a send that
    /// finds the socket full waits for room, the rest of the chain behind
    /// it). A chain whose last send was taken in part leaves the rest of
    /// it to an awaited io_uring write; a failed send ends the connection. Where the private ring
    /// is unavailable or busy, each unit is one non-blocking `send(2)`,
    /// back to back, and a unit the full socket does not take goes through
    /// an awaited write; the kernel takes such a send whole or not at all,
    /// so a packet is never split. A larger unit (never an SSTP packet,
    /// which is at most 4 KiB) is written alone; the kernel splits it into
    /// records in order.
    async fn write_kernel_units<'a>(
        &self,
        units: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), TlsIoError> {
        use crate::net::ktls_batch::{send_chain, ChainError, ChainSent, Fallback, MAX_CHAIN};
        let fd = self.tcp_fd();
        let units: Vec<&[u8]> = units.filter(|unit| !unit.is_empty()).collect();
        let mut at = 0;
        while at < units.len() {
            if units[at].len() > MAX_RECORD_PLAINTEXT {
                self.write_kernel(units[at]).await?;
                self.count_kernel_sends(1, 1);
                at += 1;
                continue;
            }
            let chain_len = units[at..]
                .iter()
                .take(MAX_CHAIN)
                .take_while(|unit| unit.len() <= MAX_RECORD_PLAINTEXT)
                .count();
            let chain = &units[at..at + chain_len];
            at += chain_len;
            self.account_kernel_records(chain_len as u64)?;
            let (unit, sent) = match send_chain(fd, chain).await {
                Ok(ChainSent::Whole) => {
                    self.count_kernel_sends(1, chain_len as u64);
                    continue;
                }
                Ok(ChainSent::Broken { unit, sent }) => {
                    self.count_kernel_fallback(|f| f.chain_broken += 1);
                    self.count_kernel_sends(1, unit as u64);
                    (unit, sent)
                }
                Err(ChainError::Fallback(reason)) => {
                    self.count_kernel_fallback(|f| match reason {
                        Fallback::RingUnavailable => f.ring_unavailable += 1,
                        Fallback::RingBusy => f.ring_busy += 1,
                    });
                    self.write_kernel_units_now(fd, chain).await?;
                    continue;
                }
                Err(ChainError::Io(e)) => return Err(TlsIoError::Io(e)),
                Err(ChainError::Split { unit }) => {
                    self.count_kernel_fallback(|f| f.chain_broken += 1);
                    return Err(TlsIoError::Io(io::Error::other(format!(
                        "kernel TLS took packet {unit} of a chain in part and sent the next"
                    ))));
                }
            };
            self.write_kernel_bytes(&chain[unit][sent..]).await?;
            self.count_kernel_sends(1, 1);
            for rest in &chain[unit + 1..] {
                self.write_kernel_bytes(rest).await?;
                self.count_kernel_sends(1, 1);
            }
        }
        Ok(())
    }

    /// The fallback of [`Self::write_kernel_units`]: each unit (at most one
    /// record's plaintext, already counted against the record limit) is
    /// one non-blocking `send(2)`, back to back; a unit the full socket
    /// does not take goes through an awaited write, and the rest resumes
    /// after it.
    ///
    /// `sendmmsg(2)` would make it one system call, but Linux (6.1) kTLS
    /// refuses it: it passes `MSG_BATCH`, which `tls_sw_sendmsg` answers
    /// with `EOPNOTSUPP`.
    async fn write_kernel_units_now(
        &self,
        fd: std::os::fd::RawFd,
        units: &[&[u8]],
    ) -> Result<(), TlsIoError> {
        // Packets sent back to back since the last wait.
        let mut run = 0u64;
        for &unit in units {
            match send_record_now(fd, unit) {
                Ok(sent) if sent == unit.len() => run += 1,
                Ok(sent) => {
                    // Not seen from kTLS below one record's size; the rest
                    // still goes before anything else.
                    run += 1;
                    self.end_kernel_run(&mut run);
                    self.write_kernel_bytes(&unit[sent..]).await?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.end_kernel_run(&mut run);
                    self.write_kernel_bytes(unit).await?;
                    self.count_kernel_sends(1, 1);
                }
                Err(e) => {
                    self.end_kernel_run(&mut run);
                    return Err(TlsIoError::Io(e));
                }
            }
        }
        self.end_kernel_run(&mut run);
        Ok(())
    }

    fn count_kernel_fallback(&self, count: impl FnOnce(&mut KernelSendFallbacks)) {
        let mut sends = self.kernel_sends.get();
        count(&mut sends.fallbacks);
        self.kernel_sends.set(sends);
    }

    /// Counts a run of packets sent back to back as one batch.
    fn end_kernel_run(&self, run: &mut u64) {
        if *run > 0 {
            self.count_kernel_sends(1, *run);
            *run = 0;
        }
    }

    /// Kernel TLS: the socket takes plaintext; the kernel makes records.
    async fn write_kernel(&self, plaintext: &[u8]) -> Result<(), TlsIoError> {
        if plaintext.is_empty() {
            return Ok(());
        }
        self.account_kernel_records(plaintext.len().div_ceil(MAX_RECORD_PLAINTEXT) as u64)?;
        self.write_kernel_bytes(plaintext).await
    }

    /// One awaited io_uring write of plaintext to the kernel TLS socket.
    async fn write_kernel_bytes(&self, plaintext: &[u8]) -> Result<(), TlsIoError> {
        let mut buf = self.write_buf.take().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(plaintext);
        let (res, returned) = self.tcp.write_all(buf).await;
        self.write_buf.set(Some(returned));
        res.map_err(TlsIoError::Io)
    }

    /// Kernel TLS: sends the close_notify alert, waiting for room in the
    /// socket as long as it takes nothing.
    async fn kernel_close_notify(&self) -> Result<(), TlsIoError> {
        loop {
            match kernel_send_close_notify(self.tcp_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    writable(self.tcp_fd()).await.map_err(TlsIoError::Io)?
                }
                other => return other.map_err(TlsIoError::Io),
            }
        }
    }

    /// Kernel TLS returned EIO: the next record is not application data.
    /// Read it with its record type and decide.
    fn kernel_control_record(&self) -> Result<ReadOutcome, TlsIoError> {
        use crate::tls::ktls::{control_record_action, ControlAction};
        let version = match &*self.tls.borrow() {
            Records::Kernel(k) => k.version,
            _ => return Err(TlsIoError::Io(io::Error::from_raw_os_error(libc::EIO))),
        };
        let (record_type, payload) = recv_control_record(self.tcp_fd()).map_err(TlsIoError::Io)?;
        match control_record_action(version, record_type, &payload) {
            ControlAction::PeerClosed => {
                self.peer_close_notify.set(true);
                Ok(ReadOutcome::Closed)
            }
            ControlAction::Ignore => Ok(ReadOutcome::Data(0)),
            action => Err(TlsIoError::KernelRecord(action)),
        }
    }
}

/// One non-blocking `send(2)` of `record`: on a kernel TLS socket, one
/// record. `WouldBlock` when the socket takes nothing now.
fn send_record_now(fd: std::os::fd::RawFd, record: &[u8]) -> io::Result<usize> {
    // SAFETY: a live buffer of the stated length, only read; non-blocking,
    // so it never stalls the worker.
    let sent = unsafe {
        libc::send(
            fd,
            record.as_ptr().cast(),
            record.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// `recvmsg` of one non-data record with its `TLS_GET_RECORD_TYPE`
/// control message (the kernel has it queued: it just reported EIO).
fn recv_control_record(fd: std::os::fd::RawFd) -> io::Result<(u8, Vec<u8>)> {
    let mut payload = vec![0u8; 16 * 1024 + 256];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr points at live buffers of the stated sizes.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: valid fd and msghdr; non-blocking so it never stalls the worker.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    payload.truncate(n as usize);
    // SAFETY: walking the control buffer the kernel filled, with the libc
    // CMSG helpers bounded by msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_TLS
            && header.cmsg_type == crate::tls::ktls::TLS_GET_RECORD_TYPE
        {
            let record_type = unsafe { *libc::CMSG_DATA(cmsg) };
            return Ok((record_type, payload));
        }
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Err(io::Error::other("kernel TLS: record without a type"))
}

/// Waits, through the ring, until `fd` can take more (`POLLOUT`), or has
/// an error or hang-up to report (which the next send returns).
async fn writable(fd: std::os::fd::RawFd) -> io::Result<()> {
    poll(fd, libc::POLLOUT).await
}

/// Waits, through the ring, until `fd` has data (`POLLIN`), or an error or
/// hang-up to report (which the next read returns).
async fn readable(fd: std::os::fd::RawFd) -> io::Result<()> {
    poll(fd, libc::POLLIN).await
}

/// One `IORING_OP_POLL_ADD` of `events` on `fd`.
async fn poll(fd: std::os::fd::RawFd, events: libc::c_short) -> io::Result<()> {
    struct PollDone;
    impl tokio_uring::OneshotOutputTransform for PollDone {
        type Output = io::Result<()>;
        type StoredData = ();
        fn transform_oneshot_output(self, (): (), cqe: io_uring::cqueue::Entry) -> io::Result<()> {
            match cqe.result() {
                res if res < 0 => Err(io::Error::from_raw_os_error(-res)),
                _ => Ok(()),
            }
        }
    }
    let poll = io_uring::opcode::PollAdd::new(io_uring::types::Fd(fd), events as u32);
    tokio_uring::UnsubmittedOneshot::new((), PollDone, poll.build())
        .submit()
        .await
}

/// Sends a TLS close_notify alert through kernel TLS (a `sendmsg` whose
/// `TLS_SET_RECORD_TYPE` control message says "alert").
fn kernel_send_close_notify(fd: std::os::fd::RawFd) -> io::Result<()> {
    const ALERT: u8 = 21;
    let mut alert = [1u8, 0]; // warning, close_notify
    let mut iov = libc::iovec {
        iov_base: alert.as_mut_ptr().cast(),
        iov_len: alert.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr and control buffer are live and sized; CMSG helpers
    // stay within msg_controllen.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = crate::tls::ktls::TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = ALERT;
        if libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_grows_with_traffic_and_shrinks_when_quiet() {
        let mut sizer = ReadSizer::default();
        // The handshake's reads: small, but not yet enough of them.
        for _ in 0..SHRINK_AFTER_SMALL_READS - 1 {
            assert_eq!(
                sizer.after_read(INITIAL_READ_CHUNK, INITIAL_READ_CHUNK, Some(300)),
                Resize::Keep
            );
        }
        assert_eq!(
            sizer.after_read(INITIAL_READ_CHUNK, INITIAL_READ_CHUNK, Some(300)),
            Resize::Shrink
        );
        // Idle at the small size: nothing changes.
        for _ in 0..10 {
            assert_eq!(
                sizer.after_read(IDLE_READ_CHUNK, IDLE_READ_CHUNK, Some(80)),
                Resize::Keep
            );
        }
        // Traffic fills it: the full size.
        assert_eq!(
            sizer.after_read(IDLE_READ_CHUNK, IDLE_READ_CHUNK, Some(IDLE_READ_CHUNK)),
            Resize::Grow
        );
        assert_eq!(
            sizer.after_read(READ_CHUNK, READ_CHUNK, Some(READ_CHUNK)),
            Resize::Keep
        );
        // Medium reads keep it; a failed read resets the count.
        assert_eq!(
            sizer.after_read(READ_CHUNK, READ_CHUNK, Some(9000)),
            Resize::Keep
        );
        for _ in 0..SHRINK_AFTER_SMALL_READS - 1 {
            assert_eq!(
                sizer.after_read(READ_CHUNK, READ_CHUNK, Some(100)),
                Resize::Keep
            );
        }
        assert_eq!(sizer.after_read(READ_CHUNK, READ_CHUNK, None), Resize::Keep);
        // Once grown, it takes many more small reads to shrink.
        for _ in 0..SHRINK_BUSY_AFTER_SMALL_READS - 1 {
            assert_eq!(
                sizer.after_read(READ_CHUNK, READ_CHUNK, Some(100)),
                Resize::Keep
            );
        }
        assert_eq!(
            sizer.after_read(READ_CHUNK, READ_CHUNK, Some(100)),
            Resize::Shrink
        );
        assert_eq!(sizer.small_reads, 0);
    }
}
