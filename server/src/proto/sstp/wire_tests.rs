//! Known bytes for every message, and every rejection path of the codec.

use super::test_vectors::*;
use super::wire::*;

fn message(bytes: &[u8]) -> Result<ControlMessage<'_>, WireError> {
    match Packet::parse(bytes)? {
        Packet::Control(control) => control.message(),
        Packet::Data(_) => panic!("not a control packet"),
    }
}

fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out);
    out
}

#[test]
fn call_connect_request_known_bytes() {
    let bytes = hex(CONNECT_REQUEST);
    assert_eq!(
        message(&bytes),
        Ok(ControlMessage::CallConnectRequest {
            protocol_id: PROTOCOL_PPP
        })
    );
    assert_eq!(
        encoded(|out| encode_call_connect_request(PROTOCOL_PPP, out)),
        bytes
    );
}

#[test]
fn call_connect_ack_known_bytes() {
    let bytes = hex(CONNECT_ACK_SHA256);
    let Ok(ControlMessage::CallConnectAck(request)) = message(&bytes) else {
        panic!("not an ACK");
    };
    assert_eq!(request.hash_protocols, HashProtocols::SHA256);
    assert_eq!(request.nonce[..], bytes[16..48]);
    assert_eq!(
        encoded(|out| encode_call_connect_ack(HashProtocols::SHA256, request.nonce, out)),
        bytes
    );
    assert_eq!(bytes.len(), CALL_CONNECT_ACK_LEN);
}

#[test]
fn call_connect_ack_sha1_known_bytes() {
    let bytes = hex(CONNECT_ACK_SHA1);
    let Ok(ControlMessage::CallConnectAck(request)) = message(&bytes) else {
        panic!("not an ACK");
    };
    assert_eq!(request.hash_protocols, HashProtocols::SHA1);
    assert_eq!(request.nonce.to_vec(), hex(SHA1_NONCE));
}

