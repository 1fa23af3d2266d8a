//! A bounded queue of IP packets waiting to be written to a TUN queue,
//! with recycled buffers so the steady state allocates nothing.
//!
//! The server's workers keep one per worker in front of their TUN queue;
//! the load generator's `tun` mode one per session. A full queue refuses
//! the packet and the caller counts the drop: memory never grows with the
//! load.

use std::collections::VecDeque;

/// Packets waiting to be written, and buffers to reuse.
#[derive(Debug)]
pub struct PacketQueue {
    queued: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
    buffer_size: usize,
    max_queued: usize,
    /// Bytes of the queued packets, and their bound.
    queued_bytes: usize,
    max_queued_bytes: usize,
    /// Buffers kept for reuse at most.
    max_free: usize,
}

impl PacketQueue {
    /// A queue of at most `max_queued` packets, whose buffers are sized
    /// for `mtu` (at least 1,500 bytes) and of which up to `max_free` are
    /// kept for reuse.
    pub fn new(mtu: usize, max_queued: usize, max_free: usize) -> Self {
        PacketQueue {
            queued: VecDeque::new(),
            free: Vec::new(),
            buffer_size: mtu.max(1500) + 64,
            max_queued,
            queued_bytes: 0,
            max_queued_bytes: usize::MAX,
            max_free,
        }
    }

    /// Bounds the queue in bytes too: a packet that would take the queued
    /// bytes beyond `max` is refused (super-packets of 64 KiB make a
    /// count of packets alone a loose bound).
    pub fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_queued_bytes = max;
        self
    }

    /// Copies `packet` into a queued buffer; `false` when the queue is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        self.push_with(packet.len(), |buf| buf.extend_from_slice(packet))
    }

    /// Queues a packet of `len` bytes that `fill` puts into an empty
    /// buffer (it may also swap the buffer for one of its own holding the
    /// packet, and keep the empty one); `false` when the queue is full,
    /// and then `fill` is not called.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        if self.queued.len() >= self.max_queued
            || self.queued_bytes.saturating_add(len) > self.max_queued_bytes
        {
            return false;
        }
        let mut buf = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_size));
        buf.clear();
        fill(&mut buf);
        self.queued_bytes += buf.len();
        self.queued.push_back(buf);
        true
    }

    /// Bytes of the packets waiting.
    pub fn bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The oldest `max` packets (fewer if fewer are waiting).
    pub fn take_batch(&mut self, max: usize) -> Vec<Vec<u8>> {
        let n = self.queued.len().min(max);
        let batch: Vec<Vec<u8>> = self.queued.drain(..n).collect();
        let taken: usize = batch.iter().map(Vec::len).sum();
        self.queued_bytes -= taken;
        batch
    }

    /// Gives a written packet's buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < self.max_free {
            self.free.push(buf);
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
    fn queue_is_bounded_in_bytes_and_takes_swapped_buffers() {
        let mut q = PacketQueue::new(1400, 100, 16).with_max_bytes(100_000);
        let mut super_packet = vec![0x45; 65_000];
        assert!(q.push_with(super_packet.len(), |buf| std::mem::swap(
            buf,
            &mut super_packet
        )));
        assert!(
            super_packet.is_empty(),
            "the caller got an empty buffer back"
        );
        assert_eq!(q.bytes(), 65_000);
        let mut refused = vec![0x45; 40_000];
        assert!(!q.push_with(refused.len(), |buf| std::mem::swap(buf, &mut refused)));
        assert_eq!(
            refused.len(),
            40_000,
            "a refused packet stays with the caller"
        );
        assert!(q.push(&[0x45; 35_000]));
        assert_eq!(q.bytes(), 100_000);
        let batch = q.take_batch(1);
        assert_eq!(batch[0].len(), 65_000);
        assert_eq!(q.bytes(), 35_000);
    }
}
