//! Kernel TLS sends of a batch in one io_uring submission, through a small
//! private ring per worker thread.
//!
//! With kernel TLS one send call of at most one record's plaintext (16 KiB,
//! without `MSG_MORE`) is one TLS record, and every SSTP packet must stay a
//! record of its own. [`send_chain`] turns a batch into one `IORING_OP_SEND`
//! per packet, linked with `IOSQE_IO_LINK` so that they run strictly in
//! order (a send that finds the socket full waits for room, and the rest of
//! the chain waits behind it), and submits them with one `io_uring_enter`.
//!
//! Why a ring of its own rather than tokio-uring's: tokio-uring has no API
//! for linked entries, and its driver submits the shared queue whenever it
//! fills, which can cut a chain in two; the halves would then run
//! independently and records could overtake each other. This ring is only
//! ever submitted here, once per chain, so a chain is never cut.
//!
//! Completions: an eventfd registered with the ring, awaited through
//! `tokio::io::unix::AsyncFd` by a reaper task on the worker's runtime
//! (tokio-uring runs a tokio current-thread runtime with its IO driver
//! enabled and waits for its own ring the same way). Most sends complete
//! during the submission itself; those are reaped at once, without a trip
//! through the reaper.
//!
//! Memory: each chain's bytes are copied into a buffer owned by the ring's
//! in-flight table and stay there until every completion of the chain has
//! been reaped. A caller that goes away mid-chain (a session dropped) marks
//! its chain abandoned and cancels it; the buffer is freed only when the
//! kernel has answered for every entry. A ring dropped with chains in
//! flight (the worker thread ending) leaks their buffers rather than free
//! memory the kernel might still read.
//!
//! Bounds: at most [`MAX_CHAIN`] packets per submission, at most
//! [`MAX_IN_FLIGHT`] entries outstanding per ring (below the completion
//! queue's size, so completions never overflow). A chain that does not fit
//! is not submitted: the caller falls back to plain non-blocking sends and
//! counts why ([`Fallback`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;

/// Most packets linked in one submission; a larger batch is sent as
/// several chains, one after the other.
pub const MAX_CHAIN: usize = 64;
/// Submission queue entries: a chain, plus the cancellations of one.
const SQ_ENTRIES: u32 = 2 * MAX_CHAIN as u32;
/// Completion queue entries.
const CQ_ENTRIES: u32 = 4096;
/// Entries (sends and cancellations) outstanding at most per ring: every
/// one of them fits in the completion queue.
pub const MAX_IN_FLIGHT: usize = CQ_ENTRIES as usize / 2;
/// `user_data` of cancellation entries (their completions only count).
const CANCEL_USER_DATA: u64 = u64::MAX;
/// Low bits of a send's `user_data`: its index in the chain.
const INDEX_BITS: u32 = 8;
/// Spare buffers kept for the next chains.
const SPARE_BUFFERS: usize = 8;

/// Why a chain was not submitted; the caller sends it without the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// This worker's ring could not be set up (logged once).
    RingUnavailable,
    /// The ring has [`MAX_IN_FLIGHT`] entries outstanding already.
    RingBusy,
}

/// What a submitted chain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainSent {
    /// Every packet went out whole, in order.
    Whole,
    /// The chain broke at packet `unit`, of which the socket took `sent`
    /// bytes: the packets before it went out whole, the rest of it and
    /// everything after it did not (`-ECANCELED`, or it was the last) and
    /// are the caller's to send, in order.
    Broken { unit: usize, sent: usize },
}

/// Why [`send_chain`] returned without sending through the ring.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChainError {
    /// Nothing was submitted.
    Fallback(Fallback),
    /// A send failed with this error: the connection is broken.
    Io(io::Error),
    /// A send was taken in part and a later one of the chain went out
    /// after the gap: the stream is no longer whole, the connection must
    /// end. A short send does not break an io_uring link without
    /// `MSG_WAITALL`, which kernel TLS refuses; kernel TLS takes a send of
    /// at most one record whole or not at all, so this is not expected.
    Split { unit: usize },
}

