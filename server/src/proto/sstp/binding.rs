//! The crypto binding ([MS-SSTP] 3.2.5.2, 2.2.7, 2.2.11): ties the PPP
//! authentication to the TLS connection so that a man in the middle cannot
//! relay PPP authentication from elsewhere.
//!
//! ```text
//! CMK = first L octets of PRF+(HLAK, "SSTP inner method derived CMK", L)
//!     = HMAC(HLAK, seed ‖ L as u16 little-endian ‖ 0x01)      (one PRF+ block)
//! MAC = HMAC(CMK, the 112-byte Call Connected message, MAC field zeroed)
//! ```
//! with HMAC-SHA1 (L = 20) or HMAC-SHA256 (L = 32) as the client chose.

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::wire::{
    AttributeId, HashProtocol, HashProtocols, MessageType, CALL_CONNECTED_LEN, NONCE_LEN,
};

/// The Compound MAC Key seed: 29 ASCII bytes, no terminator
/// ([MS-SSTP] 3.2.5.2.2, 3.2.5.2.4).
pub const CMK_SEED: &[u8; 29] = b"SSTP inner method derived CMK";

/// Offsets of the Call Connected fields ([MS-SSTP] 2.2.11).
const HASH_PROTOCOL_AT: usize = 15;
const NONCE_AT: usize = 16;
const CERT_HASH_AT: usize = 48;
const MAC_AT: usize = 80;

/// The hashes of the server's leaf certificate (its DER encoding), as the
/// server configures them (ServerCertificateHash, [MS-SSTP] 3.3.1) and the
/// client reads them from the TLS handshake (ClientCertificateHash, 3.2.1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CertHashes {
    /// SHA-1 of the certificate.
    pub sha1: [u8; 20],
    /// SHA-256 of the certificate.
    pub sha256: [u8; 32],
}

impl CertHashes {
    /// Hashes a DER-encoded X.509 certificate.
    pub fn of_der(der: &[u8]) -> Self {
        CertHashes {
            sha1: Sha1::digest(der).into(),
            sha256: Sha256::digest(der).into(),
        }
    }

    /// The hash for `protocol`: 20 or 32 bytes.
    pub fn get(&self, protocol: HashProtocol) -> &[u8] {
        match protocol {
            HashProtocol::Sha1 => &self.sha1,
            HashProtocol::Sha256 => &self.sha256,
        }
    }
}

impl fmt::Debug for CertHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        f.debug_struct("CertHashes")
            .field("sha256", &hex(&self.sha256))
            .finish_non_exhaustive()
    }
}

/// Why a Call Connected message fails the server's checks
/// ([MS-SSTP] 3.3.5.2.3). The server then aborts with AttribID
/// SSTP_ATTRIB_CRYPTO_BINDING and ATTRIB_STATUS_VALUE_NOT_SUPPORTED; each
/// cause is kept apart so that it can be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BindingError {
    /// The Hash Protocol is undefined or not one the server offered.
    HashProtocolNotOffered,
    /// The nonce differs from the one in the Call Connect Acknowledge.
    WrongNonce,
    /// The certificate hash is not the server certificate's.
    WrongCertHash,
    /// The Compound MAC does not verify with the server's HLAK.
    WrongMac,
}

impl BindingError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            BindingError::HashProtocolNotOffered => "hash_protocol_not_offered",
            BindingError::WrongNonce => "wrong_nonce",
            BindingError::WrongCertHash => "wrong_cert_hash",
            BindingError::WrongMac => "wrong_mac",
        }
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for BindingError {}

/// HMAC with the chosen hash over the concatenation of `parts`; the output
/// (20 or 32 bytes) zero-padded to 32.
fn hmac(protocol: HashProtocol, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length ([RFC 2104] 2), so `new_from_slice`
    // cannot fail here.
    const ANY_KEY: &str = "HMAC accepts keys of any length";
    let mut out = [0u8; 32];
    match protocol {
        HashProtocol::Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).expect(ANY_KEY);
            parts.iter().for_each(|part| mac.update(part));
            out[..20].copy_from_slice(&mac.finalize().into_bytes());
        }
        HashProtocol::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect(ANY_KEY);
            parts.iter().for_each(|part| mac.update(part));
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
    }
    out
}

/// The Compound MAC Key ([MS-SSTP] 3.2.5.2.2, 3.2.5.2.4): the first
/// PRF+ block T1 = HMAC(HLAK, seed ‖ LEN ‖ 0x01), LEN the output length as
/// a little-endian u16. One block covers the 20 or 32 bytes needed.
/// Zero-padded to 32 bytes for SHA-1.
pub fn compound_mac_key(protocol: HashProtocol, hlak: &[u8; 32]) -> [u8; 32] {
    let len = (protocol.output_len() as u16).to_le_bytes();
    hmac(protocol, hlak, &[CMK_SEED, &len, &[0x01]])
}

