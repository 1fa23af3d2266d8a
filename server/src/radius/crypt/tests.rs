//! Vectors: RFC 2865 section 7.1, RFC 2548 round trips, and packets
//! captured from FreeRADIUS 3.2.1 and its radclient on loopback (see
//! `vectors.rs`), checked against this module.

use super::*;
use crate::radius::attr::{self, ms, Attributes};
use crate::radius::packet::{frame, Code, Packet};

mod vectors;

pub(crate) fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(digits).expect("hex")
}

const RFC_SECRET: &[u8] = b"xyzzy5461";

/// [RFC 2865] 7.1: Access-Request of "nemo" with password "arctangent".
const RFC_7_1_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
    93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
    01 10 05 06 00 00 00 03";
/// [RFC 2865] 7.1: the Access-Accept answering it.
const RFC_7_1_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
    0e 06 c0 a8 01 03";

fn authenticator_of(packet: &[u8]) -> [u8; 16] {
    packet[4..20].try_into().unwrap()
}

#[test]
fn rfc_2865_7_1_password_is_hidden_as_in_the_example() {
    let request = unhex(RFC_7_1_REQUEST);
    let packet = Packet::decode(&request).unwrap();
    let hidden = packet.attributes.get(attr::USER_PASSWORD).unwrap();
    let authenticator = authenticator_of(&request);
    assert_eq!(
        unhide_password(hidden, RFC_SECRET, &authenticator).unwrap(),
        b"arctangent"
    );
    assert_eq!(
        hide_password(b"arctangent", RFC_SECRET, &authenticator).unwrap(),
        hidden
    );
}

#[test]
fn rfc_2865_7_1_response_authenticator_verifies() {
    let request = unhex(RFC_7_1_REQUEST);
    let accept = unhex(RFC_7_1_ACCEPT);
    let authenticator = authenticator_of(&request);
    assert_eq!(
        packet_hash(&accept, &authenticator, RFC_SECRET),
        authenticator_of(&accept)
    );
    assert_eq!(
        verify_response(&accept, &authenticator, RFC_SECRET, false),
        Ok(())
    );
    // The example has no Message-Authenticator.
    assert_eq!(
        verify_response(&accept, &authenticator, RFC_SECRET, true),
        Err(VerifyError::MissingMessageAuthenticator)
    );
    // Another secret, another request, one flipped bit.
    assert_eq!(
        verify_response(&accept, &authenticator, b"xyzzy5462", false),
        Err(VerifyError::BadAuthenticator)
    );
    assert_eq!(
        verify_response(&accept, &[0; 16], RFC_SECRET, false),
        Err(VerifyError::BadAuthenticator)
    );
    let mut flipped = accept.clone();
    flipped[37] ^= 1;
    assert_eq!(
        verify_response(&flipped, &authenticator, RFC_SECRET, false),
        Err(VerifyError::BadAuthenticator)
    );
    // Signing the example's reply again gives the example's bytes.
    let mut resigned = accept.clone();
    resigned[4..20].fill(0);
    sign_response(&mut resigned, &authenticator, RFC_SECRET);
    assert_eq!(resigned, accept);
}

#[test]
fn password_lengths() {
    let ra = [7u8; 16];
    // Empty passwords become one block of padding; 16 stays one block.
    for (len, hidden_len) in [(0, 16), (1, 16), (16, 16), (17, 32), (128, 128)] {
        let password = vec![b'p'; len];
        let hidden = hide_password(&password, b"s", &ra).unwrap();
        assert_eq!(hidden.len(), hidden_len);
        assert_eq!(unhide_password(&hidden, b"s", &ra).unwrap(), password);
    }
    assert_eq!(
        hide_password(&[b'p'; 129], b"s", &ra),
        Err(CryptError::PasswordTooLong(129))
    );
    for bad in [0, 15, 17, 144] {
        assert_eq!(
            unhide_password(&vec![0; bad], b"s", &ra),
            Err(CryptError::BadPasswordLength(bad))
        );
    }
    // The chain runs on ciphertext: later blocks differ for equal text.
    let hidden = hide_password(&[b'a'; 32], b"s", &ra).unwrap();
    assert_ne!(hidden[..16], hidden[16..]);
}

