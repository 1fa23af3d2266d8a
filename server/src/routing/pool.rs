//! Tunnel address pools: the IPv4 address and the IPv6 /64 prefix each session
//! is given during IPCP ([RFC 1332] 3.3, IP-Address option) and IPv6 setup.
//!
//! Both pools are bitmaps over a contiguous range of *offsets*. The offset of
//! an address ([`Ipv4Pool::offset`], [`Ipv6PrefixPool::offset`]) is also the
//! index the [`session_table`](crate::routing::session_table) uses, so routing a packet
//! to its session is an offset computation plus one atomic load.
//!
//! Allocation is next-fit: the search starts after the most recent
//! allocation, so an address that was just released is handed out again only
//! after the rest of the pool has been used. That keeps late packets for a
//! closed session from reaching the next session that would otherwise get the
//! same address at once.
//!
//! The pools are shared by all workers behind a [`Mutex`]: they are touched
//! once per session setup and teardown, never per packet.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::metrics::Event;

/// The largest number of offsets (addresses or /64 prefixes) one pool may
/// span: 2^22, i.e. an IPv4 /10 or an IPv6 /42 cut into /64s. The session
/// table keeps one 8-byte entry per offset, so this caps it at 32 MiB.
pub const MAX_POOL_SPAN: usize = 1 << 22;

/// The prefix length delegated to each session by an [`Ipv6PrefixPool`].
pub const DELEGATED_PREFIX_LEN: u8 = 64;

/// Why a pool could not be built, or could not allocate or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// The prefix length is outside what this pool accepts.
    InvalidPrefixLength {
        /// The prefix length given.
        prefix_len: u8,
        /// The shortest accepted prefix length.
        min: u8,
        /// The longest accepted prefix length.
        max: u8,
    },
    /// A network address (or a delegated prefix) has bits set beyond its prefix.
    HostBitsSet,
    /// The first address of a range is above the last.
    EmptyRange,
    /// The range spans more than [`MAX_POOL_SPAN`] offsets.
    TooLarge,
    /// After the exclusions nothing is left to allocate.
    NoUsableAddresses,
    /// The address lies outside the pool's range.
    OutOfRange,
    /// The address is in the range but excluded (network, broadcast, gateway).
    Reserved,
    /// The address is already allocated.
    InUse,
    /// Release of an address that is not allocated.
    NotAllocated,
    /// Every usable address is allocated.
    Exhausted,
}

impl PoolError {
    /// Short snake_case name for logs: the label it is counted under.
    pub fn as_str(&self) -> &'static str {
        Event::from(self).label()
    }
}

impl From<&PoolError> for Event {
    fn from(error: &PoolError) -> Self {
        match error {
            PoolError::InvalidPrefixLength { .. } => Event::InvalidPrefixLength,
            PoolError::HostBitsSet => Event::HostBitsSet,
            PoolError::EmptyRange => Event::EmptyRange,
            PoolError::TooLarge => Event::TooLarge,
            PoolError::NoUsableAddresses => Event::NoUsableAddresses,
            PoolError::OutOfRange => Event::OutOfRange,
            PoolError::Reserved => Event::Reserved,
            PoolError::InUse => Event::InUse,
            PoolError::NotAllocated => Event::NotAllocated,
            PoolError::Exhausted => Event::Exhausted,
        }
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::InvalidPrefixLength {
                prefix_len,
                min,
                max,
            } => write!(
                f,
                "prefix length /{prefix_len} is not supported here (accepted: /{min} to /{max})"
            ),
            PoolError::HostBitsSet => f.write_str("address has bits set beyond its prefix length"),
            PoolError::EmptyRange => f.write_str("range start is above range end"),
            PoolError::TooLarge => write!(f, "pool spans more than {MAX_POOL_SPAN} entries"),
            PoolError::NoUsableAddresses => f.write_str("pool has no usable addresses"),
            PoolError::OutOfRange => f.write_str("address is outside the pool"),
            PoolError::Reserved => {
                f.write_str("address is reserved (network, broadcast or gateway)")
            }
            PoolError::InUse => f.write_str("address is already in use"),
            PoolError::NotAllocated => f.write_str("address is not allocated"),
            PoolError::Exhausted => f.write_str("pool is exhausted"),
        }
    }
}

