//! RADIUS cryptography, all of it MD5 and HMAC-MD5 keyed with the shared
//! secret (RustCrypto's `md-5` and `hmac`):
//!
//! * User-Password hiding ([RFC 2865] 5.2);
//! * MS-MPPE-Send-Key / MS-MPPE-Recv-Key salt encryption ([RFC 2548]
//!   2.4.2, 2.4.3);
//! * the Request Authenticator of Accounting-, Disconnect- and CoA-Requests
//!   ([RFC 2866] 3, [RFC 5176] 2.3) and the Response Authenticator
//!   ([RFC 2865] 3);
//! * Message-Authenticator ([RFC 3579] 3.2, and its use in [RFC 5176]).
//!
//! Signing and verifying work on encoded packets (authenticators hash the
//! octets on the wire); comparisons are constant-time (`subtle`).
//!
//! Which authenticator a Message-Authenticator covers depends on the code:
//! an Access-Request's own (random) one; for Accounting-, Disconnect- and
//! CoA-Requests sixteen zero octets, as their Request Authenticator is
//! computed afterwards over the finished packet (RFC 5176; FreeRADIUS
//! and hostapd do the same for Accounting-Request); for every response the
//! Request Authenticator of the request it answers, except that FreeRADIUS
//! computes an Accounting-Response's over zero: verification takes either
//! there, signing uses zero.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
//! [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::fmt;

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq;

use super::attr::MESSAGE_AUTHENTICATOR;
use super::packet::{raw_attributes, Code, HEADER_LEN};

type HmacMd5 = Hmac<Md5>;

/// The longest password User-Password can carry ([RFC 2865] 5.2).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const MAX_PASSWORD_LEN: usize = 128;

/// The longest key salt encryption fits in one attribute: a 2-octet salt
/// and 16-octet blocks of key-length octet, key and padding, inside the
/// 247 octets a vendor sub-attribute may hold.
pub const MAX_MPPE_KEY_LEN: usize = 239;

/// Why hiding or revealing a value failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptError {
    /// A password over 128 octets.
    PasswordTooLong(usize),
    /// A hidden User-Password that is not 16 to 128 octets in whole blocks.
    BadPasswordLength(usize),
    /// A key over [`MAX_MPPE_KEY_LEN`] octets.
    KeyTooLong(usize),
    /// An encrypted key that is not a salt and whole 16-octet blocks.
    BadKeyLength(usize),
    /// The salt's most significant bit is clear ([RFC 2548] 2.4.2 says it
    /// MUST be set).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    BadSalt,
    /// The decrypted key-length octet is longer than the decrypted data:
    /// wrong secret, wrong request, or tampering.
    BadKeyLengthOctet,
}

impl CryptError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            CryptError::PasswordTooLong(_) => "password_too_long",
            CryptError::BadPasswordLength(_) => "bad_password_length",
            CryptError::KeyTooLong(_) => "key_too_long",
            CryptError::BadKeyLength(_) => "bad_key_length",
            CryptError::BadSalt => "bad_salt",
            CryptError::BadKeyLengthOctet => "bad_key_length_octet",
        }
    }
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::PasswordTooLong(len) => write!(f, "{len}-octet password over 128"),
            CryptError::BadPasswordLength(len) => {
                write!(f, "{len}-octet User-Password is not 1 to 8 blocks of 16")
            }
            CryptError::KeyTooLong(len) => write!(f, "{len}-octet key too long"),
            CryptError::BadKeyLength(len) => {
                write!(
                    f,
                    "{len}-octet encrypted key is not a salt and blocks of 16"
                )
            }
            CryptError::BadSalt => f.write_str("salt without its high bit"),
            CryptError::BadKeyLengthOctet => f.write_str("key length octet past the data"),
        }
    }
}

impl std::error::Error for CryptError {}

/// Why a packet's authenticators do not check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The Request or Response Authenticator is wrong: another secret,
    /// another request, or a forgery.
    BadAuthenticator,
    /// No Message-Authenticator where one is required.
    MissingMessageAuthenticator,
    /// A Message-Authenticator that is wrong, not 16 octets, or not the
    /// only one.
    BadMessageAuthenticator,
}

