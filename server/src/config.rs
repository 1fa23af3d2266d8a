//! The TOML configuration file, its defaults and its validation.
//!
//! Every key has a default, so an empty file is a valid configuration
//! (listening on 127.0.0.1:4443 with a generated certificate). Unknown keys are
//! errors, and every error names the key it is about, e.g.
//! `ipv4.pool: 10.99.0.0/33 is not a valid prefix`.
//!
//! Durations are written the human way (`"60s"`, `"500ms"`, `"2m"`).
//! Relative paths in a file are resolved against the directory of that file.
//!
//! [`Config::embedded_defaults`] is what `sstpd` runs with when started
//! without a configuration file: the defaults plus one demo user.
//!
//! docs/configuration.md documents every key; keep the two in step.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, RngCore};
use serde::{Deserialize, Deserializer};

use crate::proto::auth::AuthProtocol;

/// Environment variable that sets the password of the embedded `demo` user.
pub const DEMO_PASSWORD_ENV: &str = "SSTPD_DEMO_PASSWORD";
/// Name of the user the embedded defaults define.
pub const DEMO_USER: &str = "demo";
/// Length of a generated demo password (alphanumeric, ~95 bits).
pub const DEMO_PASSWORD_LEN: usize = 16;

/// The whole configuration. Sections mirror the TOML tables.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub tls: TlsSection,
    pub sstp: SstpSection,
    pub ppp: PppSection,
    pub ipv4: Ipv4Section,
    pub ipv6: Ipv6Section,
    pub tun: TunSection,
    pub users: UsersSection,
    pub logging: LoggingSection,
    /// Where this configuration came from (not a key).
    #[serde(skip)]
    pub source: ConfigSource,
}

/// Where a [`Config`] came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ConfigSource {
    /// Built in code from the defaults (tests, library users).
    #[default]
    Defaults,
    /// Read from this file.
    File(PathBuf),
    /// [`Config::embedded_defaults`]: no file was given.
    Embedded {
        /// The demo password was generated (and must be shown at startup)
        /// rather than taken from [`DEMO_PASSWORD_ENV`].
        demo_password_generated: bool,
    },
}

/// `[server]`: sockets, workers, lifecycle.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// TCP addresses to accept SSTP (HTTPS) connections on. Each worker binds
    /// every address with SO_REUSEPORT. Default `["127.0.0.1:4443"]`; a
    /// production server uses `["0.0.0.0:443", "[::]:443"]`.
    pub listen: Vec<SocketAddr>,
    /// Worker threads, one io_uring runtime each. 0 = one per available core.
    pub workers: usize,
    /// Pin worker N to core N (core_affinity). Default true.
    pub pin_workers: bool,
    /// Where generated state (the self-signed certificate) lives. Default:
    /// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else
    /// `/var/lib/sstpd` as root, else `$XDG_STATE_HOME/sstpd` or
    /// `~/.local/state/sstpd`.
    pub state_dir: Option<PathBuf>,
    /// On SIGTERM/SIGINT, how long sessions get to close cleanly (SSTP Call
    /// Disconnect) before the process exits anyway. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Upper bound on concurrent sessions (all workers together); further
    /// connections are refused. Default 10000.
    pub max_sessions: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 4443))],
            workers: 0,
            pin_workers: true,
            state_dir: None,
            shutdown_timeout: Duration::from_secs(5),
            max_sessions: 10_000,
        }
    }
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// Whether to hand record encryption to the kernel (kTLS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KtlsMode {
    /// Use kTLS when the kernel and the negotiated cipher allow it.
    #[default]
    Auto,
    /// Always encrypt in userspace (rustls).
    Off,
    /// Refuse to start without kTLS; only offer ciphers the kernel handles.
    Require,
}

impl KtlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KtlsMode::Auto => "auto",
            KtlsMode::Off => "off",
            KtlsMode::Require => "require",
        }
    }
}

/// `[tls]`: the HTTPS side.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first. Absent (together with
    /// `private_key`): a self-signed certificate for `localhost` is generated
    /// into the state directory and reused on later starts.
    pub certificate: Option<PathBuf>,
    /// PEM private key (RSA or ECDSA; PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
    /// Lowest TLS version accepted. Default "1.2" (Windows 7/8 and many
    /// routers speak no TLS 1.3).
    pub min_version: TlsVersion,
    /// Highest TLS version accepted. Default "1.3". "1.2" pins the server
    /// to TLS 1.2, e.g. to reproduce what a Windows 10 client negotiates
    /// or to test a client's TLS 1.2 path.
    pub max_version: TlsVersion,
    /// Cipher suites in preference order, by their IANA/rustls names. Default:
    /// every suite listed in [`crate::tls::DEFAULT_CIPHER_SUITE_NAMES`].
    pub cipher_suites: Option<Vec<String>>,
    /// Bound on the TLS handshake plus the HTTP request. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Kernel TLS offload: "auto" (default), "off" or "require".
    pub ktls: KtlsMode,
    /// Offer session resumption (TLS 1.2 tickets, TLS 1.3 tickets). Default
    /// false: SSTP connections are long-lived, so resumption buys little.
    /// Requires `ktls = "off"`.
    pub session_tickets: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            certificate: None,
            private_key: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: None,
            handshake_timeout: Duration::from_secs(10),
            ktls: KtlsMode::Auto,
            session_tickets: false,
        }
    }
}

/// A hash the SSTP crypto binding may use ([MS-SSTP] 2.2.8, 3.2.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CryptoBindingHash {
    /// CERT_HASH_PROTOCOL_SHA256 (0x02).
    Sha256,
    /// CERT_HASH_PROTOCOL_SHA1 (0x01).
    Sha1,
}

impl CryptoBindingHash {
    pub fn as_str(self) -> &'static str {
        match self {
            CryptoBindingHash::Sha256 => "sha256",
            CryptoBindingHash::Sha1 => "sha1",
        }
    }
}

/// `[sstp]`: SSTP timers ([MS-SSTP] 3.1.2, 3.2.2) and the crypto binding.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SstpSection {
    /// Send an Echo Request after this much silence; the peer is dead after
    /// one more interval without an answer ([MS-SSTP] 3.1.2 Hello timer).
    /// Default 60 s.
    #[serde(with = "humantime_serde")]
    pub hello_interval: Duration,
    /// Bound from the HTTP request to Call Connected ([MS-SSTP] 3.2.2
    /// Negotiation timer). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub negotiation_timeout: Duration,
    /// Wait in Call Abort Pending before closing ([MS-SSTP] 3.1.2, 3 s).
    #[serde(with = "humantime_serde")]
    pub abort_timeout: Duration,
    /// Wait for the peer's Call Abort after ours ([MS-SSTP] 3.1.2, 1 s).
    #[serde(with = "humantime_serde")]
    pub abort_ack_timeout: Duration,
    /// Wait in Call Disconnect Pending ([MS-SSTP] 3.1.2, 5 s).
    #[serde(with = "humantime_serde")]
    pub disconnect_timeout: Duration,
    /// Wait for Call Disconnect Ack ([MS-SSTP] 3.1.2, 1 s).
    #[serde(with = "humantime_serde")]
    pub disconnect_ack_timeout: Duration,
    /// Hashes offered in Crypto Binding Request, in preference order.
    /// Default ["sha256", "sha1"]; either alone is allowed.
    pub crypto_binding: Vec<CryptoBindingHash>,
}

impl Default for SstpSection {
    fn default() -> Self {
        SstpSection {
            hello_interval: Duration::from_secs(60),
            negotiation_timeout: Duration::from_secs(60),
            abort_timeout: Duration::from_secs(3),
            abort_ack_timeout: Duration::from_secs(1),
            disconnect_timeout: Duration::from_secs(5),
            disconnect_ack_timeout: Duration::from_secs(1),
            crypto_binding: vec![CryptoBindingHash::Sha256, CryptoBindingHash::Sha1],
        }
    }
}

