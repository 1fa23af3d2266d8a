//! `[control]`: the control socket `sstpctl` talks to, and the rendering
//! of the running configuration `sstpctl show config` prints.
//!
//! The rendering is the serde [`Serialize`] of [`Config`] as TOML, so it
//! loads back to the same configuration (`config::tests` checks the round
//! trip); [`Config::redacted`] first replaces every secret the file can
//! hold (RADIUS and DAE shared secrets, inline user passwords) with
//! [`REDACTED`]. Keys and certificates are named by path only, never
//! inlined, so there is no key material to hide.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

/// Where the shipped configuration, the systemd unit
/// (`RuntimeDirectory=sstpd`) and the no-file defaults put the socket;
/// `sstpctl` looks there unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/sstpd/control.sock";

/// The longest path a Unix socket address holds (`sun_path`, less its
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// `[control]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlSection {
    /// The Unix socket `sstpctl` connects to (mode 0600, owned by the
    /// server's user; root and that user may use it). Off unless set.
    pub socket: Option<PathBuf>,
}

impl Config {
    /// A copy with every secret replaced by [`REDACTED`] (see the module
    /// documentation).
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        let hide = |secret: &mut Secret| secret.0 = REDACTED.into();
        config
            .users
            .local
            .iter_mut()
            .for_each(|u| hide(&mut u.password));
        config
            .radius
            .auth_server
            .iter_mut()
            .chain(config.radius.acct_server.iter_mut())
            .for_each(|s| hide(&mut s.secret));
        config
            .radius
            .dae
            .client
            .iter_mut()
            .for_each(|c| hide(&mut c.secret));
        config
    }

    /// The configuration as a TOML document that loads back to it.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    pub(super) fn validate_control(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.control.socket else {
            return Ok(());
        };
        let len = path.as_os_str().len();
        if len == 0 || len > MAX_SOCKET_PATH {
            return Err(ConfigError::invalid(
                "control.socket",
                format!(
                    "a socket path must be 1 to {MAX_SOCKET_PATH} bytes long; this one is {len}"
                ),
            ));
        }
        Ok(())
    }
}
