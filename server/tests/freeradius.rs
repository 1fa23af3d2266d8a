//! The FreeRADIUS harness (`sstpd::testing::freeradius`) against the real
//! FreeRADIUS 3.2.1 and radclient of Debian 12, and the facts about
//! FreeRADIUS that sstpd's RADIUS client is designed on (listed in the
//! harness's module doc, each proven here).
//!
//! Where a fact is about bytes radclient would hide (Message-Authenticator
//! present or not, how it is computed, the Response Authenticator), the
//! test builds and checks the datagrams itself with the RFC 2865 / RFC
//! 3579 / RFC 5176 algorithms written out below, independent of sstpd's
//! codec.
//!
//! Needs `freeradius` and `freeradius-utils` (scripts/test installs them);
//! the namespace test needs root, like every end-to-end test.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sstpd::proto::auth::{mppe, mschapv2};
use sstpd::proto::Role;
use sstpd::testing::freeradius::{
    radclient, radclient_with, FreeRadius, FreeRadiusConfig, FreeRadiusError, RadclientKind,
    RadclientOptions, RadclientOutput, RadiusClient, RadiusUser, DEFAULT_SECRET,
};
use sstpd::testing::netns::{create_veth_pair, NetNs, VethEnd};

const SECRET: &str = DEFAULT_SECRET;

fn alice() -> RadiusUser {
    RadiusUser::new("alice", "alice-secret")
        .with_reply("Framed-IP-Address", "10.1.2.3")
        .with_reply("Session-Timeout", "5")
        .with_reply("Class", "\"gold\"")
        .with_reply("Framed-Route", "\"192.0.2.0/24 0.0.0.0 1\"")
        .with_reply("MS-Primary-DNS-Server", "10.0.0.53")
}

fn config() -> FreeRadiusConfig {
    FreeRadiusConfig {
        users: vec![
            alice(),
            RadiusUser::new("bob", "bob-secret")
                .with_reply("Reply-Message", "\"go away\"")
                .with_reply("Framed-IP-Address", "10.1.2.4")
                .rejected(),
        ],
        ..FreeRadiusConfig::default()
    }
}

fn start(config: &FreeRadiusConfig) -> FreeRadius {
    match FreeRadius::start(config) {
        Ok(server) => server,
        Err(error) => panic!("FreeRADIUS did not start ({}): {error}", error.as_str()),
    }
}

/// radclient against `server`, failing the test with the server's log.
fn ask(server: &FreeRadius, kind: RadclientKind, attributes: &[(&str, &str)]) -> RadclientOutput {
    let target = match kind {
        RadclientKind::Acct => server.acct_addr(),
        _ => server.auth_addr(),
    };
    radclient(target, kind, SECRET, attributes)
        .unwrap_or_else(|e| panic!("radclient: {e}\nserver log:\n{}", server.log()))
}

// ------------------------------------------------------------ raw RADIUS

const ACCESS_REQUEST: u8 = 1;
const ACCESS_ACCEPT: u8 = 2;
const ACCESS_REJECT: u8 = 3;
const ACCOUNTING_REQUEST: u8 = 4;
const ACCOUNTING_RESPONSE: u8 = 5;
const STATUS_SERVER: u8 = 12;
const DISCONNECT_REQUEST: u8 = 40;
const DISCONNECT_ACK: u8 = 41;
const COA_REQUEST: u8 = 43;
const COA_NAK: u8 = 45;

const USER_NAME: u8 = 1;
const USER_PASSWORD: u8 = 2;
const ACCT_STATUS_TYPE: u8 = 40;
const ACCT_SESSION_ID: u8 = 44;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const ERROR_CAUSE: u8 = 101;

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hash = Md5::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = Hmac::<Md5>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A packet: header with `authenticator`, then the attributes.
fn packet(code: u8, id: u8, authenticator: [u8; 16], attributes: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![code, id, 0, 0];
    p.extend_from_slice(&authenticator);
    for (kind, value) in attributes {
        p.push(*kind);
        p.push(u8::try_from(value.len() + 2).unwrap());
        p.extend_from_slice(value);
    }
    let len = u16::try_from(p.len()).unwrap().to_be_bytes();
    p[2..4].copy_from_slice(&len);
    p
}

/// The attributes of a packet, with their offsets.
fn attributes(p: &[u8]) -> Vec<(u8, usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 20;
    while at + 2 <= p.len() {
        let len = usize::from(p[at + 1]);
        assert!(
            len >= 2 && at + len <= p.len(),
            "malformed attribute at {at}"
        );
        out.push((p[at], at, &p[at + 2..at + len]));
        at += len;
    }
    out
}

