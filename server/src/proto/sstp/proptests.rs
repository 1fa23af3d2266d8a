//! Property tests: no input makes a parser or a connection panic, and what
//! the encoders write parses back to what they were given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::binding::CertHashes;
use super::config::SstpConfig;
use super::connection::SstpConnection;
use super::deframer::Deframer;
use super::http::{ClientHandshake, Parsed, RequestParser, ResponseParser, DEFAULT_MAX_HEAD_LEN};
use super::test_vectors::SSTPC_REQUEST;
use super::transmit::Transmit;
use super::wire::*;

/// Delineates `stream` fed in pieces of the given sizes (cycled); returns
/// the packets and whether an error stopped it.
fn deframe(stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, bool) {
    let mut deframer = Deframer::new(MAX_PACKET_LEN as u16);
    let mut packets = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        i += 1;
        let mut feed = deframer.feed(chunk);
        while let Some(item) = feed.next() {
            match item {
                Ok(packet) => packets.push(packet.to_vec()),
                Err(_) => return (packets, true),
            }
        }
    }
    (packets, false)
}

/// Decodes a packet as far as it goes, and re-encodes what decodes: the
/// re-encoded bytes decode to the same message.
fn decode_and_reencode(packet: &[u8]) {
    let Ok(Packet::Control(control)) = Packet::parse(packet) else {
        return;
    };
    let _ = control.attributes().count();
    let _ = connect_request_defects(&control, |error, _| {
        let _ = (error.status(), error.abort_status(), error.as_str());
    });
    if let Ok(message) = control.message() {
        let mut out = Vec::new();
        message.encode(&mut out);
        let Ok(Packet::Control(again)) = Packet::parse(&out) else {
            panic!("re-encoded {message:?} does not parse");
        };
        assert_eq!(again.message(), Ok(message));
    }
}

fn status_strategy() -> impl Strategy<Value = Status> + Clone {
    any::<u32>().prop_map(|v| Status::from_u32(v % 16))
}

/// An owned description of a control message, to build borrowed ones from.
#[derive(Clone, Debug)]
enum Spec {
    Request(u16),
    Ack(u8, [u8; 32]),
    Nak(Vec<(u8, Status, Vec<u8>)>),
    Connected(u8, [u8; 32], [u8; 32], [u8; 32]),
    Abort(Option<(u8, Status)>),
    Disconnect(Option<(u8, Status)>),
    Bare(MessageType),
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    let info = (any::<u8>(), status_strategy());
    prop_oneof![
        any::<u16>().prop_map(Spec::Request),
        (any::<u8>(), any::<[u8; 32]>()).prop_map(|(b, n)| Spec::Ack(b, n)),
        vec(
            (any::<u8>(), status_strategy(), vec(any::<u8>(), 0..=64)),
            1..8
        )
        .prop_map(Spec::Nak),
        (
            any::<u8>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(p, n, c, m)| Spec::Connected(p, n, c, m)),
        proptest::option::of(info.clone()).prop_map(Spec::Abort),
        proptest::option::of(info).prop_map(Spec::Disconnect),
        prop_oneof![
            Just(MessageType::CallDisconnectAck),
            Just(MessageType::EchoRequest),
            Just(MessageType::EchoResponse),
        ]
        .prop_map(Spec::Bare),
    ]
}

