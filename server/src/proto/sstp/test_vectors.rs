//! Byte strings from [MS-SSTP] 4.7 and from sstp-client (peers.md), shared
//! by the tests.

/// Bytes from a hex dump (spaces, newlines and dashes ignored).
pub(crate) fn hex(text: &str) -> Vec<u8> {
    hex::decode(text.replace([' ', '\n', '-'], "")).unwrap()
}

/// A fixed-size array from a hex dump.
pub(crate) fn array<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().unwrap()
}

/// [MS-SSTP] 4.7, SHA-256 example: the Call Connected message, the
/// server's HLAK and the certificate hash.
pub(crate) const SHA256_CALL_CONNECTED: &str = "
    10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 02
    41 2B 48 9A EB D7 EC C7 D0 89 66 F2 6B E7 CD 72
    B2 31 A0 E9 21 0D 7C 91 B3 08 86 2B 03 44 C4 35
    79 93 EF 31 4C 49 3D AC E9 F0 2D 60 E7 E6 1C 84
    B6 69 0A AF E9 D7 AE EA 92 CB BE 8A D5 99 42 2D
    52 A6 8E FD 8C FF BF 52 77 0B 8F 0F E8 EC 73 71
    65 83 AF 6D 61 1E B6 D1 79 B3 B2 08 40 98 54 49";
pub(crate) const SHA256_HLAK: &str = "
    2A 1B B4 0D 55 AB 0F 5E F3 2F 06 F2 B3 CC 73 C4
    8F D3 FA C4 1D 7A 13 15 A1 92 28 D9 02 4C A1 64";
pub(crate) const SHA256_NONCE: &str = "
    41 2B 48 9A EB D7 EC C7 D0 89 66 F2 6B E7 CD 72
    B2 31 A0 E9 21 0D 7C 91 B3 08 86 2B 03 44 C4 35";
pub(crate) const SHA256_CERT: &str = "
    79 93 EF 31 4C 49 3D AC E9 F0 2D 60 E7 E6 1C 84
    B6 69 0A AF E9 D7 AE EA 92 CB BE 8A D5 99 42 2D";

/// [MS-SSTP] 4.7, SHA-1 example.
pub(crate) const SHA1_CALL_CONNECTED: &str = "
    10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 01
    0F 1A 2D 58 D4 A3 E3 00 0F AD 3C E4 90 6E 07 B7
    07 AA 9E 44 1C CE AC 5C BD 7B 2C C1 C9 D8 6C DF
    58 26 B6 29 BD A5 9B 8E 6F D8 DC D2 62 2F D3 4C
    53 48 05 A5 00 00 00 00 00 00 00 00 00 00 00 00
    69 91 5D D5 83 D8 06 2F EF 16 F6 1D B2 F0 32 90
    EC 27 CB 6C 00 00 00 00 00 00 00 00 00 00 00 00";
pub(crate) const SHA1_HLAK: &str = "
    4B 31 28 F4 39 25 D9 00-6E EF B1 C4 E8 65 15 A1
    D8 8E 56 BA B3 CA 2B DF-03 73 B7 F5 A8 A1 3B 19";
pub(crate) const SHA1_NONCE: &str = "
    0F 1A 2D 58 D4 A3 E3 00 0F AD 3C E4 90 6E 07 B7
    07 AA 9E 44 1C CE AC 5C BD 7B 2C C1 C9 D8 6C DF";
pub(crate) const SHA1_CERT: &str = "58 26 B6 29 BD A5 9B 8E 6F D8 DC D2 62 2F D3 4C 53 48 05 A5";

/// [MS-SSTP] 4.7 and sstp-client (peers.md): the same 14 bytes.
pub(crate) const CONNECT_REQUEST: &str = "10 01 00 0e 00 01 00 01 00 01 00 06 00 01";

/// [MS-SSTP] 4.7: Call Connect Acknowledge offering SHA-256 only.
pub(crate) const CONNECT_ACK_SHA256: &str = "
    10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 02
    41 2B 48 9A EB D7 EC C7 D0 89 66 F2 6B E7 CD 72
    B2 31 A0 E9 21 0D 7C 91 B3 08 86 2B 03 44 C4 35";

/// [MS-SSTP] 4.7: Call Connect Acknowledge offering SHA-1 only.
pub(crate) const CONNECT_ACK_SHA1: &str = "
    10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 01
    0F 1A 2D 58 D4 A3 E3 00 0F AD 3C E4 90 6E 07 B7
    07 AA 9E 44 1C CE AC 5C BD 7B 2C C1 C9 D8 6C DF";

/// sstp-client 1.0.18's request, byte for byte (peers.md).
pub(crate) const SSTPC_REQUEST: &[u8] = b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 18446744073709551615\r\nSSTPCORRELATIONID: {6BAA1E45-9937-77B0-567472AB}\r\n\r\n";