/// Sends `units` (each of at most one record's plaintext, at most
/// [`MAX_CHAIN`] of them) to `fd` as linked sends in one submission, and
/// waits until the kernel has answered for all of them.
pub async fn send_chain(fd: RawFd, units: &[&[u8]]) -> Result<ChainSent, ChainError> {
    assert!(
        units.len() <= MAX_CHAIN,
        "a chain of {} packets",
        units.len()
    );
    if units.is_empty() {
        return Ok(ChainSent::Whole);
    }
    let ring = worker_ring().ok_or(ChainError::Fallback(Fallback::RingUnavailable))?;
    let id = ring.submit_chain(fd, units)?;
    let results = ChainWait {
        ring: &ring,
        id,
        done: false,
    }
    .await;
    chain_outcome(units, &results)
}

/// Reads the completions of a chain in order.
///
/// An error breaks the link: the sends after it complete with
/// `-ECANCELED`. A short send does not: the sends after it still run.
fn chain_outcome(units: &[&[u8]], results: &[i32]) -> Result<ChainSent, ChainError> {
    let error = |res: i32| ChainError::Io(io::Error::from_raw_os_error(-res));
    for (unit, (bytes, &res)) in units.iter().zip(results).enumerate() {
        match res {
            res if res >= 0 && res as usize == bytes.len() => continue,
            res if res >= 0 => {
                let later = &results[unit + 1..];
                if later.iter().any(|&r| r > 0) {
                    return Err(ChainError::Split { unit });
                }
                if let Some(&failed) = later.iter().find(|&&r| r < 0 && r != -libc::ECANCELED) {
                    return Err(error(failed));
                }
                return Ok(ChainSent::Broken {
                    unit,
                    sent: res as usize,
                });
            }
            res if res == -libc::ECANCELED => return Ok(ChainSent::Broken { unit, sent: 0 }),
            res => return Err(error(res)),
        }
    }
    Ok(ChainSent::Whole)
}

thread_local! {
    /// This worker's ring: not tried yet, set up, or unavailable.
    static WORKER_RING: RefCell<RingSlot> = const { RefCell::new(RingSlot::Untried) };
}

enum RingSlot {
    Untried,
    Ready(Rc<Ring>),
    Unavailable,
}

/// The ring of this thread, set up on first use (only kernel TLS sessions
/// get here). `None` when it cannot be set up.
fn worker_ring() -> Option<Rc<Ring>> {
    WORKER_RING.with(|slot| {
        let mut slot = slot.borrow_mut();
        match &*slot {
            RingSlot::Ready(ring) if ring.reaper_alive.get() => return Some(ring.clone()),
            RingSlot::Unavailable => return None,
            // Untried, or the runtime that ran the reaper is gone.
            _ => {}
        }
        match Ring::start() {
            Ok(ring) => {
                *slot = RingSlot::Ready(ring.clone());
                Some(ring)
            }
            Err(e) => {
                tracing::warn!(error = %e, "kernel TLS: no private io_uring for batched sends; sending packet by packet");
                *slot = RingSlot::Unavailable;
                None
            }
        }
    })
}

/// The private ring and what it has in flight.
struct Ring {
    uring: RefCell<IoUring>,
    chains: RefCell<HashMap<u64, Chain>>,
    next_id: Cell<u64>,
    /// Entries submitted whose completion has not been reaped.
    in_flight: Cell<usize>,
    spare_buffers: RefCell<Vec<Vec<u8>>>,
    reaper_alive: Cell<bool>,
}

/// One submitted chain.
struct Chain {
    /// The packets' bytes, back to back: the kernel reads them until the
    /// last completion.
    bytes: Vec<u8>,
    /// Each send's result once reaped.
    results: Vec<Option<i32>>,
    pending: usize,
    waker: Option<Waker>,
    /// Its caller went away: free it once `pending` is zero.
    abandoned: bool,
}

impl Ring {
    /// Sets up the ring and its eventfd, and spawns the reaper on the
    /// current (tokio-uring) runtime.
    fn start() -> io::Result<Rc<Ring>> {
        // The flags of the worker's own ring (`sys::uring`).
        let uring: IoUring = crate::sys::uring::probe()
            .setup
            .uring_builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        // SAFETY: plain system call; the descriptor is owned right after.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        uring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        // SAFETY: the AsyncFd owns the descriptor, which stays open (and
        // the same) until it is dropped.
        let eventfd =
            unsafe { AsyncFd::register_with_interest(eventfd, tokio::io::Interest::READABLE) }?;
        let ring = Rc::new(Ring {
            uring: RefCell::new(uring),
            chains: RefCell::default(),
            next_id: Cell::new(0),
            in_flight: Cell::new(0),
            spare_buffers: RefCell::default(),
            reaper_alive: Cell::new(true),
        });
        tokio::task::spawn_local(reap(ReaperGuard(ring.clone()), eventfd));
        Ok(ring)
    }

