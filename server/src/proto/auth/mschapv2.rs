//! MS-CHAPv2 ([RFC 2759]): the routines of section 8 and the formats of
//! the Response value (4), the Success message (5) and the Failure message
//! (6). The state machines live in [`super::chap`].
//!
//! Passwords are octet strings (as a chap-secrets file stores them). The
//! routines need them as Unicode: valid UTF-8 is converted to UTF-16LE;
//! anything else is taken as Latin-1, one octet per character, which is
//! what pppd does with every password.
//!
//! [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759

use std::fmt;

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use md4::{Digest as _, Md4};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::AuthPacketError;

/// [RFC 2759] 4: Value-Size of a Response.
pub const RESPONSE_VALUE_LEN: usize = 49;
/// [RFC 2759] 3: Value-Size of a Challenge.
pub const CHALLENGE_LEN: usize = 16;
/// [RFC 2759] 6: the password-change protocol version a server announces.
pub const PASSWORD_CHANGE_VERSION: u32 = 3;

/// [RFC 2759] 8.7 Magic1.
const MAGIC_SERVER_SIGNING: &[u8; 39] = b"Magic server to client signing constant";
/// [RFC 2759] 8.7 Magic2.
const MAGIC_PAD: &[u8; 41] = b"Pad to make it do more than one iteration";

/// The password as UTF-16LE octets ([RFC 2759] 8.3 takes a Unicode
/// password).
pub fn password_utf16le(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(text) => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Err(_) => password.iter().flat_map(|&octet| [octet, 0]).collect(),
    }
}

/// [RFC 2759] 8.3 NtPasswordHash: MD4 of the UTF-16LE password.
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    Md4::digest(password_utf16le(password)).into()
}

/// [RFC 2759] 8.4 HashNtPasswordHash: MD4 of the password hash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// The user name as [RFC 2759] 8.2 hashes it: "excluding any prepended
/// domain name" (`DOMAIN\user` hashes as `user`).
pub fn name_without_domain(username: &[u8]) -> &[u8] {
    match username.iter().rposition(|&octet| octet == b'\\') {
        Some(backslash) => &username[backslash + 1..],
        None => username,
    }
}

/// [RFC 2759] 8.2 ChallengeHash: the first 8 octets of
/// SHA-1(PeerChallenge ‖ AuthenticatorChallenge ‖ UserName).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(authenticator_challenge)
        .chain_update(name_without_domain(username))
        .finalize();
    let mut challenge = [0u8; 8];
    challenge.copy_from_slice(&digest[..8]);
    challenge
}

/// [RFC 2759] 8.6 DesEncrypt: DES-encrypts one block with a 7-octet key,
/// spread over the 8 key octets 7 bits at a time (the low bit of each is
/// the parity bit, which DES ignores).
pub fn des_encrypt(clear: &[u8; 8], key7: &[u8; 7]) -> [u8; 8] {
    let mut wide = [0u8; 8];
    wide[1..].copy_from_slice(key7);
    let bits = u64::from_be_bytes(wide);
    let mut key = [0u8; 8];
    for (index, octet) in key.iter_mut().enumerate() {
        *octet = (((bits >> (49 - 7 * index)) & 0x7f) as u8) << 1;
    }
    let cipher = Des::new(&key.into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// [RFC 2759] 8.5 ChallengeResponse: the challenge DES-encrypted under the
/// three 7-octet thirds of the zero-padded 21-octet password hash.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut padded = [0u8; 21];
    padded[..16].copy_from_slice(password_hash);
    let mut response = [0u8; 24];
    for (third, out) in response.chunks_exact_mut(8).enumerate() {
        let mut key = [0u8; 7];
        key.copy_from_slice(&padded[third * 7..third * 7 + 7]);
        out.copy_from_slice(&des_encrypt(challenge, &key));
    }
    response
}

/// [RFC 2759] 8.1 GenerateNTResponse, from a password hash.
pub fn generate_nt_response_from_hash(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password_hash: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    challenge_response(&challenge, password_hash)
}

/// [RFC 2759] 8.1 GenerateNTResponse.
pub fn generate_nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password: &[u8],
) -> [u8; 24] {
    generate_nt_response_from_hash(
        authenticator_challenge,
        peer_challenge,
        username,
        &nt_password_hash(password),
    )
}

