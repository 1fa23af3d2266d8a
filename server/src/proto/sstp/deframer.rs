//! Delineation of SSTP packets in the TLS plaintext stream
//! ([MS-SSTP] 3.1.5.1, 3.1.7.2 "Receive HTTPS stream").
//!
//! The stream arrives in arbitrary chunks. Packets that lie whole inside a
//! chunk are yielded borrowed from it, without a copy; only a packet cut by
//! the end of a chunk is buffered, and yielded from the buffer once its
//! last byte arrives.

use std::fmt;

use super::wire::{PacketHeader, HEADER_LEN, MAX_PACKET_LEN};

/// Why delineation failed. [MS-SSTP] 3.1.5.1: the connection is then
/// aborted without sending anything, "to avoid the use of unreliable
/// streams".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeframeError {
    /// A Length field under the 4-byte header.
    LengthTooSmall {
        /// The 12-bit Length received.
        length: u16,
    },
    /// A Length field over the configured maximum.
    LengthTooLarge {
        /// The 12-bit Length received.
        length: u16,
        /// The configured maximum.
        max: u16,
    },
}

impl DeframeError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeframeError::LengthTooSmall { .. } => "length_too_small",
            DeframeError::LengthTooLarge { .. } => "length_too_large",
        }
    }
}

impl fmt::Display for DeframeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeframeError::LengthTooSmall { length } => {
                write!(f, "SSTP packet length {length} is under the 4-byte header")
            }
            DeframeError::LengthTooLarge { length, max } => {
                write!(f, "SSTP packet length {length} exceeds the maximum {max}")
            }
        }
    }
}

impl std::error::Error for DeframeError {}

/// Incremental SSTP deframer.
#[derive(Debug)]
pub struct Deframer {
    /// The partial packet carried over from earlier chunks (or a whole one
    /// waiting to be yielded).
    partial: Vec<u8>,
    /// Whether `partial` holds a whole packet that was already yielded.
    yielded: bool,
    max_len: u16,
    failed: Option<DeframeError>,
}

impl Deframer {
    /// A deframer accepting packets of up to `max_len` bytes (clamped to
    /// 4..=4095). The buffer is allocated the first time a packet straddles
    /// two chunks.
    pub fn new(max_len: u16) -> Self {
        Deframer {
            partial: Vec::new(),
            yielded: false,
            max_len: max_len.clamp(HEADER_LEN as u16, MAX_PACKET_LEN as u16),
            failed: None,
        }
    }

    /// The error that stopped this deframer, if any. After an error every
    /// later [`Feed`] is empty.
    pub fn error(&self) -> Option<DeframeError> {
        self.failed
    }

    /// Bytes of a packet that are buffered, waiting for the rest.
    pub fn buffered(&self) -> usize {
        if self.yielded {
            0
        } else {
            self.partial.len()
        }
    }

    /// Starts delineating `input`. Pull packets with [`Feed::next`] until it
    /// returns `None`; bytes not pulled when the `Feed` is dropped are lost,
    /// so pull to the end unless the connection is being torn down.
    #[must_use = "bytes not pulled from the Feed are lost"]
    pub fn feed<'d>(&'d mut self, input: &'d [u8]) -> Feed<'d> {
        Feed {
            deframer: self,
            input,
        }
    }

    fn check_length(&mut self, header: PacketHeader) -> Result<usize, DeframeError> {
        let error = if usize::from(header.length) < HEADER_LEN {
            DeframeError::LengthTooSmall {
                length: header.length,
            }
        } else if header.length > self.max_len {
            DeframeError::LengthTooLarge {
                length: header.length,
                max: self.max_len,
            }
        } else {
            return Ok(usize::from(header.length));
        };
        self.failed = Some(error);
        self.partial = Vec::new();
        Err(error)
    }
}

/// One chunk being delineated: a lending iterator over its packets.
#[derive(Debug)]
pub struct Feed<'d> {
    deframer: &'d mut Deframer,
    input: &'d [u8],
}

