//! Where sstpd keeps generated state (the self-signed certificate): the
//! configured directory, systemd's `STATE_DIRECTORY`, or a per-user default.

use std::ffi::OsString;
use std::path::PathBuf;

use super::*;

impl Config {
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
