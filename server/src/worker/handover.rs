//! Packets that one worker's TUN reads hand to sessions of another worker.
//!
//! Each worker reads its own TUN queue, and the kernel spreads flows over
//! the queues by hash, not by session: with N workers, (N-1)/N of what a
//! worker reads belongs to a session elsewhere. Those packets travel in one
//! [`PacketBatch`] per destination worker and scheduler tick: the packets
//! back to back in one buffer, beside where each ends, whose it is and its
//! virtio-net header when the TUN device offloads segmentation. The batch
//! is moved through the destination's mailbox; once its packets are
//! delivered, its emptied buffers go back to the worker that filled them
//! ([`HandoverLanes::deliver`]) and carry its next batch. In a steady state
//! the hand-over allocates nothing per packet: one copy, from the TUN read
//! buffer into the batch, which is the copy that leaves the read buffer free
//! for the next read. (Before, every packet was its own `Vec`: an allocation
//! and a copy per packet, and a free on the other thread.)
//!
//! Bounds, each counted when reached:
//! - A batch is sent as soon as it holds [`MAX_BATCH_BYTES`], not at the
//!   end of the tick.
//! - At most [`MAX_QUEUED_BYTES`] of batches wait for one worker. A batch
//!   beyond that is dropped and its packets are counted as `mailbox_full`,
//!   as they are when the mailbox has no room for another batch: the
//!   receiving worker is behind, and the kernel's TCP on either side
//!   retransmits.
//! - A worker keeps at most [`SPARES_PER_WORKER`] emptied batches; the
//!   rest are freed.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::mailbox::MailboxSender;
use super::WorkerMsg;
use crate::metrics::Event;
use crate::routing::session_table::SessionRef;
use crate::tun::offload::VirtioNetHdr;

/// A batch is sent once it holds this many bytes of packets.
pub(crate) const MAX_BATCH_BYTES: usize = 256 << 10;
/// Bytes of batches that may wait for one worker.
pub(crate) const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Emptied batches a worker keeps for its next ones.
pub(crate) const SPARES_PER_WORKER: usize = 4;

/// One packet of a batch.
#[derive(Debug, Clone, Copy)]
struct Handed {
    to: SessionRef,
    /// The virtio-net header it was read with (segmentation offload on).
    header: Option<VirtioNetHdr>,
    /// Where it ends in the batch's bytes (it starts where the previous
    /// one ended).
    end: usize,
}

/// Packets from one worker's TUN reads for sessions of one other worker.
#[derive(Debug)]
pub(crate) struct PacketBatch {
    /// The worker that fills it, to which its buffers go back.
    owner: usize,
    bytes: Vec<u8>,
    packets: Vec<Handed>,
}

impl PacketBatch {
    /// An empty batch of worker `owner`'s (allocates on the first push).
    pub(crate) fn new(owner: usize) -> Self {
        PacketBatch {
            owner,
            bytes: Vec::new(),
            packets: Vec::new(),
        }
    }

    /// Appends `packet` for session `to`.
    pub(crate) fn push(&mut self, to: SessionRef, header: Option<VirtioNetHdr>, packet: &[u8]) {
        self.bytes.extend_from_slice(packet);
        self.packets.push(Handed {
            to,
            header,
            end: self.bytes.len(),
        });
    }

    /// Packets in the batch.
    pub(crate) fn len(&self) -> usize {
        self.packets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Bytes of packets in the batch.
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Calls `deliver` for each packet, in order, with the packet
    /// writable (a receiver completes partial checksums in place), then
    /// empties the batch, keeping its buffers.
    pub(crate) fn drain(
        &mut self,
        mut deliver: impl FnMut(SessionRef, Option<VirtioNetHdr>, &mut [u8]),
    ) {
        let mut start = 0;
        for handed in &self.packets {
            deliver(handed.to, handed.header, &mut self.bytes[start..handed.end]);
            start = handed.end;
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
    }
}

/// Packets [`HandoverLanes::send`] dropped, and the counter they go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub event: Event,
    pub packets: u64,
}

/// Per worker: the bytes of batches waiting for it, and its emptied
/// batches on their way back. Shared by all workers.
#[derive(Debug)]
pub(crate) struct HandoverLanes {
    lanes: Vec<Lane>,
}

#[derive(Debug)]
struct Lane {
    /// Bytes of batches sent to this worker and not delivered yet.
    queued_bytes: AtomicUsize,
    spares_tx: Sender<PacketBatch>,
    spares_rx: Receiver<PacketBatch>,
}

impl HandoverLanes {
    pub(crate) fn new(workers: usize) -> Self {
        HandoverLanes {
            lanes: (0..workers)
                .map(|_| {
                    let (spares_tx, spares_rx) = crossbeam_channel::bounded(SPARES_PER_WORKER);
                    Lane {
                        queued_bytes: AtomicUsize::new(0),
                        spares_tx,
                        spares_rx,
                    }
                })
                .collect(),
        }
    }

