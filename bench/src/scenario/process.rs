//! The real `sstpd` binary, started with a generated configuration inside
//! a network namespace of its own, and what it costs: CPU time from the
//! process's CPU clock (all threads, in nanoseconds) split into user and
//! system time as `/proc/<pid>/stat` splits it, resident memory from
//! `/proc/<pid>/status` or `statm` ([`ProcessWatch`]).

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sstpd::app::control::protocol::{exchange, Answer, Request, Stats};
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::{
    generate_self_signed, SelfSignedKey, SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE,
};
use sstpd::worker::control::SessionInfo;

/// Prefix of the namespaces sstp-bench creates (`<prefix>-<pid>-<n>`);
/// [`NetNs::sweep_stale`] with it removes those of runs that crashed.
pub const NAMESPACE_PREFIX: &str = "sstp-bench";

use super::ScenarioError;

/// Which configuration sstpd starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerConfig {
    /// A file generated from [`SstpdOptions`] (certificate, users, pool,
    /// workers).
    Generated,
    /// No configuration file: sstpd's embedded defaults (listen
    /// 127.0.0.1:4443, user `demo` with this password through
    /// `SSTPD_DEMO_PASSWORD`, a self-signed certificate it generates).
    /// The state directory is a temporary directory (`STATE_DIRECTORY`,
    /// `XDG_STATE_HOME` and `HOME` point there), so nothing is written to
    /// `/var/lib/sstpd`.
    EmbeddedDefaults { demo_password: String },
}

/// How to start sstpd.
#[derive(Clone, Debug)]
pub struct SstpdOptions {
    /// The binary (`target/release/sstpd` for measurements).
    pub binary: PathBuf,
    pub config: ServerConfig,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// `server.pin_workers`: worker n on core n (several servers on one
    /// machine would all sit on core 0).
    pub pin_workers: bool,
    /// Listen address inside the namespace.
    pub listen: SocketAddr,
    /// Local users (name, password).
    pub users: Vec<(String, String)>,
    /// The IPv4 pool (`10.99.0.0/20` holds 4093 clients).
    pub ipv4_pool: String,
    pub ipv4_gateway: String,
    pub certificate: SelfSignedKey,
    /// `server.max_sessions`.
    pub max_sessions: usize,
    /// `logging.level`.
    pub log_level: String,
    /// `ipv4.dns = [gateway, SECOND_RESOLVER]`: two resolvers, as
    /// deployments configure them. Clients ask for a primary and a
    /// secondary DNS server as Windows does (RFC 1877); a server with fewer
    /// must reject the request first, one more IPCP exchange per session.
    pub dns_servers: bool,
    /// `ipv6.enabled`: IPv6CP and a /64 per session from `fd99::/48`.
    pub ipv6: bool,
    /// Extra TOML appended to the generated file (sections not set above).
    pub extra_toml: String,
    /// `tun.offload`, if not sstpd's default.
    pub tun_offload: Option<String>,
    /// `tls.ktls`.
    pub ktls: sstpd::config::KtlsMode,
    /// Bound on startup (listening) and on a graceful stop.
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
}

/// The secondary DNS server handed to clients (TEST-NET-1, RFC 5737): no
/// scenario resolves names, so nothing is ever sent to it.
pub const SECOND_RESOLVER: &str = "192.0.2.53";