    /// Copies `units` into a buffer of the in-flight table and submits
    /// them as one linked chain; returns the chain's id.
    fn submit_chain(&self, fd: RawFd, units: &[&[u8]]) -> Result<u64, ChainError> {
        let mut uring = self.uring.borrow_mut();
        let sq_free = {
            let sq = uring.submission();
            sq.capacity() - sq.len()
        };
        if self.in_flight.get() + units.len() > MAX_IN_FLIGHT || sq_free < units.len() {
            return Err(ChainError::Fallback(Fallback::RingBusy));
        }
        let mut bytes = self.spare_buffers.borrow_mut().pop().unwrap_or_default();
        bytes.clear();
        for unit in units {
            bytes.extend_from_slice(unit);
        }
        let id = self.next_id.get();
        self.next_id
            .set(id.wrapping_add(1) & (u64::MAX >> (INDEX_BITS + 1)));
        {
            let mut sq = uring.submission();
            let mut at = 0;
            for (index, unit) in units.iter().enumerate() {
                let send = opcode::Send::new(
                    types::Fd(fd),
                    // SAFETY (of the kernel's read): `bytes` moves into the
                    // in-flight table below without reallocating and stays
                    // there until this entry's completion is reaped.
                    bytes[at..].as_ptr(),
                    unit.len() as u32,
                )
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data((id << INDEX_BITS) | index as u64);
                let send = if index + 1 < units.len() {
                    send.flags(squeue::Flags::IO_LINK)
                } else {
                    send
                };
                // SAFETY: the entry's buffer outlives it (above).
                unsafe { sq.push(&send) }.expect("room checked above");
                at += unit.len();
            }
        }
        self.chains.borrow_mut().insert(
            id,
            Chain {
                bytes,
                results: vec![None; units.len()],
                pending: units.len(),
                waker: None,
                abandoned: false,
            },
        );
        self.in_flight.set(self.in_flight.get() + units.len());
        let submitted = submit_all(&uring, units.len());
        drop(uring);
        if let Err(e) = submitted {
            // Entries the kernel did not take stay queued and go with the
            // next submission; this chain is the caller's no more.
            self.abandon(id);
            return Err(ChainError::Io(e));
        }
        self.reap_completions();
        Ok(id)
    }

    /// Moves every completion from the queue into the in-flight table,
    /// waking the chains that are complete and freeing abandoned ones.
    fn reap_completions(&self) {
        let mut uring = self.uring.borrow_mut();
        let mut chains = self.chains.borrow_mut();
        let mut reaped = 0;
        for cqe in uring.completion() {
            reaped += 1;
            let user_data = cqe.user_data();
            if user_data == CANCEL_USER_DATA {
                continue;
            }
            let id = user_data >> INDEX_BITS;
            let index = (user_data & ((1 << INDEX_BITS) - 1)) as usize;
            let Some(chain) = chains.get_mut(&id) else {
                continue;
            };
            if let Some(slot) = chain.results.get_mut(index) {
                if slot.replace(cqe.result()).is_none() {
                    chain.pending -= 1;
                }
            }
            if chain.pending == 0 {
                if chain.abandoned {
                    let chain = chains.remove(&id).expect("present");
                    self.recycle(chain.bytes);
                } else if let Some(waker) = chain.waker.take() {
                    waker.wake();
                }
            }
        }
        self.in_flight
            .set(self.in_flight.get().saturating_sub(reaped));
    }

    /// The results of chain `id` once complete (removing it), else
    /// registers `waker`.
    fn poll_chain(&self, id: u64, waker: &Waker) -> Poll<Vec<i32>> {
        self.reap_completions();
        let mut chains = self.chains.borrow_mut();
        let Some(chain) = chains.get_mut(&id) else {
            return Poll::Ready(Vec::new());
        };
        if chain.pending > 0 {
            chain.waker = Some(waker.clone());
            return Poll::Pending;
        }
        let chain = chains.remove(&id).expect("present");
        drop(chains);
        let results = chain
            .results
            .iter()
            .map(|r| r.unwrap_or(-libc::ECANCELED))
            .collect();
        self.recycle(chain.bytes);
        Poll::Ready(results)
    }

