//! Startup check of the Linux capabilities sstpd needs, so that a missing
//! one is reported up front, by name, with the ways to grant it, instead of
//! as a bare EPERM from deep inside TUN or socket setup.
//!
//! * `CAP_NET_ADMIN`: creating and configuring the TUN device.
//! * `CAP_NET_BIND_SERVICE`: listening on a port below
//!   `net.ipv4.ip_unprivileged_port_start` (1024 unless changed).

use std::fmt;
use std::net::SocketAddr;

/// A capability sstpd may need (numbers from linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    NetBindService,
    NetAdmin,
}

impl Capability {
    /// Bit number in the capability sets.
    pub fn bit(self) -> u32 {
        match self {
            Capability::NetBindService => 10,
            Capability::NetAdmin => 12,
        }
    }

    /// The kernel's name, as used by setcap and systemd.
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetBindService => "CAP_NET_BIND_SERVICE",
            Capability::NetAdmin => "CAP_NET_ADMIN",
        }
    }

    /// Short snake_case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::NetBindService => "net_bind_service",
            Capability::NetAdmin => "net_admin",
        }
    }
}

/// A capability set (effective, permitted, ...) as a bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilitySet(pub u64);

impl CapabilitySet {
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & (1u64 << cap.bit()) != 0
    }

    /// The effective set from the text of `/proc/<pid>/status` (the
    /// `CapEff:` line, hexadecimal).
    pub fn from_proc_status(status: &str) -> Result<Self, CapsError> {
        let value = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .ok_or(CapsError::NoCapEffLine)?
            .trim();
        u64::from_str_radix(value, 16)
            .map(CapabilitySet)
            .map_err(|_| CapsError::BadCapEffLine(value.to_owned()))
    }

    /// This process's effective set.
    pub fn current() -> Result<Self, CapsError> {
        let status = std::fs::read_to_string("/proc/self/status").map_err(CapsError::Read)?;
        Self::from_proc_status(&status)
    }
}

/// The capabilities needed to run with these listen addresses, given the
/// lowest port an unprivileged process may bind.
pub fn required(listen: &[SocketAddr], unprivileged_port_start: u16) -> Vec<Capability> {
    let mut needed = vec![Capability::NetAdmin];
    if listen
        .iter()
        .any(|a| a.port() != 0 && a.port() < unprivileged_port_start)
    {
        needed.push(Capability::NetBindService);
    }
    needed
}

/// Reads `net.ipv4.ip_unprivileged_port_start` (it applies to IPv6 as well);
/// 1024, the kernel default, when it cannot be read.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Checks that the process has every capability it needs for `listen`.
pub fn check(listen: &[SocketAddr]) -> Result<(), CapsError> {
    let have = CapabilitySet::current()?;
    check_set(have, listen, unprivileged_port_start())
}

/// [`check`] with the inputs supplied.
pub fn check_set(
    have: CapabilitySet,
    listen: &[SocketAddr],
    unprivileged_port_start: u16,
) -> Result<(), CapsError> {
    let missing: Vec<Capability> = required(listen, unprivileged_port_start)
        .into_iter()
        .filter(|&c| !have.contains(c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        let low_port = listen
            .iter()
            .map(|a| a.port())
            .filter(|&p| p != 0 && p < unprivileged_port_start)
            .min();
        Err(CapsError::Missing { missing, low_port })
    }
}

/// Why the capability check failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CapsError {
    /// `/proc/self/status` could not be read.
    Read(std::io::Error),
    /// It has no `CapEff:` line.
    NoCapEffLine,
    /// The `CapEff:` value is not hexadecimal.
    BadCapEffLine(String),
    /// These capabilities are not in the effective set.
    Missing {
        missing: Vec<Capability>,
        /// The lowest privileged port in the listen list, if one is.
        low_port: Option<u16>,
    },
}

