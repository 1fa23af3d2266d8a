//! Which tunnel address belongs to whom: the IPv4 and IPv6 address pools and
//! the lock-free address → session table the packet path reads.
//!
//! Plain data structures over `std`: the core's test harnesses answer its
//! address requests from the same pools the server uses.

pub mod pool;
pub mod session_table;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

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
    /// Fixed addresses in use: whose they are and how many sessions of
    /// that user hold them.
    fixed: Mutex<HashMap<Ipv4Addr, FixedHold>>,
}

/// A fixed (per-user) address and the sessions holding it.
#[derive(Debug)]
struct FixedHold {
    user: String,
    holders: u32,
}

impl ServerPools {
    /// The server's pools: IPv4 addresses and, if IPv6 is on, /64 prefixes.
    pub fn new(ipv4: Ipv4Pool, ipv6: Option<Ipv6PrefixPool>) -> ServerPools {
        ServerPools {
            ipv4,
            ipv6,
            fixed: Mutex::new(HashMap::new()),
        }
    }

    fn fixed(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, FixedHold>> {
        self.fixed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves an IPv4 address for `username`: `wanted` (a fixed address
    /// from the authenticator) or, without one, the next free one of the
    /// pool. Failures are logged; `None` ends the session with `no_address`.
    ///
    /// A fixed address still held by another session of the same user is
    /// handed out again: the newer session takes it over (the runtime moves
    /// the route and closes the older session), so a user is never locked
    /// out by their own stale session. The address returns to the pool
    /// when its last holder releases it. A fixed address held by someone
    /// else is refused.
    pub fn allocate_ipv4(&self, username: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let result = match wanted {
            Some(addr) => {
                let mut fixed = self.fixed();
                match fixed.get_mut(&addr) {
                    Some(hold) if hold.user == username => {
                        hold.holders += 1;
                        Ok(addr)
                    }
                    _ => self.ipv4.allocate_specific(addr).map(|()| {
                        fixed.insert(
                            addr,
                            FixedHold {
                                user: username.to_owned(),
                                holders: 1,
                            },
                        );
                        addr
                    }),
                }
            }
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
        {
            let mut fixed = self.fixed();
            if let Some(hold) = fixed.get_mut(&addr) {
                hold.holders = hold.holders.saturating_sub(1);
                if hold.holders > 0 {
                    return;
                }
                fixed.remove(&addr);
            }
        }
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
        Ok(ServerPools::new(ipv4, ipv6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> ServerPools {
        let config = crate::config::Config::default();
        ServerPools::from_config(&config).unwrap()
    }

    #[test]
    fn a_fixed_address_is_taken_over_by_the_same_user_only() {
        let p = pools();
        let fixed = Ipv4Addr::new(10, 99, 0, 50);
        assert_eq!(p.allocate_ipv4("bob", Some(fixed)), Some(fixed));
        // Bob logs in again before the old session is gone.
        assert_eq!(p.allocate_ipv4("bob", Some(fixed)), Some(fixed));
        // Nobody else gets it.
        assert_eq!(p.allocate_ipv4("mallory", Some(fixed)), None);
        // The old session goes: still held by the new one.
        p.release_ipv4(fixed);
        assert!(p.ipv4.is_allocated(fixed));
        assert_eq!(p.allocate_ipv4("mallory", Some(fixed)), None);
        p.release_ipv4(fixed);
        assert!(!p.ipv4.is_allocated(fixed));
        assert_eq!(p.allocate_ipv4("carol", Some(fixed)), Some(fixed));
        // Dynamic addresses are unaffected.
        let dynamic = p.allocate_ipv4("dave", None).unwrap();
        p.release_ipv4(dynamic);
        assert!(!p.ipv4.is_allocated(dynamic));
    }
}