impl std::error::Error for PoolError {}

/// A contiguous run of allocation units (IPv4 addresses, IPv6 /64s) that a
/// pool and the session table index by offset `0..len()`.
pub trait AddressRange: Copy + fmt::Debug {
    /// The address type.
    type Addr: Copy;

    /// How many units (offsets) the range spans; never zero.
    fn len(&self) -> usize;

    /// Always false: a range holds at least one unit.
    fn is_empty(&self) -> bool {
        false
    }

    /// The offset of the unit that contains `addr`, or `None` outside.
    fn offset(&self, addr: Self::Addr) -> Option<usize>;

    /// The offset of the unit that `addr` names exactly (an IPv6 prefix must
    /// have no bits set past /64), for allocation and release.
    fn exact_offset(&self, addr: Self::Addr) -> Result<usize, PoolError> {
        self.offset(addr).ok_or(PoolError::OutOfRange)
    }

    /// The address naming the unit at `offset`, or `None` past the end.
    fn at(&self, offset: usize) -> Option<Self::Addr>;

    /// Whether the two ranges share a unit.
    fn overlaps(&self, other: &Self) -> bool;
}

/// The contiguous IPv4 range an [`Ipv4Pool`] indexes: offsets `0..len()`
/// map to `first()..=last()`. `Copy`, so the session table keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    first: u32,
    len: u32,
}

impl Ipv4Range {
    /// The range `first..=last`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Result<Self, PoolError> {
        let (first, last) = (u32::from(first), u32::from(last));
        if first > last {
            return Err(PoolError::EmptyRange);
        }
        let span = u64::from(last - first) + 1;
        if span > MAX_POOL_SPAN as u64 {
            return Err(PoolError::TooLarge);
        }
        Ok(Ipv4Range {
            first,
            len: span as u32,
        })
    }

    /// The first address (offset 0).
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first)
    }

    /// The last address (offset `len() - 1`).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first + (self.len - 1))
    }
}

impl AddressRange for Ipv4Range {
    type Addr = Ipv4Addr;

    fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    fn offset(&self, addr: Ipv4Addr) -> Option<usize> {
        let delta = u32::from(addr).wrapping_sub(self.first);
        (delta < self.len).then_some(delta as usize)
    }

    fn at(&self, offset: usize) -> Option<Ipv4Addr> {
        let offset = u32::try_from(offset).ok().filter(|&o| o < self.len)?;
        Some(Ipv4Addr::from(self.first + offset))
    }

    fn overlaps(&self, other: &Ipv4Range) -> bool {
        self.first <= u32::from(other.last()) && other.first <= u32::from(self.last())
    }
}

/// The contiguous run of /64 prefixes an [`Ipv6PrefixPool`] indexes: offset
/// `i` is the `i`-th /64 after `first()`. Only the upper 64 bits of an address
/// (its /64) matter for the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6PrefixRange {
    first: u64,
    len: u64,
}

impl Ipv6PrefixRange {
    /// The /64s inside `prefix/prefix_len`, for `prefix_len` in 42..=64 (so
    /// the range stays within [`MAX_POOL_SPAN`]).
    pub fn new(prefix: Ipv6Addr, prefix_len: u8) -> Result<Self, PoolError> {
        const MIN: u8 = DELEGATED_PREFIX_LEN - MAX_POOL_SPAN.trailing_zeros() as u8;
        if !(MIN..=DELEGATED_PREFIX_LEN).contains(&prefix_len) {
            return Err(PoolError::InvalidPrefixLength {
                prefix_len,
                min: MIN,
                max: DELEGATED_PREFIX_LEN,
            });
        }
        let bits = u128::from(prefix);
        let host_bits = u128::MAX >> prefix_len;
        if bits & host_bits != 0 {
            return Err(PoolError::HostBitsSet);
        }
        Ok(Ipv6PrefixRange {
            first: (bits >> 64) as u64,
            len: 1u64 << (DELEGATED_PREFIX_LEN - prefix_len),
        })
    }

