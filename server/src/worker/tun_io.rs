//! The worker's side of the TUN device: several reads kept in flight on its
//! queue, and writes submitted in batches (every packet queued since the
//! last batch goes to the kernel in one `io_uring_enter`).

use std::rc::Rc;
use std::time::Duration;

use super::Worker;
use crate::metrics::{Event, WorkerMetrics};
use crate::tun::{queue_is_lost, PacketQueue};

/// Bound on queued packets per worker; beyond it packets are dropped (and
/// counted) rather than letting memory grow under overload. Readers stop
/// reading their sockets well before that ([`HIGH_WATER_ONE_IN`]), so in practice
/// TCP flow control slows the clients down and nothing is dropped.
const MAX_QUEUED: usize = 8192;
/// Bound on the bytes of buffer the queued packets hold per worker (small
/// packets sit in small buffers, see [`crate::tun::SMALL_PACKET`]; with
/// segmentation offload a queued packet may be a 64 KiB super-packet):
/// under overload, this is what a worker's TUN queue costs in memory.
const MAX_QUEUED_BYTES: usize = 4 << 20;
/// Fill (of either bound) at which session readers pause: half (one
/// 64 KiB read of small packets adds at most ~1,600 packets and ~400 KiB
/// of small buffers, so the queue stays under its bounds).
pub(crate) const HIGH_WATER_ONE_IN: usize = 2;
/// Fill at which paused readers resume: a quarter.
const LOW_WATER_ONE_IN: usize = 4;
/// Packets submitted per batch.
const BATCH: usize = 64;

/// The worker's queue of packets for its TUN queue.
pub(crate) fn write_queue(mtu: usize) -> PacketQueue {
    PacketQueue::new(mtu, MAX_QUEUED, BATCH * 2).with_max_bytes(MAX_QUEUED_BYTES)
}

/// TUN reads of one worker that may fail in a row (10 ms apart, so about
/// a second) before its queue counts as lost.
const MAX_FAILED_READS: u32 = 100;
/// Pause after a failed TUN read.
const READ_RETRY: Duration = Duration::from_millis(10);

/// Reads packets from this worker's TUN queue and routes them: one read
/// through the ring parked on the queue, and once it completes, plain
/// reads of what else waits ([`drain`]).
///
/// One reader per worker, not several. Every read parked on the queue is
/// woken by each packet (io_uring's poll wake-ups are not exclusive), so
/// at low rates more of them cost more. And a second read parked beside a
/// drain could take a packet that the drain then overtakes: the parked
/// read completes as task work at the end of one of the drain's system
/// calls, and is routed a turn later, so a flow would be reordered. With
/// one, packets are routed in the order the queue holds them.
///
/// A queue that is lost (see [`queue_is_lost`], or [`MAX_FAILED_READS`]
/// failures in a row) ends the process through
/// [`Fatal`](super::Fatal): a worker without its queue carries no
/// traffic. Other failures are counted (`tun_read_error`) and retried,
/// with one warning per run of failures.
pub(crate) async fn tun_reader(worker: Rc<Worker>) {
    let size = if worker.offload.is_some() {
        super::tun_offload::READ_BUFFER_LEN
    } else {
        usize::from(worker.shared.config.tun.mtu).max(1500) + 64
    };
    let mut buf = Vec::with_capacity(size);
    loop {
        buf.clear();
        let (res, returned) = worker.tun.read(buf).await;
        buf = returned;
        match res {
            Ok(n) => {
                #[cfg(any(test, feature = "testing"))]
                super::injected_panic(crate::testing::faults::WorkerTask::TunReader);
                let failed = worker.tun_read_failures.replace(0);
                if failed > 0 {
                    tracing::info!(failed, "TUN reads work again");
                }
                route(&worker, &mut buf[..n]);
                drain(&worker, &mut buf);
            }
            Err(e) => {
                if worker.stopping.get() || worker.shared.fatal.error().is_some() {
                    return;
                }
                worker.metrics().event(Event::TunReadError);
                let failed = worker.tun_read_failures.get() + 1;
                worker.tun_read_failures.set(failed);
                let lost = if queue_is_lost(&e) {
                    Some(e.to_string())
                } else if failed >= MAX_FAILED_READS {
                    Some(format!("{failed} reads failed in a row, the last: {e}"))
                } else {
                    None
                };
                if let Some(why) = lost {
                    worker
                        .shared
                        .fatal
                        .report(format!("worker {}: TUN queue lost: {why}", worker.index));
                    return;
                }
                if failed == 1 {
                    tracing::warn!(error = %e, "TUN read failed; retrying");
                }
                tokio::time::sleep(READ_RETRY).await;
            }
        }
    }
}

/// Hands one packet read from TUN (a frame with its virtio-net header
/// when the queue has offload) to its session; an empty read is nothing.
fn route(worker: &Worker, packet: &mut [u8]) {
    if packet.is_empty() {
        return;
    }
    if worker.offload.is_some() {
        worker.route_offloaded_from_tun(packet);
    } else {
        worker.route_from_tun(packet);
    }
}

/// At most this many packets are read with plain reads after one read
/// through the ring completed, before the reader lets the worker's other
/// tasks run: a bound on the time one burst holds the worker (256 reads
/// of one packet or, with offload, one super-packet each; about 0.4 ms of
/// 1,400-byte packets here). 64 left `bulk_down_64 --follow` at 4,349 and
/// 4,655 ns of server CPU per packet where 256 took 2,929 and 3,090.
pub(crate) const DRAIN: usize = 256;

