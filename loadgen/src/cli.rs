//! The command line: `sstp-loadgen <mode> [options]`.

use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sstpd::config::TlsVersion;
use sstpd::proto::auth::{AuthProtocol, EapPeerMethod};
use sstpd::tls::client::{ClientCertificate, ServerVerification};
use sstpd::tls::eap::RustlsTunnelConnector;

use crate::backoff::ReconnectPolicy;
use crate::config::{
    parse_auth_methods, parse_duration, Credentials, Direction, EapKind, FailureLimit, Family,
    LoadConfig, Mode, Pinning, SourceRange, TunNames, DEFAULT_PEER_PORT,
};
use crate::peer::PeerConfig;

const EXAMPLES: &str = "\
Examples:
  # 50 sessions pinging the tunnel gateway once a second for 5 s
  sstp-loadgen echo --target 127.0.0.1:4443 --insecure --user demo --password PW \\
      --sessions 50 --duration 5s --json out.json

  # 1000 sessions as user0..user999 (password pw0..pw999), 200 new per second
  sstp-loadgen idle --target vpn.example.com:443 --ca ca.pem \\
      --user 'user%d' --password 'pw%d' --sessions 1000 --rate 200 --duration 60s

  # On the server host (e.g. in its network namespace): the traffic peer
  sstp-loadgen peer --bind [::]:9000

  # Through the tunnels: UDP reflected by the peer, then bulk both ways
  sstp-loadgen udp  --target 127.0.0.1:4443 --insecure --user demo --password PW --sessions 20 --pps 100
  sstp-loadgen bulk --target 127.0.0.1:4443 --insecure --user demo --password PW --direction both

  # Setup and teardown rate; exit 1 if more than 1% fail
  sstp-loadgen churn --target 127.0.0.1:4443 --insecure --credentials users.txt \\
      --sessions 100 --hold 500ms --duration 30s --max-failures 1%

Exit status: 0 success, 1 too many failures (--max-failures) or no session
established, 2 usage error, 3 the run could not be carried out.";

const TUN_EXAMPLES: &str = "\
Examples:
  # One tunnel for a minute (or until Ctrl-C); it prints its device and address
  sstp-loadgen tun --target vpn.example.com:443 --ca ca.pem --user u --password p \\
      --duration 60s
  # then, in another shell, TCP through it to a server behind the gateway
  iperf3 -c 10.0.0.1 -B 10.0.0.2 -t 10

Each tunnel address gets a source rule (`ip rule from ADDRESS lookup TABLE`,
tables 20000 up) whose table routes everything through that session's
device, so a socket bound to the address leaves through its tunnel. The
rules are removed and the devices deleted when the run ends.";

