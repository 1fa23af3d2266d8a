//! The server's parser of the `SSTP_DUPLEX_POST` request ([MS-SSTP]
//! 3.2.4.1, 4.1): the input is fed whole and split in two at a point taken
//! from the first byte; both ways must give the same answer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sstpd::proto::sstp::http::{Parsed, RequestParser, DEFAULT_MAX_HEAD_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&first, request)) = data.split_first() else {
        return;
    };
    let whole = RequestParser::new(DEFAULT_MAX_HEAD_LEN).feed(request);
    let at = usize::from(first).min(request.len());
    let mut parser = RequestParser::new(DEFAULT_MAX_HEAD_LEN);
    let split = match parser.feed(&request[..at]) {
        Ok(Parsed::NeedMore) => parser.feed(&request[at..]).map(|parsed| match parsed {
            Parsed::Done { message, consumed } => Parsed::Done {
                message,
                consumed: consumed + at,
            },
            Parsed::NeedMore => Parsed::NeedMore,
        }),
        other => other,
    };
    assert_eq!(whole, split);
    if let Ok(Parsed::Done { consumed, .. }) = whole {
        assert!(consumed <= request.len());
    }
    if let Err(error) = whole {
        let mut out = Vec::new();
        error.write_response(&mut out);
        assert!(out.starts_with(b"HTTP/1.1 4") || out.starts_with(b"HTTP/1.1 5"));
    }
});