#[test]
fn call_connected_known_bytes() {
    let bytes = hex(SHA256_CALL_CONNECTED);
    assert_eq!(bytes.len(), CALL_CONNECTED_LEN);
    let Ok(ControlMessage::CallConnected(binding)) = message(&bytes) else {
        panic!("not a Call Connected");
    };
    assert_eq!(binding.protocol(), Some(HashProtocol::Sha256));
    assert_eq!(binding.nonce[..], bytes[16..48]);
    assert_eq!(binding.cert_hash(), Some(&bytes[48..80]));
    assert_eq!(binding.compound_mac(), Some(&bytes[80..112]));
    let mut out = Vec::new();
    ControlMessage::CallConnected(binding).encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn call_connect_nak_known_bytes() {
    // One Status Info: ENCAPSULATED_PROTOCOL_ID, VALUE_NOT_SUPPORTED, value 0x0002.
    let bytes = hex("10 01 00 16 00 03 00 01 00 02 00 0e 00 00 00 01 00 00 00 04 00 02");
    let info = StatusInfo {
        attrib_id: AttributeId::EncapsulatedProtocolId.as_u8(),
        status: Status::ValueNotSupported,
        value: &[0x00, 0x02],
    };
    assert_eq!(encoded(|out| encode_call_connect_nak(&[info], out)), bytes);
    let Ok(ControlMessage::CallConnectNak(infos)) = message(&bytes) else {
        panic!("not a NAK");
    };
    assert_eq!(infos.len(), 1);
    assert_eq!(infos.iter().collect::<Vec<_>>(), vec![info]);
    let mut out = Vec::new();
    ControlMessage::CallConnectNak(infos).encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn call_abort_and_disconnect_known_bytes() {
    let abort = hex("10 01 00 14 00 05 00 01 00 02 00 0c 00 00 00 02 00 00 00 08");
    let info = StatusInfo::new(AttributeId::StatusInfo.as_u8(), Status::NegotiationTimeout);
    assert_eq!(encoded(|out| encode_call_abort(Some(info), out)), abort);
    assert_eq!(message(&abort), Ok(ControlMessage::CallAbort(Some(info))));

    let disconnect = hex("10 01 00 14 00 06 00 01 00 02 00 0c 00 00 00 00 00 00 00 00");
    let info = StatusInfo::new(ATTRIB_NO_ERROR, Status::NoError);
    assert_eq!(
        encoded(|out| encode_call_disconnect(Some(info), out)),
        disconnect
    );
    assert_eq!(
        message(&disconnect),
        Ok(ControlMessage::CallDisconnect(Some(info)))
    );

    // Without Status Info: Num Attributes 0 ([MS-SSTP] 2.2.13, 2.2.14).
    let bare = hex("10 01 00 08 00 05 00 00");
    assert_eq!(encoded(|out| encode_call_abort(None, out)), bare);
    assert_eq!(message(&bare), Ok(ControlMessage::CallAbort(None)));
}

#[test]
fn messages_without_attributes_known_bytes() {
    for (message_type, expected, text) in [
        (
            MessageType::CallDisconnectAck,
            ControlMessage::CallDisconnectAck,
            "10 01 00 08 00 07 00 00",
        ),
        (
            MessageType::EchoRequest,
            ControlMessage::EchoRequest,
            "10 01 00 08 00 08 00 00",
        ),
        (
            MessageType::EchoResponse,
            ControlMessage::EchoResponse,
            "10 01 00 08 00 09 00 00",
        ),
    ] {
        let bytes = hex(text);
        assert_eq!(encoded(|out| encode_bare(message_type, out)), bytes);
        assert_eq!(message(&bytes), Ok(expected));
        assert_eq!(expected.message_type(), message_type);
    }
}

#[test]
fn data_packet_known_bytes() {
    let bytes = hex("10 00 00 08 ff 03 c0 21");
    assert_eq!(Packet::parse(&bytes), Ok(Packet::Data(&bytes[4..])));
    let mut out = Vec::new();
    put_packet_header(&mut out, false, 8);
    assert_eq!(out, bytes[..4]);
}

#[test]
fn reserved_bits_and_bytes_are_ignored_on_receipt() {
    // Reserved bits of byte 1 set, R bits of both lengths set, reserved
    // attribute byte set: still a Call Connect Request for PPP.
    let bytes = hex("10 ff f0 0e 00 01 00 01 ff 01 f0 06 00 01");
    assert_eq!(
        message(&bytes),
        Ok(ControlMessage::CallConnectRequest {
            protocol_id: PROTOCOL_PPP
        })
    );
    // Unknown Hash Protocol Bitmask bits are kept but match nothing.
    let mut ack = hex(CONNECT_ACK_SHA256);
    ack[15] = 0xfc;
    let Ok(ControlMessage::CallConnectAck(request)) = message(&ack) else {
        panic!("not an ACK");
    };
    assert!(request.hash_protocols.is_empty());
    assert_eq!(
        request.hash_protocols.strongest_common(HashProtocols::BOTH),
        None
    );
}

#[test]
fn status_values_map_one_to_one() {
    let all = [
        (Status::NoError, 0),
        (Status::DuplicateAttribute, 1),
        (Status::UnrecognizedAttribute, 2),
        (Status::InvalidAttribValueLength, 3),
        (Status::ValueNotSupported, 4),
        (Status::UnacceptedFrameReceived, 5),
        (Status::RetryCountExceeded, 6),
        (Status::InvalidFrameReceived, 7),
        (Status::NegotiationTimeout, 8),
        (Status::AttribNotSupportedInMsg, 9),
        (Status::RequiredAttributeMissing, 10),
        (Status::StatusInfoNotSupportedInMsg, 11),
    ];
    for (status, value) in all {
        assert_eq!(Status::from_u32(value), status);
        assert_eq!(status.as_u32(), value);
    }
    assert_eq!(Status::from_u32(12), Status::Unknown(12));
    assert_eq!(Status::from_u32(0xdead_beef).as_u32(), 0xdead_beef);
    let names: std::collections::HashSet<_> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names.len(), all.len());
}

#[test]
fn message_types_and_attribute_ids_round_trip() {
    for value in 0..=0x0bu16 {
        match MessageType::from_u16(value) {
            Some(t) => assert_eq!(t.as_u16(), value),
            None => assert!(value == 0 || value > 9),
        }
    }
    for value in 0..=5u8 {
        match AttributeId::from_u8(value) {
            Some(id) => assert_eq!(id.as_u8(), value),
            None => assert!(value == 0 || value > 4),
        }
    }
}

#[test]
fn hash_protocol_choice_prefers_sha256() {
    assert_eq!(
        HashProtocols::BOTH.strongest_common(HashProtocols::BOTH),
        Some(HashProtocol::Sha256)
    );
    assert_eq!(
        HashProtocols::BOTH.strongest_common(HashProtocols::SHA1),
        Some(HashProtocol::Sha1)
    );
    assert_eq!(
        HashProtocols::SHA1.strongest_common(HashProtocols::SHA256),
        None
    );
}

/// Every rejection path: the bytes, the error, its status and the status a
/// Call Abort for it carries.
#[test]
fn every_wire_error() {
    use WireError as E;
    let cases: Vec<(&str, WireError, Status, Status)> = vec![
        (
            "10 01 00",
            E::BadPacketLength {
                length: 0,
                actual: 3,
            },
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 09 00 08 00 00",
            E::BadPacketLength {
                length: 9,
                actual: 8,
            },
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "20 01 00 08 00 08 00 00",
            E::UnsupportedVersion(0x20),
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 06 00 08",
            E::ControlPacketTooShort { length: 6 },
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 08 00 0a 00 00",
            E::UnknownMessageType(0x0a),
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 08 00 08 00 01",
            E::AttributeCountMismatch { declared: 1 },
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 0c 00 08 00 00 00 02 00 04",
            E::AttributeCountMismatch { declared: 0 },
            Status::InvalidFrameReceived,
            Status::InvalidFrameReceived,
        ),
        (
            "10 01 00 0c 00 05 00 01 00 02 00 03",
            E::TruncatedAttribute { attribute: 2 },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 0c 00 05 00 01 00 02 00 0c",
            E::TruncatedAttribute { attribute: 2 },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 0a 00 05 00 01 00 02",
            E::TruncatedAttribute { attribute: 2 },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 10 00 02 00 01 00 04 00 08 00 00 00 02",
            E::InvalidAttributeLength {
                attribute: 4,
                length: 8,
            },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 10 00 05 00 01 00 02 00 08 00 00 00 00",
            E::InvalidAttributeLength {
                attribute: 2,
                length: 8,
            },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 20 00 05 00 02
             00 02 00 0c 00 00 00 02 00 00 00 08
             00 02 00 0c 00 00 00 02 00 00 00 08",
            E::DuplicateAttribute { attribute: 2 },
            Status::DuplicateAttribute,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 0c 00 08 00 01 00 09 00 04",
            E::UnrecognizedAttribute { attribute: 9 },
            Status::UnrecognizedAttribute,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 14 00 08 00 01 00 02 00 0c 00 00 00 00 00 00 00 00",
            E::AttributeNotAllowed {
                message: MessageType::EchoRequest,
                attribute: 2,
            },
            Status::AttribNotSupportedInMsg,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 0e 00 05 00 01 00 01 00 06 00 01",
            E::AttributeNotAllowed {
                message: MessageType::CallAbort,
                attribute: 1,
            },
            Status::AttribNotSupportedInMsg,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 08 00 02 00 00",
            E::MissingAttribute {
                message: MessageType::CallConnectAck,
                attribute: 4,
            },
            Status::RequiredAttributeMissing,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 08 00 04 00 00",
            E::MissingAttribute {
                message: MessageType::CallConnected,
                attribute: 3,
            },
            Status::RequiredAttributeMissing,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 08 00 03 00 00",
            E::MissingAttribute {
                message: MessageType::CallConnectNak,
                attribute: 2,
            },
            Status::RequiredAttributeMissing,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 08 00 01 00 00",
            E::MissingAttribute {
                message: MessageType::CallConnectRequest,
                attribute: 1,
            },
            Status::RequiredAttributeMissing,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 0e 00 01 00 01 00 01 00 06 00 02",
            E::UnsupportedProtocol(2),
            Status::ValueNotSupported,
            Status::ValueNotSupported,
        ),
        (
            "10 01 00 1a 00 01 00 02 00 01 00 06 00 01
             00 02 00 0c 00 00 00 01 00 00 00 06",
            E::StatusInfoInRequest {
                status: Status::RetryCountExceeded,
            },
            Status::StatusInfoNotSupportedInMsg,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 14 00 01 00 02 00 01 00 06 00 01 00 01 00 06 00 01",
            E::DuplicateAttribute { attribute: 1 },
            Status::DuplicateAttribute,
            Status::AttribNotSupportedInMsg,
        ),
        (
            "10 01 00 10 00 01 00 01 00 01 00 08 00 01 00 00",
            E::InvalidAttributeLength {
                attribute: 1,
                length: 8,
            },
            Status::InvalidAttribValueLength,
            Status::AttribNotSupportedInMsg,
        ),
    ];
    let mut names = std::collections::HashSet::new();
    for (text, error, status, abort_status) in cases {
        let bytes = hex(text);
        assert_eq!(message(&bytes), Err(error), "{text}");
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(error.abort_status(), abort_status, "{error:?}");
        names.insert(error.as_str());
    }
    assert_eq!(names.len(), 13, "every variant was exercised");
}

#[test]
fn status_info_attrib_value_is_bounded_to_64_bytes() {
    let long = [0xaa; 100];
    let info = StatusInfo {
        attrib_id: 1,
        status: Status::ValueNotSupported,
        value: &long,
    };
    assert_eq!(info.encoded_len(), 12 + 64);
    let bytes = encoded(|out| encode_call_connect_nak(&[info], out));
    let Ok(ControlMessage::CallConnectNak(infos)) = message(&bytes) else {
        panic!("not a NAK");
    };
    assert_eq!(infos.first().unwrap().value, &long[..64]);
    // A received Status Info with 65 bytes of value is refused.
    let mut too_long = hex("10 01 00 55 00 03 00 01 00 02 00 4d 00 00 00 01 00 00 00 04");
    too_long.extend_from_slice(&[0; 65]);
    assert_eq!(
        message(&too_long),
        Err(WireError::InvalidAttributeLength {
            attribute: 2,
            length: 77
        })
    );
}

#[test]
fn nak_keeps_only_what_fits_in_one_packet() {
    let value = [0u8; 64];
    let infos = vec![
        StatusInfo {
            attrib_id: 9,
            status: Status::UnrecognizedAttribute,
            value: &value,
        };
        100
    ];
    let bytes = encoded(|out| encode_call_connect_nak(&infos, out));
    assert!(bytes.len() <= MAX_PACKET_LEN);
    let Ok(ControlMessage::CallConnectNak(parsed)) = message(&bytes) else {
        panic!("not a NAK");
    };
    assert_eq!(parsed.len(), (MAX_PACKET_LEN - 8) / 76);
}

#[test]
fn connect_request_defects_are_all_listed_in_order() {
    // Encapsulated Protocol ID proposing 2, the same again, an unknown
    // attribute 9 and a Status Info with a non-zero status.
    let bytes = hex("10 01 00 26 00 01 00 04
         00 01 00 06 00 02
         00 01 00 06 00 01
         00 09 00 06 ab cd
         00 02 00 0c 00 00 00 01 00 00 00 06");
    let Ok(Packet::Control(control)) = Packet::parse(&bytes) else {
        panic!("framing");
    };
    let mut defects = Vec::new();
    let protocol = connect_request_defects(&control, |error, value| {
        defects.push((error, value.to_vec()))
    });
    assert_eq!(protocol, Some(2));
    assert_eq!(
        defects,
        vec![
            (WireError::UnsupportedProtocol(2), vec![0x00, 0x02]),
            (
                WireError::DuplicateAttribute { attribute: 1 },
                vec![0x00, 0x01]
            ),
            (WireError::UnrecognizedAttribute { attribute: 9 }, vec![]),
            (
                WireError::StatusInfoInRequest {
                    status: Status::RetryCountExceeded
                },
                hex("00 00 00 01 00 00 00 06")
            ),
        ]
    );
    // Missing protocol: AttribID ENCAPSULATED_PROTOCOL_ID ([MS-SSTP] 2.2.8).
    let bytes = hex("10 01 00 08 00 01 00 00");
    let Ok(Packet::Control(control)) = Packet::parse(&bytes) else {
        panic!("framing");
    };
    let mut defects = Vec::new();
    connect_request_defects(&control, |error, value| defects.push((error, value.len())));
    assert_eq!(
        defects,
        vec![(
            WireError::MissingAttribute {
                message: MessageType::CallConnectRequest,
                attribute: 1
            },
            0
        )]
    );
    assert_eq!(defects[0].0.attribute(), Some(1));
}

#[test]
fn a_status_info_with_no_error_is_accepted_in_a_request() {
    let bytes = hex("10 01 00 1a 00 01 00 02 00 01 00 06 00 01
         00 02 00 0c 00 00 00 00 00 00 00 00");
    assert_eq!(
        message(&bytes),
        Ok(ControlMessage::CallConnectRequest {
            protocol_id: PROTOCOL_PPP
        })
    );
}

#[test]
fn crypto_binding_with_undefined_protocol_parses_but_has_no_hash() {
    let mut bytes = hex(SHA256_CALL_CONNECTED);
    bytes[15] = 0x07;
    let Ok(ControlMessage::CallConnected(binding)) = message(&bytes) else {
        panic!("not a Call Connected");
    };
    assert_eq!(binding.protocol(), None);
    assert_eq!(binding.cert_hash(), None);
    assert_eq!(binding.compound_mac(), None);
    // SHA-1: 20-byte fields.
    bytes[15] = 0x01;
    let Ok(ControlMessage::CallConnected(binding)) = message(&bytes) else {
        panic!("not a Call Connected");
    };
    assert_eq!(binding.cert_hash().map(<[u8]>::len), Some(20));
    assert_eq!(binding.compound_mac().map(<[u8]>::len), Some(20));
}

#[test]
fn packet_header_in_place_matches_the_appended_one() {
    assert_eq!(packet_header(false, 28), [0x10, 0x00, 0x00, 28]);
    assert_eq!(packet_header(true, 0x0fff), [0x10, 0x01, 0x0f, 0xff]);
    let mut appended = Vec::new();
    put_packet_header(&mut appended, true, 112);
    assert_eq!(appended, packet_header(true, 112));
}
