//! Network namespaces for tests, benchmarks and the one-command demo.
//!
//! A [`NetNs`] is a named namespace (`ip netns add`, so `/run/netns/<name>`
//! exists and `ip netns exec` works) with a unique name
//! `<prefix>-<pid>-<counter>` and `lo` up. Code runs inside it either on a
//! thread that has `setns(2)`-ed into it ([`NetNs::run`]: sockets, TUN
//! devices and io_uring runtimes created there belong to the namespace) or
//! as a child process ([`NetNs::command`]). Dropping the `NetNs` kills the
//! processes started through [`NetNs::spawn_tracked`] and deletes the
//! namespace; failures there are logged, never panics.
//!
//! Everything here needs root (`CAP_SYS_ADMIN` for the mounts `ip netns`
//! makes, `CAP_NET_ADMIN` inside).

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its namespace mounts.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// How long [`create_veth_pair`] waits for the link watcher.
const LINK_READY_TIMEOUT: Duration = Duration::from_secs(3);

/// The interface name limit (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

static NEXT_NAMESPACE: AtomicU32 = AtomicU32::new(0);

/// What went wrong with a namespace.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetNsError {
    /// The prefix is empty or has characters other than `[A-Za-z0-9_.-]`.
    InvalidPrefix(String),
    /// An interface name is empty, longer than 15 bytes, or has bad characters.
    InvalidInterfaceName(String),
    /// `ip` could not be started (iproute2 missing?).
    IpCommandUnavailable(io::Error),
    /// An `ip` command exited unsuccessfully.
    IpCommandFailed {
        /// The arguments given to `ip`.
        args: Vec<String>,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Opening `/run/netns/<name>` failed.
    Open(io::Error),
    /// `setns(2)` failed (needs `CAP_SYS_ADMIN`).
    Setns(io::Error),
    /// Starting a child process failed.
    Spawn(io::Error),
    /// A link did not become operational in time.
    LinkNotReady {
        /// The interface.
        name: String,
    },
}

impl NetNsError {
    /// A short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            NetNsError::InvalidPrefix(_) => "invalid_prefix",
            NetNsError::InvalidInterfaceName(_) => "invalid_interface_name",
            NetNsError::IpCommandUnavailable(_) => "ip_command_unavailable",
            NetNsError::IpCommandFailed { .. } => "ip_command_failed",
            NetNsError::Open(_) => "open_failed",
            NetNsError::Setns(_) => "setns_failed",
            NetNsError::Spawn(_) => "spawn_failed",
            NetNsError::LinkNotReady { .. } => "link_not_ready",
        }
    }
}

impl fmt::Display for NetNsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetNsError::InvalidPrefix(p) => {
                write!(f, "invalid namespace prefix {p:?} (use [A-Za-z0-9_.-])")
            }
            NetNsError::InvalidInterfaceName(n) => write!(f, "invalid interface name {n:?}"),
            NetNsError::IpCommandUnavailable(e) => {
                write!(f, "cannot run `ip` (is iproute2 installed?): {e}")
            }
            NetNsError::IpCommandFailed {
                args,
                status,
                stderr,
            } => write!(
                f,
                "`ip {}` failed ({status}): {}",
                args.join(" "),
                stderr.trim()
            ),
            NetNsError::Open(e) => write!(f, "cannot open the namespace: {e}"),
            NetNsError::Setns(e) => write!(f, "setns into the namespace failed: {e}"),
            NetNsError::Spawn(e) => write!(f, "cannot start the process: {e}"),
            NetNsError::LinkNotReady { name } => {
                write!(f, "link {name} did not become operational in time")
            }
        }
    }
}

impl std::error::Error for NetNsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetNsError::IpCommandUnavailable(e)
            | NetNsError::Open(e)
            | NetNsError::Setns(e)
            | NetNsError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs `ip <args>` and fails with its stderr unless it succeeds.
fn ip<S: AsRef<str>>(args: &[S]) -> Result<(), NetNsError> {
    ip_output(args).map(drop)
}

/// Runs `ip <args>` and returns its stdout, or fails with its stderr.
fn ip_output<S: AsRef<str>>(args: &[S]) -> Result<String, NetNsError> {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(NetNsError::IpCommandUnavailable)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetNsError::IpCommandFailed {
            args,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// A named network namespace that is deleted on drop.
pub struct NetNs {
    name: String,
    tracked: Mutex<Vec<Child>>,
}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNs").field("name", &self.name).finish()
    }
}

