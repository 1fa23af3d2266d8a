//! sstp-loadgen as a child process: a load run (its `--json` report read
//! back as [`sstp_loadgen::Report`]) and the traffic peer next to the
//! server. Running the binary rather than embedding the engine keeps the
//! load generator's CPU in a process of its own, where /proc can count it
//! apart from sstpd's and ours, and measures exactly what a user of
//! `sstp-loadgen` would run.

use std::fs;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sstp_loadgen::report::Tunnel;
use sstp_loadgen::{Direction, Mode, Report};
use sstpd::testing::netns::NetNs;

use super::process::tail_of_file;
use super::ScenarioError;

/// Bound on one session's setup in the runs (sstp-loadgen
/// `--setup-timeout`).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets in flight after the window (`--drain`).
pub const DRAIN: Duration = Duration::from_secs(1);
/// Bound on a graceful disconnect (`--close-timeout`).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an interrupted or overdue run gets to write its report after
/// SIGINT/SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(12);
/// How often a load run's wait looks at the interrupt flag and its
/// deadline; the child's exit ends the wait at once. (It woke every 20 ms
/// before, on the cores that are measured.)
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

/// Where and as whom the load generator connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub target: SocketAddr,
    pub user: String,
    pub password: String,
    /// CA certificates to verify the server with; `None`: `--insecure`.
    pub ca: Option<PathBuf>,
    /// TLS server name and HTTP Host, when not the target's address.
    pub sni: Option<String>,
    /// The traffic peer, when it is not at the tunnel gateway on port
    /// 9000 (sstp-loadgen's default).
    pub peer: Option<SocketAddrV4>,
}

/// One run of the load generator.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    pub mode: Mode,
    pub sessions: u64,
    pub duration: Duration,
    /// Payload bytes per packet (mode default when `None`).
    pub payload: Option<usize>,
    /// Packets per second per session (mode default when `None`).
    pub pps: Option<f64>,
    /// New sessions per second (unpaced when `None`).
    pub rate: Option<f64>,
    /// Setups in flight at once (sstp-loadgen's default, 256, when `None`).
    pub setup_concurrency: Option<usize>,
    /// How long to wait for packets in flight after the window.
    pub drain: Duration,
    /// Traffic over IPv6 (`--family 6`) instead of IPv4.
    pub ipv6: bool,
    /// `--reconnect` with its first and longest delay: sessions that end
    /// unexpectedly are set up again.
    pub reconnect: Option<(Duration, Duration)>,
}

impl LoadSpec {
    pub fn new(mode: Mode, sessions: u64, duration: Duration) -> LoadSpec {
        LoadSpec {
            mode,
            sessions,
            duration,
            payload: None,
            pps: None,
            rate: None,
            setup_concurrency: None,
            drain: DRAIN,
            ipv6: false,
            reconnect: None,
        }
    }

    /// How long the run may take before it counts as hung: a pessimistic
    /// ramp (50 setups per second, and at least one setup timeout), the
    /// window, the drain, the closes, and a margin.
    pub fn deadline(&self) -> Duration {
        let ramp = Duration::from_secs_f64(self.sessions as f64 / 50.0).max(SETUP_TIMEOUT);
        ramp + self.duration + self.drain + CLOSE_TIMEOUT + Duration::from_secs(20)
    }
}

