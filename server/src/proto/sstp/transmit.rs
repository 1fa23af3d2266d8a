//! The core's output for the peer: TLS plaintext, and where each unit ends
//! that the owner seals as a TLS record of its own (quinn-proto's
//! `Transmit` is the model: the output says where its pieces begin and
//! end, so the owner never parses it back).
//!
//! A unit is one HTTP message, or one SSTP packet. [MS-SSTP] 2.2.1 lets
//! SSTP packets share TLS records, but sstp-client (1.0.18) reads a packet
//! with two `SSL_read` calls (the 4-octet header, then the rest) and then
//! waits for its socket to become readable again: a second packet of the
//! same record stays in OpenSSL's buffer until more bytes arrive. Observed
//! against sstpd: the first LCP Configure-Request, written together with
//! the Call Connect Acknowledge, waited for its 3-second retransmission,
//! and a Call Disconnect written together with an LCP Terminate-Ack waited
//! for the next packet. Windows' own server writes one packet per record,
//! so this is what every client copes with. A client owner may ignore the
//! boundaries and seal the bytes as a stream ([`Transmit::bytes`]).

use std::ops::{Deref, DerefMut};

#[cfg(any(test, feature = "testing"))]
use super::wire::{HEADER_LEN, VERSION};

/// The 12 length bits of an SSTP packet header ([MS-SSTP] 2.2.1).
#[cfg(any(test, feature = "testing"))]
const LENGTH_MASK: u16 = 0x0fff;

/// Bytes for the peer, as whole units (see the module documentation). It
/// reads as its bytes ([`Deref`] to `[u8]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transmit {
    bytes: Vec<u8>,
    /// The end of each unit in `bytes`, ascending; the last is
    /// `bytes.len()`.
    ends: Vec<usize>,
}

impl Transmit {
    /// An empty output that holds no memory.
    #[must_use]
    pub const fn new() -> Self {
        Transmit {
            bytes: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// All units, back to back.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes of all units.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there is nothing to send.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many units there are.
    #[must_use]
    pub fn unit_count(&self) -> usize {
        self.ends.len()
    }

    /// The units in order, each to be sealed as a TLS record of its own.
    pub fn units(&self) -> Units<'_> {
        Units {
            bytes: &self.bytes,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// Moves every unit of `other` to the end of this output, leaving
    /// `other` empty (its memory kept, as [`Vec::append`] does). Inline:
    /// every data packet calls it, nearly always with nothing to move
    /// (the gate's `data` part counted the call, 15 instructions a packet).
    #[inline]
    pub fn append(&mut self, other: &mut Transmit) {
        if other.is_empty() {
            return;
        }
        let offset = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.ends
            .extend(other.ends.drain(..).map(|end| end + offset));
    }

    /// Empties the output, keeping its memory for the next batch.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Bytes of memory it holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Gives its memory back if it is empty.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = Transmit::new();
        }
    }

    /// The bytes, without the boundaries.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Panics unless every unit is one HTTP head or exactly one SSTP
    /// packet: what the core promises its owner (the pair harnesses check
    /// every output with it).
    #[cfg(any(test, feature = "testing"))]
    pub fn assert_whole_units(&self) {
        for (i, unit) in self.units().enumerate() {
            if unit.starts_with(b"HTTP/") || unit.starts_with(b"SSTP_DUPLEX_POST") {
                let end = unit.windows(4).position(|w| w == b"\r\n\r\n");
                assert_eq!(
                    end.map(|e| e + 4),
                    Some(unit.len()),
                    "unit {i} is not one HTTP head"
                );
            } else {
                assert!(
                    unit.len() >= HEADER_LEN && unit[0] == VERSION,
                    "unit {i} is not an SSTP packet: {unit:02x?}"
                );
                let len = usize::from(u16::from_be_bytes([unit[2], unit[3]]) & LENGTH_MASK);
                assert_eq!(len, unit.len(), "unit {i} is not exactly one SSTP packet");
            }
        }
    }

    /// The bytes to change at will, for the harnesses' tampering (which
    /// may leave the units' boundaries meaningless: only the bytes are
    /// carried on).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Starts a unit: what is appended to the returned buffer is one unit
    /// once it is dropped. Nothing appended (or everything appended
    /// truncated away again) leaves no unit.
    #[inline]
    pub(crate) fn unit(&mut self) -> UnitWriter<'_> {
        let start = self.bytes.len();
        UnitWriter {
            transmit: self,
            start,
        }
    }
}