/// SSTP load generator: real SSTP sessions (TLS, HTTP, SSTP, PPP, IPCP)
/// against any SSTP server, with traffic through the tunnels.
#[derive(Debug, Parser)]
#[command(name = "sstp-loadgen", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// ICMP echo through each tunnel (to the gateway unless --to): round
    /// trip times and loss.
    #[command(after_help = EXAMPLES)]
    Echo {
        #[command(flatten)]
        common: CommonArgs,
        /// Destination (default: the tunnel gateway from IPCP).
        #[arg(long, value_name = "ADDR")]
        to: Option<std::net::Ipv4Addr>,
    },
    /// UDP datagrams to a peer (`sstp-loadgen peer`) that reflects them:
    /// round trip times and loss both ways.
    #[command(after_help = EXAMPLES)]
    Udp {
        #[command(flatten)]
        common: CommonArgs,
        /// The peer (default: tunnel gateway, port 9000).
        #[arg(long, value_name = "ADDR:PORT")]
        to: Option<SocketAddrV4>,
        /// Ask the peer to count the datagrams instead of reflecting them.
        #[arg(long)]
        no_reflect: bool,
        /// Flows per session: 1 sends one UDP flow, whose datagrams may
        /// travel merged; more cycle the source port per datagram (the
        /// latency benchmarks).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        flows: u16,
    },
    /// Maximum throughput through each tunnel, to and/or from the peer.
    #[command(after_help = EXAMPLES)]
    Bulk {
        #[command(flatten)]
        common: CommonArgs,
        /// The peer (default: tunnel gateway, port 9000).
        #[arg(long, value_name = "ADDR:PORT")]
        to: Option<SocketAddrV4>,
        /// up: we send, the peer counts; down: the peer streams to us.
        #[arg(long, default_value = "up", value_parser = parse_direction)]
        direction: Direction,
        /// Flows per session each way: 1 sends one UDP flow, which may
        /// travel in super-packets; more cycle the ports per datagram, so
        /// every packet takes the per-packet path (the pps benchmarks).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        flows: u16,
        /// Downstream, steer the peer's rate by what arrives, as a sender
        /// with congestion control would: from --pps (default 50,000
        /// packets/s) it grows by half every 50 ms while what arrives keeps
        /// up; when it falls short, the rate becomes what arrived and then
        /// grows by 5% an interval. Without it the peer streams at --pps,
        /// or as fast as it can, whatever the tunnel drops.
        #[arg(long)]
        follow: bool,
    },
    /// Hold sessions open with keepalives only.
    #[command(after_help = EXAMPLES)]
    Idle {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Connect, hold, disconnect, repeat: setup and teardown rate.
    #[command(after_help = EXAMPLES)]
    Churn {
        #[command(flatten)]
        common: CommonArgs,
        /// How long each session stays up.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        hold: Duration,
    },
    /// Each session behind a TUN device of its own (sstpc0, sstpc1, ...)
    /// with the address IPCP assigned: run real TCP and UDP through the
    /// tunnels (iperf3 -B ADDRESS). Needs CAP_NET_ADMIN.
    #[command(after_help = TUN_EXAMPLES)]
    Tun {
        #[command(flatten)]
        common: CommonArgs,
        /// The first device's name; session i gets the same stem numbered
        /// from there (sstpc0, sstpc1, ...).
        #[arg(long, value_name = "NAME", default_value = "sstpc0", value_parser = parse_tun_names)]
        ifname: TunNames,
    },
    /// Run the server-side traffic peer (reflect, count, stream).
    #[command(after_help = EXAMPLES)]
    Peer(PeerArgs),
}

#[derive(Debug, Args)]
pub struct PeerArgs {
    /// UDP address to listen on.
    /// `[::]` (the default) serves IPv4 and IPv6 clients.
    #[arg(long, default_value_t = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PEER_PORT)))]
    pub bind: SocketAddr,
    /// Threads sharing the port (SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Flows tracked at most.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_flows: usize,
    /// One datagram per system call: no `UDP_GRO` reads, no `UDP_SEGMENT`
    /// streams (by default the peer batches as a QUIC stack does).
    #[arg(long)]
    pub no_udp_offload: bool,
}

impl PeerArgs {
    pub fn config(&self) -> PeerConfig {
        PeerConfig {
            bind: self.bind,
            threads: self.threads,
            max_flows: self.max_flows,
            udp_offload: !self.no_udp_offload,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A line each second: rewritten on a terminal, appended otherwise.
    Auto,
    /// No progress output.
    Never,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    // ---- Connection
    /// The SSTP server.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Connection")]
    pub target: String,
    /// TLS server name and HTTP Host (default: the target's host).
    #[arg(long, value_name = "NAME", help_heading = "Connection")]
    pub sni: Option<String>,
    /// Verify the server's certificate against these CA certificates (PEM).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Connection",
        conflicts_with = "insecure"
    )]
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (self-signed test servers).
    #[arg(long, help_heading = "Connection")]
    pub insecure: bool,
    /// Lowest TLS version offered.
    #[arg(long, default_value = "1.2", value_parser = parse_tls, help_heading = "Connection")]
    pub tls_min: TlsVersion,
    /// Highest TLS version offered.
    #[arg(long, default_value = "1.3", value_parser = parse_tls, help_heading = "Connection")]
    pub tls_max: TlsVersion,
    /// Source addresses to bind before connecting, spread over sessions
    /// (default for loopback targets: 127.1.0.0/16; `none`: the kernel's
    /// choice).
    #[arg(long, value_name = "CIDR", help_heading = "Connection")]
    pub source_range: Option<String>,

