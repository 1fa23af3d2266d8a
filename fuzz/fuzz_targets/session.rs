//! A whole client and server `Session` (SSTP, PPP, authentication, crypto
//! binding) on arbitrary sequences of relayed and injected frames,
//! authenticator answers delivered at arbitrary times (stale ones
//! included) and timer runs. The driver and its invariants (no IP before
//! Call Connected, the authenticated name is the accepted request's,
//! bounded queues) live in `sstpd::testing::hostile::fuzz_session`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sstpd::testing::hostile::fuzz_session(data);
});
