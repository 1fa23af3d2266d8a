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
