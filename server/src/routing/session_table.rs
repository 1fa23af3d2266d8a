//! Which session owns which tunnel address, readable from every worker
//! without locks.
//!
//! A packet read from any TUN queue must reach the session that owns its
//! destination: an IPv4 address from an [`Ipv4Pool`](crate::routing::pool::Ipv4Pool)
//! or an IPv6 /64 from an [`Ipv6PrefixPool`](crate::routing::pool::Ipv6PrefixPool).
//! The table is a flat array of `AtomicU64`, one entry per pool offset, so a
//! lookup is an offset computation and one atomic load. Each entry packs a
//! [`SessionRef`] (which worker, which slot in that worker's session slab,
//! which generation of that slot) or zero for "vacant".
//!
//! Writers use atomic swap / compare-and-swap: [`SessionTable::remove`]
//! clears an entry only if it still holds the caller's exact `SessionRef`,
//! so a late remove from a dead session never evicts a newer owner.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Event;
use crate::routing::pool::{AddressRange, Ipv4Range, Ipv6PrefixRange, MAX_POOL_SPAN};

/// The handle of a session: the worker it lives on, its slot in that
/// worker's session slab, and the slot's generation (bumped each time the
/// slot is reused, so stale handles can be told apart).
///
/// The table packs a `SessionRef` into 64 bits, which limits the fields to
/// `worker <= MAX_WORKER`, `slot <= MAX_SLOT` and
/// `generation <= MAX_GENERATION`; workers should wrap generations with
/// [`SessionRef::next_generation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionRef {
    /// Index of the worker (thread) that owns the session.
    pub worker: u16,
    /// Slot in that worker's session slab.
    pub slot: u32,
    /// Generation of the slot.
    pub generation: u32,
}

impl SessionRef {
    /// The largest worker index that can be stored (`u16::MAX` is reserved).
    pub const MAX_WORKER: u16 = u16::MAX - 1;
    /// Bits available for the slot.
    pub const SLOT_BITS: u32 = 24;
    /// The largest slot that can be stored (16.7 million per worker).
    pub const MAX_SLOT: u32 = (1 << Self::SLOT_BITS) - 1;
    /// Bits available for the generation.
    pub const GENERATION_BITS: u32 = 24;
    /// The largest generation that can be stored.
    pub const MAX_GENERATION: u32 = (1 << Self::GENERATION_BITS) - 1;

    /// The generation after `generation`, wrapping within `GENERATION_BITS`.
    pub fn next_generation(generation: u32) -> u32 {
        generation.wrapping_add(1) & Self::MAX_GENERATION
    }

    /// Packs into a non-zero word: `(worker + 1) << 48 | slot << 24 | generation`.
    fn pack(self) -> Result<u64, SessionTableError> {
        if self.worker > Self::MAX_WORKER
            || self.slot > Self::MAX_SLOT
            || self.generation > Self::MAX_GENERATION
        {
            return Err(SessionTableError::RefOutOfRange(self));
        }
        Ok((u64::from(self.worker) + 1) << 48
            | u64::from(self.slot) << Self::GENERATION_BITS
            | u64::from(self.generation))
    }

    fn unpack(word: u64) -> Option<SessionRef> {
        (word != VACANT).then(|| Self::decode(word))
    }

    /// Decodes a word that `pack` produced (any non-vacant entry).
    fn decode(word: u64) -> SessionRef {
        SessionRef {
            worker: ((word >> 48) as u16).wrapping_sub(1),
            slot: (word >> Self::GENERATION_BITS) as u32 & Self::MAX_SLOT,
            generation: word as u32 & Self::MAX_GENERATION,
        }
    }
}

/// Why a table could not be built or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionTableError {
    /// Two of the given ranges share an address.
    OverlappingRanges,
    /// The ranges together span more entries than allowed.
    TooLarge,
    /// The address is in none of the table's ranges.
    AddressNotCovered(IpAddr),
    /// A field of the `SessionRef` does not fit the packed representation.
    RefOutOfRange(SessionRef),
    /// [`SessionTable::insert_if_vacant`] found another owner.
    Occupied(SessionRef),
}

