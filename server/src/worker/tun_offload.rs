//! The worker's TUN path with segmentation offload (`tun.offload = "auto"`
//! and the kernel took TSO): every TUN read and write carries a
//! virtio-net header, and a packet may be a super-packet of up to 64 KiB
//! (see `tun::offload` and docs/architecture.md, "Segmentation offload").
//!
//! - Downstream (TUN → client): a read is routed by its destination once,
//!   then cut by [`Segmenter::split`] to the session's MRU, and each
//!   segment is handed to the session as a plain packet is.
//! - Upstream (client → TUN): the packets one socket read of a session
//!   yields, once the core's anti-spoofing and the client-to-client policy
//!   have judged each, are merged by a [`Coalescer`] and queued as one TUN
//!   write per super-packet (a zeroed header before a packet left alone).

use std::cell::RefCell;

use super::{SessionCtx, Worker};
use crate::metrics::{Event, WorkerMetrics};
use crate::tun::offload::{
    CoalesceLimits, Coalescer, OffloadError, Pushed, Segmenter, Split, VirtioNetHdr,
    MAX_PACKET_LEN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_LEN,
};
use crate::tun::TunOffloads;

/// Bytes one TUN read takes: the header and the largest super-packet.
pub(crate) const READ_BUFFER_LEN: usize = VIRTIO_NET_HDR_LEN + MAX_PACKET_LEN;

/// One worker's offload state: the upstream batch, reused from packet to
/// packet. (Downstream needs no buffer: a segment goes from the
/// super-packet straight into its session's plaintext.)
#[derive(Debug)]
pub(crate) struct OffloadPath {
    coalescer: RefCell<Coalescer>,
}

impl OffloadPath {
    pub(crate) fn new(offloads: TunOffloads) -> Self {
        OffloadPath {
            coalescer: RefCell::new(Coalescer::new(CoalesceLimits {
                udp: offloads.uso,
                ..CoalesceLimits::default()
            })),
        }
    }
}

impl Worker {
    /// Routes what one TUN read returned (header, then packet) to the
    /// session of its destination. A super-packet is routed once: its
    /// segments all carry its IP header, so they share its destination.
    pub(super) fn route_offloaded_from_tun(&self, frame: &mut [u8]) {
        let header = match VirtioNetHdr::decode(frame) {
            Ok(header) => header,
            Err(e) => return self.metrics().event(offload_error_event(e)),
        };
        let packet = &mut frame[VIRTIO_NET_HDR_LEN..];
        let Some(owner) = self.destination_owner(packet) else {
            WorkerMetrics::add(&self.metrics().tun_no_session, 1);
            return;
        };
        if usize::from(owner.worker) == self.index {
            self.deliver_offloaded(owner, header, packet);
            return;
        }
        // Handed over whole: the owner's worker cuts it to its session's MRU.
        self.hand_over(owner, Some(header), packet);
    }

    /// Cuts a packet from TUN to the session's MRU and hands each segment
    /// to the session (a packet without GSO whole, its checksum completed),
    /// each byte copied once: into the session's plaintext.
    /// A header the packet contradicts is a counted drop.
    pub(super) fn deliver_offloaded(
        &self,
        to: super::SessionRef,
        header: VirtioNetHdr,
        packet: &mut [u8],
    ) {
        let session = self.sessions.borrow().get(to).cloned();
        let Some(session) = session else {
            WorkerMetrics::add(&self.metrics().tun_no_session, 1);
            return;
        };
        let segmenter = Segmenter {
            max_packet_len: session.ip_transmit_limit(),
            headroom: 0,
        };
        if session.plaintext_full() {
            // Every segment would meet the full queue: dropped (and
            // counted) before the work of cutting and checksumming them.
            // One session sent more than its client takes (a UDP stream
            // at full speed) cost its worker most of its time that way.
            match segmenter.count(&header, packet) {
                Ok(count) => WorkerMetrics::add(&self.metrics().tx_queue_full, count as u64),
                Err(e) => self.metrics().event(offload_error_event(e)),
            }
            session.queue_full(self);
            return;
        }
        // Each segment goes to the session in two pieces, its rebuilt
        // headers and its payload where it was read: one copy of each byte,
        // into the session's plaintext.
        let split = segmenter.for_each_segment(&header, packet, |headers, payload| {
            session.send_ip_gathered(self, headers, payload);
        });
        match split {
            Ok(Split::Whole) => session.send_ip(self, packet),
            Ok(Split::Segments(count)) => {
                let m = self.metrics();
                m.event(Event::TunSuperPacketsRead);
                m.events_n(Event::TunSegmentsCut, count as u64);
            }
            Err(e) => self.metrics().event(offload_error_event(e)),
        }
    }

    /// Adds a client's packet (judged already) to the batch for TUN.
    pub(super) fn coalesce_for_tun(&self, offload: &OffloadPath, packet: &[u8]) {
        let mut coalescer = offload.coalescer.borrow_mut();
        let pushed = match coalescer.push(packet) {
            Ok(pushed) => Ok(pushed),
            Err(_full) => {
                self.queue_coalesced(&mut coalescer);
                coalescer.push(packet)
            }
        };
        match pushed {
            Ok(Pushed::Merged) => self.metrics().event(Event::TunPacketsCoalesced),
            Ok(Pushed::Started | Pushed::Single) => {}
            Err(_full) => WorkerMetrics::add(&self.metrics().tun_write_queue_full, 1),
        }
    }