/// RFC 3579 3.2: sets the (last) Message-Authenticator to the HMAC-MD5 of
/// the packet with it zeroed, with `authenticator` in the header.
fn sign(p: &mut [u8], authenticator: [u8; 16]) {
    let (_, at, _) = *attributes(p)
        .iter()
        .find(|(kind, _, _)| *kind == MESSAGE_AUTHENTICATOR)
        .expect("a Message-Authenticator attribute");
    let saved: [u8; 16] = p[4..20].try_into().unwrap();
    p[4..20].copy_from_slice(&authenticator);
    p[at + 2..at + 18].fill(0);
    let mac = hmac_md5(SECRET.as_bytes(), p);
    p[at + 2..at + 18].copy_from_slice(&mac);
    p[4..20].copy_from_slice(&saved);
}

/// An Access-Request for PAP (RFC 2865 5.2 hides the password) with a
/// Message-Authenticator.
fn access_request(id: u8, authenticator: [u8; 16], user: &str, password: &str) -> Vec<u8> {
    let mut padded = password.as_bytes().to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    let mut hidden = Vec::new();
    let mut previous = authenticator.to_vec();
    for block in padded.chunks(16) {
        let b = md5(&[SECRET.as_bytes(), &previous]);
        let c: Vec<u8> = block.iter().zip(b).map(|(p, b)| p ^ b).collect();
        hidden.extend_from_slice(&c);
        previous = c;
    }
    let mut p = packet(
        ACCESS_REQUEST,
        id,
        authenticator,
        &[
            (USER_NAME, user.as_bytes().to_vec()),
            (USER_PASSWORD, hidden),
            (MESSAGE_AUTHENTICATOR, vec![0; 16]),
        ],
    );
    sign(&mut p, authenticator);
    p
}

/// An Accounting-Request (RFC 2866 3: MD5 Request Authenticator) with a
/// Message-Authenticator (RFC 3579 3.2: computed first, over the packet
/// with a zero authenticator).
fn accounting_request(id: u8, status_type: u32, session: &str) -> Vec<u8> {
    let mut p = packet(
        ACCOUNTING_REQUEST,
        id,
        [0; 16],
        &[
            (USER_NAME, b"alice".to_vec()),
            (ACCT_STATUS_TYPE, status_type.to_be_bytes().to_vec()),
            (ACCT_SESSION_ID, session.as_bytes().to_vec()),
            (MESSAGE_AUTHENTICATOR, vec![0; 16]),
        ],
    );
    sign(&mut p, [0; 16]);
    let authenticator = md5(&[&p, SECRET.as_bytes()]);
    p[4..20].copy_from_slice(&authenticator);
    p
}

/// Sends `request` from a fresh socket and returns the answer (2 s).
fn exchange(target: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send_to(request, target).unwrap();
    let mut buf = [0u8; 4096];
    let (len, from) = socket.recv_from(&mut buf).expect("an answer");
    assert_eq!(from, target);
    buf[..len].to_vec()
}

/// What a response carries, checked against its request.
struct Checked {
    code: u8,
    message_authenticator: Option<MessageAuthenticator>,
}

/// A response's Message-Authenticator: which HMAC-MD5 it is.
#[derive(Debug)]
struct MessageAuthenticator {
    /// Over the response with the request's authenticator in the header
    /// (RFC 3579 3.2, for Access-Accept/Reject/Challenge).
    with_request_authenticator: bool,
    /// Over the response with 16 zero octets in the header.
    with_zero_authenticator: bool,
    /// The first attribute of the response.
    first: bool,
}

/// Checks the Response Authenticator (RFC 2865 3, RFC 2866 3) and tells
/// how the Message-Authenticator, if any, was computed.
fn check_response(response: &[u8], request: &[u8]) -> Checked {
    assert!(response.len() >= 20, "short response");
    assert_eq!(response[1], request[1], "identifier");
    let request_authenticator: [u8; 16] = request[4..20].try_into().unwrap();
    let expected = md5(&[
        &response[..4],
        &request_authenticator,
        &response[20..],
        SECRET.as_bytes(),
    ]);
    assert_eq!(response[4..20], expected, "Response Authenticator");
    let attrs = attributes(response);
    let message_authenticator = attrs
        .iter()
        .position(|(kind, _, _)| *kind == MESSAGE_AUTHENTICATOR)
        .map(|index| {
            let (_, at, value) = attrs[index];
            let hmac_with = |authenticator: [u8; 16]| {
                let mut copy = response.to_vec();
                copy[4..20].copy_from_slice(&authenticator);
                copy[at + 2..at + 18].fill(0);
                hmac_md5(SECRET.as_bytes(), &copy) == value
            };
            MessageAuthenticator {
                with_request_authenticator: hmac_with(request_authenticator),
                with_zero_authenticator: hmac_with([0; 16]),
                first: index == 0,
            }
        });
    Checked {
        code: response[0],
        message_authenticator,
    }
}

