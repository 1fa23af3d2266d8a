//! Kernel TLS (kTLS): after rustls finishes the handshake, the kernel can
//! encrypt and decrypt the records itself, so the data path moves plain
//! SSTP bytes through the socket.
//!
//! Three small pieces:
//!
//! 1. [`probe`], once at startup: can this kernel attach the `tls` ULP, and
//!    which (version, cipher) pairs does it accept for transmission?
//! 2. [`KtlsPlan`]: the configured mode (`tls.ktls`) resolved against the
//!    probe; per connection, [`KtlsPlan::decide`] says kernel or userspace,
//!    with a typed reason.
//! 3. [`enable`]: hand one established connection to the kernel.
//!
//! # What the runtime must guarantee around [`enable`]
//!
//! * **No over-read.** Bytes the runtime has already read from the socket
//!   can no longer be decrypted by the kernel. Once the handshake can finish
//!   (from the client's Finished on), read record by record — the 5-byte
//!   header, then exactly [`record_len`] bytes — so that no part of a
//!   following record sits in userspace when `enable` runs. Whole records
//!   already read are fine: rustls decrypts them, and `enable` returns their
//!   plaintext ([`KtlsEnabled::early_plaintext`]), which the runtime must
//!   process before the first read from the kernel. (SSTP clients send the
//!   HTTP request right behind their Finished.)
//! * **Nothing pending.** All TLS output (the server's Finished, alerts) must
//!   have been written to the socket first; `enable` refuses otherwise.
//! * **No tickets.** `tls.session_tickets` is only allowed with
//!   `tls.ktls = "off"`, so the server never has NewSessionTicket messages in
//!   flight when it switches.
//! * **Control records.** After the switch a plain `read`/`recv` returns
//!   `EIO` when the next record is not application data. The runtime must
//!   then `recvmsg` with room for one `SOL_TLS`/[`TLS_GET_RECORD_TYPE`]
//!   control message, which carries the record type, and pass it to
//!   [`control_record_action`]: a close_notify ends the session cleanly, a
//!   fatal alert ends it as aborted, and every post-handshake handshake
//!   message ends it too. That includes a TLS 1.3 KeyUpdate from the peer:
//!   the kernel cannot re-key by itself and its subsequent records would not
//!   decrypt (Linux 6.1 cannot install the next keys), so sstpd closes the
//!   connection (the SSTP client reconnects) rather than pretend; each such
//!   end is counted by [`ControlAction::close_event`]. Our own keys are
//!   unchanged, so the close_notify still reaches the peer. Sending: a
//!   close_notify is a `sendmsg` with a
//!   `SOL_TLS`/`TLS_SET_RECORD_TYPE` (1) control message of type 21.
//! * **Confidentiality limits.** rustls would re-key TLS 1.3 before the AEAD
//!   limit (`CipherSuiteCommon::confidentiality_limit`, 2^24.5 records for
//!   AES-GCM); the kernel does not. The runtime should count records and
//!   close the session before that limit (at 16 KiB per record that is more
//!   than 300 GB per direction).
//! * **Errors after the switch started are fatal.** [`enable`] attaches the
//!   ULP before it takes the secrets out of rustls: if that fails, the
//!   connection comes back and continues in userspace. Once the secrets are
//!   extracted, the rustls connection is gone; a failure to install them
//!   leaves a socket nobody can speak TLS on, and the session must close.

use std::fmt;
use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use rustls::{CipherSuite, SupportedCipherSuite};

use crate::config::{KtlsMode, TlsVersion};
use crate::metrics::Event;

/// `setsockopt(SOL_TLS, ...)` control message type that reports the type of
/// a received non-data record.
pub const TLS_GET_RECORD_TYPE: i32 = libc::TLS_GET_RECORD_TYPE;
/// `SOL_TLS` control message type that sets the type of a sent record.
pub const TLS_SET_RECORD_TYPE: i32 = libc::TLS_SET_RECORD_TYPE;
/// Length of a TLS record header ([RFC 8446] 5.1).
pub const RECORD_HEADER_LEN: usize = 5;

/// Length of the record (header included) that starts with `header`
/// ([RFC 8446] 5.1: type, legacy version, 16-bit length).
pub fn record_len(header: [u8; RECORD_HEADER_LEN]) -> usize {
    RECORD_HEADER_LEN + usize::from(u16::from_be_bytes([header[3], header[4]]))
}

