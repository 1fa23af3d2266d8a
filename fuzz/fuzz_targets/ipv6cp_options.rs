//! IPv6CP ([RFC 5072]) on a link in the Network phase whose IPv6CP is
//! negotiating. Input as for `lcp_options`: a flags byte (0x01 client),
//! then `code, identifier, length, options` records.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::testing::link_pair::fuzz_ipv6cp_options;

fuzz_target!(|data: &[u8]| {
    fuzz_ipv6cp_options(data);
});