/// [RFC 2759] 8.7 GenerateAuthenticatorResponse, as the 20 octets that
/// travel hex-encoded after `S=`.
pub fn generate_authenticator_response(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 20] {
    let password_hash_hash = hash_nt_password_hash(password_hash);
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC_SERVER_SIGNING)
        .finalize();
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC_PAD)
        .finalize()
        .into()
}

/// [RFC 2759] 8.8 CheckAuthenticatorResponse, in constant time.
pub fn check_authenticator_response(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
    received: &[u8; 20],
) -> bool {
    let expected = generate_authenticator_response(
        password_hash,
        nt_response,
        peer_challenge,
        authenticator_challenge,
        username,
    );
    expected.ct_eq(received).into()
}

/// The 49-octet Response value of [RFC 2759] 4.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ResponseValue {
    /// Peer-Challenge: 16 random octets of the peer's.
    pub peer_challenge: [u8; 16],
    /// NT-Response: the challenge response ([RFC 2759] 8.1).
    pub nt_response: [u8; 24],
    /// "Reserved for future use and MUST be zero"; kept as received.
    pub flags: u8,
}

impl fmt::Debug for ResponseValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseValue")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl ResponseValue {
    /// Parses the value: Peer-Challenge (16), Reserved (8, not checked),
    /// NT-Response (24), Flags (1). Any other size is
    /// [`AuthPacketError::Malformed`].
    pub fn parse(value: &[u8]) -> Result<Self, AuthPacketError> {
        let value: &[u8; RESPONSE_VALUE_LEN] =
            value.try_into().map_err(|_| AuthPacketError::Malformed)?;
        let mut peer_challenge = [0u8; 16];
        peer_challenge.copy_from_slice(&value[..16]);
        let mut nt_response = [0u8; 24];
        nt_response.copy_from_slice(&value[24..48]);
        Ok(ResponseValue {
            peer_challenge,
            nt_response,
            flags: value[48],
        })
    }

    /// The 49 octets, Reserved zero.
    pub fn to_bytes(&self) -> [u8; RESPONSE_VALUE_LEN] {
        let mut value = [0u8; RESPONSE_VALUE_LEN];
        value[..16].copy_from_slice(&self.peer_challenge);
        value[24..48].copy_from_slice(&self.nt_response);
        value[48] = self.flags;
        value
    }
}

fn push_hex_upper(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

/// Decodes exactly `N` octets from `2 * N` hex digits of either case.
fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (octet, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *octet = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// [RFC 2759] 5: the Success message `S=<40 uppercase hex digits> M=<msg>`.
pub fn success_message(authenticator_response: &[u8; 20], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 40 + 3 + message.len());
    out.extend_from_slice(b"S=");
    push_hex_upper(&mut out, authenticator_response);
    out.extend_from_slice(b" M=");
    out.extend_from_slice(message);
    out
}

/// Reads the AuthenticatorResponse from a Success message ([RFC 2759] 5):
/// `S=` and 40 hex digits, then the end or a space (and `M=...`).
pub fn parse_success_message(message: &[u8]) -> Result<[u8; 20], AuthPacketError> {
    let rest = message
        .strip_prefix(b"S=")
        .ok_or(AuthPacketError::Malformed)?;
    let (digits, tail) = rest
        .split_at_checked(40)
        .ok_or(AuthPacketError::Malformed)?;
    if !(tail.is_empty() || tail[0] == b' ') {
        return Err(AuthPacketError::Malformed);
    }
    parse_hex::<20>(digits).ok_or(AuthPacketError::Malformed)
}

/// The fields of an MS-CHAPv2 Failure message ([RFC 2759] 6):
/// `E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureMessage {
    /// `E=`: 646, 647, 648, 649, 691 or 709, or other codes.
    pub error_code: u32,
    /// `R=1`: the peer may answer the new challenge.
    pub retry: bool,
    /// `C=`: the Authenticator Challenge of a retry.
    pub challenge: Option<[u8; 16]>,
    /// `V=`: the password-change protocol version (3).
    pub version: Option<u32>,
    /// `M=`: text for the user (everything after `M=`).
    pub message: String,
}

