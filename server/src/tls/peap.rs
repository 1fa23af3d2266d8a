//! The TLS inside PEAP for the client role: [`crate::proto::auth::peap::TunnelTls`]
//! on a rustls client fed with in-memory buffers.
//!
//! The tunnel is capped at TLS 1.2: PEAPv0's MSK is the TLS 1.2 PRF of the
//! master secret with the label `client EAP encryption` ([MS-PEAP]
//! 3.1.5.7), which is what RFC 5705's exporter computes on TLS 1.2 with no
//! context; FreeRADIUS 3.2 and Windows run PEAP on TLS 1.2 by default.
//! Resumption is off: every conversation is a full handshake, so the
//! certificate is checked every time. The server's certificate is verified
//! against the CA given (and its name against the name given), as a
//! Windows client configured with "Verify the server's identity" does;
//! [`ServerVerification::Insecure`] is for benchmarking against servers
//! with self-signed certificates.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::client::{build_client_config, server_name, ClientOptions, ServerVerification};
use super::TlsError;
use crate::config::TlsVersion;
use crate::proto::auth::peap::{PeapError, PeapTunnel, TunnelTls, TunnelTlsConnector};

/// The label of PEAPv0's key derivation ([MS-PEAP] 3.1.5.7).
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
pub const MSK_LABEL: &[u8] = b"client EAP encryption";

/// Starts rustls clients for PEAP conversations.
#[derive(Debug)]
pub struct RustlsPeapConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl RustlsPeapConnector {
    /// A connector verifying the RADIUS server's certificate as
    /// `verification` says, for `name` (the name its certificate must
    /// carry).
    pub fn new(verification: ServerVerification, name: &str) -> Result<Self, TlsError> {
        let options = ClientOptions {
            verification,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls12,
            cipher_suites: None,
            send_sni: false,
            key_log: true,
            secret_extraction: false,
        };
        let mut config = Arc::unwrap_or_clone(build_client_config(&options)?);
        config.resumption = rustls::client::Resumption::disabled();
        Ok(RustlsPeapConnector {
            config: Arc::new(config),
            server_name: server_name(name)?,
        })
    }

    /// This connector as the client role's PEAP setting
    /// ([`crate::proto::auth::AuthConfig::eap_peap`]).
    pub fn into_tunnel(self) -> PeapTunnel {
        PeapTunnel(Arc::new(self))
    }
}

impl TunnelTlsConnector for RustlsPeapConnector {
    fn connect(&self) -> Result<Box<dyn TunnelTls>, PeapError> {
        let conn = rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|_| PeapError::Tls)?;
        Ok(Box::new(RustlsTunnel { conn }))
    }
}

/// One PEAP conversation's TLS client.
#[derive(Debug)]
pub struct RustlsTunnel {
    conn: rustls::ClientConnection,
}

impl TunnelTls for RustlsTunnel {
    fn receive(&mut self, mut records: &[u8]) -> Result<(), PeapError> {
        while !records.is_empty() {
            let read = self
                .conn
                .read_tls(&mut records)
                .map_err(|_| PeapError::Tls)?;
            if let Err(error) = self.conn.process_new_packets() {
                tracing::debug!(%error, "PEAP tunnel refused");
                return Err(PeapError::Tls);
            }
            if read == 0 {
                break;
            }
        }
        Ok(())
    }

    fn transmit(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn read_plaintext(&mut self, out: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn write_plaintext(&mut self, plaintext: &[u8]) {
        // Buffered in rustls until `transmit`; an error here would be a
        // closed connection, which the next `receive` reports.
        let _ = self.conn.writer().write_all(plaintext);
    }

    fn export_msk(&self) -> Option<[u8; 64]> {
        self.conn
            .export_keying_material([0u8; 64], MSK_LABEL, None)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::peap::{PeapMessage, Reassembler, MAX_FRAGMENT_LEN};

    struct Pki {
        ca: rustls::pki_types::CertificateDer<'static>,
        server: rustls::ServerConfig,
    }

    fn pki() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["radius.test".into()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        Pki {
            ca: ca.der().clone(),
            server,
        }
    }

    /// Runs the handshake between the tunnel and an in-process rustls
    /// server, records passing through PEAP framing in fragments.
    fn handshake(
        tunnel: &mut dyn TunnelTls,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), PeapError> {
        for _ in 0..20 {
            let mut to_server = Vec::new();
            tunnel.transmit(&mut to_server);
            let mut cursor = &to_server[..];
            while !cursor.is_empty() {
                server.read_tls(&mut cursor).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            // Through PEAP fragments and back.
            let mut reassembly = Reassembler::default();
            let mut whole = None;
            let chunks: Vec<&[u8]> = to_client.chunks(MAX_FRAGMENT_LEN).collect();
            for (index, chunk) in chunks.iter().enumerate() {
                let more = index + 1 < chunks.len();
                let mut bytes = Vec::new();
                PeapMessage {
                    flags: if more {
                        crate::proto::auth::peap::FLAG_MORE
                    } else {
                        0
                    },
                    version: 0,
                    total_len: (index == 0).then_some(to_client.len() as u32),
                    data: chunk,
                }
                .encode(&mut bytes);
                whole = reassembly.push(&PeapMessage::parse(&bytes).unwrap())?;
            }
            if let Some(records) = whole {
                tunnel.receive(&records)?;
            }
            if !tunnel.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn both_ends_derive_the_same_msk() {
        let pki = pki();
        let connector = RustlsPeapConnector::new(
            ServerVerification::CaCertificates(vec![pki.ca]),
            "radius.test",
        )
        .unwrap();
        let mut tunnel = connector.connect().unwrap();
        assert!(tunnel.export_msk().is_none() || tunnel.is_handshaking());
        let mut server = rustls::ServerConnection::new(Arc::new(pki.server)).unwrap();
        handshake(tunnel.as_mut(), &mut server).unwrap();
        let msk = tunnel.export_msk().expect("an MSK after the handshake");
        let server_msk = server
            .export_keying_material([0u8; 64], MSK_LABEL, None)
            .unwrap();
        assert_eq!(msk, server_msk);
        assert_ne!(msk, [0u8; 64]);
        assert_eq!(
            server.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        // Plaintext both ways.
        tunnel.write_plaintext(b"\x01inner");
        let mut records = Vec::new();
        tunnel.transmit(&mut records);
        server.read_tls(&mut &records[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut got = Vec::new();
        let _ = server.reader().read_to_end(&mut got);
        assert_eq!(got, b"\x01inner");
    }

    #[test]
    fn a_server_signed_by_another_ca_is_refused() {
        let pki = pki();
        let other = self::pki();
        let connector = RustlsPeapConnector::new(
            ServerVerification::CaCertificates(vec![other.ca]),
            "radius.test",
        )
        .unwrap();
        let mut tunnel = connector.connect().unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(pki.server)).unwrap();
        assert_eq!(handshake(tunnel.as_mut(), &mut server), Err(PeapError::Tls));
        assert!(tunnel.export_msk().is_none() || tunnel.is_handshaking());
    }
}