impl SessionTableError {
    /// Short snake_case name for logs: the label it is counted under.
    pub fn as_str(&self) -> &'static str {
        Event::from(self).label()
    }
}

impl From<&SessionTableError> for Event {
    fn from(error: &SessionTableError) -> Self {
        match error {
            SessionTableError::OverlappingRanges => Event::OverlappingRanges,
            SessionTableError::TooLarge => Event::TooLarge,
            SessionTableError::AddressNotCovered(_) => Event::AddressNotCovered,
            SessionTableError::RefOutOfRange(_) => Event::RefOutOfRange,
            SessionTableError::Occupied(_) => Event::Occupied,
        }
    }
}

impl fmt::Display for SessionTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionTableError::OverlappingRanges => f.write_str("address ranges overlap"),
            SessionTableError::TooLarge => {
                write!(f, "address ranges span more than {MAX_TABLE_ENTRIES} entries")
            }
            SessionTableError::AddressNotCovered(addr) => {
                write!(f, "{addr} is outside every address pool")
            }
            SessionTableError::RefOutOfRange(r) => write!(
                f,
                "session ref {r:?} exceeds the packed limits (worker <= {}, slot <= {}, generation <= {})",
                SessionRef::MAX_WORKER,
                SessionRef::MAX_SLOT,
                SessionRef::MAX_GENERATION
            ),
            SessionTableError::Occupied(owner) => {
                write!(f, "address is owned by session {owner:?}")
            }
        }
    }
}

impl std::error::Error for SessionTableError {}

/// The most entries one table holds, over all its ranges (256 MiB of entries).
pub const MAX_TABLE_ENTRIES: usize = 8 * MAX_POOL_SPAN;

const VACANT: u64 = 0;

