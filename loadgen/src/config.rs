//! What a run does: the engine's configuration, independent of the
//! command line (the CLI in [`crate::cli`] builds one; tests and the
//! benchmark suite may build their own).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::Ipv4Net;
use sstpd::config::TlsVersion;
use sstpd::proto::auth::{AuthProtocol, EapPeerMethod};
use sstpd::tls::client::ServerVerification;

use crate::backoff::ReconnectPolicy;
use crate::packet::{Header, Kind, Template, STREAM_REQUEST_LEN};

/// The UDP port `sstp-loadgen peer` listens on unless told otherwise, and
/// where udp and bulk modes send by default (on the tunnel gateway).
pub const DEFAULT_PEER_PORT: u16 = 9000;

/// Which way bulk traffic flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: the peer counts and discards.
    Up,
    /// Server to client: the peer streams.
    Down,
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        }
    }

    pub fn up(self) -> bool {
        matches!(self, Direction::Up | Direction::Both)
    }

    pub fn down(self) -> bool {
        matches!(self, Direction::Down | Direction::Both)
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "up" => Ok(Direction::Up),
            "down" => Ok(Direction::Down),
            "both" => Ok(Direction::Both),
            _ => Err(format!("{s:?}: expected up, down or both")),
        }
    }
}

/// Which IP versions the traffic modes use through each tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    V4,
    /// IPv6 only (IPCP still runs: sstpd requires it).
    V6,
    /// Both at once, each with a flow of its own.
    Both,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
            Family::Both => "both",
        }
    }

    pub fn v4(self) -> bool {
        matches!(self, Family::V4 | Family::Both)
    }

    pub fn v6(self) -> bool {
        matches!(self, Family::V6 | Family::Both)
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "4" => Ok(Family::V4),
            "6" => Ok(Family::V6),
            "both" => Ok(Family::Both),
            _ => Err(format!("{s:?}: expected 4, 6 or both")),
        }
    }
}

/// The traffic each session generates once established.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// ICMP echo requests to `to` (default: the tunnel gateway the server
    /// announced in IPCP); round trip time from each reply.
    Echo { to: Option<Ipv4Addr> },
    /// UDP datagrams to `to` (default: gateway, port 9000). With `reflect`
    /// a peer sends each one back (round trip time and loss); without,
    /// the peer only counts them (one-way loss).
    Udp {
        to: Option<SocketAddrV4>,
        reflect: bool,
        /// Flows per session: datagrams cycle through this many source
        /// ports (the peer answers each to its own), so that none travel
        /// merged (1: one flow).
        flows: u16,
    },
    /// As much as the tunnel carries, to and/or from a peer at `to`.
    Bulk {
        to: Option<SocketAddrV4>,
        direction: Direction,
        /// Flows per session each way: upstream datagrams cycle through
        /// this many source ports, the peer's through as many destination
        /// ports (1: one flow, which sstpd and the peer may batch into
        /// super-packets).
        flows: u16,
        /// Downstream, the peer's rate follows what arrives
        /// ([`crate::follow::FollowRate`]) instead of staying where it
        /// started (as fast as the peer can, or `--pps`).
        follow: bool,
    },
    /// No traffic: sessions are held with keepalives only.
    Idle,
    /// Connect, hold for `hold`, disconnect, again, until the duration
    /// ends: setup and teardown rate.
    Churn { hold: Duration },
    /// Each session behind a TUN device of its own (`names`), so that
    /// the kernel's TCP and UDP (iperf3, ...) run through the tunnels.
    Tun { names: TunNames },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Echo { .. } => "echo",
            Mode::Udp { .. } => "udp",
            Mode::Bulk { .. } => "bulk",
            Mode::Idle => "idle",
            Mode::Churn { .. } => "churn",
            Mode::Tun { .. } => "tun",
        }
    }

    /// The payload size used when none is given: ping's 56 for echo, a
    /// small datagram for udp, a full 1400-byte tunnel MTU for bulk.
    pub fn default_payload(&self) -> usize {
        match self {
            Mode::Echo { .. } => 56,
            Mode::Udp { .. } => 64,
            Mode::Bulk { .. } => 1400 - crate::packet::IPV4_UDP_OVERHEAD,
            Mode::Idle | Mode::Churn { .. } | Mode::Tun { .. } => 0,
        }
    }

    /// Packets per second per session when none is given (0: unlimited).
    pub fn default_pps(&self) -> f64 {
        match self {
            Mode::Echo { .. } => 1.0,
            Mode::Udp { .. } => 10.0,
            Mode::Bulk { .. } | Mode::Idle | Mode::Churn { .. } | Mode::Tun { .. } => 0.0,
        }
    }

    /// Whether the mode sends packets.
    pub fn has_traffic(&self) -> bool {
        matches!(
            self,
            Mode::Echo { .. } | Mode::Udp { .. } | Mode::Bulk { .. }
        )
    }
}

