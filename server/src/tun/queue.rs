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
            max_free,
        }
    }

    /// Copies `packet` into a queued buffer; `false` when the queue is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if self.queued.len() >= self.max_queued {
            return false;
        }
        let mut buf = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_size));
        buf.clear();
        buf.extend_from_slice(packet);
        self.queued.push_back(buf);
        true
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
        self.queued.drain(..n).collect()
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
    }
}
