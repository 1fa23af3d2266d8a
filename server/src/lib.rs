//! sstpd: an SSTP ([MS-SSTP]) VPN server.
//!
//! The crate has two layers, kept apart on purpose:
//!
//! * [`proto`]: the sans-IO protocol core. SSTP framing and state machines,
//!   the HTTP handshake, PPP (LCP, authentication, IPCP, IPv6CP) and the
//!   crypto binding, for both the server and the client role. It performs no
//!   IO and never reads a clock: callers pass bytes and `now` in and get bytes,
//!   events and timer deadlines out. The load generator uses the same code.
//! * The runtime (feature `runtime`, on by default): thread-per-core io_uring
//!   workers, TLS (rustls, kTLS where the kernel has it), the TUN device,
//!   address pools, configuration and the CLI.

#![warn(missing_debug_implementations)]

pub mod proto;

// ---- Runtime (feature "runtime") ----

/// Capability checks (CAP_NET_ADMIN) with errors that name what is missing.
#[cfg(feature = "runtime")]
pub mod caps;
/// Command-line interface.
#[cfg(feature = "runtime")]
pub mod cli;
/// The client side of the runtime (load generator, end-to-end tests).
#[cfg(feature = "runtime")]
pub mod client;
/// The TOML configuration and its embedded defaults.
#[cfg(feature = "runtime")]
pub mod config;
/// The open-file limit, raised at startup for the sessions' sockets.
#[cfg(feature = "runtime")]
pub mod limits;
/// Counters for operators and tests.
#[cfg(feature = "runtime")]
pub mod metrics;
/// Network namespaces, for tests, benchmarks and the demo.
#[cfg(feature = "runtime")]
pub mod netns;
/// IPv4 range pools and IPv6 prefix pools.
#[cfg(feature = "runtime")]
pub mod pool;
/// The server runtime entry point (`run`). INTEGRATION POINT: placeholder
/// until the worker runtime is merged.
#[cfg(feature = "runtime")]
pub mod server;
/// Steps shared by the server's and the client's session writers.
#[cfg(feature = "runtime")]
mod session_io;
/// Which session owns which tunnel address, readable from every worker.
#[cfg(feature = "runtime")]
pub mod session_table;
/// TLS: rustls configuration, certificates, kernel TLS.
#[cfg(feature = "runtime")]
pub mod tls;
/// The multi-queue TUN device.
#[cfg(feature = "runtime")]
pub mod tun;
/// rustls driven over tokio-uring's owned buffers.
#[cfg(feature = "runtime")]
pub mod uring_tls;
/// Local users from a pppd chap-secrets file.
#[cfg(feature = "runtime")]
pub mod users;
/// Cross-worker wakeups (eventfd) visible to io_uring.
#[cfg(feature = "runtime")]
pub mod wakeup;
/// The per-core workers: listeners, sessions, TUN queues.
#[cfg(feature = "runtime")]
mod worker;