/// The TUN devices of `tun` mode: session `i` gets `stem` followed by
/// `first + i` (`sstpc0`, `sstpc1`, ...). Parsed from the first name: its
/// trailing digits are where the numbering starts (none: 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunNames {
    stem: String,
    first: u64,
}

impl TunNames {
    /// The device of session `index`.
    pub fn name(&self, index: u64) -> String {
        format!("{}{}", self.stem, self.first + index)
    }

    /// Checks that the names of `sessions` sessions are interface names
    /// (at most 15 bytes, no '/', ':' or whitespace).
    pub fn check(&self, sessions: u64) -> Result<(), String> {
        let last = self.name(sessions.saturating_sub(1));
        if last.len() > 15 {
            return Err(format!(
                "--ifname {self}: {last:?} is longer than an interface name may be (15 bytes)"
            ));
        }
        Ok(())
    }
}

impl Default for TunNames {
    fn default() -> Self {
        TunNames {
            stem: "sstpc".into(),
            first: 0,
        }
    }
}

impl FromStr for TunNames {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, number) = s.split_at(s.len() - digits);
        let valid = !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !valid {
            return Err(format!(
                "{s:?}: expected an interface name such as sstpc0 (letters first)"
            ));
        }
        let first = if number.is_empty() {
            0
        } else {
            number
                .parse()
                .map_err(|_| format!("{s:?}: number too large"))?
        };
        let names = TunNames {
            stem: stem.into(),
            first,
        };
        names.check(1)?;
        Ok(names)
    }
}

impl fmt::Display for TunNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name(0))
    }
}

/// Who each session authenticates as.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The same user name and password pattern for every session; `%d` in
    /// either is replaced by the session index (0-based).
    Pattern { user: String, password: String },
    /// Session `i` uses line `i % len` of a file of `user password` lines.
    List(Vec<(String, String)>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Pattern { user, .. } => write!(f, "Pattern({user:?}, <password>)"),
            Credentials::List(l) => write!(f, "List({} users)", l.len()),
        }
    }
}

impl Credentials {
    /// One user and password for every session (no `%d` expansion needed).
    pub fn single(user: &str, password: &str) -> Credentials {
        Credentials::Pattern {
            user: user.into(),
            password: password.into(),
        }
    }

    /// Reads `user password` lines (blank lines and `#` comments skipped;
    /// the password is the rest of the line after the first whitespace).
    pub fn from_file(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Credentials::parse_list(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse_list(text: &str) -> Result<Credentials, String> {
        let mut list = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, password)) = line.split_once(char::is_whitespace) else {
                return Err(format!("line {}: expected `user password`", n + 1));
            };
            list.push((user.to_string(), password.trim_start().to_string()));
        }
        if list.is_empty() {
            return Err("no credentials".into());
        }
        Ok(Credentials::List(list))
    }

    /// User name and password of session `index`.
    pub fn for_session(&self, index: u64) -> (String, Vec<u8>) {
        match self {
            Credentials::Pattern { user, password } => {
                let n = index.to_string();
                (
                    user.replace("%d", &n),
                    password.replace("%d", &n).into_bytes(),
                )
            }
            Credentials::List(list) => {
                let (u, p) = &list[(index % list.len() as u64) as usize];
                (u.clone(), p.clone().into_bytes())
            }
        }
    }
}

