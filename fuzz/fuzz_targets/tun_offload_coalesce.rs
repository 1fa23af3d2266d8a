//! Coalescing client packets for the TUN device
//! (`sstpd::tun::offload::Coalescer`): arbitrary packets in arbitrary
//! order. Every packet passes: alone and unchanged behind a zeroed header,
//! or merged into a super-packet whose header agrees with it; the batch
//! stays within its bounds.
//!
//! Input: one byte of limits (bit 0: UDP, bits 1-3: flows, bits 4-7:
//! packets), then packets, each behind its length (2 bytes, big-endian).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::tun::offload::{
    CoalesceLimits, Coalescer, Offload, Pushed, VirtioNetHdr, MAX_PACKET_LEN, VIRTIO_NET_HDR_LEN,
};

fuzz_target!(|data: &[u8]| {
    let Some((&limits, mut rest)) = data.split_first() else {
        return;
    };
    let limits = CoalesceLimits {
        udp: limits & 1 != 0,
        max_flows: usize::from((limits >> 1) & 0x07),
        max_packets: usize::from(limits >> 4) + 1,
    };
    let mut coalescer = Coalescer::new(limits);
    let mut pushed_since_clear = 0;
    while let Some((&[high, low], tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes([high, low])).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        let outcome = match coalescer.push(packet) {
            Ok(outcome) => outcome,
            Err(_) => {
                check(&coalescer, pushed_since_clear);
                coalescer.clear();
                pushed_since_clear = 0;
                coalescer
                    .push(packet)
                    .expect("an empty batch takes a packet")
            }
        };
        pushed_since_clear += 1;
        if outcome == Pushed::Single {
            let last = coalescer.packets().last().expect("the packet just pushed");
            assert_eq!(&last[..VIRTIO_NET_HDR_LEN], &[0; VIRTIO_NET_HDR_LEN]);
            assert_eq!(&last[VIRTIO_NET_HDR_LEN..], packet);
        }
    }
    check(&coalescer, pushed_since_clear);
});

fn check(coalescer: &Coalescer, pushed: usize) {
    assert!(coalescer.len() <= pushed);
    for packet in coalescer.packets() {
        let header = VirtioNetHdr::decode(packet).expect("a whole header");
        if header == VirtioNetHdr::NONE {
            continue;
        }
        let packet = &packet[VIRTIO_NET_HDR_LEN..];
        assert!(packet.len() <= MAX_PACKET_LEN);
        assert!(
            matches!(header.layout(packet), Ok(Offload::Segment(_))),
            "a merged packet's header agrees with it"
        );
    }
}
