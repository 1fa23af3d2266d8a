//! IPCP ([RFC 1332], [RFC 1877]) on a link in the Network phase whose IPCP
//! is negotiating. Input as for `lcp_options`: a flags byte (0x01 client,
//! 0x20 name servers), then `code, identifier, length, options` records.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::testing::link_pair::fuzz_ipcp_options;

fuzz_target!(|data: &[u8]| {
    fuzz_ipcp_options(data);
});