/// The Compound MAC over a Call Connected message
/// ([MS-SSTP] 3.2.5.2.1, 3.2.5.2.3): HMAC keyed with the CMK over the whole
/// 112-byte message with the Compound MAC field and its padding zeroed. The
/// certificate-hash padding is zeroed as well: it "MUST be set to zero when
/// sent and ignored on receipt", so a compliant sender computed over zeros.
/// Zero-padded to 32 bytes for SHA-1.
pub fn compound_mac(
    protocol: HashProtocol,
    hlak: &[u8; 32],
    message: &[u8; CALL_CONNECTED_LEN],
) -> [u8; 32] {
    let mut zeroed = *message;
    zeroed[CERT_HASH_AT + protocol.output_len()..MAC_AT].fill(0);
    zeroed[MAC_AT..].fill(0);
    let cmk = compound_mac_key(protocol, hlak);
    hmac(protocol, &cmk[..protocol.output_len()], &[&zeroed])
}

/// Builds the client's Call Connected message ([MS-SSTP] 2.2.11,
/// 3.2.7.1): the server's nonce, the certificate hash of the chosen
/// protocol and the Compound MAC computed with the client's HLAK.
pub fn build_call_connected(
    protocol: HashProtocol,
    nonce: &[u8; NONCE_LEN],
    cert: &CertHashes,
    hlak: &[u8; 32],
) -> [u8; CALL_CONNECTED_LEN] {
    let mut message = [0u8; CALL_CONNECTED_LEN];
    // Header: version, C = 1, length 112; type, one attribute; the Crypto
    // Binding attribute header (length 104).
    message[..12].copy_from_slice(&[
        0x10,
        0x01,
        0x00,
        CALL_CONNECTED_LEN as u8,
        0x00,
        MessageType::CallConnected.as_u16() as u8,
        0x00,
        0x01,
        0x00,
        AttributeId::CryptoBinding.as_u8(),
        0x00,
        (CALL_CONNECTED_LEN - 8) as u8,
    ]);
    message[HASH_PROTOCOL_AT] = protocol.as_u8();
    message[NONCE_AT..CERT_HASH_AT].copy_from_slice(nonce);
    let hash = cert.get(protocol);
    message[CERT_HASH_AT..CERT_HASH_AT + hash.len()].copy_from_slice(hash);
    let mac = compound_mac(protocol, hlak, &message);
    message[MAC_AT..].copy_from_slice(&mac);
    message
}

/// What the server checks a Call Connected message against
/// ([MS-SSTP] 3.3.5.2.3).
#[derive(Clone, Copy)]
pub struct BindingExpectation<'a> {
    /// ServerHashProtocolSupported: what the Call Connect Acknowledge offered.
    pub offered: HashProtocols,
    /// The nonce the Call Connect Acknowledge carried.
    pub nonce: &'a [u8; NONCE_LEN],
    /// ServerCertificateHash.
    pub cert: &'a CertHashes,
    /// ServerHLAKKey.
    pub hlak: &'a [u8; 32],
}

impl fmt::Debug for BindingExpectation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HLAK is a secret: left out.
        f.debug_struct("BindingExpectation")
            .field("offered", &self.offered)
            .field("cert", self.cert)
            .finish_non_exhaustive()
    }
}