fn status_server(id: u8) -> Vec<u8> {
    let authenticator = [7u8; 16];
    let mut p = packet(
        STATUS_SERVER,
        id,
        authenticator,
        &[(MESSAGE_AUTHENTICATOR, vec![0; 16])],
    );
    sign(&mut p, authenticator);
    p
}

// ------------------------------------------------------------ facts

/// Sends the same kinds of request to `server` (PAP accept, wrong
/// password, a rejected user, an unknown user, Status-Server, an
/// Accounting-Request, each with a Message-Authenticator) and returns
/// each request's expected code with its checked answer.
fn exchange_each_kind(server: &FreeRadius) -> Vec<(u8, u8, Checked)> {
    let auth = server.auth_addr();
    let pap = [
        ("alice", "alice-secret", ACCESS_ACCEPT),
        ("alice", "wrong", ACCESS_REJECT),
        ("bob", "bob-secret", ACCESS_REJECT),
        ("nobody", "x", ACCESS_REJECT),
    ];
    let mut cases: Vec<(Vec<u8>, u8, SocketAddr)> = pap
        .into_iter()
        .zip(1u8..)
        .map(|((user, password, code), id)| {
            (access_request(id, [id; 16], user, password), code, auth)
        })
        .collect();
    cases.push((status_server(5), ACCESS_ACCEPT, auth));
    cases.push((
        accounting_request(6, 1, "s-1"),
        ACCOUNTING_RESPONSE,
        server.acct_addr(),
    ));
    cases
        .into_iter()
        .map(|(request, code, target)| {
            let checked = check_response(&exchange(target, &request), &request);
            assert_eq!(checked.code, code, "{}", server.log());
            (request[0], code, checked)
        })
        .collect()
}

/// Stock FreeRADIUS 3.2.1 (`message_authenticator_in_replies: false`):
/// requests all carry a Message-Authenticator, no answer has one.
#[test]
fn stock_replies_carry_no_message_authenticator() {
    let server = start(&FreeRadiusConfig {
        message_authenticator_in_replies: false,
        ..config()
    });
    for (_, code, checked) in exchange_each_kind(&server) {
        assert!(
            checked.message_authenticator.is_none(),
            "code {code}: FreeRADIUS 3.2.1 added a Message-Authenticator by itself"
        );
    }
}

/// With `message_authenticator_in_replies` (the default) every answer has
/// one: valid under RFC 3579 3.2 with the request's authenticator for
/// Access replies (first in an Accept), over a zero authenticator for
/// the Accounting-Response.
#[test]
fn replies_carry_a_valid_message_authenticator_when_configured() {
    let server = start(&config());
    for (request_code, code, checked) in exchange_each_kind(&server) {
        let mac = checked
            .message_authenticator
            .unwrap_or_else(|| panic!("code {code} has no Message-Authenticator"));
        if code == ACCOUNTING_RESPONSE {
            // FreeRADIUS signs an Accounting-Response over a zero
            // authenticator, not the request's.
            assert!(
                mac.with_zero_authenticator && !mac.with_request_authenticator,
                "{mac:?}"
            );
        } else {
            assert!(mac.with_request_authenticator, "code {code}: {mac:?}");
        }
        if code == ACCESS_ACCEPT && request_code == ACCESS_REQUEST {
            assert!(mac.first, "the Accept's Message-Authenticator comes first");
        }
    }
}

