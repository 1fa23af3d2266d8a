//! rustls client configuration for the load generator and the tests.
//!
//! The server is either verified against CA certificates, or — for
//! self-signed test servers, `sstp-loadgen --insecure` — accepted whatever
//! its certificate says. Even then the handshake signature is checked
//! against the presented certificate, so the peer provably holds that
//! certificate's key, and the certificate stays available
//! ([`rustls::CommonState::peer_certificates`], [`peer_leaf`]) for the SSTP
//! crypto binding, which hashes it ([MS-SSTP] 3.2.5.2.2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme, SupportedCipherSuite};

use super::{cipher_suites, protocol_versions, provider_with_suites, TlsError};
use crate::config::TlsVersion;

/// How the client checks the server's certificate.
#[derive(Clone, Debug)]
pub enum ServerVerification {
    /// Against the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Against these CA certificates (tests: the server's self-signed one).
    CaCertificates(Vec<CertificateDer<'static>>),
    /// Accept any certificate (still verifying the handshake signature).
    Insecure,
}

/// Everything a client configuration can vary.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub verification: ServerVerification,
    /// Lowest and highest TLS version offered (tests use 1.2-only and
    /// 1.3-only clients).
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Restrict the offered suites, by name; `None` = the defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// Send the server name indication. The name itself is given per
    /// connection ([`server_name`]); IP addresses are never sent as SNI.
    pub send_sni: bool,
    /// Log secrets to `SSLKEYLOGFILE` when that variable is set.
    pub key_log: bool,
    /// Let rustls hand over the traffic secrets: a session of
    /// [`crate::client`] then takes its records over after the handshake
    /// (`net::established`); also for client-side kTLS and tests.
    pub secret_extraction: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            verification: ServerVerification::Insecure,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: None,
            send_sni: true,
            key_log: true,
            secret_extraction: false,
        }
    }
}

/// Builds a client configuration.
pub fn build_client_config(options: &ClientOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    build_client_config_with_certificate(options, None)
}

/// A certificate chain (leaf first) and its private key that a client
/// presents when the server asks (EAP-TLS).
#[derive(Debug)]
pub struct ClientCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientCertificate {
    fn clone(&self) -> Self {
        ClientCertificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientCertificate {
    /// Parses a PEM chain and a PEM key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let chain = super::certs::parse_cert_chain(cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("no usable private key: {e}"))?;
        Ok(ClientCertificate { chain, key })
    }

    /// Reads [`Self::from_pem`]'s two files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        Self::from_pem(&read(cert)?, &read(key)?)
    }
}

/// Builds a client configuration that presents `certificate` when the
/// server asks for one.
pub fn build_client_config_with_certificate(
    options: &ClientOptions,
    certificate: Option<ClientCertificate>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    if options.min_version > options.max_version {
        return Err(TlsError::Versions(format!(
            "min version {} is above max version {}",
            options.min_version.as_str(),
            options.max_version.as_str()
        )));
    }
    let suites: Vec<SupportedCipherSuite> = cipher_suites(options.cipher_suites.as_deref())?
        .into_iter()
        .filter(|s| (options.min_version..=options.max_version).contains(&super::suite_version(*s)))
        .collect();
    if suites.is_empty() {
        return Err(TlsError::CipherSuite(
            "no cipher suite left for the selected TLS versions".into(),
        ));
    }
    let provider = provider_with_suites(suites);
    super::seed_random(&provider)?;
    let versions = protocol_versions(options.min_version, options.max_version);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(TlsError::Rustls)?;
    let builder = match &options.verification {
        ServerVerification::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider })),
        ServerVerification::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                key: "ca_file",
                path: path.clone(),
                source,
            })?;
            let certs = super::certs::parse_cert_chain(&pem).map_err(|message| TlsError::Pem {
                key: "ca_file",
                path: path.clone(),
                message,
            })?;
            builder.with_root_certificates(root_store(certs)?)
        }
        ServerVerification::CaCertificates(certs) => {
            builder.with_root_certificates(root_store(certs.clone())?)
        }
    };
    let mut config = match certificate {
        Some(ClientCertificate { chain, key }) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Key {
                message: format!("the client certificate: {e}"),
            })?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = options.send_sni;
    config.enable_secret_extraction = options.secret_extraction;
    if options.key_log {
        if let Some(key_log) = super::key_log_from_env() {
            config.key_log = key_log;
        }
    }
    Ok(Arc::new(config))
}

fn root_store(certs: Vec<CertificateDer<'static>>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(TlsError::Rustls)?;
    }
    Ok(roots)
}

/// A server name for a connection: an IP literal or a DNS name.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| TlsError::ServerName(format!("{name:?} is not a valid server name: {e}")))
}

/// The server's end-entity certificate, once the handshake got that far.
pub fn peer_leaf(conn: &rustls::CommonState) -> Option<&CertificateDer<'static>> {
    conn.peer_certificates().and_then(|chain| chain.first())
}

/// `--insecure`: accepts any server certificate, but verifies handshake
/// signatures with it, so the certificate reported afterwards is the one
/// whose key the server holds.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
