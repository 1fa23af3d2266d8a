//! The link's queue of outgoing control frames, in the order they were
//! produced (so an authentication Failure precedes the LCP
//! Terminate-Request that follows it).

use std::collections::VecDeque;

use super::frame::{write_header, HeaderFormat, DEFAULT_MRU};
use super::packet::{write_control, HEADER_LEN};

/// Frames held before the owner drains them with `poll_transmit`. Every
/// input produces at most a handful, so hitting this means the owner stopped
/// draining; further frames are dropped (and counted) rather than grown
/// without bound.
const MAX_QUEUED_FRAMES: usize = 64;

/// Ordered queue of whole outgoing frames (header included).
#[derive(Debug)]
pub struct Outbox {
    frames: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    /// The largest Information field the peer accepts (its MRU), for
    /// packets that quote peer data (Code-Reject, Protocol-Reject,
    /// Echo-Reply) and must be truncated to fit ([RFC 1661] 5.6, 5.7).
    peer_mru: usize,
    overflowed: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            frames: VecDeque::new(),
            spare: Vec::new(),
            peer_mru: usize::from(DEFAULT_MRU),
            overflowed: 0,
        }
    }
}

impl Outbox {
    /// Sets the peer's MRU used to truncate quoted data.
    pub fn set_peer_mru(&mut self, mru: u16) {
        self.peer_mru = usize::from(mru);
    }

    /// Frames dropped because the queue was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Queues a frame built by `build` (which appends the Information
    /// field after the header this writes). Returns `false` if the queue was
    /// full and nothing was queued.
    pub fn push_frame(&mut self, protocol: u16, build: impl FnOnce(&mut Vec<u8>)) -> bool {
        self.push_frame_if(protocol, |frame| {
            build(frame);
            true
        })
    }

    /// Like [`Outbox::push_frame`], for a producer that may have nothing to
    /// send: `build` returns `false` to withdraw the frame.
    pub fn push_frame_if(
        &mut self,
        protocol: u16,
        build: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        if self.frames.len() >= MAX_QUEUED_FRAMES {
            self.overflowed += 1;
            return false;
        }
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        write_header(protocol, HeaderFormat::FULL, &mut frame);
        let header_len = frame.len();
        if build(&mut frame) && frame.len() > header_len {
            self.frames.push_back(frame);
            true
        } else {
            self.recycle(frame);
            false
        }
    }

    /// Queues a control packet whose Data is the concatenation of `parts`.
    pub fn send_control(&mut self, protocol: u16, code: u8, identifier: u8, parts: &[&[u8]]) {
        self.push_frame(protocol, |frame| {
            write_control(code, identifier, parts, frame)
        });
    }

    /// Queues a control packet `head ‖ quoted`, cutting `quoted` so the
    /// packet fits the peer's MRU.
    pub fn send_control_quoting(
        &mut self,
        protocol: u16,
        code: u8,
        identifier: u8,
        head: &[u8],
        quoted: &[u8],
    ) {
        let room = self.peer_mru.saturating_sub(HEADER_LEN + head.len());
        let quoted = quoted.get(..room).unwrap_or(quoted);
        self.send_control(protocol, code, identifier, &[head, quoted]);
    }

    /// Moves the oldest frame to the end of `buf`; `false` when empty.
    #[must_use]
    pub fn pop_into(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.frames.pop_front() {
            Some(frame) => {
                buf.extend_from_slice(&frame);
                self.recycle(frame);
                true
            }
            None => false,
        }
    }

    fn recycle(&mut self, frame: Vec<u8>) {
        if self.spare.len() < 8 {
            self.spare.push(frame);
        }
    }

    /// Gives back the memory of an empty queue and of the spare frames
    /// (the link is idle; the next frame allocates again).
    pub fn release_idle_capacity(&mut self) {
        crate::proto::release_if_empty(&mut self.frames);
        self.spare = Vec::new();
    }

    /// Number of frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_with_full_headers() {
        let mut outbox = Outbox::default();
        outbox.send_control(0xc021, 5, 1, &[]);
        outbox.send_control(0x8021, 1, 2, &[&[3, 6, 0, 0, 0, 0]]);
        let mut buf = Vec::new();
        assert!(outbox.pop_into(&mut buf));
        assert_eq!(buf, [0xff, 0x03, 0xc0, 0x21, 5, 1, 0, 4]);
        assert!(outbox.pop_into(&mut buf), "appends to the buffer");
        assert_eq!(
            &buf[8..],
            [0xff, 0x03, 0x80, 0x21, 1, 2, 0, 10, 3, 6, 0, 0, 0, 0]
        );
        assert!(!outbox.pop_into(&mut buf));
    }

    #[test]
    fn quoted_data_is_truncated_to_peer_mru() {
        let mut outbox = Outbox::default();
        outbox.set_peer_mru(10);
        outbox.send_control_quoting(0xc021, 8, 1, &[0x80, 0xfd], &[0xaa; 20]);
        let mut buf = Vec::new();
        assert!(outbox.pop_into(&mut buf));
        // 4-octet PPP header + Information of exactly the MRU (10).
        assert_eq!(buf.len(), 4 + 10);
        assert_eq!(&buf[4..10], [8, 1, 0, 10, 0x80, 0xfd]);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let mut outbox = Outbox::default();
        for _ in 0..MAX_QUEUED_FRAMES + 3 {
            outbox.send_control(0xc021, 9, 0, &[]);
        }
        assert_eq!(outbox.len(), MAX_QUEUED_FRAMES);
        assert_eq!(outbox.overflowed(), 3);
    }
}
