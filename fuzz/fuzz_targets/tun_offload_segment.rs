//! The TUN device's virtio-net header and GSO segmentation
//! (`sstpd::tun::offload`): arbitrary header, segment limit and packet.
//! Whatever the header claims, the answer is segments that fit the limit
//! or an error; the segments handed over in pieces
//! (`Segmenter::for_each_segment`, what sstpd's workers use) are the
//! segments written out; and segments merged again by the coalescer and
//! cut again are the same segments, byte for byte.
//!
//! Input: 10 bytes of header, the limit (2 bytes, big-endian), the
//! headroom (1 byte), then the packet.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::tun::offload::{
    CoalesceLimits, Coalescer, Segmenter, Split, VirtioNetHdr, VIRTIO_NET_HDR_LEN,
};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = VirtioNetHdr::decode(data) else {
        return;
    };
    assert_eq!(VirtioNetHdr::decode(&header.encode()), Ok(header));
    let Some(&[high, low, headroom]) = data.get(VIRTIO_NET_HDR_LEN..VIRTIO_NET_HDR_LEN + 3) else {
        return;
    };
    let segmenter = Segmenter {
        max_packet_len: usize::from(u16::from_be_bytes([high, low])),
        headroom: usize::from(headroom),
    };
    let mut packet = data[VIRTIO_NET_HDR_LEN + 3..].to_vec();
    let mut in_pieces = Vec::new();
    let pieces_split = segmenter.for_each_segment(&header, &mut packet.clone(), |head, rest| {
        in_pieces.push([head, rest].concat());
    });
    let mut out = vec![0u8; 1 << 18];
    let mut spans = Vec::new();
    let split = segmenter.split(&header, &mut packet, &mut out, &mut spans);
    match (&split, &pieces_split) {
        // Only the written form can run out of room.
        (Err(sstpd::tun::offload::OffloadError::OutputTooSmall { .. }), _) => {}
        _ => assert_eq!(split, pieces_split),
    }
    let Ok(Split::Segments(count)) = split else {
        assert!(spans.is_empty());
        return;
    };
    assert_eq!(spans.len(), count);
    let written: Vec<&[u8]> = spans.iter().map(|span| &out[span.clone()]).collect();
    assert_eq!(written, in_pieces);
    let mut end_of_previous = 0;
    for span in &spans {
        assert!(span.start >= end_of_previous + segmenter.headroom);
        assert!(span.len() <= segmenter.max_packet_len);
        end_of_previous = span.end;
    }

    let segments: Vec<&[u8]> = spans.iter().map(|span| &out[span.clone()]).collect();
    let mut coalescer = Coalescer::new(CoalesceLimits {
        max_packets: segments.len(),
        max_flows: 4,
        udp: true,
    });
    for segment in &segments {
        coalescer
            .push(segment)
            .expect("a packet per segment at most");
    }
    let mut again = Vec::new();
    let mut buffer = vec![0u8; 1 << 18];
    let mut cut = Vec::new();
    for merged in coalescer.packets() {
        let header = VirtioNetHdr::decode(merged).expect("a whole header");
        let mut packet = merged[VIRTIO_NET_HDR_LEN..].to_vec();
        let split = Segmenter {
            headroom: 0,
            ..segmenter
        }
        .split(&header, &mut packet, &mut buffer, &mut cut)
        .expect("the coalescer's header agrees with its packet");
        match split {
            Split::Whole => again.push(packet),
            Split::Segments(_) => {
                again.extend(cut.iter().map(|span| buffer[span.clone()].to_vec()))
            }
        }
    }
    assert_eq!(again, segments);
});
