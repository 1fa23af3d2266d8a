//! rustls driven by hand over tokio-uring's owned buffers.
//!
//! tokio-uring hands buffers to the kernel and back, so the usual
//! `AsyncRead`/`AsyncWrite` TLS wrappers do not apply. [`TlsConn`] keeps the
//! rustls state machine next to the socket and exposes the two operations a
//! session needs, each usable from its own task:
//!
//! * [`TlsConn::read_plaintext`]: one socket read, decrypted and appended to
//!   the caller's plaintext buffer;
//! * [`TlsConn::write_plaintext`]: encrypt a batch of plaintext (several SSTP
//!   packets at once become as few TLS records as rustls allows) and write it
//!   in one submission.
//!
//! A session runs a reader task and a writer task concurrently. They share
//! the connection through `Rc`; the rustls state is only borrowed
//! synchronously, never across an `.await`. A tokio-uring read future must
//! never be dropped while in flight (its completion would be lost), which is
//! why reading lives in a task of its own instead of a `select!`.

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Duration;

use rustls::Connection;
use tokio_uring::net::TcpStream;

/// Size of one socket read once a connection carries traffic. Large enough
/// for several full TLS records.
pub const READ_CHUNK: usize = 64 * 1024;
/// Size of the first reads: one full TLS record (2^14 plus overhead). A
/// read that fills it grows the buffer to [`READ_CHUNK`]; idle connections
/// (most of them, at 100,000 sessions) never do.
pub const INITIAL_READ_CHUNK: usize = 17 * 1024;

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Plaintext bytes appended to the caller's buffer (possibly zero, e.g.
    /// for a record that carried only a TLS control message).
    Data(usize),
    /// The peer closed the connection (TLS close_notify or TCP FIN).
    Closed,
}

/// A TLS connection on a tokio-uring TCP socket.
pub struct TlsConn {
    tcp: TcpStream,
    tls: RefCell<Connection>,
    /// Reusable ciphertext read buffer (moved into the kernel during a read).
    read_buf: Cell<Option<Vec<u8>>>,
    /// Reusable ciphertext write buffer.
    write_buf: Cell<Option<Vec<u8>>>,
    /// Set when rustls has produced output the writer has not sent yet
    /// (alerts, post-handshake messages).
    pending_tls_output: Cell<bool>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").finish_non_exhaustive()
    }
}

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
}

impl TlsIoError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            TlsIoError::Io(_) => "io_error",
            TlsIoError::Tls(_) => "tls_error",
            TlsIoError::HandshakeTimeout => "tls_handshake_timeout",
            TlsIoError::ClosedDuringHandshake => "tls_closed_during_handshake",
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

impl TlsConn {
    /// Wraps a connected socket and a fresh rustls connection (client or
    /// server).
    pub fn new(tcp: TcpStream, tls: Connection) -> Self {
        TlsConn {
            tcp,
            tls: RefCell::new(tls),
            read_buf: Cell::new(Some(Vec::with_capacity(INITIAL_READ_CHUNK))),
            // Grows to what rustls has to send at once.
            write_buf: Cell::new(Some(Vec::new())),
            pending_tls_output: Cell::new(false),
        }
    }

