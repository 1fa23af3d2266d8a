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

/// Reads packets from this worker's TUN queue and routes them.
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
                let failed = worker.tun_read_failures.replace(0);
                if failed > 0 {
                    tracing::info!(failed, "TUN reads work again");
                }
                if n > 0 && worker.offload.is_some() {
                    worker.route_offloaded_from_tun(&mut buf[..n]);
                } else if n > 0 {
                    worker.route_from_tun(&buf[..n]);
                }
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

/// Writes queued client packets to TUN, a batch at a time.
pub(crate) async fn tun_writer(worker: Rc<Worker>) {
    loop {
        let batch = worker.tun_queue.borrow_mut().take_batch(BATCH);
        if batch.is_empty() {
            worker.tun_wake.notified().await;
            continue;
        }
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
