//! RADIUS Framed-Route values ([RFC 2865] 5.22), as an Access-Accept
//! carries them: the parser (a parsed route prints back to itself), then
//! the routes claimed in a table with the default pool reserved and
//! looked up from the addresses the input names.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use sstpd::proto::route::FramedRoute;
use sstpd::routing::framed_route::{parse_framed_routes, FramedRouteTable};
use sstpd::routing::session_table::SessionRef;

fuzz_target!(|data: &[u8]| {
    // One attribute value per line, as a reply would list them.
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for value in &values {
        if let Ok(Ok(route)) = std::str::from_utf8(value).map(FramedRoute::parse) {
            assert_eq!(FramedRoute::parse(&route.to_string()), Ok(route));
        }
    }
    let (routes, ignored) = parse_framed_routes(values.iter().copied());
    assert_eq!(routes.len() + ignored, values.len());
    let table =
        FramedRouteTable::new([(Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 0, 254))]);
    let client = Ipv4Addr::new(10, 99, 0, 10);
    for (slot, chunk) in routes.chunks(4).enumerate() {
        let owner = SessionRef {
            worker: 0,
            slot: slot as u32,
            generation: 1,
        };
        let claimed = table.claim(owner, if slot % 2 == 0 { "a" } else { "b" }, client, chunk);
        assert!(claimed.installed.len() + claimed.refused.len() <= chunk.len());
    }
    let mut reader = table.reader();
    for route in &routes {
        let _ = table.lookup(&mut reader, route.prefix.addr());
        let _ = table.lookup(&mut reader, route.prefix.last());
    }
});