impl VerifyError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            VerifyError::BadAuthenticator => "bad_authenticator",
            VerifyError::MissingMessageAuthenticator => "missing_message_authenticator",
            VerifyError::BadMessageAuthenticator => "bad_message_authenticator",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyError::BadAuthenticator => "wrong Request/Response Authenticator",
            VerifyError::MissingMessageAuthenticator => "no Message-Authenticator",
            VerifyError::BadMessageAuthenticator => "wrong Message-Authenticator",
        })
    }
}

impl std::error::Error for VerifyError {}

/// MD5 over the concatenation of `parts`.
fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hash = Md5::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// XORs `data` (whole 16-octet blocks) with the MD5 chain of [RFC 2865]
/// 5.2 and [RFC 2548] 2.4.2: block 1 with MD5(secret ‖ `first`), block i
/// with MD5(secret ‖ ciphertext block i-1). `encrypt` says whether `data`
/// is plaintext (the chain runs on the output) or ciphertext (on the
/// input).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
fn md5_chain(data: &mut [u8], secret: &[u8], first: &[&[u8]], encrypt: bool) {
    let mut parts = Vec::with_capacity(first.len() + 1);
    parts.push(secret);
    parts.extend_from_slice(first);
    let mut pad = md5(&parts);
    let mut previous = [0u8; 16];
    for block in data.chunks_mut(16) {
        let cipher: [u8; 16] = if encrypt {
            for (byte, key) in block.iter_mut().zip(pad) {
                *byte ^= key;
            }
            block.try_into().unwrap_or(previous)
        } else {
            let cipher = block.try_into().unwrap_or(previous);
            for (byte, key) in block.iter_mut().zip(pad) {
                *byte ^= key;
            }
            cipher
        };
        previous = cipher;
        pad = md5(&[secret, &previous]);
    }
}

/// Hides a password as User-Password ([RFC 2865] 5.2): zero-padded to a
/// multiple of 16 octets (at least 16), XORed with the MD5 chain seeded by
/// the secret and the Request Authenticator.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(CryptError::PasswordTooLong(password.len()));
    }
    let len = password.len().div_ceil(16).max(1) * 16;
    let mut data = password.to_vec();
    data.resize(len, 0);
    md5_chain(&mut data, secret, &[request_authenticator], true);
    Ok(data)
}

/// Reveals a hidden User-Password ([RFC 2865] 5.2) and strips its zero
/// padding. The result is garbage (not an error) with the wrong secret.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    if hidden.is_empty() || hidden.len() > MAX_PASSWORD_LEN || hidden.len() % 16 != 0 {
        return Err(CryptError::BadPasswordLength(hidden.len()));
    }
    let mut data = hidden.to_vec();
    md5_chain(&mut data, secret, &[request_authenticator], false);
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    data.truncate(end);
    Ok(data)
}

/// Encrypts an MPPE key for MS-MPPE-Send-Key or MS-MPPE-Recv-Key
/// ([RFC 2548] 2.4.2): Salt ‖ the key-length octet, key and zero padding
/// XORed with the MD5 chain seeded by the secret, the Request
/// Authenticator of the request answered, and the salt. The salt's high
/// bit is set here; it must differ for each key of a response.
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
pub fn encrypt_mppe_key(
    key: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
    salt: [u8; 2],
) -> Result<Vec<u8>, CryptError> {
    if key.len() > MAX_MPPE_KEY_LEN {
        return Err(CryptError::KeyTooLong(key.len()));
    }
    let salt = [salt[0] | 0x80, salt[1]];
    let mut plain = Vec::with_capacity(1 + key.len() + 15);
    plain.push(key.len() as u8);
    plain.extend_from_slice(key);
    plain.resize(plain.len().div_ceil(16) * 16, 0);
    md5_chain(&mut plain, secret, &[request_authenticator, &salt], true);
    let mut value = salt.to_vec();
    value.extend_from_slice(&plain);
    Ok(value)
}