impl SstpdOptions {
    pub fn new(binary: PathBuf) -> SstpdOptions {
        SstpdOptions {
            binary,
            config: ServerConfig::Generated,
            workers: 0,
            pin_workers: true,
            listen: "127.0.0.1:4443".parse().expect("static address"),
            users: vec![("bench".into(), "bench-password".into())],
            ipv4_pool: "10.99.0.0/20".into(),
            ipv4_gateway: "10.99.0.1".into(),
            certificate: SelfSignedKey::EcdsaP256,
            max_sessions: 10_000,
            log_level: "warn".into(),
            dns_servers: true,
            ipv6: false,
            extra_toml: String::new(),
            tun_offload: None,
            ktls: sstpd::config::KtlsMode::Auto,
            start_timeout: Duration::from_secs(15),
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// The embedded defaults with `demo_password`, listening where they
    /// do.
    pub fn embedded_defaults(binary: PathBuf, demo_password: String) -> SstpdOptions {
        // The embedded defaults are the defaults plus the demo user.
        let defaults = sstpd::config::Config::default();
        let mut options = SstpdOptions::new(binary);
        options.users = vec![(sstpd::config::DEMO_USER.into(), demo_password.clone())];
        options.config = ServerConfig::EmbeddedDefaults { demo_password };
        options.listen = defaults.server.listen[0];
        options.ipv4_pool = defaults.ipv4.pool.to_string();
        options.ipv4_gateway = defaults.ipv4.gateway.to_string();
        options.dns_servers = false;
        options.workers = defaults.server.workers;
        options
    }

    /// The configuration file for `dir` (certificate and key in `dir`).
    pub fn config_toml(&self, dir: &Path) -> String {
        let quote = |s: &str| format!("{:?}", s);
        let mut users = String::new();
        for (name, password) in &self.users {
            users.push_str(&format!(
                "\n[[users.local]]\nname = {}\npassword = {}\n",
                quote(name),
                quote(password)
            ));
        }
        format!(
            "# Generated by sstp-bench.\n\
             [server]\n\
             listen = [{listen}]\n\
             workers = {workers}\n\
             pin_workers = {pin_workers}\n\
             max_sessions = {max_sessions}\n\
             # The load generator sets up sessions from one address, many at\n\
             # once: the pre-authentication caps are the global bound.\n\
             max_preauth_sessions = {max_sessions}\n\
             max_preauth_per_source = {max_sessions}\n\
             state_dir = {state}\n\
             shutdown_timeout = \"2s\"\n\
             \n\
             [tls]\n\
             certificate = {cert}\n\
             private_key = {key}\n\
             ktls = {ktls}\n\
             \n\
             [ipv4]\n\
             pool = {pool}\n\
             gateway = {gateway}\n\
             {dns}\
             \n\
             [ipv6]\n\
             enabled = {ipv6}\n\
             \n\
             [tun]\n\
             name = \"sstp0\"\n\
             {offload}\n\
             [logging]\n\
             level = {level}\n\
             format = \"text\"\n\
             \n\
             [control]\n\
             socket = {control}\n\
             {users}\n{extra}\n",
            listen = quote(&self.listen.to_string()),
            workers = self.workers,
            pin_workers = self.pin_workers,
            max_sessions = self.max_sessions,
            state = quote(&dir.display().to_string()),
            cert = quote(&dir.join("cert.pem").display().to_string()),
            key = quote(&dir.join("key.pem").display().to_string()),
            ktls = quote(self.ktls.as_str()),
            pool = quote(&self.ipv4_pool),
            gateway = quote(&self.ipv4_gateway),
            dns = if self.dns_servers {
                format!(
                    "dns = [{}, {}]\n",
                    quote(&self.ipv4_gateway),
                    quote(SECOND_RESOLVER)
                )
            } else {
                String::new()
            },
            level = quote(&self.log_level),
            control = quote(&dir.join(CONTROL_SOCKET).display().to_string()),
            ipv6 = self.ipv6,
            extra = self.extra_toml,
            offload = self
                .tun_offload
                .as_ref()
                .map(|mode| format!("offload = {}\n", quote(mode)))
                .unwrap_or_default(),
        )
    }
}

/// User and system CPU time of all threads, in seconds, from
/// `/proc/<pid>/stat`: counted in clock ticks (10 ms here), so a short
/// interval reads them coarsely. They give the split of the CPU clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTicks {
    pub user_seconds: f64,
    pub system_seconds: f64,
}

/// One reading of a process's counters: a [`Reading::Full`] one has them
/// all, a [`Reading::Light`] one only the CPU clock and the resident
/// memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessSample {
    /// CPU time of all threads, including those that have ended, from the
    /// process's CPU clock (`clock_getcpuclockid`): nanoseconds, so a
    /// burst of a few milliseconds is read whole. `None` where the clock
    /// could not be read.
    pub clock_seconds: Option<f64>,
    /// `/proc/<pid>/stat`'s ticks (full readings).
    pub ticks: Option<CpuTicks>,
    /// Threads now (full readings).
    pub threads: Option<u64>,
    /// Resident set size now (VmRSS, or `statm`'s resident pages).
    pub rss_bytes: u64,
    /// Its peak (VmHWM; full readings).
    pub rss_peak_bytes: Option<u64>,
    pub at: Instant,
}

