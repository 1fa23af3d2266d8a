//! The top of the runtime: building everything below from a [`Config`],
//! running it, and stopping it.
//!
//! * [`start`] / [`run`]: TLS, users, pools, the TUN device, the listeners
//!   and the workers; signals (SIGTERM stops, SIGHUP reloads).
//! * [`cli`]: the command line and `check-config`.
//! * [`exporter`]: the Prometheus endpoint (`[metrics] listen`).
//! * [`control`]: the control socket `sstpctl` talks to (`[control] socket`).
//! * [`drain`]: taking the node out of service gently (`sstpctl drain`).
//! * [`startup_banner`]: what to connect to and which certificate to expect.
//! * [`reload`](ReloadReport): applying a new configuration live.
//! * [`systemd`]: `Type=notify` readiness, reload, stop, status and watchdog.
//!
//! [`Config`]: crate::config::Config

mod banner;
pub mod cli;
pub mod control;
pub mod drain;
pub mod exporter;
mod reload;
mod start;
pub mod systemd;

pub use banner::startup_banner;
pub use start::*;