impl NetNs {
    /// Creates `<prefix>-<pid>-<counter>` and brings its `lo` up.
    pub fn new(prefix: &str) -> Result<NetNs, NetNsError> {
        let valid = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(NetNsError::InvalidPrefix(prefix.to_owned()));
        }
        let counter = NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{counter}", std::process::id());
        ip(&["netns", "add", &name])?;
        // From here on, Drop deletes the namespace if anything fails.
        let ns = NetNs {
            name,
            tracked: Mutex::new(Vec::new()),
        };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, the bind mount that keeps the namespace alive.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_RUN_DIR).join(&self.name)
    }

    /// Runs `f` on a fresh thread that has entered the namespace and returns
    /// its result. Sockets, TUN devices and io_uring rings created by `f`
    /// live in the namespace. A panic in `f` is resumed on the caller.
    ///
    /// # Panics
    /// If the thread cannot enter the namespace; see [`try_run`](Self::try_run).
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        match self.try_run(f) {
            Ok(result) => result,
            Err(error) => panic!("cannot enter network namespace {}: {error}", self.name),
        }
    }

    /// [`run`](Self::run), reporting a failure to enter the namespace as an
    /// error instead of panicking.
    pub fn try_run<F, R>(&self, f: F) -> Result<R, NetNsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let namespace = File::open(self.path()).map_err(NetNsError::Open)?;
        let outcome = thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns(2) takes a descriptor and a flag; it only
                    // changes the calling thread's namespace (a thread of our
                    // own, which ends with this closure).
                    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(NetNsError::Setns(io::Error::last_os_error()));
                    }
                    drop(namespace);
                    Ok(f())
                })
                .join()
        });
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// A `Command` that runs `program` inside the namespace
    /// (`ip netns exec <name> <program>`); add arguments as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `ip -n <name> <args>` (configure links inside the namespace).
    pub fn ip<S: AsRef<str>>(&self, args: &[S]) -> Result<(), NetNsError> {
        let mut all = vec!["-n".to_owned(), self.name.clone()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        ip(&all)
    }

    /// Waits (at most `timeout`) until the link `name` is operational: its
    /// operstate is UP and it has a real queueing discipline. Until the
    /// kernel's link watcher has run (it may defer up to a second), a link
    /// whose carrier just came on still sends into the `noop` qdisc, which
    /// drops everything, e.g. the first neighbour solicitation.
    pub fn wait_link_ready(&self, name: &str, timeout: Duration) -> Result<(), NetNsError> {
        let deadline = Instant::now() + timeout;
        loop {
            let line = ip_output(&["-n", self.name.as_str(), "-o", "link", "show", "dev", name])?;
            if line.contains(" state UP ") && !line.contains(" qdisc noop ") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NetNsError::LinkNotReady { name: name.into() });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts `command` (typically from [`command`](Self::command)) and
    /// keeps it: it is killed and reaped when the namespace is dropped, or
    /// by [`kill_tracked`](Self::kill_tracked). Returns its pid.
    pub fn spawn_tracked(&self, command: &mut Command) -> Result<u32, NetNsError> {
        let child = command.spawn().map_err(NetNsError::Spawn)?;
        let pid = child.id();
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
        Ok(pid)
    }

    /// Whether the tracked child `pid` has exited, without waiting: its
    /// status once it has (it stays tracked), `None` while it runs or if no
    /// tracked child has that pid.
    pub fn tracked_exit(&self, pid: u32) -> Option<ExitStatus> {
        let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        let child = tracked.iter_mut().find(|c| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }

    /// Waits for the tracked child `pid` to exit on its own and returns its
    /// output streams that were piped (stdout/stderr) with its status.
    /// `None` if no tracked child has that pid.
    pub fn wait_tracked(&self, pid: u32) -> Option<io::Result<Output>> {
        let child = {
            let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
            let index = tracked.iter().position(|c| c.id() == pid)?;
            tracked.swap_remove(index)
        };
        Some(child.wait_with_output())
    }

    /// Kills (SIGKILL) and reaps every tracked child that is still running.
    pub fn kill_tracked(&self) {
        let children =
            std::mem::take(&mut *self.tracked.lock().unwrap_or_else(PoisonError::into_inner));
        for mut child in children {
            if let Err(error) = child.kill() {
                tracing::warn!(pid = child.id(), %error, "killing a tracked child failed");
            }
            if let Err(error) = child.wait() {
                tracing::warn!(pid = child.id(), %error, "reaping a tracked child failed");
            }
        }
    }

    /// Deletes stale namespaces left by crashed runs: names
    /// `<prefix>-<pid>-<counter>` whose pid is no longer alive. Returns the
    /// names it deleted; failures are logged and skipped.
    pub fn sweep_stale(prefix: &str) -> Vec<String> {
        let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
            Ok(entries) => entries,
            // No namespace was ever created: nothing to sweep.
            Err(_) => return Vec::new(),
        };
        let mut deleted = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner_pid(&name, prefix) else {
                continue;
            };
            if process_alive(pid) {
                continue;
            }
            match ip(&["netns", "del", &name]) {
                Ok(()) => deleted.push(name),
                Err(error) => tracing::warn!(%name, %error, "deleting a stale namespace failed"),
            }
        }
        deleted
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.kill_tracked();
        if let Err(error) = ip(&["netns", "del", &self.name]) {
            tracing::warn!(name = %self.name, %error, "deleting a network namespace failed");
        }
    }
}