/// A record cipher the kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KtlsCipher {
    AesGcm128,
    AesGcm256,
    Chacha20Poly1305,
}

impl KtlsCipher {
    pub const ALL: [KtlsCipher; 3] = [
        KtlsCipher::AesGcm128,
        KtlsCipher::AesGcm256,
        KtlsCipher::Chacha20Poly1305,
    ];

    /// The kernel's record cipher for a rustls suite; `None` when the
    /// kernel has none (every suite sstpd offers has one).
    pub fn of_suite(suite: SupportedCipherSuite) -> Option<KtlsCipher> {
        Some(match suite.suite() {
            CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => KtlsCipher::AesGcm128,
            CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => KtlsCipher::AesGcm256,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
                KtlsCipher::Chacha20Poly1305
            }
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KtlsCipher::AesGcm128 => "aes_gcm_128",
            KtlsCipher::AesGcm256 => "aes_gcm_256",
            KtlsCipher::Chacha20Poly1305 => "chacha20_poly1305",
        }
    }

    fn index(self) -> u32 {
        match self {
            KtlsCipher::AesGcm128 => 0,
            KtlsCipher::AesGcm256 => 1,
            KtlsCipher::Chacha20Poly1305 => 2,
        }
    }
}

/// The (TLS version, cipher) pairs the kernel accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCiphers(u8);

impl KernelCiphers {
    /// Every pair (for tests and for kernels known to be complete).
    pub const ALL: KernelCiphers = KernelCiphers(0b11_1111);

    fn bit(version: TlsVersion, cipher: KtlsCipher) -> u8 {
        let offset = match version {
            TlsVersion::Tls12 => 0,
            TlsVersion::Tls13 => 3,
        };
        1 << (offset + cipher.index())
    }

    pub fn insert(&mut self, version: TlsVersion, cipher: KtlsCipher) {
        self.0 |= Self::bit(version, cipher);
    }

    pub fn contains(self, version: TlsVersion, cipher: KtlsCipher) -> bool {
        self.0 & Self::bit(version, cipher) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the kernel can take over a connection using `suite`.
    pub fn supports_suite(self, suite: SupportedCipherSuite) -> bool {
        KtlsCipher::of_suite(suite)
            .is_some_and(|cipher| self.contains(super::suite_version(suite), cipher))
    }
}

/// Why the kernel refused a kTLS socket option; from the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelRefusal {
    /// ENOENT: no `tls` ULP registered (module not loaded, or a kernel
    /// without CONFIG_TLS).
    TlsModuleMissing,
    /// ENOPROTOOPT / EOPNOTSUPP: the option, version or cipher is unknown.
    NotSupported,
    /// EEXIST: the socket already has an upper-layer protocol.
    AlreadyAttached,
    /// ENOTCONN: the socket is not connected.
    NotConnected,
    /// EBUSY: keys for this direction are already installed.
    KeysAlreadySet,
    /// EINVAL: malformed crypto parameters.
    InvalidParameters,
    /// Any other errno.
    Other(i32),
}

impl KernelRefusal {
    pub fn from_errno(errno: i32) -> KernelRefusal {
        match errno {
            libc::ENOENT => KernelRefusal::TlsModuleMissing,
            libc::ENOPROTOOPT | libc::EOPNOTSUPP => KernelRefusal::NotSupported,
            libc::EEXIST => KernelRefusal::AlreadyAttached,
            libc::ENOTCONN => KernelRefusal::NotConnected,
            libc::EBUSY => KernelRefusal::KeysAlreadySet,
            libc::EINVAL => KernelRefusal::InvalidParameters,
            other => KernelRefusal::Other(other),
        }
    }

    fn from_io(e: &io::Error) -> KernelRefusal {
        KernelRefusal::from_errno(e.raw_os_error().unwrap_or(0))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KernelRefusal::TlsModuleMissing => "tls_module_missing",
            KernelRefusal::NotSupported => "not_supported",
            KernelRefusal::AlreadyAttached => "already_attached",
            KernelRefusal::NotConnected => "not_connected",
            KernelRefusal::KeysAlreadySet => "keys_already_set",
            KernelRefusal::InvalidParameters => "invalid_parameters",
            KernelRefusal::Other(_) => "other",
        }
    }
}