    // ---- Credentials
    /// User name; `%d` is replaced by the session index.
    #[arg(
        long,
        help_heading = "Credentials",
        requires = "password",
        conflicts_with = "credentials"
    )]
    pub user: Option<String>,
    /// Password; `%d` is replaced by the session index.
    #[arg(long, help_heading = "Credentials", requires = "user")]
    pub password: Option<String>,
    /// File of `user password` lines; session i uses line i (cycling).
    #[arg(long, value_name = "FILE", help_heading = "Credentials")]
    pub credentials: Option<PathBuf>,
    /// Authentication methods in order of preference: mschapv2,
    /// eap-mschapv2, peap (EAP with PEAPv0/EAP-MSCHAPv2 through the
    /// server's RADIUS; needs --eap-ca or --eap-insecure), eap-tls (EAP-TLS
    /// through the server's RADIUS; also needs --eap-cert and --eap-key),
    /// chap-md5, pap.
    #[arg(long, default_value = "mschapv2,chap-md5,pap", value_parser = parse_auth, help_heading = "Credentials")]
    pub auth: AuthList,
    /// PEAP, EAP-TLS: verify the RADIUS server's certificate against
    /// these CA certificates (PEM), for the name --eap-server-name.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Credentials",
        conflicts_with = "eap_insecure",
        requires = "eap_server_name"
    )]
    pub eap_ca: Option<PathBuf>,
    /// PEAP, EAP-TLS: the name the RADIUS server's certificate must carry.
    #[arg(long, value_name = "NAME", help_heading = "Credentials")]
    pub eap_server_name: Option<String>,
    /// PEAP, EAP-TLS: accept any RADIUS server certificate (benchmarking
    /// against self-signed servers; the keys are still the TLS exporter's).
    #[arg(long, help_heading = "Credentials")]
    pub eap_insecure: bool,
    /// EAP-TLS: the client certificate chain (PEM, leaf first) every
    /// session presents; its name is usually the --user name.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Credentials",
        requires = "eap_key"
    )]
    pub eap_cert: Option<PathBuf>,
    /// EAP-TLS: the client certificate's private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Credentials",
        requires = "eap_cert"
    )]
    pub eap_key: Option<PathBuf>,
    /// Also negotiate IPv6CP, as Windows does.
    #[arg(long, help_heading = "Credentials")]
    pub ipv6cp: bool,
    /// IP versions of the traffic: 4, 6 or both (IPv6: IPv6CP, a Router
    /// Solicitation, the address by SLAAC from the advertised /64).
    #[arg(long, default_value = "4", value_parser = parse_family, help_heading = "Load")]
    pub family: Family,
    /// Shorthand for --family 6.
    #[arg(long, conflicts_with = "family", help_heading = "Load")]
    pub ipv6: bool,
    /// IPv6 destination of echo, udp and bulk (default: the first host of
    /// the /48 holding the advertised prefix).
    #[arg(long, value_name = "ADDR", help_heading = "Load")]
    pub to6: Option<std::net::Ipv6Addr>,

    // ---- Load shape
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1, help_heading = "Load")]
    pub sessions: u64,
    /// New sessions per second (default: as fast as --setup-concurrency allows).
    #[arg(long, help_heading = "Load")]
    pub rate: Option<f64>,
    /// Setups in flight at once.
    #[arg(long, default_value_t = 256, help_heading = "Load")]
    pub setup_concurrency: usize,
    /// How long traffic runs once the sessions are up (churn: the whole run).
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Load")]
    pub duration: Duration,
    /// Worker threads (default: one per core).
    #[arg(long, help_heading = "Load")]
    pub workers: Option<usize>,
    /// Cores to pin workers to, e.g. 2,3 (default: worker i on core i).
    #[arg(
        long,
        value_delimiter = ',',
        help_heading = "Load",
        conflicts_with = "no_pin"
    )]
    pub cpus: Option<Vec<usize>>,
    /// Do not pin workers to cores.
    #[arg(long, help_heading = "Load")]
    pub no_pin: bool,
    /// Payload bytes per packet (ICMP data or UDP payload; default: echo 56,
    /// udp 64, bulk 1372).
    #[arg(long, help_heading = "Load")]
    pub payload: Option<usize>,
    /// Packets per second per session (default: echo 1, udp 10, bulk 0 =
    /// as fast as possible).
    #[arg(long, help_heading = "Load")]
    pub pps: Option<f64>,

    // ---- Timing
    /// Bound on one session's setup.
    #[arg(long, default_value = "30s", value_parser = parse_duration, help_heading = "Timing")]
    pub setup_timeout: Duration,
    /// After the traffic, how long to wait for packets in flight.
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Timing")]
    pub drain: Duration,
    /// Bound on a graceful disconnect.
    #[arg(long, default_value = "5s", value_parser = parse_duration, help_heading = "Timing")]
    pub close_timeout: Duration,
    /// Our SSTP hello (keepalive) interval.
    #[arg(long, default_value = "60s", value_parser = parse_duration, help_heading = "Timing")]
    pub keepalive: Duration,

    // ---- Reconnect
    /// Re-establish sessions that end unexpectedly (reset, Call
    /// Disconnect, LCP Terminate, keepalive timeout...) after a back-off,
    /// until the window ends (echo, udp, bulk, idle).
    #[arg(long, help_heading = "Reconnect")]
    pub reconnect: bool,
    /// The first delay before reconnecting, and the least.
    #[arg(long, default_value = "1s", value_parser = parse_duration, requires = "reconnect", help_heading = "Reconnect")]
    pub reconnect_delay: Duration,
    /// The longest delay: back-off grows (up to 3x a step, jittered) to this.
    #[arg(long, default_value = "30s", value_parser = parse_duration, requires = "reconnect", help_heading = "Reconnect")]
    pub reconnect_max_delay: Duration,
    /// Seeds the back-off's jitter, so a run can be repeated (default:
    /// random, printed in the report).
    #[arg(long, help_heading = "Reconnect")]
    pub seed: Option<u64>,

    // ---- Output
    /// Write the report as JSON (`-`: standard output).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub json: Option<PathBuf>,
    /// Write an hdrhistogram interval log (rtt and setup, microseconds).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub hdr_log: Option<PathBuf>,
    /// Exit 1 when failed plus dropped sessions exceed this count or
    /// percentage (e.g. 10 or 0.5%).
    #[arg(long, value_name = "N|P%", help_heading = "Output")]
    pub max_failures: Option<FailureLimit>,
    /// Live progress on standard error.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = "Output")]
    pub progress: ProgressMode,
}