proptest! {
    #[test]
    fn deframer_never_panics(stream in vec(any::<u8>(), 0..6000), sizes in vec(1usize..600, 1..8)) {
        let (packets, _) = deframe(&stream, &sizes);
        for packet in &packets {
            decode_and_reencode(packet);
        }
    }

    #[test]
    fn deframer_yields_the_packets_whatever_the_chunking(
        frames in vec(vec(any::<u8>(), 0..1500), 0..12),
        sizes in vec(1usize..400, 1..8),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for frame in &frames {
            let start = stream.len();
            put_packet_header(&mut stream, false, HEADER_LEN + frame.len());
            stream.extend_from_slice(frame);
            expected.push(stream[start..].to_vec());
        }
        let (packets, failed) = deframe(&stream, &sizes);
        prop_assert!(!failed);
        prop_assert_eq!(packets, expected);
    }

    #[test]
    fn decoder_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        decode_and_reencode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_well_framed_control_packets(
        message_type in 0u16..12,
        attributes in vec((any::<u8>(), 0u8..6, vec(any::<u8>(), 0..110)), 0..5),
    ) {
        // Valid framing, arbitrary content: exercises the per-message checks.
        let mut body = Vec::new();
        for (reserved, id, value) in &attributes {
            body.push(*reserved);
            body.push(*id);
            body.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
            body.extend_from_slice(value);
        }
        let mut packet = Vec::new();
        put_packet_header(&mut packet, true, 8 + body.len());
        packet.extend_from_slice(&message_type.to_be_bytes());
        packet.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        packet.extend_from_slice(&body);
        decode_and_reencode(&packet);
    }

    #[test]
    fn encode_then_parse_round_trips(spec in spec_strategy()) {
        let mut out = Vec::new();
        let infos: Vec<StatusInfo<'_>>;
        let expected_type = match &spec {
            Spec::Request(protocol) => {
                encode_call_connect_request(*protocol, &mut out);
                MessageType::CallConnectRequest
            }
            Spec::Ack(bits, nonce) => {
                encode_call_connect_ack(HashProtocols::from_bits(*bits), nonce, &mut out);
                MessageType::CallConnectAck
            }
            Spec::Nak(list) => {
                infos = list
                    .iter()
                    .map(|(id, status, value)| StatusInfo { attrib_id: *id, status: *status, value })
                    .collect();
                encode_call_connect_nak(&infos, &mut out);
                MessageType::CallConnectNak
            }
            Spec::Connected(protocol, nonce, cert, mac) => {
                ControlMessage::CallConnected(CryptoBinding {
                    hash_protocol: *protocol,
                    nonce,
                    cert_hash_field: cert,
                    compound_mac_field: mac,
                })
                .encode(&mut out);
                MessageType::CallConnected
            }
            Spec::Abort(info) => {
                encode_call_abort(info.map(|(id, s)| StatusInfo::new(id, s)), &mut out);
                MessageType::CallAbort
            }
            Spec::Disconnect(info) => {
                encode_call_disconnect(info.map(|(id, s)| StatusInfo::new(id, s)), &mut out);
                MessageType::CallDisconnect
            }
            Spec::Bare(message_type) => {
                encode_bare(*message_type, &mut out);
                *message_type
            }
        };
        let header = PacketHeader::parse(&out).unwrap();
        prop_assert_eq!(usize::from(header.length), out.len());
        prop_assert!(header.control);
        let Ok(Packet::Control(control)) = Packet::parse(&out) else {
            panic!("does not parse: {out:02x?}");
        };
        prop_assert_eq!(control.message_type(), expected_type);
        match (&spec, control.message()) {
            (Spec::Request(protocol), Ok(ControlMessage::CallConnectRequest { protocol_id })) => {
                prop_assert_eq!(*protocol, PROTOCOL_PPP);
                prop_assert_eq!(protocol_id, *protocol);
            }
            (Spec::Request(protocol), Err(WireError::UnsupportedProtocol(p))) => {
                prop_assert_eq!(p, *protocol);
            }
            (Spec::Ack(bits, nonce), Ok(ControlMessage::CallConnectAck(request))) => {
                prop_assert_eq!(request.hash_protocols.bits(), *bits);
                prop_assert_eq!(request.nonce, nonce);
            }
            (Spec::Nak(list), Ok(ControlMessage::CallConnectNak(parsed))) => {
                let parsed: Vec<_> = parsed.iter().map(|i| (i.attrib_id, i.status, i.value.to_vec())).collect();
                prop_assert_eq!(&parsed, list);
            }
            (Spec::Connected(protocol, nonce, cert, mac), Ok(ControlMessage::CallConnected(binding))) => {
                prop_assert_eq!(binding.hash_protocol, *protocol);
                prop_assert_eq!(binding.nonce, nonce);
                prop_assert_eq!(binding.cert_hash_field, cert);
                prop_assert_eq!(binding.compound_mac_field, mac);
            }
            (Spec::Abort(info), Ok(ControlMessage::CallAbort(parsed)))
            | (Spec::Disconnect(info), Ok(ControlMessage::CallDisconnect(parsed))) => {
                prop_assert_eq!(parsed.map(|i| (i.attrib_id, i.status)), *info);
            }
            (Spec::Bare(_), Ok(message)) => prop_assert_eq!(message.message_type(), expected_type),
            (spec, other) => panic!("{spec:?} came back as {other:?}"),
        }
    }

    #[test]
    fn data_packets_round_trip(frame in vec(any::<u8>(), 1..=MAX_PPP_FRAME_LEN)) {
        let mut out = Vec::new();
        put_packet_header(&mut out, false, HEADER_LEN + frame.len());
        out.extend_from_slice(&frame);
        prop_assert_eq!(Packet::parse(&out), Ok(Packet::Data(&frame[..])));
    }

    #[test]
    fn request_parser_never_panics_and_chunking_does_not_matter(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..400),
            // Near-valid requests: the real one with bytes changed.
            (vec((0usize..SSTPC_REQUEST.len(), any::<u8>()), 0..4)).prop_map(|edits| {
                let mut bytes = SSTPC_REQUEST.to_vec();
                for (at, b) in edits { bytes[at] = b; }
                bytes
            }),
        ],
        split in any::<prop::sample::Index>(),
    ) {
        let whole = RequestParser::new(DEFAULT_MAX_HEAD_LEN).feed(&bytes);
        let at = split.index(bytes.len() + 1);
        let mut parser = RequestParser::new(DEFAULT_MAX_HEAD_LEN);
        let split_result = match parser.feed(&bytes[..at]) {
            Ok(Parsed::NeedMore) => parser.feed(&bytes[at..]).map(|p| match p {
                Parsed::Done { message, consumed } => Parsed::Done { message, consumed: consumed + at },
                need_more => need_more,
            }),
            done_or_error => done_or_error,
        };
        prop_assert_eq!(whole, split_result);
    }

    #[test]
    fn response_parser_never_panics(bytes in vec(any::<u8>(), 0..400), max in 1usize..600) {
        let _ = ResponseParser::new(max).feed(&bytes);
        let mut parser = ResponseParser::new(max);
        for chunk in bytes.chunks(7) {
            if !matches!(parser.feed(chunk), Ok(Parsed::NeedMore)) {
                break;
            }
        }
    }

    #[test]
    fn any_host_and_correlation_id_survive_the_round_trip(
        host in "[!-~]{1,40}",
        id in "[ -~]{0,60}",
    ) {
        let handshake = ClientHandshake::new(host.clone(), id.clone()).unwrap();
        let mut bytes = Vec::new();
        handshake.write_request(&mut bytes);
        let parsed = RequestParser::new(DEFAULT_MAX_HEAD_LEN).feed(&bytes).unwrap();
        let Parsed::Done { message, consumed } = parsed else { panic!("incomplete") };
        prop_assert_eq!(consumed, bytes.len());
        prop_assert_eq!(message.host, host);
        prop_assert_eq!(message.correlation_id, Some(id.trim_matches(' ').to_owned()));
    }

    #[test]
    fn connections_never_panic_on_arbitrary_input(
        server_side in any::<bool>(),
        chunks in vec((vec(any::<u8>(), 0..200), 0u64..90_000), 0..12),
        prefix_http in any::<bool>(),
        hlak in proptest::option::of(any::<[u8; 32]>()),
    ) {
        let base = Instant::now();
        let config = Arc::new(SstpConfig::default());
        let cert = CertHashes::of_der(b"cert");
        let mut conn = if server_side {
            SstpConnection::server(config, base, cert, [7; 32])
        } else {
            let handshake = ClientHandshake::new("h", "{id}").unwrap();
            SstpConnection::client(config, base, handshake, cert)
        };
        let mut now = base;
        let mut out = Transmit::new();
        if prefix_http {
            let head: &[u8] = if server_side { SSTPC_REQUEST } else { b"HTTP/1.1 200 OK\r\n\r\n" };
            conn.handle_input(now, head, &mut |_| {});
        }
        for (i, (chunk, millis)) in chunks.iter().enumerate() {
            conn.handle_input(now, chunk, &mut |frame| assert!(!frame.is_empty()));
            if i == 2 {
                if let Some(hlak) = hlak {
                    conn.set_hlak(now, hlak);
                }
            }
            let _ = conn.send_ppp(&[0xc0, 0x21], &mut out);
            conn.poll_transmit(now, &mut out);
            now += Duration::from_millis(*millis);
            conn.handle_timeout(now);
            while conn.poll_event().is_some() {}
            if conn.is_closed() {
                prop_assert_eq!(conn.poll_timeout(), None);
            }
        }
    }
}