impl Deref for Transmit {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Transmit {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A unit being written ([`Transmit::unit`]): appends to the output's
/// bytes, and marks the unit's end when dropped. It may not shorten what
/// came before the unit.
#[derive(Debug)]
pub(crate) struct UnitWriter<'a> {
    transmit: &'a mut Transmit,
    start: usize,
}

impl UnitWriter<'_> {
    /// Where the unit starts in the output's bytes.
    pub(crate) fn start(&self) -> usize {
        self.start
    }
}

impl Deref for UnitWriter<'_> {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.transmit.bytes
    }
}

impl DerefMut for UnitWriter<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.transmit.bytes
    }
}

impl Drop for UnitWriter<'_> {
    #[inline]
    fn drop(&mut self) {
        let transmit = &mut *self.transmit;
        let end = transmit.bytes.len();
        if end > self.start {
            transmit.ends.push(end);
        } else if end < self.start {
            // Never done by the core: the units it cut into are dropped
            // whole rather than sent broken.
            debug_assert!(false, "a unit writer shortened earlier units");
            let whole = transmit.ends.partition_point(|&e| e <= end);
            transmit.ends.truncate(whole);
            transmit
                .bytes
                .truncate(transmit.ends.last().copied().unwrap_or(0));
        }
    }
}

/// Iterator of [`Transmit::units`].
#[derive(Clone, Debug)]
pub struct Units<'a> {
    bytes: &'a [u8],
    ends: std::slice::Iter<'a, usize>,
    start: usize,
}

impl<'a> Iterator for Units<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.ends.next()?;
        let unit = &self.bytes[self.start..end];
        self.start = end;
        Some(unit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Units<'_> {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn units(t: &Transmit) -> Vec<Vec<u8>> {
        t.units().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn each_writer_is_one_unit_and_an_empty_one_is_none() {
        let mut t = Transmit::new();
        t.unit().extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        t.unit();
        {
            let mut unit = t.unit();
            unit.extend_from_slice(&[1, 2, 3]);
            unit.extend_from_slice(&[4]);
        }
        assert_eq!(
            units(&t),
            [b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), vec![1, 2, 3, 4]]
        );
        assert_eq!(t.unit_count(), 2);
        assert_eq!(t.len(), 23);
        assert_eq!(t.units().len(), 2);
    }

    #[test]
    fn a_unit_truncated_back_to_its_start_leaves_nothing() {
        let mut t = Transmit::new();
        t.unit().push(9);
        {
            let mut unit = t.unit();
            let start = unit.start();
            unit.extend_from_slice(&[1, 2]);
            unit.truncate(start);
        }
        assert_eq!(units(&t), [vec![9]]);
        assert_eq!(t.bytes(), [9]);
    }

    #[test]
    fn release_gives_back_only_an_empty_output() {
        let mut t = Transmit::new();
        t.unit().extend_from_slice(&[0; 100]);
        t.release_if_empty();
        assert!(t.capacity() >= 100);
        t.clear();
        assert!(t.capacity() >= 100, "clear keeps the memory");
        t.release_if_empty();
        assert_eq!(t.capacity(), 0);
    }

    proptest! {
        #[test]
        fn appending_keeps_every_unit_whole_and_in_order(
            first in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8),
            second in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8),
        ) {
            let fill = |parts: &[Vec<u8>]| {
                let mut t = Transmit::new();
                for part in parts {
                    t.unit().extend_from_slice(part);
                }
                t
            };
            let mut a = fill(&first);
            let mut b = fill(&second);
            a.append(&mut b);
            prop_assert!(b.is_empty());
            prop_assert_eq!(b.unit_count(), 0);
            let expected: Vec<Vec<u8>> = first.iter().chain(&second).cloned().collect();
            prop_assert_eq!(units(&a), expected.clone());
            let all = expected.concat();
            prop_assert_eq!(a.bytes(), &all[..]);
        }
    }
}
