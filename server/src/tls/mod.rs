//! TLS for SSTP: rustls (aws-lc-rs) configuration for the server and for
//! clients (load generator, tests), the server certificate, and kernel TLS.
//!
//! * [`certs`]: loading the PEM chain and key, or generating a self-signed
//!   certificate into the state directory; the leaf's SHA-256 (the SSTP
//!   crypto binding hashes the leaf, [MS-SSTP] 3.2.5.2.2).
//! * [`build_server_config`]: the `rustls::ServerConfig` from `[tls]`.
//! * [`client`]: `rustls::ClientConfig` builders, including `--insecure`.
//! * [`ktls`]: probing, deciding and switching a connection to kTLS.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::config::{TlsSection, TlsVersion};

pub mod certs;
pub mod client;
pub mod eap;
pub mod ktls;

pub use crate::config::tls_names::{
    cipher_suite_by_name, cipher_suite_name, suite_version, DEFAULT_CIPHER_SUITE_NAMES,
};
pub use certs::{KeyKind, SelfSignedKey, ServerIdentity};

/// Resolves a list of names (already validated by the configuration) to
/// suites, or the defaults when `names` is `None`.
pub fn cipher_suites(names: Option<&[String]>) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    match names {
        None => DEFAULT_CIPHER_SUITE_NAMES
            .iter()
            .map(|n| cipher_suite_by_name(n).map_err(TlsError::CipherSuite))
            .collect(),
        Some(names) => names
            .iter()
            .map(|n| cipher_suite_by_name(n).map_err(TlsError::CipherSuite))
            .collect(),
    }
}

/// The rustls protocol versions from `min` to `max`, newest first.
pub fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Vec<&'static SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if (min..=max).contains(&TlsVersion::Tls13) {
        versions.push(&rustls::version::TLS13);
    }
    if (min..=max).contains(&TlsVersion::Tls12) {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// The aws-lc-rs provider restricted to `suites`.
pub fn provider_with_suites(suites: Vec<SupportedCipherSuite>) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..aws_lc_rs::default_provider()
    })
}

/// Seeds the provider's random generator now, at startup, instead of in
/// the first handshake. aws-lc seeds it once per process from its CPU
/// jitter entropy source, which took 31 ms on the 2-core development
/// machine: a worker that met it in its first ClientHello stalled every
/// session in flight on it for that long (a fresh sstpd's first
/// `sstp-bench run setup` ramp, docs/benchmarking.md). Later calls cost
/// a few microseconds.
pub fn seed_random(provider: &CryptoProvider) -> Result<(), TlsError> {
    let mut discard = [0u8; 32];
    provider
        .secure_random
        .fill(&mut discard)
        .map_err(|e| TlsError::Rustls(e.into()))
}

/// Whether a TLS 1.2 suite authenticates with this key type. TLS 1.3 suites
/// work with any key.
pub fn suite_usable_with_key(suite: SupportedCipherSuite, key: KeyKind) -> bool {
    match suite {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(s) => s.sign.iter().any(|scheme| {
            use rustls::SignatureScheme as S;
            let scheme_key = match scheme {
                S::RSA_PKCS1_SHA1
                | S::RSA_PKCS1_SHA256
                | S::RSA_PKCS1_SHA384
                | S::RSA_PKCS1_SHA512
                | S::RSA_PSS_SHA256
                | S::RSA_PSS_SHA384
                | S::RSA_PSS_SHA512 => Some(KeyKind::Rsa),
                S::ECDSA_SHA1_Legacy
                | S::ECDSA_NISTP256_SHA256
                | S::ECDSA_NISTP384_SHA384
                | S::ECDSA_NISTP521_SHA512 => Some(KeyKind::Ecdsa),
                _ => None,
            };
            scheme_key == Some(key)
        }),
    }
}

/// What the server's TLS setup needs beyond `[tls]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTlsOptions {
    /// Established connections may leave rustls (to kTLS, or to sstpd's own
    /// record layer): rustls must allow secret extraction
    /// ([`rustls::ServerConfig::enable_secret_extraction`]).
    pub secret_extraction: bool,
}

