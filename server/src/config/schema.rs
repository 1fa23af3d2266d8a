//! The serde types of the configuration file, one per TOML table, each
//! with its defaults (docs/configuration.md documents every key).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::*;
use crate::proto::auth::AuthProtocol;

/// The whole configuration. Sections mirror the TOML tables.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
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
    pub auth_throttle: AuthThrottleSection,
    pub radius: RadiusSection,
    pub logging: LoggingSection,
    pub metrics: MetricsSection,
    pub control: ControlSection,
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// TCP addresses to accept SSTP (HTTPS) connections on. Each worker binds
    /// every address with SO_REUSEPORT. Default `["127.0.0.1:4443"]`; a
    /// production server uses `["0.0.0.0:443", "[::]:443"]`.
    pub listen: Vec<SocketAddr>,
    /// Listeners with options (`[[server.listener]]`: the PROXY protocol
    /// behind a load balancer), in addition to `listen`. When listeners are
    /// given and `listen` is not, `listen` is empty instead of its default.
    pub listener: Vec<ListenerSection>,
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
    /// `sstpctl drain` without `--over`: the period over which the
    /// node's sessions are disconnected, spread evenly. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub drain_period: Duration,
    /// Upper bound on concurrent connections (all workers together),
    /// counted from accept, TLS handshakes included; further connections
    /// are refused. Default 10000.
    pub max_sessions: usize,
    /// Upper bound on connections not yet authenticated (TLS handshake,
    /// HTTP, SSTP negotiation, PPP authentication, until Call Connected),
    /// all workers together. Default 1024.
    pub max_preauth_sessions: usize,
    /// The same bound per source address (an IPv6 source counts by its
    /// /64). Default 32.
    pub max_preauth_per_source: usize,
    /// Bound on the whole pre-authentication window: from accept to Call
    /// Connected (TLS handshake, HTTP request, SSTP negotiation, PPP
    /// authentication and crypto binding). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub preauth_timeout: Duration,
}

/// The longest `server.drain_period` (and `sstpctl drain --over`).
pub const MAX_DRAIN_PERIOD: Duration = Duration::from_secs(24 * 3600);

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 4443))],
            listener: Vec::new(),
            workers: 0,
            pin_workers: true,
            state_dir: None,
            shutdown_timeout: Duration::from_secs(5),
            drain_period: Duration::from_secs(60),
            max_sessions: 10_000,
            max_preauth_sessions: 1024,
            max_preauth_per_source: 32,
            preauth_timeout: Duration::from_secs(30),
        }
    }
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first. Required unless
    /// `self_signed` is true.
    pub certificate: Option<PathBuf>,
    /// PEM private key (RSA or ECDSA; PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
    /// Serve a self-signed certificate for `localhost`, generated into the
    /// state directory and reused on later starts, instead of
    /// `certificate`/`private_key`. Default false (the embedded no-file
    /// defaults set it): clients cannot verify such a certificate, so a
    /// configuration must ask for it.
    pub self_signed: bool,
    /// Lowest TLS version accepted. Default "1.2" (Windows 7/8 and many
    /// routers speak no TLS 1.3).
    pub min_version: TlsVersion,
    /// Highest TLS version accepted. Default "1.3". "1.2" pins the server
    /// to TLS 1.2, e.g. to reproduce what a Windows 10 client negotiates
    /// or to test a client's TLS 1.2 path.
    pub max_version: TlsVersion,
    /// Cipher suites in preference order, by their IANA/rustls names. Default:
    /// every suite listed in [`DEFAULT_CIPHER_SUITE_NAMES`](super::tls_names::DEFAULT_CIPHER_SUITE_NAMES).
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
    /// After the handshake, sstpd seals and opens the records itself
    /// (`net::established`) unless the kernel has them. Default true;
    /// false keeps them in rustls (a fallback). Restart only.
    pub take_over_records: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            certificate: None,
            private_key: None,
            self_signed: false,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: None,
            handshake_timeout: Duration::from_secs(10),
            ktls: KtlsMode::Auto,
            session_tickets: false,
            take_over_records: true,
        }
    }
}