impl FailureMessage {
    /// Formats the message. `C=` is always present ("MUST be present").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "E={} R={} C=",
            self.error_code,
            if self.retry { '1' } else { '0' }
        )
        .into_bytes();
        push_hex_upper(&mut out, &self.challenge.unwrap_or([0; 16]));
        out.extend_from_slice(
            format!(" V={} M=", self.version.unwrap_or(PASSWORD_CHANGE_VERSION)).as_bytes(),
        );
        out.extend_from_slice(self.message.as_bytes());
        out
    }

    /// Parses the message. Fields are space-separated; `M=` takes the rest
    /// of the message. Unknown fields are ignored. A missing or
    /// non-numeric `E=`, or an ill-formed `R=`, `C=` or `V=`, is
    /// [`AuthPacketError::Malformed`].
    pub fn parse(message: &[u8]) -> Result<Self, AuthPacketError> {
        fn decimal(digits: &[u8]) -> Option<u32> {
            if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        let mut error_code = None;
        let mut retry = false;
        let mut challenge = None;
        let mut version = None;
        let mut text: &[u8] = b"";
        let mut rest = message;
        while !rest.is_empty() {
            if let Some(msg) = rest.strip_prefix(b"M=") {
                text = msg;
                break;
            }
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let (field, tail) = rest.split_at(end);
            rest = tail.strip_prefix(b" ").unwrap_or(tail);
            match field.split_at_checked(2) {
                Some((b"E=", value)) => {
                    error_code = Some(decimal(value).ok_or(AuthPacketError::Malformed)?)
                }
                Some((b"R=", b"0")) => retry = false,
                Some((b"R=", b"1")) => retry = true,
                Some((b"R=", _)) => return Err(AuthPacketError::Malformed),
                Some((b"C=", value)) => {
                    challenge = Some(parse_hex::<16>(value).ok_or(AuthPacketError::Malformed)?)
                }
                Some((b"V=", value)) => {
                    version = Some(decimal(value).ok_or(AuthPacketError::Malformed)?)
                }
                _ => {}
            }
        }
        Ok(FailureMessage {
            error_code: error_code.ok_or(AuthPacketError::Malformed)?,
            retry,
            challenge,
            version,
            message: String::from_utf8_lossy(text).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::tests::vectors::*;

    #[test]
    fn rfc2759_password_is_utf16le() {
        assert_eq!(password_utf16le(PASSWORD), PASSWORD_UNICODE);
    }

    #[test]
    fn rfc2759_nt_password_hash() {
        assert_eq!(nt_password_hash(PASSWORD), PASSWORD_HASH);
    }

    #[test]
    fn rfc2759_password_hash_hash() {
        assert_eq!(hash_nt_password_hash(&PASSWORD_HASH), PASSWORD_HASH_HASH);
    }

    #[test]
    fn rfc2759_challenge_hash() {
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTHENTICATOR_CHALLENGE, USER_NAME),
            CHALLENGE
        );
        // A prepended domain does not enter the hash.
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTHENTICATOR_CHALLENGE, b"BIGCO\\User"),
            CHALLENGE
        );
    }

    #[test]
    fn rfc2759_nt_response() {
        assert_eq!(challenge_response(&CHALLENGE, &PASSWORD_HASH), NT_RESPONSE);
        assert_eq!(
            generate_nt_response(
                &AUTHENTICATOR_CHALLENGE,
                &PEER_CHALLENGE,
                USER_NAME,
                PASSWORD
            ),
            NT_RESPONSE
        );
    }

    #[test]
    fn rfc2759_authenticator_response() {
        let response = generate_authenticator_response(
            &PASSWORD_HASH,
            &NT_RESPONSE,
            &PEER_CHALLENGE,
            &AUTHENTICATOR_CHALLENGE,
            USER_NAME,
        );
        assert_eq!(response, AUTHENTICATOR_RESPONSE);
        assert_eq!(
            success_message(&response, b"")[..42],
            AUTHENTICATOR_RESPONSE_TEXT[..]
        );
        assert_eq!(
            parse_success_message(AUTHENTICATOR_RESPONSE_TEXT),
            Ok(response)
        );
        assert!(check_authenticator_response(
            &PASSWORD_HASH,
            &NT_RESPONSE,
            &PEER_CHALLENGE,
            &AUTHENTICATOR_CHALLENGE,
            USER_NAME,
            &response
        ));
        let mut wrong = response;
        wrong[19] ^= 1;
        assert!(!check_authenticator_response(
            &PASSWORD_HASH,
            &NT_RESPONSE,
            &PEER_CHALLENGE,
            &AUTHENTICATOR_CHALLENGE,
            USER_NAME,
            &wrong
        ));
    }

    #[test]
    fn des_key_spreading() {
        // DES ignores parity bits, so the all-zero 7-octet key is the key
        // 0101010101010101 and the all-ones one FEFEFEFEFEFEFEFE; their
        // classic known answers (the second by complementation).
        assert_eq!(
            des_encrypt(&[0; 8], &[0; 7]),
            [0x8c, 0xa6, 0x4d, 0xe9, 0xc1, 0xb1, 0x23, 0xa7]
        );
        assert_eq!(
            des_encrypt(&[0xff; 8], &[0xff; 7]),
            [0x73, 0x59, 0xb2, 0x16, 0x3e, 0x4e, 0xdc, 0x58]
        );
        // The spreading itself is checked bit for bit by the RFC 2759
        // NT-Response vector above.
    }

    #[test]
    fn non_utf8_password_is_latin1() {
        assert_eq!(password_utf16le(&[0xe9, b'a']), [0xe9, 0, b'a', 0]);
        assert_eq!(password_utf16le("é".as_bytes()), [0xe9, 0]);
    }

    #[test]
    fn response_value_layout() {
        let value = ResponseValue {
            peer_challenge: PEER_CHALLENGE,
            nt_response: NT_RESPONSE,
            flags: 0,
        };
        let bytes = value.to_bytes();
        assert_eq!(bytes[..16], PEER_CHALLENGE);
        assert_eq!(bytes[16..24], [0; 8]);
        assert_eq!(bytes[24..48], NT_RESPONSE);
        assert_eq!(bytes[48], 0);
        assert_eq!(ResponseValue::parse(&bytes), Ok(value));
        assert_eq!(
            ResponseValue::parse(&bytes[..48]),
            Err(AuthPacketError::Malformed)
        );
        assert_eq!(
            ResponseValue::parse(&[0; 50]),
            Err(AuthPacketError::Malformed)
        );
    }

    #[test]
    fn success_message_parsing() {
        let response = [0xab; 20];
        let message = success_message(&response, b"Welcome");
        assert_eq!(
            message,
            b"S=ABABABABABABABABABABABABABABABABABABABAB M=Welcome".to_vec()
        );
        assert_eq!(parse_success_message(&message), Ok(response));
        // Lowercase digits and a missing M= are tolerated.
        assert_eq!(
            parse_success_message(b"S=abababababababababababababababababababab"),
            Ok(response)
        );
        for bad in [
            &b""[..],
            b"S=",
            b"S=ABAB",
            b"X=ABABABABABABABABABABABABABABABABABABABAB",
            b"S=ABABABABABABABABABABABABABABABABABABABABAB",
            b"S=ABABABABABABABABABABABABABABABABABABABAG M=x",
        ] {
            assert_eq!(parse_success_message(bad), Err(AuthPacketError::Malformed));
        }
    }

    #[test]
    fn failure_message_round_trip() {
        let failure = FailureMessage {
            error_code: 691,
            retry: true,
            challenge: Some(AUTHENTICATOR_CHALLENGE),
            version: Some(3),
            message: "Access denied, try again".into(),
        };
        let bytes = failure.to_bytes();
        assert_eq!(
            bytes,
            b"E=691 R=1 C=5B5D7C7D7B3F2F3E3C2C602132262628 V=3 M=Access denied, try again".to_vec()
        );
        assert_eq!(FailureMessage::parse(&bytes), Ok(failure));
    }

    #[test]
    fn failure_message_lenient_forms() {
        // Windows RRAS without C= and V=; pppd-style short forms.
        assert_eq!(
            FailureMessage::parse(b"E=691 R=0"),
            Ok(FailureMessage {
                error_code: 691,
                retry: false,
                challenge: None,
                version: None,
                message: String::new(),
            })
        );
        let parsed = FailureMessage::parse(b"E=648 R=0 V=3 X=unknown M=Password expired").unwrap();
        assert_eq!(parsed.error_code, 648);
        assert_eq!(parsed.version, Some(3));
        assert_eq!(parsed.message, "Password expired");
    }

    #[test]
    fn failure_message_malformed() {
        for bad in [
            &b""[..],
            b"M=no code",
            b"E= R=1",
            b"E=abc",
            b"E=12345678901",
            b"E=691 R=2",
            b"E=691 C=00",
            b"E=691 C=ZZ5D7C7D7B3F2F3E3C2C602132262628",
            b"E=691 V=x",
        ] {
            assert_eq!(
                FailureMessage::parse(bad),
                Err(AuthPacketError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