impl fmt::Display for KernelRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelRefusal::TlsModuleMissing => f.write_str(
                "the kernel has no TLS upper-layer protocol (ENOENT): `modprobe tls`, or a kernel built with CONFIG_TLS",
            ),
            KernelRefusal::NotSupported => f.write_str("not supported by this kernel"),
            KernelRefusal::AlreadyAttached => {
                f.write_str("the socket already has an upper-layer protocol")
            }
            KernelRefusal::NotConnected => f.write_str("the socket is not connected"),
            KernelRefusal::KeysAlreadySet => f.write_str("keys are already installed"),
            KernelRefusal::InvalidParameters => {
                f.write_str("the kernel rejected the crypto parameters")
            }
            KernelRefusal::Other(errno) => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

/// Why kTLS cannot be used at all on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KtlsUnavailable {
    /// Attaching the `tls` ULP to a connected TCP socket failed.
    Ulp(KernelRefusal),
    /// The ULP attached, but no (version, cipher) pair was accepted.
    NoCipher,
    /// The loopback socket pair for the probe could not be set up.
    ProbeSocket(io::ErrorKind),
    /// Not probed: `tls.ktls = "off"`.
    NotProbed,
}

impl KtlsUnavailable {
    pub fn as_str(&self) -> &'static str {
        match self {
            KtlsUnavailable::Ulp(_) => "ulp_refused",
            KtlsUnavailable::NoCipher => "no_cipher",
            KtlsUnavailable::ProbeSocket(_) => "probe_socket",
            KtlsUnavailable::NotProbed => "not_probed",
        }
    }
}

impl fmt::Display for KtlsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KtlsUnavailable::Ulp(refusal) => write!(f, "setsockopt(TCP_ULP, \"tls\"): {refusal}"),
            KtlsUnavailable::NoCipher => {
                f.write_str("the kernel accepted no TLS 1.2/1.3 AES-GCM or ChaCha20 keys")
            }
            KtlsUnavailable::ProbeSocket(kind) => {
                write!(
                    f,
                    "could not open a loopback TCP connection to probe: {kind}"
                )
            }
            KtlsUnavailable::NotProbed => f.write_str("not probed (tls.ktls = \"off\")"),
        }
    }
}

/// The result of [`probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KtlsSupport {
    Available(KernelCiphers),
    Unavailable(KtlsUnavailable),
}

/// Probes the running kernel on loopback TCP connections: attaches the
/// `tls` ULP and then, per (version, cipher), installs zero transmit keys on
/// a fresh connection. Nothing is sent. Takes well under a millisecond.
pub fn probe() -> KtlsSupport {
    let probe_one = |params: Option<(TlsVersion, KtlsCipher)>| -> Result<(), KtlsUnavailable> {
        let (client, _server) =
            loopback_pair().map_err(|e| KtlsUnavailable::ProbeSocket(e.kind()))?;
        let fd = client.as_raw_fd();
        attach_ulp(fd).map_err(|e| KtlsUnavailable::Ulp(KernelRefusal::from_io(&e)))?;
        if let Some((version, cipher)) = params {
            set_zero_tx_keys(fd, version, cipher)
                .map_err(|e| KtlsUnavailable::Ulp(KernelRefusal::from_io(&e)))?;
        }
        Ok(())
    };
    if let Err(reason) = probe_one(None) {
        return KtlsSupport::Unavailable(reason);
    }
    let mut ciphers = KernelCiphers::default();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        for cipher in KtlsCipher::ALL {
            if probe_one(Some((version, cipher))).is_ok() {
                ciphers.insert(version, cipher);
            }
        }
    }
    if ciphers.is_empty() {
        KtlsSupport::Unavailable(KtlsUnavailable::NoCipher)
    } else {
        KtlsSupport::Available(ciphers)
    }
}

fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// `setsockopt(fd, level, name, value)`: the kernel only reads `value`.
fn setsockopt_bytes(fd: RawFd, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `value` is a live, initialised buffer of `len` bytes for the
    // duration of the call; the kernel only reads it.
    let rc = unsafe { libc::setsockopt(fd, level, name, value.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn attach_ulp(fd: RawFd) -> io::Result<()> {
    setsockopt_bytes(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls")
}

/// Installs one direction's keys: `setsockopt(SOL_TLS, TLS_TX or TLS_RX)`
/// with the kernel struct inside `info`.
fn install_keys(fd: RawFd, name: libc::c_int, info: &::ktls::CryptoInfo) -> io::Result<()> {
    setsockopt_bytes(fd, libc::SOL_TLS, name, crypto_info_bytes(info))
}

/// The kernel struct inside `info`, as the bytes setsockopt takes.
fn crypto_info_bytes(info: &::ktls::CryptoInfo) -> &[u8] {
    // SAFETY: `as_ptr()` points at the `repr(C)` kernel struct inside
    // `info` (two u16 and arrays of u8: no padding, every byte
    // initialised), `size()` bytes long, borrowed as long as `info` is.
    unsafe { std::slice::from_raw_parts(info.as_ptr().cast::<u8>(), info.size()) }
}

/// Installs all-zero transmit keys for (`version`, `cipher`): the probe,
/// on a connection that never sends.
fn set_zero_tx_keys(fd: RawFd, version: TlsVersion, cipher: KtlsCipher) -> io::Result<()> {
    install_keys(fd, libc::TLS_TX, &zero_keys(version, cipher))
}

fn zero_keys(version: TlsVersion, cipher: KtlsCipher) -> ::ktls::CryptoInfo {
    use ::ktls::CryptoInfo;
    use ktls_sys::bindings as sys;
    let info = sys::tls_crypto_info {
        version: match version {
            TlsVersion::Tls12 => libc::TLS_1_2_VERSION,
            TlsVersion::Tls13 => libc::TLS_1_3_VERSION,
        },
        cipher_type: match cipher {
            KtlsCipher::AesGcm128 => libc::TLS_CIPHER_AES_GCM_128,
            KtlsCipher::AesGcm256 => libc::TLS_CIPHER_AES_GCM_256,
            KtlsCipher::Chacha20Poly1305 => libc::TLS_CIPHER_CHACHA20_POLY1305,
        },
    };
    match cipher {
        KtlsCipher::AesGcm128 => CryptoInfo::AesGcm128(sys::tls12_crypto_info_aes_gcm_128 {
            info,
            iv: [0; 8],
            key: [0; 16],
            salt: [0; 4],
            rec_seq: [0; 8],
        }),
        KtlsCipher::AesGcm256 => CryptoInfo::AesGcm256(sys::tls12_crypto_info_aes_gcm_256 {
            info,
            iv: [0; 8],
            key: [0; 32],
            salt: [0; 4],
            rec_seq: [0; 8],
        }),
        KtlsCipher::Chacha20Poly1305 => {
            CryptoInfo::Chacha20Poly1305(sys::tls12_crypto_info_chacha20_poly1305 {
                info,
                iv: [0; 12],
                key: [0; 32],
                salt: sys::__IncompleteArrayField::new(),
                rec_seq: [0; 8],
            })
        }
    }
}

/// kTLS cannot be used at all but `tls.ktls = "require"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtlsRequiredButUnavailable(pub KtlsUnavailable);

impl fmt::Display for KtlsRequiredButUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tls.ktls: \"require\" but kernel TLS is unavailable: {}",
            self.0
        )
    }
}

impl std::error::Error for KtlsRequiredButUnavailable {}

/// The configured mode resolved against what the kernel can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtlsPlan {
    mode: KtlsMode,
    support: KtlsSupport,
}

/// Per connection: who encrypts records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KtlsDecision {
    /// Switch to kTLS with this cipher ([`enable`]).
    Kernel(KtlsCipher),
    /// Keep rustls doing the records.
    Userspace(UserspaceReason),
    /// `require` mode, and this suite cannot be offloaded: close the
    /// connection. (Cannot happen when the server config offered only
    /// [`KtlsPlan::offerable_suites`].)
    Refuse(UserspaceReason),
}

/// Why a connection stays in userspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserspaceReason {
    /// `tls.ktls = "off"`.
    Disabled,
    /// The kernel has no usable kTLS (see [`probe`]).
    KernelUnavailable,
    /// The kernel lacks this (version, cipher) pair.
    CipherNotInKernel,
}

impl UserspaceReason {
    /// Short name for logs: the label it is counted under (`ktls_unavailable`
    /// is also counted once at startup).
    pub fn as_str(self) -> &'static str {
        Event::from(self).label()
    }
}

