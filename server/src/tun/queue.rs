//! A bounded queue of IP packets waiting to be written to a TUN queue,
//! with recycled buffers so the steady state allocates nothing.
//!
//! The server's workers keep one per worker in front of their TUN queue;
//! the load generator's `tun` mode one per session. A full queue refuses
//! the packet and the caller counts the drop: memory never grows with the
//! load.

use std::collections::VecDeque;

/// Packets up to this size are queued in small buffers, so that a queue of
/// small packets (the common case under a packets-per-second load) costs
/// memory in proportion to the packets, not to the MTU.
pub const SMALL_PACKET: usize = 256;

/// Packets waiting to be written, and buffers to reuse.
///
/// Two bounds hold at once: a number of packets and a number of bytes of
/// buffer capacity (what the queue really holds in memory, recycled
/// buffers included in neither). Buffers come in two sizes,
/// [`SMALL_PACKET`] and the MTU's, each with its own free list.
#[derive(Debug)]
pub struct PacketQueue {
    queued: VecDeque<Vec<u8>>,
    /// Capacity of the queued buffers, in bytes.
    queued_bytes: usize,
    free_small: Vec<Vec<u8>>,
    free_full: Vec<Vec<u8>>,
    buffer_size: usize,
    max_queued: usize,
    max_bytes: usize,
    /// Buffers kept for reuse at most, per size.
    max_free: usize,
}

impl PacketQueue {
    /// A queue of at most `max_queued` packets, whose buffers are sized
    /// for `mtu` (at least 1,500 bytes) or for [`SMALL_PACKET`], and of which
    /// up to `max_free` of each size are kept for reuse. Without
    /// [`with_max_bytes`](Self::with_max_bytes), the bytes are bounded
    /// only through the packets.
    pub fn new(mtu: usize, max_queued: usize, max_free: usize) -> Self {
        let buffer_size = mtu.max(1500) + 64;
        PacketQueue {
            queued: VecDeque::new(),
            queued_bytes: 0,
            free_small: Vec::new(),
            free_full: Vec::new(),
            buffer_size,
            max_queued,
            max_bytes: max_queued.saturating_mul(buffer_size),
            max_free,
        }
    }

    /// Bounds the capacity of the queued buffers to `max_bytes` as well.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Copies `packet` into a queued buffer; `false` when the queue is full
    /// (by packets or by bytes).
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let small = packet.len() <= SMALL_PACKET;
        self.push_sized(packet.len(), small, |buf| buf.extend_from_slice(packet))
    }

    /// Queues a packet of `len` bytes that `fill` puts into an empty
    /// MTU-sized buffer (it may also swap the buffer for one of its own
    /// holding the packet, a super-packet, and keep the empty one); `false`
    /// when the queue is full, and then `fill` is not called.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        self.push_sized(len, false, fill)
    }

    fn push_sized(&mut self, len: usize, small: bool, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        let (free, size) = if small {
            (&mut self.free_small, SMALL_PACKET)
        } else {
            (&mut self.free_full, self.buffer_size.max(len))
        };
        if self.queued.len() >= self.max_queued
            || self.queued_bytes.saturating_add(size) > self.max_bytes
        {
            return false;
        }
        let mut buf = free.pop().unwrap_or_else(|| Vec::with_capacity(size));
        buf.clear();
        fill(&mut buf);
        self.queued_bytes += buf.capacity();
        self.queued.push_back(buf);
        true
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Bytes of buffer capacity the waiting packets hold.
    pub fn bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether the queue is filled to at least one `one_in`-th of either
    /// bound (the callers' high- and low-water marks).
    pub fn filled_to(&self, one_in: usize) -> bool {
        self.queued.len() >= self.max_queued / one_in
            || self.queued_bytes >= self.max_bytes / one_in
    }

    /// The oldest `max` packets (fewer if fewer are waiting).
    pub fn take_batch(&mut self, max: usize) -> Vec<Vec<u8>> {
        let n = self.queued.len().min(max);
        let batch: Vec<Vec<u8>> = self.queued.drain(..n).collect();
        let taken: usize = batch.iter().map(Vec::capacity).sum();
        self.queued_bytes -= taken;
        batch
    }

    /// Gives a written packet's buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        let free = if buf.capacity() < self.buffer_size {
            &mut self.free_small
        } else {
            &mut self.free_full
        };
        if free.len() < self.max_free {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_recycles_buffers() {
        let mut q = PacketQueue::new(1400, 100, 16);
        for _ in 0..100 {
            assert!(q.push(&[0x45; 60]));
        }
        assert!(!q.push(&[0x45; 60]), "full queue refuses");
        let batch = q.take_batch(16);
        assert_eq!(batch.len(), 16);
        assert_eq!(q.len(), 84);
        assert_eq!(batch[0], vec![0x45; 60]);
        let cap = batch[0].capacity();
        for b in batch {
            q.recycle(b);
        }
        assert!(q.push(&[1, 2, 3]));
        let last = q.queued.back().unwrap();
        assert_eq!(last.as_slice(), &[1, 2, 3]);
        assert_eq!(last.capacity(), cap, "a recycled buffer is reused");
        assert_eq!(q.take_batch(1000).len(), 85);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn small_packets_cost_small_buffers() {
        let mut q = PacketQueue::new(1400, 8192, 16);
        for _ in 0..1000 {
            assert!(q.push(&[0x45; 64]));
        }
        assert_eq!(q.bytes(), 1000 * SMALL_PACKET);
        assert!(q.push(&[0x45; 1400]));
        assert_eq!(q.bytes(), 1000 * SMALL_PACKET + 1500 + 64);
        let batch = q.take_batch(2000);
        assert_eq!(q.bytes(), 0);
        for b in batch {
            q.recycle(b);
        }
        assert_eq!(q.free_small.len(), 16);
        assert_eq!(q.free_full.len(), 1);
    }

    #[test]
    fn byte_limit_refuses_and_marks_water() {
        let mut q = PacketQueue::new(1400, 8192, 16).with_max_bytes(10 * 1564);
        for _ in 0..10 {
            assert!(q.push(&[0x45; 1400]));
        }
        assert!(q.filled_to(2) && q.filled_to(1));
        assert!(!q.push(&[0x45; 1400]), "the byte bound refuses");
        assert!(!q.push(&[0x45; 20]), "also a small packet");
        q.take_batch(6);
        assert!(!q.filled_to(2));
        assert!(q.push(&[0x45; 20]));
    }

    #[test]
    fn queue_is_bounded_in_bytes_and_takes_swapped_buffers() {
        let mut q = PacketQueue::new(1400, 100, 16).with_max_bytes(100_000);
        let mut super_packet = vec![0x45; 65_000];
        let capacity = super_packet.capacity();
        assert!(q.push_with(super_packet.len(), |buf| std::mem::swap(
            buf,
            &mut super_packet
        )));
        assert!(
            super_packet.is_empty(),
            "the caller got an empty buffer back"
        );
        assert_eq!(q.bytes(), capacity);
        let mut refused = vec![0x45; 40_000];
        assert!(!q.push_with(refused.len(), |buf| std::mem::swap(buf, &mut refused)));
        assert_eq!(
            refused.len(),
            40_000,
            "a refused packet stays with the caller"
        );
        assert!(q.push(&[0x45; 30_000]));
        let batch = q.take_batch(1);
        assert_eq!(batch[0].len(), 65_000);
        assert!(q.bytes() >= 30_000 && q.bytes() < 35_000);
    }
}
