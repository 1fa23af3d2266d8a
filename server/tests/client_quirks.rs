//! What real SSTP clients send where it differs from the spec, replayed byte
//! for byte into a server [`Session`] (sans-IO, on the virtual clock of
//! `sstpd::testing::hostile::LoneServer`), with the exact answers sstpd
//! gives. Every recorded pattern names its source next to it; none comes
//! from running those clients here (no Windows or RouterOS machine runs on
//! this CI), so these tests pin sstpd's answers to what the clients are
//! known to send, and `tests/interop_sstpc.rs` covers the one real client
//! that does run here.
//!
//! [`Session`]: sstpd::proto::session::Session

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use sstpd::proto::auth::pap::PapPacket;
use sstpd::proto::auth::{AuthProtocol, LocalAuthenticator, PROTO_PAP};
use sstpd::proto::ppp::frame::{PROTO_CCP, PROTO_IPCP, PROTO_IPV6CP, PROTO_LCP};
use sstpd::proto::ppp::packet::{
    CODE_REJECT, CONFIGURE_ACK, CONFIGURE_NAK, CONFIGURE_REJECT, CONFIGURE_REQUEST,
};
use sstpd::proto::ppp::{IpcpConfig, PppConfig};
use sstpd::proto::session::{SessionConfig, SessionEvent};
use sstpd::proto::sstp::binding::build_call_connected;
use sstpd::proto::sstp::wire::HashProtocol;
use sstpd::proto::sstp::{CertHashes, SstpConfig};
use sstpd::testing::hostile::{LoneServer, ScriptedClient};
use sstpd::testing::pair::TEST_CERTIFICATE;
use sstpd::testing::StaticPasswords;

/// LCP codes beyond the Configure/Terminate ones ([RFC 1661] 5.5 to 5.8,
/// [RFC 1570] 2.1).
///
/// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
/// [RFC 1570]: https://www.rfc-editor.org/rfc/rfc1570
const PROTOCOL_REJECT: u8 = 8;
const ECHO_REQUEST: u8 = 9;
const ECHO_REPLY: u8 = 10;
const IDENTIFICATION: u8 = 12;

/// The 200 sstpd answers an acceptable request with: [MS-SSTP] 4.1's
/// example without `Date` (the core has no wall clock; the runtime adds
/// none either).
const OK_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n";

/// sstp-client 1.0.18's request, byte for byte (`/work/shared/notes/peers.md`,
/// and `sstp_http_send_hello` in sstp-client's `src/sstp-http.c`): `Host`
/// without a port, Content-Length 2^64-1 printed with `%llu` of `-1ULL`,
/// and an SSTPCORRELATIONID that is not a well-formed GUID (its last group
/// has 8 digits).
const SSTPC_REQUEST: &[u8] =
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\
Host: 127.0.0.1\r\n\
Content-Length: 18446744073709551615\r\n\
SSTPCORRELATIONID: {6BAA1E45-9937-77B0-567472AB}\r\n\r\n";

/// sstp-client's Call Connect Request (peers.md; `sstp_state_send_request`
/// in `src/sstp-state.c`): one Encapsulated Protocol attribute, PPP.
const SSTPC_CONNECT_REQUEST: [u8; 14] = [
    0x10, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x01,
];

/// An older sstp-client's request as accel-ppp logged it (accel-ppp issue
/// xebd/accel-ppp#91, 2019): the correlation id is a bare UUID, without
/// braces.
const OLD_SSTPC_REQUEST: &[u8] =
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\
Host: vpn.example.net\r\n\
Content-Length: 18446744073709551615\r\n\
SSTPCORRELATIONID: 0c38434f-aa00-4c52-b666-ad665d1844b2\r\n\r\n";