/// `[ppp]`: LCP ([RFC 1661]) and authentication.
///
/// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PppSection {
    /// Authentication methods the server asks for, most preferred first;
    /// a Configure-Nak from the peer moves down the list. Default
    /// ["mschapv2", "chap-md5", "pap"].
    #[serde(deserialize_with = "deserialize_auth_protocols")]
    pub auth: Vec<AuthProtocol>,
    /// Maximum-Receive-Unit we announce ([RFC 1661] 6.1). Default 1400.
    pub mru: u16,
    /// Restart timer for Configure/Terminate-Request ([RFC 1661] 4.6, 3 s).
    #[serde(with = "humantime_serde")]
    pub lcp_restart_interval: Duration,
    /// Max-Configure ([RFC 1661] 4.6, 10).
    pub lcp_max_configure: u32,
    /// Max-Failure ([RFC 1661] 4.6, 5).
    pub lcp_max_failure: u32,
    /// Max-Terminate ([RFC 1661] 4.6, 2).
    pub lcp_max_terminate: u32,
    /// Send LCP Echo-Request after this much silence; 0 = off (SSTP's own
    /// Hello already detects dead peers). Default 0.
    #[serde(with = "humantime_serde")]
    pub lcp_echo_interval: Duration,
    /// Unanswered Echo-Requests before the link is declared dead. Default 3.
    pub lcp_echo_failures: u32,
    /// Bound on the authentication phase, including the authenticator's
    /// answer. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// Failed attempts allowed per connection (MS-CHAPv2 retries, [RFC 2759]
    /// 6). Default 3.
    pub auth_max_attempts: u32,
}

impl Default for PppSection {
    fn default() -> Self {
        PppSection {
            auth: vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
            mru: 1400,
            lcp_restart_interval: Duration::from_secs(3),
            lcp_max_configure: 10,
            lcp_max_failure: 5,
            lcp_max_terminate: 2,
            lcp_echo_interval: Duration::ZERO,
            lcp_echo_failures: 3,
            auth_timeout: Duration::from_secs(30),
            auth_max_attempts: 3,
        }
    }
}

impl PppSection {
    /// The authentication machines' settings derived from this section.
    pub fn auth_config(&self) -> crate::proto::auth::AuthConfig {
        crate::proto::auth::AuthConfig {
            restart_interval: self.lcp_restart_interval,
            max_transmissions: self.lcp_max_configure,
            max_attempts: self.auth_max_attempts,
            phase_timeout: self.auth_timeout,
        }
    }
}

/// `[ipv4]`: addresses handed out by IPCP ([RFC 1332], [RFC 1877]).
///
/// [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
/// [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ipv4Section {
    /// Client addresses: a prefix ("10.99.0.0/24": network and broadcast
    /// addresses excluded) or an inclusive range ("10.99.0.10-10.99.0.250").
    /// The gateway is never handed out. Default 10.99.0.0/24.
    pub pool: Ipv4Range,
    /// The server's own address on the tunnel (IPCP IP-Address of our side,
    /// the TUN address). Default 10.99.0.1.
    pub gateway: Ipv4Addr,
    /// DNS servers offered to clients ([RFC 1877]), at most two. Default none.
    pub dns: Vec<Ipv4Addr>,
    /// NBNS (WINS) servers offered to clients ([RFC 1877]), at most two.
    pub nbns: Vec<Ipv4Addr>,
}

impl Default for Ipv4Section {
    fn default() -> Self {
        Ipv4Section {
            pool: Ipv4Range {
                first: Ipv4Addr::new(10, 99, 0, 1),
                last: Ipv4Addr::new(10, 99, 0, 254),
                text: "10.99.0.0/24".into(),
            },
            gateway: Ipv4Addr::new(10, 99, 0, 1),
            dns: Vec::new(),
            nbns: Vec::new(),
        }
    }
}

/// `[ipv6]`: IPv6CP ([RFC 5072]) and per-session prefixes.
///
/// [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ipv6Section {
    /// Negotiate IPv6CP and route IPv6. Default false.
    pub enabled: bool,
    /// Prefix from which each session gets one /64. Default fd99::/48.
    pub prefix: Ipv6Prefix,
    /// The server's tunnel address. Default: the first address of `prefix`
    /// plus one (fd99::1).
    pub gateway: Option<Ipv6Addr>,
    /// DNS servers announced to clients, at most two.
    pub dns: Vec<Ipv6Addr>,
}

impl Default for Ipv6Section {
    fn default() -> Self {
        Ipv6Section {
            enabled: false,
            prefix: Ipv6Prefix {
                addr: Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0),
                len: 48,
            },
            gateway: None,
            dns: Vec::new(),
        }
    }
}

impl Ipv6Section {
    /// The configured gateway, or the prefix's first address plus one.
    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
            .unwrap_or_else(|| Ipv6Addr::from(u128::from(self.prefix.addr) | 1))
    }
}

/// `[tun]`: the tunnel device.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunSection {
    /// Interface name, at most 15 bytes. Default "sstp0".
    pub name: String,
    /// Interface MTU. Default 1400: on a 1500-byte IPv4 path (TCP MSS 1448
    /// with timestamps) one tunnelled packet of 1400 octets plus its framing
    /// — TLS record 22 (TLS 1.3) or 29 (TLS 1.2 AES-GCM), SSTP data header 4,
    /// PPP address/control and protocol 4 — fits in one TCP segment. See
    /// docs/configuration.md for the arithmetic and IPv6 paths.
    pub mtu: u16,
    /// One queue per worker (IFF_MULTI_QUEUE). Default true.
    pub multi_queue: bool,
}

impl Default for TunSection {
    fn default() -> Self {
        TunSection {
            name: "sstp0".into(),
            mtu: 1400,
            multi_queue: true,
        }
    }
}

/// A password: printed as `***` in debug output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One `[[users.local]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineUser {
    /// The name the client authenticates as.
    pub name: String,
    /// The cleartext password (CHAP and MS-CHAPv2 need it).
    pub password: Secret,
    /// A fixed tunnel address for this user; otherwise one from the pool.
    pub ip: Option<Ipv4Addr>,
}

/// `[users]`: local accounts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSection {
    /// A pppd chap-secrets file (`client server secret [ip]`).
    pub chap_secrets: Option<PathBuf>,
    /// Lines of chap-secrets apply when their server column is `*` or this
    /// name. Default "sstpd".
    pub server_name: String,
    /// Inline users; they override chap-secrets entries of the same name.
    pub local: Vec<InlineUser>,
}

impl Default for UsersSection {
    fn default() -> Self {
        UsersSection {
            chap_secrets: None,
            server_name: "sstpd".into(),
            local: Vec::new(),
        }
    }
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[logging]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// "error", "warn", "info" (default), "debug" or "trace". The environment
    /// variables `SSTPD_LOG`, then `RUST_LOG`, override it with a full
    /// tracing filter (e.g. `sstpd=debug`).
    pub level: LogLevel,
    /// "text" (default) or "json".
    pub format: LogFormat,
}

// ---------------------------------------------------------------------------
// Address types

/// An inclusive range of IPv4 addresses, written as a prefix or `first-last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Range {
    first: Ipv4Addr,
    last: Ipv4Addr,
    /// As written, for messages.
    text: String,
}

/// The largest pool accepted (a /8).
pub const MAX_POOL_ADDRESSES: u64 = 1 << 24;