impl CapsError {
    pub fn as_str(&self) -> &'static str {
        match self {
            CapsError::Read(_) => "read",
            CapsError::NoCapEffLine => "no_capeff_line",
            CapsError::BadCapEffLine(_) => "bad_capeff_line",
            CapsError::Missing { .. } => "missing",
        }
    }
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapsError::Read(e) => write!(f, "cannot read /proc/self/status: {e}"),
            CapsError::NoCapEffLine => f.write_str("/proc/self/status has no CapEff line"),
            CapsError::BadCapEffLine(v) => {
                write!(
                    f,
                    "/proc/self/status: CapEff value {v:?} is not hexadecimal"
                )
            }
            CapsError::Missing { missing, low_port } => {
                let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
                write!(f, "missing capability {}", names.join(" and "))?;
                let why: Vec<String> = missing
                    .iter()
                    .map(|c| match (c, low_port) {
                        (Capability::NetAdmin, _) => {
                            "CAP_NET_ADMIN creates and configures the TUN device".to_owned()
                        }
                        (Capability::NetBindService, Some(port)) => format!(
                            "CAP_NET_BIND_SERVICE binds the privileged port {port} (server.listen)"
                        ),
                        (Capability::NetBindService, None) => {
                            "CAP_NET_BIND_SERVICE binds privileged ports (server.listen)".to_owned()
                        }
                    })
                    .collect();
                write!(
                    f,
                    " ({}). Grant it by running as root, or with \
                     `setcap cap_net_admin,cap_net_bind_service+ep /path/to/sstpd`, or under \
                     systemd with `AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE` \
                     (see examples/sstpd.service)",
                    why.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for CapsError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_STATUS: &str = "Name:\tsstpd\nUmask:\t0022\nState:\tR (running)\n\
        CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n\
        CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n";

    fn status_with_eff(eff: &str) -> String {
        format!(
            "Name:\tsstpd\nCapPrm:\t0000000000000000\nCapEff:\t{eff}\nCapBnd:\t000001ffffffffff\n"
        )
    }

    #[test]
    fn parses_capeff() {
        assert_eq!(
            CapabilitySet::from_proc_status(ROOT_STATUS).unwrap(),
            CapabilitySet(0x1ff_ffff_ffff)
        );
        // setcap cap_net_admin,cap_net_bind_service+ep: bits 10 and 12.
        let set = CapabilitySet::from_proc_status(&status_with_eff("0000000000001400")).unwrap();
        assert_eq!(set, CapabilitySet(0x1400));
        assert!(set.contains(Capability::NetAdmin));
        assert!(set.contains(Capability::NetBindService));
        let only_admin =
            CapabilitySet::from_proc_status(&status_with_eff("0000000000001000")).unwrap();
        assert!(only_admin.contains(Capability::NetAdmin));
        assert!(!only_admin.contains(Capability::NetBindService));
        let none = CapabilitySet::from_proc_status(&status_with_eff("0000000000000000")).unwrap();
        assert!(!none.contains(Capability::NetAdmin));
    }

    #[test]
    fn rejects_malformed_status() {
        assert!(matches!(
            CapabilitySet::from_proc_status("Name:\tx\nCapPrm:\t0\n"),
            Err(CapsError::NoCapEffLine)
        ));
        match CapabilitySet::from_proc_status("CapEff:\tzz12\n") {
            Err(CapsError::BadCapEffLine(v)) => assert_eq!(v, "zz12"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            CapabilitySet::from_proc_status("CapEff:\t\n"),
            Err(CapsError::BadCapEffLine(_))
        ));
    }

    #[test]
    fn current_process_status_parses() {
        // Whatever the test runs as, the real file must parse.
        CapabilitySet::current().unwrap();
    }

    #[test]
    fn required_depends_on_ports() {
        let high: Vec<SocketAddr> = vec!["127.0.0.1:4443".parse().unwrap()];
        let low: Vec<SocketAddr> =
            vec!["0.0.0.0:4443".parse().unwrap(), "[::]:443".parse().unwrap()];
        assert_eq!(required(&high, 1024), vec![Capability::NetAdmin]);
        assert_eq!(
            required(&low, 1024),
            vec![Capability::NetAdmin, Capability::NetBindService]
        );
        // With ip_unprivileged_port_start lowered, 443 needs nothing extra.
        assert_eq!(required(&low, 443), vec![Capability::NetAdmin]);
        assert_eq!(required(&low, 0), vec![Capability::NetAdmin]);
    }

    #[test]
    fn check_names_missing_capabilities_and_remedies() {
        let low: Vec<SocketAddr> = vec!["0.0.0.0:443".parse().unwrap()];
        assert!(check_set(CapabilitySet(0x1400), &low, 1024).is_ok());
        let err = check_set(CapabilitySet(0), &low, 1024).unwrap_err();
        match &err {
            CapsError::Missing { missing, low_port } => {
                assert_eq!(missing, &[Capability::NetAdmin, Capability::NetBindService]);
                assert_eq!(*low_port, Some(443));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with("missing capability CAP_NET_ADMIN and CAP_NET_BIND_SERVICE"));
        assert!(text.contains("privileged port 443"));
        assert!(text.contains("setcap cap_net_admin,cap_net_bind_service+ep"));
        assert!(text.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE"));

        let err = check_set(CapabilitySet(1 << 10), &low, 1024).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("missing capability CAP_NET_ADMIN ("));
        let high: Vec<SocketAddr> = vec!["127.0.0.1:4443".parse().unwrap()];
        let err = check_set(CapabilitySet(0), &high, 1024).unwrap_err();
        assert!(
            matches!(&err, CapsError::Missing { missing, low_port: None } if missing == &[Capability::NetAdmin])
        );
    }
}
