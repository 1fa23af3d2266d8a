//! The load generator's client configuration against servers that behave
//! differently from sstpd's defaults, on the protocol core's in-memory
//! pair (virtual clock, so minutes of keepalives take no time).
//!
//! Covered elsewhere, not repeated here: a server that offers EAP first
//! (the client Naks toward MS-CHAPv2 or PAP:
//! `proto::ppp::link::tests::client_naks_an_eap_offer_toward_its_preferred_method`),
//! and one that Configure-Rejects the Magic-Number
//! (`client_drops_its_magic_number_when_the_server_rejects_it`), both in
//! sstpd's PPP link tests; the keepalives of a real sstpd in
//! `modes.rs::idle_holds_sessions_through_a_quirky_servers_keepalives`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use sstp_loadgen::engine::client_session_config;
use sstp_loadgen::{Credentials, LoadConfig, Mode};
use sstpd::proto::auth::{AuthProtocol, LocalAuthenticator};
use sstpd::proto::ppp::PppDropReason;
use sstpd::proto::ppp::{IpcpConfig, LcpConfig, PppConfig};
use sstpd::proto::session::{DropReason, SessionConfig, SessionEvent};
use sstpd::proto::sstp::{HashProtocol, HashProtocols, SstpConfig};
use sstpd::testing::pair::SessionPair;
use sstpd::testing::StaticPasswords;

fn loadgen_client(auth: &[AuthProtocol]) -> SessionConfig {
    let mut config = LoadConfig::new(
        Mode::Idle,
        "127.0.0.1:443".parse().unwrap(),
        Credentials::single("alice", "pw"),
    );
    config.auth = auth.to_vec();
    client_session_config(&config)
}

/// A server that offers only the SHA-256 crypto binding, asks for no
/// Magic-Number, offers `methods`, and probes every few seconds with both
/// SSTP Echo Requests and LCP Echo-Requests.
fn quirky_server(methods: &[AuthProtocol]) -> SessionConfig {
    let sstp = SstpConfig {
        server_hash_protocols: HashProtocols::SHA256,
        hello_interval: Duration::from_secs(5),
        ..SstpConfig::default()
    };
    let ppp = PppConfig {
        auth_protocols: methods.to_vec(),
        lcp: LcpConfig {
            magic_number: false,
            echo_interval: Some(Duration::from_secs(3)),
            ..LcpConfig::default()
        },
        ipcp: IpcpConfig {
            local_address: Some(Ipv4Addr::new(10, 1, 0, 1)),
            ..IpcpConfig::default()
        },
        ..PppConfig::default()
    };
    SessionConfig::new(sstp, ppp)
}

fn pair(server: &SessionConfig, client: &SessionConfig) -> SessionPair {
    let mut users = StaticPasswords::new();
    users.insert("alice", "pw");
    SessionPair::new(
        server,
        client,
        Arc::new(LocalAuthenticator::new(users)),
        "alice",
        b"pw",
        3,
    )
    .with_addresses(sstpd::testing::ipv4_pools([10, 1, 0, 2], [10, 1, 0, 9]))
}

#[test]
fn sessions_survive_minutes_of_a_quirky_servers_keepalives() {
    for methods in [[AuthProtocol::MsChapV2], [AuthProtocol::Pap]] {
        let mut pair = pair(
            &quirky_server(&methods),
            &loadgen_client(&[AuthProtocol::MsChapV2, AuthProtocol::Pap]),
        );
        assert!(pair.connect(), "{methods:?}: {pair:?}");
        assert_eq!(
            pair.server.session.sstp().hash_protocol(),
            Some(HashProtocol::Sha256)
        );
        // Ten minutes of silence but for the server's probes.
        let bytes_before = pair.bytes;
        let held = !pair.run_until(Duration::from_secs(600), |p| {
            p.client.session.is_closed() || p.server.session.is_closed()
        });
        assert!(held, "{methods:?}: the session ended: {pair:?}");
        assert!(pair.client.session.is_established() && pair.server.session.is_established());
        // The server probed and the client answered, many times.
        assert!(
            pair.bytes[1] - bytes_before[1] > 100 * 16,
            "server sent probes"
        );
        assert!(
            pair.bytes[0] - bytes_before[0] > 100 * 16,
            "client answered them"
        );
        // Nothing discarded but the server's IPv6CP, which a client
        // without IPv6 answers with a Protocol-Reject ([RFC 1661] 5.7).
        let drops: Vec<_> = pair
            .client
            .events
            .iter()
            .filter(|e| match e {
                SessionEvent::Dropped { reason, .. } => {
                    *reason != DropReason::Ppp(PppDropReason::UnknownProtocol(0x8057))
                }
                _ => false,
            })
            .collect();
        assert!(drops.is_empty(), "{drops:?}");
    }
}

#[test]
fn the_client_refuses_a_method_it_was_not_given() {
    // A PAP-only server and a client told to use MS-CHAPv2 only: the
    // session must fail (no silent downgrade to cleartext passwords).
    let mut pair = pair(
        &quirky_server(&[AuthProtocol::Pap]),
        &loadgen_client(&[AuthProtocol::MsChapV2]),
    );
    assert!(!pair.connect());
    assert!(pair.client.session.is_closed());
    let reason = pair.client.closed_reason().map(|r| r.as_str());
    assert!(reason.is_some(), "{pair:?}");
    assert!(!pair.client.session.is_established());
}