    /// Chain `id`'s caller went away: cancel what is still pending and
    /// free the buffer once every completion is in.
    fn abandon(&self, id: u64) {
        self.reap_completions();
        let mut chains = self.chains.borrow_mut();
        let Some(chain) = chains.get_mut(&id) else {
            return;
        };
        if chain.pending == 0 {
            let chain = chains.remove(&id).expect("present");
            drop(chains);
            self.recycle(chain.bytes);
            return;
        }
        chain.abandoned = true;
        chain.waker = None;
        let pending: Vec<u64> = (chain.results.iter().enumerate())
            .filter(|(_, r)| r.is_none())
            .map(|(index, _)| (id << INDEX_BITS) | index as u64)
            .collect();
        drop(chains);
        let mut uring = self.uring.borrow_mut();
        let mut pushed = 0;
        {
            let mut sq = uring.submission();
            for user_data in pending {
                let cancel = opcode::AsyncCancel::new(user_data)
                    .build()
                    .user_data(CANCEL_USER_DATA);
                // SAFETY: a cancellation refers to no memory of ours.
                if unsafe { sq.push(&cancel) }.is_err() {
                    break;
                }
                pushed += 1;
            }
        }
        self.in_flight.set(self.in_flight.get() + pushed);
        // Best effort: without the cancellation the sends still end when
        // the socket takes them or is shut down.
        let _ = submit_all(&uring, pushed);
    }

    fn recycle(&self, bytes: Vec<u8>) {
        let mut spare = self.spare_buffers.borrow_mut();
        if spare.len() < SPARE_BUFFERS && bytes.capacity() <= MAX_CHAIN * 16 * 1024 {
            spare.push(bytes);
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still read these buffers while the ring winds
        // down: leak them rather than free them under it.
        for (_, chain) in self.chains.get_mut().drain() {
            if chain.pending > 0 {
                std::mem::forget(chain.bytes);
            }
        }
    }
}

/// Submits the queue with one `io_uring_enter`, retrying only when the
/// call was interrupted before it took anything.
fn submit_all(uring: &IoUring, entries: usize) -> io::Result<()> {
    if entries == 0 {
        return Ok(());
    }
    loop {
        match uring.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Waits for one chain's completions; cancels it when dropped first.
struct ChainWait<'a> {
    ring: &'a Rc<Ring>,
    id: u64,
    done: bool,
}

impl Future for ChainWait<'_> {
    type Output = Vec<i32>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<i32>> {
        let results = std::task::ready!(self.ring.poll_chain(self.id, cx.waker()));
        self.done = true;
        Poll::Ready(results)
    }
}

impl Drop for ChainWait<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ring.abandon(self.id);
        }
    }
}

/// Marks the ring's reaper gone when its task ends or is dropped with
/// its runtime (the next chain on this thread sets up a new ring).
struct ReaperGuard(Rc<Ring>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        self.0.reaper_alive.set(false);
    }
}