#[test]
fn require_message_authenticator_drops_access_requests_without_one() {
    let server = start(&config());
    let bare = RadclientOptions {
        message_authenticator: false,
        timeout: Duration::from_millis(500),
        ..RadclientOptions::default()
    };
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    let dropped =
        radclient_with(server.auth_addr(), RadclientKind::Auth, SECRET, &pap, &bare).unwrap();
    assert_eq!(dropped.code, None, "answered: {}", dropped.output);
    assert!(server
        .log()
        .contains("does not contain required Message-Authenticator"));
    assert_eq!(
        ask(&server, RadclientKind::Auth, &pap).code.as_deref(),
        Some("Access-Accept")
    );
    let acct_start = [
        ("User-Name", "alice"),
        ("Acct-Status-Type", "Start"),
        ("Acct-Session-Id", "\"s-bare\""),
    ];
    let answered = radclient_with(
        server.acct_addr(),
        RadclientKind::Acct,
        SECRET,
        &acct_start,
        &bare,
    )
    .unwrap();
    assert_eq!(answered.code.as_deref(), Some("Accounting-Response"));

    // Off: the same request is answered.
    let lax = start(&FreeRadiusConfig {
        require_message_authenticator: false,
        ..config()
    });
    let answered =
        radclient_with(lax.auth_addr(), RadclientKind::Auth, SECRET, &pap, &bare).unwrap();
    assert_eq!(answered.code.as_deref(), Some("Access-Accept"));
}

// ------------------------------------------------------------ authentication

/// `alice`'s Access-Accept, with her reply items.
fn assert_alice_accepted(server: &FreeRadius, reply: &RadclientOutput) {
    let context = format!("{}\nserver log:\n{}", reply.output, server.log());
    assert_eq!(reply.code.as_deref(), Some("Access-Accept"), "{context}");
    assert_eq!(reply.get("Framed-IP-Address"), Some("10.1.2.3"));
    assert_eq!(reply.get("Session-Timeout"), Some("5"));
    // Class is octets: radclient prints it in hex ("gold").
    assert_eq!(reply.get("Class"), Some("0x676f6c64"));
    assert_eq!(reply.get("Framed-Route"), Some("192.0.2.0/24 0.0.0.0 1"));
    assert_eq!(reply.get("MS-Primary-DNS-Server"), Some("10.0.0.53"));
    assert!(reply.get("Message-Authenticator").is_some());
}

#[test]
fn pap_accept_carries_the_users_reply_items() {
    let server = start(&config());
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    assert_alice_accepted(&server, &ask(&server, RadclientKind::Auth, &pap));
}

#[test]
fn pap_reject_for_wrong_password_unknown_user_and_rejected_user() {
    let server = start(&config());
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-secret"),
        ("bob", "bob-secret"),
    ] {
        let reply = ask(
            &server,
            RadclientKind::Auth,
            &[("User-Name", user), ("User-Password", password)],
        );
        assert_eq!(reply.code.as_deref(), Some("Access-Reject"), "{user}");
        // The filter keeps the user's reply items out of rejects, but
        // Reply-Message in.
        assert_eq!(reply.get("Framed-IP-Address"), None, "{}", reply.output);
        if user == "bob" {
            assert_eq!(reply.get("Reply-Message"), Some("go away"));
        }
    }
}