/// A hash the SSTP crypto binding may use ([MS-SSTP] 2.2.8, 3.2.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PppSection {
    /// Authentication methods the server asks for, most preferred first;
    /// a Configure-Nak from the peer moves down the list. Default
    /// ["mschapv2"]: PAP and CHAP-MD5 yield no keys, so their crypto
    /// binding uses an all-zero key that a relaying man in the middle can
    /// compute too.
    #[serde(
        deserialize_with = "deserialize_auth_protocols",
        serialize_with = "serialize_auth_protocols"
    )]
    pub auth: Vec<AuthProtocol>,
    /// Maximum-Receive-Unit we announce ([RFC 1661] 6.1); IP packets from a
    /// client larger than the MRU it accepted are dropped and counted
    /// (`ip_exceeds_mru`). Default 1400.
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
            auth: vec![AuthProtocol::MsChapV2],
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
            eap_relay: false,
            eap_peer: crate::proto::auth::EapPeerMethod::MsChapV2,
        }
    }
}

/// `[ipv4]`: addresses handed out by IPCP ([RFC 1332], [RFC 1877]).
///
/// [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
/// [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
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
    /// Whether one client's packets may reach another client's tunnel
    /// address (IPv4 or its IPv6 prefix). Default "deny".
    pub client_to_client: ClientToClient,
    /// Named pools (`[[ipv4.pools]]`), for users whose authenticator names
    /// one (RADIUS Framed-Pool); everyone else gets addresses from `pool`.
    pub pools: Vec<NamedIpv4Pool>,
}

/// One `[[ipv4.pools]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedIpv4Pool {
    /// The name RADIUS Framed-Pool ([RFC 2869] 5.18) refers to.
    ///
    /// [RFC 2869]: https://www.rfc-editor.org/rfc/rfc2869
    pub name: String,
    /// Its addresses, written as `ipv4.pool` is.
    pub range: Ipv4Range,
}

/// Traffic between clients of this server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientToClient {
    /// Packets to another client's address are dropped and counted
    /// (`client_to_client_denied`) before they reach the TUN device.
    #[default]
    Deny,
    /// Such packets go to the TUN device like any other; the kernel's
    /// forwarding and firewall decide.
    Allow,
}

impl ClientToClient {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientToClient::Deny => "deny",
            ClientToClient::Allow => "allow",
        }
    }
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
            client_to_client: ClientToClient::Deny,
            pools: Vec::new(),
        }
    }
}

/// `[ipv6]`: IPv6CP ([RFC 5072]) and per-session prefixes.
///
/// [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
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
    /// Segmentation offload with the kernel (`IFF_VNET_HDR`, TSO/USO).
    /// Default "auto".
    pub offload: TunOffload,
    /// Whether the kernel drops the packets for a session whose queue is
    /// full, through a BPF filter on the device, instead of sstpd after
    /// reading them ([`crate::tun::drop_filter`]). Default true; where the
    /// kernel refuses, sstpd drops them itself (counted as
    /// `tun_drop_filter_unavailable`).
    pub drop_filter: bool,
    /// Whether a BPF program on the device sends each session's packets to
    /// the queue of the worker that owns the session
    /// ([`crate::tun::steering`]), so that no worker hands them to another.
    /// Default true; where the kernel refuses, the tun driver's flow table
    /// chooses (counted as `tun_steering_unavailable`).
    pub steering: bool,
}

/// `tun.offload`: whether sstpd and the kernel exchange GSO super-packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunOffload {
    /// One packet per TUN read and write.
    Off,
    /// Open the queues with `IFF_VNET_HDR` and ask for TSO (and USO where
    /// the kernel has it); where the kernel refuses, carry on as with
    /// `Off` (counted as `tun_offload_fallbacks`).
    #[default]
    Auto,
}

