//! Asynchronous HDLC-like framing ([RFC 1662] 4): octet stuffing with the
//! Control Escape, the Async-Control-Character-Map and the 16-bit FCS.
//!
//! SSTP itself carries bare PPP frames; this framing is what pppd and
//! sstp-client speak on a tty or socket (sstp-client's fd 0 with
//! `--nolaunchpppd`). The interoperability tests play pppd with it against
//! the real client; the benchmarks measure it. sstpd itself never uses it.
//!
//! * [`HdlcEncoder::encode`] appends one framed frame to a caller buffer.
//! * [`HdlcDecoder::decode`] takes arbitrary chunks of a byte stream and
//!   yields frames (without FCS) borrowed from its buffer, or a typed
//!   [`HdlcError`] for a frame it had to drop.
//!
//! [RFC 1662]: https://www.rfc-editor.org/rfc/rfc1662

/// [RFC 1662] 4.1: the Flag Sequence delimiting frames.
pub const FLAG: u8 = 0x7e;
/// [RFC 1662] 4.2: the Control Escape octet.
pub const CONTROL_ESCAPE: u8 = 0x7d;
/// [RFC 1662] 4.2: what an escaped octet is exclusive-or'd with.
const ESCAPE_XOR: u8 = 0x20;
/// [RFC 1662] 7.1: the ACCM until LCP agrees otherwise: every control
/// character (0x00 to 0x1f) is escaped.
pub const DEFAULT_ACCM: u32 = 0xffff_ffff;
/// [RFC 1662] C.2 PPPINITFCS16.
pub const FCS16_INIT: u16 = 0xffff;
/// [RFC 1662] C.2 PPPGOODFCS16: the FCS over a frame and its own FCS.
pub const FCS16_GOOD: u16 = 0xf0b8;
/// Octets of the 16-bit FCS.
pub const FCS_LEN: usize = 2;
/// [RFC 1662] 4.3: frames shorter than this (FCS included) are invalid.
pub const MIN_FRAME_LEN: usize = 4;
/// The largest PPP frame an SSTP data packet carries: the 12-bit
/// [MS-SSTP] 2.2.3 length less the 4-octet SSTP header.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4091;

/// [RFC 1662] C.2: the FCS-16 lookup table, built at compile time for the
/// reflected polynomial x^16 + x^12 + x^5 + 1 (0x8408).
const FCS16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u16;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 != 0 {
                (value >> 1) ^ 0x8408
            } else {
                value >> 1
            };
            bit += 1;
        }
        table[index] = value;
        index += 1;
    }
    table
};

/// [RFC 1662] C.2 pppfcs16: runs the FCS over `data` starting from `fcs`.
/// A frame's FCS is the ones' complement of `fcs16(FCS16_INIT, frame)`,
/// sent least significant octet first.
pub fn fcs16(mut fcs: u16, data: &[u8]) -> u16 {
    for &octet in data {
        fcs = (fcs >> 8) ^ FCS16_TABLE[usize::from((fcs ^ u16::from(octet)) & 0xff)];
    }
    fcs
}

/// Frames PPP packets for an asynchronous link ([RFC 1662] 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HdlcEncoder {
    accm: u32,
}

impl Default for HdlcEncoder {
    fn default() -> Self {
        HdlcEncoder::new(DEFAULT_ACCM)
    }
}

impl HdlcEncoder {
    /// An encoder escaping the control characters flagged in `accm` (bit n
    /// for octet n, [RFC 1662] 7.1) besides Flag and Control Escape.
    pub fn new(accm: u32) -> Self {
        HdlcEncoder { accm }
    }

    pub fn accm(&self) -> u32 {
        self.accm
    }

    fn needs_escape(&self, octet: u8) -> bool {
        octet == FLAG || octet == CONTROL_ESCAPE || (octet < 0x20 && self.accm & (1 << octet) != 0)
    }

