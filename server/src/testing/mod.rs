//! Test and benchmark support (feature `testing`, and the crate's own unit
//! tests): not part of the shipped server.
//!
//! * [`pair`]: an in-memory client↔server [`Session`](crate::proto::session::Session)
//!   pair on a virtual clock, the harness of the core's tests, the benchmarks
//!   and the instruction-count gate.
//! * [`link_pair`]: the same for two PPP links alone, and the fuzzers'
//!   entry points into PPP.
//! * [`hdlc`]: PPP in HDLC-like framing (RFC 1662), which sstp-client's
//!   pppd speaks on its pty; the interoperability tests play pppd with it.
//! * [`netns`]: network namespaces for end-to-end tests, benchmarks and the
//!   demo (runtime only).
//! * [`faults`]: panics injected into a running server's session tasks.

pub mod faults;
pub mod hdlc;
pub mod link_pair;
#[cfg(feature = "runtime")]
pub mod netns;
pub mod pair;
