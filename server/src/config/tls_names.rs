//! The names `[tls]` accepts: cipher suites as rustls spells them, and the
//! TLS version each belongs to. They live with the configuration (which
//! validates them) so that `tls` depends on `config` and not the reverse.

use rustls::crypto::aws_lc_rs;
use rustls::SupportedCipherSuite;

use super::TlsVersion;

/// The default cipher suites, in preference order: every AEAD suite of
/// TLS 1.3, then TLS 1.2 ECDHE with AES-GCM and ChaCha20-Poly1305 for both
/// ECDSA and RSA certificates (Windows 10's SSTP client negotiates
/// TLS 1.2 ECDHE-RSA/ECDSA with AES-GCM). All of them can be offloaded to
/// kTLS.
pub const DEFAULT_CIPHER_SUITE_NAMES: &[&str] = &[
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The IANA name of a suite as rustls spells it (`TLS13_AES_128_GCM_SHA256`).
pub fn cipher_suite_name(suite: SupportedCipherSuite) -> String {
    format!("{:?}", suite.suite())
}

/// Looks a suite up by name (ASCII case-insensitive); the error lists the
/// names that exist.
pub fn cipher_suite_by_name(name: &str) -> Result<SupportedCipherSuite, String> {
    aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .find(|s| cipher_suite_name(*s).eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "unknown cipher suite {name:?}; known: {}",
                DEFAULT_CIPHER_SUITE_NAMES.join(", ")
            )
        })
}

/// Which TLS version a suite belongs to.
pub fn suite_version(suite: SupportedCipherSuite) -> TlsVersion {
    match suite {
        SupportedCipherSuite::Tls12(_) => TlsVersion::Tls12,
        SupportedCipherSuite::Tls13(_) => TlsVersion::Tls13,
    }
}