impl From<UserspaceReason> for Event {
    fn from(reason: UserspaceReason) -> Event {
        match reason {
            UserspaceReason::Disabled => Event::KtlsDisabled,
            UserspaceReason::KernelUnavailable => Event::KtlsUnavailable,
            UserspaceReason::CipherNotInKernel => Event::KtlsCipherUnsupported,
        }
    }
}

impl KtlsPlan {
    /// Resolves the mode at startup; `require` without kernel support is an
    /// error.
    pub fn resolve(
        mode: KtlsMode,
        support: KtlsSupport,
    ) -> Result<KtlsPlan, KtlsRequiredButUnavailable> {
        if let (KtlsMode::Require, KtlsSupport::Unavailable(reason)) = (mode, &support) {
            return Err(KtlsRequiredButUnavailable(reason.clone()));
        }
        Ok(KtlsPlan { mode, support })
    }

    /// `tls.ktls` as configured.
    pub fn mode(&self) -> KtlsMode {
        self.mode
    }

    /// Whether the running kernel has usable kTLS (the startup probe's
    /// verdict, whatever the mode).
    pub fn kernel_has_ktls(&self) -> bool {
        matches!(self.support, KtlsSupport::Available(_))
    }

    /// Whether any connection may be handed to the kernel (so rustls must
    /// allow secret extraction).
    pub fn may_offload(&self) -> bool {
        self.mode != KtlsMode::Off && matches!(self.support, KtlsSupport::Available(_))
    }

    /// The one line to log at startup, and the reason to count in a metric,
    /// when kTLS was wanted but is unavailable.
    pub fn startup_notice(&self) -> Option<(UserspaceReason, String)> {
        match (&self.mode, &self.support) {
            (KtlsMode::Auto, KtlsSupport::Unavailable(reason)) => Some((
                UserspaceReason::KernelUnavailable,
                format!("kernel TLS unavailable, encrypting in userspace: {reason}"),
            )),
            _ => None,
        }
    }

    /// The suites the server should offer: all of them, except in `require`
    /// mode, where only those the kernel can take over.
    pub fn offerable_suites(&self, suites: Vec<SupportedCipherSuite>) -> Vec<SupportedCipherSuite> {
        match (&self.mode, &self.support) {
            (KtlsMode::Require, KtlsSupport::Available(ciphers)) => suites
                .into_iter()
                .filter(|s| ciphers.supports_suite(*s))
                .collect(),
            _ => suites,
        }
    }

    /// Decides for one connection from its negotiated suite (which implies
    /// the protocol version).
    pub fn decide(&self, suite: SupportedCipherSuite) -> KtlsDecision {
        let ciphers = match (&self.mode, &self.support) {
            (KtlsMode::Off, _) => return KtlsDecision::Userspace(UserspaceReason::Disabled),
            (KtlsMode::Auto, KtlsSupport::Unavailable(_)) => {
                return KtlsDecision::Userspace(UserspaceReason::KernelUnavailable)
            }
            (KtlsMode::Require, KtlsSupport::Unavailable(_)) => {
                return KtlsDecision::Refuse(UserspaceReason::KernelUnavailable)
            }
            (_, KtlsSupport::Available(ciphers)) => *ciphers,
        };
        match KtlsCipher::of_suite(suite) {
            Some(cipher) if ciphers.contains(super::suite_version(suite), cipher) => {
                KtlsDecision::Kernel(cipher)
            }
            _ if self.mode == KtlsMode::Require => {
                KtlsDecision::Refuse(UserspaceReason::CipherNotInKernel)
            }
            _ => KtlsDecision::Userspace(UserspaceReason::CipherNotInKernel),
        }
    }
}

/// Which kTLS step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KtlsStep {
    Ulp,
    TxKeys,
    RxKeys,
}

/// Why [`enable`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum KtlsError {
    /// The handshake has not finished.
    HandshakeNotComplete,
    /// rustls still has TLS records to write.
    PendingOutput,
    /// rustls failed processing buffered records.
    Tls(rustls::Error),
    /// The peer closed the TLS session (close_notify) before the switch.
    PeerClosed,
    /// rustls would not hand out the secrets.
    ExtractSecrets(rustls::Error),
    /// The negotiated suite has no kernel equivalent.
    UnsupportedCipher(String),
    /// A setsockopt was refused.
    Kernel {
        step: KtlsStep,
        refusal: KernelRefusal,
    },
}