/// Tunnel address -> owning session, shared by all workers (wrap it in an
/// `Arc`). Lookups are wait-free single loads; writers never block readers.
pub struct SessionTable {
    /// IPv4 ranges and the index of each range's first entry in `entries`.
    ipv4: Vec<(Ipv4Range, usize)>,
    /// IPv6 /64 ranges and the index of each range's first entry.
    ipv6: Vec<(Ipv6PrefixRange, usize)>,
    entries: Box<[AtomicU64]>,
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("ipv4", &self.ipv4)
            .field("ipv6", &self.ipv6)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl SessionTable {
    /// A table covering the given ranges (take them from the pools with
    /// [`Ipv4Pool::range`](crate::routing::pool::Ipv4Pool::range) and
    /// [`Ipv6PrefixPool::range`](crate::routing::pool::Ipv6PrefixPool::range)).
    /// Ranges of one family must not overlap.
    pub fn new(ipv4: &[Ipv4Range], ipv6: &[Ipv6PrefixRange]) -> Result<Self, SessionTableError> {
        let overlapping = |len: usize, overlaps: &dyn Fn(usize, usize) -> bool| {
            (0..len).any(|i| (i + 1..len).any(|j| overlaps(i, j)))
        };
        if overlapping(ipv4.len(), &|i, j| ipv4[i].overlaps(&ipv4[j]))
            || overlapping(ipv6.len(), &|i, j| ipv6[i].overlaps(&ipv6[j]))
        {
            return Err(SessionTableError::OverlappingRanges);
        }
        let mut next = 0usize;
        let mut place = |len: usize| {
            let base = next;
            next += len;
            base
        };
        let ipv4: Vec<_> = ipv4.iter().map(|r| (*r, place(r.len()))).collect();
        let ipv6: Vec<_> = ipv6.iter().map(|r| (*r, place(r.len()))).collect();
        if next > MAX_TABLE_ENTRIES {
            return Err(SessionTableError::TooLarge);
        }
        let entries = (0..next).map(|_| AtomicU64::new(VACANT)).collect();
        Ok(SessionTable {
            ipv4,
            ipv6,
            entries,
        })
    }

    /// The number of entries (addresses and /64s) the table covers.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The entry of the unit holding `addr` in one family's ranges.
    #[inline]
    fn entry_in<R: AddressRange>(
        &self,
        ranges: &[(R, usize)],
        addr: R::Addr,
    ) -> Option<&AtomicU64> {
        ranges
            .iter()
            .find_map(|(range, base)| range.offset(addr).map(|offset| base + offset))
            .and_then(|index| self.entries.get(index))
    }

    #[inline]
    fn ipv4_entry(&self, addr: Ipv4Addr) -> Option<&AtomicU64> {
        self.entry_in(&self.ipv4, addr)
    }

    #[inline]
    fn ipv6_entry(&self, addr: Ipv6Addr) -> Option<&AtomicU64> {
        self.entry_in(&self.ipv6, addr)
    }

    fn entry(&self, addr: IpAddr) -> Result<&AtomicU64, SessionTableError> {
        match addr {
            IpAddr::V4(v4) => self.ipv4_entry(v4),
            IpAddr::V6(v6) => self.ipv6_entry(v6),
        }
        .ok_or(SessionTableError::AddressNotCovered(addr))
    }

    /// The owner of an IPv4 tunnel address.
    #[inline]
    pub fn lookup_ipv4(&self, addr: Ipv4Addr) -> Option<SessionRef> {
        SessionRef::unpack(self.ipv4_entry(addr)?.load(Ordering::Acquire))
    }

    /// The owner of the /64 that holds `addr`.
    #[inline]
    pub fn lookup_ipv6(&self, addr: Ipv6Addr) -> Option<SessionRef> {
        SessionRef::unpack(self.ipv6_entry(addr)?.load(Ordering::Acquire))
    }

    /// The owner of `addr` (an IPv4 address or any address in an IPv6 /64).
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<SessionRef> {
        match addr {
            IpAddr::V4(v4) => self.lookup_ipv4(v4),
            IpAddr::V6(v6) => self.lookup_ipv6(v6),
        }
    }

    /// The session an IP packet read from the TUN device is addressed to.
    /// `None` for a malformed packet or an unowned destination.
    #[inline]
    pub fn lookup_packet_destination(&self, packet: &[u8]) -> Option<SessionRef> {
        self.lookup(dst_of_ip_packet(packet)?)
    }

    /// Makes `owner` the owner of `addr`, whoever owned it before; returns
    /// the previous owner, if any (which the runtime may want to close).
    pub fn insert(
        &self,
        addr: IpAddr,
        owner: SessionRef,
    ) -> Result<Option<SessionRef>, SessionTableError> {
        let packed = owner.pack()?;
        let previous = self.entry(addr)?.swap(packed, Ordering::AcqRel);
        Ok(SessionRef::unpack(previous))
    }

    /// Makes `owner` the owner of `addr` only if nobody owns it.
    pub fn insert_if_vacant(
        &self,
        addr: IpAddr,
        owner: SessionRef,
    ) -> Result<(), SessionTableError> {
        let packed = owner.pack()?;
        match self.entry(addr)?.compare_exchange(
            VACANT,
            packed,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            // `current` is not VACANT, or the exchange would have succeeded.
            Err(current) => Err(SessionTableError::Occupied(SessionRef::decode(current))),
        }
    }

    /// Clears `addr` if, and only if, `owner` still owns it. Returns whether
    /// it did; `false` means a newer session owns the address (or nobody).
    pub fn remove(&self, addr: IpAddr, owner: SessionRef) -> Result<bool, SessionTableError> {
        let packed = owner.pack()?;
        Ok(self
            .entry(addr)?
            .compare_exchange(packed, VACANT, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok())
    }
}

/// The destination of an IPv4 packet ([RFC 791] 3.1). `None` unless the
/// version is 4 and the fixed header is complete.
#[inline]
pub fn dst_of_ipv4_packet(packet: &[u8]) -> Option<Ipv4Addr> {
    ipv4_field(packet, IPV4_DST_AT)
}

/// The source of an IPv4 packet ([RFC 791] 3.1).
#[inline]
pub fn src_of_ipv4_packet(packet: &[u8]) -> Option<Ipv4Addr> {
    ipv4_field(packet, IPV4_SRC_AT)
}

/// The destination of an IPv6 packet ([RFC 8200] 3). `None` unless the
/// version is 6 and the fixed header is complete.
#[inline]
pub fn dst_of_ipv6_packet(packet: &[u8]) -> Option<Ipv6Addr> {
    ipv6_field(packet, IPV6_DST_AT)
}

/// The source of an IPv6 packet ([RFC 8200] 3).
#[inline]
pub fn src_of_ipv6_packet(packet: &[u8]) -> Option<Ipv6Addr> {
    ipv6_field(packet, IPV6_SRC_AT)
}

/// The destination of an IPv4 or IPv6 packet, by its version nibble.
#[inline]
pub fn dst_of_ip_packet(packet: &[u8]) -> Option<IpAddr> {
    ip_field(packet, IPV4_DST_AT, IPV6_DST_AT)
}

/// The source of an IPv4 or IPv6 packet, by its version nibble.
#[inline]
pub fn src_of_ip_packet(packet: &[u8]) -> Option<IpAddr> {
    ip_field(packet, IPV4_SRC_AT, IPV6_SRC_AT)
}

const IPV4_SRC_AT: usize = 12;
const IPV4_DST_AT: usize = 16;
const IPV6_SRC_AT: usize = 8;
const IPV6_DST_AT: usize = 24;

#[inline]
fn ip_field(packet: &[u8], ipv4_at: usize, ipv6_at: usize) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => ipv4_field(packet, ipv4_at).map(IpAddr::V4),
        6 => ipv6_field(packet, ipv6_at).map(IpAddr::V6),
        _ => None,
    }
}

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;

