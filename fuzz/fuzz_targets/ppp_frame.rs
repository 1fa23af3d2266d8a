//! PPP frames ([RFC 1661] 2): the frame, control packet and option-list
//! parsers on arbitrary bytes, then the same bytes as one frame into a
//! server link in the Network phase (LCP open, IPCP and IPv6CP
//! negotiating).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::testing::link_pair::fuzz_ppp_frame;

fuzz_target!(|data: &[u8]| {
    fuzz_ppp_frame(data);
});