#[test]
fn chap_accept_and_reject() {
    let server = start(&config());
    // radclient computes CHAP-Password from the cleartext it is given.
    let chap = [("User-Name", "alice"), ("CHAP-Password", "alice-secret")];
    assert_alice_accepted(&server, &ask(&server, RadclientKind::Auth, &chap));
    let reply = ask(
        &server,
        RadclientKind::Auth,
        &[("User-Name", "alice"), ("CHAP-Password", "wrong")],
    );
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asks `server` to authenticate alice with MS-CHAPv2 and `password`:
/// MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548 2.3.2: Ident,
/// Flags, Peer-Challenge, 8 reserved, NT-Response). Returns the answer
/// and the NT-Response sent.
fn ask_mschapv2(
    server: &FreeRadius,
    password: &str,
    challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
) -> (RadclientOutput, [u8; 24]) {
    let nt_response =
        mschapv2::generate_nt_response(challenge, peer_challenge, b"alice", password.as_bytes());
    let mut response = vec![0x2a, 0];
    response.extend_from_slice(peer_challenge);
    response.extend_from_slice(&[0; 8]);
    response.extend_from_slice(&nt_response);
    let challenge = format!("0x{}", hex(challenge));
    let response = format!("0x{}", hex(&response));
    let attributes = [
        ("User-Name", "alice"),
        ("MS-CHAP-Challenge", challenge.as_str()),
        ("MS-CHAP2-Response", response.as_str()),
    ];
    (ask(server, RadclientKind::Auth, &attributes), nt_response)
}

#[test]
fn mschapv2_accept_carries_success_and_mppe_keys() {
    let server = start(&config());
    let challenge = [0x11; 16];
    let peer_challenge = [0x22; 16];
    let (reply, nt_response) = ask_mschapv2(&server, "alice-secret", &challenge, &peer_challenge);
    assert_alice_accepted(&server, &reply);
    let names: Vec<&str> = reply.attributes.iter().map(|(n, _)| n.as_str()).collect();
    println!("MS-CHAPv2 Access-Accept attributes: {names:?}");

    // MS-CHAP2-Success: the ident, then "S=" and the authenticator
    // response in upper-case hex (RFC 2759 5).
    let hash = mschapv2::nt_password_hash(b"alice-secret");
    let expected = mschapv2::generate_authenticator_response(
        &hash,
        &nt_response,
        &peer_challenge,
        &challenge,
        b"alice",
    );
    let success = format!(
        "0x2a{}",
        hex(format!("S={}", hex(&expected).to_uppercase()).as_bytes())
    );
    assert_eq!(reply.get("MS-CHAP2-Success"), Some(success.as_str()));

    // The MPPE keys, decrypted by radclient, are RFC 3079's in the
    // server's view.
    let keys = mppe::master_keys(&hash, &nt_response, Role::Server);
    let send = format!("0x{}", hex(&keys.send));
    let receive = format!("0x{}", hex(&keys.receive));
    assert_eq!(reply.get("MS-MPPE-Send-Key"), Some(send.as_str()));
    assert_eq!(reply.get("MS-MPPE-Recv-Key"), Some(receive.as_str()));
    assert_eq!(
        reply.get("MS-MPPE-Encryption-Policy"),
        Some("Encryption-Allowed")
    );
    assert_eq!(
        reply.get("MS-MPPE-Encryption-Types"),
        Some("RC4-40or128-bit-Allowed")
    );

    // A wrong password: Access-Reject with MS-CHAP-Error E=691.
    let (reply, _) = ask_mschapv2(&server, "wrong", &challenge, &peer_challenge);
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"));
    let error = reply.get("MS-CHAP-Error").expect("MS-CHAP-Error");
    // A string: the ident octet, then "E=691 R=1 C=<challenge> V=3 M=...".
    assert!(
        error.starts_with("*E=691 "),
        "MS-CHAP-Error {error} is not E=691"
    );
    assert_eq!(reply.get("MS-MPPE-Send-Key"), None);
}

/// `post_auth_reply` replaces what mschap put into the Access-Accept: one
/// MS-MPPE-Send-Key, the configured one, the Recv-Key untouched (the wrong
/// key the crypto binding's negative interop test needs).
#[test]
fn post_auth_reply_replaces_the_mppe_send_key() {
    let wrong = format!("0x{}", "5a".repeat(16));
    let server = start(&FreeRadiusConfig {
        post_auth_reply: vec![("MS-MPPE-Send-Key".into(), wrong.clone())],
        ..config()
    });
    let challenge = [0x11; 16];
    let peer_challenge = [0x22; 16];
    let (reply, nt_response) = ask_mschapv2(&server, "alice-secret", &challenge, &peer_challenge);
    assert_alice_accepted(&server, &reply);
    let sends: Vec<&str> = reply
        .attributes
        .iter()
        .filter(|(n, _)| n == "MS-MPPE-Send-Key")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sends, [wrong.as_str()], "{}", server.log());
    let hash = mschapv2::nt_password_hash(b"alice-secret");
    let keys = mppe::master_keys(&hash, &nt_response, Role::Server);
    assert_ne!(wrong, format!("0x{}", hex(&keys.send)));
    let receive = format!("0x{}", hex(&keys.receive));
    assert_eq!(reply.get("MS-MPPE-Recv-Key"), Some(receive.as_str()));
}

// ------------------------------------------------------------ accounting

