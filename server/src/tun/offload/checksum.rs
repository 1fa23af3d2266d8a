//! The Internet checksum ([RFC 1071]) and the pseudo-header sums that TCP
//! ([RFC 9293] 3.1) and UDP ([RFC 768]) cover, over IPv4 ([RFC 791]) and
//! IPv6 ([RFC 8200] 8.1).
//!
//! Sums are kept unfolded in a `u64` of big-endian 32-bit words: 2^16 is 1
//! modulo 2^16 - 1, so adding 32-bit words and folding at the end gives the
//! same one's complement sum as adding 16-bit words, at half the additions.
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
//! [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200

/// Adds `data` to `sum` as big-endian 16-bit words, an odd last byte
/// padded with a zero. `data` must start at an even offset of what is
/// summed (every caller sums whole headers, which have even lengths).
///
/// The 16-bit words are summed in the machine's own byte order into a
/// 32-bit total per 64 KiB (32,768 words of at most 2^16 - 1 cannot
/// overflow it), a loop the compiler turns into vector additions even on
/// baseline x86-64, and the folded result is byte-swapped into network
/// order: the one's complement sum commutes with swapping the bytes of
/// every word ([RFC 1071] 2(B)). Summing big-endian 32-bit words costs a
/// swap per word and vectorises two lanes wide; it was most of the
/// segmenter's time.
///
/// [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
pub(crate) fn add(sum: u64, data: &[u8]) -> u64 {
    let mut native = 0u64;
    for block in data.chunks(1 << 16) {
        let mut words = block.chunks_exact(2);
        let mut total = 0u32;
        for word in &mut words {
            total += u32::from(u16::from_ne_bytes([word[0], word[1]]));
        }
        native += u64::from(total);
        if let [last] = words.remainder() {
            native += u64::from(u16::from_ne_bytes([*last, 0]));
        }
    }
    sum + u64::from(u16::from_be(fold(native)))
}

/// Folds an unfolded sum to 16 bits (end-around carry).
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field's value for data whose sum (with the field zero) is
/// `sum`: the one's complement of the folded sum.
pub(crate) fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// The pseudo-header's sum: source and destination addresses (4 or 16
/// bytes each), the protocol number and the transport length.
pub(crate) fn pseudo_header(source: &[u8], destination: &[u8], protocol: u8, length: usize) -> u64 {
    add(add(0, source), destination) + u64::from(protocol) + length as u64
}

/// Whether a transport segment's checksum (covered by `sum`, which
/// includes the pseudo-header and the checksum field) is right.
pub(crate) fn verifies(sum: u64) -> bool {
    fold(sum) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [RFC 1071] as written: big-endian 16-bit words, an odd byte padded.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in data.chunks(2) {
            let high = u64::from(pair[0]) << 8;
            sum += high | pair.get(1).map_or(0, |&low| u64::from(low));
        }
        fold(sum)
    }

    proptest! {
        /// The vectorised native-order sum, folded and swapped, is the
        /// one's complement sum of big-endian words, at any length and
        /// added to any running sum.
        #[test]
        fn add_is_the_big_endian_sum(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            start in any::<u32>(),
        ) {
            let start = u64::from(start);
            let expected = fold(start + u64::from(reference(&data)));
            prop_assert_eq!(fold(add(start, &data)) % 0xffff, expected % 0xffff);
        }
    }

    #[test]
    fn sums_of_all_ones_and_of_nothing() {
        assert_eq!(fold(add(0, &[])), 0);
        assert_eq!(fold(add(0, &[0xff; 1400])), 0xffff);
        assert_eq!(fold(add(0, &[0xff; 1401])), 0xff00);
        assert_eq!(fold(add(0, &[0x12])), 0x1200);
        assert_eq!(fold(add(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }
}
