//! RADIUS datagrams ([RFC 2865] 3): the packet decoder (a decoded packet
//! re-encodes to the octets it came from, its EAP-Message reassembles), the DAE listener's
//! verification, and the NAS client's `handle_datagram` with requests in
//! flight on both its authentication and accounting servers. The first
//! octet picks the sending server and socket; the rest is the datagram,
//! also tried with its identifier aimed at one in use.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sstpd::radius::attr::{self, Attributes};
use sstpd::radius::client::{Client, ClientConfig, Request, ServerConfig};
use sstpd::radius::packet::{frame, Packet};
use sstpd::radius::{crypt, dae};

const SECRET: &[u8] = b"secret";

fn server(port: u16) -> ServerConfig {
    ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        secret: SECRET.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };

    if let Ok(packet) = Packet::decode(datagram) {
        let framed = frame(datagram).expect("decoded, so framed");
        assert_eq!(packet.encode().expect("decoded, so encodable"), framed);
        // RFC 3579 3.1: a reassembled EAP packet splits back into the
        // same EAP-Message values.
        if let Some(eap) = packet.attributes.eap_message() {
            let mut again = Attributes::new();
            again.push_eap_message(&eap);
            assert_eq!(again.eap_message(), Some(eap));
        }
    }
    let _ = dae::verify_request(datagram, SECRET, selector & 1 == 0);
    let _ = crypt::verify_response(datagram, &[0; 16], SECRET, false);

    let config = ClientConfig {
        auth_servers: vec![server(1812)],
        acct_servers: vec![server(1813)],
        sockets_per_server: 2,
        ..ClientConfig::default()
    };
    let mut client: Client<u8> = Client::with_seed(config, [selector; 32]);
    let now = Instant::now();
    let mut attributes = Attributes::new();
    attributes.push_string(attr::USER_NAME, "user").unwrap();
    for tag in 0..3 {
        let request = Request::access_with_password(attributes.clone(), b"password");
        client.send(now, request, tag).unwrap();
    }
    client
        .send(now, Request::accounting(attributes), 3)
        .unwrap();
    let mut ids = Vec::new();
    while let Some(transmit) = client.poll_transmit() {
        ids.push((transmit.server, transmit.socket, transmit.payload[1]));
    }

    let from = if selector & 2 == 0 {
        server(1812).addr
    } else {
        server(1813).addr
    };
    let socket = usize::from(selector >> 2) % 3;
    // Nothing without the secret can pass: every datagram is dropped.
    assert!(client.handle_datagram(now, from, socket, datagram).is_err());
    if datagram.len() >= 20 {
        let (server, socket, id) = ids[usize::from(selector) % ids.len()];
        let mut aimed = datagram.to_vec();
        aimed[1] = id;
        assert!(client.handle_datagram(now, server, socket, &aimed).is_err());
    }
    client.handle_timeout(now + Duration::from_secs(3600));
    let stats = client.stats();
    assert!(stats.auth_outstanding + stats.acct_outstanding <= 4);
});
