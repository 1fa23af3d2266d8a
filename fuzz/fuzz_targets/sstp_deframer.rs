//! SSTP delineation and decoding ([MS-SSTP] 2.2, 3.1.5.1): the stream is
//! cut into chunks of a size taken from the first input byte, every packet
//! is decoded, and every message that decodes is re-encoded and must decode
//! to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::proto::sstp::wire::{connect_request_defects, Packet};
use sstpd::proto::sstp::Deframer;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let mut deframer = Deframer::new(4095);
    for piece in stream.chunks(chunk) {
        let mut feed = deframer.feed(piece);
        while let Some(item) = feed.next() {
            let Ok(packet) = item else {
                return;
            };
            let Ok(Packet::Control(control)) = Packet::parse(packet) else {
                continue;
            };
            connect_request_defects(&control, |error, _| {
                let _ = (error.status(), error.abort_status(), error.attribute());
            });
            if let Ok(message) = control.message() {
                let mut out = Vec::new();
                message.encode(&mut out);
                match Packet::parse(&out) {
                    Ok(Packet::Control(again)) => assert_eq!(again.message(), Ok(message)),
                    other => panic!("{message:?} re-encoded to {other:?}"),
                }
            }
        }
    }
});
