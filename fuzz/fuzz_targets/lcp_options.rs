//! LCP ([RFC 1661] 5, 6) on a link negotiating it. The first byte picks the
//! role and configuration (`sstpd::testing::link_pair::fuzz_config`); the
//! rest is a sequence of `code, identifier, length, options` records fed as
//! LCP packets, with code 0x7f acknowledging the link's own request and the
//! 0x80 bit running its timers first.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::testing::link_pair::fuzz_lcp_options;

fuzz_target!(|data: &[u8]| {
    fuzz_lcp_options(data);
});