/// Source addresses to spread sessions over: an IPv4 prefix, of which
/// every host address is used in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceRange {
    /// Host bits cleared.
    net: Ipv4Net,
    first: Ipv4Addr,
    count: u32,
}

impl SourceRange {
    /// The address of session `index`.
    pub fn address(&self, index: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first) + (index % u64::from(self.count)) as u32)
    }

    /// Number of distinct addresses.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for SourceRange {
    type Err = String;
    /// `A.B.C.D/len`, or one address. Below /31 the network and broadcast
    /// addresses are left out; host bits are ignored.
    fn from_str(s: &str) -> Result<Self, String> {
        let net = match s.parse::<Ipv4Net>() {
            Ok(net) => net.trunc(),
            Err(_) => s
                .parse::<Ipv4Addr>()
                .map(Ipv4Net::from)
                .map_err(|_| format!("{s:?}: not an IPv4 address or prefix"))?,
        };
        if !(8..=32).contains(&net.prefix_len()) {
            return Err(format!("{s:?}: prefix length must be 8..=32"));
        }
        Ok(SourceRange {
            net,
            first: net.hosts().next().expect("a prefix has a host"),
            count: net.hosts().count() as u32,
        })
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

/// `--max-failures`: how many failed sessions a run may have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailureLimit {
    Count(u64),
    /// Percent of the sessions attempted.
    Percent(f64),
}

impl FailureLimit {
    /// Whether `failures` out of `attempted` exceeds the limit.
    pub fn exceeded(&self, failures: u64, attempted: u64) -> bool {
        match *self {
            FailureLimit::Count(n) => failures > n,
            FailureLimit::Percent(p) => {
                attempted > 0 && failures as f64 * 100.0 > p * attempted as f64
            }
        }
    }
}

impl FromStr for FailureLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(FailureLimit::Percent(p)),
                _ => Err(format!("{s:?}: expected a percentage 0..100")),
            },
            None => s
                .parse::<u64>()
                .map(FailureLimit::Count)
                .map_err(|_| format!("{s:?}: expected a count or a percentage like 1%")),
        }
    }
}

