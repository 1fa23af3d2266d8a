//! The TLS inside the EAP-TLS family for the client role (PEAP,
//! EAP-TLS): [`crate::proto::auth::tls_framing::TunnelTls`] on a rustls
//! client fed with in-memory buffers.
//!
//! The tunnel is capped at TLS 1.2: the MSK of both methods is the TLS 1.2
//! PRF of the master secret with the label `client EAP encryption`
//! ([RFC 5216] 2.3, [MS-PEAP] 3.1.5.7), which is what RFC 5705's exporter
//! computes on TLS 1.2 with no context; FreeRADIUS 3.2 and Windows run
//! both on TLS 1.2 by default. Resumption is off: every conversation is a
//! full handshake, so the certificates are checked every time. The
//! server's certificate is verified against the CA given (and its name
//! against the name given), as a Windows client configured with "Verify
//! the server's identity" does; [`ServerVerification::Insecure`] is for
//! benchmarking against servers with self-signed certificates. For
//! EAP-TLS the client presents its certificate ([`ClientCertificate`])
//! when the server asks.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::client::{
    build_client_config_with_certificate, server_name, ClientCertificate, ClientOptions,
    ServerVerification,
};
use super::TlsError;
use crate::config::TlsVersion;
use crate::proto::auth::tls_framing::{EapTlsError, TlsTunnel, TunnelTls, TunnelTlsConnector};

/// The label of the MSK's derivation ([RFC 5216] 2.3, [MS-PEAP] 3.1.5.7).
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
/// [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216
pub const MSK_LABEL: &[u8] = b"client EAP encryption";

/// Starts rustls clients for EAP-TLS-family conversations.
#[derive(Debug)]
pub struct RustlsTunnelConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl RustlsTunnelConnector {
    /// A connector verifying the RADIUS server's certificate as
    /// `verification` says, for `name` (the name its certificate must
    /// carry), presenting `certificate` when the server asks for one.
    pub fn new(
        verification: ServerVerification,
        name: &str,
        certificate: Option<ClientCertificate>,
    ) -> Result<Self, TlsError> {
        let options = ClientOptions {
            verification,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls12,
            cipher_suites: None,
            send_sni: false,
            key_log: true,
            secret_extraction: false,
        };
        let mut config =
            Arc::unwrap_or_clone(build_client_config_with_certificate(&options, certificate)?);
        config.resumption = rustls::client::Resumption::disabled();
        Ok(RustlsTunnelConnector {
            config: Arc::new(config),
            server_name: server_name(name)?,
        })
    }

    /// This connector for the client role's EAP method
    /// ([`crate::proto::auth::EapPeerMethod`]).
    pub fn into_tunnel(self) -> TlsTunnel {
        TlsTunnel(Arc::new(self))
    }
}

impl TunnelTlsConnector for RustlsTunnelConnector {
    fn connect(&self) -> Result<Box<dyn TunnelTls>, EapTlsError> {
        let conn = rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|_| EapTlsError::Tls)?;
        Ok(Box::new(RustlsTunnel { conn }))
    }
}

/// One conversation's TLS client.
#[derive(Debug)]
pub struct RustlsTunnel {
    conn: rustls::ClientConnection,
}