/// Builds the server's rustls configuration from `[tls]` and the identity.
///
/// No ALPN (SSTP clients send none). `SSLKEYLOGFILE` key logging only when
/// that variable is set. Resumption only with `tls.session_tickets`, which
/// the configuration allows only with `tls.ktls = "off"`.
pub fn build_server_config(
    tls: &TlsSection,
    identity: &ServerIdentity,
    suites: Vec<SupportedCipherSuite>,
    options: ServerTlsOptions,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    if tls.min_version > tls.max_version {
        return Err(TlsError::Versions(format!(
            "tls.max_version {} is below tls.min_version {}",
            tls.max_version.as_str(),
            tls.min_version.as_str()
        )));
    }
    let suites: Vec<SupportedCipherSuite> = suites
        .into_iter()
        .filter(|s| (tls.min_version..=tls.max_version).contains(&suite_version(*s)))
        .collect();
    if suites.is_empty() {
        return Err(TlsError::CipherSuite(format!(
            "no cipher suite left for TLS {} to {}",
            tls.min_version.as_str(),
            tls.max_version.as_str()
        )));
    }
    // A TLS 1.2 offer that no TLS 1.2 suite can serve with this key would
    // silently lock TLS 1.2-only clients (Windows 7/8, many routers) out.
    let tls12: Vec<_> = suites
        .iter()
        .filter(|s| suite_version(**s) == TlsVersion::Tls12)
        .collect();
    if !tls12.is_empty()
        && !tls12
            .iter()
            .any(|s| suite_usable_with_key(**s, identity.key_kind()))
    {
        return Err(TlsError::CipherSuite(format!(
            "no TLS 1.2 suite in tls.cipher_suites works with the {} key of the certificate",
            identity.key_kind().as_str()
        )));
    }

    let versions = protocol_versions(tls.min_version, tls.max_version);
    let mut config = rustls::ServerConfig::builder_with_provider(provider_with_suites(suites))
        .with_protocol_versions(&versions)
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
            identity.certified_key(),
        )));
    config.alpn_protocols = Vec::new();
    config.enable_secret_extraction = options.secret_extraction;
    if tls.session_tickets {
        config.ticketer = aws_lc_rs::Ticketer::new().map_err(TlsError::Rustls)?;
        config.send_tls13_tickets = 2;
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    if let Some(key_log) = key_log_from_env() {
        config.key_log = key_log;
    }
    Ok(Arc::new(config))
}

/// Everything the workers need for TLS, built once at startup and shared.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub identity: ServerIdentity,
    pub ktls: ktls::KtlsPlan,
}

/// Startup: loads (or generates) the certificate, probes kTLS unless
/// `tls.ktls = "off"` (logging the one line and returning the
/// `ktls_unavailable` reason via [`ktls::KtlsPlan::startup_notice`] when it
/// is missing), and builds the server configuration: in `require` mode only
/// with suites the kernel handles, and with secret extraction only when a
/// connection may be offloaded.
pub fn prepare_server_tls(config: &crate::config::Config) -> Result<ServerTls, TlsError> {
    let identity = ServerIdentity::load(config)?;
    let support = match config.tls.ktls {
        crate::config::KtlsMode::Off => {
            ktls::KtlsSupport::Unavailable(ktls::KtlsUnavailable::NotProbed)
        }
        _ => ktls::probe(),
    };
    let plan = ktls::KtlsPlan::resolve(config.tls.ktls, support).map_err(TlsError::KtlsRequired)?;
    if let Some((reason, line)) = plan.startup_notice() {
        tracing::warn!(reason = reason.as_str(), "{line}");
    }
    let server_config = server_config_for(config, &identity, &plan)?;
    seed_random(server_config.crypto_provider())?;
    Ok(ServerTls {
        config: server_config,
        identity,
        ktls: plan,
    })
}

/// A reload: the certificate and key read again and a whole new server
/// configuration built from `[tls]`, under the kTLS decision taken at
/// startup (`tls.ktls` needs a restart). Any error leaves the caller's
/// configuration as it is.
pub fn reload_server_tls(
    config: &crate::config::Config,
    plan: &ktls::KtlsPlan,
) -> Result<(Arc<rustls::ServerConfig>, ServerIdentity), TlsError> {
    let identity = ServerIdentity::load(config)?;
    let server_config = server_config_for(config, &identity, plan)?;
    Ok((server_config, identity))
}

fn server_config_for(
    config: &crate::config::Config,
    identity: &ServerIdentity,
    plan: &ktls::KtlsPlan,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let suites = plan.offerable_suites(cipher_suites(config.tls.cipher_suites.as_deref())?);
    build_server_config(
        &config.tls,
        identity,
        suites,
        ServerTlsOptions {
            // An established connection leaves rustls for the kernel
            // (kTLS) or for `net::established`.
            secret_extraction: config.tls.take_over_records || plan.may_offload(),
        },
    )
}