/// Windows' request as [MS-SSTP] 3.2.4.1 and 4.1 describe it: the
/// correlation id a braced GUID, Content-Length before Host, and the
/// optional `tenantid` query variable 3.2.4.1 allows (Windows 10 and later
/// set it for HTTPS-terminating proxies; a server that does not use it
/// ignores it).
const WINDOWS_REQUEST: &[u8] =
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/?tenantid=contoso HTTP/1.1\r\n\
SSTPCORRELATIONID: {62DFA5C0-E2E0-FD50-D286-B00C4B4AF8D1}\r\n\
Content-Length: 18446744073709551615\r\n\
Host: vpn.example.net\r\n\r\n";

/// Windows' first LCP Configure-Request (the options peers.md records for
/// Windows and RRAS, as Wireshark shows them for Windows' PPP peers): MRU
/// 4091, a Magic-Number, PFC, ACFC, Callback with operation 6 (MS-CBCP,
/// [RFC 1570] 2.3), Multilink MRRU 1614 ([RFC 1990] 5.1.1) and an Endpoint
/// Discriminator of class 1 with 20 octets ([RFC 1990] 5.1.3). Identifier
/// 0: Windows counts from 0.
///
/// [RFC 1570]: https://www.rfc-editor.org/rfc/rfc1570
/// [RFC 1990]: https://www.rfc-editor.org/rfc/rfc1990
const WINDOWS_LCP_OPTIONS: &[u8] = &[
    0x01, 0x04, 0x0f, 0xfb, // MRU 4091
    0x05, 0x06, 0x2f, 0x5a, 0x43, 0x19, // Magic-Number
    0x07, 0x02, // PFC
    0x08, 0x02, // ACFC
    0x0d, 0x03, 0x06, // Callback: MS-CBCP
    0x11, 0x04, 0x06, 0x4e, // MRRU 1614
    0x13, 0x17, 0x01, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, // Endpoint Discriminator
];

/// What sstpd must reject of [`WINDOWS_LCP_OPTIONS`], in order: Callback,
/// MRRU (sstpd does no multilink) and the Endpoint Discriminator.
const WINDOWS_REJECTED: &[u8] = &[
    0x0d, 0x03, 0x06, 0x11, 0x04, 0x06, 0x4e, 0x13, 0x17, 0x01, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
];

/// Windows' second Configure-Request, without what was rejected.
const WINDOWS_LCP_RETRY: &[u8] = &[
    0x01, 0x04, 0x0f, 0xfb, 0x05, 0x06, 0x2f, 0x5a, 0x43, 0x19, 0x07, 0x02, 0x08, 0x02,
];

/// Windows' Magic-Number in the requests above.
const WINDOWS_MAGIC: [u8; 4] = [0x2f, 0x5a, 0x43, 0x19];

/// SSTP Echo Request and Echo Response ([MS-SSTP] 2.2.10 and 2.2.11): no
/// attributes.
const ECHO_REQUEST_PACKET: [u8; 8] = [0x10, 0x01, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00];
const ECHO_RESPONSE_PACKET: [u8; 8] = [0x10, 0x01, 0x00, 0x08, 0x00, 0x09, 0x00, 0x00];

fn config(method: AuthProtocol) -> SessionConfig {
    let ppp = PppConfig {
        auth_protocols: vec![method],
        ipcp: IpcpConfig {
            local_address: Some(Ipv4Addr::new(10, 99, 0, 1)),
            dns: [Some(Ipv4Addr::new(10, 99, 0, 53)), None],
            ..IpcpConfig::default()
        },
        ..PppConfig::default()
    };
    SessionConfig::new(SstpConfig::default(), ppp)
}

/// PAP, with IPv6CP on or off.
fn config_with_ipv6(ipv6: bool) -> SessionConfig {
    let mut config = config(AuthProtocol::Pap);
    let mut ppp = (*config.ppp).clone();
    ppp.ipv6cp.enabled = ipv6;
    config.ppp = Arc::new(ppp);
    config
}

/// A server recording what it sends.
fn server(config: &SessionConfig) -> LoneServer {
    LoneServer::new(config, 7).recording()
}

/// Everything the server sent so far.
fn sent(server: &LoneServer) -> Vec<u8> {
    server.server.sent.to_vec()
}

