//! Both SSTP state machines ([MS-SSTP] 3.1 to 3.3) driven by arbitrary
//! input: the first byte picks the role, whether the HTTP exchange is done
//! first and the chunk size; each chunk also moves the virtual clock. What
//! it sends must come out as whole units (one TLS record each).

#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sstpd::proto::sstp::{CertHashes, ClientHandshake, SstpConfig, SstpConnection, Transmit};

const SSTPC_REQUEST: &[u8] = b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 18446744073709551615\r\nSSTPCORRELATIONID: {6BAA1E45-9937-77B0-567472AB}\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let server = first & 0x01 != 0;
    let http_first = first & 0x02 != 0;
    let chunk = usize::from(first >> 2).max(1);
    let base = Instant::now();
    let config = Arc::new(SstpConfig::default());
    let cert = CertHashes::of_der(b"fuzz certificate");
    let mut conn = if server {
        SstpConnection::server(config, base, cert, [0x5a; 32])
    } else {
        let handshake = ClientHandshake::new("fuzz", "{fuzz}").expect("valid header values");
        SstpConnection::client(config, base, handshake, cert)
    };
    if http_first {
        let head: &[u8] = if server {
            SSTPC_REQUEST
        } else {
            b"HTTP/1.1 200 OK\r\n\r\n"
        };
        conn.handle_input(base, head, &mut |_| {});
    }
    let mut now = base;
    let mut out = Transmit::new();
    for (i, piece) in input.chunks(chunk).enumerate() {
        conn.handle_input(now, piece, &mut |frame| assert!(!frame.is_empty()));
        if i == 1 {
            conn.set_hlak(now, [0; 32]);
        }
        let _ = conn.send_ppp(piece, &mut out);
        conn.poll_transmit(now, &mut out);
        // Each unit is one HTTP head or one SSTP packet, whatever came in.
        out.assert_whole_units();
        out.clear();
        while conn.poll_event().is_some() {}
        now += Duration::from_secs(u64::from(piece[0] % 8) * 10);
        conn.handle_timeout(now);
        if conn.is_closed() {
            assert_eq!(conn.poll_timeout(), None);
        }
    }
});