impl Feed<'_> {
    /// The next whole packet (header included), borrowed from the chunk or
    /// from the deframer's buffer; `None` once the chunk is used up (its
    /// tail is then buffered). A length error is returned once and stops the
    /// deframer for good.
    #[allow(clippy::should_implement_trait)] // a lending iterator: items borrow `self`
    #[must_use]
    pub fn next(&mut self) -> Option<Result<&[u8], DeframeError>> {
        let deframer = &mut *self.deframer;
        if deframer.failed.is_some() {
            self.input = &[];
            return None;
        }
        if std::mem::take(&mut deframer.yielded) {
            deframer.partial.clear();
        }
        if !deframer.partial.is_empty() {
            return self.continue_partial();
        }
        let header = match PacketHeader::parse(self.input) {
            Some(header) => header,
            None => {
                // Fewer than 4 bytes left (maybe none): keep them for later.
                deframer.partial.extend_from_slice(self.input);
                self.input = &[];
                return None;
            }
        };
        let len = match deframer.check_length(header) {
            Ok(len) => len,
            Err(error) => return Some(Err(error)),
        };
        match self.input.split_at_checked(len) {
            Some((packet, rest)) => {
                self.input = rest;
                Some(Ok(packet))
            }
            None => {
                deframer.partial.reserve_exact(len);
                deframer.partial.extend_from_slice(self.input);
                self.input = &[];
                None
            }
        }
    }

    /// Completes the buffered packet from the chunk.
    fn continue_partial(&mut self) -> Option<Result<&[u8], DeframeError>> {
        let deframer = &mut *self.deframer;
        if deframer.partial.len() < HEADER_LEN {
            let take = (HEADER_LEN - deframer.partial.len()).min(self.input.len());
            let (head, rest) = self.input.split_at(take);
            deframer.partial.extend_from_slice(head);
            self.input = rest;
        }
        let header = PacketHeader::parse(&deframer.partial)?;
        let len = match deframer.check_length(header) {
            Ok(len) => len,
            Err(error) => return Some(Err(error)),
        };
        let take = len
            .saturating_sub(deframer.partial.len())
            .min(self.input.len());
        let (body, rest) = self.input.split_at(take);
        deframer.partial.extend_from_slice(body);
        self.input = rest;
        if deframer.partial.len() < len {
            return None;
        }
        deframer.yielded = true;
        Some(Ok(&deframer.partial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the packets of each chunk, owned, and the first error.
    fn run(deframer: &mut Deframer, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<DeframeError>) {
        let mut packets = Vec::new();
        for chunk in chunks {
            let mut feed = deframer.feed(chunk);
            while let Some(item) = feed.next() {
                match item {
                    Ok(packet) => packets.push(packet.to_vec()),
                    Err(error) => return (packets, Some(error)),
                }
            }
        }
        (packets, None)
    }

    const ECHO: [u8; 8] = [0x10, 0x01, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00];
    const DATA: [u8; 6] = [0x10, 0x00, 0x00, 0x06, 0xc0, 0x21];

    #[test]
    fn whole_packets_in_one_chunk_are_borrowed_from_it() {
        let mut stream = ECHO.to_vec();
        stream.extend_from_slice(&DATA);
        let mut deframer = Deframer::new(4095);
        let mut feed = deframer.feed(&stream);
        let first = feed.next().unwrap().unwrap();
        assert_eq!(first, ECHO);
        assert_eq!(first.as_ptr(), stream.as_ptr(), "borrowed, not copied");
        let second = feed.next().unwrap().unwrap();
        assert_eq!(second, DATA);
        assert_eq!(second.as_ptr(), stream[8..].as_ptr());
        assert!(feed.next().is_none());
        assert_eq!(deframer.buffered(), 0);
        assert_eq!(deframer.partial.capacity(), 0, "nothing was buffered");
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut stream = ECHO.to_vec();
        stream.extend_from_slice(&DATA);
        stream.extend_from_slice(&ECHO);
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let mut deframer = Deframer::new(4095);
        let (packets, error) = run(&mut deframer, &chunks);
        assert_eq!(error, None);
        assert_eq!(packets, vec![ECHO.to_vec(), DATA.to_vec(), ECHO.to_vec()]);
        assert_eq!(deframer.buffered(), 0);
    }

    #[test]
    fn packet_split_across_chunks_then_whole_packets_after_it() {
        let mut stream = ECHO.to_vec();
        stream.extend_from_slice(&DATA);
        stream.extend_from_slice(&ECHO);
        // Cut inside the data packet's payload.
        let (a, b) = stream.split_at(11);
        let mut deframer = Deframer::new(4095);
        let (packets, error) = run(&mut deframer, &[a]);
        assert_eq!((packets, error), (vec![ECHO.to_vec()], None));
        assert_eq!(deframer.buffered(), 3);
        let (packets, error) = run(&mut deframer, &[b]);
        assert_eq!(error, None);
        assert_eq!(packets, vec![DATA.to_vec(), ECHO.to_vec()]);
    }

    #[test]
    fn reserved_length_bits_are_ignored() {
        // R bits set: 0xF0 0x08 still means length 8.
        let packet = [0x10, 0x01, 0xf0, 0x08, 0x00, 0x08, 0x00, 0x00];
        let mut deframer = Deframer::new(4095);
        let (packets, error) = run(&mut deframer, &[&packet]);
        assert_eq!((packets, error), (vec![packet.to_vec()], None));
    }

    #[test]
    fn length_under_header_is_an_error_and_stops_the_deframer() {
        let mut deframer = Deframer::new(4095);
        let (packets, error) = run(&mut deframer, &[&[0x10, 0x01, 0x00, 0x03, 0xff]]);
        assert!(packets.is_empty());
        assert_eq!(error, Some(DeframeError::LengthTooSmall { length: 3 }));
        assert_eq!(deframer.error(), error);
        let (packets, error) = run(&mut deframer, &[&ECHO]);
        assert_eq!((packets.len(), error), (0, None), "stopped for good");
    }

    #[test]
    fn length_over_the_maximum_is_an_error_even_when_split() {
        let mut deframer = Deframer::new(1500);
        let (packets, error) = run(&mut deframer, &[&[0x10], &[0x00, 0x05], &[0xdd]]);
        assert!(packets.is_empty());
        assert_eq!(
            error,
            Some(DeframeError::LengthTooLarge {
                length: 0x5dd,
                max: 1500
            })
        );
    }

    #[test]
    fn maximum_is_clamped_to_the_12_bit_length() {
        let deframer = Deframer::new(u16::MAX);
        assert_eq!(deframer.max_len, 4095);
        let mut packet = vec![0x10, 0x00, 0x0f, 0xff];
        packet.resize(4095, 0xab);
        let mut deframer = Deframer::new(4095);
        let (packets, error) = run(&mut deframer, &[&packet[..100], &packet[100..]]);
        assert_eq!(error, None);
        assert_eq!(packets, vec![packet]);
    }
}