impl KtlsError {
    /// Short snake_case name for logs: the label it is counted under.
    pub fn as_str(&self) -> &'static str {
        Event::from(self).label()
    }
}

/// A connection that stayed in userspace, by the step that failed.
impl From<&KtlsError> for Event {
    fn from(error: &KtlsError) -> Event {
        match error {
            KtlsError::HandshakeNotComplete => Event::KtlsHandshakeNotComplete,
            KtlsError::PendingOutput => Event::KtlsPendingOutput,
            KtlsError::Tls(_) => Event::KtlsTls,
            KtlsError::PeerClosed => Event::KtlsPeerClosed,
            KtlsError::ExtractSecrets(_) => Event::KtlsExtractSecrets,
            KtlsError::UnsupportedCipher(_) => Event::KtlsUnsupportedCipher,
            KtlsError::Kernel { step, .. } => match step {
                KtlsStep::Ulp => Event::KtlsUlpRefused,
                KtlsStep::TxKeys => Event::KtlsTxKeysRefused,
                KtlsStep::RxKeys => Event::KtlsRxKeysRefused,
            },
        }
    }
}

impl fmt::Display for KtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KtlsError::HandshakeNotComplete => f.write_str("the TLS handshake is not complete"),
            KtlsError::PendingOutput => f.write_str("TLS records are still waiting to be written"),
            KtlsError::Tls(e) => write!(f, "TLS error before the switch: {e}"),
            KtlsError::PeerClosed => f.write_str("the peer closed the TLS session"),
            KtlsError::ExtractSecrets(e) => write!(f, "extracting the TLS secrets: {e}"),
            KtlsError::UnsupportedCipher(suite) => {
                write!(f, "cipher suite {suite} cannot be offloaded to the kernel")
            }
            KtlsError::Kernel { step, refusal } => {
                let what = match step {
                    KtlsStep::Ulp => "setsockopt(TCP_ULP, \"tls\")",
                    KtlsStep::TxKeys => "setsockopt(SOL_TLS, TLS_TX)",
                    KtlsStep::RxKeys => "setsockopt(SOL_TLS, TLS_RX)",
                };
                write!(f, "{what}: {refusal}")
            }
        }
    }
}

impl std::error::Error for KtlsError {}

/// [`enable`] failed. If `connection` is `Some`, nothing irreversible
/// happened and the session can go on in userspace with it; if `None`, the
/// session must be closed.
pub struct EnableFailure<C = rustls::ServerConnection> {
    pub error: KtlsError,
    pub connection: Option<Box<C>>,
}

impl<C> fmt::Debug for EnableFailure<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnableFailure")
            .field("error", &self.error)
            .field("connection_kept", &self.connection.is_some())
            .finish()
    }
}

/// A rustls server connection [`enable`] can take apart: the unbuffered
/// one the runtime drives, or the buffered one.
pub trait OffloadSource: Sized {
    fn common_state(&self) -> &rustls::CommonState;
    /// Plaintext rustls has decrypted and not handed out yet.
    fn drain_plaintext(&mut self) -> Result<Vec<u8>, KtlsError>;
    /// The traffic secrets and sequence numbers; the connection is gone.
    fn extract_secrets(self) -> Result<rustls::ExtractedSecrets, rustls::Error>;
}

impl OffloadSource for rustls::ServerConnection {
    fn common_state(&self) -> &rustls::CommonState {
        self
    }

    fn drain_plaintext(&mut self) -> Result<Vec<u8>, KtlsError> {
        drain_plaintext(self)
    }

    fn extract_secrets(self) -> Result<rustls::ExtractedSecrets, rustls::Error> {
        self.dangerous_extract_secrets()
    }
}

impl OffloadSource for rustls::server::UnbufferedServerConnection {
    fn common_state(&self) -> &rustls::CommonState {
        self
    }

    /// Nothing: the runtime takes each record's plaintext as it opens it.
    /// (A close_notify is the runtime's to report.)
    fn drain_plaintext(&mut self) -> Result<Vec<u8>, KtlsError> {
        Ok(Vec::new())
    }

    fn extract_secrets(self) -> Result<rustls::ExtractedSecrets, rustls::Error> {
        self.dangerous_into_kernel_connection()
            .map(|(secrets, _)| secrets)
    }
}