impl Ipv4Range {
    /// The range `first..=last`; `None` when `last < first`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Self> {
        (first <= last).then(|| Ipv4Range {
            first,
            last,
            text: format!("{first}-{last}"),
        })
    }

    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&addr)
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if let Some((addr, len)) = text.split_once('/') {
            let addr: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("{text} is not a valid prefix"))?;
            let len: u32 = match len.parse() {
                Ok(len) if len <= 32 => len,
                _ => return Err(format!("{text} is not a valid prefix")),
            };
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let network = u32::from(addr) & mask;
            if network != u32::from(addr) {
                return Err(format!(
                    "{text} has host bits set (did you mean {}/{len}?)",
                    Ipv4Addr::from(network)
                ));
            }
            let broadcast = network | !mask;
            // /31 and /32 have no network or broadcast address to skip.
            let (first, last) = if len <= 30 {
                (network + 1, broadcast - 1)
            } else {
                (network, broadcast)
            };
            Ok(Ipv4Range {
                first: first.into(),
                last: last.into(),
                text: text.into(),
            })
        } else if let Some((first, last)) = text.split_once('-') {
            let parse = |s: &str| {
                s.trim().parse::<Ipv4Addr>().map_err(|_| {
                    format!("{text} is not a range of two IPv4 addresses (10.99.0.10-10.99.0.250)")
                })
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if last < first {
                return Err(format!("{text} ends before it starts"));
            }
            Ok(Ipv4Range {
                first,
                last,
                text: text.into(),
            })
        } else {
            Err(format!(
                "{text:?} is neither a prefix (10.99.0.0/24) nor a range (10.99.0.10-10.99.0.250)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Ipv4Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 prefix such as `fd99::/48`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("{s} is not a valid IPv6 prefix (fd99::/48)");
        let (addr, len) = s.trim().split_once('/').ok_or_else(invalid)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| invalid())?;
        let len: u8 = match len.parse() {
            Ok(len) if len <= 128 => len,
            _ => return Err(invalid()),
        };
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        let network = u128::from(addr) & mask;
        if network != u128::from(addr) {
            return Err(format!(
                "{s} has host bits set (did you mean {}/{len}?)",
                Ipv6Addr::from(network)
            ));
        }
        Ok(Ipv6Prefix { addr, len })
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn deserialize_auth_protocols<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<AuthProtocol>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|name| auth_protocol_by_name(name).map_err(serde::de::Error::custom))
        .collect()
}

/// Parses an authentication method name as used in the configuration.
pub fn auth_protocol_by_name(name: &str) -> Result<AuthProtocol, String> {
    [
        AuthProtocol::MsChapV2,
        AuthProtocol::ChapMd5,
        AuthProtocol::Pap,
    ]
    .into_iter()
    .find(|p| p.as_str().eq_ignore_ascii_case(name))
    .ok_or_else(|| format!("unknown method {name:?} (expected mschapv2, chap-md5 or pap)"))
}

// ---------------------------------------------------------------------------
// Errors

/// Why a configuration could not be used. Every variant names a key or a
/// file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type or form.
    Parse {
        /// The key (`ipv4.pool`), empty for document-level errors.
        key: String,
        message: String,
        /// 1-based line and column, when known.
        position: Option<(usize, usize)>,
    },
    /// A well-formed value that is not acceptable.
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } => {
                Some(key).filter(|k| !k.is_empty()).map(String::as_str)
            }
        }
    }

    /// Short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Parse { .. } => "parse",
            ConfigError::Invalid { .. } => "invalid",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Parse {
                key,
                message,
                position,
            } => {
                if !key.is_empty() {
                    write!(f, "{key}: ")?;
                }
                f.write_str(message)?;
                if let Some((line, column)) = position {
                    write!(f, " (line {line}, column {column})")?;
                }
                Ok(())
            }
            ConfigError::Invalid { key, message } => write!(f, "{key}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// ---------------------------------------------------------------------------
// Loading

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths in
    /// it are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_relative_paths(base);
        config.source = ConfigSource::File(path.to_owned());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating it (see [`Config::validate`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Parse {
                key: if key == "." { String::new() } else { key },
                message: inner.message().trim_end().to_owned(),
                position: inner.span().map(|span| line_column(text, span.start)),
            }
        })
    }

    /// Parses and validates TOML text; relative paths stay relative.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        };
        resolve(&mut self.server.state_dir);
        resolve(&mut self.tls.certificate);
        resolve(&mut self.tls.private_key);
        resolve(&mut self.users.chap_secrets);
    }

    /// What sstpd runs with when no configuration file is given: every
    /// default, plus the user `demo` whose password is taken from
    /// `SSTPD_DEMO_PASSWORD` or generated (and shown in the startup banner).
    pub fn embedded_defaults() -> Config {
        let env_password = std::env::var(DEMO_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty());
        Config::embedded_defaults_with(env_password, &mut rand::rng())
    }

    /// [`Config::embedded_defaults`] with the environment and the randomness
    /// supplied by the caller.
    pub fn embedded_defaults_with(env_password: Option<String>, rng: &mut dyn RngCore) -> Config {
        let generated = env_password.is_none();
        let password = env_password.unwrap_or_else(|| generate_password(rng));
        let mut config = Config::default();
        config.users.local.push(InlineUser {
            name: DEMO_USER.into(),
            password: Secret(password),
            ip: None,
        });
        config.source = ConfigSource::Embedded {
            demo_password_generated: generated,
        };
        config
    }

    /// The state directory: `server.state_dir`, else the per-user default.
    pub fn state_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.server.state_dir {
            return Ok(dir.clone());
        }
        if let Some(dir) = systemd_state_directory(std::env::var_os("STATE_DIRECTORY")) {
            return Ok(dir);
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let is_root = unsafe { libc::geteuid() } == 0;
        default_state_dir(
            is_root,
            std::env::var_os("XDG_STATE_HOME"),
            std::env::var_os("HOME"),
        )
        .ok_or_else(|| {
            ConfigError::invalid(
                "server.state_dir",
                "not set, and neither STATE_DIRECTORY, XDG_STATE_HOME nor HOME is set to \
                 derive it from",
            )
        })
    }

    /// The worker count, with 0 resolved to the number of available cores.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The directory systemd created for the service (`StateDirectory=`
/// exports it as `STATE_DIRECTORY`; several are separated by colons, the
/// first is ours). Relative or empty values are ignored. It also lets a
/// root process that is not a service (the benchmark demo) keep its state
/// out of `/var/lib`.
pub fn systemd_state_directory(value: Option<OsString>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    let value = value?;
    let first = value.as_bytes().split(|&b| b == b':').next()?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(first));
    path.is_absolute().then_some(path)
}

/// The default state directory: `/var/lib/sstpd` for root, else
/// `$XDG_STATE_HOME/sstpd`, else `$HOME/.local/state/sstpd`.
pub fn default_state_dir(
    is_root: bool,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if is_root {
        return Some(PathBuf::from("/var/lib/sstpd"));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = xdg_state_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(xdg.join("sstpd"));
    }
    home.filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/sstpd"))
}

/// A random alphanumeric password of [`DEMO_PASSWORD_LEN`] characters.
pub fn generate_password(rng: &mut dyn RngCore) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..DEMO_PASSWORD_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The lines sstpd logs at startup: where to connect, which certificate to
/// expect, and the demo credentials when they were generated.
pub fn startup_banner(config: &Config, cert_path: &Path, cert_sha256: &[u8; 32]) -> Vec<String> {
    let mut lines = Vec::new();
    for addr in &config.server.listen {
        lines.push(format!("listen: {addr} (SSTP over HTTPS)"));
    }
    lines.push(format!("certificate: {}", cert_path.display()));
    lines.push(format!(
        "certificate SHA-256 fingerprint: {}",
        crate::tls::colon_hex(cert_sha256)
    ));
    if let ConfigSource::Embedded {
        demo_password_generated,
    } = config.source
    {
        lines.push(format!(
            "no configuration file given: running with embedded defaults (pool {}, gateway {}, TUN {})",
            config.ipv4.pool, config.ipv4.gateway, config.tun.name
        ));
        if let Some(demo) = config.users.local.iter().find(|u| u.name == DEMO_USER) {
            if demo_password_generated {
                lines.push(format!(
                    "demo user: {DEMO_USER} / password: {} (set {DEMO_PASSWORD_ENV} to choose it)",
                    demo.password.0
                ));
            } else {
                lines.push(format!(
                    "demo user: {DEMO_USER} (password from {DEMO_PASSWORD_ENV})"
                ));
            }
        }
    }
    lines
}

// ---------------------------------------------------------------------------
// Validation

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;
/// IPv6 needs links of at least 1280 octets ([RFC 8200] 5).
const IPV6_MIN_MTU: u16 = 1280;
/// Smallest MTU/MRU accepted: the IPv4 minimum reassembly size.
const MIN_MTU: u16 = 576;
/// PPP names and passwords are carried in one-octet length fields
/// ([RFC 1334] 2.2.1, [RFC 1994] 4.1) or limited by Windows to 256.
const MAX_CREDENTIAL_LEN: usize = 255;

