//! Test and benchmark support (feature `testing`, and the crate's own unit
//! tests): not part of the shipped server.
//!
//! * [`pair`]: the one in-memory client↔server harness on a virtual clock,
//!   generic over the layer ([`pair::Endpoint`]): whole sessions
//!   ([`pair::SessionPair`], the harness of the core's tests, the
//!   benchmarks and the instruction-count gate), PPP links
//!   ([`pair::LinkPair`]), SSTP connections and the authentication
//!   machines, each through a thin adapter.
//! * [`link_pair`]: lone PPP links opened by a minimal peer, and the
//!   fuzzers' entry points into PPP.
//! * [`hostile`]: a scripted client that sends exactly the bytes a test
//!   wants (any PPP frame, in any order), on the harness against a real
//!   server `Session` ([`hostile::LoneServer`]), for the hostile-input
//!   tests and the `session` fuzz target.
//! * [`hdlc`]: PPP in HDLC-like framing (RFC 1662), which sstp-client's
//!   pppd speaks on its pty; the interoperability tests play pppd with it.
//! * [`StaticPasswords`]: users in memory, for the harnesses' authenticator.
//! * [`netns`]: network namespaces for end-to-end tests, benchmarks and the
//!   demo (runtime only).
//! * [`faults`]: panics injected into a running server's session tasks.
//! * [`freeradius`]: a real FreeRADIUS on loopback or in a namespace, with
//!   its own generated configuration, and `radclient`; what FreeRADIUS
//!   3.2.1 does that sstpd's RADIUS client depends on.

pub mod faults;
pub mod freeradius;
pub mod hdlc;
pub mod hostile;
pub mod link_pair;
#[cfg(feature = "runtime")]
pub mod netns;
pub mod pair;
pub mod tunnel_tls;
mod users;

pub use users::StaticPasswords;

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::routing::pool::Ipv4Pool;
use crate::routing::ServerPools;

/// IPv4-only server pools over `first..=last`, the harnesses' address
/// source (the runtime's own pool implementation).
pub fn ipv4_pools(first: [u8; 4], last: [u8; 4]) -> Arc<ServerPools> {
    let ipv4 = Ipv4Pool::from_range(Ipv4Addr::from(first), Ipv4Addr::from(last), None)
        .expect("a valid test range");
    Arc::new(ServerPools::new(ipv4, None))
}