impl ProcessSample {
    /// All the CPU time the process has used: the CPU clock's reading,
    /// the ticks' sum without one, `None` with neither.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.clock_seconds
            .or(self.ticks.map(|t| t.user_seconds + t.system_seconds))
    }

    /// The CPU time used between `earlier` and this reading (0 where
    /// either has none; a full reading always has it).
    pub fn cpu_since(&self, earlier: &ProcessSample) -> f64 {
        (self.cpu_seconds().unwrap_or(0.0) - earlier.cpu_seconds().unwrap_or(0.0)).max(0.0)
    }

    /// A full reading of process `pid` now.
    pub fn read(pid: u32) -> Result<ProcessSample, ScenarioError> {
        ProcessWatch::open(pid).read(Reading::Full)
    }
}

/// How much of a process a [`ProcessWatch`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The CPU clock and `statm`'s resident memory: two system calls.
    Light,
    /// Also `/proc/<pid>/stat` (ticks, threads) and `status` (VmRSS,
    /// VmHWM).
    Full,
}

/// Reads one process's counters again and again, cheaply: its CPU clock's
/// id is looked up once, and its `/proc` files are opened once and read
/// again from the start with one `pread` each. (A fresh `read_to_string`
/// costs an open, a `statx`, up to six reads of growing size and a close
/// per file, and glibc checks a CPU clock with `clock_getres` before every
/// reading; [`super::sampler`] reads ten times a second while latency is
/// measured.)
#[derive(Debug)]
pub struct ProcessWatch {
    pid: u32,
    clock: Option<libc::clockid_t>,
    stat: Option<fs::File>,
    statm: Option<fs::File>,
    status: Option<fs::File>,
    buf: Vec<u8>,
    ticks_per_second: u64,
    page_size: u64,
}

impl ProcessWatch {
    /// Opens what there is to read of process `pid` (nothing, for a pid
    /// that does not exist: every reading is then an error).
    pub fn open(pid: u32) -> ProcessWatch {
        let file = |name: &str| fs::File::open(format!("/proc/{pid}/{name}")).ok();
        ProcessWatch {
            pid,
            clock: process_cpu_clock_id(pid),
            stat: file("stat"),
            statm: file("statm"),
            status: file("status"),
            buf: vec![0; 4096],
            ticks_per_second: clock_ticks(),
            page_size: sysconf_or(libc::_SC_PAGESIZE, 4096),
        }
    }

    /// Reads the process now; an error once it is gone.
    pub fn read(&mut self, reading: Reading) -> Result<ProcessSample, ScenarioError> {
        let pid = self.pid;
        let clock_seconds = self.clock.and_then(crate::reference::cpu_clock_seconds);
        if reading == Reading::Light {
            let statm = read_again(self.statm.as_ref(), &mut self.buf)
                .map_err(|e| ScenarioError::Proc(format!("/proc/{pid}/statm: {e}")))?;
            return Ok(ProcessSample {
                clock_seconds,
                ticks: None,
                threads: None,
                rss_bytes: parse_statm(statm, self.page_size)?,
                rss_peak_bytes: None,
                at: Instant::now(),
            });
        }
        let stat = read_again(self.stat.as_ref(), &mut self.buf)
            .map_err(|e| ScenarioError::Proc(format!("/proc/{pid}/stat: {e}")))?
            .to_owned();
        let status = read_again(self.status.as_ref(), &mut self.buf)
            .map_err(|e| ScenarioError::Proc(format!("/proc/{pid}/status: {e}")))?;
        let sample = parse_proc(&stat, status, self.ticks_per_second)?;
        Ok(ProcessSample {
            clock_seconds,
            ..sample
        })
    }
}