impl fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureLimit::Count(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Which cores the workers run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Worker `i` on core `i` (modulo the core count), like sstpd.
    Spread,
    /// Worker `i` on `cores[i % len]`.
    Cores(Vec<usize>),
    /// Let the scheduler decide.
    None,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub mode: Mode,
    /// The SSTP server (TCP).
    pub target: SocketAddr,
    /// TLS server name (SNI and certificate check; IP literals send no SNI)
    /// and the HTTP Host header.
    pub server_name: String,
    pub verification: ServerVerification,
    /// Lowest and highest TLS version offered.
    pub tls_versions: (TlsVersion, TlsVersion),
    pub credentials: Credentials,
    /// Authentication methods, most preferred first.
    pub auth: Vec<AuthProtocol>,
    /// The EAP method: EAP-MSCHAPv2, or (`--auth peap`, `--auth eap-tls`)
    /// PEAPv0 or EAP-TLS with their TLS started here (verifying the
    /// RADIUS server's certificate as `--eap-ca`/`--eap-insecure` say;
    /// EAP-TLS presenting `--eap-cert`).
    pub eap_peer: EapPeerMethod,
    /// Also negotiate IPv6CP (as Windows does); off by default, implied
    /// by a `family` with IPv6.
    pub ipv6cp: bool,
    /// The IP versions of the traffic: IPv6 takes the prefix from the
    /// server's Router Advertisement and forms its address by SLAAC.
    pub family: Family,
    /// IPv6 destination of echo, udp and bulk (default: the first host of
    /// the /48 holding the announced prefix, where sstpd's default
    /// `ipv6.gateway` lies).
    pub to6: Option<std::net::Ipv6Addr>,
    /// Sessions (concurrent; in churn mode, concurrent connect/hold/close
    /// loops).
    pub sessions: u64,
    /// New sessions per second; `None`: as fast as `setup_concurrency`
    /// allows.
    pub rate: Option<f64>,
    /// Setups in flight at once, over all workers.
    pub setup_concurrency: usize,
    /// How long traffic runs once every session is up (churn: the whole
    /// run).
    pub duration: Duration,
    pub workers: usize,
    pub pinning: Pinning,
    /// Payload bytes per packet (ICMP data or UDP payload); `None`: the
    /// mode's default.
    pub payload: Option<usize>,
    /// Packets per second per session (bulk: 0 = as fast as possible);
    /// `None`: the mode's default.
    pub pps: Option<f64>,
    /// Source addresses to bind before connecting.
    pub source_range: Option<SourceRange>,
    /// Bound on one session's setup.
    pub setup_timeout: Duration,
    /// After the traffic stops, how long to wait for replies in flight.
    pub drain: Duration,
    /// Bound on a graceful close.
    pub close_timeout: Duration,
    /// SSTP hello interval of the client (the server has its own).
    pub keepalive: Duration,
    /// Failed plus dropped sessions above which the run counts as failed.
    pub max_failures: Option<FailureLimit>,
    /// Re-establish sessions that end unexpectedly (echo, udp, bulk,
    /// idle); `None`: a lost session stays lost.
    pub reconnect: Option<ReconnectPolicy>,
}

impl LoadConfig {
    /// A configuration with defaults for everything but what identifies
    /// the run.
    pub fn new(mode: Mode, target: SocketAddr, credentials: Credentials) -> LoadConfig {
        let source_range = default_source_range(target);
        LoadConfig {
            mode,
            target,
            server_name: target.ip().to_string(),
            verification: ServerVerification::Insecure,
            tls_versions: (TlsVersion::Tls12, TlsVersion::Tls13),
            credentials,
            auth: vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
            eap_peer: EapPeerMethod::MsChapV2,
            ipv6cp: false,
            family: Family::V4,
            to6: None,
            sessions: 1,
            rate: None,
            setup_concurrency: 256,
            duration: Duration::from_secs(10),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pinning: Pinning::Spread,
            payload: None,
            pps: None,
            source_range,
            setup_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(1),
            close_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(60),
            max_failures: None,
            reconnect: None,
        }
    }

    /// Whether sessions negotiate IPv6CP.
    pub fn negotiates_ipv6(&self) -> bool {
        self.ipv6cp || self.family.v6()
    }

    pub fn payload(&self) -> usize {
        self.payload.unwrap_or_else(|| self.mode.default_payload())
    }

    /// The payload of IPv6 packets: `--payload`, or the mode's default
    /// less the 20 octets IPv6's header is larger by in bulk mode, so that
    /// a default bulk packet fills the same 1400-octet MTU in both
    /// families.
    pub fn payload_v6(&self) -> usize {
        match (self.payload, &self.mode) {
            (None, Mode::Bulk { .. }) => {
                self.mode.default_payload()
                    - (crate::packet::IPV6_UDP_OVERHEAD - crate::packet::IPV4_UDP_OVERHEAD)
            }
            _ => self.payload(),
        }
    }

    pub fn pps(&self) -> f64 {
        self.pps.unwrap_or_else(|| self.mode.default_pps())
    }

