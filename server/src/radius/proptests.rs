//! Properties of the codec on generated input: encode∘decode is the
//! identity, decoding and verifying never panic, and every hiding,
//! encryption and signature undoes or verifies what it made.

use proptest::prelude::*;

use super::attr::{Attribute, Attributes, Ipv6Prefix, VendorAttributes};
use super::crypt;
use super::dae;
use super::packet::{frame, Code, Packet, HEADER_LEN, MAX_PACKET_LEN};

fn attributes() -> impl Strategy<Value = Attributes> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..=253)),
        0..20,
    )
    .prop_map(|list| {
        let mut attributes = Attributes::new();
        let mut len = HEADER_LEN;
        for (kind, value) in list {
            len += 2 + value.len();
            if len > MAX_PACKET_LEN {
                break;
            }
            attributes.push_attribute(Attribute::new(kind, value).unwrap());
        }
        attributes
    })
}

fn packets() -> impl Strategy<Value = Packet> {
    (any::<u8>(), any::<u8>(), any::<[u8; 16]>(), attributes()).prop_map(
        |(code, identifier, authenticator, attributes)| Packet {
            code: Code::from(code),
            identifier,
            authenticator,
            attributes,
        },
    )
}

/// A packet with a Message-Authenticator placeholder first.
fn signable(code: Code, attributes: &Attributes, authenticator: [u8; 16]) -> Vec<u8> {
    let mut packet = Packet {
        code,
        identifier: 9,
        authenticator,
        attributes: Attributes::new(),
    };
    packet
        .attributes
        .push(super::attr::MESSAGE_AUTHENTICATOR, &[0; 16])
        .unwrap();
    for attribute in attributes.iter().take(10) {
        if attribute.kind() != super::attr::MESSAGE_AUTHENTICATOR {
            packet.attributes.push_attribute(attribute.clone());
        }
    }
    packet.encode().unwrap_or_default()
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(packet in packets()) {
        let bytes = packet.encode().unwrap();
        prop_assert_eq!(bytes.len(), packet.encoded_len());
        prop_assert_eq!(Packet::decode(&bytes), Ok(packet));
    }

    #[test]
    fn decoding_never_panics_and_re_encodes_the_framed_bytes(
        data in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(packet) = Packet::decode(&data) {
            let framed = frame(&data).unwrap();
            prop_assert_eq!(packet.encode().unwrap(), framed);
        }
        let _ = dae::verify_request(&data, b"secret", false);
        let _ = crypt::verify_response(&data, &[0; 16], b"secret", true);
        if let Some(sub) = data.get(4..) {
            if let Some(iter) = VendorAttributes::well_formed(sub) {
                prop_assert!(iter.count() <= sub.len() / 2);
            }
        }
        let _ = Ipv6Prefix::from_value(&data);
        let _ = super::attr::ms::parse_chap2_success(&data);
        let _ = super::attr::ms::parse_chap_error(&data);
    }

    /// A datagram built to pass framing, with random attributes.
    #[test]
    fn framed_datagrams_decode(packet in packets(), padding in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = packet.encode().unwrap();
        bytes.extend_from_slice(&padding);
        prop_assert_eq!(Packet::decode(&bytes), Ok(packet));
    }

    #[test]
    fn passwords_unhide_to_what_was_hidden(
        password in prop::collection::vec(1u8.., 0..=128),
        secret in prop::collection::vec(any::<u8>(), 1..40),
        authenticator in any::<[u8; 16]>(),
    ) {
        let hidden = crypt::hide_password(&password, &secret, &authenticator).unwrap();
        prop_assert_eq!(hidden.len() % 16, 0);
        prop_assert_eq!(crypt::unhide_password(&hidden, &secret, &authenticator).unwrap(), password);
    }

    #[test]
    fn mppe_keys_decrypt_to_what_was_encrypted(
        key in prop::collection::vec(any::<u8>(), 0..=crypt::MAX_MPPE_KEY_LEN),
        secret in prop::collection::vec(any::<u8>(), 1..40),
        authenticator in any::<[u8; 16]>(),
        salt in any::<[u8; 2]>(),
    ) {
        let value = crypt::encrypt_mppe_key(&key, &secret, &authenticator, salt).unwrap();
        prop_assert!(value[0] & 0x80 != 0);
        prop_assert_eq!(crypt::decrypt_mppe_key(&value, &secret, &authenticator).unwrap(), key);
    }

    #[test]
    fn mppe_decryption_never_panics(
        value in prop::collection::vec(any::<u8>(), 0..300),
        authenticator in any::<[u8; 16]>(),
    ) {
        let _ = crypt::decrypt_mppe_key(&value, b"s", &authenticator);
        let _ = crypt::unhide_password(&value, b"s", &authenticator);
    }

    #[test]
    fn signed_requests_verify(
        code in prop::sample::select(vec![
            Code::AccessRequest, Code::AccountingRequest, Code::DisconnectRequest, Code::CoaRequest,
        ]),
        attributes in attributes(),
        authenticator in any::<[u8; 16]>(),
        secret in prop::collection::vec(any::<u8>(), 1..40),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut bytes = signable(code, &attributes, authenticator);
        prop_assume!(!bytes.is_empty());
        crypt::sign_request(&mut bytes, &secret);
        prop_assert_eq!(crypt::verify_request(&bytes, &secret, true), Ok(()));
        // Any flipped bit past the header breaks it (the header's Code and
        // Identifier are covered too, but a flip there may change the
        // scheme).
        let at = HEADER_LEN + flip.index(bytes.len() - HEADER_LEN);
        bytes[at] ^= 1;
        prop_assert!(crypt::verify_request(&bytes, &secret, true).is_err());
    }

    #[test]
    fn signed_responses_verify(
        code in prop::sample::select(vec![
            Code::AccessAccept, Code::AccessReject, Code::AccessChallenge,
            Code::AccountingResponse, Code::CoaAck, Code::DisconnectNak,
        ]),
        attributes in attributes(),
        request_authenticator in any::<[u8; 16]>(),
        secret in prop::collection::vec(any::<u8>(), 1..40),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut bytes = signable(code, &attributes, [0; 16]);
        prop_assume!(!bytes.is_empty());
        crypt::sign_response(&mut bytes, &request_authenticator, &secret);
        prop_assert_eq!(crypt::verify_response(&bytes, &request_authenticator, &secret, true), Ok(()));
        let at = flip.index(bytes.len());
        bytes[at] ^= 1;
        prop_assert!(crypt::verify_response(&bytes, &request_authenticator, &secret, true).is_err());
    }

    #[test]
    fn ipv6_prefixes_round_trip(addr in any::<u128>(), len in 0u8..=128) {
        let prefix = Ipv6Prefix::new(addr.into(), len).unwrap();
        prop_assert_eq!(Ipv6Prefix::from_value(&prefix.to_value()), Some(prefix));
    }
}