/// Where the report goes, besides the table.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub json: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
    pub progress: bool,
}

/// `--auth mschapv2,pap` (or `eap-mschapv2`, `peap`, `eap-tls`): methods
/// in order of preference, and the EAP method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthList(pub Vec<AuthProtocol>, pub EapKind);

fn parse_auth(s: &str) -> Result<AuthList, String> {
    parse_auth_methods(s).map(|(list, eap)| AuthList(list, eap))
}

fn parse_family(s: &str) -> Result<Family, String> {
    s.parse()
}

fn parse_tun_names(s: &str) -> Result<TunNames, String> {
    s.parse()
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    s.parse()
}

fn parse_tls(s: &str) -> Result<TlsVersion, String> {
    match s {
        "1.2" => Ok(TlsVersion::Tls12),
        "1.3" => Ok(TlsVersion::Tls13),
        _ => Err(format!("{s:?}: expected 1.2 or 1.3")),
    }
}

/// Splits `host:port` (`[v6]:port` too) and resolves it.
fn resolve_target(target: &str) -> Result<(SocketAddr, String), String> {
    let (host, _) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("--target {target:?}: expected HOST:PORT"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("--target {target:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {target:?}: no address"))?;
    Ok((addr, host))
}

impl Command {
    /// The engine configuration and outputs of a load mode; `None` for
    /// `peer`.
    pub fn load_config(&self) -> Option<Result<(LoadConfig, Outputs), String>> {
        let (common, mode) = match self {
            Command::Echo { common, to } => (common, Mode::Echo { to: *to }),
            Command::Udp {
                common,
                to,
                no_reflect,
                flows,
            } => (
                common,
                Mode::Udp {
                    to: *to,
                    reflect: !no_reflect,
                    flows: *flows,
                },
            ),
            Command::Bulk {
                common,
                to,
                direction,
                flows,
                follow,
            } => (
                common,
                Mode::Bulk {
                    to: *to,
                    direction: *direction,
                    flows: *flows,
                    follow: *follow,
                },
            ),
            Command::Idle { common } => (common, Mode::Idle),
            Command::Churn { common, hold } => (common, Mode::Churn { hold: *hold }),
            Command::Tun { common, ifname } => (
                common,
                Mode::Tun {
                    names: ifname.clone(),
                },
            ),
            Command::Peer(_) => return None,
        };
        Some(common.to_config(mode))
    }
}