impl TunOffload {
    pub fn as_str(self) -> &'static str {
        match self {
            TunOffload::Off => "off",
            TunOffload::Auto => "auto",
        }
    }
}

impl Default for TunSection {
    fn default() -> Self {
        TunSection {
            name: "sstp0".into(),
            mtu: 1400,
            multi_queue: true,
            offload: TunOffload::Auto,
            drop_filter: true,
            steering: true,
        }
    }
}

/// A password or a shared secret: printed as `***` in debug output, and
/// serialized as it is (a configuration written back must load again;
/// [`Config::redacted`] is the one to show).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

/// What [`Config::redacted`] puts in place of every secret.
pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One `[[users.local]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSection {
    /// A pppd chap-secrets file (`client server secret [ip]`).
    pub chap_secrets: Option<PathBuf>,
    /// Lines of chap-secrets apply when their server column is `*` or this
    /// name. Default "sstpd".
    pub server_name: String,
    /// Inline users; they override chap-secrets entries of the same name.
    pub local: Vec<InlineUser>,
    /// Where users are looked up, in order: `["local"]` (default),
    /// `["radius"]`, or `["local", "radius"]` (RADIUS for users the local
    /// store does not know).
    pub backends: Vec<UserBackend>,
}

impl Default for UsersSection {
    fn default() -> Self {
        UsersSection {
            chap_secrets: None,
            server_name: "sstpd".into(),
            local: Vec::new(),
            backends: super::radius::default_backends(),
        }
    }
}

/// `[auth_throttle]`: back-off for password guessing. Failed
/// authentications are counted per source address (an IPv6 source by its
/// /64) and per user name; after `max_failures_per_source` or
/// `max_failures_per_user` failures within `window`, further attempts from
/// that source or for that user are refused without consulting the user
/// store for `lockout`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthThrottleSection {
    /// Default true.
    pub enabled: bool,
    /// The period failures are counted over. Default 15 min.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures from one source within `window` that lock it out.
    /// Default 20 (several users may share an address behind NAT).
    pub max_failures_per_source: u32,
    /// Failures for one user name within `window` that lock it out.
    /// Default 10.
    pub max_failures_per_user: u32,
    /// How long a locked-out source or user is refused. Default 15 min.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// Sources and user names tracked, each; the least recently seen is
    /// forgotten (and counted) when a new one needs room. Default 16384.
    pub max_entries: usize,
}

impl Default for AuthThrottleSection {
    fn default() -> Self {
        AuthThrottleSection {
            enabled: true,
            window: Duration::from_secs(15 * 60),
            max_failures_per_source: 20,
            max_failures_per_user: 10,
            lockout: Duration::from_secs(15 * 60),
            max_entries: 16_384,
        }
    }
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[logging]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// "error", "warn", "info" (default), "debug" or "trace". The environment
    /// variables `SSTPD_LOG`, then `RUST_LOG`, override it with a full
    /// tracing filter (e.g. `sstpd=debug`).
    pub level: LogLevel,
    /// "text" (default) or "json".
    pub format: LogFormat,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` (Prometheus text format), e.g.
    /// `"127.0.0.1:9464"`. Off (no socket) unless set.
    pub listen: Option<SocketAddr>,
}

fn serialize_auth_protocols<S: Serializer>(
    protocols: &[AuthProtocol],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(protocols.iter().map(|p| p.as_str()))
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
        AuthProtocol::EapMsChapV2,
        AuthProtocol::ChapMd5,
        AuthProtocol::Pap,
    ]
    .into_iter()
    .find(|p| p.as_str().eq_ignore_ascii_case(name))
    .ok_or_else(|| {
        format!("unknown method {name:?} (expected mschapv2, eap-mschapv2, chap-md5 or pap)")
    })
}