    fn push_escaped(&self, mut data: &[u8], out: &mut Vec<u8>) {
        while let Some(position) = data.iter().position(|&octet| self.needs_escape(octet)) {
            out.extend_from_slice(&data[..position]);
            out.push(CONTROL_ESCAPE);
            out.push(data[position] ^ ESCAPE_XOR);
            data = &data[position + 1..];
        }
        out.extend_from_slice(data);
    }

    /// Appends `frame` (address, control, protocol and information, as the
    /// PPP layer built it) framed: Flag, stuffed frame and FCS, Flag.
    pub fn encode(&self, frame: &[u8], out: &mut Vec<u8>) {
        out.reserve(frame.len() + frame.len() / 4 + 2 * FCS_LEN + 2);
        out.push(FLAG);
        self.push_escaped(frame, out);
        let fcs = !fcs16(FCS16_INIT, frame);
        self.push_escaped(&fcs.to_le_bytes(), out);
        out.push(FLAG);
    }
}

/// Why the decoder dropped a frame. The first three are the invalid frames
/// of [RFC 1662] 4.3 (normally dropped silently; reported here so they can
/// be counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HdlcError {
    /// The FCS did not check.
    BadFcs,
    /// Fewer than [`MIN_FRAME_LEN`] octets between two flags.
    TooShort,
    /// The frame ended with Control Escape, Flag: the sender aborted it.
    Aborted,
    /// Longer than the decoder's maximum; dropped up to the next flag.
    Oversize,
}

impl HdlcError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HdlcError::BadFcs => "bad_fcs",
            HdlcError::TooShort => "too_short",
            HdlcError::Aborted => "aborted",
            HdlcError::Oversize => "oversize",
        }
    }
}

impl std::fmt::Display for HdlcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for HdlcError {}

/// Recovers frames from an asynchronous byte stream ([RFC 1662] 4.2),
/// chunk by chunk. Its buffer is reused, so steady-state decoding does not
/// allocate.
#[derive(Clone, Debug)]
pub struct HdlcDecoder {
    /// Unstuffed octets of the frame in progress, FCS included.
    frame: Vec<u8>,
    max_frame_len: usize,
    receive_accm: u32,
    /// The last octet was a Control Escape.
    escaped: bool,
    /// The frame in progress grew too long: drop octets up to the flag.
    discarding: bool,
    /// `frame` holds a frame handed out by the last call.
    delivered: bool,
}

impl Default for HdlcDecoder {
    fn default() -> Self {
        HdlcDecoder::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl HdlcDecoder {
    /// A decoder for frames of up to `max_frame_len` octets (FCS not
    /// counted), with the default receive ACCM.
    pub fn new(max_frame_len: usize) -> Self {
        HdlcDecoder {
            frame: Vec::with_capacity(max_frame_len.min(DEFAULT_MAX_FRAME_LEN) + FCS_LEN),
            max_frame_len,
            receive_accm: DEFAULT_ACCM,
            escaped: false,
            discarding: false,
            delivered: false,
        }
    }

    /// Sets the receive ACCM: unescaped control characters flagged in it
    /// are removed as line noise ([RFC 1662] 4.2). Zero keeps them all.
    pub fn set_receive_accm(&mut self, accm: u32) {
        self.receive_accm = accm;
    }

    /// Forgets any partial frame (e.g. after the stream was interrupted).
    pub fn reset(&mut self) {
        self.frame.clear();
        self.escaped = false;
        self.discarding = false;
        self.delivered = false;
    }

    /// Consumes octets from the front of `input` up to the end of the next
    /// frame and returns it (without FCS), or the error for a dropped one.
    /// `None` once `input` is used up; a partial frame waits for the next
    /// chunk. Call again with the rest of `input` until `None`.
    pub fn decode<'a>(&'a mut self, input: &mut &[u8]) -> Option<Result<&'a [u8], HdlcError>> {
        if std::mem::take(&mut self.delivered) {
            self.frame.clear();
        }
        while let Some((&octet, rest)) = input.split_first() {
            *input = rest;
            if octet == FLAG {
                let escaped = std::mem::take(&mut self.escaped);
                if std::mem::take(&mut self.discarding) {
                    continue; // Already reported as Oversize.
                }
                if escaped {
                    self.frame.clear();
                    return Some(Err(HdlcError::Aborted));
                }
                if self.frame.is_empty() {
                    continue; // Back-to-back flags between frames.
                }
                return Some(self.finish_frame());
            }
            if self.discarding || (octet < 0x20 && self.receive_accm & (1 << octet) != 0) {
                continue;
            }
            let octet = if std::mem::take(&mut self.escaped) {
                octet ^ ESCAPE_XOR
            } else if octet == CONTROL_ESCAPE {
                self.escaped = true;
                continue;
            } else {
                octet
            };
            if self.frame.len() == self.max_frame_len + FCS_LEN {
                self.frame.clear();
                self.discarding = true;
                return Some(Err(HdlcError::Oversize));
            }
            self.frame.push(octet);
        }
        None
    }