impl CommonArgs {
    /// `--auth peap`, `--auth eap-tls`: the EAP method with its TLS
    /// settings.
    fn eap_peer(&self) -> Result<EapPeerMethod, String> {
        let kind = self.auth.1;
        let certificate = match (kind, &self.eap_cert, &self.eap_key) {
            (EapKind::Tls, Some(cert), Some(key)) => Some(
                ClientCertificate::from_pem_files(cert, key)
                    .map_err(|e| format!("--eap-cert/--eap-key: {e}"))?,
            ),
            (EapKind::Tls, _, _) => {
                return Err("--auth eap-tls needs --eap-cert FILE and --eap-key FILE".into())
            }
            (_, None, None) => None,
            _ => return Err("--eap-cert and --eap-key are for --auth eap-tls".into()),
        };
        if kind == EapKind::MsChapV2 {
            if self.eap_ca.is_some() || self.eap_insecure {
                return Err("--eap-ca and --eap-insecure are for --auth peap or eap-tls".into());
            }
            return Ok(EapPeerMethod::MsChapV2);
        }
        let (verification, name) = match (&self.eap_ca, self.eap_insecure) {
            (Some(ca), false) => (
                ServerVerification::CaFile(ca.clone()),
                self.eap_server_name.clone().unwrap_or_default(),
            ),
            (None, true) => (
                ServerVerification::Insecure,
                self.eap_server_name
                    .clone()
                    .unwrap_or_else(|| "radius.invalid".into()),
            ),
            _ => {
                return Err(
                    "--auth peap and eap-tls need --eap-ca FILE (with --eap-server-name NAME) \
                     to verify the RADIUS server, or --eap-insecure"
                        .into(),
                )
            }
        };
        let tunnel = RustlsTunnelConnector::new(verification, &name, certificate)
            .map(RustlsTunnelConnector::into_tunnel)
            .map_err(|e| format!("--eap-ca: {e}"))?;
        Ok(match kind {
            EapKind::Tls => EapPeerMethod::Tls(tunnel),
            _ => EapPeerMethod::Peap(tunnel),
        })
    }