#[test]
fn accounting_start_and_stop_reach_the_detail_file() {
    let server = start(&config());
    let session = "\"sess-42\"";
    let mut latest = Duration::ZERO;
    for (status, extra) in [
        ("Start", vec![]),
        ("Interim-Update", vec![("Acct-Session-Time", "30")]),
        (
            "Stop",
            vec![
                ("Acct-Session-Time", "61"),
                ("Acct-Terminate-Cause", "User-Request"),
            ],
        ),
    ] {
        let mut attributes = vec![
            ("User-Name", "alice"),
            ("Acct-Status-Type", status),
            ("Acct-Session-Id", session),
            ("NAS-IP-Address", "127.0.0.1"),
            ("Framed-IP-Address", "10.1.2.3"),
        ];
        attributes.extend(extra);
        let reply = ask(&server, RadclientKind::Acct, &attributes);
        assert_eq!(reply.code.as_deref(), Some("Accounting-Response"));
        // The record is written before the response is sent: it is there
        // at once, without waiting.
        let answered = Instant::now();
        let records = server.detail_records();
        latest = latest.max(answered.elapsed());
        let record = records.last().expect("a record");
        assert_eq!(record.status_type(), Some(status), "{records:#?}");
    }
    let records = server
        .wait_for_records(|r| r.len() >= 3, Duration::from_secs(1))
        .unwrap();
    println!("records visible {latest:?} after the Accounting-Response: {records:#?}");
    let types: Vec<_> = records.iter().map(|r| r.status_type().unwrap()).collect();
    assert_eq!(types, ["Start", "Interim-Update", "Stop"]);
    let stop = &records[2];
    assert_eq!(stop.get("User-Name"), Some("alice"));
    assert_eq!(stop.get("Acct-Session-Id"), Some("sess-42"));
    assert_eq!(stop.get("Acct-Session-Time"), Some("61"));
    assert_eq!(stop.get("Acct-Terminate-Cause"), Some("User-Request"));
    assert_eq!(stop.get("Framed-IP-Address"), Some("10.1.2.3"));
    assert!(stop.get("Message-Authenticator").is_some());
    assert!(stop
        .get("Timestamp")
        .is_some_and(|t| t.parse::<u64>().is_ok()));

    // Waiting for what never comes ends with the records there are.
    match server.wait_for_records(|r| r.len() > 3, Duration::from_millis(50)) {
        Err(FreeRadiusError::RecordsTimeout { records }) => assert_eq!(records.len(), 3),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

// ------------------------------------------------------------ lifecycle

#[test]
fn stop_and_restart_keep_the_ports_and_the_detail_file() {
    let mut server = start(&config());
    let (auth, acct) = (server.auth_addr(), server.acct_addr());
    let start_record = [
        ("User-Name", "alice"),
        ("Acct-Status-Type", "Start"),
        ("Acct-Session-Id", "\"r1\""),
    ];
    ask(&server, RadclientKind::Acct, &start_record);
    let pid = server.pid().unwrap();

    server.stop();
    assert_eq!(server.pid(), None);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let quick = RadclientOptions {
        timeout: Duration::from_millis(300),
        ..RadclientOptions::default()
    };
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    let silent = radclient_with(auth, RadclientKind::Auth, SECRET, &pap, &quick).unwrap();
    assert_eq!(silent.code, None, "a stopped server answered");

    let restarted = Instant::now();
    server.restart().unwrap();
    println!("restart took {:?}", restarted.elapsed());
    assert_eq!((server.auth_addr(), server.acct_addr()), (auth, acct));
    assert_ne!(server.pid(), Some(pid));
    assert_eq!(
        ask(&server, RadclientKind::Auth, &pap).code.as_deref(),
        Some("Access-Accept")
    );
    ask(
        &server,
        RadclientKind::Acct,
        &[("Acct-Status-Type", "Stop"), ("User-Name", "alice")],
    );
    let records = server.detail_records();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].status_type(), Some("Start"));
    assert_eq!(records[1].status_type(), Some("Stop"));
    // The log spans both runs.
    assert_eq!(
        server
            .log()
            .matches("Starting - reading configuration")
            .count(),
        2
    );
}

#[test]
fn parallel_instances_have_their_own_ports_and_drop_cleans_up() {
    let started = Instant::now();
    let a = start(&config());
    let first = started.elapsed();
    // The second without -X: a thread pool and the info log only.
    let b = start(&FreeRadiusConfig {
        users: vec![RadiusUser::new("carol", "carol-secret")],
        debug: false,
        ..FreeRadiusConfig::default()
    });
    println!(
        "start until ready: {first:?} (first), {:?} (both)",
        started.elapsed()
    );
    let ports = [a.auth_addr(), a.acct_addr(), b.auth_addr(), b.acct_addr()];
    for (i, x) in ports.iter().enumerate() {
        assert!(ports[i + 1..].iter().all(|y| y != x), "{ports:?}");
    }
    let carol = [("User-Name", "carol"), ("User-Password", "carol-secret")];
    assert_eq!(
        ask(&a, RadclientKind::Auth, &carol).code.as_deref(),
        Some("Access-Reject")
    );
    assert_eq!(
        ask(&b, RadclientKind::Auth, &carol).code.as_deref(),
        Some("Access-Accept")
    );
    assert!(a.log().contains("Received Access-Request"));
    assert!(!b.log().contains("Received Access-Request"), "{}", b.log());

    let (pid, dir) = (a.pid().unwrap(), a.dir().to_path_buf());
    drop(a);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
}