    /// An empty batch for worker `owner` to fill: one of its emptied ones
    /// when one has come back.
    pub(crate) fn fresh(&self, owner: usize) -> PacketBatch {
        self.lanes
            .get(owner)
            .and_then(|lane| lane.spares_rx.try_recv().ok())
            .unwrap_or_else(|| PacketBatch::new(owner))
    }

    /// Sends `batch` to worker `to` through its `mailbox`. A batch that
    /// would take the bytes waiting for that worker past
    /// [`MAX_QUEUED_BYTES`], or that the mailbox refuses, is dropped: the
    /// error names the counter its packets go to and how many there are,
    /// and the batch's buffers go home all the same.
    pub(crate) fn send(
        &self,
        to: usize,
        batch: PacketBatch,
        mailbox: &MailboxSender<WorkerMsg>,
    ) -> Result<(), Dropped> {
        let packets = batch.len() as u64;
        if !self.admit(to, &batch) {
            self.recycle(batch);
            return Err(Dropped {
                event: Event::MailboxFull,
                packets,
            });
        }
        let Err(e) = mailbox.send_batch(vec![WorkerMsg::Packets(batch)]) else {
            return Ok(());
        };
        for msg in e.batch {
            if let WorkerMsg::Packets(batch) = msg {
                self.unsent(to, batch);
            }
        }
        Err(Dropped {
            event: e.kind.into(),
            packets,
        })
    }