/// Worker threads of the load generator and the cores they are pinned to
/// (`None`: not pinned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub workers: usize,
    pub cpus: Option<Vec<usize>>,
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The command line of a load run (after the program name).
pub fn load_args(
    spec: &LoadSpec,
    connection: &Connection,
    placement: &Placement,
    json: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = vec![spec.mode.name().into()];
    let peer = connection.peer.map(|p| p.to_string());
    match &spec.mode {
        Mode::Echo { to } => {
            if let Some(to) = to {
                args.extend(["--to".into(), to.to_string()]);
            }
        }
        Mode::Udp { to, reflect, flows } => {
            if let Some(to) = to.map(|t| t.to_string()).or(peer) {
                args.extend(["--to".into(), to]);
            }
            if *flows > 1 {
                args.extend(["--flows".into(), flows.to_string()]);
            }
            if !reflect {
                args.push("--no-reflect".into());
            }
        }
        Mode::Bulk {
            to,
            direction,
            flows,
            follow,
        } => {
            if let Some(to) = to.map(|t| t.to_string()).or(peer) {
                args.extend(["--to".into(), to]);
            }
            args.extend(["--direction".into(), direction.as_str().into()]);
            if *flows > 1 {
                args.extend(["--flows".into(), flows.to_string()]);
            }
            if *follow {
                args.push("--follow".into());
            }
        }
        Mode::Idle => {}
        Mode::Churn { hold } => args.extend(["--hold".into(), millis(*hold)]),
        Mode::Tun { names } => args.extend(["--ifname".into(), names.to_string()]),
    }
    args.extend(["--target".into(), connection.target.to_string()]);
    match &connection.ca {
        Some(ca) => args.extend(["--ca".into(), ca.display().to_string()]),
        None => args.push("--insecure".into()),
    }
    if let Some(sni) = &connection.sni {
        args.extend(["--sni".into(), sni.clone()]);
    }
    args.extend([
        "--user".into(),
        connection.user.clone(),
        "--password".into(),
        connection.password.clone(),
        "--sessions".into(),
        spec.sessions.to_string(),
        "--duration".into(),
        millis(spec.duration),
        "--workers".into(),
        placement.workers.to_string(),
    ]);
    match &placement.cpus {
        Some(cpus) => {
            let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
            args.extend(["--cpus".into(), list.join(",")]);
        }
        None => args.push("--no-pin".into()),
    }
    if spec.ipv6 {
        args.extend(["--family".into(), "6".into()]);
    }
    if let Some(payload) = spec.payload {
        args.extend(["--payload".into(), payload.to_string()]);
    }
    if let Some(pps) = spec.pps {
        args.extend(["--pps".into(), format!("{pps}")]);
    }
    if let Some(rate) = spec.rate {
        args.extend(["--rate".into(), format!("{rate}")]);
    }
    if let Some(n) = spec.setup_concurrency {
        args.extend(["--setup-concurrency".into(), n.to_string()]);
    }
    if let Some((delay, max_delay)) = spec.reconnect {
        args.extend([
            "--reconnect".into(),
            "--reconnect-delay".into(),
            millis(delay),
            "--reconnect-max-delay".into(),
            millis(max_delay),
        ]);
    }
    args.extend([
        "--setup-timeout".into(),
        millis(SETUP_TIMEOUT),
        "--drain".into(),
        millis(spec.drain),
        "--close-timeout".into(),
        millis(CLOSE_TIMEOUT),
        "--progress".into(),
        "never".into(),
        "--json".into(),
        json.display().to_string(),
    ]);
    args
}

/// A child process that is killed (and reaped) if it is still running
/// when this is dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    pid: u32,
    /// A pidfd of the child (`pidfd_open`, Linux 5.3): readable once it
    /// has exited, so a wait sleeps in `poll` until then instead of
    /// waking every [`POLL_INTERVAL`] to ask.
    exited: Option<OwnedFd>,
}