    /// The network address of the first /64 (offset 0).
    pub fn first(&self) -> Ipv6Addr {
        prefix_to_addr(self.first)
    }
}

impl AddressRange for Ipv6PrefixRange {
    type Addr = Ipv6Addr;

    fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    fn offset(&self, addr: Ipv6Addr) -> Option<usize> {
        let delta = upper_64(addr).wrapping_sub(self.first);
        (delta < self.len).then_some(delta as usize)
    }

    fn exact_offset(&self, prefix: Ipv6Addr) -> Result<usize, PoolError> {
        if u128::from(prefix) & u128::from(u64::MAX) != 0 {
            return Err(PoolError::HostBitsSet);
        }
        self.offset(prefix).ok_or(PoolError::OutOfRange)
    }

    /// The network address of the /64 at `offset`.
    fn at(&self, offset: usize) -> Option<Ipv6Addr> {
        let offset = u64::try_from(offset).ok().filter(|&o| o < self.len)?;
        Some(prefix_to_addr(self.first + offset))
    }

    fn overlaps(&self, other: &Ipv6PrefixRange) -> bool {
        self.first <= other.first + (other.len - 1) && other.first <= self.first + (self.len - 1)
    }
}

fn upper_64(addr: Ipv6Addr) -> u64 {
    (u128::from(addr) >> 64) as u64
}

fn prefix_to_addr(upper: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(upper) << 64)
}

/// A pool of the units of one [`AddressRange`]: next-fit allocation over a
/// bitmap, some units excluded for good. Use it as [`Ipv4Pool`] or
/// [`Ipv6PrefixPool`].
#[derive(Debug)]
pub struct AddressPool<R> {
    range: R,
    slots: SlotPool,
}

/// An IPv4 address pool (one address per session).
pub type Ipv4Pool = AddressPool<Ipv4Range>;

/// An IPv6 prefix pool delegating one /64 ([`DELEGATED_PREFIX_LEN`]) per
/// session out of a shorter prefix such as a /48. Addresses given to and
/// returned by it name a /64 by its network address.
pub type Ipv6PrefixPool = AddressPool<Ipv6PrefixRange>;

impl<R: AddressRange> AddressPool<R> {
    fn with_excluded(
        range: R,
        excluded: Option<R::Addr>,
        mut reserved: Vec<usize>,
    ) -> Result<Self, PoolError> {
        reserved.extend(excluded.and_then(|addr| range.offset(addr)));
        Ok(AddressPool {
            range,
            slots: SlotPool::new(range.len(), reserved)?,
        })
    }

    /// The indexed range (including the excluded units).
    pub fn range(&self) -> R {
        self.range
    }

    /// The offset of the unit holding `addr`; the session table's index.
    #[inline]
    pub fn offset(&self, addr: R::Addr) -> Option<usize> {
        self.range.offset(addr)
    }

    /// Allocates the next free unit (next-fit).
    pub fn allocate(&self) -> Result<R::Addr, PoolError> {
        let offset = self.slots.allocate_next()?;
        self.range.at(offset).ok_or(PoolError::OutOfRange)
    }

    /// Allocates exactly `addr` (a fixed address configured for a user).
    pub fn allocate_specific(&self, addr: R::Addr) -> Result<(), PoolError> {
        self.slots.allocate(self.range.exact_offset(addr)?)
    }

    /// Returns `addr` to the pool.
    pub fn release(&self, addr: R::Addr) -> Result<(), PoolError> {
        self.slots.release(self.range.exact_offset(addr)?)
    }