    /// Takes room for `batch` on its way to worker `to`: `false` when the
    /// batches already waiting for it and this one would pass
    /// [`MAX_QUEUED_BYTES`] (then nothing is taken).
    fn admit(&self, to: usize, batch: &PacketBatch) -> bool {
        let Some(lane) = self.lanes.get(to) else {
            return false;
        };
        let bytes = batch.bytes_len();
        lane.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + bytes <= MAX_QUEUED_BYTES).then_some(queued + bytes)
            })
            .is_ok()
    }

    /// Worker `to` hands `batch`'s packets to `deliver` (see
    /// [`PacketBatch::drain`]), then gives back the room the batch took
    /// and sends its buffers home.
    pub(crate) fn deliver(
        &self,
        to: usize,
        mut batch: PacketBatch,
        deliver: impl FnMut(SessionRef, Option<VirtioNetHdr>, &mut [u8]),
    ) {
        let bytes = batch.bytes_len();
        batch.drain(deliver);
        self.release(to, bytes);
        self.recycle(batch);
    }

    /// A batch that [`HandoverLanes::admit`] let through was not sent
    /// after all (the mailbox refused it): its room is given back and its
    /// buffers go home.
    fn unsent(&self, to: usize, batch: PacketBatch) {
        self.release(to, batch.bytes_len());
        self.recycle(batch);
    }

    fn release(&self, to: usize, bytes: usize) {
        if let Some(lane) = self.lanes.get(to) {
            lane.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Sends an emptied `batch` back to the worker that filled it; freed
    /// when that worker has its [`SPARES_PER_WORKER`] already.
    fn recycle(&self, mut batch: PacketBatch) {
        batch.clear();
        if let Some(lane) = self.lanes.get(batch.owner) {
            let _ = lane.spares_tx.try_send(batch);
        }
    }

    /// Bytes of batches waiting for worker `to`.
    #[cfg(test)]
    fn queued_bytes(&self, to: usize) -> usize {
        self.lanes[to].queued_bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session; which worker it names does not matter to a batch (the
    /// lanes are told the worker).
    fn session(slot: u32) -> SessionRef {
        SessionRef {
            worker: 1,
            slot,
            generation: 7,
        }
    }

    #[test]
    fn a_batch_delivers_each_packet_whole_and_in_order() {
        let mut batch = PacketBatch::new(0);
        let header = VirtioNetHdr {
            gso_size: 1400,
            ..VirtioNetHdr::default()
        };
        batch.push(session(1), None, &[1; 20]);
        batch.push(session(2), Some(header), &[2; 3000]);
        batch.push(session(1), None, &[3; 1]);
        assert_eq!((batch.len(), batch.bytes_len()), (3, 3021));
        let mut got = Vec::new();
        batch.drain(|to, header, packet| got.push((to.slot, header, packet.to_vec())));
        assert_eq!(
            got,
            [
                (1, None, vec![1; 20]),
                (2, Some(header), vec![2; 3000]),
                (1, None, vec![3; 1]),
            ]
        );
        assert!(batch.is_empty());
        assert_eq!(batch.bytes_len(), 0);
    }

    /// The buffers a batch grew go back to the worker that filled it and
    /// carry its next batch: no allocation once traffic is steady.
    #[test]
    fn a_delivered_batch_comes_back_to_its_owner_with_its_buffers() {
        let lanes = HandoverLanes::new(2);
        let mut batch = lanes.fresh(0);
        batch.push(session(1), None, &[7; 1400]);
        let buffer = batch.bytes.as_ptr();
        assert!(lanes.admit(1, &batch));
        assert_eq!(lanes.queued_bytes(1), 1400);
        let mut delivered = 0;
        lanes.deliver(1, batch, |_, _, packet| delivered += packet.len());
        assert_eq!(delivered, 1400);
        assert_eq!(lanes.queued_bytes(1), 0);
        // Worker 1's next batch is a new one; worker 0 gets its own back.
        assert_eq!(lanes.fresh(1).bytes.capacity(), 0);
        let again = lanes.fresh(0);
        assert!(again.is_empty());
        assert_eq!(again.bytes.as_ptr(), buffer);
        assert!(again.bytes.capacity() >= 1400);
    }

    #[test]
    fn batches_waiting_for_one_worker_are_bounded_in_bytes() {
        let lanes = HandoverLanes::new(2);
        let mut admitted = 0;
        let mut refused = 0;
        for _ in 0..(MAX_QUEUED_BYTES / MAX_BATCH_BYTES + 3) {
            let mut batch = PacketBatch::new(0);
            batch.push(session(1), None, &vec![0; MAX_BATCH_BYTES]);
            if lanes.admit(1, &batch) {
                admitted += 1;
            } else {
                refused += 1;
                lanes.recycle(batch);
            }
        }
        assert_eq!(admitted, MAX_QUEUED_BYTES / MAX_BATCH_BYTES);
        assert_eq!(refused, 3);
        assert_eq!(lanes.queued_bytes(1), MAX_QUEUED_BYTES);
        // The other worker's lane is its own.
        let mut small = PacketBatch::new(1);
        small.push(session(1), None, &[0; 100]);
        assert!(lanes.admit(0, &small));
    }

    fn batch_of(bytes: usize) -> PacketBatch {
        let mut batch = PacketBatch::new(0);
        batch.push(session(1), None, &vec![0x45; bytes]);
        batch
    }

    /// At either bound, the bytes waiting for the worker or the mailbox's
    /// batches, a batch is dropped with its packets named for their
    /// counter, the room it took is given back, and its buffers go home.
    #[test]
    fn a_batch_past_either_bound_is_dropped_counted_and_its_buffers_come_home() {
        let lanes = HandoverLanes::new(2);
        let (small_tx, _small_rx) = crate::worker::mailbox::mailbox::<WorkerMsg>(1).unwrap();
        assert_eq!(lanes.send(1, batch_of(1400), &small_tx), Ok(()));
        let refused = lanes.send(1, batch_of(700), &small_tx);
        assert_eq!(
            refused,
            Err(Dropped {
                event: Event::MailboxFull,
                packets: 1
            })
        );
        assert_eq!(
            lanes.queued_bytes(1),
            1400,
            "the refused batch's room was given back"
        );
        assert!(
            lanes.fresh(0).bytes.capacity() >= 700,
            "its buffers came home"
        );

        let lanes = HandoverLanes::new(2);
        let (tx, _rx) = crate::worker::mailbox::mailbox::<WorkerMsg>(4096).unwrap();
        let fit = MAX_QUEUED_BYTES / MAX_BATCH_BYTES;
        for _ in 0..fit {
            assert_eq!(lanes.send(1, batch_of(MAX_BATCH_BYTES), &tx), Ok(()));
        }
        assert_eq!(
            lanes.send(1, batch_of(MAX_BATCH_BYTES), &tx),
            Err(Dropped {
                event: Event::MailboxFull,
                packets: 1
            })
        );
        assert_eq!(lanes.queued_bytes(1), MAX_QUEUED_BYTES);
        assert_eq!(tx.stats().batches_sent, fit as u64);
        assert!(lanes.fresh(0).bytes.capacity() >= MAX_BATCH_BYTES);
    }

    #[test]
    fn a_worker_keeps_a_bounded_number_of_spare_batches() {
        let lanes = HandoverLanes::new(1);
        for _ in 0..SPARES_PER_WORKER + 5 {
            let mut batch = PacketBatch::new(0);
            batch.push(session(1), None, &[0; 64]);
            lanes.recycle(batch);
        }
        let mut kept = 0;
        while lanes.lanes[0].spares_rx.try_recv().is_ok() {
            kept += 1;
        }
        assert_eq!(kept, SPARES_PER_WORKER);
    }
}