#[test]
fn listens_on_the_ipv6_loopback() {
    let server = start(&FreeRadiusConfig {
        address: "::1".parse().unwrap(),
        ..config()
    });
    assert!(server.auth_addr().is_ipv6());
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    assert_alice_accepted(&server, &ask(&server, RadclientKind::Auth, &pap));
}

#[test]
fn a_taken_port_fails_the_start_with_the_log() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = FreeRadius::start(&FreeRadiusConfig {
        auth_port: port,
        ..config()
    })
    .unwrap_err();
    match &error {
        FreeRadiusError::Exited { log, .. } => {
            assert!(log.contains("Address already in use"), "{log}")
        }
        other => panic!("expected Exited, got {other:?}"),
    }
    assert_eq!(error.as_str(), "exited");
}

#[test]
fn starts_inside_a_namespace_on_the_standard_ports() {
    let ns = NetNs::new("sstpd-radius").expect("namespace (needs root)");
    let server = FreeRadius::start_in(&ns, &config()).unwrap();
    assert_eq!(server.auth_addr(), "127.0.0.1:1812".parse().unwrap());
    assert_eq!(server.acct_addr(), "127.0.0.1:1813".parse().unwrap());
    let inside = RadclientOptions {
        netns: Some(ns.name().to_owned()),
        ..RadclientOptions::default()
    };
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    let reply = radclient_with(
        server.auth_addr(),
        RadclientKind::Auth,
        SECRET,
        &pap,
        &inside,
    )
    .unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        server.log()
    );
    // The host's loopback has no server on 1812 (scripts/test leaves none).
    let outside = RadclientOptions {
        timeout: Duration::from_millis(300),
        ..RadclientOptions::default()
    };
    let reply = radclient_with(
        server.auth_addr(),
        RadclientKind::Auth,
        SECRET,
        &pap,
        &outside,
    )
    .unwrap();
    assert_eq!(reply.code, None, "something answers on the host's 1812");
    drop(server);
}

/// FreeRADIUS in one namespace, its client in another across a veth
/// (how sstpd and its RADIUS server sit in end-to-end tests): the client
/// is answered only with the secret configured for its address.
#[test]
fn answers_a_configured_client_across_namespaces() {
    let radius_ns = NetNs::new("sstpd-radius").expect("namespace (needs root)");
    let nas_ns = NetNs::new("sstpd-radius").expect("namespace (needs root)");
    let server_ip: IpAddr = "10.77.0.1".parse().unwrap();
    let nas_ip: IpAddr = "10.77.0.2".parse().unwrap();
    create_veth_pair(
        VethEnd {
            ns: &radius_ns,
            name: "rad0",
            addresses: &[(server_ip, 24)],
        },
        VethEnd {
            ns: &nas_ns,
            name: "nas0",
            addresses: &[(nas_ip, 24)],
        },
    )
    .unwrap();
    let server = FreeRadius::start_in(
        &radius_ns,
        &FreeRadiusConfig {
            address: server_ip,
            clients: vec![RadiusClient {
                address: nas_ip,
                prefix_len: 32,
                secret: "nas-secret".into(),
            }],
            ..config()
        },
    )
    .unwrap();
    assert_eq!(server.auth_addr(), SocketAddr::new(server_ip, 1812));
    let pap = [("User-Name", "alice"), ("User-Password", "alice-secret")];
    // UDP over a veth made a moment ago: an answer FreeRADIUS sent once
    // did not reach radclient (a CI run of cdcd732), so the request that
    // must be answered is retransmitted; the one that must not is sent once.
    let send = |secret, tries| {
        let from_nas = RadclientOptions {
            netns: Some(nas_ns.name().to_owned()),
            timeout: Duration::from_millis(500),
            tries,
            ..RadclientOptions::default()
        };
        radclient_with(
            server.auth_addr(),
            RadclientKind::Auth,
            secret,
            &pap,
            &from_nas,
        )
        .unwrap()
    };
    assert_alice_accepted(&server, &send("nas-secret", 3));
    // The loopback clients' secret is not this client's: no answer.
    assert_eq!(send(SECRET, 1).code, None);
    drop(server);
}

// ------------------------------------------------------------ CoA / Disconnect

/// How the test's DAE server computes its answer's Message-Authenticator.
#[derive(Clone, Copy, Debug, PartialEq)]
enum AnswerSigning {
    /// Over the answer with 16 zero octets as its authenticator.
    ZeroAuthenticator,
    /// Over the answer with the request's authenticator.
    RequestAuthenticator,
}

