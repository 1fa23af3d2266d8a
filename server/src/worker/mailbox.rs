//! Cross-worker wakeups and mailboxes.
//!
//! Each worker runs its own tokio-uring runtime and sleeps in `io_uring_enter`.
//! Another worker that hands it packets must wake it through something the
//! ring can wait on: an eventfd, read with an io_uring read.
//!
//! * [`Wakeup`]: the eventfd plus an "armed" flag. [`Wakeup::notify`] may be
//!   called from any thread; a burst of notifies before the receiver runs
//!   costs one `write(2)`.
//! * [`WakeupListener`]: the receiving end, one per `Wakeup`, living on the
//!   receiving worker's tokio-uring runtime for the worker's whole life.
//! * [`Mailbox`] / [`MailboxSender`]: a bounded crossbeam channel of batches
//!   plus a `Wakeup`. A full mailbox drops the batch and counts it instead of
//!   blocking the sending worker. Beside it, a control lane for messages that
//!   must never be dropped ([`MailboxSender::send_control`]): unbounded, for
//!   messages bounded by what they answer (one authentication answer per
//!   request, one shutdown), and drained before the batches.
//!
//! The protocol: a sender pushes into the channel, then `notify`s, which
//! writes the eventfd only if it flips `armed` from false to true. The
//! listener's read completes, it flips `armed` back to false, and only then
//! does the caller drain the channel. A sender that pushed after the drain
//! began either saw `armed == false` and wrote the eventfd (the next wait
//! returns at once), or its item is seen by the drain; no wakeup is lost.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::metrics::Event;

/// The shared half of a wakeup: the eventfd, the armed flag, counters.
struct WakeupShared {
    eventfd: File,
    armed: AtomicBool,
    listener_taken: AtomicBool,
    notify_calls: AtomicU64,
    eventfd_writes: AtomicU64,
}

/// A wakeup that any thread can trigger and one tokio-uring task waits for.
///
/// Cloning is cheap (an `Arc`); all clones trigger the same listener.
#[derive(Clone)]
pub struct Wakeup {
    shared: Arc<WakeupShared>,
}

impl fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeup")
            .field("armed", &self.shared.armed.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

/// Counters of a [`Wakeup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeupStats {
    /// Calls to [`Wakeup::notify`].
    pub notify_calls: u64,
    /// Of those, the ones that wrote the eventfd (the rest were coalesced).
    pub eventfd_writes: u64,
}

impl Wakeup {
    /// A new eventfd-backed wakeup.
    ///
    /// The eventfd is blocking on purpose: io_uring completes a read of a
    /// blocking eventfd when it is written to, whereas an `O_NONBLOCK` one
    /// would complete at once with `EAGAIN`. Writes never block: the
    /// counter only grows by one per armed period.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let eventfd = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Wakeup {
            shared: Arc::new(WakeupShared {
                eventfd,
                armed: AtomicBool::new(false),
                listener_taken: AtomicBool::new(false),
                notify_calls: AtomicU64::new(0),
                eventfd_writes: AtomicU64::new(0),
            }),
        })
    }

    /// Wakes the listener. Callable from any thread; a notify while the
    /// listener has not yet consumed the previous one costs no syscall.
    pub fn notify(&self) {
        let shared = &*self.shared;
        shared.notify_calls.fetch_add(1, Ordering::Relaxed);
        // AcqRel: whatever the caller published before notify (a channel
        // push) is visible to the listener that swaps `armed` back to false.
        if shared.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        shared.eventfd_writes.fetch_add(1, Ordering::Relaxed);
        loop {
            match (&shared.eventfd).write(&1u64.to_ne_bytes()) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Cannot happen for a valid eventfd; disarm so the next
                    // notify tries again instead of relying on this one.
                    tracing::error!(error = %e, "eventfd write failed");
                    shared.armed.store(false, Ordering::Release);
                    return;
                }
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> WakeupStats {
        WakeupStats {
            notify_calls: self.shared.notify_calls.load(Ordering::Relaxed),
            eventfd_writes: self.shared.eventfd_writes.load(Ordering::Relaxed),
        }
    }

    /// The listener for this wakeup. There is exactly one per `Wakeup`: a
    /// second call fails with `AlreadyExists`. Create it on the thread that
    /// runs the receiving tokio-uring runtime and keep it for the runtime's
    /// whole life (see [`WakeupListener`]).
    pub fn listener(&self) -> io::Result<WakeupListener> {
        if self.shared.listener_taken.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this wakeup already has a listener",
            ));
        }
        let file = match self.shared.eventfd.try_clone() {
            Ok(file) => file,
            Err(e) => {
                self.shared.listener_taken.store(false, Ordering::Release);
                return Err(e);
            }
        };
        Ok(WakeupListener {
            shared: Arc::clone(&self.shared),
            file: Rc::new(tokio_uring::fs::File::from_std(file)),
            in_flight: None,
            buf: Some(Vec::with_capacity(8)),
        })
    }
}