    /// Checks what the engine cannot work with, with messages for users.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 {
            return Err("--sessions must be at least 1".into());
        }
        if self.workers == 0 || self.workers > 1024 {
            return Err("--workers must be 1..=1024".into());
        }
        if self.setup_concurrency == 0 {
            return Err("--setup-concurrency must be at least 1".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number".into());
            }
        }
        let pps = self.pps();
        if !(pps.is_finite() && pps >= 0.0) {
            return Err("--pps must be zero or positive".into());
        }
        if let Mode::Bulk {
            follow: true,
            direction,
            ..
        } = self.mode
        {
            if !direction.down() {
                return Err(
                    "--follow steers the peer's stream: it needs --direction down or both".into(),
                );
            }
        }
        if pps == 0.0 && matches!(self.mode, Mode::Echo { .. } | Mode::Udp { .. }) {
            return Err(format!("{} mode needs --pps above 0", self.mode.name()));
        }
        if self.auth.is_empty() {
            return Err("--auth needs at least one method".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be above 0".into());
        }
        if let Some(policy) = &self.reconnect {
            policy.validate()?;
            if matches!(self.mode, Mode::Churn { .. } | Mode::Tun { .. }) {
                return Err(format!(
                    "--reconnect is for echo, udp, bulk and idle, not {}",
                    self.mode.name()
                ));
            }
        }
        // Build the packets each mode sends once, to check the sizes (the
        // larger IPv6 headers when IPv6 runs).
        let a: SocketAddr = if self.family.v6() {
            (std::net::Ipv6Addr::LOCALHOST, 1).into()
        } else {
            (Ipv4Addr::LOCALHOST, 1).into()
        };
        let payload = if self.family.v6() {
            self.payload_v6()
        } else {
            self.payload()
        };
        let checked = match self.mode {
            Mode::Echo { .. } => Template::icmp_echo(a.ip(), a.ip(), 0, payload).map(drop),
            Mode::Udp { .. } => {
                Template::udp(a, a, Header::new(Kind::Echo, 0), &[], payload).map(drop)
            }
            Mode::Bulk { .. } => Template::udp(a, a, Header::new(Kind::Discard, 0), &[], payload)
                .and_then(|_| {
                    Template::udp(
                        a,
                        a,
                        Header::new(Kind::StreamStart, 0),
                        &[0; STREAM_REQUEST_LEN],
                        crate::packet::HEADER_LEN + STREAM_REQUEST_LEN,
                    )
                })
                .map(drop),
            Mode::Idle | Mode::Churn { .. } => Ok(()),
            Mode::Tun { ref names } => return names.check(self.sessions),
        };
        checked.map_err(|e| format!("--payload {payload}: {e}"))?;
        if matches!(self.mode, Mode::Bulk { .. }) && payload > usize::from(u16::MAX) {
            return Err("--payload too large".into());
        }
        Ok(())
    }
}

/// Loopback targets get 127.1.0.0/16 as source range (bind before
/// connect), so 100,000 sessions do not exhaust one source address's
/// ephemeral ports toward the one server address; others let the kernel
/// choose.
pub fn default_source_range(target: SocketAddr) -> Option<SourceRange> {
    match target.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => "127.1.0.0/16".parse().ok(),
        _ => None,
    }
}

/// Parses durations such as `5s`, `500ms`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses `mschapv2,pap,...` (also `chap-md5`/`chap`, `ms-chapv2`, `eap-mschapv2`).
pub fn parse_auth_list(s: &str) -> Result<Vec<AuthProtocol>, String> {
    parse_auth_methods(s).map(|(list, _)| list)
}

/// The EAP method an `--auth` list names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EapKind {
    /// `eap-mschapv2` (or no EAP at all).
    #[default]
    MsChapV2,
    /// `peap`: PEAPv0 with EAP-MSCHAPv2 inside.
    Peap,
    /// `eap-tls`: EAP-TLS with a client certificate.
    Tls,
}