/// Reads what else waits on the queue after a read through the ring
/// completed, with plain non-blocking reads, until the queue is empty or
/// [`DRAIN`] packets are read, and routes each.
///
/// Why: with reads through the ring only, one scheduler turn routes at
/// most one packet per read in flight, so a session's packets of a turn
/// went out one per socket write. Draining takes a burst in one turn, and
/// a session's packets of that burst go out in one write.
/// `bulk_down_64 --follow` (64 sessions, one datagram at a time): server
/// CPU per packet from about 6,450 to about 3,000 ns; `latency`'s maximum
/// round-trip rate 4 times higher, and at a fixed rate within the noise
/// (docs/benchmarking.md, "Draining the TUN queue"). A read error here
/// ends the drain; the next read through the ring meets it again and
/// counts it.
fn drain(worker: &Worker, buf: &mut Vec<u8>) {
    drain_with(
        buf,
        |buf| worker.tun.try_read(buf),
        |packet| route(worker, packet),
    );
}

/// [`drain`]'s loop with the read and the routing given (so that its bound
/// is tested without a device): returns the packets routed.
fn drain_with(
    buf: &mut Vec<u8>,
    mut read: impl FnMut(&mut Vec<u8>) -> std::io::Result<Option<usize>>,
    mut route: impl FnMut(&mut [u8]),
) -> usize {
    for routed in 0..DRAIN {
        match read(buf) {
            Ok(Some(n)) => route(&mut buf[..n]),
            Ok(None) | Err(_) => return routed,
        }
    }
    DRAIN
}

/// Writes queued client packets to TUN, a batch at a time.
pub(crate) async fn tun_writer(worker: Rc<Worker>) {
    loop {
        let batch = worker.tun_queue.borrow_mut().take_batch(BATCH);
        if batch.is_empty() {
            worker.tun_wake.notified().await;
            continue;
        }
        #[cfg(any(test, feature = "testing"))]
        super::injected_panic(crate::testing::faults::WorkerTask::TunWriter);
        // Creating each write submits its SQE; awaiting them in order then
        // costs nothing extra: the kernel sees the whole batch at once.
        let writes: Vec<_> = batch
            .into_iter()
            .map(|buf| worker.tun.file().write_at(buf, 0).submit())
            .collect();
        for write in writes {
            let (res, buf) = write.await;
            match res {
                Ok(n) if worker.offload.is_some() => {
                    let (packets, bytes, merged) = super::tun_offload::written_packets(&buf[..n]);
                    let m = worker.metrics();
                    WorkerMetrics::add(&m.rx_packets, packets);
                    WorkerMetrics::add(&m.rx_bytes, bytes);
                    if merged {
                        m.event(Event::TunSuperPacketsWritten);
                    }
                }
                Ok(n) => {
                    let m = worker.metrics();
                    WorkerMetrics::add(&m.rx_packets, 1);
                    WorkerMetrics::add(&m.rx_bytes, n as u64);
                }
                Err(e) => {
                    worker.metrics().event(Event::TunWriteError);
                    tracing::debug!(error = %e, "TUN write failed");
                }
            }
            worker.tun_queue.borrow_mut().recycle(buf);
        }
        if !worker.tun_queue.borrow().filled_to(LOW_WATER_ONE_IN) {
            worker.tun_space.notify_waiters();
        }
    }
}

/// Waits until the worker's TUN queue has room (below [`HIGH_WATER_ONE_IN`]):
/// session readers call it before each socket read, so a client sending
/// faster than TUN takes packets is slowed down by TCP, not dropped.
pub(crate) async fn wait_for_tun_space(worker: &Worker) {
    loop {
        // Registered before the check, so a wakeup in between is not lost.
        let space = worker.tun_space.notified();
        if !worker.tun_queue.borrow().filled_to(HIGH_WATER_ONE_IN) {
            return;
        }
        space.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue that hands out `waiting` packets (each one byte, its
    /// number), then `end` (empty, or an error); counts its reads.
    fn queue(
        waiting: usize,
        end: fn() -> std::io::Result<Option<usize>>,
        reads: &mut usize,
    ) -> impl FnMut(&mut Vec<u8>) -> std::io::Result<Option<usize>> + '_ {
        move |buf| {
            *reads += 1;
            if *reads > waiting {
                return end();
            }
            buf.clear();
            buf.push(*reads as u8);
            Ok(Some(1))
        }
    }

    #[test]
    fn a_drain_stops_at_its_bound_with_packets_still_waiting() {
        let (mut reads, mut routed) = (0, Vec::new());
        let mut buf = Vec::with_capacity(16);
        let n = drain_with(&mut buf, queue(DRAIN + 10, || Ok(None), &mut reads), |p| {
            routed.push(p[0])
        });
        assert_eq!(n, DRAIN);
        assert_eq!(reads, DRAIN, "no read past the bound");
        assert_eq!(routed.len(), DRAIN);
        // In the order the queue held them.
        assert!(routed.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[test]
    fn a_drain_stops_at_an_empty_queue_or_an_error() {
        for end in [
            (|| Ok(None)) as fn() -> std::io::Result<Option<usize>>,
            || Err(std::io::Error::from_raw_os_error(libc::EIO)),
        ] {
            let (mut reads, mut routed) = (0, 0);
            let mut buf = Vec::with_capacity(16);
            let n = drain_with(&mut buf, queue(3, end, &mut reads), |_| routed += 1);
            assert_eq!((n, routed, reads), (3, 3, 4));
        }
    }
}