/// `rustls::KeyLogFile` when `SSLKEYLOGFILE` is set (logged as a warning:
/// it writes session secrets to disk).
pub(crate) fn key_log_from_env() -> Option<Arc<dyn rustls::KeyLog>> {
    let path = std::env::var_os("SSLKEYLOGFILE")?;
    tracing::warn!(
        path = %PathBuf::from(path).display(),
        "SSLKEYLOGFILE is set: TLS session secrets are written to it"
    );
    Some(Arc::new(rustls::KeyLogFile::new()))
}

/// Lowercase hexadecimal with colons, the usual way to show fingerprints
/// (`ab:cd:...`).
pub fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Setting up TLS failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be written (self-signed generation).
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PEM file holds no usable item or is malformed.
    Pem {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The key is not RSA or ECDSA, or does not belong to the certificate.
    Key { message: String },
    /// Cipher suite configuration that cannot work.
    CipherSuite(String),
    /// Certificate generation failed.
    Generate(String),
    /// No state directory for the self-signed certificate.
    StateDir(String),
    /// Neither `tls.certificate` nor `tls.self_signed` is set.
    NoCertificate,
    /// Client options that cannot work together (min above max version).
    Versions(String),
    /// Not a DNS name or IP address usable as a TLS server name.
    ServerName(String),
    /// `tls.ktls = "require"` on a kernel without kTLS.
    KtlsRequired(ktls::KtlsRequiredButUnavailable),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl TlsError {
    /// Short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "read",
            TlsError::Write { .. } => "write",
            TlsError::Pem { .. } => "pem",
            TlsError::Key { .. } => "key",
            TlsError::CipherSuite(_) => "cipher_suite",
            TlsError::Generate(_) => "generate",
            TlsError::StateDir(_) => "state_dir",
            TlsError::NoCertificate => "no_certificate",
            TlsError::Versions(_) => "versions",
            TlsError::ServerName(_) => "server_name",
            TlsError::KtlsRequired(_) => "ktls_required",
            TlsError::Rustls(_) => "rustls",
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { key, path, source } => {
                write!(f, "{key}: cannot read {}: {source}", path.display())
            }
            TlsError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            TlsError::Pem { key, path, message } => {
                write!(f, "{key}: {}: {message}", path.display())
            }
            TlsError::Key { message } => write!(f, "tls.private_key: {message}"),
            TlsError::CipherSuite(message) => write!(f, "tls.cipher_suites: {message}"),
            TlsError::Generate(message) => {
                write!(f, "generating the self-signed certificate: {message}")
            }
            TlsError::StateDir(message) => f.write_str(message),
            TlsError::NoCertificate => f.write_str(
                "tls.certificate: not set; give tls.certificate and tls.private_key, or set \
                 tls.self_signed = true to serve a generated self-signed certificate (clients \
                 cannot verify it)",
            ),
            TlsError::Versions(message) => f.write_str(message),
            TlsError::ServerName(message) => f.write_str(message),
            TlsError::KtlsRequired(e) => e.fmt(f),
            TlsError::Rustls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The events a completed handshake is counted under: its protocol
/// version (family `tls_versions`) and its cipher suite
/// (`tls_cipher_suites`, labelled by the suite's name in lower case).
pub fn handshake_events(suite: rustls::SupportedCipherSuite) -> [crate::metrics::Event; 2] {
    use crate::metrics::Event;
    use rustls::CipherSuite as C;
    let version = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => Event::TlsVersion12,
        rustls::SupportedCipherSuite::Tls13(_) => Event::TlsVersion13,
    };
    let suite = match suite.suite() {
        C::TLS13_AES_128_GCM_SHA256 => Event::Tls13Aes128GcmSha256,
        C::TLS13_AES_256_GCM_SHA384 => Event::Tls13Aes256GcmSha384,
        C::TLS13_CHACHA20_POLY1305_SHA256 => Event::Tls13Chacha20Poly1305Sha256,
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => Event::TlsEcdheEcdsaAes128GcmSha256,
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => Event::TlsEcdheEcdsaAes256GcmSha384,
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            Event::TlsEcdheEcdsaChacha20Poly1305Sha256
        }
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Event::TlsEcdheRsaAes128GcmSha256,
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Event::TlsEcdheRsaAes256GcmSha384,
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Event::TlsEcdheRsaChacha20Poly1305Sha256,
        _ => Event::TlsOtherCipherSuite,
    };
    [version, suite]
}

#[cfg(test)]
mod tests;