type EventfdRead = Pin<Box<dyn Future<Output = tokio_uring::BufResult<usize, Vec<u8>>>>>;

/// The receiving end of a [`Wakeup`], on a tokio-uring runtime.
///
/// [`wait`](Self::wait) is cancel-safe: the io_uring read of the eventfd
/// lives in the listener, not in the future `wait` returns. If that future
/// is dropped (say, in a `select!` that a timer won), the read stays in
/// flight and the next `wait` picks it up; a completion is never lost.
///
/// Dropping the listener itself while a read is in flight loses that read's
/// completion (tokio-uring keeps the buffer alive but discards the result),
/// and with it possibly one wakeup. That is why a `Wakeup` has only one
/// listener: own it in the worker's long-lived loop and drop it at shutdown.
pub struct WakeupListener {
    shared: Arc<WakeupShared>,
    file: Rc<tokio_uring::fs::File>,
    in_flight: Option<EventfdRead>,
    buf: Option<Vec<u8>>,
}

impl fmt::Debug for WakeupListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeupListener")
            .field("read_in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl WakeupListener {
    /// Waits until the wakeup has been notified at least once since the
    /// last `wait` returned, then disarms it. Returns how many eventfd
    /// writes were consumed (normally 1). Must be polled on a tokio-uring
    /// runtime. Cancel-safe (see the type's documentation).
    ///
    /// Drain the mailbox (or whatever the notifier published) after this
    /// returns, not before: the order is what makes lost wakeups impossible.
    /// Spurious returns are possible and harmless.
    pub async fn wait(&mut self) -> io::Result<u64> {
        let read = match &mut self.in_flight {
            Some(read) => read,
            slot @ None => {
                let file = Rc::clone(&self.file);
                let mut buf = self.buf.take().unwrap_or_default();
                buf.clear();
                buf.reserve_exact(8);
                // A stream fd ignores the offset.
                slot.insert(Box::pin(async move { file.read_at(buf, 0).await }))
            }
        };
        let (result, buf) = read.await;
        self.in_flight = None;
        let counter = match result {
            Ok(8) => buf
                .get(..8)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_ne_bytes),
            Ok(_) => None,
            Err(e) => {
                self.buf = Some(buf);
                return Err(e);
            }
        };
        self.buf = Some(buf);
        let counter = counter
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short eventfd read"))?;
        // Pairs with the swap in `notify`: every push made before a notify
        // that found `armed` already true is visible to the drain that
        // follows this return.
        self.shared.armed.swap(false, Ordering::AcqRel);
        Ok(counter)
    }
}

/// The counters of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxStats {
    /// Batches accepted by [`MailboxSender::send_batch`].
    pub batches_sent: u64,
    /// Items in those batches.
    pub items_sent: u64,
    /// Batches dropped because the mailbox was full or its receiver gone.
    pub batches_dropped: u64,
    /// Items in those batches.
    pub items_dropped: u64,
    /// Messages accepted by [`MailboxSender::send_control`].
    pub control_sent: u64,
}