/// radclient sends a `kind` request to a socket of the test's, which
/// checks it and answers `answer_code` signed as `signing`; returns what
/// radclient made of the answer.
fn dae_exchange(
    kind: RadclientKind,
    request_code: u8,
    answer_code: u8,
    signing: AnswerSigning,
) -> RadclientOutput {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let options = RadclientOptions {
            timeout: Duration::from_millis(500),
            ..RadclientOptions::default()
        };
        let attributes = [
            ("User-Name", "alice"),
            ("Acct-Session-Id", "\"sess-42\""),
            ("Framed-IP-Address", "10.1.2.3"),
        ];
        radclient_with(target, kind, SECRET, &attributes, &options)
    });
    let mut buf = [0u8; 4096];
    let (len, from) = listener.recv_from(&mut buf).expect("radclient's request");
    let request = &buf[..len];
    assert_eq!(request[0], request_code);
    // RFC 5176 2.3: MD5(Code+Identifier+Length+16 zero octets+
    // Attributes+Secret).
    let expected = md5(&[&request[..4], &[0; 16], &request[20..], SECRET.as_bytes()]);
    assert_eq!(request[4..20], expected, "Request Authenticator");
    let attrs = attributes(request);
    let kinds: Vec<u8> = attrs.iter().map(|(k, _, _)| *k).collect();
    assert!(
        kinds.contains(&USER_NAME) && kinds.contains(&ACCT_SESSION_ID),
        "{kinds:?}"
    );
    // Its Message-Authenticator is computed over the request with a zero
    // authenticator, before the Request Authenticator (RFC 5176 3.3).
    let (_, at, value) = *attrs
        .iter()
        .find(|(k, _, _)| *k == MESSAGE_AUTHENTICATOR)
        .expect("Message-Authenticator");
    let mut zeroed = request.to_vec();
    zeroed[4..20].fill(0);
    zeroed[at + 2..at + 18].fill(0);
    assert_eq!(hmac_md5(SECRET.as_bytes(), &zeroed), value);

    let request_authenticator: [u8; 16] = request[4..20].try_into().unwrap();
    let mut answer = packet(
        answer_code,
        request[1],
        request_authenticator,
        &[
            (ERROR_CAUSE, 503u32.to_be_bytes().to_vec()),
            (MESSAGE_AUTHENTICATOR, vec![0; 16]),
        ],
    );
    match signing {
        AnswerSigning::ZeroAuthenticator => sign(&mut answer, [0; 16]),
        AnswerSigning::RequestAuthenticator => sign(&mut answer, request_authenticator),
    }
    // The Response Authenticator: MD5 over the answer with the request's
    // authenticator, then the secret.
    let authenticator = md5(&[&answer, SECRET.as_bytes()]);
    answer[4..20].copy_from_slice(&authenticator);
    listener.send_to(&answer, from).unwrap();
    client.join().unwrap().unwrap()
}

/// radclient as the Dynamic Authorization Client (RFC 5176), against a
/// socket of the test's standing in for sstpd's DAE listener: the requests
/// it builds, and which answers it takes.
#[test]
fn radclient_sends_coa_and_disconnect_requests() {
    let cases = [
        (
            RadclientKind::Disconnect,
            DISCONNECT_REQUEST,
            DISCONNECT_ACK,
            "Disconnect-ACK",
        ),
        (RadclientKind::Coa, COA_REQUEST, COA_NAK, "CoA-NAK"),
    ];
    for (kind, request_code, answer_code, answer_name) in cases {
        // The answer's Message-Authenticator over the request's
        // authenticator (RFC 5176 3.3): taken.
        let reply = dae_exchange(
            kind,
            request_code,
            answer_code,
            AnswerSigning::RequestAuthenticator,
        );
        assert_eq!(reply.code.as_deref(), Some(answer_name), "{}", reply.output);
        assert_eq!(reply.get("Error-Cause"), Some("Session-Context-Not-Found"));
        // Over a zero authenticator (how FreeRADIUS signs an
        // Accounting-Response): radclient drops the answer.
        let reply = dae_exchange(
            kind,
            request_code,
            answer_code,
            AnswerSigning::ZeroAuthenticator,
        );
        assert_eq!(reply.code, None, "{}", reply.output);
        assert!(
            reply.output.contains("invalid Message-Authenticator"),
            "{}",
            reply.output
        );
    }
}
