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
pub(crate) fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        sum += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
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