#[test]
fn mppe_keys_round_trip() {
    let ra = [0x5a; 16];
    let key = [0x11u8; 16];
    let value = encrypt_mppe_key(&key, b"secret", &ra, [0x12, 0x34]).unwrap();
    // Salt with its high bit set, then 1 + 16 octets padded to 32.
    assert_eq!(value.len(), 34);
    assert_eq!(value[..2], [0x92, 0x34]);
    assert_eq!(decrypt_mppe_key(&value, b"secret", &ra).unwrap(), key);

    for len in [0, 1, 15, 16, 31, 32, 239] {
        let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let value = encrypt_mppe_key(&key, b"k", &ra, [0, 1]).unwrap();
        assert_eq!((value.len() - 2) % 16, 0);
        assert_eq!(decrypt_mppe_key(&value, b"k", &ra).unwrap(), key);
    }
    assert_eq!(
        encrypt_mppe_key(&[0; 240], b"k", &ra, [0, 1]),
        Err(CryptError::KeyTooLong(240))
    );
    // The longest key still fits a Microsoft vendor attribute.
    let longest = encrypt_mppe_key(&[0; MAX_MPPE_KEY_LEN], b"k", &ra, [0, 1]).unwrap();
    Attributes::new()
        .push_ms(ms::MPPE_SEND_KEY, &longest)
        .unwrap();

    // Malformed values.
    assert_eq!(
        decrypt_mppe_key(&value[..1], b"secret", &ra),
        Err(CryptError::BadKeyLength(1))
    );
    assert_eq!(
        decrypt_mppe_key(&value[..2], b"secret", &ra),
        Err(CryptError::BadKeyLength(2))
    );
    assert_eq!(
        decrypt_mppe_key(&value[..33], b"secret", &ra),
        Err(CryptError::BadKeyLength(33))
    );
    let mut no_high_bit = value.clone();
    no_high_bit[0] &= 0x7f;
    assert_eq!(
        decrypt_mppe_key(&no_high_bit, b"secret", &ra),
        Err(CryptError::BadSalt)
    );
    // A wrong secret yields garbage or a length octet past the data; find
    // one of the latter.
    let wrong = (0..64u8)
        .map(|i| decrypt_mppe_key(&value, &[i], &ra))
        .find(|r| r.is_err());
    assert_eq!(wrong, Some(Err(CryptError::BadKeyLengthOctet)));
}

fn request_with_message_authenticator(code: Code, authenticator: [u8; 16]) -> Vec<u8> {
    let mut attributes = Attributes::new();
    attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    attributes.push_string(attr::USER_NAME, "nemo").unwrap();
    attributes.push_u32(attr::ACCT_STATUS_TYPE, 1);
    Packet {
        code,
        identifier: 42,
        authenticator,
        attributes,
    }
    .encode()
    .unwrap()
}

#[test]
fn requests_sign_and_verify() {
    for code in [
        Code::AccessRequest,
        Code::AccountingRequest,
        Code::DisconnectRequest,
        Code::CoaRequest,
    ] {
        let random = [0x3c; 16];
        let mut packet = request_with_message_authenticator(code, random);
        sign_request(&mut packet, b"secret");
        let hashed = code != Code::AccessRequest;
        assert_eq!(authenticator_of(&packet) != random, hashed, "{code}");
        assert_eq!(verify_request(&packet, b"secret", true), Ok(()), "{code}");

        let wrong_secret = verify_request(&packet, b"secreT", true);
        if hashed {
            assert_eq!(wrong_secret, Err(VerifyError::BadAuthenticator));
        } else {
            assert_eq!(wrong_secret, Err(VerifyError::BadMessageAuthenticator));
        }
        // A changed attribute breaks the hash (or the HMAC).
        let mut changed = packet.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(verify_request(&changed, b"secret", false).is_err());
        // A Message-Authenticator over the wrong authenticator: re-hash
        // so that only the HMAC is wrong.
        let mut bad_mac = packet.clone();
        bad_mac[22] ^= 1;
        if hashed {
            let hash = packet_hash(&bad_mac, &[0; 16], b"secret");
            bad_mac[4..20].copy_from_slice(&hash);
        }
        assert_eq!(
            verify_request(&bad_mac, b"secret", false),
            Err(VerifyError::BadMessageAuthenticator)
        );
    }
}

#[test]
fn requests_without_message_authenticator() {
    let mut packet = Packet {
        code: Code::AccountingRequest,
        identifier: 1,
        authenticator: [0; 16],
        attributes: Attributes::new(),
    }
    .encode()
    .unwrap();
    sign_request(&mut packet, b"s");
    assert_eq!(verify_request(&packet, b"s", false), Ok(()));
    assert_eq!(
        verify_request(&packet, b"s", true),
        Err(VerifyError::MissingMessageAuthenticator)
    );
}