impl Config {
    /// Checks every rule that parsing alone does not enforce. The error names
    /// the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        self.validate_tls()?;
        self.validate_sstp()?;
        self.validate_ppp()?;
        self.validate_ipv4()?;
        self.validate_ipv6()?;
        self.validate_tun()?;
        self.validate_users()?;
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.listen.is_empty() {
            return Err(ConfigError::invalid(
                "server.listen",
                "at least one address is required",
            ));
        }
        no_duplicates("server.listen", &s.listen, ToString::to_string)?;
        if s.workers > 1024 {
            return Err(ConfigError::invalid(
                "server.workers",
                format!("{} is more than 1024", s.workers),
            ));
        }
        if s.shutdown_timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "server.shutdown_timeout",
                "must be at most 5m",
            ));
        }
        if s.max_sessions == 0 {
            return Err(ConfigError::invalid(
                "server.max_sessions",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        match (&t.certificate, &t.private_key) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls.private_key",
                    "required when tls.certificate is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls.certificate",
                    "required when tls.private_key is set",
                ))
            }
            _ => {}
        }
        if t.min_version > t.max_version {
            return Err(ConfigError::invalid(
                "tls.max_version",
                format!(
                    "\"{}\" is below tls.min_version \"{}\"",
                    t.max_version.as_str(),
                    t.min_version.as_str()
                ),
            ));
        }
        if let Some(names) = &t.cipher_suites {
            if names.is_empty() {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    "must not be empty (leave it out for the defaults)",
                ));
            }
            let mut seen = Vec::new();
            let mut any_tls13 = false;
            let mut any_in_range = false;
            for (i, name) in names.iter().enumerate() {
                let key = format!("tls.cipher_suites[{i}]");
                let suite = crate::tls::cipher_suite_by_name(name)
                    .map_err(|message| ConfigError::invalid(&key, message))?;
                if seen.contains(&suite.suite()) {
                    return Err(ConfigError::invalid(key, format!("{name} is listed twice")));
                }
                seen.push(suite.suite());
                any_tls13 |= suite.version() == &rustls::version::TLS13;
                any_in_range |=
                    (t.min_version..=t.max_version).contains(&crate::tls::suite_version(suite));
            }
            if t.min_version == TlsVersion::Tls13 && !any_tls13 {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    "no TLS 1.3 suite listed, but tls.min_version is \"1.3\"",
                ));
            }
            if !any_in_range {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    format!(
                        "no suite listed for TLS {} to {} (tls.min_version..tls.max_version)",
                        t.min_version.as_str(),
                        t.max_version.as_str()
                    ),
                ));
            }
        }
        if t.handshake_timeout.is_zero() || t.handshake_timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "tls.handshake_timeout",
                "must be between 1ms and 5m",
            ));
        }
        if t.session_tickets && t.ktls != KtlsMode::Off {
            return Err(ConfigError::invalid(
                "tls.session_tickets",
                format!(
                    "needs tls.ktls = \"off\" (it is \"{}\"): sessions handed to kernel TLS \
                     cannot issue or accept resumption tickets",
                    t.ktls.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn validate_sstp(&self) -> Result<(), ConfigError> {
        let s = &self.sstp;
        for (key, value) in [
            ("sstp.hello_interval", s.hello_interval),
            ("sstp.negotiation_timeout", s.negotiation_timeout),
            ("sstp.abort_timeout", s.abort_timeout),
            ("sstp.abort_ack_timeout", s.abort_ack_timeout),
            ("sstp.disconnect_timeout", s.disconnect_timeout),
            ("sstp.disconnect_ack_timeout", s.disconnect_ack_timeout),
        ] {
            positive_at_most(key, value, Duration::from_secs(3600))?;
        }
        if s.crypto_binding.is_empty() {
            return Err(ConfigError::invalid(
                "sstp.crypto_binding",
                "list at least one of \"sha256\", \"sha1\"",
            ));
        }
        no_duplicates("sstp.crypto_binding", &s.crypto_binding, |h| {
            h.as_str().to_owned()
        })
    }

    fn validate_ppp(&self) -> Result<(), ConfigError> {
        let p = &self.ppp;
        if p.auth.is_empty() {
            return Err(ConfigError::invalid(
                "ppp.auth",
                "list at least one of \"mschapv2\", \"chap-md5\", \"pap\"",
            ));
        }
        no_duplicates("ppp.auth", &p.auth, |a| a.as_str().to_owned())?;
        if p.mru < MIN_MTU {
            return Err(ConfigError::invalid(
                "ppp.mru",
                format!("{} is below {MIN_MTU}", p.mru),
            ));
        }
        if self.ipv6.enabled && p.mru < IPV6_MIN_MTU {
            return Err(ConfigError::invalid(
                "ppp.mru",
                format!(
                    "{} is below {IPV6_MIN_MTU}, the IPv6 minimum (ipv6.enabled is true)",
                    p.mru
                ),
            ));
        }
        positive_at_most(
            "ppp.lcp_restart_interval",
            p.lcp_restart_interval,
            Duration::from_secs(60),
        )?;
        for (key, value) in [
            ("ppp.lcp_max_configure", p.lcp_max_configure),
            ("ppp.lcp_max_failure", p.lcp_max_failure),
            ("ppp.lcp_max_terminate", p.lcp_max_terminate),
            ("ppp.lcp_echo_failures", p.lcp_echo_failures),
            ("ppp.auth_max_attempts", p.auth_max_attempts),
        ] {
            if !(1..=255).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside 1..=255"),
                ));
            }
        }
        if p.lcp_echo_interval > Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "ppp.lcp_echo_interval",
                "must be at most 1h (0 turns echoes off)",
            ));
        }
        positive_at_most("ppp.auth_timeout", p.auth_timeout, Duration::from_secs(600))
    }

    fn validate_ipv4(&self) -> Result<(), ConfigError> {
        let v4 = &self.ipv4;
        if v4.pool.len() > MAX_POOL_ADDRESSES {
            return Err(ConfigError::invalid(
                "ipv4.pool",
                format!(
                    "{} has {} addresses; the limit is {MAX_POOL_ADDRESSES} (a /8)",
                    v4.pool,
                    v4.pool.len()
                ),
            ));
        }
        for addr in [v4.pool.first(), v4.pool.last()] {
            if !usable_unicast_v4(addr) {
                return Err(ConfigError::invalid(
                    "ipv4.pool",
                    format!(
                        "{} contains {addr}, which cannot be a client address",
                        v4.pool
                    ),
                ));
            }
        }
        if !usable_unicast_v4(v4.gateway) {
            return Err(ConfigError::invalid(
                "ipv4.gateway",
                format!("{} is not a unicast address", v4.gateway),
            ));
        }
        if v4.pool.len() == 1 && v4.pool.contains(v4.gateway) {
            return Err(ConfigError::invalid(
                "ipv4.pool",
                format!(
                    "{} holds only the gateway {}: no address left for clients",
                    v4.pool, v4.gateway
                ),
            ));
        }
        for (key, list) in [("ipv4.dns", &v4.dns), ("ipv4.nbns", &v4.nbns)] {
            if list.len() > 2 {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} servers listed; IPCP carries at most 2", list.len()),
                ));
            }
            for addr in list {
                if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{addr} is not a unicast address"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_ipv6(&self) -> Result<(), ConfigError> {
        let v6 = &self.ipv6;
        if v6.prefix.len > 64 {
            return Err(ConfigError::invalid(
                "ipv6.prefix",
                format!(
                    "{} is longer than /64: each session needs a /64 from it",
                    v6.prefix
                ),
            ));
        }
        if v6.prefix.addr.is_multicast() || v6.prefix.addr.is_unspecified() {
            return Err(ConfigError::invalid(
                "ipv6.prefix",
                format!("{} is not a unicast prefix", v6.prefix),
            ));
        }
        if let Some(gw) = v6.gateway {
            if gw.is_multicast() || gw.is_unspecified() || gw.is_loopback() {
                return Err(ConfigError::invalid(
                    "ipv6.gateway",
                    format!("{gw} is not a unicast address"),
                ));
            }
        }
        if v6.dns.len() > 2 {
            return Err(ConfigError::invalid(
                "ipv6.dns",
                format!("{} servers listed; at most 2 are announced", v6.dns.len()),
            ));
        }
        if let Some(bad) = v6
            .dns
            .iter()
            .find(|a| a.is_multicast() || a.is_unspecified())
        {
            return Err(ConfigError::invalid(
                "ipv6.dns",
                format!("{bad} is not a unicast address"),
            ));
        }
        Ok(())
    }

    fn validate_tun(&self) -> Result<(), ConfigError> {
        let t = &self.tun;
        let name_ok = !t.name.is_empty()
            && t.name.len() <= MAX_IFNAME_LEN
            && t.name != "."
            && t.name != ".."
            && t.name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !name_ok {
            return Err(ConfigError::invalid(
                "tun.name",
                format!(
                    "{:?} is not a valid interface name (1-15 printable characters, no '/', ':' or spaces)",
                    t.name
                ),
            ));
        }
        if t.mtu < MIN_MTU {
            return Err(ConfigError::invalid(
                "tun.mtu",
                format!("{} is below {MIN_MTU}", t.mtu),
            ));
        }
        if self.ipv6.enabled && t.mtu < IPV6_MIN_MTU {
            return Err(ConfigError::invalid(
                "tun.mtu",
                format!(
                    "{} is below {IPV6_MIN_MTU}, the IPv6 minimum (ipv6.enabled is true)",
                    t.mtu
                ),
            ));
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let u = &self.users;
        if u.chap_secrets.is_none() && u.local.is_empty() {
            return Err(ConfigError::invalid(
                "users",
                "no users: set users.chap_secrets or add [[users.local]] entries",
            ));
        }
        if u.server_name.is_empty() || u.server_name.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "users.server_name",
                "must be a non-empty name without spaces",
            ));
        }
        let mut names = HashSet::new();
        for (i, user) in u.local.iter().enumerate() {
            let key = |field: &str| format!("users.local[{i}].{field}");
            if user.name.is_empty() || user.name.len() > MAX_CREDENTIAL_LEN {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("must be 1 to {MAX_CREDENTIAL_LEN} bytes"),
                ));
            }
            if user.name == "*" {
                return Err(ConfigError::invalid(
                    key("name"),
                    "\"*\" is not a user name (wildcards belong in chap-secrets)",
                ));
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("{:?} is defined twice", user.name),
                ));
            }
            if user.password.0.is_empty() || user.password.0.len() > MAX_CREDENTIAL_LEN {
                return Err(ConfigError::invalid(
                    key("password"),
                    format!("must be 1 to {MAX_CREDENTIAL_LEN} bytes"),
                ));
            }
            if let Some(ip) = user.ip {
                if !usable_unicast_v4(ip) || ip == self.ipv4.gateway {
                    return Err(ConfigError::invalid(
                        key("ip"),
                        format!("{ip} cannot be a client address"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Addresses a tunnel endpoint may use: not 0.0.0.0, loopback, multicast,
/// class E or broadcast (pppd's `bad_ip_adrs` plus the obvious ones).
fn usable_unicast_v4(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_broadcast()
        || addr.octets()[0] >= 240)
}

fn positive_at_most(key: &str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > max {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} is outside 1ms..={}",
                humantime_serde::re::humantime::format_duration(value),
                humantime_serde::re::humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}

fn no_duplicates<T: PartialEq>(
    key: &str,
    items: &[T],
    describe: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    for (i, item) in items.iter().enumerate() {
        if items.get(..i).is_some_and(|before| before.contains(item)) {
            return Err(ConfigError::invalid(
                format!("{key}[{i}]"),
                format!("{} is listed twice", describe(item)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const USER: &str = "\n[[users.local]]\nname = \"t\"\npassword = \"p\"\n";

    /// Parses `text` plus one inline user and validates it.
    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!("{text}{USER}"))
    }

    fn err(text: &str) -> String {
        load(text)
            .expect_err("configuration must be rejected")
            .to_string()
    }

    fn assert_err(text: &str, expected: &str) {
        let got = err(text);
        assert!(
            got.starts_with(expected),
            "for {text:?}\n got: {got}\nwant: {expected}"
        );
    }

    #[test]
    fn empty_file_with_a_user_gives_the_documented_defaults() {
        let config = load("").unwrap();
        let s = &config.server;
        assert_eq!(
            s.listen,
            vec!["127.0.0.1:4443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!((s.workers, s.pin_workers), (0, true));
        assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(s.max_sessions, 10_000);
        let t = &config.tls;
        assert_eq!((t.certificate.clone(), t.private_key.clone()), (None, None));
        assert_eq!(t.min_version, TlsVersion::Tls12);
        assert_eq!(t.max_version, TlsVersion::Tls13);
        assert_eq!(t.cipher_suites, None);
        assert_eq!(t.handshake_timeout, Duration::from_secs(10));
        assert_eq!((t.ktls, t.session_tickets), (KtlsMode::Auto, false));
        let sstp = &config.sstp;
        assert_eq!(
            [
                sstp.hello_interval,
                sstp.negotiation_timeout,
                sstp.abort_timeout,
                sstp.abort_ack_timeout,
                sstp.disconnect_timeout,
                sstp.disconnect_ack_timeout
            ],
            [60, 60, 3, 1, 5, 1].map(Duration::from_secs)
        );
        assert_eq!(
            sstp.crypto_binding,
            vec![CryptoBindingHash::Sha256, CryptoBindingHash::Sha1]
        );
        let p = &config.ppp;
        assert_eq!(
            p.auth,
            vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap
            ]
        );
        assert_eq!(p.mru, 1400);
        assert_eq!(
            (p.lcp_max_configure, p.lcp_max_failure, p.lcp_max_terminate),
            (10, 5, 2)
        );
        assert_eq!(p.lcp_restart_interval, Duration::from_secs(3));
        assert_eq!(p.lcp_echo_interval, Duration::ZERO);
        assert_eq!(
            (p.auth_timeout, p.auth_max_attempts),
            (Duration::from_secs(30), 3)
        );
        assert_eq!(config.ipv4.pool.to_string(), "10.99.0.0/24");
        assert_eq!(config.ipv4.pool.first(), Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(config.ipv4.pool.last(), Ipv4Addr::new(10, 99, 0, 254));
        assert_eq!(config.ipv4.gateway, Ipv4Addr::new(10, 99, 0, 1));
        assert!(config.ipv4.dns.is_empty() && config.ipv4.nbns.is_empty());
        assert!(!config.ipv6.enabled);
        assert_eq!(config.ipv6.prefix.to_string(), "fd99::/48");
        assert_eq!(
            config.ipv6.gateway(),
            "fd99::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            (
                config.tun.name.as_str(),
                config.tun.mtu,
                config.tun.multi_queue
            ),
            ("sstp0", 1400, true)
        );
        assert_eq!(config.users.server_name, "sstpd");
        assert_eq!(config.logging.level, LogLevel::Info);
        assert_eq!(config.logging.format, LogFormat::Text);
        // The parsed defaults equal the in-code defaults (plus the user).
        let mut expected = Config::default();
        expected.users.local = config.users.local.clone();
        assert_eq!(config, expected);
    }

    #[test]
    fn every_key_parses() {
        let config = Config::from_toml_str(
            r#"
            [server]
            listen = ["0.0.0.0:443", "[::]:8443"]
            workers = 4
            pin_workers = false
            state_dir = "/srv/sstpd"
            shutdown_timeout = "1m 30s"
            max_sessions = 5
            [tls]
            certificate = "c.pem"
            private_key = "k.pem"
            min_version = "1.3"
            max_version = "1.3"
            cipher_suites = ["TLS13_CHACHA20_POLY1305_SHA256", "tls13_aes_128_gcm_sha256"]
            handshake_timeout = "2500ms"
            ktls = "off"
            session_tickets = true
            [sstp]
            hello_interval = "30s"
            negotiation_timeout = "20s"
            abort_timeout = "2s"
            abort_ack_timeout = "500ms"
            disconnect_timeout = "4s"
            disconnect_ack_timeout = "750ms"
            crypto_binding = ["sha1"]
            [ppp]
            auth = ["pap", "MSCHAPv2"]
            mru = 1280
            lcp_restart_interval = "1s"
            lcp_max_configure = 7
            lcp_max_failure = 4
            lcp_max_terminate = 3
            lcp_echo_interval = "20s"
            lcp_echo_failures = 5
            auth_timeout = "15s"
            auth_max_attempts = 1
            [ipv4]
            pool = "192.168.50.10 - 192.168.50.20"
            gateway = "192.168.50.1"
            dns = ["192.168.50.1", "1.1.1.1"]
            nbns = ["192.168.50.2"]
            [ipv6]
            enabled = true
            prefix = "2001:db8:1::/56"
            gateway = "2001:db8:1::fe"
            dns = ["2001:db8::53"]
            [tun]
            name = "vpn-sstp"
            mtu = 1300
            multi_queue = false
            [users]
            chap_secrets = "/etc/ppp/chap-secrets"
            server_name = "edge1"
            [[users.local]]
            name = "alice"
            password = "apple pie"
            ip = "192.168.50.99"
            [logging]
            level = "debug"
            format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(config.server.listen.len(), 2);
        assert_eq!(config.server.workers, 4);
        assert_eq!(config.worker_count(), 4);
        assert!(!config.server.pin_workers);
        assert_eq!(config.state_dir().unwrap(), PathBuf::from("/srv/sstpd"));
        assert_eq!(config.server.shutdown_timeout, Duration::from_secs(90));
        assert_eq!(config.tls.min_version, TlsVersion::Tls13);
        assert_eq!(config.tls.max_version, TlsVersion::Tls13);
        assert_eq!(config.tls.handshake_timeout, Duration::from_millis(2500));
        assert_eq!(config.tls.ktls, KtlsMode::Off);
        assert_eq!(config.sstp.abort_ack_timeout, Duration::from_millis(500));
        assert_eq!(config.sstp.crypto_binding, vec![CryptoBindingHash::Sha1]);
        assert_eq!(
            config.ppp.auth,
            vec![AuthProtocol::Pap, AuthProtocol::MsChapV2]
        );
        assert_eq!(config.ppp.lcp_echo_interval, Duration::from_secs(20));
        let auth = config.ppp.auth_config();
        assert_eq!(auth.restart_interval, Duration::from_secs(1));
        assert_eq!((auth.max_transmissions, auth.max_attempts), (7, 1));
        assert_eq!(auth.phase_timeout, Duration::from_secs(15));
        assert_eq!(config.ipv4.pool.len(), 11);
        assert!(config.ipv4.pool.contains(Ipv4Addr::new(192, 168, 50, 15)));
        assert!(!config.ipv4.pool.contains(Ipv4Addr::new(192, 168, 50, 21)));
        assert_eq!(config.ipv6.prefix.len, 56);
        assert_eq!(
            config.ipv6.gateway(),
            "2001:db8:1::fe".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(config.tun.name, "vpn-sstp");
        assert_eq!(
            config.users.local[0].ip,
            Some(Ipv4Addr::new(192, 168, 50, 99))
        );
        assert_eq!(config.users.local[0].password, Secret("apple pie".into()));
        assert_eq!(format!("{:?}", config.users.local[0].password), "***");
        assert_eq!(config.logging.format, LogFormat::Json);
    }

    #[test]
    fn parse_errors_name_the_key_and_position() {
        assert_eq!(
            err("[ipv4]\npool = \"10.99.0.0/33\""),
            "ipv4.pool: 10.99.0.0/33 is not a valid prefix (line 2, column 8)"
        );
        assert_err(
            "[server]\nlisten = \"0.0.0.0:443\"",
            "server.listen: invalid type",
        );
        assert_err(
            "[server]\nlisten = [\"nonsense\"]",
            "server.listen[0]: invalid socket address",
        );
        assert_err(
            "[server]\nlistn = []",
            "server.listn: unknown field `listn`, expected one of `listen`",
        );
        assert_err("[serverx]\n", "serverx: unknown field `serverx`");
        assert_err("[server]\nworkers = -1", "server.workers: invalid value");
        assert_err(
            "[server]\nshutdown_timeout = \"5 parsecs\"",
            "server.shutdown_timeout: ",
        );
        assert_err(
            "[tls]\nmin_version = \"1.1\"",
            "tls.min_version: unknown variant `1.1`",
        );
        assert_err(
            "[tls]\nktls = \"maybe\"",
            "tls.ktls: unknown variant `maybe`",
        );
        assert_err(
            "[sstp]\ncrypto_binding = [\"md5\"]",
            "sstp.crypto_binding[0]: unknown variant `md5`",
        );
        assert_err(
            "[ppp]\nauth = [\"eap\"]",
            "ppp.auth: unknown method \"eap\"",
        );
        assert_err("[ppp]\nmru = 70000", "ppp.mru: invalid value");
        assert_err(
            "[ipv4]\npool = \"10.99.0.5/24\"",
            "ipv4.pool: 10.99.0.5/24 has host bits set (did you mean 10.99.0.0/24?)",
        );
        assert_err(
            "[ipv4]\npool = \"10.99.0.9-10.99.0.1\"",
            "ipv4.pool: 10.99.0.9-10.99.0.1 ends before it starts",
        );
        assert_err(
            "[ipv4]\npool = \"10.99.0.9-x\"",
            "ipv4.pool: 10.99.0.9-x is not a range",
        );
        assert_err(
            "[ipv4]\npool = \"lots\"",
            "ipv4.pool: \"lots\" is neither a prefix",
        );
        assert_err(
            "[ipv4]\ngateway = \"10.99.0\"",
            "ipv4.gateway: invalid IPv4 address",
        );
        assert_err(
            "[ipv6]\nprefix = \"fd99::1/48\"",
            "ipv6.prefix: fd99::1/48 has host bits set",
        );
        assert_err(
            "[ipv6]\nprefix = \"fd99::/129\"",
            "ipv6.prefix: fd99::/129 is not a valid IPv6 prefix",
        );
        assert_err(
            "[logging]\nlevel = \"loud\"",
            "logging.level: unknown variant `loud`",
        );
        assert_err(
            "[logging]\nformat = \"xml\"",
            "logging.format: unknown variant `xml`",
        );
        assert_err(
            "[[users.local]]\nname = \"x\"\n",
            "users.local[0]: missing field `password`",
        );
        assert_err(
            "[[users.local]]\nname = \"x\"\npassword = \"y\"\nrole = \"admin\"\n",
            "users.local[0].role: unknown field `role`",
        );
        assert_err("not toml at all", "");
        let e = Config::parse("[ipv4]\npool = \"10.99.0.0/33\"").unwrap_err();
        assert_eq!(e.key(), Some("ipv4.pool"));
        assert_eq!(e.as_str(), "parse");
    }

    #[test]
    fn every_validation_error_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("[server]\nlisten = []", "server.listen: at least one address is required"),
            ("[server]\nlisten = [\"0.0.0.0:443\", \"0.0.0.0:443\"]", "server.listen[1]: 0.0.0.0:443 is listed twice"),
            ("[server]\nworkers = 5000", "server.workers: 5000 is more than 1024"),
            ("[server]\nshutdown_timeout = \"6m\"", "server.shutdown_timeout: must be at most 5m"),
            ("[server]\nmax_sessions = 0", "server.max_sessions: must be at least 1"),
            ("[tls]\ncertificate = \"c.pem\"", "tls.private_key: required when tls.certificate is set"),
            ("[tls]\nprivate_key = \"k.pem\"", "tls.certificate: required when tls.private_key is set"),
            ("[tls]\ncipher_suites = []", "tls.cipher_suites: must not be empty"),
            ("[tls]\ncipher_suites = [\"TLS_RSA_WITH_RC4_128_MD5\"]", "tls.cipher_suites[0]: unknown cipher suite \"TLS_RSA_WITH_RC4_128_MD5\""),
            ("[tls]\ncipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \"tls13_aes_128_gcm_sha256\"]", "tls.cipher_suites[1]: tls13_aes_128_gcm_sha256 is listed twice"),
            ("[tls]\nmin_version = \"1.3\"\ncipher_suites = [\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]", "tls.cipher_suites: no TLS 1.3 suite listed"),
            ("[tls]\nmin_version = \"1.3\"\nmax_version = \"1.2\"", "tls.max_version: \"1.2\" is below tls.min_version \"1.3\""),
            ("[tls]\nmax_version = \"1.2\"\ncipher_suites = [\"TLS13_AES_128_GCM_SHA256\"]", "tls.cipher_suites: no suite listed for TLS 1.2 to 1.2"),
            ("[tls]\nhandshake_timeout = \"0s\"", "tls.handshake_timeout: must be between 1ms and 5m"),
            ("[tls]\nhandshake_timeout = \"10m\"", "tls.handshake_timeout: must be between 1ms and 5m"),
            ("[tls]\nsession_tickets = true", "tls.session_tickets: needs tls.ktls = \"off\" (it is \"auto\")"),
            ("[tls]\nsession_tickets = true\nktls = \"require\"", "tls.session_tickets: needs tls.ktls = \"off\" (it is \"require\")"),
            ("[sstp]\nhello_interval = \"0s\"", "sstp.hello_interval: 0s is outside 1ms..=1h"),
            ("[sstp]\nnegotiation_timeout = \"2h\"", "sstp.negotiation_timeout: 2h is outside 1ms..=1h"),
            ("[sstp]\nabort_timeout = \"0s\"", "sstp.abort_timeout: "),
            ("[sstp]\nabort_ack_timeout = \"0s\"", "sstp.abort_ack_timeout: "),
            ("[sstp]\ndisconnect_timeout = \"0s\"", "sstp.disconnect_timeout: "),
            ("[sstp]\ndisconnect_ack_timeout = \"0s\"", "sstp.disconnect_ack_timeout: "),
            ("[sstp]\ncrypto_binding = []", "sstp.crypto_binding: list at least one"),
            ("[sstp]\ncrypto_binding = [\"sha1\", \"sha1\"]", "sstp.crypto_binding[1]: sha1 is listed twice"),
            ("[ppp]\nauth = []", "ppp.auth: list at least one"),
            ("[ppp]\nauth = [\"pap\", \"chap-md5\", \"pap\"]", "ppp.auth[2]: pap is listed twice"),
            ("[ppp]\nmru = 500", "ppp.mru: 500 is below 576"),
            ("[ppp]\nmru = 1200\n[ipv6]\nenabled = true", "ppp.mru: 1200 is below 1280, the IPv6 minimum"),
            ("[ppp]\nlcp_restart_interval = \"0s\"", "ppp.lcp_restart_interval: "),
            ("[ppp]\nlcp_max_configure = 0", "ppp.lcp_max_configure: 0 is outside 1..=255"),
            ("[ppp]\nlcp_max_failure = 256", "ppp.lcp_max_failure: 256 is outside 1..=255"),
            ("[ppp]\nlcp_max_terminate = 0", "ppp.lcp_max_terminate: "),
            ("[ppp]\nlcp_echo_failures = 0", "ppp.lcp_echo_failures: "),
            ("[ppp]\nauth_max_attempts = 0", "ppp.auth_max_attempts: "),
            ("[ppp]\nlcp_echo_interval = \"2h\"", "ppp.lcp_echo_interval: must be at most 1h"),
            ("[ppp]\nauth_timeout = \"0s\"", "ppp.auth_timeout: "),
            ("[ipv4]\npool = \"10.0.0.0/7\"", "ipv4.pool: 10.0.0.0/7 has 33554430 addresses; the limit is 16777216"),
            ("[ipv4]\npool = \"127.0.0.0/24\"", "ipv4.pool: 127.0.0.0/24 contains 127.0.0.1, which cannot be a client address"),
            ("[ipv4]\npool = \"239.0.0.0/24\"", "ipv4.pool: 239.0.0.0/24 contains 239.0.0.1"),
            ("[ipv4]\ngateway = \"0.0.0.0\"", "ipv4.gateway: 0.0.0.0 is not a unicast address"),
            ("[ipv4]\npool = \"10.99.0.1/32\"", "ipv4.pool: 10.99.0.1/32 holds only the gateway 10.99.0.1"),
            ("[ipv4]\ndns = [\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\"]", "ipv4.dns: 3 servers listed; IPCP carries at most 2"),
            ("[ipv4]\ndns = [\"224.0.0.1\"]", "ipv4.dns: 224.0.0.1 is not a unicast address"),
            ("[ipv4]\nnbns = [\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\"]", "ipv4.nbns: 3 servers listed"),
            ("[ipv4]\nnbns = [\"0.0.0.0\"]", "ipv4.nbns: 0.0.0.0 is not a unicast address"),
            ("[ipv6]\nprefix = \"fd99::/80\"", "ipv6.prefix: fd99::/80 is longer than /64"),
            ("[ipv6]\nprefix = \"ff00::/8\"", "ipv6.prefix: ff00::/8 is not a unicast prefix"),
            ("[ipv6]\ngateway = \"ff02::1\"", "ipv6.gateway: ff02::1 is not a unicast address"),
            ("[ipv6]\ndns = [\"::1\", \"::2\", \"::3\"]", "ipv6.dns: 3 servers listed"),
            ("[ipv6]\ndns = [\"::\"]", "ipv6.dns: :: is not a unicast address"),
            ("[tun]\nname = \"\"", "tun.name: \"\" is not a valid interface name"),
            ("[tun]\nname = \"a-very-long-name-indeed\"", "tun.name: "),
            ("[tun]\nname = \"a/b\"", "tun.name: "),
            ("[tun]\nname = \"sstp 0\"", "tun.name: "),
            ("[tun]\nname = \"..\"", "tun.name: "),
            ("[tun]\nmtu = 500", "tun.mtu: 500 is below 576"),
            ("[tun]\nmtu = 1279\n[ipv6]\nenabled = true\n[ppp]\nmru = 1400", "tun.mtu: 1279 is below 1280, the IPv6 minimum"),
            ("[users]\nserver_name = \"\"", "users.server_name: must be a non-empty name without spaces"),
        ];
        for (text, expected) in cases {
            assert_err(text, expected);
        }
    }

    #[test]
    fn user_validation_errors() {
        let check = |users: &str, expected: &str| {
            let got = Config::from_toml_str(users).unwrap_err().to_string();
            assert!(got.starts_with(expected), "got {got}, want {expected}");
        };
        check(
            "",
            "users: no users: set users.chap_secrets or add [[users.local]] entries",
        );
        check(
            "[[users.local]]\nname = \"\"\npassword = \"p\"",
            "users.local[0].name: must be 1 to 255 bytes",
        );
        check(
            "[[users.local]]\nname = \"*\"\npassword = \"p\"",
            "users.local[0].name: \"*\" is not a user name",
        );
        check(
            "[[users.local]]\nname = \"a\"\npassword = \"p\"\n[[users.local]]\nname = \"a\"\npassword = \"q\"",
            "users.local[1].name: \"a\" is defined twice",
        );
        check(
            "[[users.local]]\nname = \"a\"\npassword = \"\"",
            "users.local[0].password: must be 1 to 255 bytes",
        );
        check(
            &format!(
                "[[users.local]]\nname = \"a\"\npassword = \"{}\"",
                "x".repeat(256)
            ),
            "users.local[0].password: must be 1 to 255 bytes",
        );
        check(
            "[[users.local]]\nname = \"a\"\npassword = \"p\"\nip = \"127.0.0.2\"",
            "users.local[0].ip: 127.0.0.2 cannot be a client address",
        );
        check(
            "[[users.local]]\nname = \"a\"\npassword = \"p\"\nip = \"10.99.0.1\"",
            "users.local[0].ip: 10.99.0.1 cannot be a client address",
        );
        // A chap-secrets file alone is enough.
        Config::from_toml_str("[users]\nchap_secrets = \"/etc/ppp/chap-secrets\"").unwrap();
    }

    #[test]
    fn pool_forms() {
        let r: Ipv4Range = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            (r.first(), r.last(), r.len()),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 254),
                254
            )
        );
        let r: Ipv4Range = "10.0.0.8/30".parse().unwrap();
        assert_eq!(
            (r.first(), r.last()),
            (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 10))
        );
        let r: Ipv4Range = "10.0.0.8/31".parse().unwrap();
        assert_eq!(
            (r.first(), r.last()),
            (Ipv4Addr::new(10, 0, 0, 8), Ipv4Addr::new(10, 0, 0, 9))
        );
        let r: Ipv4Range = "10.0.0.8/32".parse().unwrap();
        assert_eq!(
            (r.first(), r.last(), r.len()),
            (Ipv4Addr::new(10, 0, 0, 8), Ipv4Addr::new(10, 0, 0, 8), 1)
        );
        let r: Ipv4Range = "10.0.0.5-10.0.0.5".parse().unwrap();
        assert_eq!(r.len(), 1);
        let r = Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)).unwrap();
        assert_eq!(
            (r.len(), r.to_string()),
            (3, "10.0.0.1-10.0.0.3".to_owned())
        );
        assert_eq!(
            Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 1)),
            None
        );
        let r: Ipv4Range = "0.0.0.0/0".parse().unwrap();
        assert_eq!(r.len(), (1u64 << 32) - 2);
        assert!("10.0.0.0/".parse::<Ipv4Range>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Range>().is_err());
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sstpd.toml");
        std::fs::write(
            &path,
            "[server]\nstate_dir = \"state\"\n[tls]\ncertificate = \"c.pem\"\nprivate_key = \"/abs/k.pem\"\n\
             [users]\nchap_secrets = \"secrets\"\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.server.state_dir, Some(dir.path().join("state")));
        assert_eq!(config.tls.certificate, Some(dir.path().join("c.pem")));
        assert_eq!(config.tls.private_key, Some(PathBuf::from("/abs/k.pem")));
        assert_eq!(config.users.chap_secrets, Some(dir.path().join("secrets")));
        assert_eq!(config.source, ConfigSource::File(path));

        let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
        assert_eq!(missing.as_str(), "read");
        assert!(missing.to_string().starts_with("cannot read "));
    }

    #[test]
    fn embedded_defaults() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let config = Config::embedded_defaults_with(None, &mut rng);
        config.validate().unwrap();
        assert_eq!(
            config.server.listen,
            vec!["127.0.0.1:4443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(config.ipv4.pool.to_string(), "10.99.0.0/24");
        assert_eq!(config.ipv4.gateway, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(config.tun.name, "sstp0");
        assert_eq!(config.tls.certificate, None);
        assert_eq!(config.users.local.len(), 1);
        let demo = &config.users.local[0];
        assert_eq!(demo.name, "demo");
        assert_eq!(demo.password.0.len(), DEMO_PASSWORD_LEN);
        assert!(demo.password.0.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            config.source,
            ConfigSource::Embedded {
                demo_password_generated: true
            }
        );
        // Different randomness, different password.
        let other = Config::embedded_defaults_with(None, &mut rand::rngs::StdRng::seed_from_u64(8));
        assert_ne!(other.users.local[0].password, demo.password);

        let from_env = Config::embedded_defaults_with(Some("hunter2".into()), &mut rng);
        assert_eq!(from_env.users.local[0].password.0, "hunter2");
        assert_eq!(
            from_env.source,
            ConfigSource::Embedded {
                demo_password_generated: false
            }
        );
    }

    #[test]
    fn startup_banner_lines() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let config = Config::embedded_defaults_with(None, &mut rng);
        let password = config.users.local[0].password.0.clone();
        let mut digest = [0u8; 32];
        digest[0] = 0xab;
        digest[31] = 0x01;
        let lines = startup_banner(
            &config,
            Path::new("/var/lib/sstpd/self-signed-cert.pem"),
            &digest,
        );
        assert_eq!(lines[0], "listen: 127.0.0.1:4443 (SSTP over HTTPS)");
        assert_eq!(lines[1], "certificate: /var/lib/sstpd/self-signed-cert.pem");
        assert_eq!(
            lines[2],
            format!("certificate SHA-256 fingerprint: ab:{}01", "00:".repeat(30))
        );
        assert!(lines[3]
            .contains("embedded defaults (pool 10.99.0.0/24, gateway 10.99.0.1, TUN sstp0)"));
        assert_eq!(
            lines[4],
            format!(
                "demo user: demo / password: {password} (set SSTPD_DEMO_PASSWORD to choose it)"
            )
        );
        assert_eq!(lines.len(), 5);

        let from_env = Config::embedded_defaults_with(Some("secret".into()), &mut rng);
        let lines = startup_banner(&from_env, Path::new("c.pem"), &digest);
        assert_eq!(
            lines[4],
            "demo user: demo (password from SSTPD_DEMO_PASSWORD)"
        );
        assert!(lines.iter().all(|l| !l.contains("secret")));

        let file_config = load("").unwrap();
        assert_eq!(
            startup_banner(&file_config, Path::new("c.pem"), &digest).len(),
            3
        );
    }

    #[test]
    fn systemd_state_directory_comes_first_when_absolute() {
        assert_eq!(
            systemd_state_directory(Some("/var/lib/sstpd".into())),
            Some(PathBuf::from("/var/lib/sstpd"))
        );
        assert_eq!(
            systemd_state_directory(Some("/var/lib/a:/var/lib/b".into())),
            Some(PathBuf::from("/var/lib/a"))
        );
        assert_eq!(systemd_state_directory(Some("relative".into())), None);
        assert_eq!(systemd_state_directory(Some("".into())), None);
        assert_eq!(systemd_state_directory(None), None);
    }

    #[test]
    fn state_dir_defaults() {
        assert_eq!(
            default_state_dir(true, Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/var/lib/sstpd"))
        );
        assert_eq!(
            default_state_dir(false, Some("/home/u/.state".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.state/sstpd"))
        );
        // A relative XDG_STATE_HOME is invalid per the XDG spec.
        assert_eq!(
            default_state_dir(false, Some("rel".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.local/state/sstpd"))
        );
        assert_eq!(
            default_state_dir(false, None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.local/state/sstpd"))
        );
        assert_eq!(default_state_dir(false, None, None), None);
    }

    #[test]
    fn example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sstpd.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.server.listen.len(), 2);
        assert_eq!(config.server.listen[0].port(), 443);
        assert!(config.ipv6.enabled);
        assert_eq!(config.ipv4.pool.len(), 4094);
        assert_eq!(
            config.users.chap_secrets,
            Some(path.parent().unwrap().join("chap-secrets"))
        );
        let (users, summary) = crate::users::LocalUsers::load(&config.users).unwrap();
        assert_eq!(summary.users, 3);
        assert_eq!(summary.other_server_lines, 1);
        use crate::proto::auth::PasswordStore;
        assert_eq!(
            users.lookup("alice").unwrap().password,
            b"correct horse battery staple"
        );
        assert_eq!(
            users.lookup("bob").unwrap().framed_ipv4,
            Some(Ipv4Addr::new(10, 99, 0, 20))
        );
        assert_eq!(users.lookup("Carol Smith").unwrap().password, b"pa ss#word");
        assert!(users.lookup("dave").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,80}") {
            let _ = text.parse::<Ipv4Range>();
            let _ = text.parse::<Ipv6Prefix>();
            let _ = Config::parse(&text);
            let _ = Config::parse(&format!("[ipv4]\npool = {text:?}\n[tls]\ncipher_suites = [{text:?}]"))
                .map(|c| c.validate());
        }

        #[test]
        fn prefixes_round_trip(addr: u32, len in 0u32..=32) {
            let network = Ipv4Addr::from(addr & u32::MAX.checked_shl(32 - len).unwrap_or(0));
            let range: Ipv4Range = format!("{network}/{len}").parse().unwrap();
            proptest::prop_assert!(range.first() <= range.last());
            proptest::prop_assert_eq!(range.len() + u64::from(len <= 30) * 2, 1u64 << (32 - len));
        }
    }

    #[test]
    fn line_column_positions() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