/// The pid in `<prefix>-<pid>-<counter>`, if `name` has exactly that shape.
fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (pid, counter) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(counter) {
        return None;
    }
    pid.parse().ok()
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// One end of a veth pair: the namespace it goes into, its interface name
/// and the addresses (with prefix lengths) to give it.
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    /// The namespace.
    pub ns: &'a NetNs,
    /// The interface name (at most 15 bytes).
    pub name: &'a str,
    /// Addresses with prefix lengths. IPv6 ones are added with `nodad` so
    /// they are usable at once.
    pub addresses: &'a [(IpAddr, u8)],
}

/// Creates a veth pair with one end in each namespace, adds the addresses,
/// brings both ends up and waits until both are operational (see
/// [`NetNs::wait_link_ready`]). The pair disappears with either namespace.
pub fn create_veth_pair(a: VethEnd<'_>, b: VethEnd<'_>) -> Result<(), NetNsError> {
    for end in [&a, &b] {
        let valid = !end.name.is_empty()
            && end.name.len() <= MAX_IFNAME_LEN
            && end
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.');
        if !valid {
            return Err(NetNsError::InvalidInterfaceName(end.name.to_owned()));
        }
    }
    a.ns.ip(&[
        "link",
        "add",
        a.name,
        "type",
        "veth",
        "peer",
        "name",
        b.name,
        "netns",
        b.ns.name(),
    ])?;
    for end in [a, b] {
        for (addr, prefix_len) in end.addresses {
            let cidr = format!("{addr}/{prefix_len}");
            let mut args = vec!["addr", "add", cidr.as_str(), "dev", end.name];
            if addr.is_ipv6() {
                args.push("nodad");
            }
            end.ns.ip(&args)?;
        }
        end.ns.ip(&["link", "set", end.name, "up"])?;
    }
    for end in [a, b] {
        end.ns.wait_link_ready(end.name, LINK_READY_TIMEOUT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("sstpd-test-1234-0", "sstpd-test"), Some(1234));
        assert_eq!(owner_pid("sstpd-test-1234-17", "sstpd-test"), Some(1234));
        assert_eq!(owner_pid("sstpd-test-1234", "sstpd-test"), None);
        assert_eq!(owner_pid("sstpd-test-x-0", "sstpd-test"), None);
        assert_eq!(owner_pid("sstpd-test-12-0-1", "sstpd-test"), None);
        assert_eq!(owner_pid("other-1234-0", "sstpd-test"), None);
        assert_eq!(owner_pid("sstpd-testing-1234-0", "sstpd-test"), None);
    }

    #[test]
    fn invalid_prefix_is_rejected_without_running_ip() {
        for bad in ["", "a b", "a/b", "a:b", "ä"] {
            let error = NetNs::new(bad).unwrap_err();
            assert_eq!(error.as_str(), "invalid_prefix", "{bad:?}");
        }
    }

    #[test]
    fn process_alive_sees_ourselves() {
        assert!(process_alive(std::process::id() as i32));
    }
}