/// `file`'s whole content, read again from its start into `buf` (grown
/// until it holds it all). A `/proc` file makes its content anew for a
/// read at offset 0.
pub(crate) fn read_again<'b>(
    file: Option<&fs::File>,
    buf: &'b mut Vec<u8>,
) -> std::io::Result<&'b str> {
    use std::os::unix::fs::FileExt as _;
    let file = file.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    loop {
        let n = file.read_at(buf, 0)?;
        if n < buf.len() {
            if n == 0 {
                // A process that has exited leaves its files empty.
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            return std::str::from_utf8(&buf[..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        let len = buf.len();
        buf.resize(len * 2, 0);
    }
}

/// Clock ticks per second, the unit of `/proc`'s CPU times.
pub(super) fn clock_ticks() -> u64 {
    sysconf_or(libc::_SC_CLK_TCK, 100)
}

fn sysconf_or(name: libc::c_int, default: u64) -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 {
        value as u64
    } else {
        default
    }
}

/// The id of process `pid`'s CPU clock; `None` if there is no such
/// process. Linux lets any process read another's (the clock is the one
/// `/proc/<pid>/stat` rounds to ticks), threads that have ended included.
fn process_cpu_clock_id(pid: u32) -> Option<libc::clockid_t> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes one clockid_t through a valid pointer.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    Some(clock)
}

/// CPU seconds of process `pid` from its CPU clock; `None` if it is gone.
#[cfg(test)]
fn process_cpu_clock(pid: u32) -> Option<f64> {
    process_cpu_clock_id(pid).and_then(crate::reference::cpu_clock_seconds)
}

/// The resident memory in a `statm` line (its second field, in pages of
/// `page_size` bytes). A process that has exited and not been reaped yet
/// reads all zeros: an error, as a gone process is.
pub fn parse_statm(statm: &str, page_size: u64) -> Result<u64, ScenarioError> {
    let pages: Vec<u64> = statm
        .split_whitespace()
        .take(2)
        .map_while(|pages| pages.parse().ok())
        .collect();
    match pages[..] {
        [0, _] => Err(ScenarioError::Proc("the process has exited".into())),
        [_, resident] => Ok(resident * page_size),
        _ => Err(ScenarioError::Proc(format!(
            "unexpected statm line {statm:?}"
        ))),
    }
}

/// Parses a stat line and a status file (`ticks`: clock ticks per second).
pub fn parse_proc(stat: &str, status: &str, ticks: u64) -> Result<ProcessSample, ScenarioError> {
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses: the fields we want follow the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| ScenarioError::Proc(format!("unexpected stat line {stat:?}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15,
    // num_threads 20.
    let field = |n: usize| -> Result<u64, ScenarioError> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ScenarioError::Proc(format!("stat field {n} missing in {stat:?}")))
    };
    let kib = |key: &str| -> Result<u64, ScenarioError> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
            .ok_or_else(|| ScenarioError::Proc(format!("{key} missing in status")))
    };
    Ok(ProcessSample {
        clock_seconds: None,
        ticks: Some(CpuTicks {
            user_seconds: field(14)? as f64 / ticks as f64,
            system_seconds: field(15)? as f64 / ticks as f64,
        }),
        threads: Some(field(20)?),
        rss_bytes: kib("VmRSS:")?,
        rss_peak_bytes: Some(kib("VmHWM:")?),
        at: Instant::now(),
    })
}

/// The control socket's file name in the server's directory (`sstpctl`'s
/// protocol: the scenarios read the server's gauges through it).
pub const CONTROL_SOCKET: &str = "control.sock";

/// A running sstpd in its own namespace. Stopped (SIGTERM, then SIGKILL
/// after the stop timeout) and the namespace removed when dropped.
#[derive(Debug)]
pub struct SstpdProcess {
    child: Option<Child>,
    pid: u32,
    listen: SocketAddr,
    certificate: (PathBuf, PathBuf),
    dir: tempfile::TempDir,
    log: PathBuf,
    stop_timeout: Duration,
    start_timeout: Duration,
    launch: Launch,
    // Dropped last: the process must be gone before its namespace.
    ns: NetNs,
}

