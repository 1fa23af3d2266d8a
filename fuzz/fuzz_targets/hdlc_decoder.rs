//! The RFC 1662 async-HDLC decoder over arbitrary chunks of arbitrary
//! bytes: it must never panic, never yield a frame above its maximum, and
//! every frame it yields must survive re-encoding and decoding unchanged.
//!
//! The first octet picks the maximum frame length (times 16) and the chunk
//! size; the second the receive ACCM (zero or the default).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::testing::hdlc::{HdlcDecoder, HdlcEncoder, DEFAULT_ACCM};

fuzz_target!(|data: &[u8]| {
    let [shape, accm, stream @ ..] = data else {
        return;
    };
    let max_frame_len = usize::from(*shape) * 16;
    let chunk_len = usize::from(shape % 7) + 1;
    let receive_accm = if accm & 1 == 0 { DEFAULT_ACCM } else { 0 };
    let mut decoder = HdlcDecoder::new(max_frame_len);
    decoder.set_receive_accm(receive_accm);
    let encoder = HdlcEncoder::new(DEFAULT_ACCM);
    let mut checker = HdlcDecoder::new(max_frame_len);
    let mut framed = Vec::new();
    for chunk in stream.chunks(chunk_len) {
        let mut input = chunk;
        while let Some(item) = decoder.decode(&mut input) {
            let Ok(frame) = item else {
                continue;
            };
            assert!(frame.len() <= max_frame_len);
            framed.clear();
            encoder.encode(frame, &mut framed);
            let mut again = framed.as_slice();
            let decoded = checker.decode(&mut again);
            assert_eq!(decoded, Some(Ok(frame)));
            assert!(again.is_empty());
        }
    }
});