/// How often a wait without a pidfd asks whether the child has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        let pid = child.id();
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; the child is not reaped yet, so the pid is its.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        ChildGuard {
            pid,
            child: Some(child),
            // SAFETY: a descriptor pidfd_open just returned, owned by none.
            exited: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` unless the child has been reaped.
    pub fn signal(&mut self, signal: libc::c_int) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on our own child, not reaped yet (so its
                // pid cannot have been reused).
                unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            }
        }
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ScenarioError> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(ScenarioError::Io),
            None => Ok(None),
        }
    }

    /// Waits at most `timeout` for the child to exit. With a pidfd it
    /// sleeps until the exit, the timeout or a signal (`None` then too, so
    /// that the caller looks at what the signal handler set).
    pub fn wait_for(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ScenarioError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let Some(exited) = &self.exited else {
                std::thread::sleep(left.min(POLL_INTERVAL));
                continue;
            };
            let mut pollfd = libc::pollfd {
                fd: exited.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Rounded up, so that a wait does not spin through its last
            // fraction of a millisecond.
            let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd, for the duration of the call.
            if unsafe { libc::poll(&mut pollfd, 1, millis) } < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    return self.try_wait();
                }
                return Err(ScenarioError::Io(error));
            }
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Returns the status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus, ScenarioError> {
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_for(grace)? {
            return Ok(status);
        }
        self.kill()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<ExitStatus, ScenarioError> {
        let Some(mut child) = self.child.take() else {
            return Err(ScenarioError::Setup(
                "the process was already reaped".into(),
            ));
        };
        let _ = child.kill();
        child.wait().map_err(ScenarioError::Io)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `ip netns exec NS program` inside `ns`, else `program` here.
fn command_in(ns: Option<&NetNs>, program: &Path) -> Command {
    match ns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    }
}

pub(crate) fn spawn_logged(mut command: Command, log: &Path) -> Result<ChildGuard, ScenarioError> {
    let file = fs::File::create(log).map_err(ScenarioError::Io)?;
    let child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(ScenarioError::Io)?)
        .stderr(file)
        .spawn()
        .map_err(ScenarioError::Io)?;
    Ok(ChildGuard::new(child))
}

/// A load run under way.
#[derive(Debug)]
pub struct LoadChild {
    child: ChildGuard,
    json: PathBuf,
    log: PathBuf,
    deadline: Duration,
    started: Instant,
}

impl LoadChild {
    /// Starts `binary` with `args` (from [`load_args`], writing its report
    /// to `json`) in `ns` (or here); its output goes to `log`.
    pub fn spawn(
        binary: &Path,
        ns: Option<&NetNs>,
        args: &[String],
        json: &Path,
        log: &Path,
        deadline: Duration,
    ) -> Result<LoadChild, ScenarioError> {
        let _ = fs::remove_file(json);
        let mut command = command_in(ns, binary);
        command.args(args);
        Ok(LoadChild {
            child: spawn_logged(command, log)?,
            json: json.to_owned(),
            log: log.to_owned(),
            deadline,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Sends `signal` (SIGINT ends a run early; it still reports).
    pub fn signal(&mut self, signal: libc::c_int) {
        self.child.signal(signal);
    }

    /// Kills the run (SIGKILL: its sessions' sockets all close at once,
    /// without a Call Disconnect) and reaps it.
    pub fn kill(mut self) -> Result<ExitStatus, ScenarioError> {
        self.child.kill()
    }

    /// Whether the run has exited (and how).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ScenarioError> {
        self.child.try_wait()
    }

    /// The last `lines` of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log, lines)
    }

    /// Tun mode: waits (at most `timeout`) until the run has announced
    /// `sessions` devices on its standard error, and returns them by
    /// session. A run that exits first, or is interrupted, is an error.
    pub fn wait_for_tunnels(
        &mut self,
        sessions: u64,
        timeout: Duration,
        interrupt: &AtomicBool,
    ) -> Result<Vec<Tunnel>, ScenarioError> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let mut tunnels: Vec<Tunnel> = text.lines().filter_map(parse_tunnel_line).collect();
            if tunnels.len() as u64 >= sessions {
                tunnels.sort_by_key(|t| t.session);
                return Ok(tunnels);
            }
            if interrupt.load(Ordering::Acquire) {
                return Err(ScenarioError::Interrupted);
            }
            let exited = self.child.try_wait()?;
            if exited.is_some() || Instant::now() >= deadline {
                return Err(ScenarioError::Loadgen(format!(
                    "{} of {sessions} tunnels came up{}:\n{}",
                    tunnels.len(),
                    exited.map_or(String::new(), |s| format!(" (it exited: {s})")),
                    tail_of_file(&self.log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the run to end (bounded by its deadline; on `interrupt`
    /// the run is asked to stop early) and reads its report. A run whose
    /// sessions all failed still returns its report: the caller decides.
    pub fn wait(mut self, interrupt: &AtomicBool) -> Result<Report, ScenarioError> {
        let deadline = self.started + self.deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if interrupt.load(Ordering::Acquire) {
                // The terminal sent SIGINT to the whole process group; if
                // the interrupt came another way, pass it on. The run ends
                // its window early and still reports.
                self.child.signal(libc::SIGINT);
                if self.child.wait_for(GRACE)?.is_none() {
                    self.child.kill()?;
                }
                return Err(ScenarioError::Interrupted);
            }
            if Instant::now() >= deadline {
                self.child.signal(libc::SIGTERM);
                if self.child.wait_for(GRACE)?.is_none() {
                    self.child.kill()?;
                }
                return Err(ScenarioError::Loadgen(format!(
                    "sstp-loadgen did not finish within {:.0} s and was stopped:\n{}",
                    self.deadline.as_secs_f64(),
                    tail_of_file(&self.log, 20)
                )));
            }
            // Back at once when the child exits; otherwise now and then
            // for the interrupt and the deadline.
            if let Some(status) = self.child.wait_for(INTERRUPT_CHECK)? {
                break status;
            }
        };
        // 0: success; 1: too many failures (the report says which).
        if !matches!(status.code(), Some(0 | 1)) {
            return Err(ScenarioError::Loadgen(format!(
                "sstp-loadgen exited with {status}:\n{}",
                tail_of_file(&self.log, 20)
            )));
        }
        let text = fs::read_to_string(&self.json).map_err(|e| {
            ScenarioError::Loadgen(format!(
                "sstp-loadgen wrote no report ({e}):\n{}",
                tail_of_file(&self.log, 20)
            ))
        })?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| ScenarioError::Loadgen(format!("reading its report: {e}")))?;
        if report.schema != sstp_loadgen::SCHEMA
            || report.schema_version != sstp_loadgen::SCHEMA_VERSION
        {
            return Err(ScenarioError::Loadgen(format!(
                "report schema {} version {}, expected {} version {}",
                report.schema,
                report.schema_version,
                sstp_loadgen::SCHEMA,
                sstp_loadgen::SCHEMA_VERSION
            )));
        }
        Ok(report)
    }
}

/// `sstp-loadgen peer` next to the server: reflects, counts and streams
/// the traffic modes' datagrams. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct PeerProcess {
    child: ChildGuard,
    pub bind: SocketAddr,
    pub threads: usize,
}

impl PeerProcess {
    /// Starts the peer in `ns` and waits (bounded) until it listens.
    pub fn start(
        binary: &Path,
        ns: &NetNs,
        bind: SocketAddr,
        threads: usize,
        log: &Path,
    ) -> Result<PeerProcess, ScenarioError> {
        let mut command = ns.command(binary);
        command.args([
            "peer",
            "--bind",
            &bind.to_string(),
            "--threads",
            &threads.to_string(),
        ]);
        let mut child = spawn_logged(command, log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if fs::read_to_string(log).is_ok_and(|t| t.contains("listening on")) {
                return Ok(PeerProcess {
                    child,
                    bind,
                    threads,
                });
            }
            if let Some(status) = child.try_wait()? {
                return Err(ScenarioError::Setup(format!(
                    "sstp-loadgen peer exited ({status}):\n{}",
                    tail_of_file(log, 10)
                )));
            }
            if Instant::now() >= deadline {
                return Err(ScenarioError::Setup(format!(
                    "sstp-loadgen peer did not start listening:\n{}",
                    tail_of_file(log, 10)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.stop(Duration::from_secs(2));
    }
}

/// A device announcement of `sstp-loadgen tun` on its standard error:
/// `tunnel sstpc0 10.99.0.2 -> 10.99.0.1 mtu 1400 (session 0)`.
pub fn parse_tunnel_line(line: &str) -> Option<Tunnel> {
    let words: Vec<&str> = line.strip_prefix("tunnel ")?.split_whitespace().collect();
    let [ifname, address, "->", gateway, "mtu", mtu, "(session", session] = words[..] else {
        return None;
    };
    Some(Tunnel {
        session: session.strip_suffix(')')?.parse().ok()?,
        ifname: ifname.into(),
        address: address.parse::<std::net::Ipv4Addr>().ok()?.to_string(),
        gateway: gateway.into(),
        mtu: mtu.parse().ok()?,
        address6: None,
        offload: None,
    })
}

/// The mode of a bulk run in `direction` with `flows` flows per session
/// (the peer at the gateway unless the connection names one), the peer's
/// rate following what arrives with `follow`.
pub fn bulk(direction: Direction, flows: u16, follow: bool) -> Mode {
    Mode::Bulk {
        to: None,
        direction,
        flows,
        follow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(seconds: &str) -> ChildGuard {
        ChildGuard::new(Command::new("sleep").arg(seconds).spawn().unwrap())
    }

    #[test]
    fn a_wait_ends_when_the_child_exits_not_at_its_timeout() {
        let mut child = sleeper("0.2");
        assert!(child.exited.is_some(), "this kernel has pidfd_open");
        let started = Instant::now();
        let status = child.wait_for(Duration::from_secs(30)).unwrap();
        assert!(status.unwrap().success());
        assert!(started.elapsed() < Duration::from_secs(20));
        // Reaped: nothing left to wait for.
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn a_wait_for_a_running_child_ends_at_its_timeout() {
        for mut child in [sleeper("30"), {
            let mut without_pidfd = sleeper("30");
            without_pidfd.exited = None;
            without_pidfd
        }] {
            let started = Instant::now();
            assert_eq!(child.wait_for(Duration::from_millis(150)).unwrap(), None);
            assert!(started.elapsed() >= Duration::from_millis(150));
            assert!(child.stop(Duration::from_secs(5)).is_ok());
        }
    }

    fn connection() -> Connection {
        Connection {
            target: "127.0.0.1:4443".parse().unwrap(),
            user: "bench".into(),
            password: "pw".into(),
            ca: None,
            sni: None,
            peer: None,
        }
    }

    #[test]
    fn arguments_name_every_setting_and_parse_as_sstp_loadgen_does() {
        use clap::Parser as _;
        let mut spec = LoadSpec::new(
            bulk(Direction::Down, 1, true),
            64,
            Duration::from_millis(2500),
        );
        spec.payload = Some(64);
        spec.setup_concurrency = Some(32);
        let placement = Placement {
            workers: 1,
            cpus: Some(vec![1]),
        };
        let args = load_args(&spec, &connection(), &placement, Path::new("/tmp/r.json"));
        assert_eq!(
            args.join(" "),
            "bulk --direction down --follow --target 127.0.0.1:4443 --insecure --user bench \
             --password pw --sessions 64 --duration 2500ms --workers 1 --cpus 1 --payload 64 \
             --setup-concurrency 32 --setup-timeout 20000ms --drain 1000ms \
             --close-timeout 5000ms --progress never --json /tmp/r.json"
        );
        // The load generator's own parser takes them and builds the same run.
        let cli = sstp_loadgen::cli::Cli::try_parse_from(
            std::iter::once("sstp-loadgen".to_string()).chain(args),
        )
        .unwrap();
        let (config, outputs) = cli.command.load_config().unwrap().unwrap();
        assert_eq!(config.sessions, 64);
        assert_eq!(config.duration, Duration::from_millis(2500));
        assert_eq!(config.payload(), 64);
        assert_eq!(config.setup_concurrency, 32);
        assert_eq!(
            config.mode,
            Mode::Bulk {
                to: None,
                direction: Direction::Down,
                flows: 1,
                follow: true,
            }
        );
        assert_eq!(outputs.json.as_deref(), Some(Path::new("/tmp/r.json")));
        assert!(!outputs.progress);
    }

    #[test]
    fn a_remote_peer_ca_and_churn_hold_are_passed_on() {
        let mut c = connection();
        c.peer = Some("192.0.2.1:9100".parse().unwrap());
        c.ca = Some("/etc/ca.pem".into());
        c.sni = Some("vpn.example.com".into());
        let placement = Placement {
            workers: 2,
            cpus: None,
        };
        let udp = LoadSpec::new(
            Mode::Udp {
                to: None,
                reflect: true,
                flows: 1,
            },
            8,
            Duration::from_secs(3),
        );
        let args = load_args(&udp, &c, &placement, Path::new("r.json")).join(" ");
        assert!(
            args.starts_with("udp --to 192.0.2.1:9100 --target"),
            "{args}"
        );
        assert!(
            args.contains("--ca /etc/ca.pem --sni vpn.example.com"),
            "{args}"
        );
        assert!(args.contains("--workers 2 --no-pin"), "{args}");
        let churn = LoadSpec::new(
            Mode::Churn {
                hold: Duration::ZERO,
            },
            64,
            Duration::from_secs(5),
        );
        let args = load_args(&churn, &c, &placement, Path::new("r.json")).join(" ");
        assert!(args.starts_with("churn --hold 0ms --target"), "{args}");
        assert!(!args.contains("--to"), "churn has no peer: {args}");
    }

    #[test]
    fn tunnel_announcements_parse() {
        let t = parse_tunnel_line("tunnel sstpc12 10.99.0.14 -> 10.99.0.1 mtu 1400 (session 12)")
            .unwrap();
        assert_eq!(
            (t.ifname.as_str(), t.address.as_str(), t.gateway.as_str()),
            ("sstpc12", "10.99.0.14", "10.99.0.1")
        );
        assert_eq!((t.mtu, t.session), (1400, 12));
        assert_eq!(
            parse_tunnel_line("tunnel sstpc0 (session 0) could not"),
            None
        );
        assert_eq!(parse_tunnel_line("[   1.0s] run"), None);
    }

    #[test]
    fn deadlines_grow_with_sessions_and_duration() {
        let small = LoadSpec::new(Mode::Idle, 10, Duration::from_secs(5));
        assert_eq!(small.deadline(), Duration::from_secs(20 + 5 + 1 + 5 + 20));
        let big = LoadSpec::new(Mode::Idle, 4000, Duration::from_secs(5));
        assert_eq!(big.deadline(), Duration::from_secs(80 + 5 + 1 + 5 + 20));
    }
}