    /// Whether the unit holding `addr` is currently allocated (excluded
    /// units are not).
    pub fn is_allocated(&self, addr: R::Addr) -> bool {
        self.offset(addr)
            .is_some_and(|offset| self.slots.is_allocated(offset))
    }

    /// Usage counters.
    pub fn usage(&self) -> PoolUsage {
        self.slots.usage()
    }
}

impl AddressPool<Ipv4Range> {
    /// The pool `network/prefix_len`, without its network and broadcast
    /// addresses and without `gateway` (the server's own tunnel address) when
    /// that lies inside. `prefix_len` must be 10..=30.
    pub fn from_cidr(
        network: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Self, PoolError> {
        const MIN: u8 = 32 - MAX_POOL_SPAN.trailing_zeros() as u8;
        const MAX: u8 = 30;
        if !(MIN..=MAX).contains(&prefix_len) {
            return Err(PoolError::InvalidPrefixLength {
                prefix_len,
                min: MIN,
                max: MAX,
            });
        }
        let host_bits = u32::MAX >> prefix_len;
        let first = u32::from(network);
        if first & host_bits != 0 {
            return Err(PoolError::HostBitsSet);
        }
        let range = Ipv4Range::new(network, Ipv4Addr::from(first | host_bits))?;
        Self::with_excluded(range, gateway, vec![0, range.len() - 1])
    }

    /// The pool `first..=last`, taken literally (a range names exactly the
    /// addresses to hand out), without `gateway` when that lies inside.
    pub fn from_range(
        first: Ipv4Addr,
        last: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Self, PoolError> {
        Self::with_excluded(Ipv4Range::new(first, last)?, gateway, Vec::new())
    }
}

impl AddressPool<Ipv6PrefixRange> {
    /// The /64s of `prefix/prefix_len` (42..=64), without the /64 that holds
    /// `gateway` (the server's own tunnel address) when that lies inside.
    pub fn new(
        prefix: Ipv6Addr,
        prefix_len: u8,
        gateway: Option<Ipv6Addr>,
    ) -> Result<Self, PoolError> {
        Self::with_excluded(
            Ipv6PrefixRange::new(prefix, prefix_len)?,
            gateway,
            Vec::new(),
        )
    }
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Addresses (or prefixes) that can be allocated at all.
    pub capacity: usize,
    /// Currently allocated.
    pub in_use: usize,
    /// `capacity - in_use`.
    pub free: usize,
}

/// Next-fit bitmap allocation over offsets `0..span`, shared by both pools.
#[derive(Debug)]
struct SlotPool {
    bitmap: Mutex<SlotBitmap>,
    capacity: usize,
}

impl SlotPool {
    fn new(span: usize, mut reserved: Vec<usize>) -> Result<Self, PoolError> {
        reserved.sort_unstable();
        reserved.dedup();
        let capacity = span - reserved.len();
        if capacity == 0 {
            return Err(PoolError::NoUsableAddresses);
        }
        Ok(SlotPool {
            bitmap: Mutex::new(SlotBitmap::new(span, reserved)),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotBitmap> {
        // No operation panics half-way, so a poisoned bitmap is still consistent.
        self.bitmap.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn allocate_next(&self) -> Result<usize, PoolError> {
        self.lock().allocate_next().ok_or(PoolError::Exhausted)
    }

    fn allocate(&self, offset: usize) -> Result<(), PoolError> {
        self.lock().allocate(offset)
    }

    fn release(&self, offset: usize) -> Result<(), PoolError> {
        self.lock().release(offset)
    }

    fn is_allocated(&self, offset: usize) -> bool {
        let bitmap = self.lock();
        bitmap.is_set(offset) && !bitmap.is_reserved(offset)
    }

    fn usage(&self) -> PoolUsage {
        let in_use = self.lock().in_use;
        PoolUsage {
            capacity: self.capacity,
            in_use,
            free: self.capacity - in_use,
        }
    }
}

/// One bit per offset: set = allocated or reserved. Bits past `span` in the
/// last word are set so the search never returns them.
#[derive(Debug)]
struct SlotBitmap {
    words: Vec<u64>,
    /// Sorted, deduplicated offsets that are never handed out.
    reserved: Vec<usize>,
    /// Where the next-fit search starts.
    cursor: usize,
    span: usize,
    in_use: usize,
}

impl SlotBitmap {
    fn new(span: usize, reserved: Vec<usize>) -> Self {
        let mut words = vec![0u64; span.div_ceil(64)];
        let tail = span % 64;
        if tail != 0 {
            if let Some(last) = words.last_mut() {
                *last = u64::MAX << tail;
            }
        }
        let mut bitmap = SlotBitmap {
            words,
            reserved,
            cursor: 0,
            span,
            in_use: 0,
        };
        for offset in bitmap.reserved.clone() {
            bitmap.set(offset, true);
        }
        bitmap
    }

    fn is_reserved(&self, offset: usize) -> bool {
        self.reserved.binary_search(&offset).is_ok()
    }

    fn is_set(&self, offset: usize) -> bool {
        offset < self.span && self.words[offset / 64] & (1 << (offset % 64)) != 0
    }

    fn set(&mut self, offset: usize, value: bool) {
        let word = &mut self.words[offset / 64];
        if value {
            *word |= 1 << (offset % 64);
        } else {
            *word &= !(1 << (offset % 64));
        }
    }

    /// Next-fit: the first clear bit at or after the cursor, wrapping once.
    fn allocate_next(&mut self) -> Option<usize> {
        if self.in_use + self.reserved.len() == self.span {
            return None;
        }
        let start_word = self.cursor / 64;
        let start_bit = self.cursor % 64;
        let word_count = self.words.len();
        // Visit the start word twice: first its bits at or above the cursor,
        // at the end (after wrapping) the bits below it.
        for step in 0..=word_count {
            let index = (start_word + step) % word_count;
            let mut free = !self.words[index];
            if step == 0 {
                free &= u64::MAX << start_bit;
            } else if step == word_count {
                free &= !(u64::MAX << start_bit);
            }
            if free != 0 {
                let offset = index * 64 + free.trailing_zeros() as usize;
                self.set(offset, true);
                self.in_use += 1;
                self.cursor = (offset + 1) % self.span;
                return Some(offset);
            }
        }
        None
    }

    fn allocate(&mut self, offset: usize) -> Result<(), PoolError> {
        if offset >= self.span {
            return Err(PoolError::OutOfRange);
        }
        if self.is_reserved(offset) {
            return Err(PoolError::Reserved);
        }
        if self.is_set(offset) {
            return Err(PoolError::InUse);
        }
        self.set(offset, true);
        self.in_use += 1;
        Ok(())
    }

    fn release(&mut self, offset: usize) -> Result<(), PoolError> {
        if offset >= self.span {
            return Err(PoolError::OutOfRange);
        }
        if self.is_reserved(offset) {
            return Err(PoolError::Reserved);
        }
        if !self.is_set(offset) {
            return Err(PoolError::NotAllocated);
        }
        self.set(offset, false);
        self.in_use -= 1;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    pub(crate) fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_pool_skips_network_broadcast_and_gateway() {
        let pool = Ipv4Pool::from_cidr(v4("10.8.0.0"), 29, Some(v4("10.8.0.1"))).unwrap();
        assert_eq!(
            pool.usage(),
            PoolUsage {
                capacity: 5,
                in_use: 0,
                free: 5
            }
        );
        let all: Vec<_> = (0..5).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(
            all,
            ["10.8.0.2", "10.8.0.3", "10.8.0.4", "10.8.0.5", "10.8.0.6"].map(v4)
        );
        assert_eq!(pool.allocate(), Err(PoolError::Exhausted));
        assert_eq!(pool.usage().free, 0);
        for reserved in ["10.8.0.0", "10.8.0.1", "10.8.0.7"] {
            assert_eq!(
                pool.allocate_specific(v4(reserved)),
                Err(PoolError::Reserved)
            );
            assert_eq!(pool.release(v4(reserved)), Err(PoolError::Reserved));
            assert!(!pool.is_allocated(v4(reserved)));
        }
    }

    #[test]
    fn next_fit_does_not_reuse_a_just_released_address() {
        let pool = Ipv4Pool::from_cidr(v4("192.168.5.0"), 28, None).unwrap();
        let first = pool.allocate().unwrap();
        let second = pool.allocate().unwrap();
        assert_eq!((first, second), (v4("192.168.5.1"), v4("192.168.5.2")));
        pool.release(first).unwrap();
        // .1 is free again, but the search continues after .2.
        assert_eq!(pool.allocate().unwrap(), v4("192.168.5.3"));
        // Use up .4 to .14; the search wraps and finds .1.
        for expected in 4..=14 {
            assert_eq!(
                pool.allocate().unwrap(),
                Ipv4Addr::new(192, 168, 5, expected)
            );
        }
        assert_eq!(pool.allocate().unwrap(), v4("192.168.5.1"));
        assert_eq!(pool.allocate(), Err(PoolError::Exhausted));
    }

    #[test]
    fn next_fit_wraps_within_the_cursor_word() {
        // 200 offsets: the cursor's word is visited again after wrapping.
        let pool = Ipv4Pool::from_range(v4("10.0.0.0"), v4("10.0.0.199"), None).unwrap();
        for _ in 0..200 {
            pool.allocate().unwrap();
        }
        pool.release(v4("10.0.0.3")).unwrap();
        pool.release(v4("10.0.0.130")).unwrap();
        // Cursor is at offset 0 after wrapping past 199: lower address first.
        assert_eq!(pool.allocate().unwrap(), v4("10.0.0.3"));
        assert_eq!(pool.allocate().unwrap(), v4("10.0.0.130"));
        // Cursor is at 131, in word 2 (128..192); 129 sits in the same word
        // below the cursor, found only after the search wraps around.
        pool.release(v4("10.0.0.129")).unwrap();
        assert_eq!(pool.allocate().unwrap(), v4("10.0.0.129"));
        pool.release(v4("10.0.0.2")).unwrap();
        assert_eq!(pool.allocate().unwrap(), v4("10.0.0.2"));
        assert_eq!(pool.usage().in_use, 200);
    }

    #[test]
    fn specific_allocation_and_release_rejections() {
        let pool =
            Ipv4Pool::from_range(v4("10.1.0.10"), v4("10.1.0.20"), Some(v4("10.1.0.15"))).unwrap();
        assert_eq!(pool.usage().capacity, 10);
        assert_eq!(pool.allocate_specific(v4("10.1.0.12")), Ok(()));
        assert!(pool.is_allocated(v4("10.1.0.12")));
        for (addr, error) in [
            ("10.1.0.12", PoolError::InUse),
            ("10.1.0.9", PoolError::OutOfRange),
            ("10.1.0.21", PoolError::OutOfRange),
            ("10.1.0.15", PoolError::Reserved),
        ] {
            assert_eq!(pool.allocate_specific(v4(addr)), Err(error), "{addr}");
        }
        assert_eq!(pool.release(v4("10.1.0.13")), Err(PoolError::NotAllocated));
        assert_eq!(pool.release(v4("1.2.3.4")), Err(PoolError::OutOfRange));
        assert_eq!(pool.release(v4("10.1.0.12")), Ok(()));
        assert_eq!(pool.release(v4("10.1.0.12")), Err(PoolError::NotAllocated));
        // The range is literal: .10 (a would-be network address) is usable.
        assert_eq!(pool.allocate().unwrap(), v4("10.1.0.10"));
        assert_eq!(pool.usage().in_use, 1);
    }

    #[test]
    fn next_allocation_skips_specifically_allocated_addresses() {
        let pool = Ipv4Pool::from_range(v4("10.2.0.1"), v4("10.2.0.4"), None).unwrap();
        pool.allocate_specific(v4("10.2.0.1")).unwrap();
        pool.allocate_specific(v4("10.2.0.2")).unwrap();
        assert_eq!(pool.allocate().unwrap(), v4("10.2.0.3"));
        assert_eq!(
            pool.usage(),
            PoolUsage {
                capacity: 4,
                in_use: 3,
                free: 1
            }
        );
    }

    #[test]
    fn ipv4_construction_rejections() {
        assert_eq!(
            Ipv4Pool::from_cidr(v4("10.0.0.0"), 31, None).unwrap_err(),
            PoolError::InvalidPrefixLength {
                prefix_len: 31,
                min: 10,
                max: 30
            }
        );
        assert_eq!(
            Ipv4Pool::from_cidr(v4("10.0.0.0"), 8, None).unwrap_err(),
            PoolError::InvalidPrefixLength {
                prefix_len: 8,
                min: 10,
                max: 30
            }
        );
        assert_eq!(
            Ipv4Pool::from_cidr(v4("10.0.0.1"), 24, None).unwrap_err(),
            PoolError::HostBitsSet
        );
        assert_eq!(
            Ipv4Pool::from_range(v4("10.0.0.9"), v4("10.0.0.8"), None).unwrap_err(),
            PoolError::EmptyRange
        );
        assert_eq!(
            Ipv4Pool::from_range(v4("10.0.0.0"), v4("10.64.0.0"), None).unwrap_err(),
            PoolError::TooLarge
        );
        assert_eq!(
            Ipv4Pool::from_range(v4("10.0.0.1"), v4("10.0.0.1"), Some(v4("10.0.0.1"))).unwrap_err(),
            PoolError::NoUsableAddresses
        );
        // The largest pool: a /10.
        let big = Ipv4Pool::from_cidr(v4("100.64.0.0"), 10, None).unwrap();
        assert_eq!(big.usage().capacity, MAX_POOL_SPAN - 2);
        assert_eq!(big.offset(v4("100.127.255.255")), Some(MAX_POOL_SPAN - 1));
        assert_eq!(big.offset(v4("100.128.0.0")), None);
    }

    #[test]
    fn ipv4_offsets_cover_the_whole_range() {
        let pool = Ipv4Pool::from_cidr(v4("10.8.0.0"), 24, Some(v4("10.8.0.1"))).unwrap();
        let range = pool.range();
        assert_eq!(
            (range.first(), range.last()),
            (v4("10.8.0.0"), v4("10.8.0.255"))
        );
        assert_eq!(range.len(), 256);
        assert_eq!(pool.offset(v4("10.8.0.0")), Some(0));
        assert_eq!(pool.offset(v4("10.8.0.77")), Some(77));
        assert_eq!(pool.offset(v4("10.8.1.0")), None);
        assert_eq!(pool.offset(v4("10.7.255.255")), None);
        assert_eq!(pool.offset(v4("0.0.0.0")), None);
        assert_eq!(range.at(77), Some(v4("10.8.0.77")));
        assert_eq!(range.at(256), None);
        let other = Ipv4Range::new(v4("10.8.0.255"), v4("10.8.1.10")).unwrap();
        assert!(range.overlaps(&other) && other.overlaps(&range));
        let apart = Ipv4Range::new(v4("10.8.1.0"), v4("10.8.1.10")).unwrap();
        assert!(!range.overlaps(&apart));
    }

    #[test]
    fn ipv6_pool_delegates_64s_and_skips_the_gateway_prefix() {
        let pool =
            Ipv6PrefixPool::new(v6("2001:db8:aa::"), 62, Some(v6("2001:db8:aa:0::1"))).unwrap();
        assert_eq!(pool.usage().capacity, 3);
        assert_eq!(pool.allocate().unwrap(), v6("2001:db8:aa:1::"));
        assert_eq!(pool.allocate().unwrap(), v6("2001:db8:aa:2::"));
        pool.release(v6("2001:db8:aa:1::")).unwrap();
        assert_eq!(pool.allocate().unwrap(), v6("2001:db8:aa:3::"));
        assert_eq!(pool.allocate().unwrap(), v6("2001:db8:aa:1::"));
        assert_eq!(pool.allocate(), Err(PoolError::Exhausted));
        for (prefix, error) in [
            ("2001:db8:aa::", PoolError::Reserved),
            ("2001:db8:aa:3::", PoolError::InUse),
            ("2001:db8:aa:4::", PoolError::OutOfRange),
            ("2001:db8:aa:3::1", PoolError::HostBitsSet),
        ] {
            assert_eq!(pool.allocate_specific(v6(prefix)), Err(error), "{prefix}");
        }
        assert_eq!(
            pool.release(v6("2001:db8:aa:3::1")),
            Err(PoolError::HostBitsSet)
        );
        assert!(pool.is_allocated(v6("2001:db8:aa:3::1234")));
        assert_eq!(
            pool.offset(v6("2001:db8:aa:3:ffff:ffff:ffff:ffff")),
            Some(3)
        );
        assert_eq!(pool.offset(v6("2001:db8:aa:4::")), None);
        assert_eq!(pool.offset(v6("2001:db8:a9:ffff::")), None);
    }

    #[test]
    fn ipv6_construction_rejections() {
        assert_eq!(
            Ipv6PrefixPool::new(v6("2001:db8::"), 32, None).unwrap_err(),
            PoolError::InvalidPrefixLength {
                prefix_len: 32,
                min: 42,
                max: 64
            }
        );
        assert_eq!(
            Ipv6PrefixPool::new(v6("2001:db8::"), 65, None).unwrap_err(),
            PoolError::InvalidPrefixLength {
                prefix_len: 65,
                min: 42,
                max: 64
            }
        );
        assert_eq!(
            Ipv6PrefixPool::new(v6("2001:db8:0:1::"), 48, None).unwrap_err(),
            PoolError::HostBitsSet
        );
        assert_eq!(
            Ipv6PrefixPool::new(v6("2001:db8::"), 64, Some(v6("2001:db8::1"))).unwrap_err(),
            PoolError::NoUsableAddresses
        );
        let pool = Ipv6PrefixPool::new(v6("2001:db8:1::"), 48, None).unwrap();
        assert_eq!(pool.usage().capacity, 65_536);
        assert_eq!(pool.range().first(), v6("2001:db8:1::"));
        assert_eq!(pool.range().at(65_535), Some(v6("2001:db8:1:ffff::")));
        assert_eq!(pool.range().at(65_536), None);
    }

    #[test]
    fn ipv6_ranges_overlap_check() {
        let a = Ipv6PrefixRange::new(v6("2001:db8::"), 48).unwrap();
        let inner = Ipv6PrefixRange::new(v6("2001:db8:0:ff00::"), 56).unwrap();
        let next = Ipv6PrefixRange::new(v6("2001:db8:1::"), 48).unwrap();
        assert!(a.overlaps(&inner) && inner.overlaps(&a));
        assert!(!a.overlaps(&next) && !next.overlaps(&a));
    }

    #[test]
    fn error_labels_are_snake_case() {
        for error in [
            PoolError::HostBitsSet,
            PoolError::EmptyRange,
            PoolError::TooLarge,
            PoolError::NoUsableAddresses,
            PoolError::OutOfRange,
            PoolError::Reserved,
            PoolError::InUse,
            PoolError::NotAllocated,
            PoolError::Exhausted,
        ] {
            let label = error.as_str();
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!error.to_string().is_empty());
        }
    }
}
