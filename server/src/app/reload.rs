//! Reloading the configuration of a running server (SIGHUP,
//! `sstpctl reload`) without dropping its sessions.
//!
//! [`Reloader::reload`] re-reads the file the server was started from and
//! applies what can change live; what cannot (listen addresses, worker
//! count, pools in use, ...) is reported in the [`ReloadReport`], never
//! silently ignored. A file that does not load, or that names users,
//! certificates or RADIUS servers that do not, changes nothing: the error
//! says why and the old configuration stays in force.

use std::fmt;
use std::sync::Arc;

use crate::config::Config;
use crate::worker::{self, Shared};

/// Why a reload failed (everything stays as it was).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration file no longer loads.
    Config(crate::config::ConfigError),
    /// The users it names do not.
    Users(crate::aaa::local::UsersError),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Config(e) => e.fmt(f),
            ReloadError::Users(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What a successful reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// The parts applied to the running server (for example `"users"`).
    pub applied: Vec<String>,
    /// Keys whose new values take effect only at the next restart (for
    /// example `"server.listen"`); the running server keeps the old ones.
    pub restart_required: Vec<String>,
}

/// Applies a new configuration to a running server; shared by
/// [`ServerHandle::reload`](super::ServerHandle::reload), the signal loop
/// and the control socket.
pub(crate) struct Reloader {
    shared: Arc<Shared>,
}

impl Reloader {
    pub(crate) fn new(shared: Arc<Shared>) -> Reloader {
        Reloader { shared }
    }

    /// Re-reads the configuration and applies it (see the module doc).
    pub(crate) fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let config = &self.shared.config;
        let mut report = ReloadReport::default();
        let summary = match &config.source {
            crate::config::ConfigSource::File(path) => {
                let new = Config::load(path).map_err(ReloadError::Config)?;
                let mut rest = new.clone();
                rest.users = config.users.clone();
                if rest != **config {
                    report.restart_required.push("(outside [users])".into());
                }
                if new.users.backends != config.users.backends {
                    report.restart_required.push("users.backends".into());
                }
                self.shared.users.reload_from(&new.users)
            }
            _ => self.shared.users.reload(),
        }
        .map_err(ReloadError::Users)?;
        tracing::info!(?summary, "users reloaded");
        report.applied.push("users".into());
        for key in &report.restart_required {
            tracing::warn!(key = %key, "changed in the configuration file: takes effect at restart");
        }
        for mailbox in &self.shared.mailboxes {
            worker::send_control(mailbox, worker::WorkerMsg::UsersReloaded);
        }
        Ok(report)
    }
}