/// A connection now encrypted by the kernel.
#[derive(Debug)]
pub struct KtlsEnabled {
    pub cipher: KtlsCipher,
    pub version: TlsVersion,
    /// Plaintext rustls had already decrypted (the start of the HTTP
    /// request, typically): process it before reading from the socket.
    pub early_plaintext: Vec<u8>,
}

/// Hands the established connection on `fd` to the kernel. See the module
/// documentation for what the caller must guarantee.
pub fn enable<C: OffloadSource>(fd: RawFd, mut conn: C) -> Result<KtlsEnabled, EnableFailure<C>> {
    let keep = |error, conn| EnableFailure {
        error,
        connection: Some(Box::new(conn)),
    };
    if conn.common_state().is_handshaking() {
        return Err(keep(KtlsError::HandshakeNotComplete, conn));
    }
    if conn.common_state().wants_write() {
        return Err(keep(KtlsError::PendingOutput, conn));
    }
    let Some(suite) = conn.common_state().negotiated_cipher_suite() else {
        return Err(keep(KtlsError::HandshakeNotComplete, conn));
    };
    let Some(cipher) = KtlsCipher::of_suite(suite) else {
        return Err(keep(
            KtlsError::UnsupportedCipher(super::cipher_suite_name(suite)),
            conn,
        ));
    };
    // Reversible: a ULP without keys passes TCP through unchanged, so on
    // failure the session simply continues in userspace.
    if let Err(e) = attach_ulp(fd) {
        let error = KtlsError::Kernel {
            step: KtlsStep::Ulp,
            refusal: KernelRefusal::from_io(&e),
        };
        return Err(keep(error, conn));
    }
    let early_plaintext = match conn.drain_plaintext() {
        Ok(bytes) => bytes,
        Err(error) => return Err(keep(error, conn)),
    };
    let fatal = |error| EnableFailure::<C> {
        error,
        connection: None,
    };
    let secrets = conn
        .extract_secrets()
        .map_err(|e| fatal(KtlsError::ExtractSecrets(e)))?;
    let install = |step, info: ::ktls::CryptoInfo| {
        let name = match step {
            KtlsStep::TxKeys => libc::TLS_TX,
            KtlsStep::RxKeys | KtlsStep::Ulp => libc::TLS_RX,
        };
        install_keys(fd, name, &info).map_err(|e| {
            fatal(KtlsError::Kernel {
                step,
                refusal: KernelRefusal::from_io(&e),
            })
        })
    };
    let tx = ::ktls::CryptoInfo::from_rustls(suite, secrets.tx)
        .map_err(|e| fatal(KtlsError::UnsupportedCipher(e.to_string())))?;
    let rx = ::ktls::CryptoInfo::from_rustls(suite, secrets.rx)
        .map_err(|e| fatal(KtlsError::UnsupportedCipher(e.to_string())))?;
    install(KtlsStep::TxKeys, tx)?;
    install(KtlsStep::RxKeys, rx)?;
    Ok(KtlsEnabled {
        cipher,
        version: super::suite_version(suite),
        early_plaintext,
    })
}

/// Reads out every byte of plaintext rustls holds.
pub(super) fn drain_plaintext(conn: &mut rustls::ServerConnection) -> Result<Vec<u8>, KtlsError> {
    let state = conn.process_new_packets().map_err(KtlsError::Tls)?;
    if state.peer_has_closed() {
        return Err(KtlsError::PeerClosed);
    }
    let mut plaintext = vec![0; state.plaintext_bytes_to_read()];
    conn.reader()
        .read_exact(&mut plaintext)
        .map_err(|e| KtlsError::Tls(rustls::Error::General(e.to_string())))?;
    Ok(plaintext)
}

/// What the runtime does with a non-application-data record the kernel
/// reported (record type from the `TLS_GET_RECORD_TYPE` control message,
/// payload as received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlAction {
    /// close_notify: end the session cleanly ([RFC 8446] 6.1).
    PeerClosed,
    /// A fatal alert (or any alert but close_notify/user_canceled in
    /// TLS 1.3, [RFC 8446] 6.2): abort the session.
    PeerAborted { description: u8 },
    /// A warning alert sstpd can ignore (TLS 1.2 only, or user_canceled).
    Ignore,
    /// A TLS 1.3 KeyUpdate ([RFC 8446] 4.6.3): the peer's next records use
    /// keys the kernel does not have (Linux before 6.13 cannot install
    /// them): close.
    KeyUpdate,
    /// Any other post-handshake message (NewSessionTicket, TLS 1.2
    /// renegotiation) the kernel cannot act on: close.
    UnsupportedHandshake,
    /// ChangeCipherSpec or an unknown record type after the handshake:
    /// a protocol violation; close.
    Unexpected { record_type: u8 },
}