/// How sstpd is started: again the same way on a restart.
#[derive(Debug, Clone)]
struct Launch {
    binary: PathBuf,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl Launch {
    /// Starts sstpd in `ns` (`ip netns exec` enters the namespace and
    /// execs the program, so the child's pid is sstpd's), its output
    /// appended to `log`.
    fn spawn(&self, ns: &NetNs, log: &Path) -> Result<Child, ScenarioError> {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(ScenarioError::Io)?;
        ns.command(&self.binary)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env_remove("SSTPD_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(ScenarioError::Io)?)
            .stderr(log_file)
            .spawn()
            .map_err(ScenarioError::Io)
    }
}

impl SstpdProcess {
    /// Creates a namespace, writes a certificate and the configuration,
    /// starts `sstpd --config FILE` in the namespace and waits until it
    /// accepts TCP connections on its listen address.
    pub fn start(options: &SstpdOptions) -> Result<SstpdProcess, ScenarioError> {
        if !options.binary.exists() {
            return Err(ScenarioError::Binary(options.binary.clone()));
        }
        SstpdProcess::start_in(new_namespace()?, options)
    }

    /// [`start`](Self::start) in `ns`, which something sstpd needs may
    /// already run in (FreeRADIUS); the namespace is removed with the
    /// process.
    pub fn start_in(ns: NetNs, options: &SstpdOptions) -> Result<SstpdProcess, ScenarioError> {
        if !options.binary.exists() {
            return Err(ScenarioError::Binary(options.binary.clone()));
        }
        let dir = tempfile::Builder::new()
            .prefix("sstp-bench-")
            .tempdir()
            .map_err(ScenarioError::Io)?;
        let log = dir.path().join("sstpd.log");
        let mut launch = Launch {
            binary: options.binary.clone(),
            args: Vec::new(),
            envs: Vec::new(),
        };
        let certificate = match &options.config {
            ServerConfig::Generated => {
                let cert = generate_self_signed(options.certificate, &["localhost", "127.0.0.1"])
                    .map_err(|e| ScenarioError::Setup(e.to_string()))?;
                let files = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                fs::write(&files.0, &cert.cert_pem).map_err(ScenarioError::Io)?;
                fs::write(&files.1, &cert.key_pem).map_err(ScenarioError::Io)?;
                let config = dir.path().join("sstpd.toml");
                fs::write(&config, options.config_toml(dir.path())).map_err(ScenarioError::Io)?;
                launch.args = vec!["--config".into(), config.into_os_string()];
                files
            }
            ServerConfig::EmbeddedDefaults { demo_password } => {
                launch.envs = vec![
                    (
                        sstpd::config::DEMO_PASSWORD_ENV.into(),
                        demo_password.into(),
                    ),
                    ("STATE_DIRECTORY".into(), dir.path().into()),
                    ("XDG_STATE_HOME".into(), dir.path().into()),
                    ("HOME".into(), dir.path().into()),
                ];
                (
                    dir.path().join(SELF_SIGNED_CERT_FILE),
                    dir.path().join(SELF_SIGNED_KEY_FILE),
                )
            }
        };
        let child = launch.spawn(&ns, &log)?;
        let pid = child.id();
        let mut process = SstpdProcess {
            child: Some(child),
            pid,
            listen: options.listen,
            certificate,
            dir,
            log,
            stop_timeout: options.stop_timeout,
            start_timeout: options.start_timeout,
            launch,
            ns,
        };
        process.wait_listening(options.start_timeout)?;
        Ok(process)
    }

    /// Kills sstpd at once (SIGKILL: no Call Disconnect, no accounting
    /// Stop or Accounting-Off, as a crash) and reaps it; the namespace,
    /// the TUN device's absence and the directory stay for
    /// [`restart`](Self::restart).
    pub fn kill_hard(&mut self) -> Result<ExitStatus, ScenarioError> {
        let Some(mut child) = self.child.take() else {
            return Err(ScenarioError::Setup("sstpd was already stopped".into()));
        };
        let _ = child.kill();
        child.wait().map_err(ScenarioError::Io)
    }

    /// Starts sstpd again, same namespace, configuration and certificate
    /// (after [`kill_hard`](Self::kill_hard) or a stop), and waits until
    /// it accepts connections.
    pub fn restart(&mut self) -> Result<(), ScenarioError> {
        if self.child.is_some() {
            return Err(ScenarioError::Setup("sstpd is still running".into()));
        }
        let child = self.launch.spawn(&self.ns, &self.log)?;
        self.pid = child.id();
        self.child = Some(child);
        self.wait_listening(self.start_timeout)
    }

    /// Whether sstpd runs (started and not yet exited).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && matches!(self.try_wait(), Ok(None))
    }

    /// Every session the server holds, through its control socket.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, ScenarioError> {
        let socket = self.dir().join(CONTROL_SOCKET);
        match exchange(&socket, &Request::Sessions, Duration::from_secs(5)) {
            Ok(Answer::Sessions(list)) => Ok(list.sessions),
            Ok(other) => Err(ScenarioError::Proc(format!(
                "the control socket answered {other:?} to sessions"
            ))),
            Err(e) => Err(ScenarioError::Proc(e)),
        }
    }