/// Verifies a Call Connected message whose framing is already checked
/// (one Crypto Binding attribute of length 104): hash protocol, nonce,
/// certificate hash and Compound MAC, in that order, each comparison in
/// constant time. Returns the protocol the client chose.
pub fn verify_call_connected(
    message: &[u8; CALL_CONNECTED_LEN],
    expected: &BindingExpectation<'_>,
) -> Result<HashProtocol, BindingError> {
    let protocol = HashProtocol::from_u8(message[HASH_PROTOCOL_AT])
        .filter(|&p| expected.offered.contains(p))
        .ok_or(BindingError::HashProtocolNotOffered)?;
    let len = protocol.output_len();
    if !bool::from(message[NONCE_AT..CERT_HASH_AT].ct_eq(expected.nonce)) {
        return Err(BindingError::WrongNonce);
    }
    let cert_hash = &message[CERT_HASH_AT..CERT_HASH_AT + len];
    if !bool::from(cert_hash.ct_eq(expected.cert.get(protocol))) {
        return Err(BindingError::WrongCertHash);
    }
    let mac = compound_mac(protocol, expected.hlak, message);
    if !bool::from(message[MAC_AT..MAC_AT + len].ct_eq(&mac[..len])) {
        return Err(BindingError::WrongMac);
    }
    Ok(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sstp::test_vectors::*;

    /// The certificate hashes of the examples: only the one the example uses
    /// is known, the other is filler.
    fn certs(sha1: Option<&str>, sha256: Option<&str>) -> CertHashes {
        CertHashes {
            sha1: sha1.map_or([0xee; 20], array),
            sha256: sha256.map_or([0xee; 32], array),
        }
    }

    #[test]
    fn spec_example_sha256_is_reproduced_byte_for_byte() {
        let built = build_call_connected(
            HashProtocol::Sha256,
            &array(SHA256_NONCE),
            &certs(None, Some(SHA256_CERT)),
            &array(SHA256_HLAK),
        );
        assert_eq!(built.to_vec(), hex(SHA256_CALL_CONNECTED));
    }

    #[test]
    fn spec_example_sha1_is_reproduced_byte_for_byte() {
        let built = build_call_connected(
            HashProtocol::Sha1,
            &array(SHA1_NONCE),
            &certs(Some(SHA1_CERT), None),
            &array(SHA1_HLAK),
        );
        assert_eq!(built.to_vec(), hex(SHA1_CALL_CONNECTED));
    }

    #[test]
    fn spec_examples_verify_and_each_defect_has_its_own_error() {
        for (message, nonce, cert, hlak, protocol) in [
            (
                SHA256_CALL_CONNECTED,
                SHA256_NONCE,
                certs(None, Some(SHA256_CERT)),
                SHA256_HLAK,
                HashProtocol::Sha256,
            ),
            (
                SHA1_CALL_CONNECTED,
                SHA1_NONCE,
                certs(Some(SHA1_CERT), None),
                SHA1_HLAK,
                HashProtocol::Sha1,
            ),
        ] {
            let message: [u8; 112] = array(message);
            let nonce = array(nonce);
            let hlak = array(hlak);
            let good = BindingExpectation {
                offered: HashProtocols::BOTH,
                nonce: &nonce,
                cert: &cert,
                hlak: &hlak,
            };
            assert_eq!(verify_call_connected(&message, &good), Ok(protocol));

            let other_protocol = if protocol == HashProtocol::Sha1 {
                HashProtocols::SHA256
            } else {
                HashProtocols::SHA1
            };
            let not_offered = BindingExpectation {
                offered: other_protocol,
                ..good
            };
            assert_eq!(
                verify_call_connected(&message, &not_offered),
                Err(BindingError::HashProtocolNotOffered)
            );

            let mut other_nonce = nonce;
            other_nonce[31] ^= 1;
            let wrong_nonce = BindingExpectation {
                nonce: &other_nonce,
                ..good
            };
            assert_eq!(
                verify_call_connected(&message, &wrong_nonce),
                Err(BindingError::WrongNonce)
            );

            let other_cert = CertHashes {
                sha1: [0x11; 20],
                sha256: [0x11; 32],
            };
            let wrong_cert = BindingExpectation {
                cert: &other_cert,
                ..good
            };
            assert_eq!(
                verify_call_connected(&message, &wrong_cert),
                Err(BindingError::WrongCertHash)
            );

            let zero_hlak = [0u8; 32];
            let wrong_hlak = BindingExpectation {
                hlak: &zero_hlak,
                ..good
            };
            assert_eq!(
                verify_call_connected(&message, &wrong_hlak),
                Err(BindingError::WrongMac)
            );

            let mut tampered = message;
            tampered[MAC_AT + 3] ^= 0x80;
            assert_eq!(
                verify_call_connected(&tampered, &good),
                Err(BindingError::WrongMac)
            );
            // A changed reserved byte is covered by the MAC too.
            let mut tampered = message;
            tampered[12] = 0xff;
            assert_eq!(
                verify_call_connected(&tampered, &good),
                Err(BindingError::WrongMac)
            );
        }
    }

    #[test]
    fn undefined_hash_protocol_is_not_offered() {
        let mut message: [u8; 112] = array(SHA256_CALL_CONNECTED);
        message[HASH_PROTOCOL_AT] = 0x03;
        let (nonce, hlak, cert) = (
            array(SHA256_NONCE),
            array(SHA256_HLAK),
            certs(None, Some(SHA256_CERT)),
        );
        let expected = BindingExpectation {
            offered: HashProtocols::from_bits(0xff),
            nonce: &nonce,
            cert: &cert,
            hlak: &hlak,
        };
        assert_eq!(
            verify_call_connected(&message, &expected),
            Err(BindingError::HashProtocolNotOffered)
        );
    }

    #[test]
    fn cmk_is_one_prf_plus_block_with_the_little_endian_length() {
        // HMAC-SHA256(K = 32 zero bytes, "SSTP inner method derived CMK" ‖ 20 00 ‖ 01)
        // differs from the same with the length big-endian: the byte order matters.
        let hlak = [0u8; 32];
        let cmk = compound_mac_key(HashProtocol::Sha256, &hlak);
        let expected = hmac(
            HashProtocol::Sha256,
            &hlak,
            &[b"SSTP inner method derived CMK\x20\x00\x01"],
        );
        assert_eq!(cmk, expected);
        let big_endian = hmac(
            HashProtocol::Sha256,
            &hlak,
            &[b"SSTP inner method derived CMK\x00\x20\x01"],
        );
        assert_ne!(cmk, big_endian);
        let sha1 = compound_mac_key(HashProtocol::Sha1, &hlak);
        assert_eq!(
            &sha1[20..],
            &[0u8; 12],
            "SHA-1 output is 20 bytes, zero-padded"
        );
    }

    #[test]
    fn cert_hashes_of_der() {
        // FIPS 180 test vector "abc".
        let hashes = CertHashes::of_der(b"abc");
        assert_eq!(
            hashes.sha1.to_vec(),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            hashes.sha256.to_vec(),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(hashes.get(HashProtocol::Sha1), &hashes.sha1[..]);
        assert_eq!(hashes.get(HashProtocol::Sha256), &hashes.sha256[..]);
    }
}