    /// Checks the frame a closing flag ended.
    fn finish_frame(&mut self) -> Result<&[u8], HdlcError> {
        if self.frame.len() < MIN_FRAME_LEN {
            self.frame.clear();
            return Err(HdlcError::TooShort);
        }
        if fcs16(FCS16_INIT, &self.frame) != FCS16_GOOD {
            self.frame.clear();
            return Err(HdlcError::BadFcs);
        }
        self.delivered = true;
        let len = self.frame.len() - FCS_LEN;
        Ok(&self.frame[..len])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An LCP Configure-Request (Magic-Number 0x12345678) as pppd frames
    /// it, and the same framed under the default ACCM; FCS computed
    /// independently (bitwise, in Python).
    const LCP_FRAME: [u8; 14] = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x0a, 0x05, 0x06, 0x12, 0x34, 0x56, 0x78,
    ];
    const LCP_ENCODED: [u8; 27] = [
        0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x7d, 0x21, 0x7d, 0x21, 0x7d, 0x20, 0x7d, 0x2a, 0x7d,
        0x25, 0x7d, 0x26, 0x7d, 0x32, 0x34, 0x56, 0x78, 0x79, 0x7d, 0x20, 0x7e,
    ];

    fn encode(frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        HdlcEncoder::default().encode(frame, &mut out);
        out
    }