impl TunnelTls for RustlsTunnel {
    fn receive(&mut self, mut records: &[u8]) -> Result<(), EapTlsError> {
        while !records.is_empty() {
            let read = self
                .conn
                .read_tls(&mut records)
                .map_err(|_| EapTlsError::Tls)?;
            if let Err(error) = self.conn.process_new_packets() {
                tracing::debug!(%error, "EAP TLS tunnel refused");
                return Err(match error {
                    rustls::Error::AlertReceived(_) => EapTlsError::TlsAlert,
                    _ => EapTlsError::Tls,
                });
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
    use crate::proto::auth::tls_framing::{
        EapTlsMessage, Reassembler, FLAG_MORE, MAX_FRAGMENT_LEN,
    };

    struct Pki {
        ca: rustls::pki_types::CertificateDer<'static>,
        server: rustls::ServerConfig,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        server_key: rustls::pki_types::PrivateKeyDer<'static>,
    }

    impl Pki {
        /// A client certificate this CA signed.
        fn client(&self) -> ClientCertificate {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "alice");
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            ClientCertificate {
                chain: vec![cert.der().clone()],
                key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            }
        }

        /// A TLS 1.2 server requiring a client certificate from this CA.
        fn server_requiring_clients(&self) -> rustls::ServerConfig {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .unwrap();
            rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
                .unwrap()
        }
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
        let server_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
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
            issuer,
            server_chain: vec![cert.der().clone()],
            server_key,
        }
    }

    /// Runs the handshake between the tunnel and an in-process rustls
    /// server, records passing through PEAP framing in fragments.
    fn handshake(
        tunnel: &mut dyn TunnelTls,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), EapTlsError> {
        for _ in 0..20 {
            let mut to_server = Vec::new();
            tunnel.transmit(&mut to_server);
            let mut cursor = &to_server[..];
            while !cursor.is_empty() {
                server.read_tls(&mut cursor).unwrap();
                if server.process_new_packets().is_err() {
                    // Its alert goes to the client below.
                    break;
                }
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut to_client).unwrap();
            }
            // Through EAP-TLS fragments and back.
            let mut reassembly = Reassembler::default();
            let mut whole = None;
            let chunks: Vec<&[u8]> = to_client.chunks(MAX_FRAGMENT_LEN).collect();
            for (index, chunk) in chunks.iter().enumerate() {
                let more = index + 1 < chunks.len();
                let mut bytes = Vec::new();
                EapTlsMessage {
                    flags: if more { FLAG_MORE } else { 0 },
                    version: 0,
                    total_len: (index == 0).then_some(to_client.len() as u32),
                    data: chunk,
                }
                .encode(&mut bytes);
                whole = reassembly.push(&EapTlsMessage::parse(&bytes).unwrap())?;
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
        let connector = RustlsTunnelConnector::new(
            ServerVerification::CaCertificates(vec![pki.ca]),
            "radius.test",
            None,
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
    fn eap_tls_presents_the_client_certificate_and_both_ends_derive_the_same_msk() {
        let pki = pki();
        let connector = RustlsTunnelConnector::new(
            ServerVerification::CaCertificates(vec![pki.ca.clone()]),
            "radius.test",
            Some(pki.client()),
        )
        .unwrap();
        let mut tunnel = connector.connect().unwrap();
        let mut server =
            rustls::ServerConnection::new(Arc::new(pki.server_requiring_clients())).unwrap();
        handshake(tunnel.as_mut(), &mut server).unwrap();
        assert!(server
            .peer_certificates()
            .is_some_and(|chain| chain.len() == 1));
        let server_msk = server
            .export_keying_material([0u8; 64], MSK_LABEL, None)
            .unwrap();
        assert_eq!(tunnel.export_msk(), Some(server_msk));
    }

    #[test]
    fn a_client_certificate_from_another_ca_gets_the_servers_alert() {
        let pki = pki();
        let other = self::pki();
        let connector = RustlsTunnelConnector::new(
            ServerVerification::CaCertificates(vec![pki.ca.clone()]),
            "radius.test",
            Some(other.client()),
        )
        .unwrap();
        let mut tunnel = connector.connect().unwrap();
        let mut server =
            rustls::ServerConnection::new(Arc::new(pki.server_requiring_clients())).unwrap();
        assert_eq!(
            handshake(tunnel.as_mut(), &mut server),
            Err(EapTlsError::TlsAlert)
        );
        assert!(tunnel.is_handshaking());
    }

    #[test]
    fn a_server_signed_by_another_ca_is_refused() {
        let pki = pki();
        let other = self::pki();
        let connector = RustlsTunnelConnector::new(
            ServerVerification::CaCertificates(vec![other.ca]),
            "radius.test",
            None,
        )
        .unwrap();
        let mut tunnel = connector.connect().unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(pki.server)).unwrap();
        assert_eq!(
            handshake(tunnel.as_mut(), &mut server),
            Err(EapTlsError::Tls)
        );
        assert!(tunnel.export_msk().is_none() || tunnel.is_handshaking());
    }
}