    /// Queues the batch gathered since the last call for the TUN writer
    /// (after each socket read of a session).
    pub(crate) fn end_tun_batch(&self) {
        if let Some(offload) = &self.offload {
            self.queue_coalesced(&mut offload.coalescer.borrow_mut());
        }
    }

    /// Moves the batch's packets into the TUN write queue (buffers swapped,
    /// not copied); what the queue's bound refuses is counted.
    fn queue_coalesced(&self, coalescer: &mut Coalescer) {
        if coalescer.is_empty() {
            return;
        }
        let mut queue = self.tun_queue.borrow_mut();
        let mut dropped = 0;
        coalescer.drain_buffers(|packet| {
            if !queue.push_with(packet.len(), |buf| std::mem::swap(buf, packet)) {
                dropped += 1;
            }
        });
        drop(queue);
        WorkerMetrics::add(&self.metrics().tun_write_queue_full, dropped);
        self.tun_wake.notify_one();
    }
}

impl SessionCtx {
    /// The largest IP packet to send this client: its MRU, capped by
    /// RADIUS Framed-MTU.
    fn ip_transmit_limit(&self) -> usize {
        usize::from(self.proto.borrow().ppp().transmit_mtu())
    }
}

/// The IP packets and their bytes one TUN write of `frame` (header, then
/// packet) hands the kernel, and whether it is a super-packet.
pub(crate) fn written_packets(frame: &[u8]) -> (u64, u64, bool) {
    let ip_len = frame.len().saturating_sub(VIRTIO_NET_HDR_LEN);
    let Ok(header) = VirtioNetHdr::decode(frame) else {
        return (1, ip_len as u64, false);
    };
    let gso_size = usize::from(header.gso_size);
    if header.gso_type == VIRTIO_NET_HDR_GSO_NONE || gso_size == 0 {
        return (1, ip_len as u64, false);
    }
    let header_len = usize::from(header.hdr_len).min(ip_len);
    let segments = (ip_len - header_len).div_ceil(gso_size).max(1);
    let bytes = ip_len + (segments - 1) * header_len;
    (segments as u64, bytes as u64, true)
}

/// The counter of a packet from TUN dropped for its header.
fn offload_error_event(error: OffloadError) -> Event {
    match error {
        OffloadError::ShortHeader { .. } => Event::TunOffloadShortHeader,
        OffloadError::UnknownFlags(_) => Event::TunOffloadUnknownFlags,
        OffloadError::UnsupportedGsoType(_) => Event::TunOffloadUnsupportedGsoType,
        OffloadError::GsoTypeMismatch { .. } => Event::TunOffloadGsoTypeMismatch,
        OffloadError::ZeroSegmentSize => Event::TunOffloadZeroSegmentSize,
        OffloadError::BadIpHeader => Event::TunOffloadBadIpHeader,
        OffloadError::BadTransportHeader => Event::TunOffloadBadTransportHeader,
        OffloadError::EmptyPayload => Event::TunOffloadEmptyPayload,
        OffloadError::ChecksumNotTransport { .. } => Event::TunOffloadChecksumNotTransport,
        OffloadError::ChecksumOutOfPacket { .. } => Event::TunOffloadChecksumOutOfPacket,
        OffloadError::LimitBelowHeaders { .. } => Event::TunOffloadLimitBelowHeaders,
        OffloadError::DatagramTooLarge { .. } => Event::TunOffloadDatagramTooLarge,
        OffloadError::OutputTooSmall { .. } => Event::TunOffloadOutputTooSmall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tun::offload::OffloadError;

    #[test]
    fn every_offload_error_has_the_counter_of_its_label() {
        let errors = [
            OffloadError::ShortHeader { len: 3 },
            OffloadError::UnknownFlags(0x80),
            OffloadError::UnsupportedGsoType(9),
            OffloadError::GsoTypeMismatch { gso_type: 1 },
            OffloadError::ZeroSegmentSize,
            OffloadError::BadIpHeader,
            OffloadError::BadTransportHeader,
            OffloadError::EmptyPayload,
            OffloadError::ChecksumNotTransport {
                start: 0,
                offset: 0,
            },
            OffloadError::ChecksumOutOfPacket {
                start: 0,
                offset: 0,
            },
            OffloadError::LimitBelowHeaders {
                header_len: 40,
                max: 20,
            },
            OffloadError::DatagramTooLarge {
                len: 2000,
                max: 1400,
            },
            OffloadError::OutputTooSmall { needed: 1 },
        ];
        for error in errors {
            assert_eq!(offload_error_event(error).label(), error.as_str());
        }
    }

    #[test]
    fn a_write_counts_the_segments_of_its_super_packet() {
        let plain = [0u8; VIRTIO_NET_HDR_LEN + 60];
        assert_eq!(written_packets(&plain), (1, 60, false));
        let header = VirtioNetHdr {
            gso_type: crate::tun::offload::VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 52,
            gso_size: 1000,
            ..VirtioNetHdr::NONE
        };
        let mut frame = header.encode().to_vec();
        frame.resize(VIRTIO_NET_HDR_LEN + 52 + 2500, 0);
        assert_eq!(written_packets(&frame), (3, 52 * 3 + 2500, true));
    }
}