    /// Everything `decoder` yields for `input` fed in one piece.
    fn decode_all(decoder: &mut HdlcDecoder, mut input: &[u8]) -> Vec<Result<Vec<u8>, HdlcError>> {
        let mut out = Vec::new();
        while let Some(item) = decoder.decode(&mut input) {
            out.push(item.map(<[u8]>::to_vec));
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn fcs_check_values() {
        // The CRC-16/X-25 check value, which PPP's FCS-16 is.
        assert_eq!(!fcs16(FCS16_INIT, b"123456789"), 0x906e);
        // [RFC 1662] C.2: FCS over a frame plus its FCS is the good FCS.
        let fcs = !fcs16(FCS16_INIT, &LCP_FRAME);
        let mut with_fcs = LCP_FRAME.to_vec();
        with_fcs.extend_from_slice(&fcs.to_le_bytes());
        assert_eq!(fcs16(FCS16_INIT, &with_fcs), FCS16_GOOD);
        assert_eq!(FCS16_TABLE[1], 0x1189);
        assert_eq!(FCS16_TABLE[255], 0x0f78);
    }

    #[test]
    fn encodes_lcp_exactly() {
        assert_eq!(encode(&LCP_FRAME), LCP_ENCODED);
        let mut decoder = HdlcDecoder::default();
        assert_eq!(
            decode_all(&mut decoder, &LCP_ENCODED),
            [Ok(LCP_FRAME.to_vec())]
        );
    }

    #[test]
    fn escapes_flag_escape_and_accm_characters() {
        let frame = [0x21, 0x45, 0x7e, 0x7d, 0x00, 0x11, 0x1f, 0x20];
        assert_eq!(
            encode(&frame),
            [
                0x7e, 0x21, 0x45, 0x7d, 0x5e, 0x7d, 0x5d, 0x7d, 0x20, 0x7d, 0x31, 0x7d, 0x3f, 0x20,
                0xaf, 0xfe, 0x7e
            ]
        );
        // With an empty ACCM only Flag and Control Escape are stuffed.
        let mut out = Vec::new();
        HdlcEncoder::new(0).encode(&frame, &mut out);
        assert_eq!(
            out,
            [0x7e, 0x21, 0x45, 0x7d, 0x5e, 0x7d, 0x5d, 0x00, 0x11, 0x1f, 0x20, 0xaf, 0xfe, 0x7e]
        );
        // Decoding that needs a receive ACCM of zero, else 0x00, 0x11 and
        // 0x1f are taken for line noise and the FCS fails.
        let mut decoder = HdlcDecoder::default();
        decoder.set_receive_accm(0);
        assert_eq!(decode_all(&mut decoder, &out), [Ok(frame.to_vec())]);
        let mut strict = HdlcDecoder::default();
        assert_eq!(decode_all(&mut strict, &out), [Err(HdlcError::BadFcs)]);
    }

    #[test]
    fn line_noise_in_the_accm_is_removed() {
        let mut noisy = LCP_ENCODED.to_vec();
        noisy.insert(5, 0x11); // XON inserted by a modem
        noisy.insert(1, 0x13); // XOFF
        let mut decoder = HdlcDecoder::default();
        assert_eq!(decode_all(&mut decoder, &noisy), [Ok(LCP_FRAME.to_vec())]);
    }

    #[test]
    fn double_escape_unstuffs_the_second() {
        // 7d 7d: the second Control Escape is the escaped octet (0x5d).
        let mut stream = vec![FLAG];
        let frame = [0x5d, 0x01, 0x02];
        let fcs = !fcs16(FCS16_INIT, &frame);
        stream.extend_from_slice(&[0x7d, 0x7d, 0x7d, 0x21, 0x7d, 0x22]);
        HdlcEncoder::default().push_escaped(&fcs.to_le_bytes(), &mut stream);
        stream.push(FLAG);
        let mut decoder = HdlcDecoder::default();
        assert_eq!(decode_all(&mut decoder, &stream), [Ok(frame.to_vec())]);
    }

    #[test]
    fn invalid_frames_are_reported_and_decoding_goes_on() {
        let good = encode(&LCP_FRAME);
        let mut bad_fcs = good.clone();
        bad_fcs[3] ^= 0x01;
        let aborted = [FLAG, 0xff, 0x7d, 0x23, 0xc0, CONTROL_ESCAPE, FLAG];
        let short = [FLAG, 0x41, 0x42, 0x43, FLAG];
        let mut stream = Vec::new();
        for part in [&bad_fcs[..], &good, &aborted, &good, &short, &good] {
            stream.extend_from_slice(part);
        }
        let mut decoder = HdlcDecoder::default();
        let frame = Ok(LCP_FRAME.to_vec());
        assert_eq!(
            decode_all(&mut decoder, &stream),
            [
                Err(HdlcError::BadFcs),
                frame.clone(),
                Err(HdlcError::Aborted),
                frame.clone(),
                Err(HdlcError::TooShort),
                frame,
            ]
        );
        assert_eq!(HdlcError::BadFcs.as_str(), "bad_fcs");
        assert_eq!(HdlcError::Oversize.to_string(), "oversize");
    }

    #[test]
    fn oversize_frames_are_dropped_to_the_next_flag() {
        let mut decoder = HdlcDecoder::new(16);
        let exactly = [0xabu8; 16];
        let over = [0xcdu8; 17];
        let mut stream = encode(&exactly);
        stream.extend_from_slice(&encode(&over));
        stream.extend_from_slice(&encode(&LCP_FRAME));
        assert_eq!(
            decode_all(&mut decoder, &stream),
            [
                Ok(exactly.to_vec()),
                Err(HdlcError::Oversize),
                Ok(LCP_FRAME.to_vec())
            ]
        );
    }

    #[test]
    fn shared_and_idle_flags() {
        // One flag closing a frame and opening the next, idle flags, and a
        // stream that starts without a flag.
        let mut stream = encode(&LCP_FRAME)[1..].to_vec();
        stream.extend_from_slice(&encode(&[1, 2, 3, 4])[1..]);
        stream.extend_from_slice(&[FLAG, FLAG, FLAG]);
        let mut decoder = HdlcDecoder::default();
        assert_eq!(
            decode_all(&mut decoder, &stream),
            [Ok(LCP_FRAME.to_vec()), Ok(vec![1, 2, 3, 4])]
        );
    }

    /// A session start as the wire shows it: LCP, a CHAP Challenge with
    /// octets needing escapes, an IPv4 packet without address/control and
    /// with a compressed protocol field, idle flags between.
    fn realistic_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut chap = vec![0xff, 0x03, 0xc2, 0x23, 0x01, 0x7e, 0x00, 0x15, 0x10];
        chap.extend((0u8..16).map(|i| i.wrapping_mul(0x3f) ^ 0x7d));
        chap.extend_from_slice(b"sstpd");
        let mut ip = vec![0x21, 0x45, 0x00, 0x00, 0x1c];
        ip.extend((0u8..23).map(|i| i.wrapping_mul(11)));
        let frames = vec![LCP_FRAME.to_vec(), chap, ip];
        let mut stream = vec![FLAG, FLAG];
        for frame in &frames {
            HdlcEncoder::default().encode(frame, &mut stream);
        }
        (stream, frames)
    }

    #[test]
    fn stream_split_at_every_position() {
        let (stream, frames) = realistic_stream();
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let mut decoder = HdlcDecoder::default();
                let mut got = Vec::new();
                for chunk in [&stream[..first], &stream[first..second], &stream[second..]] {
                    got.extend(decode_all(&mut decoder, chunk));
                }
                let expected: Vec<_> = frames.iter().cloned().map(Ok).collect();
                assert_eq!(got, expected, "split at {first}/{second}");
            }
        }
    }

    #[test]
    fn byte_at_a_time() {
        let (stream, frames) = realistic_stream();
        let mut decoder = HdlcDecoder::default();
        let got: Vec<_> = stream
            .chunks(1)
            .flat_map(|chunk| decode_all(&mut decoder, chunk))
            .collect();
        assert_eq!(got, frames.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn reset_drops_a_partial_frame() {
        let mut decoder = HdlcDecoder::default();
        assert!(decode_all(&mut decoder, &LCP_ENCODED[..10]).is_empty());
        decoder.reset();
        assert_eq!(
            decode_all(&mut decoder, &LCP_ENCODED),
            [Ok(LCP_FRAME.to_vec())]
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 2..64), 1..5),
            accm in any::<u32>(),
            split in any::<prop::sample::Index>(),
        ) {
            let encoder = HdlcEncoder::new(accm);
            let mut stream = Vec::new();
            for frame in &frames {
                let mut one = Vec::new();
                encoder.encode(frame, &mut one);
                // Flags only at the ends; nothing the ACCM flags unescaped.
                prop_assert_eq!(one[0], FLAG);
                prop_assert_eq!(one[one.len() - 1], FLAG);
                for &octet in &one[1..one.len() - 1] {
                    prop_assert_ne!(octet, FLAG);
                    prop_assert!(octet >= 0x20 || accm & (1 << octet) == 0);
                }
                stream.extend_from_slice(&one);
            }
            let mut decoder = HdlcDecoder::new(64);
            decoder.set_receive_accm(accm);
            let at = split.index(stream.len() + 1);
            let mut got = decode_all(&mut decoder, &stream[..at]);
            got.extend(decode_all(&mut decoder, &stream[at..]));
            prop_assert_eq!(got, frames.into_iter().map(Ok).collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_input_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            max in 0usize..40,
            accm in any::<u32>(),
        ) {
            let mut decoder = HdlcDecoder::new(max);
            decoder.set_receive_accm(accm);
            for chunk in &chunks {
                for frame in decode_all(&mut decoder, chunk).into_iter().flatten() {
                    prop_assert!(frame.len() <= max);
                    prop_assert!(frame.len() + FCS_LEN >= MIN_FRAME_LEN);
                }
            }
        }
    }
}