/// [`parse_auth_list`], also taking `peap` and `eap-tls`: EAP (in the
/// list's place) with that method, which the [`EapKind`] says. They and
/// `eap-mschapv2` are all EAP to LCP, so one list names one of them.
pub fn parse_auth_methods(s: &str) -> Result<(Vec<AuthProtocol>, EapKind), String> {
    let mut list = Vec::new();
    let mut eap_kinds = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let method = match name.to_ascii_lowercase().as_str() {
            "mschapv2" | "ms-chapv2" | "mschap-v2" => AuthProtocol::MsChapV2,
            "eap-mschapv2" => {
                eap_kinds.push(EapKind::MsChapV2);
                AuthProtocol::EapMsChapV2
            }
            "peap" => {
                eap_kinds.push(EapKind::Peap);
                AuthProtocol::EapMsChapV2
            }
            "eap-tls" => {
                eap_kinds.push(EapKind::Tls);
                AuthProtocol::EapMsChapV2
            }
            "chap-md5" | "chap" | "md5" => AuthProtocol::ChapMd5,
            "pap" => AuthProtocol::Pap,
            _ => {
                return Err(format!(
                "{name:?}: unknown method (mschapv2, eap-mschapv2, peap, eap-tls, chap-md5, pap)"
            ))
            }
        };
        if !list.contains(&method) {
            list.push(method);
        }
    }
    if list.is_empty() {
        return Err("empty list".into());
    }
    eap_kinds.dedup();
    if eap_kinds.len() > 1 {
        return Err("eap-mschapv2, peap and eap-tls are all EAP: name one".into());
    }
    Ok((list, eap_kinds.first().copied().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_the_session_index() {
        let c = Credentials::Pattern {
            user: "user%d".into(),
            password: "pw-%d".into(),
        };
        assert_eq!(c.for_session(0), ("user0".into(), b"pw-0".to_vec()));
        assert_eq!(c.for_session(42), ("user42".into(), b"pw-42".to_vec()));
        let same = Credentials::single("demo", "secret");
        assert_eq!(same.for_session(7), ("demo".into(), b"secret".to_vec()));
    }

    #[test]
    fn credential_files_cycle_and_reject_bad_lines() {
        let c = Credentials::parse_list("# users\nalice  a b c\n\nbob\tpw\n").unwrap();
        assert_eq!(c.for_session(0), ("alice".into(), b"a b c".to_vec()));
        assert_eq!(c.for_session(1), ("bob".into(), b"pw".to_vec()));
        assert_eq!(c.for_session(2).0, "alice");
        assert_eq!(
            Credentials::parse_list("alice\n").unwrap_err(),
            "line 1: expected `user password`"
        );
        assert!(Credentials::parse_list("# nothing\n").is_err());
        assert!(!format!("{c:?}").contains("pw"), "no secrets in Debug");
    }

    #[test]
    fn source_ranges_skip_network_and_broadcast() {
        let r: SourceRange = "127.1.0.0/16".parse().unwrap();
        assert_eq!(r.len(), 65534);
        assert_eq!(r.address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(r.address(65533), Ipv4Addr::new(127, 1, 255, 254));
        assert_eq!(r.address(65534), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(r.to_string(), "127.1.0.0/16");
        let one: SourceRange = "127.0.0.5".parse().unwrap();
        assert_eq!(
            (one.len(), one.address(9)),
            (1, Ipv4Addr::new(127, 0, 0, 5))
        );
        let host_bits: SourceRange = "127.2.3.4/24".parse().unwrap();
        assert_eq!(host_bits.address(0), Ipv4Addr::new(127, 2, 3, 1));
        for bad in [
            "127.0.0.0/33",
            "127.0.0.0/4",
            "::1/64",
            "x/8",
            "127.0.0.0/x",
        ] {
            assert!(bad.parse::<SourceRange>().is_err(), "{bad}");
        }
        assert_eq!(
            default_source_range("127.0.0.1:443".parse().unwrap()),
            Some("127.1.0.0/16".parse().unwrap())
        );
        assert_eq!(default_source_range("10.0.0.1:443".parse().unwrap()), None);
    }

    #[test]
    fn failure_limits_count_or_percent() {
        let c: FailureLimit = "5".parse().unwrap();
        assert!(!c.exceeded(5, 10) && c.exceeded(6, 10));
        let p: FailureLimit = "1%".parse().unwrap();
        assert!(!p.exceeded(1, 100) && p.exceeded(2, 100));
        assert!(!p.exceeded(0, 0));
        let zero: FailureLimit = "0%".parse().unwrap();
        assert!(zero.exceeded(1, 1000));
        for bad in ["-1", "x", "101%", "%"] {
            assert!(bad.parse::<FailureLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_lists_parse_in_order_without_duplicates() {
        assert_eq!(
            parse_auth_list("pap, mschapv2,pap").unwrap(),
            [AuthProtocol::Pap, AuthProtocol::MsChapV2]
        );
        assert_eq!(
            parse_auth_list("eap-mschapv2,mschapv2").unwrap(),
            [AuthProtocol::EapMsChapV2, AuthProtocol::MsChapV2]
        );
        assert!(parse_auth_list("eap").is_err());
        assert_eq!(
            parse_auth_methods("peap,mschapv2").unwrap(),
            (
                vec![AuthProtocol::EapMsChapV2, AuthProtocol::MsChapV2],
                EapKind::Peap
            )
        );
        assert_eq!(
            parse_auth_methods("eap-tls").unwrap(),
            (vec![AuthProtocol::EapMsChapV2], EapKind::Tls)
        );
        assert_eq!(
            parse_auth_methods("eap-mschapv2").unwrap().1,
            EapKind::MsChapV2
        );
        assert!(parse_auth_methods("peap,eap-mschapv2").is_err());
        assert!(parse_auth_methods("eap-tls,peap").is_err());
        assert!(parse_auth_list(",").is_err());
    }

    #[test]
    fn tun_names_count_up_from_the_first() {
        let names: TunNames = "sstpc0".parse().unwrap();
        assert_eq!(
            (names.name(0), names.name(11)),
            ("sstpc0".into(), "sstpc11".into())
        );
        assert_eq!(names, TunNames::default());
        let names: TunNames = "vpn7".parse().unwrap();
        assert_eq!(
            (names.name(0), names.name(3)),
            ("vpn7".into(), "vpn10".into())
        );
        assert_eq!("tun".parse::<TunNames>().unwrap().name(2), "tun2");
        assert_eq!(names.to_string(), "vpn7");
        for bad in ["", "12", "a b", "a/b", "averyveryverylongname0"] {
            assert!(bad.parse::<TunNames>().is_err(), "{bad:?}");
        }
        let long: TunNames = "abcdefghijklm0".parse().unwrap();
        assert!(long.check(100).is_ok());
        assert!(long.check(101).unwrap_err().contains("15 bytes"));
        let mut c = LoadConfig::new(
            Mode::Tun { names: long },
            "127.0.0.1:443".parse().unwrap(),
            Credentials::single("u", "p"),
        );
        c.sessions = 101;
        assert!(c.validate().unwrap_err().contains("--ifname"));
    }

    #[test]
    fn validation_names_the_option() {
        let target = "127.0.0.1:443".parse().unwrap();
        let mut c = LoadConfig::new(Mode::Idle, target, Credentials::single("a", "b"));
        assert_eq!(c.validate(), Ok(()));
        c.sessions = 0;
        assert!(c.validate().unwrap_err().contains("--sessions"));
        let mut e = LoadConfig::new(
            Mode::Echo { to: None },
            target,
            Credentials::single("a", "b"),
        );
        e.payload = Some(8);
        assert!(e.validate().unwrap_err().contains("at least 32"));
        e.payload = Some(5000);
        assert!(e.validate().unwrap_err().contains("at most"));
        e.payload = None;
        e.pps = Some(0.0);
        assert!(e.validate().unwrap_err().contains("--pps"));
    }
}