    pub fn to_config(&self, mode: Mode) -> Result<(LoadConfig, Outputs), String> {
        let (target, host) = resolve_target(&self.target)?;
        let credentials = match (&self.user, &self.password, &self.credentials) {
            (Some(user), Some(password), None) => Credentials::Pattern {
                user: user.clone(),
                password: password.clone(),
            },
            (None, None, Some(path)) => Credentials::from_file(path)?,
            _ => return Err("give --user and --password, or --credentials FILE".into()),
        };
        let verification =
            match (&self.ca, self.insecure) {
                (Some(ca), false) => ServerVerification::CaFile(ca.clone()),
                (None, true) => ServerVerification::Insecure,
                _ => return Err(
                    "give --ca FILE to verify the server, or --insecure to accept any certificate"
                        .into(),
                ),
            };
        let mut config = LoadConfig::new(mode, target, credentials);
        config.server_name = self.sni.clone().unwrap_or(host);
        config.verification = verification;
        config.tls_versions = (self.tls_min, self.tls_max);
        config.auth = self.auth.0.clone();
        config.eap_peer = self.eap_peer()?;
        config.ipv6cp = self.ipv6cp;
        config.family = if self.ipv6 { Family::V6 } else { self.family };
        config.to6 = self.to6;
        config.sessions = self.sessions;
        config.rate = self.rate;
        config.setup_concurrency = self.setup_concurrency;
        config.duration = self.duration;
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        // Never more workers than sessions: idle workers only cost.
        config.workers = config
            .workers
            .min(usize::try_from(self.sessions).unwrap_or(usize::MAX))
            .max(1);
        config.pinning = match (&self.cpus, self.no_pin) {
            (_, true) => Pinning::None,
            (Some(cpus), false) => Pinning::Cores(cpus.clone()),
            (None, false) => Pinning::Spread,
        };
        config.payload = self.payload;
        config.pps = self.pps;
        config.source_range = match self.source_range.as_deref() {
            None => config.source_range,
            Some("none") => None,
            Some(range) => Some(
                range
                    .parse::<SourceRange>()
                    .map_err(|e| format!("--source-range {e}"))?,
            ),
        };
        config.setup_timeout = self.setup_timeout;
        config.drain = self.drain;
        config.close_timeout = self.close_timeout;
        config.keepalive = self.keepalive;
        config.max_failures = self.max_failures;
        config.reconnect = self.reconnect.then(|| ReconnectPolicy {
            initial: self.reconnect_delay,
            max: self.reconnect_max_delay,
            seed: self.seed.unwrap_or_else(rand::random),
        });
        config.validate()?;
        Ok((
            config,
            Outputs {
                json: self.json.clone(),
                hdr_log: self.hdr_log.clone(),
                progress: self.progress == ProgressMode::Auto,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &str) -> Result<(LoadConfig, Outputs), String> {
        let cli = Cli::try_parse_from(args.split_whitespace()).map_err(|e| e.to_string())?;
        cli.command.load_config().expect("a load mode")
    }

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_typical_echo_run_parses() {
        let (c, out) = parse(
            "sstp-loadgen echo --target 127.0.0.1:4443 --insecure --user demo --password PW \
             --sessions 50 --duration 5s --json out.json",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Echo { to: None });
        assert_eq!(c.target, "127.0.0.1:4443".parse().unwrap());
        assert_eq!(c.server_name, "127.0.0.1");
        assert_eq!(c.sessions, 50);
        assert_eq!(c.duration, Duration::from_secs(5));
        assert_eq!(c.payload(), 56);
        assert_eq!(c.pps(), 1.0);
        assert_eq!(c.source_range.unwrap().to_string(), "127.1.0.0/16");
        assert_eq!(
            c.auth,
            [
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap
            ]
        );
        assert_eq!(out.json, Some(PathBuf::from("out.json")));
        assert!(out.progress);
    }

    #[test]
    fn mode_options_and_load_shape_parse() {
        let (c, _) = parse(
            "sstp-loadgen bulk --target 127.0.0.1:443 --insecure --user u%d --password p%d \
             --direction both --to 10.0.0.1:7 --payload 1000 --pps 50 --workers 2 --cpus 1,0 --sessions 4 \
             --rate 20 --source-range 127.9.0.0/24 --auth pap --max-failures 2% --sni vpn.test \
             --tls-min 1.3",
        )
        .unwrap();
        assert_eq!(
            c.mode,
            Mode::Bulk {
                to: Some("10.0.0.1:7".parse().unwrap()),
                direction: Direction::Both,
                flows: 1,
                follow: false,
            }
        );
        assert_eq!(c.credentials.for_session(3), ("u3".into(), b"p3".to_vec()));
        assert_eq!((c.payload(), c.pps(), c.workers), (1000, 50.0, 2));
        assert_eq!(c.pinning, Pinning::Cores(vec![1, 0]));
        assert_eq!(c.rate, Some(20.0));
        assert_eq!(c.source_range.unwrap().to_string(), "127.9.0.0/24");
        assert_eq!(c.auth, [AuthProtocol::Pap]);
        assert_eq!(c.max_failures, Some(FailureLimit::Percent(2.0)));
        assert_eq!(c.server_name, "vpn.test");
        assert_eq!(c.tls_versions.0, TlsVersion::Tls13);

        let (c, _) = parse(
            "sstp-loadgen churn --target 127.0.0.1:443 --insecure --user a --password b \
             --hold 250ms --source-range none --no-pin --sessions 3",
        )
        .unwrap();
        assert_eq!(
            c.mode,
            Mode::Churn {
                hold: Duration::from_millis(250)
            }
        );
        assert_eq!((c.source_range, c.pinning), (None, Pinning::None));
        assert!(c.workers <= 3, "no more workers than sessions");
    }

    #[test]
    fn reconnect_options_parse_and_are_checked() {
        let base = "sstp-loadgen echo --target 127.0.0.1:443 --insecure --user u --password p";
        let (c, _) = parse(base).unwrap();
        assert_eq!(c.reconnect, None, "off unless asked");
        let (c, _) = parse(&format!("{base} --reconnect --seed 7")).unwrap();
        assert_eq!(
            c.reconnect,
            Some(ReconnectPolicy {
                initial: ReconnectPolicy::DEFAULT_INITIAL,
                max: ReconnectPolicy::DEFAULT_MAX,
                seed: 7,
            })
        );
        let (c, _) = parse(&format!(
            "{base} --reconnect --reconnect-delay 200ms --reconnect-max-delay 5s"
        ))
        .unwrap();
        let policy = c.reconnect.unwrap();
        assert_eq!(
            (policy.initial, policy.max),
            (Duration::from_millis(200), Duration::from_secs(5))
        );
        for wrong in [
            format!("{base} --reconnect-delay 2s"),
            format!("{base} --reconnect --reconnect-delay 0s"),
            format!("{base} --reconnect --reconnect-delay 2s --reconnect-max-delay 1s"),
            "sstp-loadgen churn --target 127.0.0.1:443 --insecure --user u --password p \
             --reconnect"
                .to_string(),
        ] {
            assert!(parse(&wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn peap_needs_a_way_to_trust_the_radius_server() {
        let base = "sstp-loadgen echo --target 127.0.0.1:443 --insecure --user u --password p";
        let (c, _) = parse(&format!("{base} --auth peap --eap-insecure")).unwrap();
        assert_eq!(c.auth, [AuthProtocol::EapMsChapV2]);
        assert!(matches!(c.eap_peer, EapPeerMethod::Peap(_)));
        let (c, _) = parse(&format!("{base} --auth eap-mschapv2")).unwrap();
        assert_eq!(c.eap_peer, EapPeerMethod::MsChapV2);
        for wrong in [
            format!("{base} --auth peap"),
            format!("{base} --auth peap --eap-ca /nonexistent.pem --eap-server-name r"),
            format!("{base} --auth peap --eap-ca ca.pem"),
            format!("{base} --auth peap --eap-insecure --eap-ca ca.pem --eap-server-name r"),
            format!("{base} --auth mschapv2 --eap-insecure"),
            format!("{base} --auth eap-tls --eap-insecure"),
            format!("{base} --auth eap-tls --eap-insecure --eap-cert c.pem"),
            format!("{base} --auth eap-tls --eap-insecure --eap-cert /nonexistent --eap-key k"),
            format!("{base} --auth peap --eap-insecure --eap-cert c.pem --eap-key k.pem"),
        ] {
            assert!(parse(&wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn follow_steers_a_downstream_stream_only() {
        let base = "sstp-loadgen bulk --target 127.0.0.1:443 --insecure --user u --password p";
        for direction in ["down", "both"] {
            let (c, _) = parse(&format!("{base} --direction {direction} --follow")).unwrap();
            assert!(
                matches!(c.mode, Mode::Bulk { follow: true, .. }),
                "{direction}"
            );
        }
        assert!(parse(&format!("{base} --direction up --follow"))
            .unwrap_err()
            .contains("--follow"));
        assert!(parse(&format!("{base} --follow"))
            .unwrap_err()
            .contains("--direction down or both"));
    }

    #[test]
    fn tun_takes_the_first_device_name() {
        let (c, _) = parse(
            "sstp-loadgen tun --target 127.0.0.1:443 --insecure --user u --password p \
             --sessions 3 --ifname vpn4",
        )
        .unwrap();
        let Mode::Tun { names } = &c.mode else {
            panic!("{:?}", c.mode)
        };
        assert_eq!(names.name(2), "vpn6");
        let (c, _) =
            parse("sstp-loadgen tun --target 127.0.0.1:443 --insecure --user u --password p")
                .unwrap();
        assert_eq!(
            c.mode,
            Mode::Tun {
                names: TunNames::default()
            }
        );
        assert!(parse(
            "sstp-loadgen tun --target 127.0.0.1:443 --insecure --user u --password p --ifname 0"
        )
        .is_err());
    }

    #[test]
    fn missing_or_conflicting_options_are_explained() {
        let base = "sstp-loadgen idle --target 127.0.0.1:443";
        assert!(parse(&format!("{base} --user a --password b"))
            .unwrap_err()
            .contains("--insecure"));
        assert!(parse(&format!("{base} --insecure"))
            .unwrap_err()
            .contains("--credentials"));
        assert!(parse(&format!("{base} --insecure --user a")).is_err());
        assert!(parse(&format!("{base} --insecure --ca x --user a --password b")).is_err());
        assert!(
            parse("sstp-loadgen idle --target nohostport --insecure --user a --password b")
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(parse(&format!(
            "{base} --insecure --user a --password b --auth eap"
        ))
        .unwrap_err()
        .contains("unknown method"));
        assert!(parse(&format!(
            "{base} --insecure --user a --password b --source-range 1.2.3.4/40"
        ))
        .unwrap_err()
        .contains("--source-range"));
    }

    #[test]
    fn peer_defaults_to_port_9000_on_all_addresses() {
        let cli = Cli::try_parse_from(["sstp-loadgen", "peer"]).unwrap();
        let Command::Peer(args) = cli.command else {
            panic!("peer")
        };
        assert_eq!(args.config().bind, "[::]:9000".parse().unwrap());
        assert!(cli_help().contains("sstp-loadgen peer --bind [::]:9000"));
    }

    fn cli_help() -> String {
        Cli::command().render_long_help().to_string()
    }
}