impl ControlAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::PeerClosed => "peer_closed",
            ControlAction::PeerAborted { .. } => "peer_aborted",
            ControlAction::Ignore => "ignore",
            ControlAction::KeyUpdate => "key_update",
            ControlAction::UnsupportedHandshake => "post_handshake_message",
            ControlAction::Unexpected { .. } => "unexpected_record",
        }
    }

    /// What a session that ends on this record is counted under; `None`
    /// for the records that do not end it badly.
    pub fn close_event(self) -> Option<Event> {
        match self {
            ControlAction::PeerClosed | ControlAction::Ignore => None,
            ControlAction::PeerAborted { .. } => Some(Event::KtlsPeerFatalAlert),
            ControlAction::KeyUpdate => Some(Event::KtlsPeerKeyUpdate),
            ControlAction::UnsupportedHandshake => Some(Event::KtlsPeerPostHandshake),
            ControlAction::Unexpected { .. } => Some(Event::KtlsPeerUnexpectedRecord),
        }
    }
}

/// Record content types ([RFC 8446] 5.1).
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type key_update ([RFC 8446] 4).
const HANDSHAKE_KEY_UPDATE: u8 = 24;
/// Alert levels and descriptions ([RFC 8446] 6).
const ALERT_WARNING: u8 = 1;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;

/// Classifies a control record; never panics on peer data.
pub fn control_record_action(
    version: TlsVersion,
    record_type: u8,
    payload: &[u8],
) -> ControlAction {
    match record_type {
        CONTENT_ALERT => match payload {
            [_, ALERT_CLOSE_NOTIFY] => ControlAction::PeerClosed,
            [ALERT_WARNING, ALERT_USER_CANCELED] => ControlAction::Ignore,
            [ALERT_WARNING, _] if version == TlsVersion::Tls12 => ControlAction::Ignore,
            [_, description] => ControlAction::PeerAborted {
                description: *description,
            },
            // A malformed alert is a decode_error (50).
            _ => ControlAction::PeerAborted { description: 50 },
        },
        CONTENT_HANDSHAKE => match payload.first() {
            Some(&HANDSHAKE_KEY_UPDATE) if version == TlsVersion::Tls13 => ControlAction::KeyUpdate,
            _ => ControlAction::UnsupportedHandshake,
        },
        other => ControlAction::Unexpected { record_type: other },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the probe installs is the kernel's struct (as libc declares
    /// it) with the version and cipher in front and zeros after, whatever
    /// this machine's kernel supports.
    #[test]
    fn zero_keys_are_the_kernel_struct() {
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for cipher in KtlsCipher::ALL {
                let keys = zero_keys(version, cipher);
                let bytes = crypto_info_bytes(&keys);
                let (size, cipher_type) = match cipher {
                    KtlsCipher::AesGcm128 => (
                        std::mem::size_of::<libc::tls12_crypto_info_aes_gcm_128>(),
                        libc::TLS_CIPHER_AES_GCM_128,
                    ),
                    KtlsCipher::AesGcm256 => (
                        std::mem::size_of::<libc::tls12_crypto_info_aes_gcm_256>(),
                        libc::TLS_CIPHER_AES_GCM_256,
                    ),
                    KtlsCipher::Chacha20Poly1305 => (
                        std::mem::size_of::<libc::tls12_crypto_info_chacha20_poly1305>(),
                        libc::TLS_CIPHER_CHACHA20_POLY1305,
                    ),
                };
                let version = match version {
                    TlsVersion::Tls12 => libc::TLS_1_2_VERSION,
                    TlsVersion::Tls13 => libc::TLS_1_3_VERSION,
                };
                assert_eq!(bytes.len(), size, "{cipher:?}");
                assert_eq!(bytes[..2], version.to_ne_bytes());
                assert_eq!(bytes[2..4], cipher_type.to_ne_bytes());
                assert!(bytes[4..].iter().all(|&b| b == 0), "{cipher:?}");
            }
        }
    }
}
