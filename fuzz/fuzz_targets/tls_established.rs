//! The record layer of an established TLS connection after sstpd takes it
//! over from rustls (`sstpd::net::established`), at a server (sstpd) or a
//! client (sstp-loadgen): records sealed with the peer's real keys (any
//! content type and payload, the peer's KeyUpdates) and raw bytes, opened
//! at our end in two pieces. No panic; an error leaves the alert that
//! names it to send (unless the peer's own alert ended the connection)
//! and nothing opens after it; a stream of data records and KeyUpdates
//! opens to exactly the data sealed.
//!
//! Input: one setup byte (bit 0: TLS 1.3; bit 1: our end is the client;
//! bits 2-3: the suite; bits 4-7: where the stream is split), then items:
//! a kind byte, a length byte and that many bytes of payload.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ContentType, ServerConfig, SupportedCipherSuite};
use sstpd::net::established::EstablishedRecords;
use sstpd::net::tls_records::testing::{configs, handshake};
use sstpd::net::tls_records::{Outgoing, UnbufferedTls, UserspaceRecords};

/// A server and a client configuration per suite: the three TLS 1.3
/// suites, then the three TLS 1.2 ones an ECDSA certificate can use.
fn per_suite() -> &'static [(Arc<ServerConfig>, Arc<ClientConfig>)] {
    static CONFIGS: OnceLock<Vec<(Arc<ServerConfig>, Arc<ClientConfig>)>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_der: CertificateDer<'static> = cert.cert.der().clone();
        let key_der = cert.signing_key.serialize_der();
        let mut suites: Vec<SupportedCipherSuite> = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .into_iter()
            .filter(|s| match s {
                SupportedCipherSuite::Tls13(_) => true,
                SupportedCipherSuite::Tls12(_) => format!("{:?}", s.suite()).contains("ECDSA"),
            })
            .collect();
        suites.sort_by_key(|s| matches!(s, SupportedCipherSuite::Tls12(_)));
        suites
            .into_iter()
            .map(|suite| {
                let version = match suite {
                    SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
                    SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
                };
                let (mut server, client) =
                    configs(cert_der.clone(), key_der.clone(), version, Some(suite));
                server.send_tls13_tickets = 0;
                (Arc::new(server), Arc::new(client))
            })
            .collect()
    })
}

/// Both ends of a connection handshaken over `per_suite()[index]`, each
/// taken over from rustls: (ours, the peer).
fn established(index: usize, client_is_ours: bool) -> (EstablishedRecords, EstablishedRecords) {
    let (server_config, client_config) = per_suite()[index].clone();
    let server = rustls::server::UnbufferedServerConnection::new(server_config).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let client = rustls::client::UnbufferedClientConnection::new(client_config, name).unwrap();
    let (server, client) = handshake(
        UserspaceRecords::new(UnbufferedTls::from(server)),
        UserspaceRecords::new(UnbufferedTls::from(client)),
    );
    let take = |records: UserspaceRecords| {
        EstablishedRecords::take_over(records.into_tls().unwrap()).unwrap()
    };
    let (server, client) = (take(server), take(client));
    if client_is_ours {
        (client, server)
    } else {
        (server, client)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut items)) = data.split_first() else {
        return;
    };
    let tls13 = setup & 1 == 1;
    let index = usize::from((setup >> 2) & 3) % 3 + if tls13 { 0 } else { 3 };
    let (mut ours, mut peer) = established(index, setup & 2 == 2);

    // The peer's bytes on the wire.
    let mut bytes = Vec::new();
    let mut sent = Vec::new();
    let mut only_data = true;
    while let Some((&[kind, len], rest)) = items.split_first_chunk::<2>() {
        let payload = &rest[..rest.len().min(usize::from(len))];
        items = &rest[payload.len()..];
        let mut record = Outgoing::default();
        let typ = match kind % 6 {
            0 => ContentType::ApplicationData,
            1 => ContentType::Alert,
            2 => ContentType::Handshake,
            3 => ContentType::from(kind >> 3),
            4 if tls13 => {
                // A KeyUpdate that moves the peer to its next key.
                peer.request_key_update().unwrap();
                peer.take_output(&mut record);
                bytes.extend_from_slice(record.filled());
                continue;
            }
            _ => {
                bytes.extend_from_slice(payload);
                only_data = false;
                continue;
            }
        };
        peer.seal_any_record(typ, payload, &mut record).unwrap();
        bytes.extend_from_slice(record.filled());
        if typ == ContentType::ApplicationData {
            sent.extend_from_slice(payload);
        } else {
            only_data = false;
        }
    }
    let split = bytes.len() * usize::from(setup >> 4) / 15;
    let mut incoming = bytes[..split].to_vec();
    let mut plaintext = Vec::new();
    let mut result = ours.open(&mut incoming, &mut plaintext);
    if result.is_ok() {
        incoming.extend_from_slice(&bytes[split..]);
        result = ours.open(&mut incoming, &mut plaintext);
    }
    match result {
        Ok(_) => {
            assert!(!ours.has_failed());
            if only_data {
                assert_eq!(plaintext, sent);
            }
        }
        Err(rustls::Error::AlertReceived(_)) => assert!(ours.has_failed()),
        Err(e) => {
            assert!(!only_data, "{e:?} from data and KeyUpdates alone");
            assert!(ours.has_output(), "{e:?}: the alert");
            let mut more = b"more".to_vec();
            assert!(ours.open(&mut more, &mut plaintext).is_err());
        }
    }
});