#[test]
fn message_authenticator_must_be_single_and_16_octets() {
    let mut two = Packet {
        code: Code::AccessAccept,
        identifier: 1,
        authenticator: [0; 16],
        attributes: Attributes::new(),
    };
    two.attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    two.attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    let ra = [1; 16];
    let mut bytes = two.encode().unwrap();
    sign_response(&mut bytes, &ra, b"s");
    assert_eq!(
        verify_response(&bytes, &ra, b"s", false),
        Err(VerifyError::BadMessageAuthenticator)
    );

    let mut short = two.clone();
    short.attributes = Attributes::new();
    short
        .attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 15])
        .unwrap();
    let mut bytes = short.encode().unwrap();
    sign_response(&mut bytes, &ra, b"s");
    assert_eq!(
        verify_response(&bytes, &ra, b"s", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
}

#[test]
fn responses_sign_over_the_request_authenticator() {
    let ra = [9; 16];
    let mut response = Packet {
        code: Code::AccessAccept,
        identifier: 42,
        authenticator: [0; 16],
        attributes: Attributes::new(),
    };
    response
        .attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    response.attributes.push_u32(attr::SESSION_TIMEOUT, 60);
    let mut bytes = response.encode().unwrap();
    sign_response(&mut bytes, &ra, b"s");
    assert_eq!(verify_response(&bytes, &ra, b"s", true), Ok(()));
    // The same response to another request fails on the authenticator.
    assert_eq!(
        verify_response(&bytes, &[8; 16], b"s", true),
        Err(VerifyError::BadAuthenticator)
    );
    // A forger who recomputes the Response Authenticator without the
    // right HMAC (BlastRADIUS-style): caught by the Message-Authenticator.
    let mut forged = bytes.clone();
    forged[22] ^= 0x80;
    let hash = packet_hash(&forged, &ra, b"s");
    forged[4..20].copy_from_slice(&hash);
    assert_eq!(
        verify_response(&forged, &ra, b"s", true),
        Err(VerifyError::BadMessageAuthenticator)
    );
}

#[test]
fn verification_never_panics_on_short_input() {
    for len in 0..24 {
        let data = vec![4u8; len];
        let _ = verify_request(&data, b"s", true);
        let _ = verify_response(&data, &[0; 16], b"s", true);
        let mut copy = data.clone();
        sign_request(&mut copy, b"s");
        sign_response(&mut copy, &[0; 16], b"s");
        let _ = frame(&data);
    }
}

#[test]
fn accounting_responses_take_either_message_authenticator() {
    let ra = [0x21; 16];
    let mut response = Packet {
        code: Code::AccountingResponse,
        identifier: 3,
        authenticator: [0; 16],
        attributes: Attributes::new(),
    };
    response
        .attributes
        .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    let unsigned = response.encode().unwrap();
    let mut bytes = unsigned.clone();
    // Signed over zero, as FreeRADIUS does.
    sign_response(&mut bytes, &ra, b"s");
    let over_zero = message_authenticator(&bytes, 22, &[0; 16], b"s");
    assert_eq!(bytes[22..38], over_zero);
    assert_eq!(verify_response(&bytes, &ra, b"s", true), Ok(()));
    // Over the request's authenticator, as RFC 3579 does for access.
    let mut other = unsigned.clone();
    let over_request = message_authenticator(&other, 22, &ra, b"s");
    other[22..38].copy_from_slice(&over_request);
    let hash = packet_hash(&other, &ra, b"s");
    other[4..20].copy_from_slice(&hash);
    assert_eq!(verify_response(&other, &ra, b"s", true), Ok(()));
    // Anything else is wrong.
    let mut wrong = unsigned;
    wrong[22] = 1;
    let hash = packet_hash(&wrong, &ra, b"s");
    wrong[4..20].copy_from_slice(&hash);
    assert_eq!(
        verify_response(&wrong, &ra, b"s", false),
        Err(VerifyError::BadMessageAuthenticator)
    );
    // Access responses take only the request's.
    let mut accept = bytes.clone();
    accept[0] = 2;
    let hash = packet_hash(&accept, &ra, b"s");
    accept[4..20].copy_from_slice(&hash);
    assert_eq!(
        verify_response(&accept, &ra, b"s", true),
        Err(VerifyError::BadMessageAuthenticator)
    );
}
