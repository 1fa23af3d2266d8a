//! Which tunnel address belongs to whom: the IPv4 and IPv6 address pools and
//! the lock-free address → session table the packet path reads.
//!
//! Plain data structures over `std`: the core's test harnesses answer its
//! address requests from the same pools the server uses.

pub mod pool;
pub mod session_table;

use std::net::Ipv4Addr;

#[cfg(feature = "runtime")]
use crate::config::Config;
#[cfg(feature = "runtime")]
use pool::PoolError;
use pool::{Ipv4Pool, Ipv6PrefixPool};

/// The address pools of the server, shared by all workers. Allocation
/// happens once per session setup, so the pools' mutexes never sit on the
/// packet path.
#[derive(Debug)]
pub struct ServerPools {
    pub ipv4: Ipv4Pool,
    pub ipv6: Option<Ipv6PrefixPool>,
}

impl ServerPools {
    /// Reserves an IPv4 address for `username`: `wanted` (a fixed address
    /// from the authenticator) or, without one, the next free one of the
    /// pool. Failures are logged; `None` ends the session with `no_address`.
    pub fn allocate_ipv4(&self, username: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let result = match wanted {
            Some(addr) => self.ipv4.allocate_specific(addr).map(|()| addr),
            None => self.ipv4.allocate(),
        };
        match result {
            Ok(addr) => Some(addr),
            Err(e) => {
                tracing::warn!(user = username, wanted = ?wanted, error = %e, "no IPv4 address for session");
                None
            }
        }
    }

    /// Returns an address [`ServerPools::allocate_ipv4`] gave out.
    pub fn release_ipv4(&self, addr: Ipv4Addr) {
        if let Err(e) = self.ipv4.release(addr) {
            tracing::warn!(%addr, error = %e, "address release failed");
        }
    }
}

#[cfg(feature = "runtime")]
impl ServerPools {
    /// The pools `[ipv4]` and `[ipv6]` describe.
    pub fn from_config(config: &Config) -> Result<ServerPools, PoolError> {
        let v4 = &config.ipv4;
        let ipv4 = Ipv4Pool::from_range(v4.pool.first(), v4.pool.last(), Some(v4.gateway))?;
        let ipv6 = if config.ipv6.enabled {
            let p = &config.ipv6.prefix;
            Some(Ipv6PrefixPool::new(p.addr, p.len, config.ipv6.gateway)?)
        } else {
            None
        };
        Ok(ServerPools { ipv4, ipv6 })
    }
}
