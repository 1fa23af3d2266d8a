//! sstpd: an SSTP ([MS-SSTP]) VPN server.
//!
//! The crate is layered; every arrow points down, toward the protocol core,
//! and none back up (docs/architecture.md draws the tree):
//!
//! ```text
//! app            startup, shutdown, signals, reload, the command line
//!  └ worker      pinned per-core threads: accept, session tasks, TUN queue IO, mailboxes
//!     ├ net      sockets and rustls driven over io_uring's owned buffers
//!     ├ tls      rustls configuration, certificates, kernel TLS
//!     ├ tun      the multi-queue TUN device
//!     ├ aaa      who may log in: local users, the guessing throttle, RADIUS
//!     ├ routing  address pools and the address → session table (std only)
//!     └ metrics  the counter table (std only)
//! client         the client runtime (load generator, end-to-end tests): net, tls, proto
//! config         the TOML schema, embedded defaults and validation
//! sys            capabilities and resource limits
//! radius         the sans-IO RADIUS codec and NAS client (std only), under aaa
//! proto          the sans-IO protocol core: SSTP, PPP, authentication, both roles
//! ```
//!
//! [`proto`] performs no IO and never reads a clock: callers pass bytes and
//! `now` in and get bytes, events and timer deadlines out. It builds without
//! the runtime (feature `runtime`, on by default). Test and benchmark support
//! (network namespaces, the client↔server harness) is behind the `testing`
//! feature and not part of the shipped library.
//!
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/

#![warn(missing_debug_implementations)]

pub mod proto;

#[cfg(feature = "runtime")]
pub mod aaa;
#[cfg(feature = "runtime")]
pub mod app;
#[cfg(feature = "runtime")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod config;
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod net;
/// Without the runtime, only the TLS record layer (no IO; the fuzzers
/// build it with the `tls-records` feature).
#[cfg(all(not(feature = "runtime"), feature = "tls-records"))]
pub mod net {
    pub mod established;
    pub mod tls_records;
}
pub mod radius;
pub mod routing;
#[cfg(feature = "runtime")]
pub mod sys;
#[cfg(feature = "runtime")]
pub mod tls;
#[cfg(feature = "runtime")]
pub mod tun;
/// Without the runtime, only the TUN device's sans-IO offload (which the
/// fuzzers build).
#[cfg(not(feature = "runtime"))]
pub mod tun {
    pub mod offload;
}
#[cfg(feature = "runtime")]
pub mod worker;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