/// Reaps the ring's completions whenever its eventfd says there are some.
async fn reap(ring: ReaperGuard, eventfd: AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut ready) = eventfd.readable().await else {
            return;
        };
        // Reset the counter before reaping: a completion posted after the
        // read signals again.
        let mut counter = [0u8; 8];
        // SAFETY: an 8-byte buffer for the eventfd's counter; non-blocking.
        let _ = unsafe { libc::read(eventfd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        ready.clear_ready();
        ring.0.reap_completions();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};
    use std::time::Duration;

    /// A connected pair of `SOCK_SEQPACKET` sockets: like kernel TLS with
    /// one record per send, a send is one message, taken whole or not at
    /// all, and the reader sees the boundaries.
    fn message_pair() -> (Socket, Socket) {
        Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap()
    }

    fn packet(seq: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + seq * 13) as u8).collect()
    }

    /// Reads `count` messages, after a pause (the socket fills first).
    fn slow_reader(from: Socket, count: usize) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut buf = vec![0u8; 64 * 1024];
            (0..count)
                .map(|_| {
                    let n = std::io::Read::read(&mut &from, &mut buf).unwrap();
                    buf[..n].to_vec()
                })
                .collect()
        })
    }

    #[test]
    fn chains_arrive_in_order_one_message_per_send_even_when_the_socket_fills() {
        let (sender, receiver) = message_pair();
        sender.set_send_buffer_size(16 * 1024).unwrap();
        let packets: Vec<Vec<u8>> = (0..5 * MAX_CHAIN)
            .map(|seq| packet(seq, 500 + seq))
            .collect();
        let reader = slow_reader(receiver, packets.len());
        let fd = sender.as_raw_fd();
        let outcomes = tokio_uring::start(async {
            let mut outcomes = Vec::new();
            for chain in packets.chunks(MAX_CHAIN) {
                let units: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
                outcomes.push(send_chain(fd, &units).await.unwrap());
            }
            outcomes
        });
        assert!(
            outcomes.iter().all(|o| *o == ChainSent::Whole),
            "{outcomes:?}"
        );
        let messages = reader.join().unwrap();
        assert_eq!(messages.len(), packets.len());
        for (seq, (message, packet)) in messages.iter().zip(&packets).enumerate() {
            assert!(message == packet, "message {seq} is not packet {seq}");
        }
    }

    #[test]
    fn a_send_error_is_reported() {
        let (sender, receiver) = message_pair();
        drop(receiver);
        let fd = sender.as_raw_fd();
        let result = tokio_uring::start(async {
            let units = [&b"one"[..], &b"two"[..]];
            send_chain(fd, &units).await
        });
        assert!(
            matches!(result, Err(ChainError::Io(ref e)) if e.raw_os_error() == Some(libc::EPIPE)),
            "{result:?}"
        );
    }

    #[test]
    fn a_chain_dropped_mid_flight_is_cancelled_and_freed() {
        let (sender, receiver) = message_pair();
        let fd = sender.as_raw_fd();
        // Fill the socket first: the chain's first send then waits.
        sender.set_nonblocking(true).unwrap();
        let mut prefill = 0;
        while sender.send(&packet(999, 1000)).is_ok() {
            prefill += 1;
        }
        let chain: Vec<Vec<u8>> = (0..MAX_CHAIN).map(|seq| packet(seq, 1000)).collect();
        let (in_flight, chains) = tokio_uring::start(async {
            let units: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            // Nobody reads: the chain waits for room and is dropped.
            let wait = tokio::time::timeout(Duration::from_millis(100), send_chain(fd, &units));
            assert!(wait.await.is_err(), "a full socket took the chain");
            let ring = worker_ring().unwrap();
            // The cancellations complete; the buffer is freed.
            for _ in 0..100 {
                if ring.chains.borrow().is_empty() && ring.in_flight.get() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let chains = ring.chains.borrow().len();
            (ring.in_flight.get(), chains)
        });
        assert_eq!((in_flight, chains), (0, 0));
        drop(sender);
        // The cancelled chain sent nothing.
        receiver.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let mut messages = 0;
        while matches!(std::io::Read::read(&mut &receiver, &mut buf), Ok(1..)) {
            messages += 1;
        }
        assert_eq!(messages, prefill);
    }

    #[test]
    fn completions_say_what_is_left_to_send() {
        let units = [&[0u8; 10][..], &[1; 10], &[2; 10]];
        let cancelled = -libc::ECANCELED;
        assert!(matches!(
            chain_outcome(&units, &[10, 10, 10]),
            Ok(ChainSent::Whole)
        ));
        assert!(matches!(
            chain_outcome(&units, &[10, cancelled, cancelled]),
            Ok(ChainSent::Broken { unit: 1, sent: 0 })
        ));
        assert!(matches!(
            chain_outcome(&units, &[10, 10, 4]),
            Ok(ChainSent::Broken { unit: 2, sent: 4 })
        ));
        // A short send does not break the link: what followed it went
        // out after the gap.
        assert!(matches!(
            chain_outcome(&units, &[4, 10, 10]),
            Err(ChainError::Split { unit: 0 })
        ));
        assert!(matches!(
            chain_outcome(&units, &[4, -libc::EPIPE, cancelled]),
            Err(ChainError::Io(ref e)) if e.raw_os_error() == Some(libc::EPIPE)
        ));
        assert!(matches!(
            chain_outcome(&units, &[-libc::ECONNRESET, cancelled, cancelled]),
            Err(ChainError::Io(ref e)) if e.raw_os_error() == Some(libc::ECONNRESET)
        ));
    }
}