/// Decrypts MS-MPPE-Send-Key or MS-MPPE-Recv-Key ([RFC 2548] 2.4.3):
/// returns the key without its length octet and padding.
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
pub fn decrypt_mppe_key(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, CryptError> {
    let Some((salt, cipher)) = value.split_first_chunk::<2>() else {
        return Err(CryptError::BadKeyLength(value.len()));
    };
    if cipher.is_empty() || cipher.len() % 16 != 0 {
        return Err(CryptError::BadKeyLength(value.len()));
    }
    if salt[0] & 0x80 == 0 {
        return Err(CryptError::BadSalt);
    }
    let mut plain = cipher.to_vec();
    md5_chain(&mut plain, secret, &[request_authenticator, salt], false);
    let len = usize::from(plain[0]);
    if len > plain.len() - 1 {
        return Err(CryptError::BadKeyLengthOctet);
    }
    Ok(plain[1..=len].to_vec())
}

/// MD5(Code ‖ Identifier ‖ Length ‖ `authenticator` ‖ attributes ‖
/// secret) over an encoded packet: the Response Authenticator when
/// `authenticator` is the request's ([RFC 2865] 3), the Request
/// Authenticator of Accounting-, Disconnect- and CoA-Requests when it is
/// zero ([RFC 2866] 3, [RFC 5176] 2.3).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
pub fn packet_hash(packet: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let header = packet.get(..4).unwrap_or(packet);
    let attributes = packet.get(HEADER_LEN..).unwrap_or(&[]);
    md5(&[header, authenticator, attributes, secret])
}

/// Where the value of the packet's only Message-Authenticator starts:
/// `Ok(None)` without one, `Err` for one that is not 16 octets or not
/// alone ([RFC 3579] 3.2).
///
/// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
fn message_authenticator_at(packet: &[u8]) -> Result<Option<usize>, VerifyError> {
    let mut found = None;
    for (kind, at, value) in raw_attributes(packet) {
        if kind == MESSAGE_AUTHENTICATOR {
            if found.is_some() || value.len() != 16 {
                return Err(VerifyError::BadMessageAuthenticator);
            }
            found = Some(at);
        }
    }
    Ok(found)
}

/// HMAC-MD5 keyed with the secret over the packet with `authenticator` in
/// the Authenticator field and the Message-Authenticator value at `at`
/// zeroed ([RFC 3579] 3.2).
///
/// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
fn message_authenticator(
    packet: &[u8],
    at: usize,
    authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; 16] {
    let mut mac = HmacMd5::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(packet.get(..4).unwrap_or(packet));
    mac.update(authenticator);
    mac.update(packet.get(HEADER_LEN..at).unwrap_or(&[]));
    mac.update(&[0u8; 16]);
    mac.update(packet.get(at + 16..).unwrap_or(&[]));
    mac.finalize().into_bytes().into()
}

/// The authenticator a request's Message-Authenticator covers: the
/// Access-Request's own, zero for the requests whose Request
/// Authenticator is a hash.
fn request_hmac_authenticator(packet: &[u8]) -> [u8; 16] {
    match packet.first().map(|&code| Code::from(code)) {
        Some(Code::AccountingRequest | Code::DisconnectRequest | Code::CoaRequest) => [0; 16],
        _ => packet
            .get(4..HEADER_LEN)
            .and_then(|a| a.try_into().ok())
            .unwrap_or([0; 16]),
    }
}

/// Whether the request's code has a hashed Request Authenticator.
fn has_hashed_authenticator(packet: &[u8]) -> bool {
    matches!(
        packet.first().map(|&code| Code::from(code)),
        Some(Code::AccountingRequest | Code::DisconnectRequest | Code::CoaRequest)
    )
}

/// Signs an encoded request in place: fills in its Message-Authenticator
/// if it has one, and for Accounting-, Disconnect- and CoA-Requests the
/// Request Authenticator (an Access-Request keeps the random one it was
/// encoded with).
pub fn sign_request(packet: &mut [u8], secret: &[u8]) {
    let hashed = has_hashed_authenticator(packet);
    if hashed {
        if let Some(field) = packet.get_mut(4..HEADER_LEN) {
            field.fill(0);
        }
    }
    let authenticator = request_hmac_authenticator(packet);
    if let Ok(Some(at)) = message_authenticator_at(packet) {
        let mac = message_authenticator(packet, at, &authenticator, secret);
        packet[at..at + 16].copy_from_slice(&mac);
    }
    if hashed {
        let hash = packet_hash(packet, &[0; 16], secret);
        if let Some(field) = packet.get_mut(4..HEADER_LEN) {
            field.copy_from_slice(&hash);
        }
    }
}

/// Signs an encoded response in place: its Message-Authenticator if it
/// has one (over the request's authenticator; for an Accounting-Response
/// over zero, as FreeRADIUS does), then the Response Authenticator
/// ([RFC 2865] 3).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn sign_response(packet: &mut [u8], request_authenticator: &[u8; 16], secret: &[u8]) {
    if let Ok(Some(at)) = message_authenticator_at(packet) {
        let authenticator = if is_accounting_response(packet) {
            &[0; 16]
        } else {
            request_authenticator
        };
        let mac = message_authenticator(packet, at, authenticator, secret);
        packet[at..at + 16].copy_from_slice(&mac);
    }
    let hash = packet_hash(packet, request_authenticator, secret);
    if let Some(field) = packet.get_mut(4..HEADER_LEN) {
        field.copy_from_slice(&hash);
    }
}

