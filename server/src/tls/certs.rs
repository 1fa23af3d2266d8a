//! The server certificate: PEM files from `[tls]`, or a self-signed
//! certificate generated into the state directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::TlsError;
use crate::config::Config;

/// File names of the generated certificate inside the state directory.
pub const SELF_SIGNED_CERT_FILE: &str = "self-signed-cert.pem";
pub const SELF_SIGNED_KEY_FILE: &str = "self-signed-key.pem";
/// Names the embedded defaults' certificate is valid for.
pub const SELF_SIGNED_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The signature algorithm family of the server key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    Rsa,
    Ecdsa,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::Ecdsa => "ECDSA",
        }
    }
}

/// Where the identity came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityOrigin {
    /// `tls.certificate` and `tls.private_key`.
    Files,
    /// Generated into the state directory by an earlier start.
    SelfSignedReused,
    /// Generated into the state directory just now.
    SelfSignedGenerated,
}

/// The server's certificate chain and key, ready for rustls.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    certified: Arc<CertifiedKey>,
    key_kind: KeyKind,
    leaf_sha256: [u8; 32],
    cert_path: PathBuf,
    origin: IdentityOrigin,
}

impl ServerIdentity {
    /// What `[tls]` asks for: the configured files, or, with
    /// `tls.self_signed`, the self-signed certificate in the state
    /// directory (generated on first use). Neither is an error: a server
    /// never falls back to a certificate its clients cannot verify.
    pub fn load(config: &Config) -> Result<Self, TlsError> {
        match (&config.tls.certificate, &config.tls.private_key) {
            (Some(cert), Some(key)) => Self::from_pem_files(cert, key, IdentityOrigin::Files),
            _ if !config.tls.self_signed => Err(TlsError::NoCertificate),
            _ => {
                let dir = config
                    .state_dir()
                    .map_err(|e| TlsError::StateDir(e.to_string()))?;
                let (cert, key, generated) = ensure_self_signed(&dir)?;
                let origin = if generated {
                    IdentityOrigin::SelfSignedGenerated
                } else {
                    IdentityOrigin::SelfSignedReused
                };
                Self::from_pem_files(&cert, &key, origin)
            }
        }
    }

    /// Reads a PEM chain (leaf first) and a PEM key (PKCS#8, PKCS#1 or
    /// SEC1; RSA or ECDSA) and checks that they belong together.
    pub fn from_pem_files(
        cert_path: &Path,
        key_path: &Path,
        origin: IdentityOrigin,
    ) -> Result<Self, TlsError> {
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                key,
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read("tls.certificate", cert_path)?;
        let key_pem = read("tls.private_key", key_path)?;
        let chain = parse_cert_chain(&cert_pem).map_err(|message| TlsError::Pem {
            key: "tls.certificate",
            path: cert_path.to_owned(),
            message,
        })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            key: "tls.private_key",
            path: key_path.to_owned(),
            message: pem_message(e),
        })?;
        Self::from_der(chain, key, cert_path.to_owned(), origin)
    }

    /// Builds the identity from DER; `cert_path` is only for display.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_path: PathBuf,
        origin: IdentityOrigin,
    ) -> Result<Self, TlsError> {
        let signing_key = aws_lc_rs::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            message: format!("not a usable RSA or ECDSA key: {e}"),
        })?;
        let key_kind = match signing_key.algorithm() {
            rustls::SignatureAlgorithm::RSA => KeyKind::Rsa,
            rustls::SignatureAlgorithm::ECDSA => KeyKind::Ecdsa,
            other => {
                return Err(TlsError::Key {
                    message: format!(
                        "{other:?} keys are not supported (SSTP clients expect RSA or ECDSA)"
                    ),
                })
            }
        };
        let leaf_sha256: [u8; 32] = match chain.first() {
            Some(leaf) => Sha256::digest(leaf.as_ref()).into(),
            None => {
                return Err(TlsError::Pem {
                    key: "tls.certificate",
                    path: cert_path,
                    message: "no certificate in the file".into(),
                })
            }
        };
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => {
                return Err(TlsError::Key {
                    message: format!(
                        "does not belong to the certificate {}: {e}",
                        cert_path.display()
                    ),
                })
            }
        }
        Ok(ServerIdentity {
            certified: Arc::new(certified),
            key_kind,
            leaf_sha256,
            cert_path,
            origin,
        })
    }

    /// The chain and signing key for a rustls certificate resolver.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }

    /// The end-entity certificate, DER. SSTP's crypto binding hashes it
    /// ([MS-SSTP] 3.2.5.2.2).
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `from_der` refuses empty chains.
        &self.certified.cert[0]
    }

    /// SHA-256 of the leaf certificate's DER.
    pub fn leaf_sha256(&self) -> [u8; 32] {
        self.leaf_sha256
    }

    /// The fingerprint as colon-separated hex, for banners and logs.
    pub fn fingerprint(&self) -> String {
        super::colon_hex(&self.leaf_sha256)
    }

    pub fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    /// The certificate file this identity was read from.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn origin(&self) -> &IdentityOrigin {
        &self.origin
    }
}