#[derive(Default)]
struct MailboxCounters {
    batches_sent: AtomicU64,
    items_sent: AtomicU64,
    batches_dropped: AtomicU64,
    items_dropped: AtomicU64,
    control_sent: AtomicU64,
}

impl MailboxCounters {
    fn count(&self, batches: &AtomicU64, items: &AtomicU64, len: usize) {
        batches.fetch_add(1, Ordering::Relaxed);
        items.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> MailboxStats {
        MailboxStats {
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            items_sent: self.items_sent.load(Ordering::Relaxed),
            batches_dropped: self.batches_dropped.load(Ordering::Relaxed),
            items_dropped: self.items_dropped.load(Ordering::Relaxed),
            control_sent: self.control_sent.load(Ordering::Relaxed),
        }
    }
}

/// Creates a worker's mailbox holding at most `capacity_batches` batches.
/// Keep the [`Mailbox`] on the receiving worker; clone the
/// [`MailboxSender`] to every other worker.
pub fn mailbox<T: Send>(capacity_batches: usize) -> io::Result<(MailboxSender<T>, Mailbox<T>)> {
    let (tx, rx) = crossbeam_channel::bounded(capacity_batches);
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let wakeup = Wakeup::new()?;
    let counters = Arc::new(MailboxCounters::default());
    Ok((
        MailboxSender {
            tx,
            control_tx,
            wakeup: wakeup.clone(),
            counters: Arc::clone(&counters),
        },
        Mailbox {
            rx,
            control_rx,
            wakeup,
            counters,
            capacity_batches,
        },
    ))
}

/// Why [`MailboxSender::send_batch`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendBatchErrorKind {
    /// The mailbox holds `capacity_batches` batches already.
    Full,
    /// The receiving [`Mailbox`] was dropped.
    Disconnected,
}

impl SendBatchErrorKind {
    /// Short snake_case name for logs: the label it is counted under.
    pub fn as_str(&self) -> &'static str {
        Event::from(*self).label()
    }
}

impl From<SendBatchErrorKind> for Event {
    fn from(kind: SendBatchErrorKind) -> Self {
        match kind {
            SendBatchErrorKind::Full => Event::MailboxFull,
            SendBatchErrorKind::Disconnected => Event::MailboxDisconnected,
        }
    }
}

/// A batch that was not delivered (already counted as dropped), handed back
/// so the caller can recycle its buffers.
pub struct SendBatchError<T> {
    /// Why.
    pub kind: SendBatchErrorKind,
    /// The batch, untouched.
    pub batch: Vec<T>,
}

impl<T> fmt::Debug for SendBatchError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatchError")
            .field("kind", &self.kind)
            .field("batch_len", &self.batch.len())
            .finish()
    }
}

/// The sending side of a worker's mailbox; cheap to clone, usable from any
/// thread, never blocks.
pub struct MailboxSender<T> {
    tx: Sender<Vec<T>>,
    control_tx: Sender<T>,
    wakeup: Wakeup,
    counters: Arc<MailboxCounters>,
}

impl<T> Clone for MailboxSender<T> {
    fn clone(&self) -> Self {
        MailboxSender {
            tx: self.tx.clone(),
            control_tx: self.control_tx.clone(),
            wakeup: self.wakeup.clone(),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<T> fmt::Debug for MailboxSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxSender")
            .field("queued_batches", &self.tx.len())
            .field("queued_control", &self.control_tx.len())
            .finish()
    }
}

impl<T> MailboxSender<T> {
    /// Hands over a message that must not be dropped (an answer the
    /// receiver waits for, a command), on a lane of its own that a backlog
    /// of batches cannot fill and that the receiver drains first. The lane
    /// is unbounded: only messages bounded by what they answer belong on
    /// it. Fails, handing the message back, only once the receiving
    /// [`Mailbox`] is gone.
    pub fn send_control(&self, item: T) -> Result<(), T> {
        match self.control_tx.send(item) {
            Ok(()) => {
                self.counters.control_sent.fetch_add(1, Ordering::Relaxed);
                self.wakeup.notify();
                Ok(())
            }
            Err(crossbeam_channel::SendError(item)) => Err(item),
        }
    }