    fn wait_listening(&mut self, timeout: Duration) -> Result<(), ScenarioError> {
        let deadline = Instant::now() + timeout;
        let addr = self.listen;
        loop {
            if let Some(status) = self.try_wait()? {
                return Err(ScenarioError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(30),
                });
            }
            let connected = self
                .ns
                .try_run(move || TcpStream::connect_timeout(&addr, Duration::from_millis(200)))
                .map_err(|e| ScenarioError::Setup(e.to_string()))?;
            if connected.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ScenarioError::NotListening {
                    addr,
                    log: self.log_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, ScenarioError> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(ScenarioError::Io),
            None => Ok(None),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where sstpd listens (inside [`SstpdProcess::namespace`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn namespace(&self) -> &NetNs {
        &self.ns
    }

    /// The certificate and key sstpd serves, for references that must pay
    /// for the same signatures.
    pub fn certificate_files(&self) -> (PathBuf, PathBuf) {
        self.certificate.clone()
    }

    /// The temporary directory of this server (configuration, state, log);
    /// removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's counters and gauges now, through its control socket.
    pub fn stats(&self) -> Result<Stats, ScenarioError> {
        let socket = self.dir().join(CONTROL_SOCKET);
        match exchange(&socket, &Request::Stats, Duration::from_secs(5)) {
            Ok(Answer::Stats(stats)) => Ok(stats),
            Ok(other) => Err(ScenarioError::Proc(format!(
                "the control socket answered {other:?} to stats"
            ))),
            Err(e) => Err(ScenarioError::Proc(e)),
        }
    }

    /// `sstpctl drain --over OVER`: the node refuses new connections,
    /// `/health` answers 503, and its sessions are disconnected spread
    /// over `over`.
    pub fn drain(&self, over: Duration) -> Result<(), ScenarioError> {
        let socket = self.dir().join(CONTROL_SOCKET);
        let request = Request::Drain {
            over_ms: Some(over.as_millis() as u64),
        };
        match exchange(&socket, &request, Duration::from_secs(5)) {
            Ok(Answer::Drain(_)) => Ok(()),
            Ok(other) => Err(ScenarioError::Proc(format!(
                "the control socket answered {other:?} to drain"
            ))),
            Err(e) => Err(ScenarioError::Proc(e)),
        }
    }

    /// The process's counters now.
    pub fn sample(&self) -> Result<ProcessSample, ScenarioError> {
        ProcessSample::read(self.pid)
    }

    /// The file descriptors the process has open now.
    pub fn open_fds(&self) -> Result<u64, ScenarioError> {
        open_fds(self.pid)
    }

    /// The last `lines` lines of sstpd's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log, lines)
    }

    /// Graceful stop: SIGTERM, then wait up to the stop timeout; SIGKILL
    /// if it is still running then. Returns the exit status.
    pub fn stop(mut self) -> Result<ExitStatus, ScenarioError> {
        self.terminate()
    }

    /// [`stop`](Self::stop), keeping the namespace until this is dropped
    /// (for what still runs in it: sstpd's last accounting goes to a
    /// FreeRADIUS there).
    pub fn terminate(&mut self) -> Result<ExitStatus, ScenarioError> {
        let Some(mut child) = self.child.take() else {
            return Err(ScenarioError::Setup("sstpd was already stopped".into()));
        };
        if let Some(status) = child.try_wait().map_err(ScenarioError::Io)? {
            return Ok(status);
        }
        // SAFETY: kill(2) on our own child's pid, which has not been
        // reaped yet (so the pid cannot have been reused).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + self.stop_timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().map_err(ScenarioError::Io)? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().map_err(ScenarioError::Io)?;
        Err(ScenarioError::StopTimeout {
            status: status.to_string(),
            log: self.log_tail(30),
        })
    }
}

impl Drop for SstpdProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The file descriptors process `pid` has open (the entries of
/// `/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> Result<u64, ScenarioError> {
    let entries = fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| ScenarioError::Proc(format!("/proc/{pid}/fd: {e}")))?;
    Ok(entries.filter(Result::is_ok).count() as u64)
}

/// A fresh namespace for a server (`sstp-bench-<pid>-<n>`).
pub fn new_namespace() -> Result<NetNs, ScenarioError> {
    NetNs::new(NAMESPACE_PREFIX).map_err(|e| ScenarioError::Setup(e.to_string()))
}

/// The last `lines` lines of a log file (of its last 16 KiB).
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        let len = file.metadata().map_or(0, |m| m.len());
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
        let _ = file.read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The sstpd binary to measure: `$SSTPD_BIN`, else `target/release/sstpd`
/// in this workspace, else (for tests, with `allow_debug`)
/// `target/debug/sstpd`.
pub fn locate_sstpd(allow_debug: bool) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SSTPD_BIN") {
        return Some(PathBuf::from(path));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut profiles = vec!["release"];
    if allow_debug {
        profiles.push("debug");
    }
    profiles
        .into_iter()
        .map(|p| target.join(p).join("sstpd"))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsstpd\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  600000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   10000 kB\nThreads:\t3\n";

    #[test]
    fn proc_files_are_parsed_past_odd_command_names() {
        // Field 2 with a space and a parenthesis; utime 250, stime 50
        // ticks, 3 threads.
        let stat = "4242 (ss) tpd) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 \
                    12345 614400000 2500 18446744073709551615";
        let sample = parse_proc(stat, STATUS, 100).unwrap();
        let ticks = sample.ticks.unwrap();
        assert_eq!((ticks.user_seconds, ticks.system_seconds), (2.5, 0.5));
        assert_eq!(sample.cpu_seconds(), Some(3.0));
        assert_eq!(sample.threads, Some(3));
        assert_eq!(sample.rss_bytes, 10000 * 1024);
        assert_eq!(sample.rss_peak_bytes, Some(12345 * 1024));
    }

    #[test]
    fn truncated_proc_files_are_errors() {
        assert!(parse_proc("4242 (sstpd) S 1 2", STATUS, 100).is_err());
        assert!(parse_proc("no parenthesis", STATUS, 100).is_err());
        let stat = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1";
        assert!(parse_proc(stat, "VmRSS:\t1 kB\n", 100).is_err());
        assert!(parse_proc(stat, STATUS, 100).is_ok());
    }

    #[test]
    fn our_own_process_can_be_sampled() {
        let sample = ProcessSample::read(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 0 && sample.rss_peak_bytes >= Some(sample.rss_bytes));
        assert!(sample.threads >= Some(1));
        assert!(sample.ticks.is_some() && sample.clock_seconds.is_some());
    }

    #[test]
    fn statm_gives_the_resident_pages() {
        assert_eq!(
            parse_statm("1500 300 100 10 0 200 0\n", 4096).unwrap(),
            300 * 4096
        );
        // Exited, not reaped yet: all zeros.
        assert!(parse_statm("0 0 0 0 0 0 0\n", 4096).is_err());
        assert!(parse_statm("", 4096).is_err());
        assert!(parse_statm("12 x", 4096).is_err());
    }

    #[test]
    fn a_watch_reads_its_open_files_anew() {
        let mut watch = ProcessWatch::open(std::process::id());
        let before = watch.read(Reading::Full).unwrap();
        // 50 ms of CPU and 64 MiB made resident.
        let busy_until = Instant::now() + Duration::from_millis(50);
        let mut spins = 0u64;
        while Instant::now() < busy_until {
            spins = std::hint::black_box(spins + 1);
        }
        let memory = vec![1u8; 64 << 20];
        let light = watch.read(Reading::Light).unwrap();
        let full = watch.read(Reading::Full).unwrap();
        std::hint::black_box(&memory);
        // A light reading: the clock and the resident memory, nothing else.
        assert_eq!(
            (light.ticks, light.threads, light.rss_peak_bytes),
            (None, None, None)
        );
        assert!(light.clock_seconds.unwrap() >= before.clock_seconds.unwrap() + 0.04);
        assert!(light.cpu_since(&before) >= 0.04 && before.cpu_since(&light) == 0.0);
        assert!(
            light.rss_bytes >= before.rss_bytes + (60 << 20),
            "{before:?} {light:?}"
        );
        // The files were read again, not their first contents kept.
        let ticks = |s: &ProcessSample| s.ticks.map(|t| t.user_seconds + t.system_seconds);
        assert!(ticks(&full) > ticks(&before), "{before:?} {full:?}");
        assert!(full.rss_bytes >= before.rss_bytes + (60 << 20));
        assert!(full.rss_peak_bytes >= Some(full.rss_bytes));
    }

    #[test]
    fn a_watch_of_no_process_reads_nothing() {
        let mut watch = ProcessWatch::open(u32::MAX);
        assert!(watch.read(Reading::Light).is_err());
        assert!(watch.read(Reading::Full).is_err());
    }

    #[test]
    fn a_watched_process_that_exits_reads_as_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let mut watch = ProcessWatch::open(child.id());
        assert!(watch.read(Reading::Light).is_ok());
        child.kill().unwrap();
        // Killed, not yet reaped: its files read as a zombie's.
        std::thread::sleep(Duration::from_millis(100));
        assert!(watch.read(Reading::Light).is_err());
        assert!(watch.read(Reading::Full).is_err());
        child.wait().unwrap();
        assert!(watch.read(Reading::Light).is_err());
        assert!(watch.read(Reading::Full).is_err());
    }

