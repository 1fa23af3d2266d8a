//! Which tunnel address belongs to whom: the IPv4 and IPv6 address pools,
//! the lock-free address → session table the packet path reads, and the
//! prefixes routed behind clients (RADIUS Framed-Route).
//!
//! Plain data structures over `std`: the core's test harnesses answer its
//! address requests from the same pools the server uses.

pub mod framed_route;
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
    /// Named IPv4 pools (RADIUS Framed-Pool), apart from `ipv4` and from
    /// each other.
    named: Vec<(String, Ipv4Pool)>,
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
            named: Vec::new(),
            ipv6,
            fixed: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the named IPv4 pool `name` (its range must not overlap the
    /// others': an address belongs to one pool).
    pub fn with_named_ipv4(mut self, name: impl Into<String>, pool: Ipv4Pool) -> ServerPools {
        self.named.push((name.into(), pool));
        self
    }

    /// The named pool `name`.
    pub fn named_ipv4(&self, name: &str) -> Option<&Ipv4Pool> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Every IPv4 pool: the default one, then the named ones.
    pub fn ipv4_pools(&self) -> impl Iterator<Item = &Ipv4Pool> {
        std::iter::once(&self.ipv4).chain(self.named.iter().map(|(_, p)| p))
    }

    /// The pool whose range holds `addr`.
    fn ipv4_pool_of(&self, addr: Ipv4Addr) -> Option<&Ipv4Pool> {
        self.ipv4_pools().find(|p| p.offset(addr).is_some())
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
        self.allocate_ipv4_from(username, wanted, None)
    }

    /// [`ServerPools::allocate_ipv4`], taking a dynamic address from the
    /// named pool `pool` (RADIUS Framed-Pool) instead of the default one.
    /// An unknown name gets no address (logged), rather than one from a
    /// pool the operator did not mean. A fixed address comes from
    /// whichever pool holds it.
    pub fn allocate_ipv4_from(
        &self,
        username: &str,
        wanted: Option<Ipv4Addr>,
        pool: Option<&str>,
    ) -> Option<Ipv4Addr> {
        let dynamic = match pool {
            None => &self.ipv4,
            Some(name) => match self.named_ipv4(name) {
                Some(pool) => pool,
                None if wanted.is_some() => &self.ipv4,
                None => {
                    tracing::warn!(user = username, pool = name, "no IPv4 pool of that name");
                    return None;
                }
            },
        };
        let result = match wanted {
            Some(addr) => {
                let mut fixed = self.fixed();
                match fixed.get_mut(&addr) {
                    Some(hold) if hold.user == username => {
                        hold.holders += 1;
                        Ok(addr)
                    }
                    _ => self
                        .ipv4_pool_of(addr)
                        .unwrap_or(&self.ipv4)
                        .allocate_specific(addr)
                        .map(|()| {
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
            None => dynamic.allocate(),
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
        let pool = self.ipv4_pool_of(addr).unwrap_or(&self.ipv4);
        if let Err(e) = pool.release(addr) {
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
            // The server's own address, configured or the default first
            // host: its /64 must never be delegated to a client.
            Some(Ipv6PrefixPool::new(
                p.addr,
                p.len,
                Some(config.ipv6.gateway()),
            )?)
        } else {
            None
        };
        let mut pools = ServerPools::new(ipv4, ipv6);
        for named in &v4.pools {
            let range = &named.range;
            let pool = Ipv4Pool::from_range(range.first(), range.last(), Some(v4.gateway))?;
            pools = pools.with_named_ipv4(named.name.clone(), pool);
        }
        Ok(pools)
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
    fn the_default_ipv6_gateway_keeps_its_64_out_of_the_pool() {
        let mut config = crate::config::Config::default();
        config.ipv6.enabled = true;
        assert_eq!(config.ipv6.gateway, None, "the default gateway is implied");
        let pools = ServerPools::from_config(&config).unwrap();
        let ipv6 = pools.ipv6.as_ref().unwrap();
        let gateway = config.ipv6.gateway();
        let first = ipv6.allocate().unwrap();
        assert_ne!(
            u128::from(first) >> 64,
            u128::from(gateway) >> 64,
            "{first}/64 holds the gateway {gateway}"
        );
        assert_eq!(ipv6.usage().capacity, (1 << 16) - 1);
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

    #[test]
    fn named_pools_hand_out_their_own_addresses_and_take_them_back() {
        let mut config = crate::config::Config::default();
        config.ipv4.pools.push(crate::config::NamedIpv4Pool {
            name: "gold".into(),
            range: crate::config::Ipv4Range::new(
                Ipv4Addr::new(10, 98, 0, 10),
                Ipv4Addr::new(10, 98, 0, 11),
            )
            .unwrap(),
        });
        let p = ServerPools::from_config(&config).unwrap();
        let a = p.allocate_ipv4_from("u1", None, Some("gold")).unwrap();
        let b = p.allocate_ipv4_from("u2", None, Some("gold")).unwrap();
        assert_eq!(
            [a, b],
            [Ipv4Addr::new(10, 98, 0, 10), Ipv4Addr::new(10, 98, 0, 11)]
        );
        // Exhausted: no spill-over into the default pool.
        assert_eq!(p.allocate_ipv4_from("u3", None, Some("gold")), None);
        // An unknown name gets nothing.
        assert_eq!(p.allocate_ipv4_from("u3", None, Some("silver")), None);
        p.release_ipv4(a);
        assert!(!p.named_ipv4("gold").unwrap().is_allocated(a));
        assert!(p.named_ipv4("gold").unwrap().is_allocated(b));
        // A fixed address inside a named pool comes from that pool.
        assert_eq!(p.allocate_ipv4("u4", Some(a)), Some(a));
        assert!(p.named_ipv4("gold").unwrap().is_allocated(a));
        // The default pool is untouched by all of this.
        assert_eq!(
            p.ipv4.usage(),
            ServerPools::from_config(&config).unwrap().ipv4.usage()
        );
    }
}