/// Splits what follows the HTTP head into SSTP packets (12-bit lengths).
fn packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]) & 0x0fff);
        assert!(
            len >= 4 && len <= bytes.len(),
            "whole packets: {bytes:02x?}"
        );
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    assert!(bytes.is_empty(), "no partial packet");
    out
}

/// Feeds `bytes` to the server as one read; the SSTP packets it answered.
fn exchange(server: &mut LoneServer, bytes: &[u8]) -> Vec<Vec<u8>> {
    let before = sent(server).len();
    server.send(bytes);
    packets(&sent(server)[before..])
}

/// An SSTP data packet carrying `frame` unchanged.
fn data_packet(frame: &[u8]) -> Vec<u8> {
    ScriptedClient::data_packet(frame)
}

/// An LCP packet with the full `FF 03 C0 21` header, as bytes of a frame.
fn lcp_frame(code: u8, identifier: u8, data: &[u8]) -> Vec<u8> {
    let len = (4 + data.len()) as u16;
    let mut frame = vec![0xff, 0x03, 0xc0, 0x21, code, identifier];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

fn dropped(server: &LoneServer) -> Vec<&'static str> {
    server
        .events()
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Dropped { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

fn correlation_id(server: &LoneServer) -> Option<&str> {
    server.events().iter().find_map(|e| match e {
        SessionEvent::HttpHandshake { correlation_id } => Some(correlation_id.as_str()),
        _ => None,
    })
}

/// sstp-client's parse of the 200 (`sstp_recv_hello_complete` in
/// `src/sstp-http.c`): status 200, and a Content-Length, when present,
/// that `strtoull` reads as 2^64-1.
fn sstpc_accepts(head: &[u8]) -> bool {
    let text = std::str::from_utf8(head).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_ok = lines.next().and_then(|l| l.split(' ').nth(1)) == Some("200");
    let length_ok = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .all(|(_, value)| value.trim().parse::<u64>() == Ok(u64::MAX));
    status_ok && length_ok
}

#[test]
fn sstpc_request_gets_the_spec_200_and_its_connect_request_one_ack_then_lcp() {
    let mut server = server(&config(AuthProtocol::Pap));
    // sstpc writes the head, then waits for the 200 before its Connect
    // Request: two reads.
    server.send(SSTPC_REQUEST);
    assert_eq!(sent(&server), OK_RESPONSE);
    assert!(sstpc_accepts(OK_RESPONSE));
    assert_eq!(
        correlation_id(&server),
        Some("{6BAA1E45-9937-77B0-567472AB}"),
        "kept as sent, never checked for GUID form"
    );

    server.send(&SSTPC_CONNECT_REQUEST);
    let all = sent(&server);
    let packets = packets(&all[OK_RESPONSE.len()..]);
    assert_eq!(
        packets.len(),
        2,
        "Call Connect Ack, then LCP: {packets:02x?}"
    );
    // Call Connect Acknowledge ([MS-SSTP] 2.2.3): one attribute (sstpc's
    // parser mishandles several), the Crypto Binding Request offering SHA-1
    // and SHA-256 (bitmask 3) and a 32-octet nonce.
    let ack = &packets[0];
    assert_eq!(
        ack[..16],
        [
            0x10, 0x01, 0x00, 0x30, 0x00, 0x02, 0x00, 0x01, 0x00, 0x04, 0x00, 0x28, 0x00, 0x00,
            0x00, 0x03
        ]
    );
    assert_eq!(ack.len(), 48);
    assert_ne!(ack[16..], [0; 32], "a real nonce");
    // Then the server's LCP Configure-Request, in a data packet of its own
    // with the full FF 03 C0 21 header.
    assert_eq!(packets[1][..2], [0x10, 0x00]);
    assert_eq!(
        packets[1][4..9],
        [0xff, 0x03, 0xc0, 0x21, CONFIGURE_REQUEST]
    );
    assert!(dropped(&server).is_empty(), "{:?}", dropped(&server));
}

#[test]
fn every_recorded_request_head_is_accepted_with_the_same_200() {
    for (client, request, id) in [
        (
            "sstp-client 1.0.18",
            SSTPC_REQUEST,
            "{6BAA1E45-9937-77B0-567472AB}",
        ),
        (
            "older sstp-client",
            OLD_SSTPC_REQUEST,
            "0c38434f-aa00-4c52-b666-ad665d1844b2",
        ),
        (
            "Windows ([MS-SSTP] 4.1)",
            WINDOWS_REQUEST,
            "{62DFA5C0-E2E0-FD50-D286-B00C4B4AF8D1}",
        ),
    ] {
        let mut server = server(&config(AuthProtocol::Pap));
        // Any client may pipeline: the head and the Connect Request in one
        // read.
        let mut read = request.to_vec();
        read.extend_from_slice(&SSTPC_CONNECT_REQUEST);
        server.send(&read);
        let all = sent(&server);
        assert!(all.starts_with(OK_RESPONSE), "{client}: {all:02x?}");
        assert_eq!(correlation_id(&server), Some(id), "{client}");
        assert!(
            server.server.saw(|e| matches!(e, SessionEvent::PppStarted)),
            "{client}: Call Connect Ack sent"
        );
    }
}

/// A server whose LCP is open with a Windows-like client that went through
/// the reject round ([`WINDOWS_LCP_OPTIONS`]); returns the server.
fn windows_lcp_opened(method: AuthProtocol) -> LoneServer {
    windows_lcp_opened_with(&config(method))
}

fn windows_lcp_opened_with(config: &SessionConfig) -> LoneServer {
    let mut server = server(config);
    let mut read = WINDOWS_REQUEST.to_vec();
    read.extend_from_slice(&SSTPC_CONNECT_REQUEST);
    server.send(&read);

    let answer = exchange(
        &mut server,
        &data_packet(&lcp_frame(CONFIGURE_REQUEST, 0, WINDOWS_LCP_OPTIONS)),
    );
    assert_eq!(
        answer,
        [data_packet(&lcp_frame(
            CONFIGURE_REJECT,
            0,
            WINDOWS_REJECTED
        ))],
        "Callback, MRRU and Endpoint Discriminator rejected, in order; MRU, PFC, ACFC kept"
    );

    let answer = exchange(
        &mut server,
        &data_packet(&lcp_frame(CONFIGURE_REQUEST, 1, WINDOWS_LCP_RETRY)),
    );
    assert_eq!(
        answer,
        [data_packet(&lcp_frame(CONFIGURE_ACK, 1, WINDOWS_LCP_RETRY))],
        "MRU 4091, PFC and ACFC acknowledged as proposed"
    );
    let request = server
        .client
        .lcp_request()
        .expect("the server's own LCP request")
        .clone();
    server.send(&ScriptedClient::ack(&request));
    server
}

#[test]
fn windows_lcp_offer_is_rejected_then_acknowledged_and_identification_is_accepted() {
    let mut server = windows_lcp_opened(AuthProtocol::Pap);
    // Windows identifies itself once LCP is open ([RFC 1570] 2.1): the
    // sender's Magic-Number, then "MSRASV5.20" and "MSRAS-0-<host>" (the
    // strings RRAS logs show).
    let before = sent(&server).len();
    for (identifier, message) in [(2u8, &b"MSRASV5.20"[..]), (3, b"MSRAS-0-DESKTOP-1")] {
        let mut data = WINDOWS_MAGIC.to_vec();
        data.extend_from_slice(message);
        server.send(&data_packet(&lcp_frame(IDENTIFICATION, identifier, &data)));
    }
    assert_eq!(
        sent(&server).len(),
        before,
        "no answer at all, no Code-Reject"
    );
    assert!(!server.client.saw(PROTO_LCP, CODE_REJECT));
    assert!(dropped(&server).is_empty(), "{:?}", dropped(&server));
}

#[test]
fn windows_lcp_echo_request_is_answered_with_the_servers_magic() {
    let mut server = windows_lcp_opened(AuthProtocol::Pap);
    let ours = server
        .client
        .lcp_request()
        .expect("server request")
        .data
        .clone();
    let our_magic = magic_of(&ours).expect("the server sends a Magic-Number");
    let mut data = WINDOWS_MAGIC.to_vec();
    data.extend_from_slice(b"ping");
    let answer = exchange(
        &mut server,
        &data_packet(&lcp_frame(ECHO_REQUEST, 0x21, &data)),
    );
    let mut reply = our_magic.to_vec();
    reply.extend_from_slice(b"ping");
    assert_eq!(
        answer,
        [data_packet(&lcp_frame(ECHO_REPLY, 0x21, &reply))],
        "[RFC 1661] 5.8: same Identifier and data, our Magic-Number"
    );
}

/// The Magic-Number option's value in a Configure-Request's options.
fn magic_of(options: &[u8]) -> Option<[u8; 4]> {
    let mut rest = options;
    while rest.len() >= 2 {
        let len = usize::from(rest[1]);
        if rest[0] == 5 && len == 6 {
            return rest.get(2..6)?.try_into().ok();
        }
        rest = rest.get(len.max(2)..)?;
    }
    None
}

/// PAP as alice, accepted by the local user table (Windows' PPP peers use
/// MS-CHAPv2 by default; the quirks replayed here do not depend on the
/// method).
fn authenticate(server: &mut LoneServer) {
    server.send(&ScriptedClient::pap_request(1, "alice", "alice-secret"));
    let mut users = StaticPasswords::new();
    users.insert("alice", "alice-secret");
    let decision = LocalAuthenticator::new(users).decide(&server.requests()[0]);
    assert!(server.decide(0, decision));
    assert!(server.client.saw(PROTO_PAP, 2), "Authenticate-Ack");
}

/// The client's Call Connected for the server's nonce (from its Call
/// Connect Acknowledge) with SHA-256 and the zero HLAK of PAP.
fn call_connected(server: &LoneServer) -> Vec<u8> {
    let all = sent(server);
    let ack = packets(&all[OK_RESPONSE.len()..])
        .into_iter()
        .find(|p| p[..6] == [0x10, 0x01, 0x00, 0x30, 0x00, 0x02])
        .expect("Call Connect Ack");
    let nonce: [u8; 32] = ack[16..48].try_into().expect("32 octets");
    build_call_connected(
        HashProtocol::Sha256,
        &nonce,
        &CertHashes::of_der(TEST_CERTIFICATE),
        &[0; 32],
    )
    .to_vec()
}

/// Windows, authenticated, in the Network phase: it probes CCP (MPPE,
/// [RFC 3078]) with PFC and ACFC in use, so its frames come without
/// `FF 03`.
///
/// [RFC 3078]: https://www.rfc-editor.org/rfc/rfc3078
#[test]
fn windows_ccp_probe_without_address_and_control_gets_a_protocol_reject() {
    let mut server = windows_lcp_opened(AuthProtocol::Pap);
    authenticate(&mut server);

    // CCP Configure-Request with the MPPE option (18), 128-bit stateless
    // (bits H and S, [RFC 3078] 2.1), as Windows proposes it, compressed
    // header: no FF 03.
    let ccp = [0x01, 0x04, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40];
    let mut frame = vec![0x80, 0xfd];
    frame.extend_from_slice(&ccp);
    let answer = exchange(&mut server, &data_packet(&frame));
    let reject = server
        .client
        .latest(PROTO_LCP, PROTOCOL_REJECT)
        .expect("LCP Protocol-Reject")
        .clone();
    let mut expected_data = PROTO_CCP.to_be_bytes().to_vec();
    expected_data.extend_from_slice(&ccp);
    assert_eq!(
        reject.data, expected_data,
        "[RFC 1661] 5.7: protocol, then the packet"
    );
    assert_eq!(
        answer,
        [data_packet(&lcp_frame(
            PROTOCOL_REJECT,
            reject.identifier,
            &expected_data
        ))],
        "LCP keeps its full FF 03 C0 21 header even with ACFC agreed ([RFC 1661] 6.6)"
    );

    // Windows' IPCP request, compressed header too: address and the two
    // DNS servers as 0.0.0.0, and the two NBNS options ([RFC 1877]).
    //
    // [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
    let ipcp_options: &[u8] = &[
        0x03, 0x06, 0, 0, 0, 0, // IP-Address
        0x81, 0x06, 0, 0, 0, 0, // Primary DNS
        0x82, 0x06, 0, 0, 0, 0, // Primary NBNS
        0x83, 0x06, 0, 0, 0, 0, // Secondary DNS
        0x84, 0x06, 0, 0, 0, 0, // Secondary NBNS
    ];
    let mut frame = vec![0x80, 0x21, CONFIGURE_REQUEST, 0x05];
    frame.extend_from_slice(&((4 + ipcp_options.len()) as u16).to_be_bytes());
    frame.extend_from_slice(ipcp_options);
    server.send(&data_packet(&frame));
    let reply = server
        .client
        .received
        .iter()
        .rev()
        .find(|r| r.protocol == PROTO_IPCP && r.identifier == 0x05 && r.code != CONFIGURE_REQUEST)
        .expect("an answer to Windows' IPCP request")
        .clone();
    assert_eq!(
        (reply.code, reply.data.clone()),
        (CONFIGURE_REJECT, ipcp_options[12..30].to_vec()),
        "what the server has no value for (NBNS, a secondary DNS) is rejected first, in order"
    );
    // The retry without them: the address and the DNS server are nak'd with
    // what the server assigns ([RFC 1332] 3.3, [RFC 1877] 1.1).
    //
    // [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
    let retry = ipcp_options[..12].to_vec();
    let mut frame = vec![0x80, 0x21, CONFIGURE_REQUEST, 0x06];
    frame.extend_from_slice(&((4 + retry.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&retry);
    server.send(&data_packet(&frame));
    let answers: Vec<_> = server
        .client
        .received
        .iter()
        .filter(|r| r.protocol == PROTO_IPCP && r.identifier == 0x06 && r.code != CONFIGURE_REQUEST)
        .map(|r| (r.code, r.data.clone()))
        .collect();
    assert_eq!(
        answers,
        [(
            CONFIGURE_NAK,
            vec![0x03, 0x06, 10, 99, 0, 2, 0x81, 0x06, 10, 99, 0, 53]
        )]
    );
    assert_eq!(
        dropped(&server),
        ["unknown_protocol"],
        "the CCP probe is counted, nothing else"
    );
}

/// IPCP both ways: the server's request acknowledged, the client's
/// address taken from the server's Nak, so that nothing is left to
/// retransmit while the test keeps silent.
fn open_ipcp(server: &mut LoneServer) {
    let request = server
        .client
        .latest(PROTO_IPCP, CONFIGURE_REQUEST)
        .expect("the server's IPCP request")
        .clone();
    let mut bytes = ScriptedClient::ack(&request);
    bytes.extend_from_slice(&ScriptedClient::ppp(
        PROTO_IPCP,
        CONFIGURE_REQUEST,
        1,
        &[&[0x03, 0x06, 0, 0, 0, 0]],
    ));
    server.send(&bytes);
    let nak = server
        .client
        .latest(PROTO_IPCP, CONFIGURE_NAK)
        .expect("a Nak with the address")
        .clone();
    server.send(&ScriptedClient::ppp(
        PROTO_IPCP,
        CONFIGURE_REQUEST,
        2,
        &[&nak.data],
    ));
    assert!(server.server.saw(|e| matches!(e, SessionEvent::Ipv4Up(_))));
}

#[test]
fn sstp_echo_is_answered_and_the_hello_timer_probes_then_gives_up() {
    let mut server = windows_lcp_opened_with(&config_with_ipv6(false));
    authenticate(&mut server);
    let connected = call_connected(&server);
    server.send(&connected);
    assert!(server
        .server
        .saw(|e| matches!(e, SessionEvent::Established)));
    open_ipcp(&mut server);

    // A client's Echo Request gets exactly an Echo Response.
    assert_eq!(
        exchange(&mut server, &ECHO_REQUEST_PACKET),
        [ECHO_RESPONSE_PACKET.to_vec()]
    );

    // Silence: after one Hello interval (60 s, [MS-SSTP] 3.1.2.3) the server
    // sends its own Echo Request; sstpc and Windows answer it.
    let before = sent(&server).len();
    server.advance_by(Duration::from_secs(59));
    let quiet = packets(&sent(&server)[before..]);
    assert!(
        !quiet.contains(&ECHO_REQUEST_PACKET.to_vec()),
        "no probe before 60 s"
    );
    server.advance_by(Duration::from_secs(2));
    let probe = packets(&sent(&server)[before..]);
    assert!(
        probe.contains(&ECHO_REQUEST_PACKET.to_vec()),
        "probe at 60 s: {probe:02x?}"
    );
    server.send(&ECHO_RESPONSE_PACKET);
    server.advance_by(Duration::from_secs(61));
    assert!(server.server.closed_reason().is_none(), "answered: alive");

    // No answer to the next probe: closed after the second interval.
    server.advance_by(Duration::from_secs(130));
    assert_eq!(
        server.server.closed_reason().map(|r| r.as_str()),
        Some("hello_timeout")
    );
}

/// RouterOS's PPP peer proposes IPv6CP with an Interface-Identifier
/// ([RFC 5072] 4.1) right after authentication, whether or not the other
/// side does IPv6: a RouterOS SSTP server's IPv6CP Configure-Request as
/// sstp-client logged it (reliablehosting/sstp-client#9, "connection abort
/// with mikrotik-sstp server implementation"), sent the other way here,
/// from a RouterOS client.
///
/// [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072
const ROUTEROS_IPV6CP_REQUEST: &[u8] = &[
    0xff, 0x03, 0x80, 0x57, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x0a, 0xf1, 0x01, 0x03, 0x43, 0xcf, 0xea,
    0x4f, 0xfe,
];

#[test]
fn routeros_ipv6cp_gets_a_protocol_reject_without_ipv6_and_an_answer_with_it() {
    for ipv6 in [false, true] {
        let mut server = windows_lcp_opened_with(&config_with_ipv6(ipv6));
        authenticate(&mut server);
        exchange(&mut server, &data_packet(ROUTEROS_IPV6CP_REQUEST));
        let answered = server
            .client
            .received
            .iter()
            .find(|r| {
                r.protocol == PROTO_IPV6CP && r.identifier == 1 && r.code != CONFIGURE_REQUEST
            })
            .map(|r| (r.code, r.data.clone()));
        let rejected = server
            .client
            .latest(PROTO_LCP, PROTOCOL_REJECT)
            .map(|r| r.data.clone());
        if ipv6 {
            assert_eq!(
                answered,
                Some((CONFIGURE_ACK, ROUTEROS_IPV6CP_REQUEST[8..].to_vec())),
                "a unique, non-zero Interface-Identifier is acknowledged"
            );
            assert_eq!(rejected, None);
        } else {
            assert_eq!(answered, None);
            assert_eq!(
                rejected,
                Some(ROUTEROS_IPV6CP_REQUEST[2..].to_vec()),
                "[RFC 1661] 5.7: LCP Protocol-Reject of 0x8057 with the packet"
            );
        }
    }
}

/// RouterOS as a server answers PAP with an Authenticate-Ack whose Length
/// is 4 but which still carries Msg-Length and "Login ok" after it
/// (kittoku/Open-SSTP-Client#134: `08 4C 6F 67 69 6E 20 6F 6B` past the
/// Length). sstpd's client role (the load generator) reads only what
/// Length covers: the rest is padding ([RFC 1661] 5), the Ack is an Ack.
#[test]
fn routeros_pap_ack_with_bytes_past_its_length_is_an_ack() {
    let ack = [
        0x02, 0x01, 0x00, 0x04, 0x08, b'L', b'o', b'g', b'i', b'n', b' ', b'o', b'k',
    ];
    assert_eq!(
        PapPacket::parse(&ack),
        Ok(PapPacket::AuthenticateAck {
            identifier: 1,
            message: &[],
        })
    );
}