    #[test]
    fn another_process_cpu_clock_reads_below_a_tick() {
        // `sleep` uses well under a 10 ms tick to start: its ticks read
        // 0, its clock does not.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut clock = None;
        for _ in 0..100 {
            clock = process_cpu_clock(pid).filter(|&s| s > 0.0);
            if clock.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let sample = ProcessSample::read(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let clock = clock.expect("the child's CPU clock reads above 0");
        assert!(clock < 1.0, "{clock}");
        assert_eq!(sample.cpu_seconds(), sample.clock_seconds);
        // Reaped: the clock is gone with the process.
        assert_eq!(process_cpu_clock(pid), None);
        assert_eq!(process_cpu_clock(u32::MAX), None);
    }

    #[test]
    fn open_files_are_counted() {
        let before = open_fds(std::process::id()).unwrap();
        let held: Vec<fs::File> = (0..3).map(|_| tempfile::tempfile().unwrap()).collect();
        // Other tests of this process may open files meanwhile: at least ours.
        assert!(open_fds(std::process::id()).unwrap() >= before + 3);
        drop(held);
        assert!(open_fds(u32::MAX).is_err(), "no such process");
    }

    #[test]
    fn generated_configuration_names_every_file_and_user() {
        let mut options = SstpdOptions::new("/bin/sstpd".into());
        options.workers = 2;
        options.ktls = sstpd::config::KtlsMode::Off;
        options.users.push(("quote\"d".into(), "p w".into()));
        let toml = options.config_toml(Path::new("/tmp/x"));
        for needle in [
            "listen = [\"127.0.0.1:4443\"]",
            "workers = 2",
            "state_dir = \"/tmp/x\"",
            "certificate = \"/tmp/x/cert.pem\"",
            "private_key = \"/tmp/x/key.pem\"",
            "pool = \"10.99.0.0/20\"",
            "dns = [\"10.99.0.1\", \"192.0.2.53\"]",
            "name = \"quote\\\"d\"",
            "password = \"p w\"",
        ] {
            assert!(toml.contains(needle), "{needle} missing in\n{toml}");
        }
        // sstpd itself accepts it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sstpd.toml");
        std::fs::write(&path, options.config_toml(dir.path())).unwrap();
        let config = sstpd::config::Config::load(&path).unwrap();
        assert_eq!(config.server.workers, 2);
        assert_eq!(config.tls.ktls, sstpd::config::KtlsMode::Off);
        assert_eq!(config.server.listen, [options.listen]);
        assert_eq!(config.users.local.len(), 2);
        assert_eq!(config.users.local[1].name, "quote\"d");
        assert_eq!(config.tls.certificate, Some(dir.path().join("cert.pem")));
        let dns: Vec<std::net::Ipv4Addr> = ["10.99.0.1", SECOND_RESOLVER]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(config.ipv4.dns, dns);
    }
}
