//! Where the server's IPCP gets the addresses it assigns to peers.
//!
//! [`AddressPool`] is the interface; the runtime supplies production pools.
//! [`Ipv4RangePool`] is a simple in-core implementation (a bitmap over a
//! range) for tests, the load generator and small deployments.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

/// A source of peer addresses shared by every session.
pub trait AddressPool: Send + Sync {
    /// Reserves an IPv4 address for `username`; `wanted` is a fixed address
    /// from the authenticator (Framed-IP) — must be honoured or fail.
    fn allocate_ipv4(&self, username: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr>;
    fn release_ipv4(&self, addr: Ipv4Addr);
}

/// Why an [`Ipv4RangePool`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolRangeError {
    /// The first address is above the last.
    Inverted,
    /// More than 2^24 addresses (a /8); larger pools belong to the runtime.
    TooLarge,
}

impl PoolRangeError {
    /// Short snake_case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolRangeError::Inverted => "inverted_range",
            PoolRangeError::TooLarge => "range_too_large",
        }
    }
}

impl fmt::Display for PoolRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for PoolRangeError {}

#[derive(Debug)]
struct RangeState {
    /// One bit per address of the range, set when in use.
    used: Vec<u64>,
    in_use: u32,
    /// Where the next search starts (next fit: spreads reuse out).
    cursor: u32,
    /// Fixed addresses outside the range currently held.
    pinned: HashSet<Ipv4Addr>,
}

/// An inclusive range of IPv4 addresses handed out first come, first
/// served, behind a mutex. Fixed (`wanted`) addresses inside the range are
/// taken from it when free; outside it they are granted once at a time.
#[derive(Debug)]
pub struct Ipv4RangePool {
    first: u32,
    size: u32,
    state: Mutex<RangeState>,
}

impl Ipv4RangePool {
    /// The pool `first..=last`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Result<Self, PoolRangeError> {
        let (first, last) = (u32::from(first), u32::from(last));
        if first > last {
            return Err(PoolRangeError::Inverted);
        }
        let size = last - first + 1;
        if size > 1 << 24 {
            return Err(PoolRangeError::TooLarge);
        }
        let words = usize::try_from(size.div_ceil(64)).map_err(|_| PoolRangeError::TooLarge)?;
        Ok(Ipv4RangePool {
            first,
            size,
            state: Mutex::new(RangeState {
                used: vec![0; words],
                in_use: 0,
                cursor: 0,
                pinned: HashSet::new(),
            }),
        })
    }

    /// Addresses in the range not currently reserved.
    pub fn available(&self) -> u32 {
        self.size - self.lock().in_use
    }

    fn lock(&self) -> MutexGuard<'_, RangeState> {
        // A panic elsewhere while holding the lock leaves the bitmap
        // consistent (every update is a single bit flip plus a counter).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_of(&self, addr: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(addr).checked_sub(self.first)?;
        (offset < self.size).then_some(offset)
    }
}

fn bit(index: u32) -> (usize, u64) {
    ((index / 64) as usize, 1u64 << (index % 64))
}

impl RangeState {
    fn is_used(&self, index: u32) -> bool {
        let (word, mask) = bit(index);
        self.used.get(word).is_some_and(|w| w & mask != 0)
    }

    fn set(&mut self, index: u32, used: bool) {
        let (word, mask) = bit(index);
        if let Some(w) = self.used.get_mut(word) {
            if used {
                *w |= mask;
            } else {
                *w &= !mask;
            }
        }
    }
}

impl AddressPool for Ipv4RangePool {
    fn allocate_ipv4(&self, _username: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let mut state = self.lock();
        if let Some(addr) = wanted {
            return match self.index_of(addr) {
                Some(index) if !state.is_used(index) => {
                    state.set(index, true);
                    state.in_use += 1;
                    Some(addr)
                }
                Some(_) => None,
                None => state.pinned.insert(addr).then_some(addr),
            };
        }
        if state.in_use >= self.size {
            return None;
        }
        // Next fit from the cursor; the count above guarantees a free bit,
        // and the scan is bounded by the range size.
        let start = state.cursor;
        let found = (0..self.size)
            .map(|step| (start + step) % self.size)
            .find(|&index| !state.is_used(index))?;
        state.set(found, true);
        state.in_use += 1;
        state.cursor = (found + 1) % self.size;
        Some(Ipv4Addr::from(self.first + found))
    }

    fn release_ipv4(&self, addr: Ipv4Addr) {
        let mut state = self.lock();
        match self.index_of(addr) {
            Some(index) if state.is_used(index) => {
                state.set(index, false);
                state.in_use -= 1;
            }
            Some(_) => {}
            None => {
                state.pinned.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(first: [u8; 4], last: [u8; 4]) -> Ipv4RangePool {
        Ipv4RangePool::new(first.into(), last.into()).unwrap()
    }

    #[test]
    fn allocates_in_order_until_exhausted_and_reuses_released() {
        let pool = pool([10, 0, 0, 2], [10, 0, 0, 4]);
        assert_eq!(pool.available(), 3);
        assert_eq!(
            pool.allocate_ipv4("a", None),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!(
            pool.allocate_ipv4("b", None),
            Some(Ipv4Addr::new(10, 0, 0, 3))
        );
        assert_eq!(
            pool.allocate_ipv4("c", None),
            Some(Ipv4Addr::new(10, 0, 0, 4))
        );
        assert_eq!(pool.allocate_ipv4("d", None), None);
        assert_eq!(pool.available(), 0);
        pool.release_ipv4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            pool.allocate_ipv4("d", None),
            Some(Ipv4Addr::new(10, 0, 0, 3))
        );
        // Releasing twice, or an address never handed out, changes nothing.
        pool.release_ipv4(Ipv4Addr::new(10, 0, 0, 2));
        pool.release_ipv4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn wanted_addresses_are_honoured_or_refused() {
        let pool = pool([10, 0, 0, 2], [10, 0, 0, 9]);
        let fixed = Ipv4Addr::new(10, 0, 0, 7);
        assert_eq!(pool.allocate_ipv4("a", Some(fixed)), Some(fixed));
        assert_eq!(pool.allocate_ipv4("b", Some(fixed)), None, "already in use");
        let outside = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(pool.allocate_ipv4("c", Some(outside)), Some(outside));
        assert_eq!(pool.allocate_ipv4("d", Some(outside)), None);
        pool.release_ipv4(outside);
        assert_eq!(pool.allocate_ipv4("d", Some(outside)), Some(outside));
        assert_eq!(pool.available(), 7);
    }

    #[test]
    fn rejects_bad_ranges() {
        assert_eq!(
            Ipv4RangePool::new([10, 0, 0, 2].into(), [10, 0, 0, 1].into()).unwrap_err(),
            PoolRangeError::Inverted
        );
        assert_eq!(
            Ipv4RangePool::new([0, 0, 0, 0].into(), [2, 0, 0, 0].into()).unwrap_err(),
            PoolRangeError::TooLarge
        );
        let single = pool([10, 0, 0, 1], [10, 0, 0, 1]);
        assert_eq!(
            single.allocate_ipv4("a", None),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(single.allocate_ipv4("b", None), None);
    }
}
