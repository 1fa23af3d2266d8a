//! The client's parser of the server's reply ([MS-SSTP] 4.1), fed in
//! chunks whose size is taken from the first byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::proto::sstp::http::{Parsed, ResponseParser, DEFAULT_MAX_HEAD_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&first, response)) = data.split_first() else {
        return;
    };
    let whole = ResponseParser::new(DEFAULT_MAX_HEAD_LEN).feed(response);
    let mut parser = ResponseParser::new(DEFAULT_MAX_HEAD_LEN);
    let mut taken = 0;
    let mut chunked = Ok(Parsed::NeedMore);
    for chunk in response.chunks(usize::from(first).max(1)) {
        chunked = parser.feed(chunk).map(|parsed| match parsed {
            Parsed::Done { message, consumed } => Parsed::Done {
                message,
                consumed: consumed + taken,
            },
            Parsed::NeedMore => Parsed::NeedMore,
        });
        taken += chunk.len();
        if chunked != Ok(Parsed::NeedMore) {
            break;
        }
    }
    assert_eq!(whole, chunked);
});