/// Checks the Message-Authenticator: absent (an error if `required`), or
/// right over one of the `authenticators`.
fn check_message_authenticator(
    packet: &[u8],
    authenticators: &[&[u8; 16]],
    secret: &[u8],
    required: bool,
) -> Result<(), VerifyError> {
    match message_authenticator_at(packet)? {
        None if required => Err(VerifyError::MissingMessageAuthenticator),
        None => Ok(()),
        Some(at) => {
            let got = &packet[at..at + 16];
            let mut good = subtle::Choice::from(0);
            for authenticator in authenticators {
                good |= message_authenticator(packet, at, authenticator, secret).ct_eq(got);
            }
            if bool::from(good) {
                Ok(())
            } else {
                Err(VerifyError::BadMessageAuthenticator)
            }
        }
    }
}

/// Whether the packet is an Accounting-Response, whose
/// Message-Authenticator FreeRADIUS computes over sixteen zero octets
/// rather than the request's authenticator.
fn is_accounting_response(packet: &[u8]) -> bool {
    packet.first().map(|&code| Code::from(code)) == Some(Code::AccountingResponse)
}

/// Verifies a received request (framed by [`super::packet::frame`]): the
/// Request Authenticator of an Accounting-, Disconnect- or CoA-Request
/// ([RFC 2866] 3, [RFC 5176] 2.3), then the Message-Authenticator when
/// present, or its absence when `require_message_authenticator`.
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
pub fn verify_request(
    packet: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<(), VerifyError> {
    if has_hashed_authenticator(packet) {
        let expected = packet_hash(packet, &[0; 16], secret);
        let got = packet.get(4..HEADER_LEN).unwrap_or(&[]);
        if !bool::from(expected.ct_eq(got)) {
            return Err(VerifyError::BadAuthenticator);
        }
    }
    let authenticator = request_hmac_authenticator(packet);
    check_message_authenticator(
        packet,
        &[&authenticator],
        secret,
        require_message_authenticator,
    )
}

/// Verifies a received response (framed by [`super::packet::frame`]) to
/// the request whose authenticator was `request_authenticator`: the
/// Response Authenticator ([RFC 2865] 3), then the Message-Authenticator
/// ([RFC 3579] 3.2) when present, or its absence when
/// `require_message_authenticator`. An Accounting-Response's may be over
/// the request's authenticator or over zero (FreeRADIUS's way).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
pub fn verify_response(
    packet: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<(), VerifyError> {
    let expected = packet_hash(packet, request_authenticator, secret);
    let got = packet.get(4..HEADER_LEN).unwrap_or(&[]);
    if !bool::from(expected.ct_eq(got)) {
        return Err(VerifyError::BadAuthenticator);
    }
    let authenticators: &[&[u8; 16]] = if is_accounting_response(packet) {
        &[request_authenticator, &[0; 16]]
    } else {
        &[request_authenticator]
    };
    check_message_authenticator(
        packet,
        authenticators,
        secret,
        require_message_authenticator,
    )
}

#[cfg(test)]
mod tests;