    /// Hands `batch` over in one channel message and at most one eventfd
    /// write. An empty batch is accepted and ignored. When the mailbox is
    /// full the batch is dropped (counted, and returned in the error).
    pub fn send_batch(&self, batch: Vec<T>) -> Result<(), SendBatchError<T>> {
        if batch.is_empty() {
            return Ok(());
        }
        let len = batch.len();
        let counters = &*self.counters;
        match self.tx.try_send(batch) {
            Ok(()) => {
                counters.count(&counters.batches_sent, &counters.items_sent, len);
                self.wakeup.notify();
                Ok(())
            }
            Err(error) => {
                counters.count(&counters.batches_dropped, &counters.items_dropped, len);
                let (kind, batch) = match error {
                    TrySendError::Full(batch) => (SendBatchErrorKind::Full, batch),
                    TrySendError::Disconnected(batch) => (SendBatchErrorKind::Disconnected, batch),
                };
                Err(SendBatchError { kind, batch })
            }
        }
    }

    /// The mailbox's counters (shared by all senders and the receiver).
    pub fn stats(&self) -> MailboxStats {
        self.counters.snapshot()
    }

    /// What waits in the mailbox now: (packet batches, control messages).
    pub fn queued(&self) -> (usize, usize) {
        (self.tx.len(), self.control_tx.len())
    }
}

/// A worker's incoming mailbox. `Send`, so it can be built before the
/// worker thread starts; on the worker, take its
/// [`listener`](Self::listener) once and run the loop
/// `loop { listener.wait().await?; mailbox.drain(&mut handle); }`.
pub struct Mailbox<T> {
    rx: Receiver<Vec<T>>,
    control_rx: Receiver<T>,
    wakeup: Wakeup,
    counters: Arc<MailboxCounters>,
    capacity_batches: usize,
}

impl<T> fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("queued_batches", &self.rx.len())
            .field("queued_control", &self.control_rx.len())
            .field("capacity_batches", &self.capacity_batches)
            .finish()
    }
}

impl<T> Mailbox<T> {
    /// The mailbox's wakeup listener (once; see [`Wakeup::listener`]).
    pub fn listener(&self) -> io::Result<WakeupListener> {
        self.wakeup.listener()
    }

    /// Calls `handle` for every queued control message, then for every
    /// item of the queued batches, each in order, and returns how many
    /// items it handled.
    ///
    /// Takes the control messages queued when it starts and at most
    /// `capacity_batches` batches per call, so senders that keep sending
    /// cannot hold the worker here. Nothing is stranded by that: when the
    /// listener disarmed, the channels held at most that much, which this
    /// drain takes first (FIFO); whatever it leaves was sent after the
    /// disarm, so its sender wrote the eventfd and the next `wait` returns
    /// at once.
    pub fn drain(&mut self, handle: &mut impl FnMut(T)) -> usize {
        let control = self.control_rx.len();
        let mut items = 0;
        for item in self.control_rx.try_iter().take(control) {
            items += 1;
            handle(item);
        }
        for batch in self.rx.try_iter().take(self.capacity_batches.max(1)) {
            items += batch.len();
            batch.into_iter().for_each(&mut *handle);
        }
        items
    }

    /// The mailbox's counters.
    pub fn stats(&self) -> MailboxStats {
        self.counters.snapshot()
    }

    /// The counters of the mailbox's wakeup (notifies vs. eventfd writes).
    pub fn wakeup_stats(&self) -> WakeupStats {
        self.wakeup.stats()
    }
}