/// The permission bits of a private key file when group or others may
/// access it (`mode & 0o077`), to warn about; `None` when it is private or
/// cannot be read.
pub fn loose_key_permissions(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The warning for [`loose_key_permissions`].
pub fn loose_key_warning(path: &Path, mode: u32) -> String {
    format!(
        "tls.private_key: {} is accessible to group or others (mode {mode:04o}): chmod 600",
        path.display()
    )
}

/// Every `CERTIFICATE` block of a PEM file, in order.
pub fn parse_cert_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_message)?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the file".into());
    }
    Ok(chain)
}

fn pem_message(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no private key block (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file"
                .into()
        }
        other => format!("malformed PEM: {other}"),
    }
}

/// Key type of a generated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfSignedKey {
    /// ECDSA P-256 with SHA-256 (the default: small and fast).
    EcdsaP256,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256.
    Rsa2048,
}

/// A freshly generated certificate and its key.
pub struct GeneratedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert").finish_non_exhaustive()
    }
}

/// Generates a self-signed certificate for `names` (DNS names or IP
/// literals), valid from now for ten years.
pub fn generate_self_signed(
    kind: SelfSignedKey,
    names: &[&str],
) -> Result<GeneratedCert, TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key_pair = match kind {
        SelfSignedKey::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        SelfSignedKey::Rsa2048 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
    }
    .map_err(generate)?;
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(generate)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().copied().unwrap_or("sstpd"),
    );
    dn.push(rcgen::DnType::OrganizationName, "sstpd self-signed");
    params.distinguished_name = dn;
    const DAY: Duration = Duration::from_secs(86_400);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    // Back-dated a day for clients with a slow clock.
    params.not_before = epoch + since_epoch.saturating_sub(DAY);
    params.not_after = epoch + since_epoch + DAY * 3650;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key_pair).map_err(generate)?;
    let key_der = PrivateKeyDer::try_from(key_pair.serialize_der())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
        cert_der: cert.der().clone(),
        key_der,
    })
}

/// Makes sure `dir` holds the self-signed certificate and key, generating
/// them (ECDSA P-256, for [`SELF_SIGNED_NAMES`]) when absent. Returns their
/// paths and whether they were generated now. The directory is created
/// 0700 and the key written 0600.
pub fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
    let key_path = dir.join(SELF_SIGNED_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => return Ok((cert_path, key_path, false)),
        (false, false) => {}
        (true, false) | (false, true) => {
            return Err(TlsError::Pem {
                key: "tls.certificate",
                path: dir.to_owned(),
                message: format!(
                    "only one of {SELF_SIGNED_CERT_FILE} and {SELF_SIGNED_KEY_FILE} exists; \
                     remove it to have both generated again"
                ),
            })
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
    let generated = generate_self_signed(SelfSignedKey::EcdsaP256, SELF_SIGNED_NAMES)?;
    // Key first: a certificate without its key would block the next start.
    write_new_file(&key_path, generated.key_pem.as_bytes(), 0o600)?;
    write_new_file(&cert_path, generated.cert_pem.as_bytes(), 0o644)?;
    Ok((cert_path, key_path, true))
}

/// Writes a file that must not exist yet (two workers racing to generate
/// would otherwise mix keys and certificates).
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let write = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write)?;
    file.write_all(contents).map_err(write)?;
    file.sync_all().map_err(write)
}