    /// The underlying socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Runs `f` with the rustls connection (for inspection: negotiated
    /// version, suite, peer certificates).
    pub fn with_tls<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&self.tls.borrow())
    }

    /// Completes the TLS handshake within `timeout`. Plaintext that arrived
    /// together with the final handshake flight is appended to `early`.
    pub async fn handshake(
        &self,
        timeout: Duration,
        early: &mut Vec<u8>,
    ) -> Result<(), TlsIoError> {
        match tokio::time::timeout(timeout, self.handshake_inner(early)).await {
            Ok(r) => r,
            Err(_) => Err(TlsIoError::HandshakeTimeout),
        }
    }

    async fn handshake_inner(&self, early: &mut Vec<u8>) -> Result<(), TlsIoError> {
        loop {
            self.flush_tls().await?;
            if !self.tls.borrow().is_handshaking() {
                return Ok(());
            }
            match self.read_plaintext(early).await? {
                ReadOutcome::Closed => return Err(TlsIoError::ClosedDuringHandshake),
                ReadOutcome::Data(_) => {}
            }
        }
    }

    /// Whether rustls has queued TLS output (alerts, handshake or
    /// post-handshake messages) that [`TlsConn::flush_tls`] should send.
    pub fn wants_flush(&self) -> bool {
        self.pending_tls_output.get() || self.tls.borrow().wants_write()
    }

    /// Performs one socket read, decrypts it and appends the plaintext to
    /// `plaintext`. Must be called from one task at a time.
    pub async fn read_plaintext(&self, plaintext: &mut Vec<u8>) -> Result<ReadOutcome, TlsIoError> {
        let mut buf = self
            .read_buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        buf.clear();
        let (res, mut buf) = self.tcp.read(buf).await;
        let filled = matches!(res, Ok(n) if n == buf.capacity());
        let outcome = match res {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(n) => self.absorb(&buf[..n], plaintext),
            Err(e) => Err(TlsIoError::Io(e)),
        };
        if filled && buf.capacity() < READ_CHUNK {
            // The socket had more than fits: traffic, not keepalives.
            buf.clear();
            buf.reserve_exact(READ_CHUNK);
        }
        self.read_buf.set(Some(buf));
        outcome
    }

    /// Feeds received ciphertext to rustls and drains the plaintext.
    fn absorb(
        &self,
        mut ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<ReadOutcome, TlsIoError> {
        let before = plaintext.len();
        let mut tls = self.tls.borrow_mut();
        let mut peer_closed = false;
        while !ciphertext.is_empty() {
            // read_tls takes what fits in rustls' buffer; loop until all of
            // this read has been consumed.
            tls.read_tls(&mut ciphertext)?;
            let state = tls.process_new_packets()?;
            let available = state.plaintext_bytes_to_read();
            if available > 0 {
                let start = plaintext.len();
                plaintext.resize(start + available, 0);
                let mut reader = tls.reader();
                let n = io::Read::read(&mut reader, &mut plaintext[start..])?;
                plaintext.truncate(start + n);
            }
            if state.peer_has_closed() {
                peer_closed = true;
                break;
            }
        }
        if tls.wants_write() {
            self.pending_tls_output.set(true);
        }
        let got = plaintext.len() - before;
        if peer_closed && got == 0 {
            Ok(ReadOutcome::Closed)
        } else {
            Ok(ReadOutcome::Data(got))
        }
    }

    /// Encrypts `plaintext` and writes it, together with any TLS output
    /// rustls has queued, in one submission.
    ///
    /// rustls bounds its unsent TLS output (64 KiB by default, which keeps
    /// per-session memory small); when it stops accepting plaintext the
    /// records so far are written out before the rest is encrypted.
    pub async fn write_plaintext(&self, plaintext: &[u8]) -> Result<(), TlsIoError> {
        let mut rest = plaintext;
        let mut refused_after_flush = false;
        while !rest.is_empty() {
            let accepted = io::Write::write(&mut self.tls.borrow_mut().writer(), rest)?;
            rest = &rest[accepted..];
            if accepted == 0 {
                if refused_after_flush {
                    // Nothing is buffered and rustls still refuses: the
                    // connection no longer takes application data.
                    return Err(TlsIoError::Io(io::ErrorKind::WriteZero.into()));
                }
                refused_after_flush = true;
            } else {
                refused_after_flush = false;
            }
            if !rest.is_empty() {
                self.flush_tls().await?;
            }
        }
        self.flush_tls().await
    }

    /// Writes whatever TLS output rustls has queued.
    pub async fn flush_tls(&self) -> Result<(), TlsIoError> {
        let mut buf = self
            .write_buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        loop {
            buf.clear();
            {
                let mut tls = self.tls.borrow_mut();
                while tls.wants_write() {
                    tls.write_tls(&mut buf)?;
                }
                self.pending_tls_output.set(false);
            }
            if buf.is_empty() {
                break;
            }
            let (res, returned) = self.tcp.write_all(buf).await;
            buf = returned;
            if let Err(e) = res {
                self.write_buf.set(Some(buf));
                return Err(TlsIoError::Io(e));
            }
        }
        self.write_buf.set(Some(buf));
        Ok(())
    }

    /// Sends a TLS close_notify and shuts the TCP write side. A peer that
    /// has already gone (reset, not connected, broken pipe) is not an error:
    /// the connection is closed either way.
    pub async fn close(&self) -> Result<(), TlsIoError> {
        self.tls.borrow_mut().send_close_notify();
        let flushed = self.flush_tls().await;
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