fn ipv4_field(packet: &[u8], at: usize) -> Option<Ipv4Addr> {
    if packet.len() < IPV4_HEADER_LEN || packet[0] >> 4 != 4 {
        return None;
    }
    let bytes: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

fn ipv6_field(packet: &[u8], at: usize) -> Option<Ipv6Addr> {
    if packet.len() < IPV6_HEADER_LEN || packet[0] >> 4 != 6 {
        return None;
    }
    let bytes: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::pool::tests::{v4, v6};
    use proptest::prelude::*;

    fn table() -> SessionTable {
        SessionTable::new(
            &[
                Ipv4Range::new(v4("10.8.0.0"), v4("10.8.0.255")).unwrap(),
                Ipv4Range::new(v4("172.16.0.10"), v4("172.16.0.20")).unwrap(),
            ],
            &[Ipv6PrefixRange::new(v6("2001:db8:5::"), 48).unwrap()],
        )
        .unwrap()
    }

    fn r(worker: u16, slot: u32, generation: u32) -> SessionRef {
        SessionRef {
            worker,
            slot,
            generation,
        }
    }

    #[test]
    fn packing_round_trips_at_the_limits() {
        for session in [
            r(0, 0, 0),
            r(
                SessionRef::MAX_WORKER,
                SessionRef::MAX_SLOT,
                SessionRef::MAX_GENERATION,
            ),
            r(7, 123_456, 9),
        ] {
            let packed = session.pack().unwrap();
            assert_ne!(packed, VACANT);
            assert_eq!(SessionRef::unpack(packed), Some(session));
        }
        assert_eq!(
            r(0, 0, 0).pack().unwrap(),
            0x0001_0000_0000_0000,
            "worker 0 is stored as 1"
        );
        assert_eq!(
            r(2, 0xABCDEF, 0x123456).pack().unwrap(),
            0x0003_ABCD_EF12_3456
        );
        assert_eq!(SessionRef::unpack(VACANT), None);
        for bad in [
            r(u16::MAX, 0, 0),
            r(0, SessionRef::MAX_SLOT + 1, 0),
            r(0, 0, SessionRef::MAX_GENERATION + 1),
        ] {
            assert_eq!(bad.pack(), Err(SessionTableError::RefOutOfRange(bad)));
        }
        assert_eq!(SessionRef::next_generation(5), 6);
        assert_eq!(SessionRef::next_generation(SessionRef::MAX_GENERATION), 0);
    }

    #[test]
    fn insert_lookup_remove_ipv4_and_ipv6() {
        let table = table();
        assert_eq!(table.capacity(), 256 + 11 + 65_536);
        let a = r(1, 10, 1);
        let b = r(0, 11, 4);
        assert_eq!(table.insert(v4("10.8.0.5").into(), a), Ok(None));
        assert_eq!(table.insert(v6("2001:db8:5:7::").into(), b), Ok(None));
        assert_eq!(table.lookup_ipv4(v4("10.8.0.5")), Some(a));
        assert_eq!(table.lookup_ipv4(v4("10.8.0.6")), None);
        // Any address in the /64 finds its owner.
        assert_eq!(table.lookup_ipv6(v6("2001:db8:5:7:1:2:3:4")), Some(b));
        assert_eq!(table.lookup_ipv6(v6("2001:db8:5:8::1")), None);
        // Outside every range.
        assert_eq!(table.lookup_ipv4(v4("10.9.0.5")), None);
        assert_eq!(table.lookup_ipv6(v6("2001:db8:6::1")), None);
        assert_eq!(
            table.insert(v4("10.9.0.5").into(), a),
            Err(SessionTableError::AddressNotCovered(v4("10.9.0.5").into()))
        );
        // The second IPv4 range has its own entries.
        table.insert(v4("172.16.0.20").into(), b).unwrap();
        assert_eq!(table.lookup_ipv4(v4("172.16.0.20")), Some(b));
        assert_eq!(table.lookup_ipv4(v4("172.16.0.21")), None);
        assert_eq!(table.remove(v4("10.8.0.5").into(), a), Ok(true));
        assert_eq!(table.remove(v4("10.8.0.5").into(), a), Ok(false));
        assert_eq!(table.lookup_ipv4(v4("10.8.0.5")), None);
    }

    #[test]
    fn late_remove_from_a_dead_session_keeps_the_new_owner() {
        let table = table();
        let addr: IpAddr = v4("10.8.0.9").into();
        let old = r(3, 42, 7);
        let new = r(1, 42, 8);
        table.insert(addr, old).unwrap();
        // The address was released and reassigned before the old session's
        // cleanup ran.
        assert_eq!(table.insert(addr, new), Ok(Some(old)));
        assert_eq!(table.remove(addr, old), Ok(false));
        assert_eq!(table.lookup(addr), Some(new));
        // A ref that differs only in generation is a different owner.
        assert_eq!(table.remove(addr, r(1, 42, 7)), Ok(false));
        assert_eq!(table.remove(addr, new), Ok(true));
        assert_eq!(table.lookup(addr), None);
    }

    #[test]
    fn insert_if_vacant_reports_the_current_owner() {
        let table = table();
        let addr: IpAddr = v6("2001:db8:5:ffff::").into();
        table.insert_if_vacant(addr, r(0, 1, 1)).unwrap();
        assert_eq!(
            table.insert_if_vacant(addr, r(1, 2, 2)),
            Err(SessionTableError::Occupied(r(0, 1, 1)))
        );
        assert_eq!(table.lookup(addr), Some(r(0, 1, 1)));
    }

    #[test]
    fn construction_rejects_overlap() {
        let a = Ipv4Range::new(v4("10.0.0.0"), v4("10.0.0.10")).unwrap();
        let b = Ipv4Range::new(v4("10.0.0.10"), v4("10.0.0.20")).unwrap();
        assert_eq!(
            SessionTable::new(&[a, b], &[]).unwrap_err(),
            SessionTableError::OverlappingRanges
        );
        let p = Ipv6PrefixRange::new(v6("2001:db8::"), 48).unwrap();
        let q = Ipv6PrefixRange::new(v6("2001:db8:0:1::"), 64).unwrap();
        assert_eq!(
            SessionTable::new(&[], &[p, q]).unwrap_err(),
            SessionTableError::OverlappingRanges
        );
        // Same numbers in different families do not overlap.
        assert!(SessionTable::new(&[a], &[p]).is_ok());
    }

    const ICMP_ECHO_V4: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x00,
        0x00, // ..proto, csum
        10, 8, 0, 7, // src
        10, 8, 0, 5, // dst
        0x08, 0x00, 0xf7, 0xfe, 0x00, 0x01, 0x00, 0x00,
    ];

    fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut packet = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
        packet.extend_from_slice(&src.octets());
        packet.extend_from_slice(&dst.octets());
        packet
    }

    #[test]
    fn packet_address_helpers_read_the_right_fields() {
        assert_eq!(dst_of_ipv4_packet(&ICMP_ECHO_V4), Some(v4("10.8.0.5")));
        assert_eq!(src_of_ipv4_packet(&ICMP_ECHO_V4), Some(v4("10.8.0.7")));
        assert_eq!(dst_of_ip_packet(&ICMP_ECHO_V4), Some(v4("10.8.0.5").into()));
        assert_eq!(src_of_ip_packet(&ICMP_ECHO_V4), Some(v4("10.8.0.7").into()));
        let v6_packet = ipv6_header(v6("2001:db8:5:1::2"), v6("2001:db8:5:7::9"));
        assert_eq!(dst_of_ipv6_packet(&v6_packet), Some(v6("2001:db8:5:7::9")));
        assert_eq!(src_of_ipv6_packet(&v6_packet), Some(v6("2001:db8:5:1::2")));
        assert_eq!(
            dst_of_ip_packet(&v6_packet),
            Some(v6("2001:db8:5:7::9").into())
        );
        assert_eq!(
            src_of_ip_packet(&v6_packet),
            Some(v6("2001:db8:5:1::2").into())
        );

        let table = table();
        table.insert(v4("10.8.0.5").into(), r(1, 1, 1)).unwrap();
        table
            .insert(v6("2001:db8:5:7::").into(), r(0, 2, 2))
            .unwrap();
        assert_eq!(
            table.lookup_packet_destination(&ICMP_ECHO_V4),
            Some(r(1, 1, 1))
        );
        assert_eq!(
            table.lookup_packet_destination(&v6_packet),
            Some(r(0, 2, 2))
        );
    }

    #[test]
    fn packet_address_helpers_reject_short_and_mislabelled_packets() {
        for len in 0..IPV4_HEADER_LEN {
            assert_eq!(dst_of_ipv4_packet(&ICMP_ECHO_V4[..len]), None);
            assert_eq!(src_of_ipv4_packet(&ICMP_ECHO_V4[..len]), None);
            assert_eq!(dst_of_ip_packet(&ICMP_ECHO_V4[..len]), None);
        }
        let v6_packet = ipv6_header(v6("::1"), v6("::2"));
        for len in 0..IPV6_HEADER_LEN {
            assert_eq!(dst_of_ipv6_packet(&v6_packet[..len]), None);
            assert_eq!(src_of_ipv6_packet(&v6_packet[..len]), None);
            assert_eq!(src_of_ip_packet(&v6_packet[..len]), None);
        }
        // Version nibble mismatch.
        assert_eq!(dst_of_ipv6_packet(&ICMP_ECHO_V4), None);
        assert_eq!(dst_of_ipv4_packet(&v6_packet), None);
        let mut version5 = ICMP_ECHO_V4;
        version5[0] = 0x55;
        assert_eq!(dst_of_ip_packet(&version5), None);
        assert_eq!(table().lookup_packet_destination(&version5), None);
    }

    proptest! {
        #[test]
        fn packet_helpers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let dst = dst_of_ip_packet(&bytes);
            let src = src_of_ip_packet(&bytes);
            prop_assert_eq!(dst.is_some(), src.is_some());
            if let Some(IpAddr::V4(d)) = dst {
                prop_assert_eq!(&d.octets()[..], &bytes[16..20]);
            }
            if let Some(IpAddr::V6(d)) = dst {
                prop_assert_eq!(&d.octets()[..], &bytes[24..40]);
            }
            let _ = dst_of_ipv4_packet(&bytes);
            let _ = dst_of_ipv6_packet(&bytes);
        }

        #[test]
        fn pack_unpack_round_trip(
            worker in 0..=SessionRef::MAX_WORKER,
            slot in 0..=SessionRef::MAX_SLOT,
            generation in 0..=SessionRef::MAX_GENERATION,
        ) {
            let session = r(worker, slot, generation);
            prop_assert_eq!(SessionRef::unpack(session.pack().unwrap()), Some(session));
        }
    }
}
